"""Tokens against the real template, end to end in localcloud: the HTTP API's JWT authorizer (emulated as API
Gateway runs it) in front of the real functions. A token that is missing, malformed, signed by another key,
expired, or for another audience or issuer never reaches a function; a valid token for the wrong customer finds
nothing; a customer's token on the warehouse's routes is refused; and none of it writes anything."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from localcloud import auth
from localcloud.cloud import LocalCloud
from tests.localcloud.real import REAL_TEMPLATE

LINES = [{"product_id": "tok-p1", "quantity": 1}]
# Every route of the template, with a path that names real resources once the fixture has run.
ROUTES = [
    ("POST", "/orders", {"lines": LINES}),
    ("GET", "/orders/{order}", None),
    ("POST", "/orders/{order}/cancel", None),
    ("PUT", "/products/tok-p1/stock", {"on_hand": 9}),
    ("POST", "/products/tok-p1/stock/adjustments", {"delta": 1}),
    ("GET", "/products/tok-p1", None),
    ("GET", "/availability/tok-p1", None),
    ("GET", "/customers/cust-a/notifications", None),
    ("GET", "/shipments/{order}", None),
    ("POST", "/shipments/{order}/dispatch", None),
]


def _other_key() -> RSAKey:
    # the local key's kid on another key: only the signature tells them apart
    return RSAKey.generate_key(2048, parameters={"kid": str(auth.signing_key().kid)})


BAD_TOKENS: dict[str, Callable[[], str | None]] = {
    "missing": lambda: None,
    "malformed": lambda: "not-a-jwt",
    "signed by another key": lambda: auth.issue("cust-a", key=_other_key()),
    "expired": lambda: auth.issue("cust-a", expires_in=-60),
    "for another audience": lambda: auth.issue("cust-a", audience="someone-else"),
    "from another issuer": lambda: auth.issue("cust-a", issuer="https://issuer.example/other"),
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[tuple[LocalCloud, str]]:
    """A stack with stock for tok-p1 and one confirmed order of customer cust-a (its shipment created)."""
    with LocalCloud(REAL_TEMPLATE) as deployed:
        admin = deployed.token("warehouse-1", admin=True)
        assert deployed.http("PUT", "/products/tok-p1/stock", body={"on_hand": 5}, token=admin).status == 200
        placed = deployed.http("POST", "/orders", body={"lines": LINES}, token=deployed.token("cust-a"))
        assert placed.status == 201
        deployed.run_until_quiet()
        yield deployed, str(placed.json()["order_id"])


def tables(cloud: LocalCloud) -> dict[str, Any]:
    names = ("OrdersTable", "InventoryTable", "NotificationsTable", "ShipmentsTable")
    return {name: cloud.scan_items(name) for name in names}


def send(cloud: LocalCloud, order: str, route: tuple[str, str, Any], token: str | None) -> tuple[int, Any]:
    method, path, body = route
    response = cloud.http(method, path.format(order=order), body=body, token=token)
    return response.status, response.json()


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_a_bad_token_reaches_no_function_on_any_route(cloud: tuple[LocalCloud, str], case: str) -> None:
    deployed, order = cloud
    # GIVEN a token API Gateway's JWT authorizer refuses, and the stack's state
    token, before = BAD_TOKENS[case](), tables(deployed)
    invoked = len(deployed.invocations())
    for route in ROUTES:
        # WHEN any route is called with it
        # THEN API Gateway's own 401 comes back
        assert send(deployed, order, route, token) == (401, {"message": "Unauthorized"}), route
    # AND no function ran and nothing changed
    assert len(deployed.invocations()) == invoked
    assert tables(deployed) == before


def test_another_customers_token_finds_nothing_and_changes_nothing(cloud: tuple[LocalCloud, str]) -> None:
    deployed, order = cloud
    # GIVEN cust-a's confirmed order, and a valid token of customer cust-b
    token, before = deployed.token("cust-b"), tables(deployed)
    absent = "00000000-0000-4000-8000-000000000000"
    # WHEN cust-b reads, cancels, or looks for the shipment of cust-a's order
    # THEN each answers exactly as for an order that does not exist (404, the same body but for the id)
    for route in (ROUTES[1], ROUTES[2], ROUTES[8]):
        status, body = send(deployed, order, route, token)
        assert status == 404, route
        assert str(body).replace(order, absent) == str(send(deployed, absent, route, token)[1]), route
    # AND cust-a's notifications are not cust-b's to read
    status, body = send(deployed, order, ROUTES[7], token)
    nobody = deployed.http("GET", "/customers/nobody/notifications", token=token)
    assert (status, str(body).replace("cust-a", "nobody")) == (404, str(nobody.json()))
    assert tables(deployed) == before
    # AND cust-a's own token still finds the order
    assert send(deployed, order, ROUTES[1], deployed.token("cust-a"))[0] == 200


def test_a_customers_token_on_the_warehouses_routes_is_refused(cloud: tuple[LocalCloud, str]) -> None:
    deployed, order = cloud
    # GIVEN a valid customer token (no admin group or scope)
    token, before = deployed.token("cust-a"), tables(deployed)
    for route in (ROUTES[3], ROUTES[4], ROUTES[9]):
        # WHEN it sets or adjusts stock, or dispatches the customer's own order
        status, body = send(deployed, order, route, token)
        # THEN 403 in the project's error shape, naming the authorization
        assert status == 403, route
        assert body["errors"][0]["field"] == "authorization"
    # AND nothing changed
    assert tables(deployed) == before


def test_a_body_cannot_choose_the_customer(cloud: tuple[LocalCloud, str]) -> None:
    deployed, _ = cloud
    # GIVEN cust-b's token and a body naming cust-a as the customer
    before = tables(deployed)["OrdersTable"]
    body = {"customer_id": "cust-a", "lines": LINES}
    # WHEN the order is placed
    response = deployed.http("POST", "/orders", body=body, token=deployed.token("cust-b"))
    # THEN it is refused naming the field, and no order is written
    assert response.status == 400
    assert [e["field"] for e in response.json()["errors"]] == ["customer_id"]
    assert tables(deployed)["OrdersTable"] == before

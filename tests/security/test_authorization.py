"""Who may do what over the HTTP API, at the functions (behind API Gateway's JWT authorizer, which has already
refused missing, forged, expired and foreign-audience tokens: localcloud's emulation is tested in
tests/localcloud/test_authorizer.py). A customer acts on their own resources only, and another customer's are
as if absent (404); stock and dispatch need the admin group; no claims at all is 401 on every route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_shipping_api import pending_shipment
from tests.support.events import domain_event, http_event, sqs_event_of
from tests.support.stack import FunctionRunner, Stack

LINES = [{"product_id": "sku-1", "quantity": 1}]
# (function, method, path, route, path parameters, body) of every route
ROUTES = [
    ("OrdersApiFunction", "POST", "/orders", "/orders", None, {"lines": LINES}),
    ("OrdersApiFunction", "GET", "/orders/o-1", "/orders/{order_id}", {"order_id": "o-1"}, None),
    ("OrdersApiFunction", "POST", "/orders/o-1/cancel", "/orders/{order_id}/cancel", {"order_id": "o-1"}, None),
    ("InventoryApiFunction", "PUT", "/products/sku-1/stock", "/products/{product_id}/stock",
     {"product_id": "sku-1"}, {"on_hand": 5}),
    ("InventoryApiFunction", "POST", "/products/sku-1/stock/adjustments", "/products/{product_id}/stock/adjustments",
     {"product_id": "sku-1"}, {"delta": 1}),
    ("InventoryApiFunction", "GET", "/products/sku-1", "/products/{product_id}", {"product_id": "sku-1"}, None),
    ("NotificationsApiFunction", "GET", "/availability/sku-1", "/availability/{product_id}",
     {"product_id": "sku-1"}, None),
    ("NotificationsApiFunction", "GET", "/customers/cust-1/notifications", "/customers/{customer_id}/notifications",
     {"customer_id": "cust-1"}, None),
    ("ShippingApiFunction", "GET", "/shipments/o-1", "/shipments/{order_id}", {"order_id": "o-1"}, None),
    ("ShippingApiFunction", "POST", "/shipments/o-1/dispatch", "/shipments/{order_id}/dispatch",
     {"order_id": "o-1"}, None),
]  # fmt: skip
ADMIN_ROUTES = {"PUT /products/{product_id}/stock", "POST /products/{product_id}/stock/adjustments",
                "POST /shipments/{order_id}/dispatch"}  # fmt: skip


def call(functions: FunctionRunner, route: tuple[Any, ...], **caller: Any) -> tuple[int, Any]:
    function, method, path, pattern, params, body = route
    event = http_event(method, path, route=pattern, path_parameters=params, body=body, **caller)
    response = functions.invoke(function, event)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r[1]} {r[3]}" for r in ROUTES])
def test_every_route_refuses_a_request_without_a_verified_caller(
    stack: Stack, functions: FunctionRunner, route: tuple[Any, ...]
) -> None:
    # GIVEN a request that carries no JWT claims WHEN the function handles it THEN it is 401, naming the authorization
    status, body = call(functions, route, caller=None)
    assert status == 401
    assert [e["field"] for e in body["errors"]] == ["authorization"]


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if f"{r[1]} {r[3]}" in ADMIN_ROUTES], ids=sorted(ADMIN_ROUTES)
)  # fmt: skip
def test_admin_routes_refuse_a_customer_and_serve_an_admin(
    stack: Stack, functions: FunctionRunner, route: tuple[Any, ...]
) -> None:
    # GIVEN a product with stock and a shipment waiting (so that an admin's request can succeed)
    call(functions, ROUTES[3], admin=True)
    pending_shipment(functions, "o-1")
    # WHEN a customer calls an admin route THEN it is 403 naming the authorization, and changes nothing
    before = stack.scan("InventoryTable"), stack.scan("ShipmentsTable")
    status, body = call(functions, route, caller="cust-1")
    assert (status, body["errors"][0]["type"]) == (403, "forbidden")
    assert (stack.scan("InventoryTable"), stack.scan("ShipmentsTable")) == before
    # AND an admin's same request is served
    assert call(functions, route, caller="warehouse-1", admin=True)[0] == 200


def test_the_admin_routes_are_those_the_openapi_document_marks_admin() -> None:
    # GIVEN the generated OpenAPI document (the routes' Powertools `security=`, which is also what is enforced)
    document = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
    # WHEN the operations whose security requirement names the admin role are listed
    marked = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if any("admin" in roles for requirement in operation.get("security", []) for roles in requirement.values())
    }
    # THEN they are exactly the routes shown above to refuse a customer, and each documents its 401 and 403
    assert marked == ADMIN_ROUTES
    assert document["security"] == [{"jwt": []}]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "401" in operation["responses"]
            assert ("403" in operation["responses"]) == (f"{method.upper()} {path}" in ADMIN_ROUTES)


@pytest.mark.parametrize("body", [{"on_hand": -5}, {"nonsense": True}, "not json at all"])
def test_a_customer_on_an_admin_route_learns_nothing_about_the_body(
    stack: Stack, functions: FunctionRunner, body: Any
) -> None:
    # GIVEN a customer's request with an invalid body on an admin route
    raw = body if isinstance(body, str) else json.dumps(body)
    event = http_event("PUT", "/products/sku-1/stock", route="/products/{product_id}/stock",
                       path_parameters={"product_id": "sku-1"}, raw_body=raw, caller="cust-1")  # fmt: skip
    # WHEN the function handles it
    response = functions.invoke("InventoryApiFunction", event)
    # THEN it is 403 (authorization is checked before the body is validated), and nothing is written
    assert response["statusCode"] == 403
    assert json.loads(response["body"])["errors"][0]["field"] == "authorization"
    assert stack.scan("InventoryTable") == []


def test_a_customer_sees_only_their_own_orders_shipments_and_notifications(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN customer 1's order, its shipment, and a notification of theirs
    status, placed = call(functions, ROUTES[0], caller="cust-1")
    assert status == 201
    order_id = placed["order_id"]
    confirmed = {"order_id": order_id, "customer_id": "cust-1", "lines": LINES, "status": "CONFIRMED"}
    for consumer in ("ShippingConsumerFunction", "NotificationsConsumerFunction"):
        event = sqs_event_of(domain_event("OrderConfirmed", confirmed | {"confirmed": True}, version=2))
        assert functions.invoke(consumer, event) == {"batchItemFailures": []}
    own = [
        ("OrdersApiFunction", "GET", f"/orders/{order_id}", "/orders/{order_id}", {"order_id": order_id}, None),
        ("ShippingApiFunction", "GET", f"/shipments/{order_id}", "/shipments/{order_id}", {"order_id": order_id}, None),
        ("OrdersApiFunction", "POST", f"/orders/{order_id}/cancel", "/orders/{order_id}/cancel",
         {"order_id": order_id}, None),
    ]  # fmt: skip
    # WHEN customer 2 reads or cancels any of it, or lists customer 1's notifications
    answers = [call(functions, route, caller="cust-2")[0] for route in [*own, ROUTES[7]]]
    # THEN every answer is 404, as for things that do not exist, and the order is still confirmed-to-be
    assert answers == [404, 404, 404, 404]
    # AND customer 1 gets each of them
    assert [call(functions, route, caller="cust-1")[0] for route in [own[0], own[1], ROUTES[7]]] == [200, 200, 200]
    _, notifications = call(functions, ROUTES[7], caller="cust-1")
    assert [n["order_id"] for n in notifications["notifications"]] == [order_id]

"""The storefront scenario sends each request as who may send it: customers their own orders, the warehouse the rest."""

from __future__ import annotations

import random
from typing import Any

import pytest

from localcloud.scenario import WAREHOUSE, Principal, Scenario, Tokens

ADMIN_PATHS = ("/stock", "/dispatch")  # set stock, restock, dispatch: the warehouse's routes


def test_orders_are_placed_and_cancelled_by_their_customer_and_the_rest_by_the_warehouse() -> None:
    # GIVEN a scenario and a fake API that accepts everything and remembers who sent what
    scenario = Scenario(random.Random(3), products=4, orders=200)
    sent: list[tuple[Principal, str, str, Any]] = []
    placed_by: dict[str, Principal] = {}

    def call(who: Principal, method: str, path: str, body: Any) -> tuple[int, Any]:
        sent.append((who, method, path, body))
        if path == "/orders":
            order_id = f"o-{len(placed_by)}"
            placed_by[order_id] = who
            return 201, {"order_id": order_id}
        return 200, {}

    # WHEN every operation runs
    for kind, argument in scenario.operations():
        scenario.run(kind, argument, call)
    # THEN orders are placed by customers, and the body names no customer (the token's sub is the customer)
    places = [(who, body) for who, method, path, body in sent if path == "/orders"]
    assert len(places) == 200
    assert all(not who.admin and who.subject.startswith("c-") and "customer_id" not in body for who, body in places)
    assert len({who for who, _ in places}) > 1
    # AND every cancellation is sent by the customer who placed that order
    cancels = [(who, path.split("/")[2]) for who, _, path, _ in sent if path.endswith("/cancel")]
    assert cancels
    assert all(who == placed_by[order_id] for who, order_id in cancels)
    # AND stock and dispatches are the warehouse's, an admin
    warehouse = [who for who, _, path, _ in sent if path.endswith(ADMIN_PATHS)]
    assert any(path.endswith("/dispatch") for _, _, path, _ in sent)
    assert warehouse
    assert set(warehouse) == {WAREHOUSE}
    assert WAREHOUSE.admin


def test_a_principals_token_is_issued_once_and_reused() -> None:
    # GIVEN an issuer that counts its signatures
    issued: list[tuple[str, bool]] = []

    def issue(subject: str, *, admin: bool = False, expires_in: int = 3600) -> str:
        issued.append((subject, admin))
        return f"token-{len(issued)}"

    tokens = Tokens(issue)
    # WHEN a customer and the warehouse call many times
    first = [tokens(Principal("c-001")) for _ in range(5)]
    warehouse = [tokens(WAREHOUSE) for _ in range(5)]
    # THEN each principal got one token, its own, reused for every call
    assert issued == [("c-001", False), ("warehouse", True)]
    assert set(first) == {"token-1"}
    assert set(warehouse) == {"token-2"}


def test_a_token_is_issued_again_once_half_its_lifetime_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a token issued now, valid for 100 seconds
    now = [1_000.0]
    monkeypatch.setattr("localcloud.scenario.time.time", lambda: now[0])
    tokens = Tokens(lambda subject, admin=False, expires_in=0: f"{subject}@{now[0]:.0f}+{expires_in}", lifetime=100)
    assert tokens(Principal("c-1")) == "c-1@1000+100"
    # WHEN less than half of it has passed THEN it is reused; WHEN half has passed THEN a new one is issued
    now[0] += 49
    assert tokens(Principal("c-1")) == "c-1@1000+100"
    now[0] += 1
    assert tokens(Principal("c-1")) == "c-1@1050+100"

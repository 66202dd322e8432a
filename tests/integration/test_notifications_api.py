"""The notifications HTTP API under moto: availability and a customer's notifications, read from the table."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from localcloud.template import ROOT
from tests.support.events import domain_event, http_event, sqs_event_of
from tests.support.stack import FunctionRunner, Stack

API = "NotificationsApiFunction"
CONSUMER = "NotificationsConsumerFunction"
TABLE = "NotificationsTable"
NOTIFICATIONS_ROUTE = "/customers/{customer_id}/notifications"


def get_availability(functions: FunctionRunner, product_id: str) -> dict[str, Any]:
    event = http_event(
        "GET",
        f"/availability/{quote(product_id)}",
        route="/availability/{product_id}",
        path_parameters={"product_id": product_id},
    )
    return functions.invoke(API, event)  # type: ignore[no-any-return]


def list_notifications(functions: FunctionRunner, customer_id: str, limit: str | None = None) -> dict[str, Any]:
    event = http_event(
        "GET",
        f"/customers/{customer_id}/notifications",
        route=NOTIFICATIONS_ROUTE,
        path_parameters={"customer_id": customer_id},
        caller=customer_id,
    )
    if limit is not None:
        event["rawQueryString"] = f"limit={limit}"
        event["queryStringParameters"] = {"limit": limit}
    return functions.invoke(API, event)  # type: ignore[no-any-return]


def fixture(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / name).read_text())  # type: ignore[no-any-return]


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def seed_notification(stack: Stack, customer_id: str, order_id: str, created_at: str) -> None:
    stack.put_item(
        TABLE,
        {
            "pk": f"CUSTOMER#{customer_id}",
            "sk": f"NOTIFICATION#ORDER_CONFIRMED#{order_id}",
            "kind": "ORDER_CONFIRMED",
            "order_id": order_id,
            "created_at": created_at,
        },
    )


# ------------------------------------------------------------------ availability
def test_availability_of_a_seen_product(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the consumer has projected sku-1 at version 3
    stock = {"product_id": "sku-1", "on_hand": 10, "reserved": 4, "available": 6}
    functions.invoke(CONSUMER, sqs_event_of(domain_event("StockUpdated", stock, version=3)))
    # WHEN its availability is asked for
    response = get_availability(functions, "sku-1")
    # THEN it is the projected state with its version
    assert response["statusCode"] == 200
    answer = body(response)
    assert answer.pop("updated_at").endswith("Z")
    assert answer == {"product_id": "sku-1", "on_hand": 10, "reserved": 4, "available": 6, "version": 3}


def test_availability_of_an_unseen_product_is_404(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no event about sku-404 WHEN its availability is asked for THEN it is not found
    response = get_availability(functions, "sku-404")
    assert response["statusCode"] == 404
    assert "sku-404" in body(response)["message"]


def test_a_malformed_product_id_is_400_naming_it(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a product id outside the contract's identifier alphabet WHEN it is asked for THEN 400 names it
    response = get_availability(functions, "sku 1")
    assert response["statusCode"] == 400
    assert "product_id" in body(response)["message"]


# ------------------------------------------------------------------ notifications
def test_notifications_are_listed_newest_first(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN three notifications whose key order is not their time order
    seed_notification(stack, "c-1", "o-a", "2026-11-28T10:05:00.000000Z")
    seed_notification(stack, "c-1", "o-b", "2026-11-28T10:09:00.000000Z")
    seed_notification(stack, "c-1", "o-c", "2026-11-28T10:01:00.000000Z")
    seed_notification(stack, "c-2", "o-z", "2026-11-28T10:30:00.000000Z")
    # WHEN the customer's notifications are listed, all of them and then the newest two
    everything = list_notifications(functions, "c-1")
    newest_two = list_notifications(functions, "c-1", limit="2")
    # THEN they come newest first, only the customer's own
    assert everything["statusCode"] == newest_two["statusCode"] == 200
    assert body(everything)["customer_id"] == "c-1"
    assert [n["order_id"] for n in body(everything)["notifications"]] == ["o-b", "o-a", "o-c"]
    assert [n["order_id"] for n in body(newest_two)["notifications"]] == ["o-b", "o-a"]


def test_notifications_built_by_the_consumer_are_listed(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order of c-1 rejected for lack of sku-1
    data = {
        "order_id": "o-1",
        "customer_id": "c-1",
        "lines": [{"product_id": "sku-1", "quantity": 2}],
        "status": "REJECTED",
        "reason": "insufficient stock",
        "shortages": ["sku-1"],
    }
    functions.invoke(CONSUMER, sqs_event_of(domain_event("OrderRejected", data, version=2)))
    # WHEN c-1's notifications are listed
    response = list_notifications(functions, "c-1")
    # THEN the rejection is there with its reason
    assert response["statusCode"] == 200
    [notification] = body(response)["notifications"]
    assert notification.pop("created_at").endswith("Z")
    assert notification == {
        "id": "ORDER_REJECTED#o-1",
        "kind": "ORDER_REJECTED",
        "order_id": "o-1",
        "reason": "insufficient stock",
    }


def test_an_unknown_customer_has_an_empty_list(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no notification for c-unknown WHEN its notifications are listed THEN the list is empty, not a 404
    response = list_notifications(functions, "c-unknown")
    assert response["statusCode"] == 200
    assert body(response) == {"customer_id": "c-unknown", "notifications": []}


@pytest.mark.parametrize("limit", ["0", "101", "ten", "-1"])
def test_a_bad_limit_is_400_naming_the_field(stack: Stack, functions: FunctionRunner, limit: str) -> None:
    # GIVEN a limit outside 1..100 WHEN notifications are listed THEN 400 names the limit
    response = list_notifications(functions, "c-1", limit=limit)
    assert response["statusCode"] == 400
    assert [e["field"] for e in body(response)["errors"]] == ["query.limit"]


# ------------------------------------------------------------------ the sam local fixtures
def test_the_fixtures_read_what_the_consumer_fixture_built(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the consumer fixture applied (sku-2 restocked, cust-42 confirmed, rejected, told sku-2 is back)
    functions.invoke(
        CONSUMER, json.loads((ROOT / "events" / f"{CONSUMER}.back-in-stock-after-rejection.json").read_text())
    )
    # WHEN the API is invoked with its committed fixtures
    availability = functions.invoke(API, json.loads((ROOT / "events" / f"{API}.get-availability.json").read_text()))
    listed = functions.invoke(API, json.loads((ROOT / "events" / f"{API}.list-notifications.json").read_text()))
    # THEN sku-2 is available at version 5 and cust-42's newest notification is the back-in-stock one
    assert availability["statusCode"] == 200
    assert (body(availability)["available"], body(availability)["version"]) == (20, 5)
    assert listed["statusCode"] == 200
    kinds = [n["kind"] for n in body(listed)["notifications"]]
    assert kinds == ["BACK_IN_STOCK", "ORDER_REJECTED", "ORDER_CONFIRMED"]

"""Schema versions through the handlers under moto: the orders API takes prices, producers emit v2 (or v1 when
pinned), consumers take both; and events the model refuses (a naive timestamp) are refused before anything is
applied, with the reason logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from converge.events import DomainEvent
from tests.support.events import domain_event, eventbridge_event, http_event, sqs_event
from tests.support.stack import FunctionRunner, Stack, lambda_stream_event

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
PRICED: dict[str, Any] = {
    "currency": "EUR",
    "lines": [{"product_id": "p1", "quantity": 2, "unit_price": 1999}, {"product_id": "p2", "quantity": 1}],
}


def place_order(functions: FunctionRunner, body: dict[str, Any], caller: str = "cust-1") -> tuple[int, Any]:
    """POST /orders as customer `caller` (the one place this file calls the orders API)."""
    response = functions.invoke("OrdersApiFunction", http_event("POST", "/orders", body=body, caller=caller))
    return response["statusCode"], json.loads(response["body"])


def set_stock(functions: FunctionRunner, product_id: str, on_hand: int) -> None:
    event = http_event(
        "PUT",
        f"/products/{product_id}/stock",
        route="/products/{product_id}/stock",
        path_parameters={"product_id": product_id},
        body={"on_hand": on_hand},
        caller="warehouse-1",
        admin=True,  # stock is the warehouse's (the admin group)
    )
    assert functions.invoke("InventoryApiFunction", event)["statusCode"] == 200


def publish_orders(stack: Stack, functions: FunctionRunner) -> list[dict[str, Any]]:
    """Run the orders publisher over the stream so far; the order events it put on the bus."""
    response = functions.invoke("OrdersPublisherFunction", lambda_stream_event(stack, "OrdersTable"))
    assert response == {"batchItemFailures": []}
    return [e for e in stack.events_on_bus() if e["source"] == "converge.orders"]


def consume(functions: FunctionRunner, consumer: str, *bodies: dict[str, Any]) -> list[str]:
    response = functions.invoke(consumer, sqs_event([json.dumps(b) for b in bodies]))
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def reservation(stack: Stack, order_id: str) -> dict[str, Any] | None:
    return stack.get_item("InventoryTable", f"RESERVATION#{order_id}", "RESERVATION")


# ------------------------------------------------------------------ v2: prices from the API to the bus
def test_a_priced_order_is_stored_and_published_as_v2(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order placed with a currency and a unit price on one of its lines
    status, body = place_order(functions, PRICED)
    assert status == 201
    # THEN the order keeps them (a line without a price costs 0)
    assert body["currency"] == "EUR"
    assert [line["unit_price"] for line in body["lines"]] == [1999, 0]
    # AND its OrderPlaced is a v2 event that carries them
    [event] = publish_orders(stack, functions)
    assert event["detail"]["metadata"]["schema_version"] == 2
    assert event["detail"]["data"]["currency"] == "EUR"
    assert event["detail"]["data"]["lines"][0] == {"product_id": "p1", "quantity": 2, "unit_price": 1999}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "eur"}, "currency"),
        ({"currency": "XXX"}, "unit prices need a currency"),  # priced lines in "no currency"
        ({"lines": [{"product_id": "p1", "quantity": 1, "unit_price": "19.99"}]}, "lines.0.unit_price"),
        ({"lines": [{"product_id": "p1", "quantity": 1, "unit_price": 19.99}]}, "lines.0.unit_price"),
        ({"lines": [{"product_id": "p1", "quantity": 1, "unit_price": -1}]}, "lines.0.unit_price"),
    ],
)
def test_a_malformed_price_is_a_400_naming_it(functions: FunctionRunner, change: dict[str, Any], field: str) -> None:
    status, body = place_order(functions, {**PRICED, **change})
    assert status == 400
    assert field in json.dumps(body)


def test_a_publisher_pinned_to_v1_emits_v1_without_prices(
    stack: Stack, functions: FunctionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a priced order, and the orders publisher pinned to v1 for OrderPlaced (consumers not yet upgraded)
    assert place_order(functions, PRICED)[0] == 201
    monkeypatch.setenv("EMIT_SCHEMA_VERSIONS", "OrderPlaced=1")
    # WHEN it publishes
    [event] = publish_orders(stack, functions)
    # THEN the event is what a v1 consumer reads: no currency, no prices
    assert event["detail"]["metadata"]["schema_version"] == 1
    assert "currency" not in event["detail"]["data"]
    assert all(set(line) == {"product_id", "quantity"} for line in event["detail"]["data"]["lines"])


@pytest.mark.parametrize("schema_version", [1, 2])
def test_inventory_reserves_for_an_order_of_either_version(
    stack: Stack, functions: FunctionRunner, monkeypatch: pytest.MonkeyPatch, schema_version: int
) -> None:
    # GIVEN stock, and an OrderPlaced of schema v1 (an orders publisher not yet upgraded) or v2
    set_stock(functions, "p1", 5)
    set_stock(functions, "p2", 5)
    assert place_order(functions, PRICED)[0] == 201
    monkeypatch.setenv("EMIT_SCHEMA_VERSIONS", f"OrderPlaced={schema_version}")
    [event] = publish_orders(stack, functions)
    # WHEN inventory consumes it
    assert consume(functions, "InventoryConsumerFunction", event) == []
    # THEN the order is reserved the same way, and the reservation holds quantities, not prices
    item = reservation(stack, event["detail"]["data"]["order_id"])
    assert item is not None
    assert item["status"] == "RESERVED"
    assert item["lines"] == [{"product_id": "p1", "quantity": 2}, {"product_id": "p2", "quantity": 1}]


@pytest.mark.parametrize("fixture", ["order-placed-v1", "order-placed-v2"])
def test_the_fixtures_of_both_versions_reserve(stack: Stack, functions: FunctionRunner, fixture: str) -> None:
    # GIVEN the committed sam-local fixture of OrderPlaced in each version, and its products in stock
    event = json.loads((EVENTS_DIR / f"InventoryConsumerFunction.{fixture}.json").read_text())
    body = json.loads(event["Records"][0]["body"])
    for line in body["detail"]["data"]["lines"]:
        set_stock(functions, line["product_id"], 100)
    # WHEN inventory consumes it THEN it is applied and reserves
    response = functions.invoke("InventoryConsumerFunction", event)
    assert response == {"batchItemFailures": []}
    item = reservation(stack, body["detail"]["data"]["order_id"])
    assert item is not None
    assert item["status"] == "RESERVED"


# ------------------------------------------------------------------ refused before anything is applied
def order_placed(order_id: str) -> DomainEvent:
    data = {**PRICED, "order_id": order_id, "customer_id": "cust-1", "status": "PENDING"}
    data["lines"] = [{**line, "unit_price": line.get("unit_price", 0)} for line in PRICED["lines"]]
    return domain_event("OrderPlaced", data)


def test_an_event_with_a_naive_timestamp_is_refused_with_nothing_applied(
    stack: Stack, functions: FunctionRunner, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN stock, and a batch of two OrderPlaced, one of them with an occurred_at without offset
    set_stock(functions, "p1", 5)
    set_stock(functions, "p2", 5)
    naive = eventbridge_event(order_placed("o-naive"))
    naive["detail"]["metadata"]["occurred_at"] = "2026-12-02T10:00:00"
    good = eventbridge_event(order_placed("o-good"))
    batch = sqs_event([json.dumps(naive), json.dumps(good)])
    # WHEN inventory consumes the batch
    response = functions.invoke("InventoryConsumerFunction", batch)
    # THEN only the naive one fails, and nothing of it was applied (no reservation, stock held for o-good only)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [batch["Records"][0]["messageId"]]
    assert reservation(stack, "o-naive") is None
    assert reservation(stack, "o-good") is not None
    p1 = stack.get_item("InventoryTable", "PRODUCT#p1", "PRODUCT")
    assert p1 is not None
    assert (p1["on_hand"], p1["reserved"]) == (5, 2)
    # AND the refusal is logged with its reason
    [logged] = [r for r in caplog.records if r.getMessage() == "rejected inbox record"]
    assert "metadata.occurred_at" in str(getattr(logged, "reason", ""))


def test_stock_that_does_not_add_up_is_refused_by_the_availability_projection(
    stack: Stack, functions: FunctionRunner, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a StockUpdated whose available is not on_hand - reserved
    event = eventbridge_event(
        domain_event("StockUpdated", {"product_id": "p1", "on_hand": 5, "reserved": 2, "available": 3})
    )
    event["detail"]["data"]["available"] = 5
    # WHEN notifications consumes it THEN it is refused, logged, and no availability is written
    assert len(consume(functions, "NotificationsConsumerFunction", event)) == 1
    assert stack.scan("NotificationsTable") == []
    assert any("available 5 is not on_hand - reserved" in str(getattr(r, "reason", "")) for r in caplog.records)

"""Inventory inbox under moto: OrderPlaced reserves all lines or none, OrderCancelled releases, idempotently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from converge.envelope import event_from_item
from converge.events import DomainEvent
from tests.support.events import domain_event, eventbridge_event, http_event, sqs_event, sqs_event_of
from tests.support.stack import FunctionRunner, Stack

CONSUMER = "InventoryConsumerFunction"
TABLE = "InventoryTable"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def order_event(
    event_type: str, order_id: str, lines: list[tuple[str, int]], *, version: int = 1, correlation_id: str = "corr-1"
) -> DomainEvent:
    status = {"OrderPlaced": "PENDING", "OrderCancelled": "CANCELLED"}[event_type]
    data = {
        "order_id": order_id,
        "customer_id": "cust-1",
        "status": status,
        "lines": [{"product_id": p, "quantity": q} for p, q in lines],
    }
    return domain_event(event_type, data, version=version, correlation_id=correlation_id)


def placed(order_id: str, lines: list[tuple[str, int]], **kwargs: Any) -> DomainEvent:
    return order_event("OrderPlaced", order_id, lines, **kwargs)


def cancelled(order_id: str, lines: list[tuple[str, int]], **kwargs: Any) -> DomainEvent:
    return order_event("OrderCancelled", order_id, lines, version=2, **kwargs)


def deliver(functions: FunctionRunner, *events: DomainEvent) -> list[str]:
    """Run one inbox batch; the message ids reported as failed."""
    response = functions.invoke(CONSUMER, sqs_event_of(*events))
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def stock(functions: FunctionRunner, **on_hand: int) -> None:
    """Set products' on-hand through the inventory API (as an operator would)."""
    for product_id, quantity in on_hand.items():
        event = http_event(
            "PUT",
            f"/products/{product_id}/stock",
            route="/products/{product_id}/stock",
            path_parameters={"product_id": product_id},
            body={"on_hand": quantity},
        )
        assert functions.invoke("InventoryApiFunction", event)["statusCode"] == 200


def product(stack: Stack, product_id: str) -> dict[str, Any]:
    item = stack.get_item(TABLE, f"PRODUCT#{product_id}", "PRODUCT")
    assert item is not None, product_id
    return item


def levels(stack: Stack, product_id: str) -> tuple[int, int, int, int]:
    item = product(stack, product_id)
    return item["on_hand"], item["reserved"], item["available"], item["version"]


def reservation(stack: Stack, order_id: str) -> dict[str, Any] | None:
    return stack.get_item(TABLE, f"RESERVATION#{order_id}", "RESERVATION")


def published_as(item: dict[str, Any] | None) -> tuple[str, int]:
    """The (event type, entity version) the stream publisher would emit for this item."""
    assert item is not None
    event = event_from_item(item)
    assert event is not None
    return event.event_type, event.metadata.entity_version


# ---------------------------------------------------------------- reserving
def test_order_placed_reserves_every_line_in_one_go(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 10 and p2 with 5 on hand
    stock(functions, p1=10, p2=5)
    stack.events_on_bus()
    # WHEN an order for 3 p1, 2 p2 and another 1 p1 is placed
    failures = deliver(functions, placed("o1", [("p1", 3), ("p2", 2), ("p1", 1)], correlation_id="corr-o1"))
    # THEN the record is applied
    assert failures == []
    # AND every product holds its (merged) quantity reserved, one version later, stamped with the order's correlation
    assert levels(stack, "p1") == (10, 4, 6, 2)
    assert levels(stack, "p2") == (5, 2, 3, 2)
    assert product(stack, "p1")["correlation_id"] == "corr-o1"
    assert published_as(product(stack, "p1")) == ("StockUpdated", 2)
    # AND the reservation records the order's lines
    item = reservation(stack, "o1")
    assert item is not None
    assert item["status"] == "RESERVED"
    assert item["lines"] == [
        {"product_id": "p1", "quantity": 3},
        {"product_id": "p2", "quantity": 2},
        {"product_id": "p1", "quantity": 1},
    ]
    assert (item["version"], item["correlation_id"], item["shortages"]) == (1, "corr-o1", [])
    assert published_as(item) == ("StockReserved", 1)
    # AND nothing went to the bus: events leave through the stream publisher, not from here
    assert stack.events_on_bus() == []


def test_insufficient_stock_on_one_line_reserves_nothing_and_records_the_failure(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN p1 with 10 and p2 with 1 on hand, and no p9
    stock(functions, p1=10, p2=1)
    # WHEN an order wants 3 p1, 2 p2 and 1 p9
    failures = deliver(functions, placed("o1", [("p1", 3), ("p2", 2), ("p9", 1)]))
    # THEN the record is applied (the failure is an outcome, not an error)
    assert failures == []
    # AND no product changed
    assert levels(stack, "p1") == (10, 0, 10, 1)
    assert levels(stack, "p2") == (1, 0, 1, 1)
    assert stack.get_item(TABLE, "PRODUCT#p9", "PRODUCT") is None
    # AND a FAILED reservation names every short product and why
    item = reservation(stack, "o1")
    assert item is not None
    assert (item["status"], item["shortages"], item["version"]) == ("FAILED", ["p2", "p9"], 1)
    assert "insufficient stock for p2" in item["reason"]
    assert "unknown product p9" in item["reason"]
    assert "p1" not in item["reason"]
    assert published_as(item) == ("StockReservationFailed", 1)


def test_duplicate_lines_beyond_the_per_line_maximum_reserve_and_release(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN 20 000 of p1 and an order with two lines of 6 000 p1 (each within the 10 000 per-line maximum)
    stock(functions, p1=20_000)
    lines = [("p1", 6_000), ("p1", 6_000)]
    # WHEN it is placed
    assert deliver(functions, placed("o1", lines)) == []
    # THEN 12 000 are reserved and the reservation is still a valid StockReserved event
    assert levels(stack, "p1") == (20_000, 12_000, 8_000, 2)
    assert published_as(reservation(stack, "o1")) == ("StockReserved", 1)
    # AND cancelling gives all of it back
    assert deliver(functions, cancelled("o1", lines)) == []
    assert levels(stack, "p1") == (20_000, 0, 20_000, 3)
    assert published_as(reservation(stack, "o1")) == ("StockReleased", 2)


def test_competing_orders_never_reserve_more_than_on_hand(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 5 on hand
    stock(functions, p1=5)
    # WHEN two orders of 3 arrive in one batch
    failures = deliver(functions, placed("o1", [("p1", 3)]), placed("o2", [("p1", 3)]))
    # THEN the first is reserved, the second fails, and reserved stays within on-hand
    assert failures == []
    assert levels(stack, "p1") == (5, 3, 2, 2)
    assert [reservation(stack, o)["status"] for o in ("o1", "o2")] == ["RESERVED", "FAILED"]  # type: ignore[index]


def test_redelivered_order_placed_reserves_once(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 10 on hand and an order for 3 already reserved
    stock(functions, p1=10)
    event = placed("o1", [("p1", 3)])
    assert deliver(functions, event) == []
    before = (product(stack, "p1"), reservation(stack, "o1"))
    # WHEN the same event arrives again, alone and then twice in one batch
    assert deliver(functions, event) == []
    assert deliver(functions, event, event) == []
    # THEN nothing changed: 3 reserved, reservation still version 1
    assert (product(stack, "p1"), reservation(stack, "o1")) == before
    assert levels(stack, "p1") == (10, 3, 7, 2)


def test_duplicate_in_first_batch_reserves_once(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 10 on hand
    stock(functions, p1=10)
    event = placed("o1", [("p1", 3)])
    # WHEN the first delivery of an OrderPlaced holds it twice
    assert deliver(functions, event, event) == []
    # THEN it is reserved once
    assert levels(stack, "p1") == (10, 3, 7, 2)
    assert reservation(stack, "o1")["version"] == 1  # type: ignore[index]


def test_redelivered_failed_order_stays_failed_even_after_restock(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order that failed for lack of p1
    stock(functions, p1=1)
    event = placed("o1", [("p1", 3)])
    deliver(functions, event)
    # WHEN p1 is restocked and the same OrderPlaced is redelivered
    stock(functions, p1=10)
    assert deliver(functions, event) == []
    # THEN the outcome already announced stands: nothing is reserved
    assert levels(stack, "p1") == (10, 0, 10, 2)
    assert reservation(stack, "o1")["status"] == "FAILED"  # type: ignore[index]


# ---------------------------------------------------------------- releasing
def test_order_cancelled_releases_the_reservation_once(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order reserving 3 p1 and 2 p2
    stock(functions, p1=10, p2=5)
    deliver(functions, placed("o1", [("p1", 3), ("p2", 2)]))
    # WHEN it is cancelled
    assert deliver(functions, cancelled("o1", [("p1", 3), ("p2", 2)], correlation_id="corr-cancel")) == []
    # THEN its stock is given back
    assert levels(stack, "p1") == (10, 0, 10, 3)
    assert levels(stack, "p2") == (5, 0, 5, 3)
    assert published_as(product(stack, "p2")) == ("StockUpdated", 3)
    # AND the reservation is RELEASED at version 2 with the cancellation's correlation id
    item = reservation(stack, "o1")
    assert item is not None
    assert (item["status"], item["version"], item["correlation_id"]) == ("RELEASED", 2, "corr-cancel")
    assert published_as(item) == ("StockReleased", 2)
    after = (product(stack, "p1"), product(stack, "p2"), item)
    # AND a redelivered cancellation changes nothing
    assert deliver(functions, cancelled("o1", [("p1", 3), ("p2", 2)])) == []
    assert (product(stack, "p1"), product(stack, "p2"), reservation(stack, "o1")) == after


def test_cancel_before_place_leaves_a_tombstone_and_the_late_placement_reserves_nothing(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN p1 with 10 on hand
    stock(functions, p1=10)
    # WHEN the cancellation of o1 overtakes its placement
    assert deliver(functions, cancelled("o1", [("p1", 3)])) == []
    # THEN a RELEASED tombstone is written and no stock moves
    tomb = reservation(stack, "o1")
    assert tomb is not None
    assert (tomb["status"], tomb["version"]) == ("RELEASED", 1)
    assert published_as(tomb) == ("StockReleased", 1)
    assert levels(stack, "p1") == (10, 0, 10, 1)
    # AND when the placement finally arrives, nothing is reserved
    assert deliver(functions, placed("o1", [("p1", 3)])) == []
    assert levels(stack, "p1") == (10, 0, 10, 1)
    assert reservation(stack, "o1") == tomb


def test_cancelling_a_failed_reservation_changes_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order whose reservation failed
    stock(functions, p1=1)
    deliver(functions, placed("o1", [("p1", 3)]))
    before = (product(stack, "p1"), reservation(stack, "o1"))
    # WHEN it is cancelled
    assert deliver(functions, cancelled("o1", [("p1", 3)])) == []
    # THEN there was nothing to release
    assert (product(stack, "p1"), reservation(stack, "o1")) == before


# ---------------------------------------------------------------- bad records and failures
def test_batch_reports_exactly_the_bad_records(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 in stock, and a batch of a non-JSON body, an event type inventory does not consume, and a good order
    stock(functions, p1=10)
    foreign = eventbridge_event(placed("o9", [("p1", 1)]))
    foreign["detail-type"] = "OrderShipped"
    good = json.dumps(eventbridge_event(placed("o1", [("p1", 2)])))
    batch = sqs_event(["{not json", json.dumps(foreign), good])
    ids = [r["messageId"] for r in batch["Records"]]
    # WHEN the batch is consumed
    response = functions.invoke(CONSUMER, batch)
    # THEN exactly the two bad records are failed, and the good one is applied
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(ids[:2])
    assert levels(stack, "p1") == (10, 2, 8, 2)
    assert reservation(stack, "o1")["status"] == "RESERVED"  # type: ignore[index]
    assert reservation(stack, "o9") is None


def test_dynamodb_errors_fail_the_record_for_a_retry(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the table is gone (any ClientError other than a refused condition)
    boto3.client("dynamodb").delete_table(TableName=stack.table(TABLE))
    event = placed("o1", [("p1", 1)])
    # WHEN an order arrives
    response = functions.invoke(CONSUMER, sqs_event_of(event))
    # THEN the record is reported failed, so SQS retries it (and parks it in the DLQ eventually)
    assert len(response["batchItemFailures"]) == 1


# ---------------------------------------------------------------- sam local fixtures
def fixture(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{CONSUMER}.{name}.json").read_text())  # type: ignore[no-any-return]


def test_sam_fixtures_reserve_then_release(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the products the fixtures order are in stock
    stock(functions, **{"sku-123": 10, "sku-456": 10})
    # WHEN the committed order-placed fixture is consumed
    placed_response = functions.invoke(CONSUMER, fixture("order-placed"))
    # THEN its lines are reserved
    assert placed_response["batchItemFailures"] == []
    assert levels(stack, "sku-123")[1] == 2
    assert reservation(stack, "ord-1001")["status"] == "RESERVED"  # type: ignore[index]
    # AND the committed order-cancelled fixture gives them back
    assert functions.invoke(CONSUMER, fixture("order-cancelled"))["batchItemFailures"] == []
    assert levels(stack, "sku-123")[1] == 0
    assert reservation(stack, "ord-1001")["status"] == "RELEASED"  # type: ignore[index]


@pytest.mark.parametrize("name", ["order-placed", "order-cancelled"])
def test_sam_fixtures_apply_on_an_empty_table(stack: Stack, functions: FunctionRunner, name: str) -> None:
    # GIVEN an empty inventory
    # WHEN a fixture is consumed
    response = functions.invoke(CONSUMER, fixture(name))
    # THEN it is applied: a FAILED reservation (unknown products) or a RELEASED tombstone
    assert response["batchItemFailures"] == []
    expected = {"order-placed": "FAILED", "order-cancelled": "RELEASED"}[name]
    assert reservation(stack, "ord-1001")["status"] == expected  # type: ignore[index]

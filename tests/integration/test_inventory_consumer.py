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


def confirmed_cancellation(order_id: str, lines: list[tuple[str, int]], **kwargs: Any) -> DomainEvent:
    """The OrderCancelled of an order that had been confirmed (version 3: placed, confirmed, cancelled)."""
    data = {
        "order_id": order_id,
        "customer_id": "cust-1",
        "status": "CANCELLED",
        "confirmed": True,
        "lines": [{"product_id": p, "quantity": q} for p, q in lines],
    }
    return domain_event("OrderCancelled", data, version=3, **kwargs)


def shipment(event_type: str, order_id: str, lines: list[tuple[str, int]], **kwargs: Any) -> DomainEvent:
    status, version = {"ShipmentDispatched": ("DISPATCHED", 2), "ShipmentCancelled": ("CANCELLED", 2)}[event_type]
    data = {
        "order_id": order_id,
        "customer_id": "cust-1",
        "status": status,
        "lines": [{"product_id": p, "quantity": q} for p, q in lines],
    }
    return domain_event(event_type, data, version=version, **kwargs)


def dispatched(order_id: str, lines: list[tuple[str, int]], **kwargs: Any) -> DomainEvent:
    return shipment("ShipmentDispatched", order_id, lines, **kwargs)


def shipment_cancelled(order_id: str, lines: list[tuple[str, int]], **kwargs: Any) -> DomainEvent:
    return shipment("ShipmentCancelled", order_id, lines, **kwargs)


def reserved_for(functions: FunctionRunner, order_id: str, lines: list[tuple[str, int]]) -> None:
    assert deliver(functions, placed(order_id, lines)) == []


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
            caller="warehouse-1",
            admin=True,  # stock is the warehouse's (the admin group)
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
def releasing(by: str, order_id: str, lines: list[tuple[str, int]], **kwargs: Any) -> DomainEvent:
    """The event that releases a reservation: the cancellation of an order never confirmed, or shipping's
    ShipmentCancelled for a confirmed one (inventory leaves that order's own cancellation to shipping)."""
    if by == "OrderCancelled":
        return cancelled(order_id, lines, **kwargs)
    return shipment_cancelled(order_id, lines, **kwargs)


RELEASERS = ["OrderCancelled", "ShipmentCancelled"]


@pytest.mark.parametrize("by", RELEASERS)
def test_a_cancellation_releases_the_reservation_once(stack: Stack, functions: FunctionRunner, by: str) -> None:
    # GIVEN an order reserving 3 p1 and 2 p2 (if confirmed, its own cancellation was left to shipping)
    stock(functions, p1=10, p2=5)
    deliver(functions, placed("o1", [("p1", 3), ("p2", 2)]))
    if by == "ShipmentCancelled":
        assert deliver(functions, confirmed_cancellation("o1", [("p1", 3), ("p2", 2)])) == []
        assert levels(stack, "p1") == (10, 3, 7, 2)
    # WHEN it is cancelled (by the order, never confirmed, or by shipping)
    assert deliver(functions, releasing(by, "o1", [("p1", 3), ("p2", 2)], correlation_id="corr-cancel")) == []
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
    assert deliver(functions, releasing(by, "o1", [("p1", 3), ("p2", 2)])) == []
    assert (product(stack, "p1"), product(stack, "p2"), reservation(stack, "o1")) == after


@pytest.mark.parametrize("by", RELEASERS)
def test_cancel_before_place_leaves_a_tombstone_and_the_late_placement_reserves_nothing(
    stack: Stack, functions: FunctionRunner, by: str
) -> None:
    # GIVEN p1 with 10 on hand
    stock(functions, p1=10)
    # WHEN the cancellation of o1 (by the order, or by shipping) overtakes its placement
    assert deliver(functions, releasing(by, "o1", [("p1", 3)])) == []
    # THEN a RELEASED tombstone is written and no stock moves
    tomb = reservation(stack, "o1")
    assert tomb is not None
    assert (tomb["status"], tomb["version"], tomb["reason"]) == (
        "RELEASED",
        1,
        "order cancelled before it was reserved",
    )
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
    placed_response = functions.invoke(CONSUMER, fixture("order-placed-v1"))
    # THEN its lines are reserved
    assert placed_response["batchItemFailures"] == []
    assert levels(stack, "sku-123")[1] == 2
    assert reservation(stack, "ord-1001")["status"] == "RESERVED"  # type: ignore[index]
    # AND the committed order-cancelled fixture gives them back
    assert functions.invoke(CONSUMER, fixture("order-cancelled"))["batchItemFailures"] == []
    assert levels(stack, "sku-123")[1] == 0
    assert reservation(stack, "ord-1001")["status"] == "RELEASED"  # type: ignore[index]


@pytest.mark.parametrize("name", ["order-placed-v1", "order-placed-v2", "order-cancelled"])
def test_sam_fixtures_apply_on_an_empty_table(stack: Stack, functions: FunctionRunner, name: str) -> None:
    # GIVEN an empty inventory
    # WHEN a fixture is consumed
    response = functions.invoke(CONSUMER, fixture(name))
    # THEN it is applied: a FAILED reservation (unknown products) or a RELEASED tombstone
    assert response["batchItemFailures"] == []
    expected = {"order-placed-v1": "FAILED", "order-placed-v2": "FAILED", "order-cancelled": "RELEASED"}[name]
    assert reservation(stack, "ord-1001")["status"] == expected  # type: ignore[index]


# ---------------------------------------------------------------- shipping: the arbiter of confirmed orders
def test_cancellation_of_a_confirmed_order_is_left_to_shipping(
    stack: Stack, functions: FunctionRunner, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an order reserving 3 p1
    stock(functions, p1=10)
    reserved_for(functions, "o1", [("p1", 3)])
    before = (product(stack, "p1"), reservation(stack, "o1"))
    # WHEN its cancellation arrives saying it had been confirmed
    failures = deliver(functions, confirmed_cancellation("o1", [("p1", 3)]))
    # THEN it is not a failure, nothing is released (shipping decides), and the log says so
    assert failures == []
    assert (product(stack, "p1"), reservation(stack, "o1")) == before
    assert any("left to shipping" in r.getMessage() for r in caplog.records)


def test_cancellation_of_a_confirmed_order_never_reserved_here_writes_no_tombstone(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN no reservation for o1 WHEN its confirmed cancellation arrives THEN nothing is written: shipping decides
    assert deliver(functions, confirmed_cancellation("o1", [("p1", 3)])) == []
    assert reservation(stack, "o1") is None


def test_shipment_dispatched_consumes_the_reservation_in_one_transaction(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN an order reserving 3+1 p1 and 2 p2, beside another order reserving 1 p1
    stock(functions, p1=10, p2=5)
    lines = [("p1", 3), ("p2", 2), ("p1", 1)]
    reserved_for(functions, "o1", lines)
    reserved_for(functions, "o2", [("p1", 1)])
    assert levels(stack, "p1") == (10, 5, 5, 3)
    stack.events_on_bus()
    # WHEN its parcel is dispatched
    assert deliver(functions, dispatched("o1", lines, correlation_id="corr-dispatch")) == []
    # THEN on_hand and reserved both drop by the order's quantities, available is unchanged, one version on
    assert levels(stack, "p1") == (6, 1, 5, 4)
    assert levels(stack, "p2") == (3, 0, 3, 3)
    assert published_as(product(stack, "p1")) == ("StockUpdated", 4)
    assert product(stack, "p1")["correlation_id"] == "corr-dispatch"
    # AND the reservation is SHIPPED at version 2 (StockShipped), keeping its lines; o2's is untouched
    item = reservation(stack, "o1")
    assert item is not None
    assert (item["status"], item["version"], item["correlation_id"]) == ("SHIPPED", 2, "corr-dispatch")
    assert published_as(item) == ("StockShipped", 2)
    assert [(line["product_id"], line["quantity"]) for line in item["lines"]] == lines
    assert reservation(stack, "o2")["status"] == "RESERVED"  # type: ignore[index]
    # AND nothing went to the bus from here: the stream publisher sends the items' events
    assert stack.events_on_bus() == []


def test_a_duplicate_dispatch_consumes_once(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order whose 3 p1 were shipped
    stock(functions, p1=10)
    reserved_for(functions, "o1", [("p1", 3)])
    event = dispatched("o1", [("p1", 3)])
    assert deliver(functions, event) == []
    before = (product(stack, "p1"), reservation(stack, "o1"))
    # WHEN the same dispatch arrives again, alone and twice in one batch
    assert deliver(functions, event) == []
    assert deliver(functions, event, event) == []
    # THEN it is skipped: stock left once
    assert (product(stack, "p1"), reservation(stack, "o1")) == before
    assert levels(stack, "p1") == (7, 0, 7, 3)


@pytest.mark.parametrize("held", ["released", "failed", "absent"])
def test_a_dispatch_of_stock_not_held_fails_the_record_and_changes_nothing(
    stack: Stack, functions: FunctionRunner, caplog: pytest.LogCaptureFixture, held: str
) -> None:
    # GIVEN p1 with 2 reserved by o2, and o1's reservation released, failed or absent (drifted, or a forged event)
    stock(functions, p1=5)
    reserved_for(functions, "o2", [("p1", 2)])
    if held == "released":
        reserved_for(functions, "o1", [("p1", 3)])
        deliver(functions, cancelled("o1", [("p1", 3)]))
    elif held == "failed":
        reserved_for(functions, "o1", [("p1", 30)])
    before = (product(stack, "p1"), reservation(stack, "o1"))
    caplog.clear()
    # WHEN a dispatch of o1 arrives
    failures = deliver(functions, dispatched("o1", [("p1", 3)]))
    # THEN the record is a batch item failure (redriven, then parked in the DLQ), nothing changed, and the
    #      reason is logged
    assert len(failures) == 1
    assert (product(stack, "p1"), reservation(stack, "o1")) == before
    assert levels(stack, "p1")[:3] == (5, 2, 3)
    [logged] = [r for r in caplog.records if r.getMessage() == "failed to apply event"]
    assert "dispatched stock was not held" in vars(logged)["reason"]


def test_a_late_shipment_cancelled_does_not_release_shipped_stock(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order whose 3 p1 left with its parcel
    stock(functions, p1=10)
    reserved_for(functions, "o1", [("p1", 3)])
    deliver(functions, dispatched("o1", [("p1", 3)]))
    before = (product(stack, "p1"), reservation(stack, "o1"))
    # WHEN a shipment cancellation arrives anyway (a dispatch is final: forged or out of order)
    # THEN it is skipped: stock is never both shipped and given back
    assert deliver(functions, shipment_cancelled("o1", [("p1", 3)])) == []
    assert (product(stack, "p1"), reservation(stack, "o1")) == before


CROSSING_LINES = [("p1", 3), ("p2", 2)]


def _crossing_end_state(stack: Stack) -> tuple[tuple[int, int, int], tuple[int, int, int], str, int, int]:
    p1, p2 = levels(stack, "p1"), levels(stack, "p2")
    held = sum(
        line["quantity"]
        for item in stack.scan(TABLE)
        if item["pk"].startswith("RESERVATION#") and item["status"] == "RESERVED"
        for line in item["lines"]
    )
    shipped = reservation(stack, "o1")
    assert shipped is not None
    return p1[:3], p2[:3], shipped["status"], p1[1] + p2[1], held


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        # dispatch wins: o1's stock left once (on_hand 10-3 and 5-2), nothing was given back
        ("ShipmentDispatched", ((7, 1, 6), (3, 0, 3), "SHIPPED")),
        # shipping cancelled before dispatch: o1's stock is back exactly once, on_hand never moved
        ("ShipmentCancelled", ((10, 1, 9), (5, 0, 5), "RELEASED")),
    ],
)
@pytest.mark.parametrize("arrival", ["cancel first", "shipping's decision first"])
def test_a_confirmed_cancellation_and_shippings_decision_conserve_stock_in_either_order(
    stack: Stack, functions: FunctionRunner, decision: str, expected: tuple[Any, ...], arrival: str
) -> None:
    # GIVEN o1 reserving 3 p1 and 2 p2, and o2 reserving 1 p1 (10 p1 and 5 p2 on hand)
    stock(functions, p1=10, p2=5)
    reserved_for(functions, "o1", CROSSING_LINES)
    reserved_for(functions, "o2", [("p1", 1)])
    # WHEN o1's confirmed cancellation and shipping's decision (dispatch, or shipment cancelled) cross, arriving
    #      in either order, each delivered twice
    cancel, decided = confirmed_cancellation("o1", CROSSING_LINES), shipment(decision, "o1", CROSSING_LINES)
    events = [cancel, decided] if arrival == "cancel first" else [decided, cancel]
    for event in [*events, *events]:
        assert deliver(functions, event) == []
    # THEN shipping's decision stands whichever came first, o2 still holds its 1 p1, and every product's reserved
    #      is exactly what the RESERVED reservations hold
    p1, p2, status, reserved_total, held = _crossing_end_state(stack)
    assert (p1, p2, status) == expected
    assert reserved_total == held == 1

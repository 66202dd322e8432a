"""ShippingConsumerFunction under moto: confirmed orders get a shipment, cancelled ones cancel it (dispatch wins)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from converge import aws
from converge.consumer import Outcome
from converge.envelope import event_from_item, parse_detail
from converge.events import SHIPMENT_EVENT_BY_STATUS, ShipmentStatus
from converge.reconcile_index import bucket_of
from tests.support.events import domain_event, eventbridge_event, http_event, sqs_event, sqs_event_of
from tests.support.stack import FunctionRunner, Stack, lambda_stream_event

CONSUMER = "ShippingConsumerFunction"
API = "ShippingApiFunction"
PUBLISHER = "ShippingPublisherFunction"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
LINES = [{"product_id": "sku-1", "quantity": 2}, {"product_id": "sku-2", "quantity": 1}]


def order_data(order_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"order_id": order_id, "customer_id": "cust-1", "lines": LINES, "status": status, **extra}


def confirmed(order_id: str, version: int = 2, correlation_id: str = "corr-confirm") -> Any:
    return domain_event(
        "OrderConfirmed", order_data(order_id, "CONFIRMED"), version=version, correlation_id=correlation_id
    )


def cancelled(
    order_id: str, version: int = 3, *, was_confirmed: bool = True, correlation_id: str = "corr-cancel"
) -> Any:
    data = order_data(order_id, "CANCELLED", confirmed=was_confirmed)
    return domain_event("OrderCancelled", data, version=version, correlation_id=correlation_id)


def deliver(functions: FunctionRunner, *events: Any) -> list[str]:
    """Deliver events in one inbox batch; the ids of the records reported as failures."""
    result = functions.invoke(CONSUMER, sqs_event_of(*events))
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def dispatch(functions: FunctionRunner, order_id: str) -> int:
    event = http_event(
        "POST",
        f"/shipments/{order_id}/dispatch",
        route="/shipments/{order_id}/dispatch",
        path_parameters={"order_id": order_id},
        caller="warehouse-1",
        admin=True,  # the warehouse dispatches
    )
    return int(functions.invoke(API, event)["statusCode"])


def stored(stack: Stack, order_id: str) -> dict[str, Any] | None:
    return stack.get_item("ShipmentsTable", f"SHIPMENT#{order_id}", "SHIPMENT")


def shipment(stack: Stack, order_id: str) -> dict[str, Any]:
    item = stored(stack, order_id)
    assert item is not None
    return item


def summary(item: dict[str, Any]) -> tuple[str, int, int, str]:
    """What a shipment item says of itself: status, its own version, the order version applied, its event type."""
    return (item["status"], item["version"], item["order_version"], item["event_type"])


def published_as(item: dict[str, Any]) -> tuple[str, int, str, str]:
    """What the stream publisher makes of the item: event type, entity version, entity id, correlation id."""
    event = event_from_item(item)
    assert event is not None
    metadata = event.metadata
    return (event.event_type, metadata.entity_version, metadata.entity_id, metadata.correlation_id)


# ----------------------------------------------------------------------------------------------- OrderConfirmed
def test_order_confirmed_creates_a_pending_shipment(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no shipment
    # WHEN an OrderConfirmed (order version 2) arrives
    failures = deliver(functions, confirmed("o-1", correlation_id="saga-1"))
    # THEN a PENDING shipment exists at version 1, a ShipmentCreated carrying the event's correlation id
    assert failures == []
    item = shipment(stack, "o-1")
    assert summary(item) == ("PENDING", 1, 2, "ShipmentCreated")
    assert (item["customer_id"], item["lines"]) == ("cust-1", LINES)
    assert "reason" not in item
    assert item["created_at"] == item["updated_at"]
    # AND it carries the reconciler's changed-since bucket, as every entity item does
    assert item["recon_bucket"] == bucket_of("SHIPMENT#o-1")
    assert published_as(item) == ("ShipmentCreated", 1, "o-1", "saga-1")


def test_duplicate_order_confirmed_changes_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a shipment created by an OrderConfirmed
    event = confirmed("o-2")
    deliver(functions, event)
    before = shipment(stack, "o-2")
    # WHEN the same event is delivered again (and again in one batch)
    failures = deliver(functions, event, event)
    # THEN it is skipped, not failed, and the shipment is unchanged (no new version, no new event)
    assert failures == []
    assert shipment(stack, "o-2") == before


# ----------------------------------------------------------------------------------------------- OrderCancelled
def test_order_cancelled_cancels_a_pending_shipment(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a PENDING shipment of a confirmed order
    deliver(functions, confirmed("o-4"))
    # WHEN the order is cancelled (order version 3)
    failures = deliver(functions, cancelled("o-4", correlation_id="support-1"))
    # THEN the shipment is CANCELLED at version 2, a ShipmentCancelled carrying the cancel's correlation id
    assert failures == []
    item = shipment(stack, "o-4")
    assert summary(item) == ("CANCELLED", 2, 3, "ShipmentCancelled")
    assert item["reason"] == "order cancelled before its parcel left"
    assert published_as(item) == ("ShipmentCancelled", 2, "o-4", "support-1")


@pytest.mark.parametrize("late", ["OrderCancelled", "OrderConfirmed"])
def test_a_dispatched_shipment_stays_dispatched(stack: Stack, functions: FunctionRunner, late: str) -> None:
    # GIVEN a shipment whose parcel left
    deliver(functions, confirmed("o-5"))
    assert dispatch(functions, "o-5") == 200
    before = shipment(stack, "o-5")
    # WHEN the order's cancellation arrives after the dispatch (they crossed), or a late confirmation does
    failures = deliver(functions, cancelled("o-5") if late == "OrderCancelled" else confirmed("o-5"))
    # THEN dispatch wins: the shipment is unchanged and still DISPATCHED, nothing is failed
    assert failures == []
    assert shipment(stack, "o-5") == before
    assert summary(before) == ("DISPATCHED", 2, 2, "ShipmentDispatched")


def test_cancel_before_confirm_leaves_a_tombstone_and_the_late_confirm_creates_nothing(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN an order confirmed (v2) then cancelled (v3), the cancellation delivered first
    # WHEN the cancellation and then the late confirmation are consumed (in one batch, in that order)
    failures = deliver(functions, cancelled("o-6"), confirmed("o-6"))
    # THEN a CANCELLED tombstone exists at version 1, and the late confirmation did not revive it
    assert failures == []
    item = shipment(stack, "o-6")
    assert summary(item) == ("CANCELLED", 1, 3, "ShipmentCancelled")
    assert item["reason"] == "order cancelled before its shipment was created"
    assert published_as(item)[:2] == ("ShipmentCancelled", 1)
    # AND the warehouse cannot dispatch it
    assert dispatch(functions, "o-6") == 409


def test_cancel_of_an_order_never_confirmed_makes_no_shipment(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no shipment WHEN an order cancelled while PENDING (never confirmed) is consumed
    failures = deliver(functions, cancelled("o-7", version=2, was_confirmed=False))
    # THEN it is skipped and no shipment (not even a tombstone) is made
    assert failures == []
    assert stack.scan("ShipmentsTable") == []


def test_duplicate_cancellation_changes_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a shipment cancelled by an OrderCancelled
    deliver(functions, confirmed("o-8"))
    event = cancelled("o-8")
    deliver(functions, event)
    before = shipment(stack, "o-8")
    # WHEN the cancellation is delivered again
    failures = deliver(functions, event)
    # THEN nothing changes
    assert failures == []
    assert shipment(stack, "o-8") == before
    assert before["version"] == 2


@pytest.mark.parametrize(
    "order",
    [
        ["confirm", "cancel"],
        ["cancel", "confirm"],
        ["confirm", "confirm", "cancel", "cancel"],
        ["cancel", "cancel", "confirm", "confirm"],
    ],
)
def test_any_delivery_order_ends_cancelled(stack: Stack, functions: FunctionRunner, order: list[str]) -> None:
    # GIVEN an order confirmed then cancelled WHEN its events arrive in any order, duplicated or not
    events = {"confirm": confirmed("o-9"), "cancel": cancelled("o-9")}
    for name in order:
        assert deliver(functions, events[name]) == []
    # THEN the shipment ends CANCELLED (its stock is released) and the warehouse cannot dispatch it
    assert shipment(stack, "o-9")["status"] == "CANCELLED"
    assert dispatch(functions, "o-9") == 409


# ----------------------------------------------------------------------------------------------- races
def _race_before(stack: Stack, operation: str, write: dict[str, Any]) -> None:
    """Make another writer put `write` over the shipment (or create it) just before the next `operation` call."""
    client = aws.dynamodb()

    def write_first(**_: Any) -> None:
        client.meta.events.unregister(f"before-call.dynamodb.{operation}", write_first)
        existing = stored(stack, write["order_id"]) or {}
        status = ShipmentStatus(write["status"])
        item = {
            "pk": f"SHIPMENT#{write['order_id']}",
            "sk": "SHIPMENT",
            "customer_id": "cust-1",
            "lines": LINES,
            "correlation_id": "other-writer",
            "created_at": "2026-11-28T10:00:00+00:00",
            "updated_at": "2026-11-28T10:00:01+00:00",
            "order_version": 2,
            **existing,
            **write,
            "event_type": SHIPMENT_EVENT_BY_STATUS[status],
        }
        stack.put_item("ShipmentsTable", item)

    client.meta.events.register(f"before-call.dynamodb.{operation}", write_first)


def test_cancel_racing_a_dispatch_rereads_and_dispatch_wins(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a PENDING shipment, and a dispatch that lands between the cancellation's read and its write
    deliver(functions, confirmed("o-10"))
    _race_before(stack, "UpdateItem", {"order_id": "o-10", "status": "DISPATCHED", "version": 2})
    # WHEN the cancellation is consumed
    failures = deliver(functions, cancelled("o-10"))
    # THEN the lost race is decided again on fresh state: the dispatch stands, nothing is failed
    assert failures == []
    item = shipment(stack, "o-10")
    assert (item["status"], item["version"]) == ("DISPATCHED", 2)


def test_tombstone_racing_a_creation_rereads_and_cancels_the_created_shipment(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN no shipment, and a creation (by a concurrent OrderConfirmed) that lands before the tombstone's put
    _race_before(stack, "PutItem", {"order_id": "o-11", "status": "PENDING", "version": 1})
    # WHEN the cancellation is consumed
    failures = deliver(functions, cancelled("o-11"))
    # THEN the put is refused and, on fresh state, the PENDING shipment is cancelled at version 2
    assert failures == []
    item = shipment(stack, "o-11")
    assert (item["status"], item["version"], item["order_version"]) == ("CANCELLED", 2, 3)


def test_routes_report_applied_and_stale(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the consumer's route, with the table the template gives the function
    from shipping import service
    from shipping.store import ShipmentStore

    shipments = ShipmentStore(stack.table("ShipmentsTable"))
    # WHEN a confirmation is applied twice, then a cancellation twice, then one of an order never confirmed
    events = [
        confirmed("o-12"),
        confirmed("o-12"),
        cancelled("o-12"),
        cancelled("o-12"),
        cancelled("o-13", version=2, was_confirmed=False),
    ]
    outcomes = [service.apply_order_event(event.data, event, shipments) for event in events]
    # THEN the first of each is applied and the rest are stale
    assert outcomes == [Outcome.APPLIED, Outcome.STALE, Outcome.APPLIED, Outcome.STALE, Outcome.STALE]


# ----------------------------------------------------------------------------------------------- batches
def test_events_shipping_does_not_consume_are_batch_item_failures(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a batch of: an order event shipping is not routed (OrderPlaced), a stock event, a malformed body,
    #       an OrderConfirmed without lines, and a good OrderConfirmed
    placed = domain_event("OrderPlaced", order_data("o-14", "PENDING"))
    stock = domain_event("StockUpdated", {"product_id": "sku-1", "on_hand": 5, "reserved": 0, "available": 5})
    invalid = eventbridge_event(confirmed("o-14"))
    del invalid["detail"]["data"]["lines"]
    bodies = [
        json.dumps(eventbridge_event(placed)),
        json.dumps(eventbridge_event(stock)),
        "{not json",
        json.dumps(invalid),
        json.dumps(eventbridge_event(confirmed("o-14"))),
    ]
    batch = sqs_event(bodies)
    # WHEN the batch is consumed
    result = functions.invoke(CONSUMER, batch)
    # THEN exactly the four bad records are reported, and the good one is applied
    ids = [r["messageId"] for r in batch["Records"]]
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(ids[:4])
    assert [i["order_id"] for i in stack.scan("ShipmentsTable")] == ["o-14"]


# ----------------------------------------------------------------------------------------------- publishing
def test_the_stream_publishes_created_dispatched_and_cancelled(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a shipment created then dispatched, and another created then cancelled, and a tombstone
    deliver(functions, confirmed("o-15"), confirmed("o-16"), cancelled("o-17"))
    assert dispatch(functions, "o-15") == 200
    deliver(functions, cancelled("o-16"))
    # WHEN the shipping publisher receives the table's stream
    response = functions.invoke(PUBLISHER, lambda_stream_event(stack, "ShipmentsTable"))
    # THEN every write is on the bus from converge.shipping as the shipment event of its status and version
    assert response == {"batchItemFailures": []}
    published = []
    for raw in stack.events_on_bus():
        assert raw["source"] == "converge.shipping"
        event = parse_detail(raw["detail-type"], raw["detail"])
        assert (event.metadata.producer, event.metadata.entity) == ("shipping", "shipment")
        published.append((event.metadata.entity_id, event.event_type, event.metadata.entity_version))
    assert sorted(published) == [
        ("o-15", "ShipmentCreated", 1),
        ("o-15", "ShipmentDispatched", 2),
        ("o-16", "ShipmentCancelled", 2),
        ("o-16", "ShipmentCreated", 1),
        ("o-17", "ShipmentCancelled", 1),
    ]


# ----------------------------------------------------------------------------------------------- fixtures
def fixture(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{CONSUMER}.{name}.json").read_text())  # type: ignore[no-any-return]


def test_committed_order_confirmed_fixture_creates_the_fixture_shipment(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN the committed OrderConfirmed fixture (the order the OrdersApiFunction place-order fixture creates)
    # WHEN it is consumed, twice
    first = functions.invoke(CONSUMER, fixture("order-confirmed"))
    second = functions.invoke(CONSUMER, fixture("order-confirmed"))
    # THEN one PENDING shipment exists, with the fixture's correlation id
    assert first == second == {"batchItemFailures": []}
    [item] = stack.scan("ShipmentsTable")
    assert (item["status"], item["version"], item["correlation_id"]) == ("PENDING", 1, "checkout-7f3a9c")
    assert published_as(item)[:2] == ("ShipmentCreated", 1)


def test_committed_order_cancelled_fixture_leaves_a_tombstone(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the committed OrderCancelled fixture: an order confirmed, then cancelled before its shipment existed
    # WHEN it is consumed
    result = functions.invoke(CONSUMER, fixture("order-cancelled"))
    # THEN a CANCELLED tombstone stands for it
    assert result == {"batchItemFailures": []}
    [item] = stack.scan("ShipmentsTable")
    assert (item["status"], item["version"], item["reason"]) == (
        "CANCELLED",
        1,
        "order cancelled before its shipment was created",
    )
    assert published_as(item)[:2] == ("ShipmentCancelled", 1)

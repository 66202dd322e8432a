"""OrdersConsumerFunction under moto: reservation outcomes move PENDING orders, and nothing else moves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from converge import aws
from converge.consumer import Outcome
from converge.envelope import event_from_item
from tests.support.events import domain_event, eventbridge_event, http_event, sqs_event, sqs_event_of
from tests.support.stack import FunctionRunner, Stack

CONSUMER = "OrdersConsumerFunction"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
LINES = [{"product_id": "sku-1", "quantity": 2}, {"product_id": "sku-2", "quantity": 1}]


def place_order(functions: FunctionRunner, key: str | None = None, caller: str = "cust-1") -> str:
    """Place an order of LINES as customer `caller` (the token's subject); its id."""
    headers = {"Idempotency-Key": key} if key else None
    event = http_event("POST", "/orders", body={"lines": LINES}, headers=headers, caller=caller)
    response = functions.invoke("OrdersApiFunction", event)
    assert response["statusCode"] == 201
    return str(json.loads(response["body"])["order_id"])


def cancel_order(functions: FunctionRunner, order_id: str) -> None:
    event = http_event(
        "POST", f"/orders/{order_id}/cancel", route="/orders/{order_id}/cancel", path_parameters={"order_id": order_id}
    )
    assert functions.invoke("OrdersApiFunction", event)["statusCode"] == 200


def reserved(order_id: str, correlation_id: str = "corr-reserve") -> Any:
    data = {"order_id": order_id, "lines": LINES, "status": "RESERVED"}
    return domain_event("StockReserved", data, correlation_id=correlation_id)


def failed(order_id: str, correlation_id: str = "corr-fail") -> Any:
    data = {
        "order_id": order_id,
        "lines": LINES,
        "status": "FAILED",
        "reason": "insufficient stock for sku-2",
        "shortages": ["sku-2"],
    }
    return domain_event("StockReservationFailed", data, correlation_id=correlation_id)


def deliver(functions: FunctionRunner, *events: Any) -> list[str]:
    """Deliver events in one inbox batch; the ids of the records reported as failures."""
    result = functions.invoke(CONSUMER, sqs_event_of(*events))
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def stored(stack: Stack, order_id: str) -> dict[str, Any]:
    item = stack.get_item("OrdersTable", f"ORDER#{order_id}", "ORDER")
    assert item is not None
    return item


def assert_publishable(item: dict[str, Any], event_type: str, version: int) -> None:
    """The item is what the stream publisher turns into `event_type` at `version`."""
    event = event_from_item(item)
    assert event is not None
    assert (event.event_type, event.metadata.entity_version) == (event_type, version)


# ----------------------------------------------------------------------------------------------- outcomes
def test_stock_reserved_confirms_a_pending_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a pending order
    order_id = place_order(functions)
    # WHEN its stock is reserved
    failures = deliver(functions, reserved(order_id, correlation_id="saga-1"))
    # THEN it is CONFIRMED at version 2 as an OrderConfirmed carrying the inbound event's correlation id
    assert failures == []
    item = stored(stack, order_id)
    assert (item["status"], item["version"], item["event_type"]) == ("CONFIRMED", 2, "OrderConfirmed")
    assert item["correlation_id"] == "saga-1"
    assert item["updated_at"] > item["created_at"]
    assert_publishable(item, "OrderConfirmed", 2)


def test_stock_reservation_failed_rejects_with_reason_and_shortages(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a pending order
    order_id = place_order(functions)
    # WHEN its reservation fails
    failures = deliver(functions, failed(order_id))
    # THEN it is REJECTED at version 2 with the event's reason and shortages
    assert failures == []
    item = stored(stack, order_id)
    assert (item["status"], item["version"], item["event_type"]) == ("REJECTED", 2, "OrderRejected")
    assert (item["reason"], item["shortages"]) == ("insufficient stock for sku-2", ["sku-2"])
    assert item["correlation_id"] == "corr-fail"
    assert_publishable(item, "OrderRejected", 2)
    event = event_from_item(item)
    assert event is not None
    assert event.data.model_dump()["reason"] == "insufficient stock for sku-2"


def test_duplicate_stock_reserved_changes_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order confirmed by a StockReserved
    order_id = place_order(functions)
    event = reserved(order_id)
    deliver(functions, event)
    before = stored(stack, order_id)
    # WHEN the same event is delivered again
    failures = deliver(functions, event)
    # THEN it is skipped, not failed, and the order is byte-for-byte unchanged (no new version, no new event)
    assert failures == []
    assert stored(stack, order_id) == before
    assert before["version"] == 2


@pytest.mark.parametrize("decided_by", ["rejection", "cancel"])
def test_late_stock_reserved_does_not_move_a_decided_order(
    stack: Stack, functions: FunctionRunner, decided_by: str
) -> None:
    # GIVEN an order already rejected, or cancelled by its customer
    order_id = place_order(functions)
    if decided_by == "rejection":
        deliver(functions, failed(order_id))
    else:
        cancel_order(functions, order_id)
    before = stored(stack, order_id)
    # WHEN a StockReserved arrives late
    failures = deliver(functions, reserved(order_id))
    # THEN the order is unchanged
    assert failures == []
    assert stored(stack, order_id) == before
    assert before["version"] == 2


def test_out_of_order_outcomes_keep_the_first(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a pending order
    order_id = place_order(functions)
    # WHEN a failure and then a success are delivered (in one batch, in that order)
    failures = deliver(functions, failed(order_id), reserved(order_id))
    # THEN the first outcome stands
    assert failures == []
    item = stored(stack, order_id)
    assert (item["status"], item["version"], item["reason"]) == ("REJECTED", 2, "insufficient stock for sku-2")


def test_outcome_for_an_unknown_order_creates_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no orders
    # WHEN an outcome arrives for an order this table never had
    failures = deliver(functions, reserved("order-from-nowhere"))
    # THEN it is skipped (not retried forever) and no order appears out of thin air
    assert failures == []
    assert stack.scan("OrdersTable") == []


def route_outcomes(stack: Stack, route: str, *events: Any) -> list[Outcome]:
    """Apply each event through the consumer's route `route` (in orders.service), with the template's table."""
    # the modules the function itself runs with: one import name per module, so the same classes
    from orders import service
    from orders.store import OrderStore

    orders = OrderStore(stack.table("OrdersTable"))
    return [getattr(service, route)(event.data, event, orders) for event in events]


def test_routes_report_applied_and_stale(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the consumer's route and a pending order
    order_id = place_order(functions)
    # WHEN the outcome is applied, then applied again, then a contrary one, then one for a missing order
    events = [reserved(order_id), reserved(order_id), failed(order_id), reserved("missing-order")]
    outcomes = route_outcomes(stack, "apply_reservation_outcome", *events)
    # THEN only the first is applied; the rest are stale
    assert outcomes == [Outcome.APPLIED, Outcome.STALE, Outcome.STALE, Outcome.STALE]
    assert stored(stack, order_id)["version"] == 2


# ----------------------------------------------------------------------------------------------- batches
def test_bad_records_fail_alone_and_good_ones_apply(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a pending order and a batch of: a malformed body, an event type orders does not consume, a good event
    order_id = place_order(functions)
    unknown = domain_event("StockUpdated", {"product_id": "sku-1", "on_hand": 5, "reserved": 0, "available": 5})
    invalid_detail = eventbridge_event(reserved(order_id))
    del invalid_detail["detail"]["data"]["lines"]
    bodies = [
        "{not json",
        json.dumps(eventbridge_event(unknown)),
        json.dumps(invalid_detail),
        json.dumps(eventbridge_event(reserved(order_id))),
    ]
    batch = sqs_event(bodies)
    # WHEN the batch is consumed
    result = functions.invoke(CONSUMER, batch)
    # THEN exactly the three bad records are reported, and the good one is applied
    ids = [r["messageId"] for r in batch["Records"]]
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(ids[:3])
    assert stored(stack, order_id)["status"] == "CONFIRMED"


def test_all_records_failing_is_reported_not_raised(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a batch in which nothing is valid WHEN it is consumed
    batch = sqs_event(["[]", "null"])
    result = functions.invoke(CONSUMER, batch)
    # THEN every record is a batch item failure (so each can reach the DLQ), not a function error
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        r["messageId"] for r in batch["Records"]
    )


# ----------------------------------------------------------------------------------------------- fixtures
def fixture(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{CONSUMER}.{name}.json").read_text())  # type: ignore[no-any-return]


def test_committed_stock_reserved_fixture_confirms_the_fixture_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the order the OrdersApiFunction place-order fixture creates
    api_fixture = json.loads((EVENTS_DIR / "OrdersApiFunction.place-order.json").read_text())
    assert functions.invoke("OrdersApiFunction", api_fixture)["statusCode"] == 201
    [order] = stack.scan("OrdersTable")
    # WHEN the committed StockReserved fixture is consumed
    result = functions.invoke(CONSUMER, fixture("stock-reserved"))
    # THEN the order is confirmed
    assert result == {"batchItemFailures": []}
    assert_publishable(stored(stack, order["order_id"]), "OrderConfirmed", 2)


def test_committed_reservation_failed_fixture_rejects_the_fixture_order(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN the fixture customer's second keyed order, pending
    order_id = place_order(functions, key="checkout-2026-11-28-0002", caller="cust-42")
    # WHEN the committed StockReservationFailed fixture is consumed
    result = functions.invoke(CONSUMER, fixture("stock-reservation-failed"))
    # THEN that order is rejected with the fixture's reason
    assert result == {"batchItemFailures": []}
    item = stored(stack, order_id)
    assert (item["status"], item["reason"], item["shortages"]) == (
        "REJECTED",
        "insufficient stock for sku-2",
        ["sku-2"],
    )
    assert_publishable(item, "OrderRejected", 2)


# ----------------------------------------------------------------------------------------------- shipments
def dispatched(order_id: str, correlation_id: str = "corr-dispatch", customer_id: str = "cust-1") -> Any:
    data = {"order_id": order_id, "customer_id": customer_id, "lines": LINES, "status": "DISPATCHED"}
    return domain_event("ShipmentDispatched", data, correlation_id=correlation_id)


def confirmed_order(functions: FunctionRunner) -> str:
    order_id = place_order(functions)
    assert deliver(functions, reserved(order_id)) == []
    return order_id


def test_confirmation_marks_the_order_confirmed_and_its_cancellation_says_so(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a pending order
    order_id = place_order(functions)
    assert "confirmed" not in stored(stack, order_id)
    # WHEN its stock is reserved, and then the customer cancels it
    deliver(functions, reserved(order_id))
    assert stored(stack, order_id)["confirmed"] is True
    cancel_order(functions, order_id)
    # THEN the cancelled item still remembers the confirmation, and its OrderCancelled carries confirmed = true
    item = stored(stack, order_id)
    assert (item["status"], item["version"], item["confirmed"]) == ("CANCELLED", 3, True)
    event = event_from_item(item)
    assert event is not None
    assert (event.event_type, event.data.model_dump()["confirmed"]) == ("OrderCancelled", True)


def test_an_order_cancelled_while_pending_publishes_confirmed_false(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a pending order WHEN it is cancelled
    order_id = place_order(functions)
    cancel_order(functions, order_id)
    # THEN its OrderCancelled says it was never confirmed (so inventory releases the reservation itself)
    event = event_from_item(stored(stack, order_id))
    assert event is not None
    assert (event.event_type, event.data.model_dump()["confirmed"]) == ("OrderCancelled", False)


def test_shipment_dispatched_ships_a_confirmed_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a confirmed order (version 2)
    order_id = confirmed_order(functions)
    # WHEN its parcel is dispatched
    failures = deliver(functions, dispatched(order_id, correlation_id="ship-1"))
    # THEN it is SHIPPED at version 3, as an OrderShipped with no reason and the dispatch's correlation id
    assert failures == []
    item = stored(stack, order_id)
    assert (item["status"], item["version"], item["event_type"]) == ("SHIPPED", 3, "OrderShipped")
    assert (item.get("reason"), item["confirmed"], item["correlation_id"]) == (None, True, "ship-1")
    assert_publishable(item, "OrderShipped", 3)


def test_cancel_then_dispatch_ships_the_order_saying_the_cancellation_came_too_late(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a confirmed order the customer cancelled (version 3) while its parcel was leaving
    order_id = confirmed_order(functions)
    cancel_order(functions, order_id)
    # WHEN the dispatch that crossed the cancellation arrives
    failures = deliver(functions, dispatched(order_id))
    # THEN dispatch wins: SHIPPED at version 4, and the reason says the cancellation came too late
    assert failures == []
    item = stored(stack, order_id)
    assert (item["status"], item["version"], item["event_type"]) == ("SHIPPED", 4, "OrderShipped")
    assert "too late" in item["reason"]
    event = event_from_item(item)
    assert event is not None
    assert (event.event_type, event.data.model_dump()["reason"]) == ("OrderShipped", item["reason"])


def test_dispatch_then_cancel_ships_the_order_and_refuses_the_cancel(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a confirmed order whose dispatch arrives before the customer's cancel
    order_id = confirmed_order(functions)
    assert deliver(functions, dispatched(order_id)) == []
    # WHEN the customer cancels
    event = http_event(
        "POST", f"/orders/{order_id}/cancel", route="/orders/{order_id}/cancel", path_parameters={"order_id": order_id}
    )
    response = functions.invoke("OrdersApiFunction", event)
    # THEN the cancel is refused (409, SHIPPED) and the order ends SHIPPED, as when the cancel came first
    assert (response["statusCode"], json.loads(response["body"])["order_status"]) == (409, "SHIPPED")
    item = stored(stack, order_id)
    assert (item["status"], item["version"], item.get("reason")) == ("SHIPPED", 3, None)


def test_a_duplicate_dispatch_changes_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order shipped by a ShipmentDispatched
    order_id = confirmed_order(functions)
    event = dispatched(order_id)
    deliver(functions, event)
    before = stored(stack, order_id)
    # WHEN the same dispatch is delivered again, alone and twice in one batch
    assert deliver(functions, event) == []
    assert deliver(functions, event, event) == []
    # THEN it is skipped, not failed, and the order is unchanged (no new version, no new event)
    assert stored(stack, order_id) == before
    assert before["version"] == 3


@pytest.mark.parametrize("status", ["PENDING", "REJECTED"])
def test_a_dispatch_contradicting_the_order_is_logged_and_skipped(
    stack: Stack, functions: FunctionRunner, caplog: pytest.LogCaptureFixture, status: str
) -> None:
    # GIVEN an order that was never confirmed (pending, or rejected)
    order_id = place_order(functions)
    if status == "REJECTED":
        deliver(functions, failed(order_id))
    before = stored(stack, order_id)
    caplog.clear()
    # WHEN a ShipmentDispatched arrives for it (forged, or the order drifted)
    failures = deliver(functions, dispatched(order_id))
    # THEN, like a reservation outcome contradicting the order, it is skipped (not retried) and logged with why
    assert failures == []
    assert stored(stack, order_id) == before
    [warning] = [r for r in caplog.records if "contradicts" in r.getMessage()]
    fields = vars(warning)  # the log's extra keys
    assert (warning.levelname, fields["order_id"], fields["order_status"]) == ("WARNING", order_id, status)


def test_a_dispatch_for_an_unknown_order_creates_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no orders WHEN a dispatch arrives for an order this table never had
    failures = deliver(functions, dispatched("order-from-nowhere"))
    # THEN it is skipped and no order appears out of thin air
    assert failures == []
    assert stack.scan("OrdersTable") == []


def test_shipment_route_reports_applied_and_stale(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a confirmed order and a pending one
    order_id, pending_id = confirmed_order(functions), place_order(functions)
    # WHEN the dispatch is applied, applied again, applied to the pending order and to a missing one
    events = [dispatched(order_id), dispatched(order_id), dispatched(pending_id), dispatched("missing-order")]
    outcomes = route_outcomes(stack, "apply_shipment_dispatched", *events)
    # THEN only the first is applied
    assert outcomes == [Outcome.APPLIED, Outcome.STALE, Outcome.STALE, Outcome.STALE]
    assert stored(stack, order_id)["version"] == 3


def test_a_dispatch_racing_a_cancel_rereads_and_ships_the_cancelled_order(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a confirmed order, and a customer's cancel that lands between the dispatch's read and its write
    order_id = confirmed_order(functions)
    client = aws.dynamodb()

    def cancel_first(**_: Any) -> None:
        client.meta.events.unregister("before-call.dynamodb.UpdateItem", cancel_first)
        item = stored(stack, order_id)
        stack.put_item("OrdersTable", {**item, "status": "CANCELLED", "event_type": "OrderCancelled", "version": 3})

    client.meta.events.register("before-call.dynamodb.UpdateItem", cancel_first)
    # WHEN the dispatch is consumed
    failures = deliver(functions, dispatched(order_id))
    # THEN the cancel is not overwritten blindly: the dispatch re-reads and ships on top of it (version 4, too late)
    assert failures == []
    item = stored(stack, order_id)
    assert (item["status"], item["version"]) == ("SHIPPED", 4)
    assert "too late" in item["reason"]


def test_committed_shipment_dispatched_fixture_ships_the_fixture_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the order the place-order fixture creates, confirmed by the committed StockReserved fixture
    api_fixture = json.loads((EVENTS_DIR / "OrdersApiFunction.place-order.json").read_text())
    assert functions.invoke("OrdersApiFunction", api_fixture)["statusCode"] == 201
    assert functions.invoke(CONSUMER, fixture("stock-reserved")) == {"batchItemFailures": []}
    [order] = stack.scan("OrdersTable")
    # WHEN the committed ShipmentDispatched fixture is consumed
    result = functions.invoke(CONSUMER, fixture("shipment-dispatched"))
    # THEN the order is shipped
    assert result == {"batchItemFailures": []}
    assert_publishable(stored(stack, order["order_id"]), "OrderShipped", 3)

"""Repairs against the grain of versions under moto: the consumers apply the reconciler's corrections only to the
item it observed, and the reconciler's full sweep sends them (or, with CORRECTIONS_ENABLED=false, only reports).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from converge.envelope import correction_event, correction_id_for, event_from_item, parse_detail
from converge.events import (
    CorrectionData,
    DomainEvent,
    OrderLine,
    OrderStatus,
    ProjectionCorrected,
    ReservationAction,
    ReservationCorrected,
    ReservationStatus,
    ReservedRecounted,
)
from tests.support.events import domain_event, eventbridge_event, http_event, sqs_event
from tests.support.stack import FunctionRunner, Stack

NOTIFICATIONS = "NotificationsConsumerFunction"
INVENTORY = "InventoryConsumerFunction"
RECONCILER = "ReconcilerFunction"
NOW = "2026-11-28T10:00:00+00:00"
FORGED_VERSION = 10**12


# ---------------------------------------------------------------- building and delivering events
def correction(data: CorrectionData, version: int | None = 1) -> DomainEvent:
    return correction_event(data, version=version, correlation_id="corr-fix")


def body(event: DomainEvent, *, source: str | None = None) -> str:
    """The SQS body a rule delivers for `event`; `source` overrides the EventBridge source (a forgery)."""
    envelope = eventbridge_event(event)
    if source is not None:
        envelope["source"] = source
    return json.dumps(envelope)


def deliver(functions: FunctionRunner, consumer: str, *bodies: str) -> list[str]:
    """Run one inbox batch of these bodies; the message ids reported as failed."""
    response = functions.invoke(consumer, sqs_event(list(bodies)))
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def message_ids(*bodies: str) -> list[str]:
    """The message ids sqs_event gives these bodies (in one batch, in this order)."""
    return [r["messageId"] for r in sqs_event(list(bodies))["Records"]]


def emitted_metrics(output: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[definition["Name"]]
            totals[definition["Name"]] = totals.get(definition["Name"], 0) + (
                sum(value) if isinstance(value, list) else value
            )
    return totals


def projection_corrected(
    projection: str,
    entity_id: str,
    key: tuple[str, str],
    observed: dict[str, Any] | None,
    expected: dict[str, Any] | None,
) -> ProjectionCorrected:
    return ProjectionCorrected(
        correction_id=correction_id_for(projection, key, observed, expected),
        entity_id=entity_id,
        reason="test",
        projection=projection,
        pk=key[0],
        sk=key[1],
        observed=observed,
        expected=expected,
    )


def lines_of(*lines: tuple[str, int]) -> list[OrderLine]:
    return [OrderLine(product_id=p, quantity=q) for p, q in lines]


def reservation_corrected(
    order_id: str,
    action: ReservationAction,
    observed: tuple[str, int] | None,
    lines: list[OrderLine],
    order_status: str | None,
) -> ReservationCorrected:
    status, version = observed if observed is not None else (None, None)
    return ReservationCorrected(
        correction_id=correction_id_for("order_reservation", order_id, action.value, status, version, order_status),
        entity_id=order_id,
        reason="test",
        order_id=order_id,
        action=action,
        observed_status=None if status is None else ReservationStatus(status),
        observed_version=version,
        lines=lines,
        order_status=None if order_status is None else OrderStatus(order_status),
    )


def reserved_recounted(product_id: str, observed_version: int, reserved: int) -> ReservedRecounted:
    return ReservedRecounted(
        correction_id=correction_id_for("reserved", product_id, observed_version, reserved),
        entity_id=product_id,
        reason="test",
        product_id=product_id,
        observed_version=observed_version,
        reserved=reserved,
    )


# ---------------------------------------------------------------- items
def product_item(pid: str, version: int, on_hand: int, reserved: int = 0) -> dict[str, Any]:
    return {
        "pk": f"PRODUCT#{pid}", "sk": "PRODUCT", "product_id": pid, "on_hand": on_hand, "reserved": reserved,
        "available": on_hand - reserved, "version": version, "event_type": "StockUpdated", "correlation_id": "c",
        "updated_at": NOW,
    }  # fmt: skip


def availability_item(product: dict[str, Any], **changes: Any) -> dict[str, Any]:
    pid = product["product_id"]
    fields = {k: product[k] for k in ("product_id", "on_hand", "reserved", "available", "version", "updated_at")}
    return {"pk": f"AVAILABILITY#{pid}", "sk": "AVAILABILITY", **fields, **changes}


def order_item(
    oid: str, status: str, version: int, lines: list[tuple[str, int]], customer: str = "c-1"
) -> dict[str, Any]:
    event_type = {"PENDING": "OrderPlaced", "CONFIRMED": "OrderConfirmed", "REJECTED": "OrderRejected",
                  "CANCELLED": "OrderCancelled"}[status]  # fmt: skip
    return {
        "pk": f"ORDER#{oid}", "sk": "ORDER", "order_id": oid, "customer_id": customer, "status": status,
        "lines": [{"product_id": p, "quantity": q} for p, q in lines], "version": version, "event_type": event_type,
        "correlation_id": "c", "updated_at": NOW,
    }  # fmt: skip


def reservation_item(oid: str, status: str, version: int, lines: list[tuple[str, int]], **extra: Any) -> dict[str, Any]:
    event_type = {"RESERVED": "StockReserved", "FAILED": "StockReservationFailed", "RELEASED": "StockReleased"}[status]
    return {
        "pk": f"RESERVATION#{oid}", "sk": "RESERVATION", "order_id": oid, "status": status,
        "lines": [{"product_id": p, "quantity": q} for p, q in lines], "shortages": [], "version": version,
        "event_type": event_type, "correlation_id": "c", "updated_at": NOW, **extra,
    }  # fmt: skip


def outcome_item(order: dict[str, Any]) -> dict[str, Any]:
    fields = {k: order[k] for k in ("order_id", "customer_id", "status", "version")}
    return {"pk": order["pk"], "sk": "ORDER", **fields}


def confirmation_item(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "pk": f"CUSTOMER#{order['customer_id']}",
        "sk": f"NOTIFICATION#ORDER_CONFIRMED#{order['order_id']}",
        "kind": "ORDER_CONFIRMED",
        "order_id": order["order_id"],
        "created_at": NOW,
    }


AVAILABILITY_COMPARED = ("product_id", "on_hand", "reserved", "available", "version")


def observed(item: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: item.get(name) for name in names}


def availability(stack: Stack, pid: str = "sku-1") -> dict[str, Any] | None:
    return stack.get_item("NotificationsTable", f"AVAILABILITY#{pid}", "AVAILABILITY")


def product(stack: Stack, pid: str = "p1") -> dict[str, Any]:
    item = stack.get_item("InventoryTable", f"PRODUCT#{pid}", "PRODUCT")
    assert item is not None, pid
    return item


def levels(stack: Stack, pid: str = "p1") -> tuple[int, int, int, int]:
    item = product(stack, pid)
    return item["on_hand"], item["reserved"], item["available"], item["version"]


def reservation(stack: Stack, oid: str) -> dict[str, Any] | None:
    return stack.get_item("InventoryTable", f"RESERVATION#{oid}", "RESERVATION")


def stock_updated(pid: str, version: int, on_hand: int, reserved: int = 0) -> DomainEvent:
    data = {"product_id": pid, "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved}
    return domain_event("StockUpdated", data, version=version)


def order_event(event_type: str, oid: str, version: int, lines: list[tuple[str, int]]) -> DomainEvent:
    status = {"OrderPlaced": "PENDING", "OrderConfirmed": "CONFIRMED", "OrderCancelled": "CANCELLED"}[event_type]
    data = {
        "order_id": oid,
        "customer_id": "c-1",
        "status": status,
        "lines": [{"product_id": p, "quantity": q} for p, q in lines],
    }
    return domain_event(event_type, data, version=version)


def stock(functions: FunctionRunner, **on_hand: int) -> None:
    for pid, quantity in on_hand.items():
        event = http_event(
            "PUT",
            f"/products/{pid}/stock",
            route="/products/{product_id}/stock",
            path_parameters={"product_id": pid},
            body={"on_hand": quantity},
            caller="warehouse-1",
            admin=True,  # stock is the warehouse's (the admin group)
        )
        assert functions.invoke("InventoryApiFunction", event)["statusCode"] == 200


def place(functions: FunctionRunner, oid: str, lines: list[tuple[str, int]]) -> None:
    assert deliver(functions, INVENTORY, body(order_event("OrderPlaced", oid, 1, lines))) == []


def cancel(functions: FunctionRunner, oid: str, lines: list[tuple[str, int]]) -> None:
    assert deliver(functions, INVENTORY, body(order_event("OrderCancelled", oid, 3, lines))) == []


def published_as(item: dict[str, Any] | None) -> tuple[str, int]:
    assert item is not None
    event = event_from_item(item)
    assert event is not None
    return event.event_type, event.metadata.entity_version


# ================================================================ notifications: ProjectionCorrected
def test_an_availability_ahead_is_corrected_and_the_next_real_version_then_applies(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN the availability of sku-1 written by a forged StockUpdated at version 10**12 with wrong numbers,
    #       while the product is really at version 3 (10 on hand, 2 reserved)
    assert deliver(functions, NOTIFICATIONS, body(stock_updated("sku-1", FORGED_VERSION, on_hand=999))) == []
    forged = availability(stack)
    assert forged is not None
    assert forged["version"] == FORGED_VERSION
    real = product_item("sku-1", 3, on_hand=10, reserved=2)
    expected = {k: real[k] for k in (*AVAILABILITY_COMPARED, "updated_at")}
    # WHEN the reconciler's correction to the product's state arrives
    fix = projection_corrected(
        "availability",
        "sku-1",
        ("AVAILABILITY#sku-1", "AVAILABILITY"),
        observed(forged, AVAILABILITY_COMPARED),
        expected,
    )
    assert deliver(functions, NOTIFICATIONS, body(correction(fix, version=3))) == []
    # THEN the availability holds the product's state at its version, whatever the stored version was
    corrected = availability(stack)
    assert corrected is not None
    assert observed(corrected, AVAILABILITY_COMPARED) == observed(real, AVAILABILITY_COMPARED)
    # AND a legitimate StockUpdated at the next real version applies as usual
    assert deliver(functions, NOTIFICATIONS, body(stock_updated("sku-1", 4, on_hand=12, reserved=2))) == []
    after = availability(stack)
    assert after is not None
    assert (after["on_hand"], after["reserved"], after["available"], after["version"]) == (12, 2, 10, 4)


def test_a_correction_whose_observation_no_longer_holds_is_skipped_as_stale(
    stack: Stack, functions: FunctionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the availability at version 5 (a legitimate write landed after the reconciler looked)
    assert deliver(functions, NOTIFICATIONS, body(stock_updated("sku-1", 5, on_hand=7))) == []
    before = availability(stack)
    assert before is not None
    # WHEN a correction observed it at a forged version 10**12 and wants version 4
    seen = {**observed(before, AVAILABILITY_COMPARED), "version": FORGED_VERSION}
    wanted = {**observed(before, AVAILABILITY_COMPARED), "version": 4, "on_hand": 1, "available": 1}
    fix = projection_corrected("availability", "sku-1", ("AVAILABILITY#sku-1", "AVAILABILITY"), seen, wanted)
    capsys.readouterr()
    failures = deliver(functions, NOTIFICATIONS, body(correction(fix)))
    # THEN it is not a failure, it is counted as skipped, and the item is unchanged
    assert failures == []
    assert emitted_metrics(capsys.readouterr().out).get("EventsSkippedStale") == 1
    assert availability(stack) == before


def test_an_orphan_outcome_and_notification_are_deleted(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order outcome and its confirmation in notifications, for an order that does not exist
    ghost = order_item("o-ghost", "CONFIRMED", 2, [("p1", 1)])
    stack.put_item("NotificationsTable", outcome_item(ghost))
    stack.put_item("NotificationsTable", confirmation_item(ghost))
    outcome_key = ("ORDER#o-ghost", "ORDER")
    notification_key = ("CUSTOMER#c-1", "NOTIFICATION#ORDER_CONFIRMED#o-ghost")
    # WHEN the reconciler's deletions arrive in one batch
    delete_outcome = projection_corrected(
        "order_outcome",
        "o-ghost",
        outcome_key,
        observed(outcome_item(ghost), ("order_id", "customer_id", "status", "version")),
        None,
    )
    delete_notification = projection_corrected(
        "order_notification",
        "o-ghost",
        notification_key,
        {"kind": "ORDER_CONFIRMED", "order_id": "o-ghost", "reason": None},
        None,
    )
    failures = deliver(
        functions, NOTIFICATIONS, body(correction(delete_outcome)), body(correction(delete_notification))
    )
    # THEN both are applied and both items are gone
    assert failures == []
    assert stack.get_item("NotificationsTable", *outcome_key) is None
    assert stack.get_item("NotificationsTable", *notification_key) is None


def test_corrections_notifications_must_not_apply_are_batch_item_failures_and_the_rest_applies(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN two products' availabilities in notifications
    for pid in ("sku-1", "sku-2"):
        assert deliver(functions, NOTIFICATIONS, body(stock_updated(pid, FORGED_VERSION, on_hand=50))) == []
    forged = {pid: availability(stack, pid) for pid in ("sku-1", "sku-2")}
    sku1, sku2 = forged["sku-1"], forged["sku-2"]
    assert sku1 is not None
    assert sku2 is not None
    real = observed(product_item("sku-1", 2, on_hand=10), AVAILABILITY_COMPARED)
    # WHEN one batch holds: a correction of a projection notifications does not keep, one whose key is another
    #      product's availability, a valid one sent with the source converge.orders, and one valid correction
    not_kept = projection_corrected(
        "reservation", "sku-1", ("AVAILABILITY#sku-1", "AVAILABILITY"), observed(sku1, AVAILABILITY_COMPARED), real
    )
    wrong_entity = projection_corrected(
        "availability",
        "sku-1",
        ("AVAILABILITY#sku-2", "AVAILABILITY"),
        observed(sku2, AVAILABILITY_COMPARED),
        {**real, "product_id": "sku-2"},
    )
    valid = projection_corrected(
        "availability", "sku-1", ("AVAILABILITY#sku-1", "AVAILABILITY"), observed(sku1, AVAILABILITY_COMPARED), real
    )
    bodies = [
        body(correction(not_kept)),
        body(correction(wrong_entity)),
        body(correction(valid), source="converge.orders"),
        body(correction(valid)),
    ]
    failures = deliver(functions, NOTIFICATIONS, *bodies)
    # THEN the three that must not apply are batch item failures
    assert failures == message_ids(*bodies)[:3]
    # AND the valid one was applied, while the other product's availability is unchanged
    corrected = availability(stack, "sku-1")
    assert corrected is not None
    assert observed(corrected, AVAILABILITY_COMPARED) == real
    assert availability(stack, "sku-2") == sku2


def test_order_cancelled_projects_the_outcome_as_cancelled_without_a_notification(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a confirmed order, projected and notified, and another order never confirmed
    assert deliver(functions, NOTIFICATIONS, body(order_event("OrderConfirmed", "o-1", 2, [("p1", 1)]))) == []
    before = sorted(i["sk"] for i in stack.scan("NotificationsTable") if i["pk"] == "CUSTOMER#c-1")
    assert before == ["NOTIFICATION#ORDER_CONFIRMED#o-1"]
    # WHEN both are cancelled
    failures = deliver(
        functions,
        NOTIFICATIONS,
        body(order_event("OrderCancelled", "o-1", 3, [("p1", 1)])),
        body(order_event("OrderCancelled", "o-2", 2, [("p1", 1)])),
    )
    # THEN both outcomes are CANCELLED at the order's version
    assert failures == []
    for oid, version in (("o-1", 3), ("o-2", 2)):
        outcome = stack.get_item("NotificationsTable", f"ORDER#{oid}", "ORDER")
        assert outcome is not None
        assert (outcome["status"], outcome["version"]) == ("CANCELLED", version)
    # AND no notification was sent for either cancellation (the confirmation stays as it was sent)
    after = sorted(i["sk"] for i in stack.scan("NotificationsTable") if i["pk"] == "CUSTOMER#c-1")
    assert after == before


# ================================================================ inventory: ReservationCorrected
def test_remove_gives_an_orphan_reservations_stock_back_and_deletes_it(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN 10 of p1, 3 of them reserved by a reservation whose order does not exist
    stock(functions, p1=10)
    place(functions, "o-ghost", [("p1", 3)])
    assert levels(stack) == (10, 3, 7, 2)
    # WHEN the reconciler's REMOVE of that reservation arrives
    fix = reservation_corrected("o-ghost", ReservationAction.REMOVE, ("RESERVED", 1), lines_of(("p1", 3)), None)
    assert deliver(functions, INVENTORY, body(correction(fix))) == []
    # THEN the stock is given back, one product version later, and the reservation is gone
    assert levels(stack) == (10, 0, 10, 3)
    assert published_as(product(stack)) == ("StockUpdated", 3)
    assert reservation(stack, "o-ghost") is None


def test_release_gives_back_the_stock_of_a_rejected_orders_reservation(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a RESERVED reservation of 4 p1 for an order the orders service rejected
    stock(functions, p1=10)
    place(functions, "o-1", [("p1", 4)])
    # WHEN the reconciler's RELEASE arrives
    fix = reservation_corrected("o-1", ReservationAction.RELEASE, ("RESERVED", 1), lines_of(("p1", 4)), "REJECTED")
    assert deliver(functions, INVENTORY, body(correction(fix))) == []
    # THEN the reservation is RELEASED one version later and the stock is back
    item = reservation(stack, "o-1")
    assert item is not None
    assert (item["status"], item["version"]) == ("RELEASED", 2)
    assert published_as(item) == ("StockReleased", 2)
    assert levels(stack) == (10, 0, 10, 3)


def test_reinstate_of_a_released_reservation_reserves_again_one_version_later(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a confirmed order whose reservation of 2 p1 was released (RELEASED at version 2)
    stock(functions, p1=10)
    place(functions, "o-1", [("p1", 2)])
    cancel(functions, "o-1", [("p1", 2)])
    released = reservation(stack, "o-1")
    assert released is not None
    assert (released["status"], released["version"]) == ("RELEASED", 2)
    assert levels(stack) == (10, 0, 10, 3)
    # WHEN the reconciler's REINSTATE arrives
    fix = reservation_corrected("o-1", ReservationAction.REINSTATE, ("RELEASED", 2), lines_of(("p1", 2)), "CONFIRMED")
    assert deliver(functions, INVENTORY, body(correction(fix))) == []
    # THEN the reservation is RESERVED at version 3 and the stock is taken again
    item = reservation(stack, "o-1")
    assert item is not None
    assert (item["status"], item["version"]) == ("RESERVED", 3)
    assert published_as(item) == ("StockReserved", 3)
    assert levels(stack) == (10, 2, 8, 4)


def test_reinstate_of_a_missing_reservation_reserves_it(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a confirmed order without any reservation
    stock(functions, p1=10)
    # WHEN the reconciler's REINSTATE (observed: absent) arrives
    fix = reservation_corrected("o-1", ReservationAction.REINSTATE, None, lines_of(("p1", 5)), "CONFIRMED")
    assert deliver(functions, INVENTORY, body(correction(fix))) == []
    # THEN the reservation is RESERVED at version 1 and the stock is taken
    item = reservation(stack, "o-1")
    assert item is not None
    assert (item["status"], item["version"]) == ("RESERVED", 1)
    assert levels(stack) == (10, 5, 5, 2)


def test_reinstate_without_enough_stock_fails_marked_and_reserves_nothing(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a released reservation of 2 p1 (version 2), and then only 1 p1 left on hand
    stock(functions, p1=10)
    place(functions, "o-1", [("p1", 2)])
    cancel(functions, "o-1", [("p1", 2)])
    stock(functions, p1=1)
    before = levels(stack)
    # WHEN the reconciler's REINSTATE arrives
    fix = reservation_corrected("o-1", ReservationAction.REINSTATE, ("RELEASED", 2), lines_of(("p1", 2)), "CONFIRMED")
    assert deliver(functions, INVENTORY, body(correction(fix))) == []
    # THEN the reservation is FAILED at version 3, marked reinstate_failed, naming the short product
    item = reservation(stack, "o-1")
    assert item is not None
    assert (item["status"], item["version"], item.get("reinstate_failed")) == ("FAILED", 3, True)
    assert item["shortages"] == ["p1"]
    assert published_as(item) == ("StockReservationFailed", 3)
    # AND nothing was reserved
    assert levels(stack) == before


def test_tombstone_records_a_rejected_order_without_a_reservation(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a rejected order inventory never reserved for
    stock(functions, p1=10)
    # WHEN the reconciler's TOMBSTONE arrives
    fix = reservation_corrected("o-1", ReservationAction.TOMBSTONE, None, lines_of(("p1", 2)), "REJECTED")
    assert deliver(functions, INVENTORY, body(correction(fix))) == []
    # THEN a RELEASED reservation records it, with the reason
    item = reservation(stack, "o-1")
    assert item is not None
    assert (item["status"], item["version"], item["reason"]) == ("RELEASED", 1, "order rejected without a reservation")
    # AND a late OrderPlaced of that order reserves nothing
    place(functions, "o-1", [("p1", 2)])
    assert levels(stack) == (10, 0, 10, 1)
    assert reservation(stack, "o-1") == item


# An order status each action fits (converge.events.RESERVATION_ACTION_NEEDS): the correction is well formed.
ORDER_STATUS_FOR = {
    ReservationAction.RELEASE: "REJECTED",
    ReservationAction.REMOVE: None,
    ReservationAction.REINSTATE: "CONFIRMED",
    ReservationAction.TOMBSTONE: "REJECTED",
}


@pytest.mark.parametrize(
    ("action", "seen"),
    [
        (ReservationAction.RELEASE, ("RESERVED", 2)),
        (ReservationAction.REMOVE, ("FAILED", 1)),
        (ReservationAction.REINSTATE, None),
        (ReservationAction.REINSTATE, ("RELEASED", 1)),
        (ReservationAction.TOMBSTONE, None),
    ],
)
def test_a_reservation_correction_is_stale_when_the_reservation_is_not_as_observed(
    stack: Stack, functions: FunctionRunner, action: ReservationAction, seen: tuple[str, int] | None
) -> None:
    # GIVEN a RESERVED reservation of 3 p1 at version 1
    stock(functions, p1=10)
    place(functions, "o-1", [("p1", 3)])
    before = (reservation(stack, "o-1"), levels(stack))
    # WHEN a correction observed the reservation otherwise (another status, version, or absent)
    fix = reservation_corrected("o-1", action, seen, lines_of(("p1", 3)), ORDER_STATUS_FOR[action])
    failures = deliver(functions, INVENTORY, body(correction(fix)))
    # THEN it is skipped, not a failure, and neither the reservation nor the product changed
    assert failures == []
    assert (reservation(stack, "o-1"), levels(stack)) == before


# ================================================================ inventory: ReservedRecounted
def test_a_recount_sets_reserved_to_the_counted_sum(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 (10 on hand) whose reserved drifted to 5 at version 3
    stack.put_item("InventoryTable", product_item("p1", 3, on_hand=10, reserved=5))
    # WHEN the reconciler's recount to 2 (observed at version 3) arrives
    assert deliver(functions, INVENTORY, body(correction(reserved_recounted("p1", 3, 2), version=3))) == []
    # THEN reserved is 2, available = on_hand - reserved, one version later, published as StockUpdated
    assert levels(stack) == (10, 2, 8, 4)
    assert published_as(product(stack)) == ("StockUpdated", 4)


def test_a_recount_above_on_hand_raises_on_hand(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with 1 on hand and nothing reserved, at version 2 (an earlier image restored)
    stack.put_item("InventoryTable", product_item("p1", 2, on_hand=1))
    # WHEN its RESERVED reservations are counted at 3
    assert deliver(functions, INVENTORY, body(correction(reserved_recounted("p1", 2, 3), version=2))) == []
    # THEN on_hand is raised to cover them and nothing is available
    assert levels(stack) == (3, 3, 0, 3)


def test_a_recount_is_stale_when_the_product_moved_on(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 at version 4 (it moved on after the reconciler counted it at version 3)
    stack.put_item("InventoryTable", product_item("p1", 4, on_hand=10, reserved=5))
    # WHEN the recount observed at version 3 arrives
    failures = deliver(functions, INVENTORY, body(correction(reserved_recounted("p1", 3, 2), version=3)))
    # THEN it is skipped and the product is unchanged
    assert failures == []
    assert levels(stack) == (10, 5, 5, 4)


# ================================================================ the reconciler sends them
def bus(stack: Stack) -> list[DomainEvent]:
    """The events the bus received, parsed; each one's EventBridge source checked against its type."""
    events = []
    for envelope in stack.events_on_bus():
        event = parse_detail(envelope["detail-type"], envelope["detail"])
        assert envelope["source"] == event.source
        events.append(event)
    return events


def test_a_forged_availability_is_corrected_to_the_products_state(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 at version 2 and its availability at a forged version 10**12 with other numbers
    real = product_item("p1", 2, on_hand=10)
    stack.put_item("InventoryTable", real)
    stack.put_item("NotificationsTable", availability_item(real, version=FORGED_VERSION, on_hand=99, available=99))
    # WHEN a full pass runs
    report = functions.sweep()
    # THEN exactly one ProjectionCorrected from converge.reconciler, expecting the product's state
    [event] = bus(stack)
    assert (event.event_type, event.source) == ("ProjectionCorrected", "converge.reconciler")
    data = event.data
    assert isinstance(data, ProjectionCorrected)
    assert (data.projection, data.pk, data.sk) == ("availability", "AVAILABILITY#p1", "AVAILABILITY")
    assert data.expected is not None
    assert observed(data.expected, AVAILABILITY_COMPARED) == observed(real, AVAILABILITY_COMPARED)
    assert data.observed is not None
    assert data.observed["version"] == FORGED_VERSION
    assert (report["corrections"], report["republished"], report["differences"]) == (1, 0, {"ahead": 1})


def test_an_orphan_reserved_reservation_is_removed(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a RESERVED reservation of 1 p1 (p1's reserved counts it) whose order does not exist
    real = product_item("p1", 2, on_hand=10, reserved=1)
    stack.put_item("InventoryTable", real)
    stack.put_item("NotificationsTable", availability_item(real))
    stack.put_item("InventoryTable", reservation_item("o-ghost", "RESERVED", 1, [("p1", 1)]))
    # WHEN a full pass runs
    report = functions.sweep()
    # THEN one ReservationCorrected REMOVE, as observed, with the reservation's lines
    [event] = bus(stack)
    data = event.data
    assert isinstance(data, ReservationCorrected)
    assert (data.order_id, data.action, data.order_status) == ("o-ghost", ReservationAction.REMOVE, None)
    assert (data.observed_status, data.observed_version) == (ReservationStatus.RESERVED, 1)
    assert data.lines == lines_of(("p1", 1))
    assert report["corrections"] == 1


def test_a_confirmed_order_whose_reinstatement_failed_is_parked_once(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a confirmed (and notified) order whose reservation is FAILED by a failed reinstatement
    order = order_item("o-1", "CONFIRMED", 2, [("p1", 2)])
    stack.put_item("OrdersTable", order)
    stack.put_item("NotificationsTable", outcome_item(order))
    stack.put_item("NotificationsTable", confirmation_item(order))
    stack.put_item("InventoryTable", reservation_item("o-1", "FAILED", 2, [("p1", 2)], reinstate_failed=True))
    shipment = {"order_id": "o-1", "customer_id": order["customer_id"], "lines": order["lines"], "status": "PENDING"}
    stack.put_item("ShipmentsTable", {"pk": "SHIPMENT#o-1", "sk": "SHIPMENT", **shipment, "version": 1})
    # WHEN two full passes run
    first = functions.sweep()
    second = functions.sweep()
    # THEN it is parked for a person once, counted the first time only, and nothing is sent for it
    assert (first["parked_for_a_person"], first["already_parked"]) == (1, 0)
    assert (second["parked_for_a_person"], second["already_parked"]) == (0, 1)
    assert bus(stack) == []
    anomalies = [i for i in stack.scan("ReconcilerStateTable") if i["pk"] == "ANOMALY"]
    assert [(a["kind"], a["entity_id"]) for a in anomalies] == [("confirmed_without_stock", "o-1")]
    assert (anomalies[0]["order_status"], anomalies[0]["reservation_status"]) == ("CONFIRMED", "FAILED")


def counter_off_its_reservation(stack: Stack, product: dict[str, Any]) -> None:
    """`product` (p1, reserved 5) with its availability, and a confirmed order whose RESERVED reservation holds 2."""
    order = order_item("o-1", "CONFIRMED", 2, [("p1", 2)])
    stack.put_item("InventoryTable", product)
    stack.put_item("NotificationsTable", availability_item(product))
    stack.put_item("OrdersTable", order)
    stack.put_item("NotificationsTable", outcome_item(order))
    stack.put_item("NotificationsTable", confirmation_item(order))
    stack.put_item("InventoryTable", reservation_item("o-1", "RESERVED", 1, [("p1", 2)]))


def test_a_reserved_counter_off_its_reservations_is_recounted(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN p1 with reserved 5 at version 3, while its only RESERVED reservation (of a confirmed order) holds 2
    counter_off_its_reservation(stack, product_item("p1", 3, on_hand=10, reserved=5))
    # WHEN a full pass runs
    report = functions.sweep()
    # THEN one ReservedRecounted sets p1's reserved to the counted 2, observed at version 3 (the sweep recounts after
    # every segment's saga repairs, here the OrderConfirmed shipping never heard of, so none is held back for it)
    events = bus(stack)
    assert sorted(type(e.data).__name__ for e in events) == ["OrderConfirmed", "ReservedRecounted"]
    [event] = [e for e in events if isinstance(e.data, ReservedRecounted)]
    data = event.data
    assert isinstance(data, ReservedRecounted)
    assert (data.product_id, data.reserved, data.observed_version) == ("p1", 2, 3)
    assert event.source == "converge.reconciler"
    assert report["recounts"] == 1


def test_with_corrections_disabled_only_republishes_are_sent(
    stack: Stack, functions: FunctionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the sweep's environment with CORRECTIONS_ENABLED=false
    spec = functions.specs["ReconcilerSweepFunction"]
    disabled = dataclasses.replace(spec, environment={**spec.environment, "CORRECTIONS_ENABLED": "false"})
    monkeypatch.setitem(functions.specs, "ReconcilerSweepFunction", disabled)
    # AND a forged availability (ahead), an orphan reservation, and an availability one version behind
    forged = product_item("p1", 2, on_hand=10, reserved=1)
    stack.put_item("InventoryTable", forged)
    stack.put_item("NotificationsTable", availability_item(forged, version=FORGED_VERSION))
    stack.put_item("InventoryTable", reservation_item("o-ghost", "RESERVED", 1, [("p1", 1)]))
    lagging = product_item("p2", 4, on_hand=6)
    stack.put_item("InventoryTable", lagging)
    stack.put_item("NotificationsTable", availability_item(lagging, version=3))
    # WHEN a full pass runs
    report = functions.sweep()
    # THEN only the lagging product's state is republished; the other differences are reported, not corrected
    events = bus(stack)
    assert [(e.event_type, e.metadata.entity_id, e.metadata.entity_version) for e in events] == [
        ("StockUpdated", "p2", 4)
    ]
    assert (report["republished"], report["corrections"]) == (1, 0)
    assert report["corrections_disabled"] == 2

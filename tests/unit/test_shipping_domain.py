"""The shipping status machine, the consumer's decisions on order events, dispatch and the view (no AWS)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from converge.envelope import event_from_item
from converge.errors import TransitionNotAllowedError
from converge.events import SHIPMENT_EVENT_BY_STATUS, OrderData, ShipmentStatus
from shipping import domain

AT = "2026-11-28T11:00:00+00:00"
LATER = "2026-11-28T12:00:00+00:00"
LINES = [{"product_id": "sku-1", "quantity": 2}]
ALLOWED = {
    (ShipmentStatus.PENDING, ShipmentStatus.DISPATCHED),
    (ShipmentStatus.PENDING, ShipmentStatus.CANCELLED),
}
ALL_PAIRS = list(itertools.product(ShipmentStatus, ShipmentStatus))


def change(status: str = "CONFIRMED", *, version: int = 2, confirmed: bool = False) -> domain.OrderChange:
    # A priced order (schema v2): its shipment carries the lines' products and quantities, not their prices.
    priced = [{**line, "unit_price": 1250} for line in LINES]
    order = OrderData.model_validate(
        {
            "order_id": "o-1",
            "customer_id": "cust-1",
            "currency": "EUR",
            "lines": priced,
            "status": status,
            "confirmed": confirmed,
        }
    )
    return domain.OrderChange(order=order, order_version=version, correlation_id="c-order", at=AT)


def cancellation(version: int = 3, *, confirmed: bool = True) -> domain.OrderChange:
    return change("CANCELLED", version=version, confirmed=confirmed)


def shipment_in(status: ShipmentStatus, version: int = 1, order_version: int = 2) -> domain.Shipment:
    created = change().new_shipment(ShipmentStatus.PENDING)
    return created.model_copy(update={"status": status, "version": version, "order_version": order_version})


# ----------------------------------------------------------------------------------------------- the machine
def test_machine_table_is_exactly_the_documented_one() -> None:
    # GIVEN the transition table WHEN every pair is asked THEN exactly PENDING -> DISPATCHED | CANCELLED is allowed
    assert {pair for pair in ALL_PAIRS if domain.STATUSES.allows(*pair)} == ALLOWED
    # AND every status is in the table (nothing is missing from the data)
    assert set(domain.STATUSES.transitions) == set(ShipmentStatus)


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transition_moves_the_shipment_and_bumps_the_version(
    current: ShipmentStatus, target: ShipmentStatus
) -> None:
    # GIVEN a shipment in `current` at version 1 WHEN it is moved to `target`
    moved = domain.transition(shipment_in(current), target, correlation_id="c-1", at=LATER, order_version=3)
    # THEN it has the new status, the next version, the new correlation id, time and order version, and event type
    assert (moved.status, moved.version, moved.order_version) == (target, 2, 3)
    assert (moved.correlation_id, moved.updated_at, moved.created_at) == ("c-1", LATER, AT)
    assert moved.event_type == SHIPMENT_EVENT_BY_STATUS[target]


@pytest.mark.parametrize(("current", "target"), [pair for pair in ALL_PAIRS if pair not in ALLOWED])
def test_forbidden_transition_is_refused(current: ShipmentStatus, target: ShipmentStatus) -> None:
    # GIVEN a shipment in `current` WHEN it is moved where the machine does not allow
    # THEN the move is refused, naming both statuses
    with pytest.raises(TransitionNotAllowedError) as refused:
        domain.transition(shipment_in(current), target, correlation_id="c-1", at=LATER)
    assert (refused.value.current, refused.value.target) == (current, target)
    assert current.value in str(refused.value)


def test_order_version_never_goes_down() -> None:
    # GIVEN a shipment that applied order version 5 WHEN it moves on an older order version
    moved = domain.transition(
        shipment_in(ShipmentStatus.PENDING, order_version=5), ShipmentStatus.CANCELLED, correlation_id="c", at=AT
    )
    # THEN it keeps the highest order version applied
    assert moved.order_version == 5


# ----------------------------------------------------------------------------------------------- OrderConfirmed
def test_order_confirmed_without_a_shipment_creates_a_pending_one() -> None:
    # GIVEN no shipment WHEN an OrderConfirmed at order version 2 is decided
    decision = domain.on_order_confirmed(None, change(version=2))
    # THEN a PENDING shipment at version 1 is created, recording order version 2 and the event's correlation id
    assert decision.action is domain.Action.CREATE
    created = decision.shipment
    assert created is not None
    assert (created.status, created.version, created.order_version, created.reason) == (
        ShipmentStatus.PENDING,
        1,
        2,
        None,
    )
    assert (created.order_id, created.customer_id, created.correlation_id) == ("o-1", "cust-1", "c-order")
    assert created.created_at == created.updated_at == AT


@pytest.mark.parametrize("status", list(ShipmentStatus))
def test_order_confirmed_with_any_shipment_is_skipped(status: ShipmentStatus) -> None:
    # GIVEN a shipment in any status (a tombstone included) WHEN an OrderConfirmed is decided
    decision = domain.on_order_confirmed(shipment_in(status), change())
    # THEN nothing is written: a duplicate or a late confirmation
    assert (decision.action, decision.shipment, decision.why) == (domain.Action.SKIP, None, domain.ALREADY_EXISTS)


# ----------------------------------------------------------------------------------------------- OrderCancelled
@pytest.mark.parametrize("status", [None, ShipmentStatus.DISPATCHED, ShipmentStatus.CANCELLED])
def test_cancel_of_an_order_never_confirmed_is_skipped(status: ShipmentStatus | None) -> None:
    # GIVEN no shipment, or one that is final WHEN an OrderCancelled of an order never confirmed is decided
    current = shipment_in(status) if status else None
    decision = domain.on_order_cancelled(current, cancellation(version=2, confirmed=False))
    # THEN nothing is written (no shipment is ever made for it)
    assert (decision.action, decision.why) == (domain.Action.SKIP, domain.NEVER_CONFIRMED)


def test_a_pending_shipment_of_an_order_cancelled_unconfirmed_is_cancelled() -> None:
    # GIVEN a PENDING shipment made from order version 2 (the order was restored to PENDING and then cancelled
    #       at version 2, so its OrderCancelled says never confirmed)
    current = shipment_in(ShipmentStatus.PENDING, order_version=2)
    # WHEN that cancellation is decided
    decision = domain.on_order_cancelled(current, cancellation(version=2, confirmed=False))
    # THEN the parcel that has not left is cancelled: it can never be dispatched for a cancelled order
    assert decision.action is domain.Action.REPLACE
    assert decision.shipment is not None
    assert decision.shipment.status is ShipmentStatus.CANCELLED


def test_cancel_without_a_shipment_creates_a_tombstone() -> None:
    # GIVEN no shipment WHEN the cancellation (order version 3) of a confirmed order is decided
    decision = domain.on_order_cancelled(None, cancellation(version=3))
    # THEN a CANCELLED tombstone at version 1 is created, saying why
    assert decision.action is domain.Action.CREATE
    tombstone = decision.shipment
    assert tombstone is not None
    assert (tombstone.status, tombstone.version, tombstone.order_version) == (ShipmentStatus.CANCELLED, 1, 3)
    assert tombstone.reason == "order cancelled before its shipment was created"
    assert tombstone.event_type == "ShipmentCancelled"
    # AND a late OrderConfirmed then finds it and creates nothing
    assert domain.on_order_confirmed(tombstone, change()).action is domain.Action.SKIP


def test_cancel_of_a_pending_shipment_cancels_it() -> None:
    # GIVEN a PENDING shipment at version 1 (order version 2) WHEN the order's cancellation (v3) is decided
    current = shipment_in(ShipmentStatus.PENDING)
    decision = domain.on_order_cancelled(current, cancellation(version=3))
    # THEN it is replaced by the CANCELLED shipment at version 2, order version 3
    assert decision.action is domain.Action.REPLACE
    cancelled = decision.shipment
    assert cancelled is not None
    assert (cancelled.status, cancelled.version, cancelled.order_version) == (ShipmentStatus.CANCELLED, 2, 3)
    assert (cancelled.reason, cancelled.correlation_id) == (domain.CANCELLED_BEFORE_DISPATCH, "c-order")


def test_cancel_of_a_dispatched_shipment_is_skipped_dispatch_wins() -> None:
    # GIVEN a DISPATCHED shipment WHEN the order's cancellation is decided
    decision = domain.on_order_cancelled(shipment_in(ShipmentStatus.DISPATCHED, version=2), cancellation())
    # THEN nothing is written: the parcel had left
    assert (decision.action, decision.shipment) == (domain.Action.SKIP, None)
    assert decision.why == "dispatch wins: the parcel had left"


def test_cancel_of_a_cancelled_shipment_is_stale() -> None:
    # GIVEN a CANCELLED shipment WHEN a (duplicate) cancellation is decided THEN nothing is written
    decision = domain.on_order_cancelled(shipment_in(ShipmentStatus.CANCELLED, version=2), cancellation())
    assert (decision.action, decision.why) == (domain.Action.SKIP, domain.ALREADY_CANCELLED)


def test_cancel_older_than_the_order_version_applied_is_stale() -> None:
    # GIVEN a PENDING shipment that applied order version 3 WHEN a cancellation at order version 2 is decided
    decision = domain.on_order_cancelled(shipment_in(ShipmentStatus.PENDING, order_version=3), cancellation(2))
    # THEN nothing is written
    assert (decision.action, decision.why) == (domain.Action.SKIP, domain.OLDER_ORDER_VERSION)


def test_the_consumed_event_types_are_exactly_the_two_order_events() -> None:
    # GIVEN the routing table THEN shipping consumes OrderConfirmed and OrderCancelled and nothing else
    assert set(domain.ORDER_EVENT_RULES) == {"OrderConfirmed", "OrderCancelled"}


# ----------------------------------------------------------------------------------------------- dispatch
def test_dispatch_of_a_pending_shipment() -> None:
    # GIVEN a PENDING shipment WHEN it is dispatched THEN it is DISPATCHED at the next version
    dispatched = domain.dispatch(shipment_in(ShipmentStatus.PENDING), correlation_id="scan", at=LATER)
    assert (dispatched.status, dispatched.version, dispatched.event_type) == (
        ShipmentStatus.DISPATCHED,
        2,
        "ShipmentDispatched",
    )
    assert (dispatched.correlation_id, dispatched.updated_at) == ("scan", LATER)


def test_dispatch_is_idempotent() -> None:
    # GIVEN a dispatched shipment WHEN it is dispatched again THEN it is the very same shipment (nothing to write)
    shipment = shipment_in(ShipmentStatus.DISPATCHED, version=2)
    assert domain.dispatch(shipment, correlation_id="again", at=LATER) is shipment


def test_dispatch_of_a_cancelled_shipment_is_refused() -> None:
    # GIVEN a cancelled shipment WHEN it is dispatched THEN the move is refused, naming CANCELLED
    with pytest.raises(TransitionNotAllowedError) as refused:
        domain.dispatch(shipment_in(ShipmentStatus.CANCELLED), correlation_id="scan", at=LATER)
    assert refused.value.current is ShipmentStatus.CANCELLED


# ----------------------------------------------------------------------------------------------- view and state
def test_view_is_the_api_fields_only() -> None:
    # GIVEN a shipment WHEN its view is taken THEN it has the API's fields and not the bookkeeping
    view = shipment_in(ShipmentStatus.PENDING).view()
    assert view == {
        "order_id": "o-1",
        "customer_id": "cust-1",
        "lines": LINES,
        "status": "PENDING",
        "reason": None,
        "version": 1,
        "created_at": AT,
        "updated_at": AT,
    }


@pytest.mark.parametrize("status", list(ShipmentStatus))
def test_stored_state_is_the_shipment_event_of_its_status(status: ShipmentStatus) -> None:
    # GIVEN a shipment in `status` at version 2 WHEN its stored state is read as the stream publisher does
    state: dict[str, Any] = shipment_in(status, version=2).state()
    event = event_from_item(state)
    # THEN it is the shipment event of that status, at the shipment's own version, keyed by the order id
    assert event is not None
    assert (event.event_type, event.metadata.entity_version, event.metadata.entity_id) == (
        SHIPMENT_EVENT_BY_STATUS[status],
        2,
        "o-1",
    )
    assert (event.metadata.producer, event.metadata.correlation_id) == ("shipping", "c-order")
    assert state["order_version"] == 2

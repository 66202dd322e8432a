"""The orders status machine, placing, cancelling and the idempotency request hash (no AWS)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from pydantic import ValidationError

from converge.envelope import event_from_item
from converge.errors import TransitionNotAllowedError
from converge.events import ORDER_EVENT_BY_STATUS, OrderStatus
from orders import domain

AT = "2026-11-28T11:00:00+00:00"
ALLOWED = {
    (OrderStatus.PENDING, OrderStatus.CONFIRMED),
    (OrderStatus.PENDING, OrderStatus.REJECTED),
    (OrderStatus.PENDING, OrderStatus.CANCELLED),
    (OrderStatus.CONFIRMED, OrderStatus.CANCELLED),
    (OrderStatus.CONFIRMED, OrderStatus.SHIPPED),
    (OrderStatus.CANCELLED, OrderStatus.SHIPPED),
}
ALL_PAIRS = list(itertools.product(OrderStatus, OrderStatus))


def request(body: dict[str, Any]) -> Any:
    return domain.PlaceOrderRequest.model_validate(body)


def body(*lines: tuple[str, int]) -> dict[str, Any]:
    """A POST /orders body: lines only (the customer is the caller, from the token)."""
    return {"lines": [{"product_id": p, "quantity": q} for p, q in lines]}


def order_in(status: OrderStatus, version: int = 3) -> Any:
    placed = domain.place_order(
        customer_id="cust-1", request=request(body(("p1", 2))), order_id="o-1", correlation_id="c-0", at=AT
    )
    return placed.model_copy(update={"status": status, "version": version})


# ----------------------------------------------------------------------------------------------- the machine
@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transition_moves_the_order_and_bumps_the_version(current: OrderStatus, target: OrderStatus) -> None:
    # GIVEN an order in `current` at version 3
    order = order_in(current)
    # WHEN it is moved to `target`
    moved = domain.transition(order, target, correlation_id="c-1", at="2026-11-28T12:00:00+00:00")
    # THEN it has the new status, the next version, the new correlation id and time, and the matching event type
    assert (moved.status, moved.version) == (target, 4)
    assert (moved.correlation_id, moved.updated_at) == ("c-1", "2026-11-28T12:00:00+00:00")
    assert moved.event_type == ORDER_EVENT_BY_STATUS[target]


@pytest.mark.parametrize(("current", "target"), [pair for pair in ALL_PAIRS if pair not in ALLOWED])
def test_forbidden_transition_is_refused(current: OrderStatus, target: OrderStatus) -> None:
    # GIVEN an order in `current`
    order = order_in(current)
    # WHEN it is moved to a status the machine does not allow from there
    # THEN the move is refused, naming both statuses
    with pytest.raises(TransitionNotAllowedError) as refused:
        domain.transition(order, target, correlation_id="c-1", at=AT)
    assert (refused.value.current, refused.value.target) == (current, target)


def test_machine_table_is_exactly_the_documented_one() -> None:
    # GIVEN the transition table WHEN every pair is asked THEN exactly the documented six moves are allowed
    assert {pair for pair in ALL_PAIRS if domain.STATUSES.allows(*pair)} == ALLOWED


def test_reservation_outcomes_only_move_pending_orders() -> None:
    # GIVEN the reservation outcomes WHEN their source statuses are asked THEN only PENDING can move
    for target in domain.RESERVATION_OUTCOMES.values():
        assert domain.STATUSES.sources_of(target) == {OrderStatus.PENDING}
    assert domain.STATUSES.sources_of(OrderStatus.CANCELLED) == {OrderStatus.PENDING, OrderStatus.CONFIRMED}


def test_a_decided_order_is_never_moved_backwards() -> None:
    # GIVEN every status reachable after PENDING
    for status in (OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.SHIPPED):
        # WHEN the machine is asked for a way back to PENDING or to another reservation outcome
        # THEN there is none
        assert not domain.STATUSES.allows(status, OrderStatus.PENDING)
        assert not domain.STATUSES.allows(status, OrderStatus.CONFIRMED)
        assert not domain.STATUSES.allows(status, OrderStatus.REJECTED)


# ----------------------------------------------------------------------------------------------- cancel
@pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.CONFIRMED])
def test_cancel_of_an_open_order_cancels_it(status: OrderStatus) -> None:
    # GIVEN a PENDING or CONFIRMED order WHEN it is cancelled THEN it is CANCELLED at the next version
    cancelled = domain.cancel(order_in(status), correlation_id="c-9", at=AT)
    assert (cancelled.status, cancelled.version, cancelled.event_type) == (OrderStatus.CANCELLED, 4, "OrderCancelled")


def test_cancel_is_idempotent() -> None:
    # GIVEN a cancelled order
    order = order_in(OrderStatus.CANCELLED)
    # WHEN it is cancelled again
    again = domain.cancel(order, correlation_id="c-9", at=AT)
    # THEN it is the very same order: no new version, no new write
    assert again is order


def test_cancel_of_a_rejected_order_is_refused() -> None:
    # GIVEN a rejected order WHEN it is cancelled THEN the cancel is refused
    with pytest.raises(TransitionNotAllowedError):
        domain.cancel(order_in(OrderStatus.REJECTED), correlation_id="c-9", at=AT)


def test_cancel_of_a_shipped_order_is_refused() -> None:
    # GIVEN a shipped order WHEN it is cancelled THEN the cancel is refused, naming SHIPPED: the parcel has left
    with pytest.raises(TransitionNotAllowedError) as refused:
        domain.cancel(order_in(OrderStatus.SHIPPED), correlation_id="c-9", at=AT)
    assert refused.value.current is OrderStatus.SHIPPED


# ----------------------------------------------------------------------------------------------- confirmed
def test_confirming_marks_the_order_confirmed_and_cancelling_keeps_the_mark() -> None:
    # GIVEN a pending order (never confirmed)
    pending = order_in(OrderStatus.PENDING, version=1)
    assert not pending.confirmed
    # WHEN it is confirmed, then cancelled
    confirmed = domain.transition(pending, OrderStatus.CONFIRMED, correlation_id="c-1", at=AT)
    cancelled = domain.cancel(confirmed, correlation_id="c-2", at=AT)
    # THEN both remember the confirmation, and the OrderCancelled built from the stored item carries it
    assert confirmed.confirmed
    assert cancelled.confirmed
    assert cancelled.state()["confirmed"] is True
    event = event_from_item(cancelled.state())
    assert event is not None
    assert (event.event_type, event.data.model_dump()["confirmed"]) == ("OrderCancelled", True)


def test_an_order_cancelled_before_confirmation_says_it_was_not_confirmed() -> None:
    # GIVEN a pending order WHEN it is cancelled
    cancelled = domain.cancel(order_in(OrderStatus.PENDING, version=1), correlation_id="c-2", at=AT)
    # THEN the item has no confirmation mark and its OrderCancelled says confirmed = false (inventory releases)
    assert "confirmed" not in cancelled.state()
    event = event_from_item(cancelled.state())
    assert event is not None
    assert event.data.model_dump()["confirmed"] is False


@pytest.mark.parametrize("target", [OrderStatus.REJECTED, OrderStatus.CANCELLED])
def test_only_the_confirmed_transition_marks_an_order_confirmed(target: OrderStatus) -> None:
    # GIVEN a pending order WHEN it moves anywhere but CONFIRMED THEN it is not marked confirmed
    assert not domain.transition(order_in(OrderStatus.PENDING), target, correlation_id="c", at=AT).confirmed


def test_the_view_shows_whether_the_order_was_confirmed() -> None:
    # GIVEN a pending order and its confirmation WHEN they are viewed THEN the view says confirmed false, then true
    pending = order_in(OrderStatus.PENDING, version=1)
    confirmed = domain.transition(pending, OrderStatus.CONFIRMED, correlation_id="c", at=AT)
    assert (pending.view()["confirmed"], confirmed.view()["confirmed"]) == (False, True)


# ----------------------------------------------------------------------------------------------- ship
def test_dispatch_ships_a_confirmed_order_without_a_reason() -> None:
    # GIVEN a confirmed order at version 2
    confirmed = domain.transition(
        order_in(OrderStatus.PENDING, version=1), OrderStatus.CONFIRMED, correlation_id="c-1", at=AT
    )
    # WHEN its parcel is dispatched
    shipped = domain.ship(confirmed, correlation_id="c-ship", at="2026-11-28T12:00:00+00:00")
    # THEN it is SHIPPED at version 3, still marked confirmed, publishing OrderShipped with no reason
    assert (shipped.status, shipped.version, shipped.event_type) == (OrderStatus.SHIPPED, 3, "OrderShipped")
    assert (shipped.reason, shipped.confirmed, shipped.correlation_id) == (None, True, "c-ship")
    event = event_from_item(shipped.state())
    assert event is not None
    assert (event.event_type, event.metadata.entity_version) == ("OrderShipped", 3)


def test_dispatch_crossing_a_cancellation_ships_the_order_saying_the_cancellation_came_too_late() -> None:
    # GIVEN an order confirmed and then cancelled by its customer (version 3)
    order = order_in(OrderStatus.PENDING, version=1)
    order = domain.transition(order, OrderStatus.CONFIRMED, correlation_id="c-1", at=AT)
    cancelled = domain.cancel(order, correlation_id="c-2", at=AT)
    # WHEN the dispatch that crossed the cancellation arrives
    shipped = domain.ship(cancelled, correlation_id="c-ship", at=AT)
    # THEN dispatch wins: SHIPPED at version 4, with the reason that the cancellation came too late
    assert (shipped.status, shipped.version) == (OrderStatus.SHIPPED, 4)
    assert shipped.reason == domain.SHIPPED_AFTER_CANCELLATION
    assert "too late" in shipped.reason
    event = event_from_item(shipped.state())
    assert event is not None
    assert event.data.model_dump()["reason"] == domain.SHIPPED_AFTER_CANCELLATION


def test_a_duplicate_dispatch_leaves_a_shipped_order_as_it_is() -> None:
    # GIVEN a shipped order WHEN the dispatch arrives again THEN it is the very same order (no new version)
    shipped = order_in(OrderStatus.SHIPPED)
    assert domain.ship(shipped, correlation_id="c-again", at=AT) is shipped


@pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.REJECTED])
def test_a_dispatch_of_an_order_never_confirmed_is_refused(status: OrderStatus) -> None:
    # GIVEN an order that was never confirmed (shipping only ships confirmed orders: forged or drifted)
    # WHEN a dispatch is applied to it THEN it is refused, naming the status
    with pytest.raises(TransitionNotAllowedError) as refused:
        domain.ship(order_in(status), correlation_id="c", at=AT)
    assert (refused.value.current, refused.value.target) == (status, OrderStatus.SHIPPED)


# ----------------------------------------------------------------------------------------------- placing
def test_placed_order_is_pending_at_version_one_and_publishable() -> None:
    # GIVEN a valid request WHEN an order is placed
    order = domain.place_order(
        customer_id="cust-1", request=request(body(("p1", 2), ("p2", 1))), order_id="o-7", correlation_id="c-1", at=AT
    )
    # THEN it is PENDING at version 1, and its stored state is a valid OrderPlaced event
    assert (order.status, order.version) == (OrderStatus.PENDING, 1)
    event = event_from_item(order.state())
    assert event is not None
    assert (event.event_type, event.metadata.entity_version, event.metadata.entity_id) == ("OrderPlaced", 1, "o-7")


def test_order_id_is_derived_from_customer_and_key() -> None:
    # GIVEN a customer and an idempotency key WHEN the id is derived twice THEN it is the same
    assert domain.order_id_for("cust-1", "k") == domain.order_id_for("cust-1", "k")
    # AND another customer with the same key, or no key at all, gets another id
    assert domain.order_id_for("cust-2", "k") != domain.order_id_for("cust-1", "k")
    assert domain.order_id_for("cust-1", None) != domain.order_id_for("cust-1", None)


# ----------------------------------------------------------------------------------------------- request hash
def test_request_hash_ignores_key_order_whitespace_and_line_order() -> None:
    # GIVEN the same body written three ways
    compact = '{"lines":[{"product_id":"a","quantity":1},{"product_id":"b","quantity":2}]}'
    spaced = '{ "lines": [ {"quantity": 1, "product_id": "a"},\n  {"quantity": 2, "product_id": "b"} ] }'
    reordered = json.dumps(body(("b", 2), ("a", 1)))
    # WHEN each is hashed THEN the hashes are equal
    hashes = {request(json.loads(text)).request_hash("cust-1") for text in (compact, spaced, reordered)}
    assert len(hashes) == 1


@pytest.mark.parametrize(
    ("other", "customer"),
    [
        (body(("a", 1), ("b", 3)), "cust-1"),
        (body(("a", 1)), "cust-1"),
        (body(("a", 1), ("c", 2)), "cust-1"),
        (body(("a", 1), ("b", 2)), "x"),
    ],
)
def test_request_hash_changes_with_any_meaningful_difference(other: dict[str, Any], customer: str) -> None:
    # GIVEN a request and one that differs in a quantity, a line, a product or the customer
    # WHEN both are hashed THEN the hashes differ
    assert request(body(("a", 1), ("b", 2))).request_hash("cust-1") != request(other).request_hash(customer)


def test_replay_with_the_same_body_returns_the_stored_order_and_a_different_body_is_refused() -> None:
    # GIVEN an order placed from a body
    placed = domain.place_order(
        customer_id="cust-1", request=request(body(("a", 1))), order_id="o-1", correlation_id="c", at=AT
    )
    # WHEN the same body is replayed THEN the stored order stands
    assert domain.check_replay(placed, request(body(("a", 1)))) is placed
    # WHEN another body comes with the same key THEN it is refused
    with pytest.raises(domain.IdempotencyKeyReusedError):
        domain.check_replay(placed, request(body(("a", 2))))


# ----------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"customer_id": "c", "lines": [{"product_id": "a", "quantity": 1}]}, "customer_id"),  # never from the body
        ({}, "lines"),
        ({"lines": []}, "lines"),
        ({"lines": [{"product_id": "a", "quantity": "1"}]}, "lines.0.quantity"),
        ({"lines": [{"product_id": "a", "quantity": 10_001}]}, "lines.0.quantity"),
        ({"lines": [{"product_id": "a", "quantity": True}]}, "lines.0.quantity"),
        ({"lines": [{"product_id": "a b", "quantity": 1}]}, "lines.0.product_id"),
        ({"lines": [{"product_id": "a", "quantity": 1}] * 2}, "lines"),
        ({"lines": [{"product_id": f"p{i}", "quantity": 1} for i in range(51)]}, "lines"),
    ],
)
def test_invalid_requests_name_the_field(bad: dict[str, Any], field: str) -> None:
    # GIVEN an invalid body WHEN it is validated THEN the error names the offending field
    with pytest.raises(ValidationError) as invalid:
        request(bad)
    assert field in {".".join(str(p) for p in err["loc"]) for err in invalid.value.errors()}

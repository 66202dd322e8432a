"""The declared projections and the saga table (converge.projections), without AWS: what each source implies."""

from __future__ import annotations

from typing import Any

import pytest

from converge.contracts import EVENT_TYPES, SERVICES_BY_NAME, inbox_pattern, routed_pairs
from converge.projections import (
    PROJECTIONS,
    PROJECTIONS_BY_NAME,
    REINSTATE_FAILED,
    SAGA,
    SAGA_RESOLUTIONS,
    SHIPMENT_RESOLUTIONS,
    SHIPMENT_SAGA,
    Difference,
    Either,
    Resolution,
    notification_key,
    projections_of,
    reserved_by_product,
)

AVAILABILITY = PROJECTIONS_BY_NAME["availability"]
OUTCOME = PROJECTIONS_BY_NAME["order_outcome"]
NOTIFICATION = PROJECTIONS_BY_NAME["order_notification"]
LINES = [{"product_id": "p1", "quantity": 2}]


def product(version: int = 3, on_hand: int = 10, reserved: int = 2) -> dict[str, Any]:
    return {
        "pk": "PRODUCT#p1",
        "sk": "PRODUCT",
        "product_id": "p1",
        "on_hand": on_hand,
        "reserved": reserved,
        "available": on_hand - reserved,
        "version": version,
        "updated_at": "2026-11-28T10:00:00+00:00",
    }


def order(status: str, version: int = 2, reason: str | None = None) -> dict[str, Any]:
    return {
        "pk": "ORDER#o1",
        "sk": "ORDER",
        "order_id": "o1",
        "customer_id": "c1",
        "status": status,
        "version": version,
        "lines": LINES,
        "reason": reason,
        "updated_at": "2026-11-28T10:00:00+00:00",
    }


CONFIRMED_KEY = ("CUSTOMER#c1", "NOTIFICATION#ORDER_CONFIRMED#o1")
REJECTED_KEY = ("CUSTOMER#c1", "NOTIFICATION#ORDER_REJECTED#o1")


# ---------------------------------------------------------------- what each source implies
def test_availability_is_the_products_stock_at_its_version_and_absent_without_a_product() -> None:
    # GIVEN a product WHEN its availability is derived THEN one item at AVAILABILITY#<p> carries its stock
    expected = AVAILABILITY.expected(product(version=3, on_hand=10, reserved=2))
    assert list(expected) == [("AVAILABILITY#p1", "AVAILABILITY")]
    item = expected[("AVAILABILITY#p1", "AVAILABILITY")]
    assert isinstance(item, dict)
    assert {k: item[k] for k in AVAILABILITY.compared} == {
        "product_id": "p1",
        "on_hand": 10,
        "reserved": 2,
        "available": 8,
        "version": 3,
    }
    # AND without a product nothing may exist
    assert AVAILABILITY.expected(None) == {}


@pytest.mark.parametrize("status", ["CONFIRMED", "REJECTED", "CANCELLED"])
def test_an_order_outcome_exists_once_the_order_is_decided(status: str) -> None:
    # GIVEN a decided order WHEN its outcome is derived THEN it carries the order's status and version
    expected = OUTCOME.expected(order(status, version=4))
    item = expected[("ORDER#o1", "ORDER")]
    assert isinstance(item, dict)
    assert {k: item[k] for k in OUTCOME.compared} == {
        "order_id": "o1",
        "customer_id": "c1",
        "status": status,
        "version": 4,
    }
    assert list(expected) == [("ORDER#o1", "ORDER")]


def test_a_pending_or_missing_order_has_no_outcome_and_no_notification() -> None:
    for source in (order("PENDING", version=1), None):
        assert OUTCOME.expected(source) == {}
        assert NOTIFICATION.expected(source) == {}


def test_a_confirmed_order_implies_its_confirmation_under_its_customer_and_no_rejection() -> None:
    expected = NOTIFICATION.expected(order("CONFIRMED"))
    assert list(expected) == [CONFIRMED_KEY]
    item = expected[CONFIRMED_KEY]
    assert isinstance(item, dict)
    assert {k: item[k] for k in NOTIFICATION.compared} == {"kind": "ORDER_CONFIRMED", "order_id": "o1", "reason": None}


def test_a_rejected_order_implies_its_rejection_with_the_orders_reason() -> None:
    expected = NOTIFICATION.expected(order("REJECTED", reason="out of stock: p1"))
    assert list(expected) == [REJECTED_KEY]
    item = expected[REJECTED_KEY]
    assert isinstance(item, dict)
    assert {k: item[k] for k in NOTIFICATION.compared} == {
        "kind": "ORDER_REJECTED",
        "order_id": "o1",
        "reason": "out of stock: p1",
    }


def test_a_cancelled_order_may_or_may_not_have_been_confirmed_but_was_never_rejected() -> None:
    # GIVEN a cancelled order WHEN its notifications are derived
    expected = NOTIFICATION.expected(order("CANCELLED", version=3))
    # THEN its confirmation may exist or not (as it was sent), and its rejection must not
    either = expected[CONFIRMED_KEY]
    assert isinstance(either, Either)
    assert set(expected) == {CONFIRMED_KEY}
    assert NOTIFICATION.difference(order("CANCELLED"), either, None) is None
    stored = {"kind": "ORDER_CONFIRMED", "order_id": "o1"}
    assert NOTIFICATION.difference(order("CANCELLED"), either, stored) is None
    # AND a confirmation that is there but wrong (a consumer bug wrote another order id) differs
    corrupted = {"kind": "ORDER_CONFIRMED", "order_id": "o2"}
    assert NOTIFICATION.difference(order("CANCELLED"), either, corrupted) is Difference.DIFFERENT
    assert NOTIFICATION.difference(order("CANCELLED"), None, {"kind": "ORDER_REJECTED", "order_id": "o1"}) == (
        Difference.DIFFERENT
    )


def test_a_notification_belongs_to_its_order_whatever_customer_it_sits_under() -> None:
    # GIVEN notification keys under the order's customer and under another one, and unrelated items
    # THEN each names its order, so a copy under another customer is compared with the order (and is extra)
    assert NOTIFICATION.source_id_of(*notification_key("c1", "ORDER_CONFIRMED", "o1")) == "o1"
    assert NOTIFICATION.source_id_of(*notification_key("c2", "ORDER_REJECTED", "o1")) == "o1"
    assert NOTIFICATION.source_id_of("CUSTOMER#c1", "NOTIFICATION#BACK_IN_STOCK#p1") is None
    assert NOTIFICATION.source_id_of("WATCH#p1", "CUSTOMER#c1") is None
    assert "CUSTOMER#c2" not in {pk for pk, _ in NOTIFICATION.expected(order("CONFIRMED"))}


# ---------------------------------------------------------------- how a stored item differs
def availability_item(version: int, on_hand: int = 10, reserved: int = 2) -> dict[str, Any]:
    return {
        "product_id": "p1",
        "on_hand": on_hand,
        "reserved": reserved,
        "available": on_hand - reserved,
        "version": version,
    }


@pytest.mark.parametrize(
    ("source", "stored", "difference"),
    [
        (product(3), availability_item(3), None),
        (product(3), None, Difference.MISSING),
        (product(3), availability_item(2), Difference.BEHIND),
        (product(3), availability_item(4, on_hand=12), Difference.AHEAD),
        (product(3), availability_item(3, on_hand=9), Difference.DIFFERENT),
        (None, availability_item(3), Difference.ORPHANED),
        (None, None, None),
    ],
    ids=["agrees", "missing", "behind", "ahead", "different", "orphaned", "nothing"],
)
def test_availability_differs_in_every_direction(
    source: dict[str, Any] | None, stored: dict[str, Any] | None, difference: Difference | None
) -> None:
    expected = AVAILABILITY.expected(source).get(("AVAILABILITY#p1", "AVAILABILITY"))
    assert AVAILABILITY.difference(source, expected, stored) == difference


def outcome_item(status: str, version: int, customer: str = "c1") -> dict[str, Any]:
    return {"order_id": "o1", "customer_id": customer, "status": status, "version": version}


@pytest.mark.parametrize(
    ("source", "stored", "difference"),
    [
        (order("CONFIRMED", 2), outcome_item("CONFIRMED", 2), None),
        (order("CONFIRMED", 2), None, Difference.MISSING),
        (order("CANCELLED", 3), outcome_item("CONFIRMED", 2), Difference.BEHIND),
        (order("CONFIRMED", 2), outcome_item("CANCELLED", 3), Difference.AHEAD),
        (order("PENDING", 1), outcome_item("CONFIRMED", 2), Difference.AHEAD),  # ahead of a pending order
        (order("CONFIRMED", 2), outcome_item("REJECTED", 2), Difference.DIFFERENT),
        (order("CONFIRMED", 2), outcome_item("CONFIRMED", 2, customer="c2"), Difference.DIFFERENT),
        (order("PENDING", 1), outcome_item("CONFIRMED", 1), Difference.DIFFERENT),  # must be absent
        (None, outcome_item("CONFIRMED", 2), Difference.ORPHANED),
        (order("PENDING", 1), None, None),
    ],
    ids=[
        "agrees",
        "missing",
        "behind",
        "ahead",
        "ahead-of-pending",
        "different",
        "other-customer",
        "present-for-pending",
        "orphaned",
        "pending-without",
    ],
)
def test_an_order_outcome_differs_in_every_direction(
    source: dict[str, Any] | None, stored: dict[str, Any] | None, difference: Difference | None
) -> None:
    expected = OUTCOME.expected(source).get(("ORDER#o1", "ORDER"))
    assert OUTCOME.difference(source, expected, stored) == difference


@pytest.mark.parametrize(
    ("source", "key", "stored", "difference"),
    [
        (order("CONFIRMED"), CONFIRMED_KEY, {"kind": "ORDER_CONFIRMED", "order_id": "o1"}, None),
        # unversioned: a notification is never behind or ahead, only there or not, right or not
        (order("CONFIRMED", 9), CONFIRMED_KEY, {"kind": "ORDER_CONFIRMED", "order_id": "o1", "version": 1}, None),
        (order("CONFIRMED"), CONFIRMED_KEY, None, Difference.MISSING),
        (
            order("REJECTED", reason="short"),
            REJECTED_KEY,
            {"kind": "ORDER_REJECTED", "order_id": "o1"},
            Difference.DIFFERENT,
        ),
        (order("CONFIRMED"), REJECTED_KEY, {"kind": "ORDER_REJECTED", "order_id": "o1"}, Difference.DIFFERENT),
        (order("PENDING", 1), CONFIRMED_KEY, {"kind": "ORDER_CONFIRMED", "order_id": "o1"}, Difference.DIFFERENT),
        (None, CONFIRMED_KEY, {"kind": "ORDER_CONFIRMED", "order_id": "o1"}, Difference.ORPHANED),
    ],
    ids=["agrees", "unversioned", "missing", "other-reason", "rejection-of-confirmed", "for-pending", "orphaned"],
)
def test_an_order_notification_differs_in_every_direction_that_applies_to_it(
    source: dict[str, Any] | None, key: tuple[str, str], stored: dict[str, Any] | None, difference: Difference | None
) -> None:
    expected = NOTIFICATION.expected(source).get(key)
    assert NOTIFICATION.difference(source, expected, stored) == difference


def test_a_correction_observes_only_the_compared_attributes() -> None:
    stored = {"pk": "ORDER#o1", "sk": "ORDER", **outcome_item("CONFIRMED", 2), "updated_at": "t", "extra": 1}
    assert OUTCOME.observed(stored) == outcome_item("CONFIRMED", 2)
    assert OUTCOME.observed(None) is None
    assert NOTIFICATION.observed({"kind": "ORDER_CONFIRMED", "order_id": "o1"}) == {
        "kind": "ORDER_CONFIRMED",
        "order_id": "o1",
        "reason": None,
    }


@pytest.mark.parametrize("projection", PROJECTIONS, ids=lambda p: p.name)
def test_the_events_a_projection_declares_come_from_its_source_and_reach_its_service(projection: Any) -> None:
    # GIVEN the event types a projection says carry its source's state, and what its service's inbox rule routes
    # (the contract's pattern; tests/unit/test_service_contracts.py checks the template's rule is exactly that)
    routed = routed_pairs(inbox_pattern(SERVICES_BY_NAME[projection.service]))
    for event_type in projection.carried_by:
        spec = EVENT_TYPES[event_type]
        # THEN each is produced by the service that owns the source table, and routed to the projection's inbox
        assert spec.producer == projection.source.table, event_type
        assert (spec.source, event_type) in routed, event_type


def test_the_notifications_service_owns_every_declared_projection() -> None:
    assert set(projections_of("notifications")) == {"availability", "order_outcome", "order_notification"}
    assert projections_of("inventory") == {}
    assert {p.name for p in PROJECTIONS} == set(PROJECTIONS_BY_NAME)


# ---------------------------------------------------------------- the saga pair
# The contract's table, restated: order status (None: no order) x reservation status (None: no reservation).
CONTRACT = {
    None: {None: "agrees", "RESERVED": "remove", "FAILED": "remove", "RELEASED": "remove", "SHIPPED": "remove"},
    "PENDING": {
        None: "republish_order",
        "RESERVED": "republish_reservation",
        "FAILED": "republish_reservation",
        "RELEASED": "reinstate",
        "SHIPPED": "park",
    },
    "CONFIRMED": {
        None: "reinstate",
        "RESERVED": "agrees",
        "FAILED": "reinstate",
        "RELEASED": "reinstate",
        "SHIPPED": "republish_shipment",
    },
    "REJECTED": {None: "tombstone", "RESERVED": "release", "FAILED": "agrees", "RELEASED": "agrees", "SHIPPED": "park"},
    "CANCELLED": {
        None: "republish_order",
        "RESERVED": "republish_order",
        "FAILED": "agrees",
        "RELEASED": "agrees",
        "SHIPPED": "republish_shipment",
    },
    "SHIPPED": {
        None: "park",
        "RESERVED": "republish_shipment",
        "FAILED": "park",
        "RELEASED": "park",
        "SHIPPED": "agrees",
    },
}
# order status x shipment status: shipping arbitrates a confirmed order's stock, and a dispatch wins.
SHIPMENT_CONTRACT = {
    None: {None: "agrees", "PENDING": "park", "DISPATCHED": "park", "CANCELLED": "agrees"},
    "PENDING": {None: "agrees", "PENDING": "republish_reservation", "DISPATCHED": "park", "CANCELLED": "park"},
    "CONFIRMED": {
        None: "republish_order",
        "PENDING": "agrees",
        "DISPATCHED": "republish_shipment",
        "CANCELLED": "park",
    },
    "REJECTED": {None: "agrees", "PENDING": "park", "DISPATCHED": "park", "CANCELLED": "agrees"},
    "CANCELLED": {
        None: "agrees",
        "PENDING": "republish_order",
        "DISPATCHED": "republish_shipment",
        "CANCELLED": "agrees",
    },
    "SHIPPED": {None: "park", "PENDING": "park", "DISPATCHED": "agrees", "CANCELLED": "park"},
}


def test_the_saga_table_resolves_every_pair_as_the_contract_says() -> None:
    restated = {(o, r): Resolution(value) for o, row in CONTRACT.items() for r, value in row.items()}
    assert len(SAGA_RESOLUTIONS) == 30
    assert dict(SAGA_RESOLUTIONS) == restated
    restated = {(o, r): Resolution(value) for o, row in SHIPMENT_CONTRACT.items() for r, value in row.items()}
    assert dict(SHIPMENT_RESOLUTIONS) == restated


def test_only_the_quiet_outcomes_agree() -> None:
    agreeing = {pair for pair, resolution in SAGA_RESOLUTIONS.items() if resolution is Resolution.AGREES}
    assert agreeing == {
        (None, None),
        ("CONFIRMED", "RESERVED"),
        ("REJECTED", "FAILED"),
        ("REJECTED", "RELEASED"),
        ("CANCELLED", "FAILED"),
        ("CANCELLED", "RELEASED"),
        ("SHIPPED", "SHIPPED"),
    }


def test_a_confirmed_orders_cancellation_is_left_to_its_shipment() -> None:
    # GIVEN a cancelled order that had been confirmed, its stock still RESERVED
    cancelled = {**order("CANCELLED"), "confirmed": True}
    # THEN inventory waits for the shipment's news (cancelled or dispatched), not for OrderCancelled again
    assert SAGA.resolve(cancelled, reservation("RESERVED")) is Resolution.REPUBLISH_SHIPMENT
    assert SAGA.resolve(order("CANCELLED"), reservation("RESERVED")) is Resolution.REPUBLISH_ORDER
    # AND a shipment that never heard of the order's confirmation gets OrderCancelled again (its tombstone)
    assert SHIPMENT_SAGA.resolve(cancelled, None) is Resolution.REPUBLISH_ORDER
    assert SHIPMENT_SAGA.resolve(order("CANCELLED"), None) is Resolution.AGREES


def reservation(status: str, **extra: Any) -> dict[str, Any]:
    return {"pk": "RESERVATION#o1", "sk": "RESERVATION", "order_id": "o1", "status": status, "version": 3, **extra}


def test_a_reinstatement_that_already_failed_is_parked_instead_of_tried_again() -> None:
    # GIVEN a confirmed order whose reservation FAILED, once plainly and once by a failed reinstatement
    # THEN the first is reinstated and the second is parked for a person
    assert SAGA.resolve(order("CONFIRMED"), reservation("FAILED")) is Resolution.REINSTATE
    assert SAGA.resolve(order("CONFIRMED"), reservation("FAILED", **{REINSTATE_FAILED: True})) is Resolution.PARK
    # AND the mark changes nothing where the pair agrees or needs no reinstatement
    assert SAGA.resolve(order("REJECTED"), reservation("FAILED", **{REINSTATE_FAILED: True})) is Resolution.AGREES
    assert SAGA.resolve(None, reservation("FAILED", **{REINSTATE_FAILED: True})) is Resolution.REMOVE


# ---------------------------------------------------------------- derived counters
def test_a_products_reserved_is_the_sum_of_its_reserved_reservations_only() -> None:
    # GIVEN reservations in every status, some with several lines
    reservations = [
        {"status": "RESERVED", "lines": [{"product_id": "p1", "quantity": 2}, {"product_id": "p2", "quantity": 1}]},
        {"status": "RESERVED", "lines": [{"product_id": "p1", "quantity": 3}]},
        {"status": "FAILED", "lines": [{"product_id": "p1", "quantity": 7}]},
        {"status": "RELEASED", "lines": [{"product_id": "p3", "quantity": 4}]},
    ]
    # THEN only the stock RESERVED reservations hold is counted
    assert reserved_by_product(reservations) == {"p1": 5, "p2": 1}

"""Inventory rules without AWS: stock invariants, line merging, all-or-nothing reservations, release."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from converge.events import REASON_MAX_LENGTH, OrderLine, ReservationStatus
from inventory import domain


def lines(*pairs: tuple[str, int]) -> list[OrderLine]:
    return [OrderLine(product_id=p, quantity=q) for p, q in pairs]


# ---------------------------------------------------------------- stock levels
def test_stock_level_available_is_on_hand_minus_reserved() -> None:
    # GIVEN 10 on hand, 4 reserved
    level = domain.StockLevel("p1", on_hand=10, reserved=4, version=2)
    # WHEN it is viewed
    # THEN 6 are available
    assert level.view() == {"product_id": "p1", "on_hand": 10, "reserved": 4, "available": 6, "version": 2}


@pytest.mark.parametrize(("on_hand", "reserved"), [(3, 4), (-1, 0), (5, -1), (domain.MAX_ON_HAND + 1, 0)])
def test_a_stock_level_breaking_the_invariants_cannot_exist(on_hand: int, reserved: int) -> None:
    # GIVEN levels with reserved > on_hand, negatives, or beyond the event contract
    # WHEN one is built
    # THEN it is refused
    with pytest.raises(domain.InvariantViolationError):
        domain.StockLevel("p1", on_hand=on_hand, reserved=reserved)


def test_setting_on_hand_keeps_reserved_and_bumps_the_version() -> None:
    # GIVEN 10 on hand, 4 reserved, version 2
    level = domain.StockLevel("p1", 10, 4, 2)
    # WHEN on-hand is set to exactly the reserved quantity
    after = level.set_on_hand(4)
    # THEN nothing is available and the version moved on
    assert (after.on_hand, after.reserved, after.available, after.version) == (4, 4, 0, 3)


def test_setting_on_hand_below_reserved_is_a_conflict() -> None:
    # GIVEN 4 reserved
    level = domain.StockLevel("p1", 10, 4, 2)
    # WHEN on-hand is set to 3
    # THEN it conflicts, naming the reserved quantity
    with pytest.raises(domain.StockConflictError, match="below reserved 4"):
        level.set_on_hand(3)


@pytest.mark.parametrize(
    ("delta", "message"), [(-11, "negative"), (-7, "below reserved"), (domain.MAX_ON_HAND, "exceed")]
)
def test_adjustments_that_break_an_invariant_conflict(delta: int, message: str) -> None:
    # GIVEN 10 on hand, 4 reserved
    level = domain.StockLevel("p1", 10, 4, 1)
    # WHEN the adjustment is applied
    # THEN it conflicts with the reason
    with pytest.raises(domain.StockConflictError, match=message):
        level.adjust(delta)


def test_adjustment_conflict_explains_a_refusal_from_the_stored_state() -> None:
    # GIVEN the state the store returned when it refused -7
    current = domain.StockLevel("p1", 10, 4, 1)
    # WHEN the conflict is explained
    # THEN it says why; and if the state would have allowed it, it says the state changed
    assert "below reserved" in str(domain.adjustment_conflict("p1", -7, current))
    assert "concurrently" in str(domain.adjustment_conflict("p1", -1, current))


# ---------------------------------------------------------------- commands
@pytest.mark.parametrize("body", [{"on_hand": "5"}, {"on_hand": 5.0}, {"on_hand": True}, {"on_hand": -1}, {}])
def test_set_stock_command_accepts_only_a_non_negative_int(body: dict[str, Any]) -> None:
    # GIVEN a body whose on_hand is not a non-negative integer
    # WHEN it is validated
    # THEN it is refused on that field
    with pytest.raises(ValidationError) as caught:
        domain.SetStock.model_validate(body)
    assert caught.value.errors()[0]["loc"] == ("on_hand",)


@pytest.mark.parametrize("delta", [0, "1", -(domain.MAX_ON_HAND + 1)])
def test_adjust_stock_command_refuses_zero_mistyped_and_huge_deltas(delta: Any) -> None:
    # GIVEN an adjustment of zero, a string, or beyond any stock level
    # WHEN it is validated
    # THEN it is refused on delta
    with pytest.raises(ValidationError) as caught:
        domain.AdjustStock.model_validate({"delta": delta})
    assert caught.value.errors()[0]["loc"] == ("delta",)


# ---------------------------------------------------------------- reservations
def test_merge_lines_sums_duplicate_products_in_first_seen_order() -> None:
    # GIVEN an order naming p2, p1, then p2 again
    # WHEN its lines are merged
    merged = domain.merge_lines(lines(("p2", 1), ("p1", 3), ("p2", 4)))
    # THEN each product appears once with the total
    assert list(merged.items()) == [("p2", 5), ("p1", 3)]


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 10_000)), min_size=1, max_size=50))
def test_merge_lines_preserves_each_products_total(pairs: list[tuple[str, int]]) -> None:
    # GIVEN any valid order lines (a product's total may exceed the 10 000 per-line maximum)
    # WHEN they are merged
    merged = domain.merge_lines(lines(*pairs))
    # THEN each product appears once, in first-seen order, with its total
    totals: Counter[str] = Counter()
    for product_id, quantity in pairs:
        totals[product_id] += quantity
    assert list(merged) == list(dict.fromkeys(p for p, _ in pairs))
    assert merged == totals


def test_no_shortages_when_every_line_fits() -> None:
    # GIVEN enough of p1 and p2
    stock = {"p1": domain.StockLevel("p1", 5, 2), "p2": domain.StockLevel("p2", 2)}
    # WHEN an order takes exactly what is available
    # THEN nothing is short
    assert domain.shortages_of(lines(("p1", 3), ("p2", 2)), stock) == []


def test_shortages_name_every_short_or_unknown_product_after_merging() -> None:
    # GIVEN p1 with 3 available, p2 with 1, and no p9
    stock = {"p1": domain.StockLevel("p1", 3), "p2": domain.StockLevel("p2", 1), "p9": None}
    # WHEN an order wants 2+2 of p1, 1 of p2 and 1 of p9
    shortages = domain.shortages_of(lines(("p1", 2), ("p2", 1), ("p1", 2), ("p9", 1)), stock)
    # THEN p1 is short on its merged total and p9 is unknown; p2 fits
    assert shortages == [domain.Shortage("p1", 4, 3), domain.Shortage("p9", 1, None)]


def test_a_failed_reservation_reserves_nothing_and_says_why() -> None:
    # GIVEN the shortages of an order
    shortages = [domain.Shortage("p2", 2, 1), domain.Shortage("p9", 1, None)]
    # WHEN the reservation fails
    reservation = domain.failed("o1", lines(("p1", 3), ("p2", 2), ("p9", 1)), shortages)
    # THEN it is FAILED, names the short products, and says why in words
    assert reservation.status is ReservationStatus.FAILED
    assert reservation.event_type == "StockReservationFailed"
    assert reservation.shortages == ("p2", "p9")
    assert reservation.reason == ("insufficient stock for p2 (requested 2, available 1); unknown product p9")


def test_a_reservation_cannot_fail_without_a_shortage() -> None:
    # GIVEN no shortages
    # WHEN a failure is recorded anyway
    # THEN the rule refuses it: all or nothing means failure needs a reason
    with pytest.raises(domain.InvariantViolationError):
        domain.failed("o1", lines(("p1", 1)), [])


def test_a_reservation_keeps_the_order_lines_and_holds_merged_quantities() -> None:
    # GIVEN an order with a duplicate product
    order_lines = lines(("p1", 1), ("p2", 5), ("p1", 2))
    # WHEN it is reserved
    reservation = domain.reserved("o1", order_lines)
    # THEN it is RESERVED at version 1, keeps the order's lines and holds one quantity per product
    assert (reservation.status, reservation.version, reservation.event_type) == (
        ReservationStatus.RESERVED,
        1,
        "StockReserved",
    )
    assert reservation.lines == tuple(order_lines)
    assert reservation.quantities == {"p1": 3, "p2": 5}


def test_releasing_moves_reserved_to_released_one_version_on() -> None:
    # GIVEN a RESERVED reservation
    reservation = domain.reserved("o1", lines(("p1", 3)))
    # WHEN it is released
    released = reservation.released()
    # THEN it is RELEASED at version 2 with the same lines
    assert (released.status, released.version, released.event_type) == (ReservationStatus.RELEASED, 2, "StockReleased")
    assert released.lines == reservation.lines


@pytest.mark.parametrize("status", [ReservationStatus.FAILED, ReservationStatus.RELEASED])
def test_only_a_reserved_reservation_can_be_released(status: ReservationStatus) -> None:
    # GIVEN a reservation that holds no stock
    reservation = domain.Reservation("o1", tuple(lines(("p1", 1))), status)
    # WHEN it is released
    # THEN it is refused: there is nothing to give back
    with pytest.raises(domain.InvariantViolationError):
        reservation.released()


def test_shipping_consumes_a_reserved_reservation_one_version_on() -> None:
    # GIVEN a RESERVED reservation at version 1
    reservation = domain.reserved("o1", lines(("p1", 3), ("p2", 1), ("p1", 1)))
    # WHEN its parcel is dispatched
    shipped = reservation.shipped()
    # THEN it is SHIPPED at version 2 (publishing StockShipped) with the same lines and quantities
    assert (shipped.status, shipped.version, shipped.event_type) == (ReservationStatus.SHIPPED, 2, "StockShipped")
    assert shipped.lines == reservation.lines
    assert shipped.quantities == {"p1": 4, "p2": 1}


@pytest.mark.parametrize("status", [ReservationStatus.FAILED, ReservationStatus.RELEASED, ReservationStatus.SHIPPED])
def test_only_a_reserved_reservation_can_be_shipped(status: ReservationStatus) -> None:
    # GIVEN a reservation that holds no stock
    reservation = domain.Reservation("o1", tuple(lines(("p1", 1))), status)
    # WHEN it is shipped
    # THEN it is refused as stock that was not held (an invariant violation: never applied, never dropped)
    with pytest.raises(domain.StockNotHeldError, match="dispatched stock was not held") as refused:
        reservation.shipped()
    assert isinstance(refused.value, domain.InvariantViolationError)


def test_a_dispatch_consumes_a_reserved_reservation_and_skips_a_shipped_one() -> None:
    # GIVEN a RESERVED reservation and the same one already SHIPPED
    reservation = domain.reserved("o1", lines(("p1", 3)))
    # WHEN a dispatch asks what to consume
    # THEN the RESERVED one is consumed and the SHIPPED one is a duplicate (nothing to do)
    assert domain.to_ship("o1", reservation) is reservation
    assert domain.to_ship("o1", reservation.shipped()) is None


@pytest.mark.parametrize("status", [None, ReservationStatus.RELEASED, ReservationStatus.FAILED])
def test_a_dispatch_of_stock_not_held_is_refused(status: ReservationStatus | None) -> None:
    # GIVEN no reservation, or one that holds no stock (impossible under the arbiter rule unless drifted or forged)
    current = None if status is None else domain.Reservation("o1", tuple(lines(("p1", 1))), status)
    # WHEN a dispatch asks what to consume
    # THEN it is refused, saying the stock was not held and what the reservation is
    with pytest.raises(domain.StockNotHeldError) as refused:
        domain.to_ship("o1", current)
    assert str(refused.value) == f"dispatched stock was not held: reservation o1 is {status or 'absent'}"
    assert refused.value.status is status


def test_only_a_cancellation_of_an_unconfirmed_order_releases_its_stock() -> None:
    # GIVEN cancellations of a never-confirmed and of a confirmed order
    # WHEN inventory asks whether to release
    # THEN only the unconfirmed one releases; the confirmed one is left to shipping (the arbiter)
    assert domain.releases_stock(confirmed=False)
    assert not domain.releases_stock(confirmed=True)


def test_a_tombstone_is_released_without_having_reserved() -> None:
    # GIVEN an order cancelled before it was reserved
    # WHEN its tombstone is made
    tomb = domain.tombstone("o1", lines(("p1", 1), ("p1", 1)))
    # THEN it is RELEASED at version 1 and says why
    assert (tomb.status, tomb.version, tomb.reason, tomb.event_type) == (
        ReservationStatus.RELEASED,
        1,
        domain.CANCELLED_BEFORE_RESERVATION,
        "StockReleased",
    )


def test_reason_of_many_shortages_stays_within_the_contract() -> None:
    # GIVEN fifty shortages whose descriptions together exceed the contract's reason length
    parts = [f"insufficient stock for product-{i:03d} (requested 9999, available 0)" for i in range(50)]
    # WHEN they are summarised
    reason = domain.summarise(parts)
    # THEN the reason fits, starts with the first shortages and says how many more there are
    assert len(reason) <= REASON_MAX_LENGTH
    assert reason.startswith(parts[0])
    kept = reason.count("insufficient stock")
    assert reason.endswith(f"; and {50 - kept} more")


def test_short_reasons_are_left_whole() -> None:
    assert domain.summarise(["a", "b"]) == "a; b"

"""The inventory use cases' retry logic, against a fake store (no AWS): reserve once, release and ship under races."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from converge.consumer import Outcome
from converge.entities import WriteContext
from converge.errors import ConcurrentUpdateError
from converge.events import OrderLine, ReservationStatus
from inventory import domain, service

LINES = [OrderLine(product_id="p1", quantity=2)]


class FakeInventory:
    """Reservations in a dict and stock per product; writes are conditional on the version read, as the table's.

    `before_write` lets a test race another writer in before the next conditional write."""

    def __init__(self, stock: int = 10) -> None:
        self.reservations: dict[str, domain.Reservation] = {}
        self.available = {"p1": stock}
        self.before_write: list[Callable[[], object]] = []

    def _race(self) -> None:
        if self.before_write:
            self.before_write.pop(0)()

    def get_reservation(self, order_id: str) -> domain.Reservation | None:
        return self.reservations.get(order_id)

    def put_new_reservation(self, reservation: domain.Reservation, context: WriteContext) -> bool:
        self._race()
        return self.reservations.setdefault(reservation.order_id, reservation) is reservation

    def reserve(self, reservation: domain.Reservation, context: WriteContext) -> None:
        self._race()
        if reservation.order_id in self.reservations:
            raise domain.ReservationExistsError(reservation.order_id)
        short = [
            domain.Shortage(p, q, self.available.get(p))
            for p, q in reservation.quantities.items()
            if self.available.get(p, 0) < q
        ]
        if short:
            raise domain.InsufficientStockError(short)
        for p, q in reservation.quantities.items():
            self.available[p] -= q
        self.reservations[reservation.order_id] = reservation

    def _settle(self, reservation: domain.Reservation, moved: domain.Reservation, give_back: bool) -> None:
        self._race()
        if self.reservations.get(reservation.order_id) != reservation:
            raise ConcurrentUpdateError(f"reservation {reservation.order_id} changed since it was read")
        if give_back:
            for p, q in reservation.quantities.items():
                self.available[p] += q
        self.reservations[reservation.order_id] = moved

    # Not used by the use cases under test: a call is a test failure.
    def get_product(self, product_id: str) -> domain.StockLevel | None:
        raise AssertionError("not used here")

    def set_stock(self, product_id: str, on_hand: int, context: WriteContext) -> domain.StockLevel:
        raise AssertionError("not used here")

    def adjust_stock(self, product_id: str, delta: int, context: WriteContext) -> domain.StockLevel:
        raise AssertionError("not used here")

    def remove(self, reservation: domain.Reservation, context: WriteContext) -> None:
        raise AssertionError("not used here")

    def reinstate(
        self, reinstatement: domain.Reservation, observed: domain.Reservation | None, context: WriteContext
    ) -> None:
        raise AssertionError("not used here")

    def replace_reservation(
        self, reservation: domain.Reservation, observed: domain.Reservation | None, context: WriteContext
    ) -> bool:
        raise AssertionError("not used here")

    def recount(self, level: domain.StockLevel, observed_version: int, context: WriteContext) -> bool:
        raise AssertionError("not used here")

    def release(self, reservation: domain.Reservation, context: WriteContext) -> None:
        self._settle(reservation, reservation.released(), give_back=True)

    def ship(self, reservation: domain.Reservation, context: WriteContext) -> None:
        self._settle(reservation, reservation.shipped(), give_back=False)


def test_a_redelivered_placement_reserves_once() -> None:
    # GIVEN an order reserved once
    inventory = FakeInventory()
    assert service.reserve_stock(inventory, "o-1", LINES, "c") is Outcome.APPLIED
    # WHEN its placement is delivered again
    outcome = service.reserve_stock(inventory, "o-1", LINES, "c")
    # THEN nothing more is reserved
    assert outcome is Outcome.STALE
    assert inventory.available == {"p1": 8}


def test_a_placement_short_of_stock_records_the_failure_once() -> None:
    # GIVEN too little stock
    inventory = FakeInventory(stock=1)
    # WHEN the order is placed, and delivered again
    outcomes = [service.reserve_stock(inventory, "o-1", LINES, "c") for _ in range(2)]
    # THEN a FAILED reservation naming the shortage is written once, and no stock moves
    assert outcomes == [Outcome.APPLIED, Outcome.STALE]
    assert inventory.reservations["o-1"].status is ReservationStatus.FAILED
    assert inventory.reservations["o-1"].shortages == ("p1",)
    assert inventory.available == {"p1": 1}


def test_a_cancellation_that_overtakes_its_placement_leaves_a_tombstone_and_the_late_placement_reserves_nothing() -> (
    None
):
    # GIVEN no reservation yet
    inventory = FakeInventory()
    # WHEN the cancellation is applied, then the late placement
    released = service.release_stock(inventory, "o-1", LINES, "c")
    reserved = service.reserve_stock(inventory, "o-1", LINES, "c")
    # THEN the tombstone stands and no stock is held
    assert (released, reserved) == (Outcome.APPLIED, Outcome.STALE)
    assert inventory.reservations["o-1"].reason == domain.CANCELLED_BEFORE_RESERVATION
    assert inventory.available == {"p1": 10}


def test_a_release_that_races_the_placement_releases_what_was_reserved_meanwhile() -> None:
    # GIVEN no reservation when the release reads, and the placement reserved just before its tombstone is written
    inventory = FakeInventory()
    inventory.before_write.append(lambda: inventory.reserve(domain.reserved("o-1", LINES), WriteContext("p", "t")))
    # WHEN the cancellation is applied
    outcome = service.release_stock(inventory, "o-1", LINES, "c")
    # THEN the tombstone is refused, the release reads again and gives the reservation back
    assert outcome is Outcome.APPLIED
    assert inventory.reservations["o-1"].status is ReservationStatus.RELEASED
    assert inventory.available == {"p1": 10}


def test_a_release_that_keeps_losing_gives_up_for_sqs_to_retry() -> None:
    # GIVEN a reservation that changes under every one of the release's writes
    inventory = FakeInventory()
    service.reserve_stock(inventory, "o-1", LINES, "c")

    def touch() -> None:
        current = inventory.reservations["o-1"]
        inventory.reservations["o-1"] = domain.Reservation(
            current.order_id, current.lines, current.status, version=current.version + 1
        )

    inventory.before_write += [touch] * service.RELEASE_ATTEMPTS
    # WHEN the cancellation is applied
    # THEN it fails (a batch item failure, retried), and the stock is still held
    with pytest.raises(ConcurrentUpdateError, match="kept changing during release"):
        service.release_stock(inventory, "o-1", LINES, "c")
    assert inventory.available == {"p1": 8}


def test_a_dispatch_that_loses_one_race_ships_on_fresh_state_and_a_duplicate_changes_nothing() -> None:
    # GIVEN a reservation touched once between the dispatch's read and its write
    inventory = FakeInventory()
    service.reserve_stock(inventory, "o-1", LINES, "c")
    current = inventory.reservations["o-1"]
    inventory.before_write.append(
        lambda: inventory.reservations.update(
            {"o-1": domain.Reservation(current.order_id, current.lines, current.status, version=2)}
        )
    )
    # WHEN the dispatch is applied, then delivered again
    outcomes = [service.ship_stock(inventory, "o-1", "c") for _ in range(2)]
    # THEN it ships once
    assert outcomes == [Outcome.APPLIED, Outcome.STALE]
    assert inventory.reservations["o-1"].status is ReservationStatus.SHIPPED

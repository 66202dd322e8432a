"""Inventory use cases: what a command or an inbound event does, in domain terms (the store does the I/O).

Each takes the inventory store it works on (`Inventory`, built by the entry point; unit tests hand in a fake).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from converge.consumer import Outcome
from converge.entities import WriteContext
from converge.errors import ConcurrentUpdateError
from converge.events import (
    DomainEvent,
    OrderData,
    OrderLine,
    ReservationAction,
    ReservationCorrected,
    ReservationStatus,
    ReservedRecounted,
    ShipmentData,
    stock_lines,
)
from converge.observability import logger
from inventory import domain


class Inventory(Protocol):
    """What the use cases need from the inventory table (inventory.store.InventoryStore)."""

    def get_product(self, product_id: str) -> domain.StockLevel | None: ...

    def set_stock(self, product_id: str, on_hand: int, context: WriteContext) -> domain.StockLevel: ...

    def adjust_stock(self, product_id: str, delta: int, context: WriteContext) -> domain.StockLevel: ...

    def get_reservation(self, order_id: str) -> domain.Reservation | None: ...

    def put_new_reservation(self, reservation: domain.Reservation, context: WriteContext) -> bool: ...

    def reserve(self, reservation: domain.Reservation, context: WriteContext) -> None: ...

    def release(self, reservation: domain.Reservation, context: WriteContext) -> None: ...

    def ship(self, reservation: domain.Reservation, context: WriteContext) -> None: ...

    def remove(self, reservation: domain.Reservation, context: WriteContext) -> None: ...

    def reinstate(
        self, reinstatement: domain.Reservation, observed: domain.Reservation | None, context: WriteContext
    ) -> None: ...

    def replace_reservation(
        self, reservation: domain.Reservation, observed: domain.Reservation | None, context: WriteContext
    ) -> bool: ...

    def recount(self, level: domain.StockLevel, observed_version: int, context: WriteContext) -> bool: ...


# A release races at most with the placement of the same order (a dispatch with a correction of it); a few
# rounds settle it, then SQS retries.
RELEASE_ATTEMPTS = 3


def reserve_stock(inventory: Inventory, order_id: str, lines: Sequence[OrderLine], correlation_id: str) -> Outcome:
    """Reserve every line of an order or none; a second delivery of the same order changes nothing."""
    context = WriteContext.now(correlation_id)
    try:
        inventory.reserve(domain.reserved(order_id, lines), context)
    except domain.ReservationExistsError:
        return Outcome.STALE
    except domain.InsufficientStockError as short:
        written = inventory.put_new_reservation(domain.failed(order_id, lines, short.shortages), context)
        return Outcome.APPLIED if written else Outcome.STALE
    return Outcome.APPLIED


def _until_settled(order_id: str, doing: str, attempt: Callable[[], Outcome | None]) -> Outcome:
    """Run `attempt` (read the reservation, decide, write) until it settles; None: it changed under us, read again."""
    for _ in range(RELEASE_ATTEMPTS):
        outcome = attempt()
        if outcome is not None:
            return outcome
    raise ConcurrentUpdateError(f"reservation {order_id} kept changing during {doing}")


def release_stock(inventory: Inventory, order_id: str, lines: Sequence[OrderLine], correlation_id: str) -> Outcome:
    """Give back an order's reservation; if the cancellation overtook the placement, leave a tombstone."""
    context = WriteContext.now(correlation_id)

    def attempt() -> Outcome | None:
        current = inventory.get_reservation(order_id)
        if current is None:
            # None: the placement was reserved meanwhile, release that.
            return (
                Outcome.APPLIED if inventory.put_new_reservation(domain.tombstone(order_id, lines), context) else None
            )
        if current.status is not ReservationStatus.RESERVED:
            # Already released, nothing was ever reserved (FAILED), or the stock left with its parcel (SHIPPED).
            return Outcome.STALE
        try:
            inventory.release(current, context)
        except ConcurrentUpdateError:
            return None
        return Outcome.APPLIED

    return _until_settled(order_id, "release", attempt)


def ship_stock(inventory: Inventory, order_id: str, correlation_id: str) -> Outcome:
    """Consume an order's reservation as its parcel leaves; a second delivery of the dispatch changes nothing.

    StockNotHeldError (a batch item failure, so redriven and then parked in the DLQ) if the reservation holds no
    stock: consuming it anyway could leave on_hand below reserved (domain.StockNotHeldError).
    """
    context = WriteContext.now(correlation_id)

    def attempt() -> Outcome | None:
        current = domain.to_ship(order_id, inventory.get_reservation(order_id))
        if current is None:
            logger.info("reservation already shipped: duplicate dispatch", extra={"order_id": order_id})
            return Outcome.STALE
        try:
            inventory.ship(current, context)
        except ConcurrentUpdateError:
            return None
        return Outcome.APPLIED

    return _until_settled(order_id, "dispatch", attempt)


def on_order_placed(order: OrderData, event: DomainEvent, inventory: Inventory) -> Outcome:
    return reserve_stock(inventory, order.order_id, stock_lines(order.lines), event.metadata.correlation_id)


def on_order_cancelled(order: OrderData, event: DomainEvent, inventory: Inventory) -> Outcome:
    if not domain.releases_stock(order.confirmed):
        logger.info(
            "cancellation of a confirmed order: its reservation is left to shipping",
            extra={"order_id": order.order_id},
        )
        return Outcome.STALE
    return release_stock(inventory, order.order_id, stock_lines(order.lines), event.metadata.correlation_id)


def on_shipment_cancelled(shipment: ShipmentData, event: DomainEvent, inventory: Inventory) -> Outcome:
    """Shipping's decision that the parcel will not leave: release exactly as an unconfirmed cancellation does."""
    return release_stock(inventory, shipment.order_id, shipment.lines, event.metadata.correlation_id)


def on_shipment_dispatched(shipment: ShipmentData, event: DomainEvent, inventory: Inventory) -> Outcome:
    """Shipping's decision that the parcel left (dispatch wins): the held stock leaves on_hand and reserved."""
    return ship_stock(inventory, shipment.order_id, event.metadata.correlation_id)


# ---------------------------------------------------------------- corrections (sent by the reconciler only)
def _release(
    inventory: Inventory, correction: ReservationCorrected, current: domain.Reservation | None, context: WriteContext
) -> None:
    if current is None or current.status is not ReservationStatus.RESERVED:
        raise domain.InvariantViolationError(f"reservation {correction.order_id} holds no stock to release")
    inventory.release(current, context)


def _remove(
    inventory: Inventory, correction: ReservationCorrected, current: domain.Reservation | None, context: WriteContext
) -> None:
    if current is None:
        return  # already gone
    inventory.remove(current, context)


def _reinstate(
    inventory: Inventory, correction: ReservationCorrected, current: domain.Reservation | None, context: WriteContext
) -> None:
    lines = correction.lines
    try:
        inventory.reinstate(domain.reinstated(correction.order_id, lines, current), current, context)
    except domain.InsufficientStockError as short:
        # Marked, so the reconciler does not ask again: a pending order is then rejected by the event this
        # write publishes; a confirmed one is parked for a person (docs/CONSISTENCY.md).
        failure = domain.reinstatement_failed(correction.order_id, lines, current, short.shortages)
        if not inventory.replace_reservation(failure, current, context):
            raise ConcurrentUpdateError(f"reservation {correction.order_id} changed meanwhile") from None


def _tombstone(
    inventory: Inventory, correction: ReservationCorrected, current: domain.Reservation | None, context: WriteContext
) -> None:
    tombstone = domain.tombstone(correction.order_id, correction.lines)
    rejected = domain.Reservation(
        tombstone.order_id, tombstone.lines, tombstone.status, domain.REJECTED_WITHOUT_RESERVATION
    )
    if not inventory.put_new_reservation(rejected, context):
        raise ConcurrentUpdateError(f"reservation {correction.order_id} appeared meanwhile")


CORRECTIONS: dict[
    ReservationAction, Callable[[Inventory, ReservationCorrected, domain.Reservation | None, WriteContext], None]
] = {
    ReservationAction.RELEASE: _release,
    ReservationAction.REMOVE: _remove,
    ReservationAction.REINSTATE: _reinstate,
    ReservationAction.TOMBSTONE: _tombstone,
}


def on_reservation_corrected(correction: ReservationCorrected, event: DomainEvent, inventory: Inventory) -> Outcome:
    """The reconciler's resolution of a saga disagreement, applied only to the reservation it observed."""
    current = inventory.get_reservation(correction.order_id)
    extra = {"order_id": correction.order_id, "action": correction.action.value, "reason": correction.reason}
    if not domain.as_observed(current, correction.observed_status, correction.observed_version):
        logger.info("reservation correction skipped: the reservation changed since it was observed", extra=extra)
        return Outcome.STALE
    try:
        CORRECTIONS[correction.action](inventory, correction, current, WriteContext.now(event.metadata.correlation_id))
    except ConcurrentUpdateError:
        logger.info("reservation correction skipped: the reservation changed while applying it", extra=extra)
        return Outcome.STALE
    logger.info("reservation corrected", extra=extra)
    return Outcome.APPLIED


def on_reserved_recounted(recount: ReservedRecounted, event: DomainEvent, inventory: Inventory) -> Outcome:
    """Set a product's `reserved` to its counted ledger, if the product is still at the observed version."""
    level = inventory.get_product(recount.product_id)
    if level is None or level.version != recount.observed_version:
        logger.info(
            "recount skipped: the product changed since it was counted", extra={"product_id": recount.product_id}
        )
        return Outcome.STALE
    recounted = domain.recounted(level, recount.reserved)
    if not inventory.recount(recounted, recount.observed_version, WriteContext.now(event.metadata.correlation_id)):
        return Outcome.STALE
    logger.info(
        "reserved recounted",
        extra={"product_id": recount.product_id, "reserved": recount.reserved, "was": level.reserved},
    )
    return Outcome.APPLIED

"""Inventory use cases: what a command or an inbound event does, in domain terms (the store does the I/O)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from converge.consumer import Outcome
from converge.errors import MalformedEventError
from converge.events import (
    DomainEvent,
    EventData,
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
from inventory import domain, store

PayloadT = TypeVar("PayloadT", bound=EventData)

# A release races at most with the placement of the same order (a dispatch with a correction of it); a few
# rounds settle it, then SQS retries.
RELEASE_ATTEMPTS = 3


def reserve_stock(order_id: str, lines: Sequence[OrderLine], correlation_id: str) -> Outcome:
    """Reserve every line of an order or none; a second delivery of the same order changes nothing."""
    context = store.WriteContext.now(correlation_id)
    try:
        store.reserve(domain.reserved(order_id, lines), context)
    except domain.ReservationExists:
        return Outcome.STALE
    except domain.InsufficientStock as short:
        written = store.put_new_reservation(domain.failed(order_id, lines, short.shortages), context)
        return Outcome.APPLIED if written else Outcome.STALE
    return Outcome.APPLIED


def _until_settled(order_id: str, doing: str, attempt: Callable[[], Outcome | None]) -> Outcome:
    """Run `attempt` (read the reservation, decide, write) until it settles; None: it changed under us, read again."""
    for _ in range(RELEASE_ATTEMPTS):
        outcome = attempt()
        if outcome is not None:
            return outcome
    raise domain.ConcurrentModification(f"reservation {order_id} kept changing during {doing}")


def release_stock(order_id: str, lines: Sequence[OrderLine], correlation_id: str) -> Outcome:
    """Give back an order's reservation; if the cancellation overtook the placement, leave a tombstone."""
    context = store.WriteContext.now(correlation_id)

    def attempt() -> Outcome | None:
        current = store.get_reservation(order_id)
        if current is None:
            # None: the placement was reserved meanwhile, release that.
            return Outcome.APPLIED if store.put_new_reservation(domain.tombstone(order_id, lines), context) else None
        if current.status is not ReservationStatus.RESERVED:
            # Already released, nothing was ever reserved (FAILED), or the stock left with its parcel (SHIPPED).
            return Outcome.STALE
        try:
            store.release(current, context)
        except domain.ConcurrentModification:
            return None
        return Outcome.APPLIED

    return _until_settled(order_id, "release", attempt)


def ship_stock(order_id: str, correlation_id: str) -> Outcome:
    """Consume an order's reservation as its parcel leaves; a second delivery of the dispatch changes nothing.

    StockNotHeld (a batch item failure, so redriven and then parked in the DLQ) if the reservation holds no
    stock: consuming it anyway could leave on_hand below reserved (domain.StockNotHeld).
    """
    context = store.WriteContext.now(correlation_id)

    def attempt() -> Outcome | None:
        current = domain.to_ship(order_id, store.get_reservation(order_id))
        if current is None:
            logger.info("reservation already shipped: duplicate dispatch", extra={"order_id": order_id})
            return Outcome.STALE
        try:
            store.ship(current, context)
        except domain.ConcurrentModification:
            return None
        return Outcome.APPLIED

    return _until_settled(order_id, "dispatch", attempt)


def _payload(event: DomainEvent, model: type[PayloadT]) -> PayloadT:
    data = event.data
    if not isinstance(data, model):
        raise TypeError(f"{event.event_type} does not carry {model.__name__}")
    return data


def on_order_placed(event: DomainEvent) -> Outcome:
    order = _payload(event, OrderData)
    return reserve_stock(order.order_id, stock_lines(order.lines), event.metadata.correlation_id)


def on_order_cancelled(event: DomainEvent) -> Outcome:
    order = _payload(event, OrderData)
    if not domain.releases_stock(order.confirmed):
        logger.info(
            "cancellation of a confirmed order: its reservation is left to shipping",
            extra={"order_id": order.order_id},
        )
        return Outcome.STALE
    return release_stock(order.order_id, stock_lines(order.lines), event.metadata.correlation_id)


def on_shipment_cancelled(event: DomainEvent) -> Outcome:
    """Shipping's decision that the parcel will not leave: release exactly as an unconfirmed cancellation does."""
    shipment = _payload(event, ShipmentData)
    return release_stock(shipment.order_id, shipment.lines, event.metadata.correlation_id)


def on_shipment_dispatched(event: DomainEvent) -> Outcome:
    """Shipping's decision that the parcel left (dispatch wins): the held stock leaves on_hand and reserved."""
    shipment = _payload(event, ShipmentData)
    return ship_stock(shipment.order_id, event.metadata.correlation_id)


# ---------------------------------------------------------------- corrections (sent by the reconciler only)
def _release(correction: ReservationCorrected, current: domain.Reservation | None, context: store.WriteContext) -> None:
    if current is None or current.status is not ReservationStatus.RESERVED:
        raise domain.InvariantViolation(f"reservation {correction.order_id} holds no stock to release")
    store.release(current, context)


def _remove(correction: ReservationCorrected, current: domain.Reservation | None, context: store.WriteContext) -> None:
    if current is None:
        return  # already gone
    store.remove(current, context)


def _reinstate(
    correction: ReservationCorrected, current: domain.Reservation | None, context: store.WriteContext
) -> None:
    lines = correction.lines
    try:
        store.reinstate(domain.reinstated(correction.order_id, lines, current), current, context)
    except domain.InsufficientStock as short:
        # Marked, so the reconciler does not ask again: a pending order is then rejected by the event this
        # write publishes; a confirmed one is parked for a person (docs/CONSISTENCY.md).
        failure = domain.reinstatement_failed(correction.order_id, lines, current, short.shortages)
        if not store.replace_reservation(failure, current, context):
            raise domain.ConcurrentModification(f"reservation {correction.order_id} changed meanwhile") from None


def _tombstone(
    correction: ReservationCorrected, current: domain.Reservation | None, context: store.WriteContext
) -> None:
    tombstone = domain.tombstone(correction.order_id, correction.lines)
    rejected = domain.Reservation(
        tombstone.order_id, tombstone.lines, tombstone.status, domain.REJECTED_WITHOUT_RESERVATION
    )
    if not store.put_new_reservation(rejected, context):
        raise domain.ConcurrentModification(f"reservation {correction.order_id} appeared meanwhile")


CORRECTIONS: dict[
    ReservationAction, Callable[[ReservationCorrected, domain.Reservation | None, store.WriteContext], None]
] = {
    ReservationAction.RELEASE: _release,
    ReservationAction.REMOVE: _remove,
    ReservationAction.REINSTATE: _reinstate,
    ReservationAction.TOMBSTONE: _tombstone,
}


def on_reservation_corrected(event: DomainEvent) -> Outcome:
    """The reconciler's resolution of a saga disagreement, applied only to the reservation it observed."""
    correction = event.data
    if not isinstance(correction, ReservationCorrected):
        raise MalformedEventError(f"{event.event_type} does not carry a reservation correction")
    current = store.get_reservation(correction.order_id)
    extra = {"order_id": correction.order_id, "action": correction.action.value, "reason": correction.reason}
    if not domain.as_observed(current, correction.observed_status, correction.observed_version):
        logger.info("reservation correction skipped: the reservation changed since it was observed", extra=extra)
        return Outcome.STALE
    try:
        CORRECTIONS[correction.action](correction, current, store.WriteContext.now(event.metadata.correlation_id))
    except domain.ConcurrentModification:
        logger.info("reservation correction skipped: the reservation changed while applying it", extra=extra)
        return Outcome.STALE
    logger.info("reservation corrected", extra=extra)
    return Outcome.APPLIED


def on_reserved_recounted(event: DomainEvent) -> Outcome:
    """Set a product's `reserved` to its counted ledger, if the product is still at the observed version."""
    recount = event.data
    if not isinstance(recount, ReservedRecounted):
        raise MalformedEventError(f"{event.event_type} does not carry a recount")
    level = store.get_product(recount.product_id)
    if level is None or level.version != recount.observed_version:
        logger.info(
            "recount skipped: the product changed since it was counted", extra={"product_id": recount.product_id}
        )
        return Outcome.STALE
    recounted = domain.recounted(level, recount.reserved)
    if not store.recount(recounted, recount.observed_version, store.WriteContext.now(event.metadata.correlation_id)):
        return Outcome.STALE
    logger.info(
        "reserved recounted",
        extra={"product_id": recount.product_id, "reserved": recount.reserved, "was": level.reserved},
    )
    return Outcome.APPLIED

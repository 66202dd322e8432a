"""Inventory use cases: what a command or an inbound event does, in domain terms (the store does the I/O)."""

from __future__ import annotations

from collections.abc import Sequence

from converge.consumer import Outcome
from converge.events import DomainEvent, OrderData, OrderLine, ReservationStatus

import domain
import store

# A release races at most with the placement of the same order; a few rounds settle it, then SQS retries.
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


def release_stock(order_id: str, lines: Sequence[OrderLine], correlation_id: str) -> Outcome:
    """Give back an order's reservation; if the cancellation overtook the placement, leave a tombstone."""
    context = store.WriteContext.now(correlation_id)
    for _ in range(RELEASE_ATTEMPTS):
        current = store.get_reservation(order_id)
        if current is None:
            if store.put_new_reservation(domain.tombstone(order_id, lines), context):
                return Outcome.APPLIED
            continue  # the placement was reserved meanwhile: release that
        if current.status is not ReservationStatus.RESERVED:
            return Outcome.STALE  # already released, or nothing was ever reserved (FAILED)
        try:
            store.release(current, context)
        except domain.ConcurrentModification:
            continue
        return Outcome.APPLIED
    raise domain.ConcurrentModification(f"reservation {order_id} kept changing during release")


def _order(event: DomainEvent) -> OrderData:
    data = event.data
    if not isinstance(data, OrderData):
        raise TypeError(f"{event.event_type} does not carry an order")
    return data


def on_order_placed(event: DomainEvent) -> Outcome:
    order = _order(event)
    return reserve_stock(order.order_id, order.lines, event.metadata.correlation_id)


def on_order_cancelled(event: DomainEvent) -> Outcome:
    order = _order(event)
    return release_stock(order.order_id, order.lines, event.metadata.correlation_id)

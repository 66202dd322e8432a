"""Orders use cases: placing, cancelling, and the reactions to reservation outcomes and dispatches.

Each takes the orders store it works on (`Orders`, built by the entry point; unit tests hand in a fake), decides
with the domain's rules and writes conditionally; a write that lost a race is decided again on fresh state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from converge.authz import Caller
from converge.consumer import Outcome
from converge.entities import WriteContext, decide_again, utc_now
from converge.errors import ConcurrentUpdateError, TransitionNotAllowedError
from converge.events import DomainEvent, OrderStatus, ReservationData, ShipmentData
from converge.observability import logger, metrics
from orders import domain

# A dispatch races at most with the customer's cancel of the same order; a second read settles it, then SQS retries.
SHIP_ATTEMPTS = 2
# A cancel races at most with the reservation outcome or another cancel: decide once more, then answer 409.
CANCEL_ATTEMPTS = 2


class Orders(Protocol):
    """What the use cases need from the orders table (orders.store.OrderStore)."""

    def create(self, order: domain.Order) -> domain.Order | None: ...

    def get(self, order_id: str) -> domain.Order | None: ...

    def replace_state(self, current: domain.Order, updated: domain.Order) -> domain.Order: ...

    def record_outcome(
        self, order_id: str, target: OrderStatus, context: WriteContext, reason: str | None, shortages: Sequence[str]
    ) -> bool: ...


def place(
    orders: Orders,
    request: domain.PlaceOrderRequest,
    *,
    caller: Caller,
    idempotency_key: str | None,
    correlation_id: str,
) -> tuple[domain.Order, bool]:
    """The placed order and whether it was already there (a replayed keyed request: nothing written).

    IdempotencyKeyReusedError if the key was used with another body."""
    customer_id = caller.subject
    order = domain.place_order(
        request,
        customer_id=customer_id,
        order_id=domain.order_id_for(customer_id, idempotency_key),
        correlation_id=correlation_id,
        at=utc_now(),
    )
    existing = orders.create(order)
    if existing is not None:
        replayed = domain.check_replay(existing, request)
        logger.info("replayed keyed order request", extra={"order_id": replayed.order_id})
        return replayed, True
    metrics.add_metric(name="OrdersPlaced", unit=MetricUnit.Count, value=1)
    logger.info("placed order", extra={"order_id": order.order_id})
    return order, False


def get(orders: Orders, order_id: str, caller: Caller) -> domain.Order:
    """The order, if the caller may see it; OrderNotFoundError otherwise."""
    order = orders.get(order_id)
    if order is None or not (caller.admin or order.customer_id == caller.subject):
        raise domain.OrderNotFoundError(order_id)
    return order


def cancel(orders: Orders, order_id: str, *, caller: Caller, correlation_id: str) -> domain.Order:
    """The cancelled order (cancel is idempotent). A confirm, reject or cancel that lands between our read and our
    write is decided once more on fresh state; a second collision is a ConcurrentUpdateError (409)."""

    def attempt() -> domain.Order:
        current = get(orders, order_id, caller)
        cancelled = domain.cancel(current, correlation_id=correlation_id, at=utc_now())
        if cancelled is current:
            return current  # already cancelled: nothing to write
        stored = orders.replace_state(current, cancelled)
        metrics.add_metric(name="OrdersCancelled", unit=MetricUnit.Count, value=1)
        logger.info("cancelled order", extra={"order_id": order_id})
        return stored

    def lost() -> None:
        logger.info("order changed while cancelling; re-reading", extra={"order_id": order_id})

    return decide_again(CANCEL_ATTEMPTS, attempt, lost)


# ----------------------------------------------------------------------------------------------- inbox
def apply_reservation_outcome(reservation: ReservationData, event: DomainEvent, orders: Orders) -> Outcome:
    """StockReserved -> CONFIRMED, StockReservationFailed -> REJECTED, only from a status that allows it."""
    target = domain.RESERVATION_OUTCOMES[event.event_type]
    context = WriteContext.now(event.metadata.correlation_id)
    moved = orders.record_outcome(reservation.order_id, target, context, reservation.reason, reservation.shortages)
    if not moved:
        # Already decided, cancelled, or unknown here (the reconciler handles orphans): nothing to change.
        logger.info(
            "order not moved by reservation outcome",
            extra={"order_id": reservation.order_id, "target": target.value},
        )
        return Outcome.STALE
    return Outcome.APPLIED


def apply_shipment_dispatched(shipment: ShipmentData, event: DomainEvent, orders: Orders) -> Outcome:
    """ShipmentDispatched -> SHIPPED from CONFIRMED, or from CANCELLED (the cancellation came too late)."""
    extra = {"order_id": shipment.order_id, "target": OrderStatus.SHIPPED.value}
    for _ in range(SHIP_ATTEMPTS):
        current = orders.get(shipment.order_id)
        if current is None:
            # Unknown here (the reconciler handles orphans): nothing to change, as for a reservation outcome.
            logger.info("order not moved by shipment dispatch: no such order", extra=extra)
            return Outcome.STALE
        try:
            shipped = domain.ship(current, correlation_id=event.metadata.correlation_id, at=utc_now())
        except TransitionNotAllowedError as exc:
            # PENDING or REJECTED: shipping only ships confirmed orders, so the event is forged or the order
            # drifted. Reported as a reservation outcome contradicting the order is: skipped and logged, not retried.
            logger.warning(
                "order not moved by shipment dispatch: it contradicts the order's status",
                extra={**extra, "order_status": current.status.value, "reason": str(exc)},
            )
            return Outcome.STALE
        if shipped is current:
            logger.info("order already shipped: duplicate shipment dispatch", extra=extra)
            return Outcome.STALE
        try:
            orders.replace_state(current, shipped)
        except ConcurrentUpdateError:
            logger.info("order changed while shipping; re-reading", extra=extra)
            continue
        metrics.add_metric(name="OrdersShipped", unit=MetricUnit.Count, value=1)
        logger.info("shipped order", extra={**extra, "was": current.status.value})
        return Outcome.APPLIED
    raise ConcurrentUpdateError(f"order {shipment.order_id} kept changing while shipping")

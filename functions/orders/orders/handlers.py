"""Orders service entry points: the HTTP API (place, get, cancel) and the inbox consumer (reservation outcomes,
shipment dispatches).

POST /orders with an `Idempotency-Key` header is idempotent: the first request answers 201; a replay with the
same key and the same body answers 200 with the stored order (in whatever status it has reached by then) and
the header `Idempotent-Replayed: true`; the same key with a different body answers 422.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.authz import Caller
from converge.consumer import InboxConsumer, Outcome
from converge.errors import MalformedEventError
from converge.events import DomainEvent, OrderStatus, ReservationData, ShipmentData
from converge.http import current_caller, error_response, make_resolver
from converge.observability import logger, metrics, traced
from orders import domain, store

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]
# Bounded like the event envelope's correlation_id, so every write can be published.
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-Id", min_length=1, max_length=128)]
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]

app = make_resolver()


# ----------------------------------------------------------------------------------------------- HTTP
def _correlation_id(header: str | None) -> str:
    correlation_id = header or app.current_event.request_context.request_id
    logger.append_keys(correlation_id=correlation_id)
    return correlation_id


def _order_response(order: domain.Order, status: HTTPStatus, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=order.view(),
        headers=headers,
    )


@app.post("/orders")
def place_order(
    body: domain.PlaceOrderRequest,
    idempotency_key: IdempotencyKey = None,
    x_correlation_id: CorrelationId = None,
) -> Response[Any]:
    at = domain.utc_now()
    customer_id = current_caller(app).subject
    order = domain.place_order(
        body,
        customer_id=customer_id,
        order_id=domain.order_id_for(customer_id, idempotency_key),
        correlation_id=_correlation_id(x_correlation_id),
        at=at,
    )
    existing = store.create(order)
    if existing is not None:
        replayed = domain.check_replay(existing, body)
        logger.info("replayed keyed order request", extra={"order_id": replayed.order_id})
        return _order_response(replayed, HTTPStatus.OK, {"Idempotent-Replayed": "true"})
    metrics.add_metric(name="OrdersPlaced", unit=MetricUnit.Count, value=1)
    logger.info("placed order", extra={"order_id": order.order_id})
    return _order_response(order, HTTPStatus.CREATED, {"Location": f"/orders/{order.order_id}"})


def _visible(order: domain.Order | None, caller: Caller) -> domain.Order | None:
    """The order if the caller may see it (its customer, or an admin); another customer's is as if absent."""
    return order if order is not None and (caller.admin or order.customer_id == caller.subject) else None


@app.get("/orders/<order_id>")
def get_order(order_id: OrderId) -> Response[Any]:
    order = _visible(store.get(order_id), current_caller(app))
    if order is None:
        raise domain.OrderNotFoundError(order_id)
    return _order_response(order, HTTPStatus.OK)


@app.post("/orders/<order_id>/cancel")
def cancel_order(order_id: OrderId, x_correlation_id: CorrelationId = None) -> Response[Any]:
    correlation_id = _correlation_id(x_correlation_id)
    try:
        order = _cancel(order_id, correlation_id)
    except domain.ConcurrentUpdateError:
        # A confirm, reject or cancel landed between our read and our write: decide once more on fresh state
        # (a second collision answers 409).
        logger.info("order changed while cancelling; re-reading", extra={"order_id": order_id})
        order = _cancel(order_id, correlation_id)
    return _order_response(order, HTTPStatus.OK)


def _cancel(order_id: str, correlation_id: str) -> domain.Order:
    current = _visible(store.get(order_id), current_caller(app))
    if current is None:
        raise domain.OrderNotFoundError(order_id)
    cancelled = domain.cancel(current, correlation_id=correlation_id, at=domain.utc_now())
    if cancelled is current:
        return current  # already cancelled: nothing to write
    stored = store.replace_state(current, cancelled)
    metrics.add_metric(name="OrdersCancelled", unit=MetricUnit.Count, value=1)
    logger.info("cancelled order", extra={"order_id": order_id})
    return stored


# Domain errors -> HTTP, in one place.
@app.exception_handler(domain.OrderNotFoundError)
def _not_found(exc: domain.OrderNotFoundError) -> Response[Any]:
    return error_response(HTTPStatus.NOT_FOUND, f"order {exc} not found")


@app.exception_handler(domain.TransitionNotAllowedError)
def _not_allowed(exc: domain.TransitionNotAllowedError) -> Response[Any]:
    return error_response(HTTPStatus.CONFLICT, str(exc), order_status=exc.current.value)


@app.exception_handler(domain.ConcurrentUpdateError)
def _concurrent(exc: domain.ConcurrentUpdateError) -> Response[Any]:
    return error_response(HTTPStatus.CONFLICT, str(exc))


@app.exception_handler(domain.IdempotencyKeyReusedError)
def _key_reused(exc: domain.IdempotencyKeyReusedError) -> Response[Any]:
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@traced
def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# ----------------------------------------------------------------------------------------------- inbox
def apply_reservation_outcome(event: DomainEvent) -> Outcome:
    """StockReserved -> CONFIRMED, StockReservationFailed -> REJECTED, only from a status that allows it."""
    reservation = event.data
    if not isinstance(reservation, ReservationData):
        raise MalformedEventError(f"{event.event_type} does not carry a reservation")
    target = domain.RESERVATION_OUTCOMES[event.event_type]
    moved = store.record_outcome(
        reservation.order_id,
        target,
        correlation_id=event.metadata.correlation_id,
        at=domain.utc_now(),
        reason=reservation.reason,
        shortages=reservation.shortages,
    )
    if not moved:
        # Already decided, cancelled, or unknown here (the reconciler handles orphans): nothing to change.
        logger.info(
            "order not moved by reservation outcome",
            extra={"order_id": reservation.order_id, "target": target.value},
        )
        return Outcome.STALE
    return Outcome.APPLIED


# A dispatch races at most with the customer's cancel of the same order; a second read settles it, then SQS retries.
SHIP_ATTEMPTS = 2


def apply_shipment_dispatched(event: DomainEvent) -> Outcome:
    """ShipmentDispatched -> SHIPPED from CONFIRMED, or from CANCELLED (the cancellation came too late)."""
    shipment = event.data
    if not isinstance(shipment, ShipmentData):
        raise MalformedEventError(f"{event.event_type} does not carry a shipment")
    extra = {"order_id": shipment.order_id, "target": OrderStatus.SHIPPED.value}
    for _ in range(SHIP_ATTEMPTS):
        current = store.get(shipment.order_id)
        if current is None:
            # Unknown here (the reconciler handles orphans): nothing to change, as for a reservation outcome.
            logger.info("order not moved by shipment dispatch: no such order", extra=extra)
            return Outcome.STALE
        try:
            shipped = domain.ship(current, correlation_id=event.metadata.correlation_id, at=domain.utc_now())
        except domain.TransitionNotAllowedError as exc:
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
            store.replace_state(current, shipped)
        except domain.ConcurrentUpdateError:
            logger.info("order changed while shipping; re-reading", extra=extra)
            continue
        metrics.add_metric(name="OrdersShipped", unit=MetricUnit.Count, value=1)
        logger.info("shipped order", extra={**extra, "was": current.status.value})
        return Outcome.APPLIED
    raise domain.ConcurrentUpdateError(f"order {shipment.order_id} kept changing while shipping")


consumer = InboxConsumer(
    {
        **dict.fromkeys(domain.RESERVATION_OUTCOMES, apply_reservation_outcome),
        "ShipmentDispatched": apply_shipment_dispatched,
    }
)


@logger.inject_lambda_context
@metrics.log_metrics
@traced
def consumer_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return consumer.handle(event, context)

"""Shipping service entry points: the HTTP API (get, dispatch) and the inbox consumer (OrderConfirmed, OrderCancelled).

POST /shipments/{order_id}/dispatch is idempotent: the first dispatch of a PENDING shipment answers 200 with
the DISPATCHED shipment; a repeat answers 200 with the same body and the header `Idempotent-Replayed: true`;
a CANCELLED shipment answers 409 naming its status.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.authz import ADMIN_ONLY
from converge.consumer import InboxConsumer, Outcome
from converge.events import DomainEvent
from converge.http import ConflictError, NotFoundError, current_caller, error_response, make_resolver
from converge.observability import logger, metrics, traced
from shipping import domain, store

# Bounded like the event envelope's correlation_id, so every write can be published.
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-Id", min_length=1, max_length=128)]
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]

# A write races with at most the other writer of the same shipment (the API or the consumer): deciding again on
# fresh state settles it; a record still losing after that is a batch item failure, retried by SQS.
CONSUMER_ATTEMPTS = 3

app = make_resolver()


# ----------------------------------------------------------------------------------------------- HTTP
def _correlation_id(header: str | None) -> str:
    correlation_id = header or app.current_event.request_context.request_id
    logger.append_keys(correlation_id=correlation_id)
    return correlation_id


def _shipment_response(shipment: domain.Shipment, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type=content_types.APPLICATION_JSON,
        body=shipment.view(),
        headers=headers,
    )


def _current(order_id: str) -> domain.Shipment:
    """The shipment, if the caller may see it (the order's customer, or an admin): another's is as if absent."""
    shipment = store.get(order_id)
    caller = current_caller(app)
    if shipment is None or not (caller.admin or shipment.customer_id == caller.subject):
        raise NotFoundError(f"shipment {order_id} not found")  # 404 in the error shape (converge.http)
    return shipment


@app.get("/shipments/<order_id>")
def get_shipment(order_id: OrderId) -> Response[Any]:
    return _shipment_response(_current(order_id))


@app.post("/shipments/<order_id>/dispatch", security=ADMIN_ONLY)  # the warehouse says the parcel left
def dispatch_shipment(order_id: OrderId, x_correlation_id: CorrelationId = None) -> Response[Any]:
    correlation_id = _correlation_id(x_correlation_id)
    try:
        shipment, replayed = _dispatch(order_id, correlation_id)
    except domain.ConcurrentUpdateError:
        # A cancellation (or another dispatch) landed between our read and our write: decide once more on
        # fresh state (a second collision answers 409).
        logger.info("shipment changed while dispatching; re-reading", extra={"order_id": order_id})
        try:
            shipment, replayed = _dispatch(order_id, correlation_id)
        except domain.ConcurrentUpdateError as exc:
            raise ConflictError(str(exc)) from exc  # 409 in the error shape (converge.http)
    return _shipment_response(shipment, {"Idempotent-Replayed": "true"} if replayed else None)


def _dispatch(order_id: str, correlation_id: str) -> tuple[domain.Shipment, bool]:
    """The dispatched shipment, and whether it already was (nothing written)."""
    current = _current(order_id)
    dispatched = domain.dispatch(current, correlation_id=correlation_id, at=domain.utc_now())
    if dispatched is current:
        logger.info("replayed dispatch", extra={"order_id": order_id})
        return current, True
    stored = store.replace(current, dispatched)
    metrics.add_metric(name="ShipmentsDispatched", unit=MetricUnit.Count, value=1)
    logger.info("dispatched shipment", extra={"order_id": order_id})
    return stored, False


# Domain errors -> HTTP, in one place (converge.http maps NotFoundError to 404 and ConflictError to 409).
@app.exception_handler(domain.TransitionNotAllowedError)
def _not_allowed(exc: domain.TransitionNotAllowedError) -> Response[Any]:
    return error_response(HTTPStatus.CONFLICT, str(exc), shipment_status=exc.current.value)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@traced
def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# ----------------------------------------------------------------------------------------------- inbox
def apply_order_event(event: DomainEvent) -> Outcome:
    """Read the shipment, let the domain decide, write conditionally; a lost race is decided again."""
    rule = domain.ORDER_EVENT_RULES[event.event_type]
    change = domain.OrderChange.of(event, at=domain.utc_now())
    order_id = change.order.order_id
    extra = {"order_id": order_id, "event_type": event.event_type, "order_version": change.order_version}
    for _ in range(CONSUMER_ATTEMPTS):
        current = store.get(order_id)
        decision = rule(current, change)
        if decision.shipment is None:
            logger.info("shipment not changed by order event", extra={**extra, "why": decision.why})
            return Outcome.STALE
        if _write(current, decision.shipment):
            logger.info(
                "shipment written",
                extra={**extra, "status": decision.shipment.status.value, "version": decision.shipment.version},
            )
            return Outcome.APPLIED
        logger.info("shipment changed while applying the order event; re-reading", extra=extra)
    raise domain.ConcurrentUpdateError(f"shipment {order_id} kept changing while applying {event.event_type}")


def _write(current: domain.Shipment | None, shipment: domain.Shipment) -> bool:
    """Create the shipment if none was read (CREATE), else replace the one read (REPLACE); False if the table
    is no longer as read (the condition failed)."""
    if current is None:
        return store.create(shipment)
    try:
        store.replace(current, shipment)
    except domain.ConcurrentUpdateError:
        return False
    return True


consumer = InboxConsumer(dict.fromkeys(domain.ORDER_EVENT_RULES, apply_order_event))


@logger.inject_lambda_context
@metrics.log_metrics
@traced
def consumer_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return consumer.handle(event, context)

"""Inventory entry points: the stock HTTP API and the inbox consumer (OrderPlaced, OrderCancelled,
ShipmentDispatched, ShipmentCancelled, and the reconciler's corrections)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.authz import ADMIN_ONLY
from converge.consumer import InboxConsumer
from converge.http import error_response, make_resolver
from converge.observability import logger, metrics, traced
from inventory import domain, service, store

app = make_resolver()
consumer = InboxConsumer(
    {
        "OrderPlaced": service.on_order_placed,
        "OrderCancelled": service.on_order_cancelled,
        "ShipmentDispatched": service.on_shipment_dispatched,
        "ShipmentCancelled": service.on_shipment_cancelled,
        "ReservationCorrected": service.on_reservation_corrected,
        "ReservedRecounted": service.on_reserved_recounted,
    }
)

ProductId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
CorrelationId = Annotated[str | None, Header(alias="x-correlation-id", min_length=1, max_length=128)]


def _context(correlation_id: str | None) -> store.WriteContext:
    return store.WriteContext.now(correlation_id or app.current_event.request_context.request_id)


@app.exception_handler(domain.ProductNotFound)
def _not_found(exc: domain.ProductNotFound) -> Response[Any]:
    return error_response(HTTPStatus.NOT_FOUND, str(exc))


@app.exception_handler(domain.StockConflict)
def _conflict(exc: domain.StockConflict) -> Response[Any]:
    return error_response(HTTPStatus.CONFLICT, str(exc))


@app.put("/products/<product_id>/stock", security=ADMIN_ONLY)  # the warehouse manages stock, not customers
def set_stock(
    product_id: ProductId, command: Annotated[domain.SetStock, Body()], correlation_id: CorrelationId = None
) -> dict[str, Any]:
    return store.set_stock(product_id, command.on_hand, _context(correlation_id)).view()


@app.post("/products/<product_id>/stock/adjustments", security=ADMIN_ONLY)
def adjust_stock(
    product_id: ProductId, command: Annotated[domain.AdjustStock, Body()], correlation_id: CorrelationId = None
) -> dict[str, Any]:
    return store.adjust_stock(product_id, command.delta, _context(correlation_id)).view()


@app.get("/products/<product_id>")
def get_product(product_id: ProductId) -> dict[str, Any]:
    level = store.get_product(product_id)
    if level is None:
        raise domain.ProductNotFound(product_id)
    return level.view()


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@traced
def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


@logger.inject_lambda_context
@metrics.log_metrics
@traced
def consumer_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(consumer.handle(event, context))

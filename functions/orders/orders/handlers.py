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
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.consumer import InboxConsumer
from converge.entry import Wiring, api_entry, consumer_entry
from converge.events import ReservationData, ShipmentData
from converge.http import CorrelationId, correlation_id, current_caller, make_resolver
from converge.settings import TableSettings
from orders import domain, service
from orders.store import OrderStore

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]

# The composition root: the orders store of the function's table.
orders = Wiring(TableSettings, lambda config: OrderStore(config.table_name))
app = make_resolver()


# ----------------------------------------------------------------------------------------------- HTTP
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
    order, replayed = service.place(
        orders(),
        body,
        caller=current_caller(app),
        idempotency_key=idempotency_key,
        correlation_id=correlation_id(app, x_correlation_id),
    )
    if replayed:
        return _order_response(order, HTTPStatus.OK, {"Idempotent-Replayed": "true"})
    return _order_response(order, HTTPStatus.CREATED, {"Location": f"/orders/{order.order_id}"})


@app.get("/orders/<order_id>")
def get_order(order_id: OrderId) -> Response[Any]:
    return _order_response(service.get(orders(), order_id, current_caller(app)), HTTPStatus.OK)


@app.post("/orders/<order_id>/cancel")
def cancel_order(order_id: OrderId, x_correlation_id: CorrelationId = None) -> Response[Any]:
    order = service.cancel(
        orders(), order_id, caller=current_caller(app), correlation_id=correlation_id(app, x_correlation_id)
    )
    return _order_response(order, HTTPStatus.OK)


@api_entry(orders)
def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# ----------------------------------------------------------------------------------------------- inbox
consumer: InboxConsumer[service.Orders] = InboxConsumer(
    {
        **dict.fromkeys(domain.RESERVATION_OUTCOMES, (ReservationData, service.apply_reservation_outcome)),
        "ShipmentDispatched": (ShipmentData, service.apply_shipment_dispatched),
    }
)


@consumer_entry(orders)
def consumer_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return consumer.handle(event, context, orders())

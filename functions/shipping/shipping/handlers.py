"""Shipping service entry points: the HTTP API (get, dispatch) and the inbox consumer (OrderConfirmed, OrderCancelled).

POST /shipments/{order_id}/dispatch is idempotent: the first dispatch of a PENDING shipment answers 200 with
the DISPATCHED shipment; a repeat answers 200 with the same body and the header `Idempotent-Replayed: true`;
a CANCELLED shipment answers 409 naming its status.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.authz import ADMIN_ONLY
from converge.consumer import InboxConsumer
from converge.entry import Wiring, api_entry, consumer_entry
from converge.events import OrderData
from converge.http import CorrelationId, correlation_id, current_caller, make_resolver
from converge.settings import TableSettings
from shipping import domain, service
from shipping.store import ShipmentStore

OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]

# The composition root: the shipments store of the function's table.
shipments = Wiring(TableSettings, lambda config: ShipmentStore(config.table_name))
app = make_resolver()


# ----------------------------------------------------------------------------------------------- HTTP
def _shipment_response(shipment: domain.Shipment, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type=content_types.APPLICATION_JSON,
        body=shipment.view(),
        headers=headers,
    )


@app.get("/shipments/<order_id>")
def get_shipment(order_id: OrderId) -> Response[Any]:
    return _shipment_response(service.get(shipments(), order_id, current_caller(app)))


@app.post("/shipments/<order_id>/dispatch", security=ADMIN_ONLY)  # the warehouse says the parcel left
def dispatch_shipment(order_id: OrderId, x_correlation_id: CorrelationId = None) -> Response[Any]:
    shipment, replayed = service.dispatch(
        shipments(), order_id, caller=current_caller(app), correlation_id=correlation_id(app, x_correlation_id)
    )
    return _shipment_response(shipment, {"Idempotent-Replayed": "true"} if replayed else None)


@api_entry(shipments)
def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# ----------------------------------------------------------------------------------------------- inbox
consumer: InboxConsumer[service.Shipments] = InboxConsumer(
    dict.fromkeys(domain.ORDER_EVENT_RULES, (OrderData, service.apply_order_event))
)


@consumer_entry(shipments)
def consumer_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return consumer.handle(event, context, shipments())

"""Inventory entry points: the stock HTTP API and the inbox consumer (OrderPlaced, OrderCancelled,
ShipmentDispatched, ShipmentCancelled, and the reconciler's corrections)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.authz import ADMIN_ONLY
from converge.consumer import InboxConsumer
from converge.entities import WriteContext
from converge.entry import Wiring, api_entry, consumer_entry
from converge.events import OrderData, ReservationCorrected, ReservedRecounted, ShipmentData
from converge.http import CorrelationId, correlation_id, make_resolver
from converge.settings import TableSettings
from inventory import domain, service
from inventory.store import InventoryStore

ProductId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]

# The composition root: the inventory store of the function's table.
inventory = Wiring(TableSettings, lambda config: InventoryStore(config.table_name))
app = make_resolver()


def _context(header: str | None) -> WriteContext:
    return WriteContext.now(correlation_id(app, header))


@app.put("/products/<product_id>/stock", security=ADMIN_ONLY)  # the warehouse manages stock, not customers
def set_stock(
    product_id: ProductId, command: Annotated[domain.SetStock, Body()], x_correlation_id: CorrelationId = None
) -> dict[str, Any]:
    return inventory().set_stock(product_id, command.on_hand, _context(x_correlation_id)).view()


@app.post("/products/<product_id>/stock/adjustments", security=ADMIN_ONLY)
def adjust_stock(
    product_id: ProductId, command: Annotated[domain.AdjustStock, Body()], x_correlation_id: CorrelationId = None
) -> dict[str, Any]:
    return inventory().adjust_stock(product_id, command.delta, _context(x_correlation_id)).view()


@app.get("/products/<product_id>")
def get_product(product_id: ProductId) -> dict[str, Any]:
    level = inventory().get_product(product_id)
    if level is None:
        raise domain.ProductNotFoundError(product_id)
    return level.view()


@api_entry(inventory)
def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


consumer: InboxConsumer[service.Inventory] = InboxConsumer(
    {
        "OrderPlaced": (OrderData, service.on_order_placed),
        "OrderCancelled": (OrderData, service.on_order_cancelled),
        "ShipmentDispatched": (ShipmentData, service.on_shipment_dispatched),
        "ShipmentCancelled": (ShipmentData, service.on_shipment_cancelled),
        "ReservationCorrected": (ReservationCorrected, service.on_reservation_corrected),
        "ReservedRecounted": (ReservedRecounted, service.on_reserved_recounted),
    }
)


@consumer_entry(inventory)
def consumer_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return consumer.handle(event, context, inventory())

"""ShipmentsTable adapter: a shipment's conditional writes and reads, in domain terms (converge.entities)."""

from __future__ import annotations

from converge.entities import STAMP_ATTRIBUTES, EntityTable
from converge.projections import SHIPMENT
from shipping.domain import Shipment


class ShipmentStore:
    """The shipments of one ShipmentsTable, built by the entry point from the function's settings."""

    def __init__(self, table_name: str) -> None:
        self.table = EntityTable(table_name, SHIPMENT)

    def get(self, order_id: str) -> Shipment | None:
        item = self.table.get(order_id)
        return Shipment.model_validate(item) if item else None

    def create(self, shipment: Shipment) -> bool:
        """Store a new shipment unless one exists for its order (the key is the idempotency record); True if created."""
        return self.table.create_entity(shipment.order_id, shipment, shipment.state()) is None

    def replace(self, current: Shipment, updated: Shipment) -> Shipment:
        """Write `updated` over `current`, conditional on the stored status and version still being `current`'s.

        One UpdateItem (the API may not put items): every state attribute is set, and those `updated` no longer
        has (a reason) are removed. ConcurrentUpdateError if the shipment changed (or vanished) since it was read.
        """
        state = {k: v for k, v in updated.state().items() if k not in STAMP_ATTRIBUTES}
        removed = sorted(set(current.state()) - set(updated.state()))
        return Shipment.model_validate(self.table.replace(current.order_id, current, updated, state, removed))

"""OrdersTable adapter: an order's conditional writes and reads, in domain terms (converge.entities)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from converge.entities import EntityTable, WriteContext
from converge.errors import ConcurrentUpdateError
from converge.events import ORDER_EVENT_BY_STATUS, OrderStatus
from converge.projections import ORDER
from orders.domain import STATUSES, Order, marks_confirmed


class OrderStore:
    """The orders of one OrdersTable, built by the entry point from the function's settings."""

    def __init__(self, table_name: str) -> None:
        self.table = EntityTable(table_name, ORDER)

    def create(self, order: Order) -> Order | None:
        """Store a new order; if one with this id exists, nothing is written and the stored order is returned."""
        stored = self.table.create_entity(order.order_id, order, order.state())
        return None if stored is None else Order.model_validate(stored)

    def get(self, order_id: str) -> Order | None:
        item = self.table.get(order_id)
        return Order.model_validate(item) if item else None

    def replace_state(self, current: Order, updated: Order) -> Order:
        """Write `updated` over `current`, conditional on the stored status and version still being `current`'s.

        ConcurrentUpdateError if the order changed (or vanished) since it was read.
        """
        # A transition never clears a reason nor forgets a confirmation: only what it sets is written.
        state: dict[str, Any] = {"status": updated.status.value, "version": updated.version}
        if updated.reason is not None:
            state["reason"] = updated.reason
        if updated.confirmed:
            state["confirmed"] = True
        return Order.model_validate(self.table.replace(current.order_id, current, updated, state))

    def record_outcome(
        self, order_id: str, target: OrderStatus, context: WriteContext, reason: str | None, shortages: Sequence[str]
    ) -> bool:
        """Move the order to `target` if its status allows it; False (nothing written) if not or if it is missing.

        No read: one UpdateItem whose condition is "status is one the machine lets move to `target`". A missing
        item fails that condition too, so the write never creates an order.
        """
        state: dict[str, Any] = {"status": target.value}
        if reason is not None:
            state["reason"] = reason
        if shortages:
            state["shortages"] = list(shortages)
        if marks_confirmed(target):
            state["confirmed"] = True
        try:
            self.table.update(
                order_id,
                state,
                event_type=ORDER_EVENT_BY_STATUS[target],
                context=context,
                expected_in={"status": [status.value for status in STATUSES.sources_of(target)]},
                increments={"version": 1},
            )
        except ConcurrentUpdateError:
            return False
        return True

"""Divergence between each projection and its source of truth, read from the tables (layout: docs/items.md).

- availability: every product of InventoryTable has an availability item in NotificationsTable with the product's
  version and numbers (on_hand, reserved, available); an availability item without a product diverges too.
- order_reservations: every order of OrdersTable agrees with its reservation in InventoryTable:
  CONFIRMED <-> RESERVED, REJECTED <-> FAILED, CANCELLED <-> RELEASED or FAILED (no stock held); a PENDING order
  has had no reservation outcome applied and always counts as divergent.
- order_notifications: every CONFIRMED or REJECTED order has its outcome in NotificationsTable (same status and
  version) and the customer's ORDER_CONFIRMED / ORDER_REJECTED notification.

`check()` returns the count per projection and the ids that diverge; a later convergence checker builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

_deserializer = TypeDeserializer()

# Order status -> reservation statuses that agree with it (docs/items.md, DESIGN.md "inventory"/"orders").
AGREEING_RESERVATION: dict[str, set[str]] = {
    "CONFIRMED": {"RESERVED"},
    "REJECTED": {"FAILED"},
    "CANCELLED": {"RELEASED", "FAILED"},
    "PENDING": set(),
}
NOTIFIED_STATUSES = {"CONFIRMED": "ORDER_CONFIRMED", "REJECTED": "ORDER_REJECTED"}
PROJECTIONS = ("availability", "order_reservations", "order_notifications")


@dataclass
class Divergence:
    """Entities whose projection differs from their source of truth, per projection."""

    divergent: dict[str, list[str]] = field(default_factory=lambda: {p: [] for p in PROJECTIONS})
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROJECTIONS, 0))

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.divergent.items()}

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def scan(client: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of `table`, by (pk, sk), with plain Python values."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for raw in page["Items"]:
            item = {k: _plain(_deserializer.deserialize(v)) for k, v in raw.items()}
            items[(str(item["pk"]), str(item["sk"]))] = item
    return items


def check(client: Any, orders_table: str, inventory_table: str, notifications_table: str) -> Divergence:
    """Compare every projection with its source of truth (a DynamoDB client and the three table names)."""
    orders = scan(client, orders_table)
    inventory = scan(client, inventory_table)
    notifications = scan(client, notifications_table)
    result = Divergence()

    products = {pk.removeprefix("PRODUCT#"): item for (pk, _), item in inventory.items() if pk.startswith("PRODUCT#")}
    availability = {
        pk.removeprefix("AVAILABILITY#"): item
        for (pk, _), item in notifications.items()
        if pk.startswith("AVAILABILITY#")
    }
    for product_id in sorted(products.keys() | availability.keys()):
        result.checked["availability"] += 1
        product, projected = products.get(product_id), availability.get(product_id)
        fields = ("version", "on_hand", "reserved", "available")
        if product is None or projected is None or any(product.get(f) != projected.get(f) for f in fields):
            result.divergent["availability"].append(product_id)

    for (pk, _), order in sorted(orders.items()):
        if not pk.startswith("ORDER#"):
            continue
        order_id, status = str(order["order_id"]), str(order["status"])
        result.checked["order_reservations"] += 1
        reservation = inventory.get((f"RESERVATION#{order_id}", "RESERVATION"))
        reservation_status = str(reservation["status"]) if reservation else None
        if reservation_status not in AGREEING_RESERVATION.get(status, set()):
            result.divergent["order_reservations"].append(order_id)
        if status in NOTIFIED_STATUSES:
            result.checked["order_notifications"] += 1
            outcome = notifications.get((f"ORDER#{order_id}", "ORDER"))
            notification_key = (
                f"CUSTOMER#{order['customer_id']}",
                f"NOTIFICATION#{NOTIFIED_STATUSES[status]}#{order_id}",
            )
            if (
                outcome is None
                or outcome.get("status") != status
                or outcome.get("version") != order.get("version")
                or notification_key not in notifications
            ):
                result.divergent["order_notifications"].append(order_id)
    return result

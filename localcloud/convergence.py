"""Divergence between each projection and its source of truth, read from the tables (layout: docs/items.md).

- availability: every product of InventoryTable has an availability item in NotificationsTable with the product's
  version and numbers (on_hand, reserved, available); an availability item without a product diverges too.
- order_reservations: every order of OrdersTable agrees with its reservation in InventoryTable:
  CONFIRMED <-> RESERVED, REJECTED <-> FAILED, CANCELLED <-> RELEASED or FAILED (no stock held); a PENDING order
  has had no reservation outcome applied and always counts as divergent.
- order_notifications: every CONFIRMED or REJECTED order has its outcome in NotificationsTable (same status and
  version) and the customer's ORDER_CONFIRMED / ORDER_REJECTED notification.

`check()` returns the count per projection and the ids that diverge. `verify(cloud, dlqs)` is the whole checker of a
quiet system: the same comparison, the domain invariants (`check_invariants`) and the accounting of every event
(from the LocalCloud's ledger, localcloud/ledger.py, and the DLQs): processed (applied or skipped as stale), parked
in a DLQ with its reason, lost by an injected fault but superseded (its entity converged), or lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from localcloud.loader import ensure_layer_on_path

ensure_layer_on_path()

from converge.dynamo import from_item  # noqa: E402 - the layer is at /opt/python in Lambda, put on the path above

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


def scan(client: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of `table`, by (pk, sk), with plain Python values."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for raw in page["Items"]:
            item = from_item(raw)
            items[(str(item["pk"]), str(item["sk"]))] = item
    return items


def check(client: Any, orders_table: str, inventory_table: str, notifications_table: str) -> Divergence:
    """Compare every projection with its source of truth (a DynamoDB client and the three table names)."""
    return _compare(scan(client, orders_table), scan(client, inventory_table), scan(client, notifications_table))


def _compare(
    orders: dict[tuple[str, str], dict[str, Any]],
    inventory: dict[tuple[str, str], dict[str, Any]],
    notifications: dict[tuple[str, str], dict[str, Any]],
) -> Divergence:
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


# ---------------------------------------------------------------------------------------------------- the checker
@dataclass
class Invariants:
    """Domain invariants at the end of a run: violations per rule, with up to 20 example ids each."""

    violations: dict[str, list[str]] = field(
        default_factory=lambda: {
            "reserved_within_on_hand": [],  # 0 <= reserved <= on_hand, available = on_hand - reserved
            "reserved_equals_reservations": [],  # reserved = sum of RESERVED reservations' quantities
            "order_not_terminal": [],  # PENDING at the end
            "order_disagrees_with_reservation": [],
            "notification_not_exactly_once": [],  # CONFIRMED/REJECTED: exactly one notification of that kind
        }
    )

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.violations.items()}

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def check_invariants(
    orders: dict[Any, dict[str, Any]], inventory: dict[Any, dict[str, Any]], notifications: dict[Any, dict[str, Any]]
) -> Invariants:
    result = Invariants()
    held: dict[str, int] = {}
    for (pk, _), item in inventory.items():
        if pk.startswith("RESERVATION#") and item.get("status") == "RESERVED":
            for line in item.get("lines", []):
                held[str(line["product_id"])] = held.get(str(line["product_id"]), 0) + int(line["quantity"])
    for (pk, _), product in sorted(inventory.items()):
        if not pk.startswith("PRODUCT#"):
            continue
        product_id = pk.removeprefix("PRODUCT#")
        on_hand, reserved = int(product.get("on_hand", 0)), int(product.get("reserved", 0))
        if not 0 <= reserved <= on_hand or int(product.get("available", on_hand - reserved)) != on_hand - reserved:
            result.violations["reserved_within_on_hand"].append(product_id)
        if reserved != held.pop(product_id, 0):
            result.violations["reserved_equals_reservations"].append(product_id)
    result.violations["reserved_equals_reservations"].extend(sorted(held))  # reservations of unknown products
    sent: dict[tuple[str, str], int] = {}
    for (pk, sk), item in notifications.items():
        if pk.startswith("CUSTOMER#") and sk.startswith("NOTIFICATION#ORDER_"):
            kind = sk.split("#")[1]
            sent[(str(item.get("order_id")), kind)] = sent.get((str(item.get("order_id")), kind), 0) + 1
    for (pk, _), order in sorted(orders.items()):
        if not pk.startswith("ORDER#"):
            continue
        order_id, status = str(order["order_id"]), str(order["status"])
        if status == "PENDING":
            result.violations["order_not_terminal"].append(order_id)
        reservation = inventory.get((f"RESERVATION#{order_id}", "RESERVATION"))
        if status != "PENDING" and (reservation or {}).get("status") not in AGREEING_RESERVATION[status]:
            result.violations["order_disagrees_with_reservation"].append(order_id)
        if status in NOTIFIED_STATUSES:
            other = NOTIFIED_STATUSES["REJECTED" if status == "CONFIRMED" else "CONFIRMED"]
            if sent.get((order_id, NOTIFIED_STATUSES[status]), 0) != 1 or sent.get((order_id, other), 0):
                result.violations["notification_not_exactly_once"].append(order_id)
    return result


@dataclass
class Accounting:
    """Every event a function put on the bus, and every delivery of one to a consumer, accounted for."""

    events_published: int = 0  # distinct event ids accepted by the bus
    entries_published: int = 0  # accepted PutEvents entries (republishes and resends of the same id included)
    events_without_subscriber: int = 0  # no inbox received it (no rule routes its type)
    deliveries: int = 0  # distinct (consumer, event id)
    processed: int = 0  # delivered and processed (applied or skipped as stale) at least once
    parked: int = 0  # in a DLQ at the end, not processed
    lost_superseded: int = 0  # every copy lost by an injected fault; the entity's projection converged anyway
    lost: int = 0  # neither processed nor parked nor superseded: the number that must be 0
    outcomes: dict[str, int] = field(default_factory=dict)  # applied / skipped_stale / rejected / failed receives
    dlq_messages: dict[str, int] = field(default_factory=dict)  # queue -> messages at the end
    poison_parked: int = 0  # injected poison messages found in a DLQ
    parked_reasons: dict[str, int] = field(default_factory=dict)  # reason (as the reconciler logged it) -> count
    stream_records_to_on_failure: int = 0  # stream batches that exhausted their retries (repaired from state)
    lost_examples: list[str] = field(default_factory=list)


@dataclass
class ConvergenceReport:
    divergence: Divergence
    invariants: Invariants
    accounting: Accounting

    @property
    def converged(self) -> bool:
        return self.divergence.total == 0 and self.invariants.total == 0 and self.accounting.lost == 0

    def summary(self) -> dict[str, Any]:
        return {
            "divergent": self.divergence.counts,
            "invariant_violations": self.invariants.counts,
            "accounting": {k: v for k, v in self.accounting.__dict__.items() if k != "lost_examples"},
        }


def dlq_messages(cloud: Any, queue: str) -> list[dict[str, Any]]:
    """Every message on a queue, visible or in flight, without receiving it (in-process moto: read from its
    backend); through a moto server only the count is known (bodies empty)."""
    url = cloud.queue_url(queue)
    name = url.rsplit("/", 1)[-1]
    if not cloud.endpoint:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[DEFAULT_ACCOUNT_ID][url.split(".")[1] if url.count(".") > 2 else "us-east-1"]
        found = backend.queues.get(name)
        if found is not None:
            return [{"MessageId": m.id, "Body": m.body} for m in list(found._messages)]
    return [{"MessageId": "", "Body": ""} for _ in range(cloud.queue_depth(queue))]


def verify(
    cloud: Any, dead_letter_queues: list[str], parked_reasons: dict[str, str] | None = None
) -> ConvergenceReport:
    """The whole check of a quiet LocalCloud: projections vs sources, invariants, and every event accounted for.

    `parked_reasons`: DLQ message id -> the reason the reconciler logged when it parked it."""
    client = cloud.clients.dynamodb
    tables = {n: cloud.table_name(n) for n in ("OrdersTable", "InventoryTable", "NotificationsTable")}
    orders = scan(client, tables["OrdersTable"])
    inventory = scan(client, tables["InventoryTable"])
    notifications = scan(client, tables["NotificationsTable"])
    divergence = _compare(orders, inventory, notifications)
    invariants = check_invariants(orders, inventory, notifications)
    accounting = Accounting()
    ledger = cloud.ledger
    accounting.entries_published = sum(ledger.published.values())
    accounting.events_published = len(ledger.events)
    received = {event_id for (_, event_id) in ledger.deliveries}
    accounting.events_without_subscriber = len(set(ledger.events) - received)
    for counts in ledger.outcomes.values():
        for name, value in counts.items():
            accounting.outcomes[name] = accounting.outcomes.get(name, 0) + value
    parked_ids: set[str] = set()
    poison_bodies = getattr(cloud.faults, "poison_bodies", {})
    reasons = parked_reasons or {}
    for queue in dead_letter_queues:
        messages = dlq_messages(cloud, queue)
        accounting.dlq_messages[queue] = len(messages)
        for message in messages:
            if message["Body"] in poison_bodies:
                accounting.poison_parked += 1
            reason = reasons.get(message["MessageId"], "not yet judged by the reconciler")
            accounting.parked_reasons[reason] = accounting.parked_reasons.get(reason, 0) + 1
            identity = ledger_identify(message["Body"])
            if identity is not None:
                parked_ids.add(identity)
    divergent_ids = {entity for ids in divergence.divergent.values() for entity in ids}
    divergent_ids |= {entity for ids in invariants.violations.values() for entity in ids}
    for (consumer, event_id), delivery in sorted(ledger.deliveries.items()):
        accounting.deliveries += 1
        if delivery.processed:
            accounting.processed += 1
        elif event_id in parked_ids:
            accounting.parked += 1
        elif delivery.lost and delivery.event.entity_id not in divergent_ids:
            accounting.lost_superseded += 1
        else:
            accounting.lost += 1
            if len(accounting.lost_examples) < 20:
                accounting.lost_examples.append(f"{consumer}: {delivery.event}")
    accounting.stream_records_to_on_failure = sum(m.stats.discarded for m in cloud.stream_mappings.values())
    return ConvergenceReport(divergence, invariants, accounting)


def parked_reasons(logs: str) -> dict[str, str]:
    """DLQ message id -> reason, from a reconciler invocation's log lines "poison message parked"."""
    reasons: dict[str, str] = {}
    for line in logs.splitlines():
        if '"poison message parked"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        reasons[str(record.get("message_id"))] = str(record.get("reason"))
    return reasons


def ledger_identify(body: str) -> str | None:
    from localcloud.ledger import identify

    identity = identify(body)
    return identity.event_id if identity else None

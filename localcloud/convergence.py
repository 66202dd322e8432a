"""Divergence between each projection and its source of truth, in every direction, read from the tables.

Layout of the items: docs/items.md; why these are the rules: docs/CONSISTENCY.md. The rules of the first three
services' projections and of the order <-> reservation pair are written out here again, on purpose without the
reconciler or the layer's declarations (converge/projections.py): this is the independent second opinion, so a
wrong declaration is caught here rather than confirmed. Every other declared saga pair (order <-> shipment, and
whatever a new service declares) is checked through its declaration (`SAGAS`), so adding a service adds no code
here; those declarations are restated independently by tests/unit/test_projections.py instead.

Projections of NotificationsTable, each a function of one source item (`expected(source)`):

- availability: product `PRODUCT#<p>`/`PRODUCT` (InventoryTable) -> `AVAILABILITY#<p>`/`AVAILABILITY` with the
  product's product_id, on_hand, reserved, available and version; no product -> no availability item.
- order_outcome: order `ORDER#<o>`/`ORDER` (OrdersTable) -> `ORDER#<o>`/`ORDER`: absent while the order is PENDING;
  CONFIRMED / REJECTED / CANCELLED / SHIPPED -> the order's order_id, customer_id, status and version; no order ->
  absent.
- order_notification: order -> `CUSTOMER#<c>`/`NOTIFICATION#ORDER_CONFIRMED#<o>` and `.../ORDER_REJECTED#<o>`,
  c = the order's customer_id. CONFIRMED -> ORDER_CONFIRMED {kind, order_id} present, ORDER_REJECTED absent;
  REJECTED -> ORDER_REJECTED {kind, order_id, reason = the order's reason} present, ORDER_CONFIRMED absent;
  CANCELLED -> ORDER_REJECTED absent, ORDER_CONFIRMED either (the order may have been confirmed before);
  SHIPPED -> ORDER_SHIPPED {kind, order_id, reason} present, ORDER_CONFIRMED either, ORDER_REJECTED absent;
  PENDING or no order -> both absent. A notification of order o under another customer than o's is an orphan.

Saga pair, order <-> reservation `RESERVATION#<o>`/`RESERVATION` (InventoryTable): CONFIRMED agrees with RESERVED,
REJECTED and CANCELLED with FAILED or RELEASED, SHIPPED with SHIPPED; a PENDING order is in flight (divergent once
the system is quiet);
a reservation whose order does not exist is an orphan. An order CONFIRMED whose reservation is FAILED and that the
reconciler parked for a person (an item pk = "ANOMALY", kind "confirmed_without_stock", entity_id = the order, in
ReconcilerStateTable) is counted as parked for a person, not divergent; anything else divergent stays divergent.

Directions (`Finding.kind`): missing (the source requires an item that is absent), behind / ahead (the item's
version is lower / higher than the source's), different (same version, different data; for the unversioned
notifications: present with other data), unexpected (present although the source's state requires it absent),
orphaned (no source, or under another customer), and for the saga pair missing / disagrees / in_flight / orphaned.

`check()` returns the divergent ids per projection (`divergent`, `counts`: availability, order_reservations,
order_notifications = outcome and notifications of the order) and every finding (`by_check`, `by_kind`).
`verify(cloud, dlqs)` is the whole checker of a quiet system: the same comparison, the domain invariants
(`check_invariants`) and the accounting of every event (from the LocalCloud's ledger, localcloud/ledger.py, and the
DLQs): processed (applied or skipped as stale), parked in a DLQ with its reason, lost by an injected fault but
superseded (its entity converged), or lost.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The layer is on the path as /opt/python is in Lambda: the venv's converge-layer.pth (make venv), pytest's pythonpath.
from converge.contracts import with_tables
from converge.dynamo import from_item
from converge.projections import SAGAS, Resolution, SagaPair

Items = dict[tuple[str, str], dict[str, Any]]

# Order status -> reservation statuses that agree with it (docs/CONSISTENCY.md, docs/items.md "inventory").
AGREEING_RESERVATION: dict[str, set[str]] = {
    "CONFIRMED": {"RESERVED"},
    "REJECTED": {"FAILED", "RELEASED"},
    "CANCELLED": {"FAILED", "RELEASED"},
    "SHIPPED": {"SHIPPED"},
    "PENDING": set(),
}
OUTCOME_STATUSES = {"CONFIRMED", "REJECTED", "CANCELLED", "SHIPPED"}  # statuses with an outcome in notifications
NOTIFICATION_KINDS = ("ORDER_CONFIRMED", "ORDER_REJECTED", "ORDER_SHIPPED")
PRESENT, ABSENT, EITHER = "present", "absent", "either"
# (order status, notification kind) -> what the order requires of that notification; no order: both absent.
NOTIFICATION_RULE: dict[tuple[str, str], str] = {
    ("CONFIRMED", "ORDER_CONFIRMED"): PRESENT,
    ("CONFIRMED", "ORDER_REJECTED"): ABSENT,
    ("REJECTED", "ORDER_CONFIRMED"): ABSENT,
    ("REJECTED", "ORDER_REJECTED"): PRESENT,
    ("CANCELLED", "ORDER_CONFIRMED"): EITHER,
    ("CANCELLED", "ORDER_REJECTED"): ABSENT,
    ("PENDING", "ORDER_CONFIRMED"): ABSENT,
    ("PENDING", "ORDER_REJECTED"): ABSENT,
    ("SHIPPED", "ORDER_CONFIRMED"): EITHER,  # a lost OrderConfirmed is overtaken by OrderShipped
    ("SHIPPED", "ORDER_REJECTED"): ABSENT,
    ("SHIPPED", "ORDER_SHIPPED"): PRESENT,
}  # any other (status, kind): absent
PARKED_ANOMALY_KIND = "confirmed_without_stock"  # the reconciler's ANOMALY kind for (CONFIRMED, FAILED)
# (order, reservation) statuses no event can repair -> the kind the reconciler parks them as: counted as parked
# (not divergent) when the reconciler parked that order as that kind.
PARKABLE_RESERVATION: dict[tuple[str, str | None], str] = {
    ("CONFIRMED", "FAILED"): PARKED_ANOMALY_KIND,  # a reinstatement found no stock
    ("SHIPPED", None): "shipped_without_held_stock",  # a parcel left without held stock
    ("SHIPPED", "FAILED"): "shipped_without_held_stock",
    ("SHIPPED", "RELEASED"): "shipped_without_held_stock",
    ("PENDING", "SHIPPED"): "stock_shipped_for_an_unconfirmed_order",
    ("REJECTED", "SHIPPED"): "stock_shipped_for_an_unconfirmed_order",
    # Only the shipment's ShipmentDispatched moves either side; a shipment restored to before its dispatch has none.
    ("CONFIRMED", "SHIPPED"): "stock_shipped_without_a_dispatch",
    ("CANCELLED", "SHIPPED"): "stock_shipped_without_a_dispatch",
    ("SHIPPED", "RESERVED"): "shipped_without_a_dispatch_holding_stock",
}

# The checks, and the projection (the group of `Divergence.divergent` / `counts`) each one reports under.
AVAILABILITY, ORDER_OUTCOME, ORDER_NOTIFICATION, ORDER_RESERVATION = (
    "availability",
    "order_outcome",
    "order_notification",
    "order_reservation",
)
# Every kind a declared saga pair parks a case as (the restated pair's included).
SAGA_PARKED_KINDS = frozenset(kind for saga in SAGAS for kind in saga.parked_kinds)
# The declared saga pairs not restated here: checked through their declarations, each its own check and group.
DECLARED_PAIRS = tuple(saga for saga in SAGAS if saga.name != ORDER_RESERVATION)
CHECKS = (AVAILABILITY, ORDER_OUTCOME, ORDER_NOTIFICATION, ORDER_RESERVATION, *(s.name for s in DECLARED_PAIRS))
PROJECTIONS = ("availability", "order_reservations", "order_notifications", *(f"{s.name}s" for s in DECLARED_PAIRS))
GROUP: dict[str, str] = {
    AVAILABILITY: "availability",
    ORDER_OUTCOME: "order_notifications",
    ORDER_NOTIFICATION: "order_notifications",
    ORDER_RESERVATION: "order_reservations",
    **{s.name: f"{s.name}s" for s in DECLARED_PAIRS},
}
KINDS = ("missing", "behind", "ahead", "different", "unexpected", "orphaned", "disagrees", "in_flight")


@dataclass(frozen=True)
class Finding:
    """One projection item (or saga pair) that differs from what its source requires."""

    check: str  # one of CHECKS
    kind: str  # one of KINDS
    entity_id: str  # the product or order
    key: tuple[str, str]  # the projection item's key (the reservation's for the saga pair)
    detail: str = ""


@dataclass
class Divergence:
    """Entities whose projection differs from their source of truth, per projection, with every finding."""

    divergent: dict[str, list[str]] = field(default_factory=lambda: {p: [] for p in PROJECTIONS})
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROJECTIONS, 0))
    findings: list[Finding] = field(default_factory=list)
    parked_for_a_person: list[str] = field(default_factory=list)  # (CONFIRMED, FAILED) orders parked by the reconciler

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.divergent.items()}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def by_check(self) -> dict[str, list[str]]:
        """Divergent entity ids per check (availability, order_outcome, order_notification, order_reservation)."""
        ids: dict[str, set[str]] = {c: set() for c in CHECKS}
        for finding in self.findings:
            ids[finding.check].add(finding.entity_id)
        return {c: sorted(found) for c, found in ids.items()}

    @property
    def by_kind(self) -> dict[str, dict[str, int]]:
        """Findings per check and direction: {check: {missing/behind/ahead/different/...: count}}."""
        counts: dict[str, dict[str, int]] = {c: {} for c in CHECKS}
        for finding in self.findings:
            counts[finding.check][finding.kind] = counts[finding.check].get(finding.kind, 0) + 1
        return counts

    def add(self, check: str, kind: str, entity_id: str, key: tuple[str, str], detail: str = "") -> None:
        self.findings.append(Finding(check, kind, entity_id, key, detail))
        ids = self.divergent.setdefault(GROUP[check], [])
        ids.append(entity_id)  # de-duplicated and sorted by _compare


def scan(client: Any, table: str) -> Items:
    """Every item of `table`, by (pk, sk), with plain Python values."""
    items: Items = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for raw in page["Items"]:
            item = from_item(raw)
            items[(str(item["pk"]), str(item["sk"]))] = item
    return items


def anomalies(client: Any, state_table: str) -> Items:
    """The reconciler's ANOMALY items (parked for a person) of its state table, by (pk, sk)."""
    items: Items = {}
    pages = client.get_paginator("query").paginate(
        TableName=state_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "ANOMALY"}},
        ConsistentRead=True,
    )
    for page in pages:
        for raw in page["Items"]:
            item = from_item(raw)
            items[(str(item["pk"]), str(item["sk"]))] = item
    return items


def service_tables(cloud: Any) -> dict[str, str]:
    """Service name -> the physical name of its table, for every service contract that owns one."""
    return {service.name: cloud.table_name(str(service.table)) for service in with_tables()}


def check(client: Any, tables: Mapping[str, str], state_table: str | None = None) -> Divergence:
    """Compare every projection with its source of truth (a DynamoDB client and service -> table name; with the
    reconciler's state table, the orders it parked for a person are counted as parked, not divergent)."""
    scanned = {service: scan(client, table) for service, table in tables.items()}
    return _compare(
        scanned["orders"],
        scanned["inventory"],
        scanned["notifications"],
        anomalies(client, state_table) if state_table else None,
        scanned,
    )


def _direction(expected_version: Any, actual_version: Any, same_data: bool) -> str | None:
    """behind / ahead / different for a versioned projection item, None when it equals the source."""
    if isinstance(expected_version, int) and isinstance(actual_version, int) and expected_version != actual_version:
        return "behind" if actual_version < expected_version else "ahead"
    if expected_version != actual_version or not same_data:
        return "different"
    return None


def _differing(expected: dict[str, Any], item: dict[str, Any]) -> list[str]:
    return [name for name, value in expected.items() if item.get(name) != value]


def _orders(orders: Items) -> dict[str, dict[str, Any]]:
    return {
        pk.removeprefix("ORDER#"): item
        for (pk, sk), item in orders.items()
        if pk.startswith("ORDER#") and sk == "ORDER"
    }


def _order_notifications(notifications: Items) -> Iterable[tuple[str, str, str, tuple[str, str], dict[str, Any]]]:
    """(order id, kind, customer id, key, item) of every ORDER_CONFIRMED / ORDER_REJECTED notification."""
    for (pk, sk), item in notifications.items():
        if not pk.startswith("CUSTOMER#") or not sk.startswith("NOTIFICATION#ORDER_"):
            continue
        parts = sk.split("#", 2)
        if len(parts) == 3 and parts[1] in NOTIFICATION_KINDS:
            yield parts[2], parts[1], pk.removeprefix("CUSTOMER#"), (pk, sk), item


def _compare(
    orders: Items,
    inventory: Items,
    notifications: Items,
    state: Items | None = None,
    tables: Mapping[str, Items] | None = None,
) -> Divergence:
    """Every finding. `tables`: every service's items by service name (the declared pairs read theirs there)."""
    result = Divergence()
    checked: dict[str, set[str]] = {p: set() for p in PROJECTIONS}

    # availability <- product, both directions
    products = {pk.removeprefix("PRODUCT#"): item for (pk, _), item in inventory.items() if pk.startswith("PRODUCT#")}
    availability = {
        pk.removeprefix("AVAILABILITY#"): item
        for (pk, _), item in notifications.items()
        if pk.startswith("AVAILABILITY#")
    }
    for product_id in sorted(products.keys() | availability.keys()):
        checked["availability"].add(product_id)
        product, projected = products.get(product_id), availability.get(product_id)
        key = (f"AVAILABILITY#{product_id}", "AVAILABILITY")
        if product is None:
            result.add(AVAILABILITY, "orphaned", product_id, key, "no product")
        elif projected is None:
            result.add(AVAILABILITY, "missing", product_id, key)
        else:
            expected = {f: product.get(f) for f in ("product_id", "on_hand", "reserved", "available")}
            expected["product_id"] = product.get("product_id", product_id)
            differing = _differing(expected, projected)
            kind = _direction(product.get("version"), projected.get("version"), not differing)
            if kind:
                result.add(AVAILABILITY, kind, product_id, key, ",".join(differing))

    by_id = _orders(orders)
    parked = parked_cases(state)

    # order outcome <- order, both directions
    outcomes = {
        pk.removeprefix("ORDER#"): item
        for (pk, sk), item in notifications.items()
        if pk.startswith("ORDER#") and sk == "ORDER"
    }
    for order_id in sorted(by_id.keys() | outcomes.keys()):
        checked["order_notifications"].add(order_id)
        order, outcome = by_id.get(order_id), outcomes.get(order_id)
        key = (f"ORDER#{order_id}", "ORDER")
        if order is None:
            result.add(ORDER_OUTCOME, "orphaned", order_id, key, "no order")
            continue
        status = str(order.get("status"))
        if outcome is None:
            if status in OUTCOME_STATUSES:
                result.add(ORDER_OUTCOME, "missing", order_id, key, status)
            continue
        if status not in OUTCOME_STATUSES:  # PENDING: no outcome yet; one that exists is ahead or wrong
            kind = _direction(order.get("version"), outcome.get("version"), False)
            result.add(ORDER_OUTCOME, kind or "unexpected", order_id, key, f"order {status}")
            continue
        expected = {"order_id": order_id, "customer_id": order.get("customer_id"), "status": status}
        differing = _differing(expected, outcome)
        kind = _direction(order.get("version"), outcome.get("version"), not differing)
        if kind:
            result.add(ORDER_OUTCOME, kind, order_id, key, ",".join(differing))

    # order notifications <- order: present / absent as the order's status requires, under the order's customer
    for order_id, _kind, customer_id, key, _item in sorted(_order_notifications(notifications), key=lambda n: n[3]):
        order = by_id.get(order_id)
        if order is None:
            checked["order_notifications"].add(order_id)
            result.add(ORDER_NOTIFICATION, "orphaned", order_id, key, "no order")
        elif customer_id != str(order.get("customer_id")):
            result.add(ORDER_NOTIFICATION, "orphaned", order_id, key, f"order of customer {order.get('customer_id')}")
    for order_id, order in sorted(by_id.items()):
        status, customer_id = str(order.get("status")), str(order.get("customer_id"))
        for kind in NOTIFICATION_KINDS:
            rule = NOTIFICATION_RULE.get((status, kind), ABSENT)
            key = (f"CUSTOMER#{customer_id}", f"NOTIFICATION#{kind}#{order_id}")
            item = notifications.get(key)
            if item is None:
                if rule == PRESENT:
                    result.add(ORDER_NOTIFICATION, "missing", order_id, key, status)
            elif rule == ABSENT:
                result.add(ORDER_NOTIFICATION, "unexpected", order_id, key, f"order {status}")
            else:
                expected = {"kind": kind, "order_id": order_id}
                if kind in ("ORDER_REJECTED", "ORDER_SHIPPED"):
                    expected["reason"] = order.get("reason")
                differing = _differing(expected, item)
                if differing:
                    result.add(ORDER_NOTIFICATION, "different", order_id, key, ",".join(differing))

    # order <-> reservation, both directions
    reservations = {
        pk.removeprefix("RESERVATION#"): item
        for (pk, sk), item in inventory.items()
        if pk.startswith("RESERVATION#") and sk == "RESERVATION"
    }
    for order_id in sorted(by_id.keys() | reservations.keys()):
        checked["order_reservations"].add(order_id)
        order, reservation = by_id.get(order_id), reservations.get(order_id)
        key = (f"RESERVATION#{order_id}", "RESERVATION")
        if order is None:
            result.add(
                ORDER_RESERVATION, "orphaned", order_id, key, f"reservation {reservation and reservation.get('status')}"
            )
            continue
        status = str(order.get("status"))
        reservation_status = None if reservation is None else str(reservation.get("status"))
        if (PARKABLE_RESERVATION.get((status, reservation_status)), order_id) in parked:
            result.parked_for_a_person.append(order_id)
        elif status == "PENDING":
            result.add(ORDER_RESERVATION, "in_flight", order_id, key, f"reservation {reservation_status}")
        elif reservation_status is None:
            result.add(ORDER_RESERVATION, "missing", order_id, key, status)
        elif reservation_status in AGREEING_RESERVATION.get(status, set()):
            continue
        else:
            result.add(ORDER_RESERVATION, "disagrees", order_id, key, f"{status} <-> {reservation_status}")

    read = {"orders": orders, "inventory": inventory, "notifications": notifications, **(tables or {})}
    for saga in DECLARED_PAIRS:
        if saga.left.table in read and saga.right.table in read:  # (check and verify read every table)
            _compare_declared_pair(saga, read, state, result, checked[GROUP[saga.name]])

    result.divergent = {p: sorted(set(result.divergent.get(p, []))) for p in PROJECTIONS}
    result.checked = {p: len(ids) for p, ids in checked.items()}
    return result


def parked_cases(state: Items | None) -> set[tuple[str, str]]:
    """(kind, entity id) of every case the reconciler parked for a person (ANOMALY items)."""
    parked: set[tuple[str, str]] = set()
    for (pk, sk), item in (state or {}).items():
        if pk == "ANOMALY":
            parts = sk.split("#")
            parked.add(
                (str(item.get("kind", parts[0])), str(item.get("entity_id", parts[1] if len(parts) > 1 else "")))
            )
    return parked


def _entities(items: Items, prefix: str, sk: str) -> dict[str, dict[str, Any]]:
    return {pk.removeprefix(prefix): item for (pk, s), item in items.items() if pk.startswith(prefix) and s == sk}


def _compare_declared_pair(
    saga: SagaPair, tables: Mapping[str, Items], state: Items | None, result: Divergence, checked: set[str]
) -> None:
    """A declared saga pair, through its own resolution table: anything but AGREES is divergent (`disagrees`, or
    `missing` / `orphaned` when a side is absent), unless the reconciler parked this pair of the entity for a person
    (a case in a person's hands stays theirs while it changes: a reinstatement can turn one parked case into
    another)."""
    left = _entities(tables.get(saga.left.table, {}), saga.left.prefix, saga.left.sk)
    right = _entities(tables.get(saga.right.table, {}), saga.right.prefix, saga.right.sk)
    parked = parked_cases(state)
    for entity_id in sorted(left.keys() | right.keys()):
        checked.add(entity_id)
        one, other = left.get(entity_id), right.get(entity_id)
        resolution = saga.resolve(one, other)
        if resolution is Resolution.AGREES:
            continue
        statuses = (None if one is None else str(one["status"]), None if other is None else str(other["status"]))
        # Parked: the reconciler handed this entity to a person, for this pair or another one (a case in a
        # person's hands, e.g. stock shipped for a restored order, leaves every pair of it to them).
        if any((kind, entity_id) in parked for kind in SAGA_PARKED_KINDS):
            result.parked_for_a_person.append(entity_id)
            continue
        kind = "orphaned" if one is None else "missing" if other is None else "disagrees"
        key = saga.right.key(entity_id)
        result.add(saga.name, kind, entity_id, key, f"{statuses[0]} <-> {statuses[1]}: {resolution.value}")


# ---------------------------------------------------------------------------------------------------- the checker
@dataclass
class Invariants:
    """Domain invariants at the end of a run: violations per rule, with up to 20 example ids each."""

    violations: dict[str, list[str]] = field(
        default_factory=lambda: {
            "reserved_within_on_hand": [],  # 0 <= reserved <= on_hand, available = on_hand - reserved
            "reserved_equals_reservations": [],  # reserved = sum of RESERVED reservations' quantities
            "order_not_terminal": [],  # PENDING at the end
            "order_disagrees_with_reservation": [],  # not an agreeing pair (parked for a person excepted)
            # CONFIRMED / REJECTED: exactly one notification of that kind and none of the other; CANCELLED: no
            # ORDER_REJECTED, at most one ORDER_CONFIRMED; PENDING: none (over every customer)
            "notification_not_exactly_once": [],
        }
    )

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.violations.items()}

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def check_invariants(
    orders: dict[Any, dict[str, Any]],
    inventory: dict[Any, dict[str, Any]],
    notifications: dict[Any, dict[str, Any]],
    parked: Collection[str] = (),
) -> Invariants:
    """The domain invariants; `parked`: orders parked for a person (CONFIRMED, FAILED), accounted for."""
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
    for order_id, kind, _, _, _ in _order_notifications(notifications):
        sent[(order_id, kind)] = sent.get((order_id, kind), 0) + 1
    for order_id, order in sorted(_orders(orders).items()):
        status = str(order.get("status"))
        if status == "PENDING" and order_id not in parked:  # a restored order parked for a person is theirs
            result.violations["order_not_terminal"].append(order_id)
        reservation_status = inventory.get((f"RESERVATION#{order_id}", "RESERVATION"), {}).get("status")
        agrees = reservation_status in AGREEING_RESERVATION.get(status, set())
        is_parked = (status, reservation_status) in PARKABLE_RESERVATION and order_id in parked
        if status != "PENDING" and not agrees and not is_parked:
            result.violations["order_disagrees_with_reservation"].append(order_id)
        for kind in NOTIFICATION_KINDS:
            rule, count = NOTIFICATION_RULE.get((status, kind), ABSENT), sent.get((order_id, kind), 0)
            if (rule == PRESENT and count != 1) or (rule == ABSENT and count) or (rule == EITHER and count > 1):
                result.violations["notification_not_exactly_once"].append(order_id)
                break
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
    parked_for_a_person: int = 0  # orders (CONFIRMED, FAILED) the reconciler parked as an ANOMALY: not divergent
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
            "divergent_by_kind": {c: kinds for c, kinds in self.divergence.by_kind.items() if kinds},
            "parked_for_a_person": self.divergence.parked_for_a_person[:20],
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
    scanned = {service: scan(client, table) for service, table in service_tables(cloud).items()}
    orders, inventory, notifications = scanned["orders"], scanned["inventory"], scanned["notifications"]
    state = anomalies(client, cloud.table_name("ReconcilerStateTable"))
    divergence = _compare(orders, inventory, notifications, state, scanned)
    invariants = check_invariants(orders, inventory, notifications, divergence.parked_for_a_person)
    accounting = Accounting()
    accounting.parked_for_a_person = len(divergence.parked_for_a_person)
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

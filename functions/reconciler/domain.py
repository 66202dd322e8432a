"""Reconciliation rules: which projections lag their source of truth, and what to republish to repair them.

Pure functions over table snapshots (no AWS). Every repair is the *current* state of a source entity,
republished as the event its item represents, so the consumers' versioned writes make it idempotent: a
repair of something already in flight is just a duplicate, skipped as stale.

Two passes share the same comparison (`find_lagging`): a full sweep compares every entity; an incremental pass
compares only the entities in a `Scope` (changed since the watermark, plus those still lagging last time),
each with its whole neighbourhood, so for those entities it finds exactly what a full sweep would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Projection(StrEnum):
    AVAILABILITY = "availability"  # notifications' copy of inventory products
    RESERVATIONS = "reservations"  # inventory's reaction to orders (reserve / release)
    ORDER_OUTCOMES = "order_outcomes"  # orders' reaction to reservation outcomes
    NOTIFICATIONS = "notifications"  # notifications' copy of confirmed / rejected orders


@dataclass(frozen=True)
class Repair:
    projection: Projection
    entity_id: str
    reason: str
    source_item: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class Anomaly:
    """A disagreement that republishing cannot fix (reported, never acted on)."""

    entity_id: str
    reason: str


@dataclass
class Snapshot:
    """The items reconciliation compares, keyed by entity id."""

    products: dict[str, dict[str, Any]]
    reservations: dict[str, dict[str, Any]]
    orders: dict[str, dict[str, Any]]
    availability: dict[str, dict[str, Any]]
    order_outcomes: dict[str, dict[str, Any]]

    @classmethod
    def from_items(
        cls,
        inventory: Iterable[dict[str, Any]],
        orders: Iterable[dict[str, Any]],
        notifications: Iterable[dict[str, Any]],
    ) -> Snapshot:
        snapshot = cls({}, {}, {}, {}, {})
        for item in inventory:
            kind, _, key = str(item["pk"]).partition("#")
            if kind == "PRODUCT":
                snapshot.products[key] = item
            elif kind == "RESERVATION":
                snapshot.reservations[key] = item
        for item in orders:
            kind, _, key = str(item["pk"]).partition("#")
            if kind == "ORDER":
                snapshot.orders[key] = item
        for item in notifications:
            kind, _, key = str(item["pk"]).partition("#")
            if kind == "AVAILABILITY":
                snapshot.availability[key] = item
            elif kind == "ORDER":
                snapshot.order_outcomes[key] = item
        return snapshot


@dataclass
class Findings:
    repairs: list[Repair] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)

    def count_by_projection(self) -> dict[str, int]:
        counts = {p.value: 0 for p in Projection}
        for repair in self.repairs:
            counts[repair.projection.value] += 1
        return counts


def _version(item: dict[str, Any] | None) -> int:
    return int(item["version"]) if item else 0


def find_lagging(snapshot: Snapshot) -> Findings:
    """Compare every projection with its source of truth; return what to republish."""
    findings = Findings()
    for product_id, product in snapshot.products.items():
        seen = snapshot.availability.get(product_id)
        if _version(seen) < _version(product):
            findings.repairs.append(
                Repair(
                    Projection.AVAILABILITY,
                    product_id,
                    f"availability at version {_version(seen)}, product at {_version(product)}",
                    product,
                )
            )
    for order_id, order in snapshot.orders.items():
        status = order["status"]
        reservation = snapshot.reservations.get(order_id)
        outcome = reservation["status"] if reservation else None
        if status == "PENDING" and outcome is None:
            findings.repairs.append(Repair(Projection.RESERVATIONS, order_id, "placed, not reserved", order))
        elif status == "PENDING" and outcome in ("RESERVED", "FAILED") and reservation is not None:
            findings.repairs.append(
                Repair(Projection.ORDER_OUTCOMES, order_id, f"reservation {outcome}, order still PENDING", reservation)
            )
        elif status == "CANCELLED" and outcome in (None, "RESERVED"):
            findings.repairs.append(
                Repair(Projection.RESERVATIONS, order_id, f"cancelled, reservation {outcome or 'missing'}", order)
            )
        elif (status, outcome) in {("CONFIRMED", "FAILED"), ("REJECTED", "RESERVED"), ("PENDING", "RELEASED")}:
            findings.anomalies.append(Anomaly(order_id, f"order {status} but reservation {outcome}"))
        if status in ("CONFIRMED", "REJECTED"):
            seen = snapshot.order_outcomes.get(order_id)
            if _version(seen) < _version(order):
                findings.repairs.append(
                    Repair(
                        Projection.NOTIFICATIONS,
                        order_id,
                        f"notifications at version {_version(seen)}, order {status} at {_version(order)}",
                        order,
                    )
                )
    return findings


class DeadLetterKind(StrEnum):
    STREAM_BATCH = "stream_batch"  # a stream mapping's OnFailure record: metadata only, repaired from state
    EVENT = "event"  # a valid event that failed to apply: transient, redriven
    POISON = "poison"  # cannot be parsed or has been redriven too often: parked with its reason


MAX_REDRIVES = 3


@dataclass(frozen=True)
class Verdict:
    kind: DeadLetterKind
    reason: str


def judge_dead_letter(body: dict[str, Any] | None, parse_error: str | None, redrives: int) -> Verdict:
    """Decide what to do with one DLQ message (body already JSON-decoded, or the parse error)."""
    if body is not None and "DDBStreamBatchInfo" in body:
        info = body["DDBStreamBatchInfo"]
        return Verdict(
            DeadLetterKind.STREAM_BATCH,
            f"stream batch {info.get('startSequenceNumber')}..{info.get('endSequenceNumber')} "
            f"({body.get('requestContext', {}).get('condition', 'failed')}); repaired from state",
        )
    if parse_error is not None:
        return Verdict(DeadLetterKind.POISON, parse_error)
    if redrives >= MAX_REDRIVES:
        return Verdict(DeadLetterKind.POISON, f"still failing after {redrives} redrives")
    return Verdict(DeadLetterKind.EVENT, "valid event; redriven to its inbox")


# ---------------------------------------------------------------- passes: full sweep or changed-since
class Mode(StrEnum):
    INCREMENTAL = "incremental"  # entities changed since the watermark (the 5-minute schedule)
    FULL = "full"  # every entity (the daily schedule, `{"mode": "full"}`, or when incremental cannot be trusted)


class InvalidInvocation(ValueError):
    """The invocation event asks for something the reconciler does not do."""


class Invocation(BaseModel):
    """What an invocation asks for; a scheduled event (no `mode`) asks for an incremental pass."""

    model_config = ConfigDict(extra="ignore")

    mode: Mode = Mode.INCREMENTAL


def requested_mode(event: dict[str, Any]) -> Mode:
    try:
        return Invocation.model_validate(event).mode
    except ValidationError as exc:
        raise InvalidInvocation(f"mode must be one of {[m.value for m in Mode]}") from exc


# Suspects are kept in one state item (400 KB max); past this many, the next pass sweeps instead.
MAX_SUSPECTS = 2000


@dataclass(frozen=True)
class Scope:
    """The entities an incremental pass compares: product ids and order ids (an order's reservation shares it)."""

    products: frozenset[str] = frozenset()
    orders: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.products) + len(self.orders)

    def union(self, other: Scope) -> Scope:
        return Scope(self.products | other.products, self.orders | other.orders)

    @classmethod
    def of_items(cls, items: Iterable[dict[str, Any]]) -> Scope:
        """The entities that source items (orders, products, reservations) belong to."""
        products: set[str] = set()
        orders: set[str] = set()
        for item in items:
            kind, _, key = str(item["pk"]).partition("#")
            if kind == "PRODUCT":
                products.add(key)
            elif kind in ("ORDER", "RESERVATION"):
                orders.add(key)
        return cls(frozenset(products), frozenset(orders))

    @classmethod
    def of_findings(cls, findings: Findings) -> Scope:
        """The entities found lagging: checked again next pass until their projections caught up."""
        products = {r.entity_id for r in findings.repairs if r.projection is Projection.AVAILABILITY}
        orders = {r.entity_id for r in findings.repairs if r.projection is not Projection.AVAILABILITY}
        return cls(frozenset(products), frozenset(orders))


# Which table holds which item of an entity's neighbourhood: (table role, pk prefix, sort key).
PRODUCT_NEIGHBOURHOOD = (("inventory", "PRODUCT", "PRODUCT"), ("notifications", "AVAILABILITY", "AVAILABILITY"))
ORDER_NEIGHBOURHOOD = (
    ("orders", "ORDER", "ORDER"),
    ("inventory", "RESERVATION", "RESERVATION"),
    ("notifications", "ORDER", "ORDER"),
)


def neighbourhood_keys(
    scope: Scope, already_read: Mapping[str, Iterable[dict[str, Any]]] | None = None
) -> dict[str, list[tuple[str, str]]]:
    """Table role -> the (pk, sk) of every item `find_lagging` needs for the scope, minus those already read.

    `already_read` is per table role: the same key (ORDER#<id>, ORDER) is an order in one table and its
    notifications outcome in another.
    """
    have = {(role, str(i["pk"]), str(i["sk"])) for role, items in (already_read or {}).items() for i in items}
    keys: dict[str, list[tuple[str, str]]] = {"orders": [], "inventory": [], "notifications": []}
    for ids, neighbourhood in ((scope.products, PRODUCT_NEIGHBOURHOOD), (scope.orders, ORDER_NEIGHBOURHOOD)):
        for entity_id in sorted(ids):
            for role, prefix, sort_key in neighbourhood:
                key = (f"{prefix}#{entity_id}", sort_key)
                if (role, *key) not in have:
                    keys[role].append(key)
    return keys


@dataclass(frozen=True)
class ReconcilerState:
    """What survives between passes: where the next incremental pass starts, and what is still lagging."""

    watermark: datetime | None = None  # start of the last successful pass
    suspects: Scope = Scope()
    full_sweep_due: bool = False  # too many suspects to carry: the next pass sweeps
    version: int = 0  # optimistic lock: two overlapping passes cannot both move the watermark


@dataclass(frozen=True)
class Plan:
    mode: Mode
    reason: str
    since: datetime | None = None  # incremental only: entities with updated_at >= since


def plan_pass(requested: Mode, state: ReconcilerState, overlap: timedelta) -> Plan:
    """Full if asked, if no pass has succeeded yet, or if the last one left too many suspects to carry."""
    if requested is Mode.FULL:
        return Plan(Mode.FULL, "requested")
    if state.watermark is None:
        return Plan(Mode.FULL, "no watermark yet")
    if state.full_sweep_due:
        return Plan(Mode.FULL, "the last pass left more than MAX_SUSPECTS lagging entities")
    # The overlap re-reads writes that were in flight (or not yet in the index) when the last pass started.
    return Plan(Mode.INCREMENTAL, "changed since the watermark", since=state.watermark - overlap)


def next_state(previous: ReconcilerState, started_at: datetime, findings: Findings) -> ReconcilerState:
    """The state a successful pass leaves: the watermark moves to the pass's start, the lagging become suspects.

    A repair may itself be lost, and the entity will not change again to bring it back into a window: keeping
    it as a suspect means the next pass checks it again, whatever the watermark.
    """
    suspects = Scope.of_findings(findings)
    overflow = len(suspects) > MAX_SUSPECTS
    return ReconcilerState(
        watermark=max(started_at, previous.watermark) if previous.watermark else started_at,
        suspects=Scope() if overflow else suspects,
        full_sweep_due=overflow,
        version=previous.version + 1,
    )

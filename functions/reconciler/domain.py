"""Reconciliation rules: which projections lag their source of truth, and what to republish to repair them.

Pure functions over table snapshots (no AWS). Every repair is the *current* state of a source entity,
republished as the event its item represents, so the consumers' versioned writes make it idempotent: a
repair of something already in flight is just a duplicate, skipped as stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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

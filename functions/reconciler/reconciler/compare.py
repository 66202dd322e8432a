"""Reconciliation rules: compare every declared projection with what its source implies, and decide the repairs.

Pure functions over table snapshots (no AWS). The rules are data, declared in the layer next to the event
contract (`converge.projections`): each projection is `expected(source)`, and each saga pair (order <->
reservation, order <-> shipment) is a table of resolutions. `compare` walks the declarations generically and finds
every difference, in every direction (docs/CONSISTENCY.md):

- missing or behind: the source's *current* state is republished as the event its item represents (the same
  deterministic event id the publisher used), and the consumer's versioned write applies it;
- ahead, different at the same version, or orphaned: a versioned write can never repair these, so the reconciler
  sends a correction (`ProjectionCorrected`, `ReservationCorrected`; built in `repairs`), which the owning
  consumer applies whatever the stored version, but only if the item is still what the reconciler observed;
- a saga pair that disagrees: the declared resolution (republish, release, remove, reinstate, tombstone), or,
  for what truly needs a person, parked with its reason;
- a derived counter (a product's `reserved`) that differs from its ledger (its RESERVED reservations): recounted,
  by the full sweep only (`recount_suspects`), after the handler has confirmed it on a second read.

Two passes share `compare`: a full sweep compares every entity; an incremental pass compares only the entities in
a `Scope` (changed since the watermark, plus those still lagging last time), each with its whole neighbourhood, so
for those entities it finds exactly what a full sweep finds.
"""

from __future__ import annotations

from collections.abc import Mapping

from converge.contracts import statuses_without_news
from converge.projections import (
    PRODUCT,
    PROJECTIONS,
    REPUBLISHED_BY,
    RESERVATION,
    SAGAS,
    Difference,
    EntityLayout,
    Projection,
    Resolution,
    SagaPair,
    moved_by_its_pair,
    reserved_by_product,
)
from reconciler.findings import Correction, Finding, Findings, Parked, RecountSuspect, Republish
from reconciler.repairs import projection_correction, saga_correction
from reconciler.snapshot import Scope, Snapshot, version_of

SAGA_NAMES = frozenset(saga.name for saga in SAGAS)
# Statuses whose event moves nothing in the other services (no contract consumes it): republishing them repairs
# nothing. Derived from the contracts: a shipment's PENDING, a reservation's RELEASED and SHIPPED.
NO_NEWS: Mapping[EntityLayout, tuple[str, ...]] = statuses_without_news()


# ---------------------------------------------------------------- projections
def _compare_projection(
    projection: Projection, snapshot: Snapshot, ids: set[str] | None, findings: Findings, corrections: bool
) -> None:
    sources = snapshot.entities(projection.source)
    stored = snapshot.projected(projection)
    for entity_id in sorted((sources.keys() | stored.keys()) if ids is None else ids):
        source = sources.get(entity_id)
        expected = projection.expected(source)
        actual = stored.get(entity_id, {})
        for key in sorted(expected.keys() | actual.keys()):
            wanted, item = expected.get(key), actual.get(key)
            difference = projection.difference(source, wanted, item)
            if difference is None:
                continue
            finding = Finding(
                projection.name,
                entity_id,
                difference,
                f"{projection.name} {key[0]}/{key[1]} {difference.value}: stored version {version_of(item)}, "
                f"source version {version_of(source)}",
            )
            if difference in (Difference.MISSING, Difference.BEHIND) and source is not None:
                findings.republish.append(Republish(finding, source))
            elif not corrections:
                findings.unrepaired.append(finding)
            else:
                findings.corrections.append(projection_correction(projection, finding, key, wanted, item, source))


# ---------------------------------------------------------------- the saga pairs
def _compare_saga(
    saga: SagaPair, snapshot: Snapshot, ids: set[str] | None, findings: Findings, corrections: bool
) -> None:
    orders, others = snapshot.entities(saga.left), snapshot.entities(saga.right)
    for order_id in sorted((orders.keys() | others.keys()) if ids is None else ids):
        order, other = orders.get(order_id), others.get(order_id)
        resolution = saga.resolve(order, other)
        if (source_layout := REPUBLISHED_BY.get(resolution)) is not None:
            # A republish with nothing to send waits for its source's own pair; if none is coming, a person decides.
            waited = snapshot.entities(source_layout).get(order_id)
            if waited is None or str(waited.get("status")) in NO_NEWS.get(source_layout, ()):
                resolution = resolution if moved_by_its_pair(order, source_layout, waited) else Resolution.PARK
        if resolution is Resolution.AGREES:
            continue
        order_status = None if order is None else str(order["status"])
        other_status = None if other is None else str(other["status"])
        finding = Finding(
            saga.name,
            order_id,
            resolution,
            f"order {order_status or 'missing'} (version {version_of(order)}), {saga.right.sk.lower()} "
            f"{other_status or 'missing'} (version {version_of(other)})",
        )
        if resolution in REPUBLISHED_BY:
            source = snapshot.entities(REPUBLISHED_BY[resolution]).get(order_id)
            if source is None or str(source.get("status")) in NO_NEWS.get(REPUBLISHED_BY[resolution], ()):
                # Nothing to send again, or nothing its event would move: the other pair's repair comes first
                # (a missing shipment is recreated, a PENDING one decided by shipping); checked again next pass.
                findings.deferred.append(finding)
            else:
                findings.republish.append(Republish(finding, source))
        elif resolution is Resolution.PARK:
            findings.parked.append(
                Parked(
                    finding,
                    saga.parked_kind(order_status, other_status),
                    f"{version_of(order)}:{version_of(other)}",
                    {"order_status": order_status, f"{saga.right.sk.lower()}_status": other_status},
                )
            )
        elif not corrections:
            findings.unrepaired.append(finding)
        else:
            findings.corrections.append(saga_correction(saga, finding, resolution, order, other))


# ---------------------------------------------------------------- derived counters
def _compare_counters(snapshot: Snapshot, findings: Findings) -> None:
    """Every product's `reserved` against the sum of its RESERVED reservations (needs every reservation)."""
    held = reserved_by_product(snapshot.entities(RESERVATION).values())
    for product_id, product in sorted(snapshot.entities(PRODUCT).items()):
        reserved, on_hand = int(product.get("reserved", 0)), int(product.get("on_hand", 0))
        counted = held.get(product_id, 0)
        if reserved != counted or int(product.get("available", on_hand - reserved)) != on_hand - reserved:
            findings.recount_suspects.append(
                RecountSuspect(product_id, version_of(product), reserved, counted, on_hand)
            )


# ---------------------------------------------------------------- the comparison
def compare(
    snapshot: Snapshot,
    scope: Scope | None = None,
    *,
    corrections: bool = True,
    counters: bool | None = None,
    only: str | None = None,
) -> Findings:
    """Every difference between the declared projections and their sources, and the repair of each.

    `scope`: compare only these entities (an incremental pass); None compares every entity in the snapshot (a
    full sweep, which alone can check counters against their ledger). `corrections=False` finds everything but
    repairs only forward (republishing): an operator's switch, and how the tests show what corrections add.
    `only`: compare one declared projection or saga pair by name (a backfill of it), and no counters.
    """
    findings = Findings()
    for projection in PROJECTIONS:
        if only is not None and projection.name != only:
            continue
        ids = None if scope is None else set(scope.ids_of(projection.source))
        _compare_projection(projection, snapshot, ids, findings, corrections)
    for saga in SAGAS:
        if only is not None and saga.name != only:
            continue
        _compare_saga(saga, snapshot, None if scope is None else set(scope.ids_of(saga.left)), findings, corrections)
    if only is None and (counters if counters is not None else scope is None):
        _compare_counters(snapshot, findings)
    return findings


def to_confirm(findings: Findings) -> Scope:
    """The entities whose sources are read again before their corrections are sent (only those)."""
    return Scope.of_findings(Findings(corrections=findings.corrections))


def confirmed_corrections(findings: Findings, reread: Snapshot) -> list[Correction]:
    """The corrections that still hold once their sources have been read again, after the projections.

    A source written between the pass's read of it and its read of the projection can make a projection look
    ahead (or a saga pair look contradictory) when it is only in flight; a correction is sent only if the same
    comparison on the fresher source asks for the same correction.
    """
    if not findings.corrections:
        return []
    again = compare(reread, to_confirm(findings), counters=False)
    still = {c.data.correction_id for c in again.corrections}
    return [c for c in findings.corrections if c.data.correction_id in still]

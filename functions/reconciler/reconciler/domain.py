"""Reconciliation rules: compare every declared projection with what its source implies, and decide the repairs.

Pure functions over table snapshots (no AWS). The rules are data, declared in the layer next to the event
contract (`converge.projections`): each projection is `expected(source)`, and the saga pair order <-> reservation
is a table of resolutions. `compare` walks the declarations generically and finds every difference, in every
direction (docs/CONSISTENCY.md):

- missing or behind: the source's *current* state is republished as the event its item represents (the same
  deterministic event id the publisher used), and the consumer's versioned write applies it;
- ahead, different at the same version, or orphaned: a versioned write can never repair these, so the reconciler
  sends a correction (`ProjectionCorrected`, `ReservationCorrected`), which the owning consumer applies whatever
  the stored version, but only if the item is still what the reconciler observed;
- a saga pair that disagrees: the declared resolution (republish, release, remove, reinstate, tombstone), or,
  for what truly needs a person, parked with its reason;
- a derived counter (a product's `reserved`) that differs from its ledger (its RESERVED reservations): recounted,
  by the full sweep only (`recount_suspects`), after the handler has confirmed it on a second read.

Two passes share `compare`: a full sweep compares every entity; an incremental pass compares only the entities in
a `Scope` (changed since the watermark, plus those still lagging last time), each with its whole neighbourhood, so
for those entities it finds exactly what a full sweep finds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from converge.contracts import SERVICES, with_tables
from converge.envelope import correction_id_for
from converge.events import (
    CorrectionData,
    OrderLine,
    OrderStatus,
    ProjectionCorrected,
    ReservationAction,
    ReservationCorrected,
    ReservationStatus,
    ReservedRecounted,
)
from converge.projections import (
    ORDER,
    PRODUCT,
    PROJECTIONS,
    REPUBLISHED_BY,
    RESERVATION,
    SAGA,
    SAGAS,
    SHIPMENT,
    Difference,
    Either,
    EntityLayout,
    Item,
    Key,
    Projection,
    Resolution,
    SagaPair,
    moved_by_its_pair,
    reserved_by_product,
)

SAGA_ACTIONS: Mapping[Resolution, ReservationAction] = {
    Resolution.RELEASE: ReservationAction.RELEASE,
    Resolution.REMOVE: ReservationAction.REMOVE,
    Resolution.REINSTATE: ReservationAction.REINSTATE,
    Resolution.TOMBSTONE: ReservationAction.TOMBSTONE,
}
# Every source entity layout the contracts declare (what a pass reads first, and what scopes are made of).
SOURCES: tuple[EntityLayout, ...] = tuple(layout for service in SERVICES for layout in service.layouts)
SAGA_NAMES = frozenset(saga.name for saga in SAGAS)
# Statuses whose event moves nothing in the other services: republishing them repairs nothing.
NO_NEWS: Mapping[EntityLayout, tuple[str, ...]] = {SHIPMENT: ("PENDING",), RESERVATION: ("RELEASED", "SHIPPED")}
RESERVED_COUNTER = "reserved"  # the name findings about products' `reserved` go by
CONFIRMED_WITHOUT_STOCK = "confirmed_without_stock"  # parked kind: a person decides (docs/CONSISTENCY.md)
RECOUNT_RAISED_ON_HAND = "stock_recount_raised_on_hand"


@dataclass(frozen=True)
class Finding:
    """One difference between a projection (or a saga side, or a counter) and what its source implies."""

    projection: str  # a declared projection's name, the saga's name, or RESERVED_COUNTER
    entity_id: str  # the source entity's id (product or order)
    difference: str  # a projections.Difference, or a saga Resolution
    reason: str


@dataclass(frozen=True)
class Republish:
    """Forward repair: send the source's current state again (a versioned write applies it)."""

    finding: Finding
    source_item: Item = field(hash=False, compare=False)


@dataclass(frozen=True)
class Correction:
    """Repair against the grain of versions: a correction event the owning consumer applies if still valid."""

    finding: Finding
    data: CorrectionData = field(hash=False, compare=False)
    version: int | None = None  # the entity version the correction's metadata carries


@dataclass(frozen=True)
class Parked:
    """What needs a person: recorded once (kind, entity, detail), alarmed, never acted on automatically."""

    finding: Finding
    kind: str
    detail: str  # with kind and entity id, what makes a parked case distinct (the versions involved)
    attributes: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class RecountSuspect:
    """A product whose `reserved` differs from its RESERVED reservations in this read (confirmed before acting)."""

    product_id: str
    version: int
    reserved: int
    counted: int
    on_hand: int = 0


@dataclass
class Snapshot:
    """The items reconciliation compares: table role -> (pk, sk) -> item."""

    tables: dict[str, dict[Key, Item]] = field(default_factory=lambda: {s.name: {} for s in with_tables()})

    @classmethod
    def of(cls, **items: Iterable[Item]) -> Snapshot:
        """A snapshot of the given items, by service: `Snapshot.of(inventory=[...], orders=[...])`."""
        snapshot = cls()
        for role, found in items.items():
            snapshot.add(role, found)
        return snapshot

    def add(self, role: str, items: Iterable[Item]) -> None:
        table = self.tables.setdefault(role, {})
        for item in items:
            table[(str(item["pk"]), str(item["sk"]))] = item

    def entities(self, layout: EntityLayout) -> dict[str, Item]:
        """Entity id -> item, for the items of one layout."""
        found: dict[str, Item] = {}
        for (pk, sk), item in self.tables.get(layout.table, {}).items():
            entity_id = layout.id_of(pk, sk)
            if entity_id is not None:
                found[entity_id] = item
        return found

    def projected(self, projection: Projection) -> dict[str, dict[Key, Item]]:
        """Source id -> the projection's stored items, keyed."""
        grouped: dict[str, dict[Key, Item]] = {}
        for key, item in self.tables.get(projection.table, {}).items():
            entity_id = projection.source_id_of(*key)
            if entity_id is not None:
                grouped.setdefault(entity_id, {})[key] = item
        return grouped

    def refreshed(self, role: str, keys: Iterable[Key], items: Iterable[Item]) -> Snapshot:
        """A copy in which the items at `keys` of one table are replaced by a fresher read of them (`items`;
        a key read again and not found is absent in the copy)."""
        copy = Snapshot({name: dict(table) for name, table in self.tables.items()})
        for key in keys:
            copy.tables.setdefault(role, {}).pop(key, None)
        copy.add(role, items)
        return copy

    @property
    def checked(self) -> int:
        """The distinct source entities in the snapshot (an order, its reservation and shipment count once)."""
        return len({(layout.kind, entity_id) for layout in SOURCES for entity_id in self.entities(layout)})


@dataclass
class Findings:
    republish: list[Republish] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    parked: list[Parked] = field(default_factory=list)
    recount_suspects: list[RecountSuspect] = field(default_factory=list)
    unrepaired: list[Finding] = field(default_factory=list)  # found, but corrections are turned off
    deferred: list[Finding] = field(default_factory=list)  # left for the next pass (see defer_saga_repairs)

    @property
    def all(self) -> list[Finding]:
        return [
            *(r.finding for r in self.republish),
            *(c.finding for c in self.corrections),
            *(p.finding for p in self.parked),
            *self.unrepaired,
            *self.deferred,
        ]

    def count_by_projection(self) -> dict[str, int]:
        counts = {p.name: 0 for p in PROJECTIONS} | {saga.name: 0 for saga in SAGAS} | {RESERVED_COUNTER: 0}
        for finding in self.all:
            counts[finding.projection] = counts.get(finding.projection, 0) + 1
        counts[RESERVED_COUNTER] += len(self.recount_suspects)
        return counts

    def count_by_difference(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.all:
            counts[finding.difference] = counts.get(finding.difference, 0) + 1
        return counts


def _version(item: Item | None) -> int:
    return int(item.get("version") or 0) if item else 0


def _lines(*items: Item | None) -> list[OrderLine]:
    for item in items:
        if item and item.get("lines"):
            # An order's lines carry a price too: a reservation moves only products and quantities.
            return [OrderLine(product_id=line["product_id"], quantity=line["quantity"]) for line in item["lines"]]
    return []


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
                difference.value,
                f"{projection.name} {key[0]}/{key[1]} {difference.value}: stored version {_version(item)}, "
                f"source version {_version(source)}",
            )
            if difference in (Difference.MISSING, Difference.BEHIND) and source is not None:
                findings.republish.append(Republish(finding, source))
            elif not corrections:
                findings.unrepaired.append(finding)
            else:
                write = wanted.attributes if isinstance(wanted, Either) else wanted
                observed = projection.observed(item)
                data = ProjectionCorrected(
                    correction_id=correction_id_for(projection.name, key, observed, write),
                    entity_id=entity_id,
                    reason=finding.reason,
                    projection=projection.name,
                    pk=key[0],
                    sk=key[1],
                    observed=observed,
                    expected=write,
                )
                findings.corrections.append(Correction(finding, data, _version(source) or _version(item)))


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
            resolution.value,
            f"order {order_status or 'missing'} (version {_version(order)}), {saga.right.sk.lower()} "
            f"{other_status or 'missing'} (version {_version(other)})",
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
                    f"{_version(order)}:{_version(other)}",
                    {"order_status": order_status, f"{saga.right.sk.lower()}_status": other_status},
                )
            )
        elif not corrections:
            findings.unrepaired.append(finding)
        else:
            findings.corrections.append(_reservation_correction(finding, resolution, order, other))


def _reservation_correction(
    finding: Finding, resolution: Resolution, order: Item | None, reservation: Item | None
) -> Correction:
    """The correction a resolution of the order <-> reservation pair sends to inventory."""
    order_id = finding.entity_id
    order_status = None if order is None else str(order["status"])
    reservation_status = None if reservation is None else str(reservation["status"])
    action = SAGA_ACTIONS[resolution]
    lines = _lines(reservation, order) if action is ReservationAction.REMOVE else _lines(order, reservation)
    observed_version = _version(reservation) or None
    data = ReservationCorrected(
        correction_id=correction_id_for(
            SAGA.name, order_id, action.value, reservation_status, observed_version, order_status, _version(order)
        ),
        entity_id=order_id,
        reason=finding.reason,
        order_id=order_id,
        action=action,
        observed_status=None if reservation_status is None else ReservationStatus(reservation_status),
        observed_version=observed_version,
        lines=lines,
        order_status=None if order_status is None else OrderStatus(order_status),
    )
    return Correction(finding, data, _version(order) or _version(reservation))


# ---------------------------------------------------------------- derived counters
def _compare_counters(snapshot: Snapshot, findings: Findings) -> None:
    """Every product's `reserved` against the sum of its RESERVED reservations (needs every reservation)."""
    held = reserved_by_product(snapshot.entities(RESERVATION).values())
    for product_id, product in sorted(snapshot.entities(PRODUCT).items()):
        reserved, on_hand = int(product.get("reserved", 0)), int(product.get("on_hand", 0))
        counted = held.get(product_id, 0)
        if reserved != counted or int(product.get("available", on_hand - reserved)) != on_hand - reserved:
            findings.recount_suspects.append(RecountSuspect(product_id, _version(product), reserved, counted, on_hand))


def recount(suspect: RecountSuspect) -> Correction:
    """The correction that sets a confirmed suspect's `reserved` to its counted ledger."""
    finding = Finding(
        RESERVED_COUNTER,
        suspect.product_id,
        Difference.DIFFERENT.value,
        f"reserved {suspect.reserved}, RESERVED reservations hold {suspect.counted} (version {suspect.version})",
    )
    data = ReservedRecounted(
        correction_id=correction_id_for(RESERVED_COUNTER, suspect.product_id, suspect.version, suspect.counted),
        entity_id=suspect.product_id,
        reason=finding.reason,
        product_id=suspect.product_id,
        observed_version=suspect.version,
        reserved=suspect.counted,
    )
    return Correction(finding, data, suspect.version)


def recount_needs_a_person(suspect: RecountSuspect) -> Parked | None:
    """A recount that must raise on_hand to cover the reservations (a restored product): a person counts stock."""
    if suspect.counted <= suspect.on_hand:
        return None
    finding = Finding(
        RESERVED_COUNTER,
        suspect.product_id,
        Difference.DIFFERENT.value,
        f"RESERVED reservations hold {suspect.counted}, more than on_hand {suspect.on_hand}: on_hand raised to "
        f"{suspect.counted}; count the stock",
    )
    return Parked(finding, RECOUNT_RAISED_ON_HAND, str(suspect.version), {"on_hand": suspect.on_hand})


def confirmed_recounts(suspects: list[RecountSuspect], reread: Snapshot) -> list[RecountSuspect]:
    """The suspects still drifting in a second read (every reservation, then the products) at the SAME version.

    The product's version moves with every reservation change that touches it, so an unchanged version across
    both reads means the second read's sum is exactly the ledger of that version.
    """
    fresh = {s.product_id: s for s in _recount_candidates(reread)}
    confirmed = []
    for suspect in suspects:
        again = fresh.get(suspect.product_id)
        if again is not None and again.version == suspect.version:
            confirmed.append(again)
    return confirmed


def _recount_candidates(snapshot: Snapshot) -> list[RecountSuspect]:
    findings = Findings()
    _compare_counters(snapshot, findings)
    return findings.recount_suspects


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


def _products_of(item: Item | None) -> set[str]:
    return {str(line["product_id"]) for line in (item or {}).get("lines") or []}


def defer_saga_repairs(
    findings: Findings, corrections: list[Correction], recounted: set[str], snapshot: Snapshot
) -> list[Correction]:
    """Hold back this pass's saga repairs that touch a product being recounted; they run next pass.

    A recount applies only at the product version it counted; a reservation released or removed first would
    move the product past it, and the recount would be skipped while the counter still differs from its ledger.
    So a pass either recounts a product or changes its reservations, never both (the entities stay suspects).
    Returns the corrections to send; the deferred findings are moved to `findings.deferred`.
    """
    if not recounted:
        return corrections
    orders, reservations = snapshot.entities(ORDER), snapshot.entities(RESERVATION)

    def touches(entity_id: str) -> bool:
        return bool((_products_of(orders.get(entity_id)) | _products_of(reservations.get(entity_id))) & recounted)

    kept_republish = []
    for repair in findings.republish:
        if repair.finding.projection in SAGA_NAMES and touches(repair.finding.entity_id):
            findings.deferred.append(repair.finding)
        else:
            kept_republish.append(repair)
    findings.republish = kept_republish
    kept = []
    for correction in corrections:
        if correction.finding.projection in SAGA_NAMES and touches(correction.finding.entity_id):
            findings.deferred.append(correction.finding)
        else:
            kept.append(correction)
    return kept


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
    # A full sweep of one declared projection or saga pair: a backfill (its events carry the backfill mark).
    projection: str | None = None


BACKFILLABLE = frozenset({p.name for p in PROJECTIONS} | {saga.name for saga in SAGAS})


def requested_backfill(event: dict[str, Any]) -> str | None:
    """The projection a `{"mode": "full", "projection": name}` invocation backfills, or None."""
    try:
        invocation = Invocation.model_validate(event)
    except ValidationError as exc:
        raise InvalidInvocation(f"mode must be one of {[m.value for m in Mode]}") from exc
    if invocation.projection is None:
        return None
    if invocation.mode is not Mode.FULL or invocation.projection not in BACKFILLABLE:
        raise InvalidInvocation(f"a backfill is a full sweep of one of {sorted(BACKFILLABLE)}")
    return invocation.projection


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

    def ids_of(self, layout: EntityLayout) -> frozenset[str]:
        """The scope's ids of the entity kind whose items have this layout."""
        return self.products if layout.kind == PRODUCT.kind else self.orders

    @classmethod
    def of_items(cls, items: Iterable[Item]) -> Scope:
        """The entities that source items (every contract's entity layouts) belong to."""
        ids: dict[str, set[str]] = {PRODUCT.kind: set(), ORDER.kind: set()}
        for item in items:
            pk, sk = str(item["pk"]), str(item["sk"])
            for layout in SOURCES:
                if (entity_id := layout.id_of(pk, sk)) is not None:
                    ids[layout.kind].add(entity_id)
                    break
        return cls(frozenset(ids[PRODUCT.kind]), frozenset(ids[ORDER.kind]))

    @classmethod
    def of_findings(cls, findings: Findings) -> Scope:
        """The entities found different: checked again next pass until their projections agree."""
        product_kinds = {p.name for p in PROJECTIONS if p.source == PRODUCT} | {RESERVED_COUNTER}
        everything = findings.all
        products = {f.entity_id for f in everything if f.projection in product_kinds}
        products |= {s.product_id for s in findings.recount_suspects}
        orders = {f.entity_id for f in everything if f.projection not in product_kinds}
        return cls(frozenset(products), frozenset(orders))


def _without(keys: dict[str, list[Key]], already: Snapshot | None) -> dict[str, list[Key]]:
    have = already.tables if already else {}
    return {role: sorted({k for k in wanted if k not in have.get(role, {})}) for role, wanted in keys.items()}


def source_keys(scope: Scope, already_read: Snapshot | None = None) -> dict[str, list[Key]]:
    """Table role -> the keys of the scope's source items (products; orders and their reservations) not yet read.

    Read first: the projection keys of an entity can depend on its source (a notification is keyed by the
    order's customer).
    """
    keys: dict[str, list[Key]] = {s.name: [] for s in with_tables()}
    for layout in SOURCES:
        keys[layout.table].extend(layout.key(entity_id) for entity_id in scope.ids_of(layout))
    return _without(keys, already_read)


def projection_keys(scope: Scope, sources: Snapshot) -> dict[str, list[Key]]:
    """Table role -> the keys of every declared projection item of the scope's entities not yet read.

    For each entity: the keys its source implies (`expected`) and every other key the projection's item could
    sit at (where a stale or forged item would be, whatever the source says now).
    """
    keys: dict[str, list[Key]] = {s.name: [] for s in with_tables()}
    for projection in PROJECTIONS:
        found = sources.entities(projection.source)
        for entity_id in sorted(scope.ids_of(projection.source)):
            keys[projection.table].extend(projection.keys_to_read(entity_id, found.get(entity_id)))
    return _without(keys, sources)


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

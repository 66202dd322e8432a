"""Passes: what an invocation asks for, whether a pass sweeps everything or only what changed, and the state a
successful pass leaves for the next (the watermark, where each bucket of the changed-since index is resumed, and the
entities still lagging)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from converge.projections import PROJECTIONS, SAGAS
from reconciler.findings import Findings
from reconciler.snapshot import Scope


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


def parse_invocation(event: dict[str, Any]) -> Invocation:
    """The pass an invocation event asks for: a mode, and for a `{"mode": "full", "projection": name}` backfill
    the declared projection or saga pair it sweeps."""
    try:
        invocation = Invocation.model_validate(event)
    except ValidationError as exc:
        raise InvalidInvocation(f"mode must be one of {[m.value for m in Mode]}") from exc
    if invocation.projection is not None and (
        invocation.mode is not Mode.FULL or invocation.projection not in BACKFILLABLE
    ):
        raise InvalidInvocation(f"a backfill is a full sweep of one of {sorted(BACKFILLABLE)}")
    return invocation


# Suspects are kept in one state item (400 KB max); past this many, a sweep is started for the rest.
MAX_SUSPECTS = 2000


@dataclass(frozen=True)
class Position:
    """Where an incremental pass reads one bucket of the changed-since index from: every item at `updated_at` or
    later, or (with `key`) the items after the one at (`updated_at`, `key`), the last one a pass compared."""

    updated_at: str  # as the index holds it (ISO-8601): the start key of a Query must be the stored value
    key: tuple[str, str] | None = None  # (pk, sk) of the last item compared; None: from `updated_at` inclusive

    @classmethod
    def at(cls, moment: datetime) -> Position:
        """Every item written at `moment` or later."""
        return cls(moment.isoformat())

    @property
    def moment(self) -> datetime:
        return datetime.fromisoformat(self.updated_at)


def bucket_id(service: str, bucket: str) -> str:
    """One bucket of one service's changed-since index, as the state names it."""
    return f"{service}#{bucket}"


def resume_after(updated_at: str, key: tuple[str, str], started_at: datetime, overlap: timedelta) -> Position:
    """Where the next pass resumes a bucket whose items this pass (started at `started_at`) compared up to and
    including the one at (`updated_at`, `key`).

    Just after that item when it was written more than the overlap before the pass started: every write stamped that
    early was in the index when the pass read it (the overlap covers writes in flight, index propagation and clock
    skew). Otherwise from the overlap before the pass's start, as a pass that read its whole window: a write stamped
    before the last item may still arrive there, and is read then (an entity may be compared twice, never skipped).
    """
    if datetime.fromisoformat(updated_at) < started_at - overlap:
        return Position(updated_at, key)
    return Position.at(started_at - overlap)


def next_bucket(positions: Mapping[str, Position | None]) -> str | None:
    """The bucket to read a page of next: the one furthest behind (None: every bucket was read to its end), so that a
    budget spent before the end leaves the buckets about equally far."""
    behind = [(position.moment, bucket) for bucket, position in positions.items() if position is not None]
    return min(behind)[1] if behind else None


def backlog(positions: Mapping[str, Position], now: datetime) -> timedelta:
    """How far the bucket furthest behind is from `now` (zero when no bucket is behind its watermark)."""
    return max((now - p.moment for p in positions.values()), default=timedelta(0))


@dataclass(frozen=True)
class ReconcilerState:
    """What survives between passes: where the next incremental pass starts, and what is still lagging."""

    watermark: datetime | None = None  # start of the last successful pass
    suspects: Scope = field(default_factory=Scope)
    full_sweep_due: bool = False  # too many suspects to carry: the next pass starts a sweep
    version: int = 0  # optimistic lock: two overlapping passes cannot both move the watermark
    last_pass_at: datetime | None = None  # when the last successful incremental pass finished
    # Buckets of the changed-since index a pass's budget did not let it read to the end of its window, and where the
    # next pass resumes them; every other bucket is read from the watermark (minus the overlap).
    positions: Mapping[str, Position] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    mode: Mode
    reason: str
    since: datetime | None = None  # incremental only: entities with updated_at >= since
    sweep: str | None = None  # why this pass starts the full sweep (None: it starts none)


TOO_MANY_SUSPECTS = "the last pass left more than MAX_SUSPECTS lagging entities"
# Why a pass starts a sweep of the counters alone: the last sweep left counters it could not confirm (their products
# moved through every re-tally), or sent recounts, which inventory skips if the product moved on before they arrive.
COUNTERS_LEFT = "counters the last sweep recounted or left"


def plan_pass(requested: Mode, state: ReconcilerState, overlap: timedelta, now: datetime) -> Plan:
    """What a pass does. A full sweep is never done by a pass itself: it is started (the state machine fans it out,
    reconciler.sweeper) when asked for, when no pass has succeeded yet (what came before the first watermark), or
    when the last pass found more lagging entities than it can carry; the incremental pass goes on either way."""
    # The overlap re-reads writes that were in flight (or not yet in the index) when the last pass started.
    since = now - overlap if state.watermark is None else state.watermark - overlap
    if requested is Mode.FULL:
        # The operator's command: the sweep is started, and this pass goes on as the scheduled one would.
        return Plan(Mode.FULL, "requested", since=since, sweep="requested")
    if state.watermark is None:
        # What is written from now on, the incremental passes see; what came before, the sweep.
        return Plan(Mode.INCREMENTAL, "no watermark yet", since=since, sweep="no watermark yet")
    if state.full_sweep_due:
        return Plan(Mode.INCREMENTAL, "changed since the watermark", since, sweep=TOO_MANY_SUSPECTS)
    return Plan(Mode.INCREMENTAL, "changed since the watermark", since=since)


def next_state(
    previous: ReconcilerState,
    started_at: datetime,
    findings: Findings | Scope,
    positions: Mapping[str, Position | None] | None = None,
    overlap: timedelta = timedelta(0),
) -> ReconcilerState:
    """The state a successful pass leaves: the watermark moves to the pass's start, the lagging (its findings, or
    their scope) become suspects, and the buckets it did not read to the end keep their `positions`.

    A repair may itself be lost, and the entity will not change again to bring it back into a window: keeping
    it as a suspect means the next pass checks it again, whatever the watermark. Past MAX_SUSPECTS, the first
    MAX_SUSPECTS are kept and a sweep is due (the next pass starts it; a running one already covers them).
    A bucket read to the end (None), or up to where the next watermark's overlap starts, needs no position.
    """
    suspects = findings if isinstance(findings, Scope) else Scope.of_findings(findings)
    overflow = len(suspects) > MAX_SUSPECTS
    if overflow:
        products = sorted(suspects.products)[:MAX_SUSPECTS]
        orders = sorted(suspects.orders)[: MAX_SUSPECTS - len(products)]
        suspects = Scope(frozenset(products), frozenset(orders))
    watermark = max(started_at, previous.watermark) if previous.watermark else started_at
    caught_up = Position.at(watermark - overlap)
    return ReconcilerState(
        watermark=watermark,
        suspects=suspects,
        full_sweep_due=overflow,
        version=previous.version + 1,
        positions={b: p for b, p in (positions or {}).items() if p is not None and p != caught_up},
    )

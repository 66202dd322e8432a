"""Passes: what an invocation asks for, whether a pass sweeps everything or only what changed, and the state a
successful pass leaves for the next (the watermark and the entities still lagging)."""

from __future__ import annotations

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
class ReconcilerState:
    """What survives between passes: where the next incremental pass starts, and what is still lagging."""

    watermark: datetime | None = None  # start of the last successful pass
    suspects: Scope = field(default_factory=Scope)
    full_sweep_due: bool = False  # too many suspects to carry: the next pass starts a sweep
    version: int = 0  # optimistic lock: two overlapping passes cannot both move the watermark
    last_pass_at: datetime | None = None  # when the last successful incremental pass finished


@dataclass(frozen=True)
class Plan:
    mode: Mode
    reason: str
    since: datetime | None = None  # incremental only: entities with updated_at >= since
    sweep: str | None = None  # why this pass starts the full sweep (None: it starts none)


TOO_MANY_SUSPECTS = "the last pass left more than MAX_SUSPECTS lagging entities"


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


def next_state(previous: ReconcilerState, started_at: datetime, findings: Findings) -> ReconcilerState:
    """The state a successful pass leaves: the watermark moves to the pass's start, the lagging become suspects.

    A repair may itself be lost, and the entity will not change again to bring it back into a window: keeping
    it as a suspect means the next pass checks it again, whatever the watermark. Past MAX_SUSPECTS, the first
    MAX_SUSPECTS are kept and a sweep is due (the next pass starts it; a running one already covers them).
    """
    suspects = Scope.of_findings(findings)
    overflow = len(suspects) > MAX_SUSPECTS
    if overflow:
        products = sorted(suspects.products)[:MAX_SUSPECTS]
        orders = sorted(suspects.orders)[: MAX_SUSPECTS - len(products)]
        suspects = Scope(frozenset(products), frozenset(orders))
    return ReconcilerState(
        watermark=max(started_at, previous.watermark) if previous.watermark else started_at,
        suspects=suspects,
        full_sweep_due=overflow,
        version=previous.version + 1,
    )

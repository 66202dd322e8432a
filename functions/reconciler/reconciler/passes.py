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


# Suspects are kept in one state item (400 KB max); past this many, the next pass sweeps instead.
MAX_SUSPECTS = 2000


@dataclass(frozen=True)
class ReconcilerState:
    """What survives between passes: where the next incremental pass starts, and what is still lagging."""

    watermark: datetime | None = None  # start of the last successful pass
    suspects: Scope = field(default_factory=Scope)
    full_sweep_due: bool = False  # too many suspects to carry: the next pass sweeps
    version: int = 0  # optimistic lock: two overlapping passes cannot both move the watermark
    last_pass_at: datetime | None = None  # when the last successful incremental pass finished


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

"""Is the reconciler working? The facts its alarms, its dashboard and `python -m tools.reconcile status` read.

Pure (no AWS): from the state the incremental pass keeps (`ReconcilerState`), the full sweep's header (the
`SWEEP`/`CURRENT` item of the state table) and the time now. A pass that dies emits nothing, so the heartbeat is a
count of passes that succeeded (`IncrementalPassesCompleted`), alarmed when it is missing, never a metric a failing
pass would have to send.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, NonNegativeInt, PositiveInt, ValidationError

from reconciler.passes import ReconcilerState


class SweepStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class InvalidSweepHeader(ValueError):
    """The sweep's header (or a segment) item is not what the sweep writes."""


class _SweepItem(BaseModel):
    """An item of the state table the sweep writes (its key attributes are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        """The model of a plain item (converge.dynamo.from_item); InvalidSweepHeader if it is not one."""
        try:
            return cls.model_validate(dict(item))
        except ValidationError as exc:
            raise InvalidSweepHeader(
                f"{item.get('pk', '?')}/{item.get('sk', '?')} is not a {cls.__name__}: {exc}"
            ) from exc


class SweepHeader(_SweepItem):
    """The full sweep's header: one item (`pk = SWEEP`, `sk = CURRENT`) the sweep's coordinator and workers update."""

    sweep_id: str
    status: SweepStatus
    reason: str = ""
    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    progress_at: AwareDatetime | None = None  # the last time any segment advanced
    segments_total: NonNegativeInt = 0
    segments_done: NonNegativeInt = 0
    items_read: NonNegativeInt = 0
    execution_arn: str | None = None
    projection: str | None = None  # a backfill of one declared projection or saga pair; None: every one
    error: str | None = None  # why its last execution failed (it resumes from its checkpoints)
    # Counters it could not confirm (their products written during every re-tally), and the recounts it sent (each
    # applied only at the version it observed): either makes a counters sweep due, which checks them again.
    counters_left: NonNegativeInt = 0
    recounts: NonNegativeInt = 0

    @property
    def counters_to_verify(self) -> bool:
        """Whether this finished sweep leaves counters for a counters sweep to check again."""
        return not self.unfinished and (self.counters_left > 0 or self.recounts > 0)

    @property
    def running(self) -> bool:
        return self.status is SweepStatus.RUNNING

    @property
    def unfinished(self) -> bool:
        """Running, or failed with segments left: the next execution resumes it."""
        return self.status is not SweepStatus.SUCCEEDED

    @property
    def last_progress_at(self) -> datetime:
        """When it last advanced: a sweep that has not advanced yet counts from its start."""
        return self.progress_at or self.started_at


class SweepSegment(_SweepItem):
    """One parallel-scan segment of one table in a sweep (`pk = SWEEP#<sweep id>`, `sk = SEGMENT#<table>#<n>`)."""

    table: str  # the table's role: orders, inventory, shipping, notifications
    segment: NonNegativeInt
    total_segments: PositiveInt
    done: bool = False
    items_read: NonNegativeInt = 0
    pages: NonNegativeInt = 0
    invocations: NonNegativeInt = 0
    progress_at: AwareDatetime | None = None


def segments_key(sweep_id: str) -> str:
    """The partition key of a sweep's segment items."""
    return f"SWEEP#{sweep_id}"


@dataclass(frozen=True)
class Health:
    watermark_age_seconds: float | None  # None: no pass has saved a watermark yet
    last_pass_age_seconds: float | None  # since the last successful incremental pass finished; None: none has
    sweep_progress_age_seconds: float  # since a running sweep last advanced; 0 when none runs
    segments_done: int  # of the current (or last) sweep; 0 of 0 when none ever ran
    segments_total: int


def _age(moment: datetime | None, now: datetime) -> float | None:
    # Clocks of two writers may disagree by a little: a moment "in the future" is age 0, never negative.
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def assess(state: ReconcilerState, sweep: SweepHeader | None, now: datetime) -> Health:
    """How old the watermark and the last successful pass are, and how a running sweep is getting on, at `now`."""
    return Health(
        watermark_age_seconds=_age(state.watermark, now),
        last_pass_age_seconds=_age(state.last_pass_at, now),
        sweep_progress_age_seconds=(_age(sweep.last_progress_at, now) or 0.0) if sweep and sweep.running else 0.0,
        segments_done=sweep.segments_done if sweep else 0,
        segments_total=sweep.segments_total if sweep else 0,
    )


def stamped(saved: ReconcilerState, previous: ReconcilerState, *, incremental: bool, now: datetime) -> ReconcilerState:
    """The state a pass saves, with when the last successful incremental pass finished: this one (`now`) if it is
    one, else the previous stamp (a full pass says nothing about whether incremental repair is running)."""
    return dataclasses.replace(saved, last_pass_at=now if incremental else previous.last_pass_at)


class Metric(NamedTuple):
    name: str
    unit: Literal["Count", "Seconds"]  # CloudWatch's unit names, as Powertools' add_metric takes them
    value: float


def pass_metrics(
    previous: ReconcilerState, sweep: SweepHeader | None, now: datetime, *, completed: bool
) -> list[Metric]:
    """What a pass reports when it ends (namespace Converge, service reconciler; alarmed in template.yaml).

    `previous` is the state the pass started from: its ages are the gap this pass closed (about one schedule
    period when all is well, the length of the outage after one). `completed`: the pass was incremental and moved
    the watermark; a full pass reports 0, so that passes that have all become full sweeps fire the heartbeat too.
    """
    health = assess(previous, sweep, now)
    metrics = [
        Metric("IncrementalPassesCompleted", "Count", 1 if completed else 0),
        Metric("SweepProgressAgeSeconds", "Seconds", health.sweep_progress_age_seconds),
        Metric("SweepSegmentsDone", "Count", health.segments_done),
        Metric("SweepSegmentsTotal", "Count", health.segments_total),
    ]
    if health.watermark_age_seconds is not None:
        metrics.append(Metric("WatermarkAgeSeconds", "Seconds", health.watermark_age_seconds))
    if health.last_pass_age_seconds is not None:
        metrics.append(Metric("LastPassAgeSeconds", "Seconds", health.last_pass_age_seconds))
    return metrics

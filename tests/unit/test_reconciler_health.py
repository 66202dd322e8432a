"""The reconciler's health without AWS: the ages and the sweep's progress its alarms and status read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.health import InvalidSweepHeader, SweepHeader, SweepStatus, assess, pass_metrics, stamped
from reconciler.passes import ReconcilerState

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def header(status: str = "RUNNING", **fields: Any) -> dict[str, Any]:
    """A sweep header item as the sweep writes it (plain values, as converge.dynamo.from_item gives them)."""
    return {
        "pk": "SWEEP",
        "sk": "CURRENT",
        "sweep_id": "s-1",
        "status": status,
        "reason": "daily",
        "started_at": (NOW - timedelta(hours=1)).isoformat(),
        "progress_at": (NOW - timedelta(minutes=10)).isoformat(),
        "segments_total": 16,
        "segments_done": 5,
        "items_read": 12_000,
        **fields,
    }


def test_a_fresh_deploy_has_no_ages_and_no_sweep() -> None:
    # GIVEN no pass ever saved a state and no sweep ever ran WHEN assessed
    health = assess(ReconcilerState(), None, NOW)
    # THEN nothing has an age, and no sweep is stuck
    assert (health.watermark_age_seconds, health.last_pass_age_seconds) == (None, None)
    assert (health.sweep_progress_age_seconds, health.segments_done, health.segments_total) == (0.0, 0, 0)


def test_the_ages_count_from_the_watermark_and_the_last_successful_pass() -> None:
    # GIVEN a state whose watermark is 7 minutes old and whose last incremental pass finished 6 minutes ago
    state = ReconcilerState(watermark=NOW - timedelta(minutes=7), last_pass_at=NOW - timedelta(minutes=6))
    # WHEN assessed
    health = assess(state, None, NOW)
    # THEN both ages are in seconds
    assert (health.watermark_age_seconds, health.last_pass_age_seconds) == (420.0, 360.0)


def test_a_moment_a_little_ahead_of_this_clock_is_age_zero_never_negative() -> None:
    state = ReconcilerState(watermark=NOW + timedelta(seconds=2))
    assert assess(state, None, NOW).watermark_age_seconds == 0.0


def test_a_running_sweep_ages_from_its_last_progress() -> None:
    # GIVEN a running sweep that last advanced 10 minutes ago, 5 of its 16 segments done
    sweep = SweepHeader.from_item(header())
    # WHEN assessed
    health = assess(ReconcilerState(), sweep, NOW)
    # THEN its progress is 600 s old and its segments are counted
    assert health.sweep_progress_age_seconds == 600.0
    assert (health.segments_done, health.segments_total) == (5, 16)


def test_a_sweep_that_has_not_advanced_yet_ages_from_its_start() -> None:
    item = header()
    del item["progress_at"]
    assert assess(ReconcilerState(), SweepHeader.from_item(item), NOW).sweep_progress_age_seconds == 3600.0


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED"])
def test_a_finished_sweep_is_not_stuck_and_keeps_its_segment_counts(status: str) -> None:
    # GIVEN a sweep that finished (or failed) long ago
    sweep = SweepHeader.from_item(header(status, finished_at=(NOW - timedelta(hours=3)).isoformat()))
    # WHEN assessed
    health = assess(ReconcilerState(), sweep, NOW)
    # THEN no progress is awaited from it (a failed execution has an alarm of its own), and its counts remain
    assert sweep.status is SweepStatus(status)
    assert health.sweep_progress_age_seconds == 0.0
    assert (health.segments_done, health.segments_total) == (5, 16)


@pytest.mark.parametrize(
    "change",
    [
        {"status": "PAUSED"},
        {"started_at": "yesterday"},
        {"started_at": "2026-12-03T11:00:00"},  # no zone: the sweep writes UTC, and says so
        {"segments_done": -1},
        {"sweep_id": None},
    ],
)
def test_a_malformed_header_is_refused_with_its_reason(change: dict[str, Any]) -> None:
    # GIVEN a header item that is not what the sweep writes WHEN it is parsed THEN it is refused, naming the sweep
    with pytest.raises(InvalidSweepHeader, match="SWEEP/CURRENT is not a SweepHeader"):
        SweepHeader.from_item(header(**change))


def test_an_incremental_pass_stamps_when_it_finished_and_a_full_one_keeps_the_stamp() -> None:
    # GIVEN the state before a pass, stamped by an earlier incremental pass, and the state the pass would save
    before = ReconcilerState(watermark=NOW - timedelta(minutes=5), last_pass_at=NOW - timedelta(minutes=4))
    saved = ReconcilerState(watermark=NOW - timedelta(seconds=3), version=1)
    # WHEN an incremental pass, then a full one, stamp it
    incremental = stamped(saved, before, incremental=True, now=NOW)
    full = stamped(saved, before, incremental=False, now=NOW)
    # THEN the incremental pass is the last successful one; a full pass leaves the earlier stamp
    assert incremental.last_pass_at == NOW
    assert full.last_pass_at == before.last_pass_at
    assert (incremental.watermark, incremental.version) == (saved.watermark, saved.version)


def test_a_pass_reports_the_heartbeat_and_the_sweeps_progress() -> None:
    # GIVEN a pass that started from a 5-minute-old state while a sweep is running
    before = ReconcilerState(watermark=NOW - timedelta(minutes=5), last_pass_at=NOW - timedelta(seconds=290))
    sweep = SweepHeader.from_item(header())
    # WHEN it completes as an incremental pass
    metrics = {m.name: (m.unit, m.value) for m in pass_metrics(before, sweep, NOW, completed=True)}
    # THEN it counts itself once and reports the gap it closed and the sweep's progress
    assert metrics == {
        "IncrementalPassesCompleted": ("Count", 1),
        "WatermarkAgeSeconds": ("Seconds", 300.0),
        "LastPassAgeSeconds": ("Seconds", 290.0),
        "SweepProgressAgeSeconds": ("Seconds", 600.0),
        "SweepSegmentsDone": ("Count", 5),
        "SweepSegmentsTotal": ("Count", 16),
    }


def test_a_full_pass_counts_zero_and_a_first_pass_reports_no_ages() -> None:
    # GIVEN the very first pass (no state yet), which is a full one
    metrics = {m.name: m.value for m in pass_metrics(ReconcilerState(), None, NOW, completed=False)}
    # THEN it is not an incremental pass, and has no ages to report
    assert metrics["IncrementalPassesCompleted"] == 0
    assert "WatermarkAgeSeconds" not in metrics
    assert "LastPassAgeSeconds" not in metrics
    assert metrics["SweepProgressAgeSeconds"] == 0.0

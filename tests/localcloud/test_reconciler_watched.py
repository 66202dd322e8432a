"""A failing reconciler is never silent (issue 20): on the real template, localcloud produces the metrics that fire the
alarms, and each alarm as deployed (read back from CloudWatch) fires on them.

moto stores the alarms localcloud creates but evaluates none: tests.support.alarms evaluates them over the metrics
each invocation emitted (its EMF blobs), one schedule period per period.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from converge.dynamo import to_item
from localcloud.cloud import LocalCloud
from localcloud.faults import FaultPlan
from localcloud.runtime import Invocation
from tests.localcloud.real import REAL_TEMPLATE
from tests.support.alarms import Alarm, statistic

PERIOD = 300  # the 5-minute schedule, and the alarms' period


@pytest.fixture
def real() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as cloud:
        yield cloud


def deployed_alarm(cloud: LocalCloud, logical_id: str) -> Alarm:
    """The alarm as localcloud created it in CloudWatch from the translated template (intrinsics resolved)."""
    (alarm,) = cloud.alarms(logical_id)
    return Alarm.from_properties(alarm)


def period_value(alarm: Alarm, invocations: list[Invocation]) -> float | None:
    """The alarm's statistic over what the period's invocations emitted; None when none emitted its metric."""
    values = [i.metrics[alarm.metric] for i in invocations if alarm.metric in i.metrics]
    return statistic(alarm.statistic, values)


def reconciler_invocations_since(cloud: LocalCloud, start: int) -> list[Invocation]:
    return cloud.invocations("ReconcilerFunction", since=start)


def test_passes_that_stop_succeeding_fire_the_heartbeat_and_the_errors_alarm(real: LocalCloud) -> None:
    # GIVEN the heartbeat and errors alarms as deployed, and a reconciler whose scheduled passes succeed: both are
    # incremental (the first, with no watermark yet, also starts the sweep for what came before it)
    heartbeat = deployed_alarm(real, "ReconcilerHeartbeatAlarm")
    errors = deployed_alarm(real, "ReconcilerErrorsAlarm")
    healthy: list[float | None] = []
    for _ in range(2):
        start = len(real.invocations())
        real.advance(PERIOD)
        healthy.append(period_value(heartbeat, reconciler_invocations_since(real, start)))
    assert healthy == [1, 1]
    assert heartbeat.state(healthy) == "OK"
    # WHEN every read of its tables is throttled for two schedule periods
    real.faults.start(
        FaultPlan(seed=3, dynamodb_throttle=1.0, throttle_scope="call", functions=("ReconcilerFunction",))
    )
    failing: list[float | None] = []
    failed = []
    for _ in range(2):
        start = len(real.invocations())
        real.advance(PERIOD)
        invocations = reconciler_invocations_since(real, start)
        failing.append(period_value(heartbeat, invocations))
        failed.append(sum(1 for i in invocations if not i.ok))
    real.faults.stop()
    # THEN no IncrementalPassesCompleted datapoint exists in either period, and the heartbeat fires
    assert failing == [None, None]
    assert heartbeat.state(failing) == "ALARM"
    # AND every invocation (Lambda's two retries included) failed: the errors alarm fires in each period
    assert all(count >= 1 for count in failed), failed
    assert all(errors.state([float(count)]) == "ALARM" for count in failed)
    # AND once the reads come back, the next pass completes and the heartbeat clears
    start = len(real.invocations())
    real.advance(PERIOD)
    recovered = period_value(heartbeat, reconciler_invocations_since(real, start))
    assert recovered == 1
    assert heartbeat.state([None, recovered]) == "OK"


def put_sweep_header(cloud: LocalCloud, status: str, progress_at: datetime) -> None:
    item = {
        "pk": "SWEEP",
        "sk": "CURRENT",
        "sweep_id": "s-1",
        "status": status,
        "reason": "daily",
        "started_at": (progress_at - timedelta(minutes=5)).isoformat(),
        "progress_at": progress_at.isoformat(),
        "segments_total": 8,
        "segments_done": 3,
        "items_read": 9000,
    }
    cloud.put_item("ReconcilerStateTable", to_item(item))


def scheduled_pass(cloud: LocalCloud) -> dict[str, Any]:
    start = len(cloud.invocations())
    cloud.advance(PERIOD)
    (invocation,) = reconciler_invocations_since(cloud, start)
    assert invocation.ok, invocation.error
    return invocation.metrics


def test_a_running_sweep_that_stopped_advancing_fires_the_stall_alarm(real: LocalCloud) -> None:
    # GIVEN the stall alarm as deployed (its threshold the SweepStallSeconds parameter), and a running sweep that
    # advanced a minute ago
    stalled = deployed_alarm(real, "ReconcilerSweepStalledAlarm")
    scheduled_pass(real)  # the first pass, a full one, saves the state
    put_sweep_header(real, "RUNNING", datetime.now(UTC) - timedelta(minutes=1))
    fresh = scheduled_pass(real)
    # THEN the pass reports its progress and its segments, and the alarm stays OK
    assert 60 <= fresh["SweepProgressAgeSeconds"] < stalled.threshold
    assert (fresh["SweepSegmentsDone"], fresh["SweepSegmentsTotal"]) == (3, 8)
    assert fresh["IncrementalPassesCompleted"] == 1
    assert stalled.state([fresh["SweepProgressAgeSeconds"]]) == "OK"
    # WHEN the sweep's last progress is older than the threshold
    put_sweep_header(real, "RUNNING", datetime.now(UTC) - timedelta(seconds=stalled.threshold + 600))
    old = scheduled_pass(real)
    # THEN the next pass reports an age past it, and the alarm fires
    assert old["SweepProgressAgeSeconds"] > stalled.threshold
    assert stalled.state([old["SweepProgressAgeSeconds"]]) == "ALARM"
    # AND a sweep that finished, however long ago, is not stalled
    put_sweep_header(real, "SUCCEEDED", datetime.now(UTC) - timedelta(days=1))
    assert scheduled_pass(real)["SweepProgressAgeSeconds"] == 0

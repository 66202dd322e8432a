"""The full sweep on localcloud: the template's state machine on moto's interpreter, its workers in-process.

A sweep whose workers run out of time or raise resumes each segment from its checkpoint and completes; a pass
that finds more lagging entities than it can carry starts the sweep and goes on incrementally; a first deploy
next to tables that already hold data converges.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from converge.dynamo import from_item, to_item
from converge.reconcile_index import bucket_of
from localcloud import convergence
from localcloud.cloud import LocalCloud
from localcloud.faults import FaultPlan
from localcloud.runtime import FunctionError, Invocation
from localcloud.stepfunctions import Execution
from tests.localcloud.helpers import put_item
from tools.reconcile_cost import make_drift, seed

SWEEP = "ReconcilerSweepFunction"
SEGMENTS = 2


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(parameters={"SweepSegments": SEGMENTS}) as local:
        yield local


def source_tables(cloud: LocalCloud) -> dict[str, str]:
    return {t: cloud.table_name(t) for t in ("OrdersTable", "InventoryTable", "NotificationsTable", "ShipmentsTable")}


def drifted_tables(cloud: LocalCloud, entities: int, fraction: float) -> set[tuple[str, str]]:
    """`entities` written an hour ago with their projections, then `fraction` of them changed behind their backs."""
    tables = source_tables(cloud)
    data = seed(tables, entities, datetime.now(UTC) - timedelta(hours=1))
    return make_drift(tables, data, fraction, datetime.now(UTC) - timedelta(minutes=30))


def divergence(cloud: LocalCloud) -> dict[str, int]:
    """What the independent checker finds different, by check (only the checks that found something)."""
    counts = cloud.check_convergence("ReconcilerStateTable").counts
    return {check: count for check, count in counts.items() if count}


def violations(cloud: LocalCloud) -> dict[str, list[str]]:
    """The invariants the independent checker finds broken, with the entities that break them."""
    scanned = cloud.service_items()
    found = convergence.check_invariants(scanned["orders"], scanned["inventory"], scanned["notifications"])
    return {invariant: ids for invariant, ids in found.violations.items() if ids}


def segment_items(cloud: LocalCloud, sweep_id: str) -> list[dict[str, Any]]:
    found = cloud.query_items("ReconcilerStateTable", "pk = :pk", to_item({":pk": f"SWEEP#{sweep_id}"}))
    return [from_item(item) for item in found]


def header(cloud: LocalCloud) -> dict[str, Any]:
    """The sweep's header item (the sweep under way, or the last one)."""
    key = to_item({"pk": "SWEEP", "sk": "CURRENT"})
    item = cloud.get_item("ReconcilerStateTable", key)
    assert item is not None
    return from_item(item)


def worker_invocations(cloud: LocalCloud) -> list[Any]:
    return [i for i in cloud.invocations(SWEEP) if i.event.get("action") == "segment"]


def test_workers_out_of_time_hand_back_their_checkpoints_and_the_sweep_completes(cloud: LocalCloud) -> None:
    # GIVEN 200 entities of which 5% drifted, and sweep workers that can read one page of 20 items per invocation
    #       (their reserve is their whole timeout: each stops after its first page)
    drifted = drifted_tables(cloud, 200, 0.05)
    assert drifted
    cloud.set_environment(SWEEP, SWEEP_PAGE_ITEMS="20", SWEEP_RESERVE_MS="300000")
    # WHEN the sweep runs
    report = cloud.sweep(reason="test")
    cloud.run_until_quiet()
    # THEN every segment took several invocations, each one page, resuming from the last one's checkpoint
    segments = [s for s in segment_items(cloud, report["sweep_id"]) if s["sk"].startswith("SEGMENT#")]
    assert len(segments) == 4 * SEGMENTS
    assert all(s["done"] and s["pages"] == s["invocations"] for s in segments)
    assert max(s["invocations"] for s in segments) > 1
    assert len(worker_invocations(cloud)) == sum(s["invocations"] for s in segments)
    # AND each drifted entity was repaired once (one event republished for it), and the data converge
    assert report["status"] == "SUCCEEDED"
    assert report["republished"] == len(drifted)
    assert divergence(cloud) == {}


def test_workers_that_raise_or_time_out_are_retried_and_the_sweep_completes(cloud: LocalCloud) -> None:
    # GIVEN drifted tables, and sweep workers that raise or time out mid-page a third of the time
    drifted = drifted_tables(cloud, 120, 0.05)
    cloud.set_environment(SWEEP, SWEEP_PAGE_ITEMS="20", SWEEP_RESERVE_MS="300000")
    plan = FaultPlan(seed=3, handler_exception=0.2, handler_timeout=0.15, functions=(SWEEP,))
    cloud.faults.start(plan)
    # WHEN the sweep runs, as its schedule starts it again after an execution that failed (a worker whose retries
    #      were all spent fails its Map, as on AWS; which one depends on the threads' order)
    executions: list[Execution] = []
    while not (executions and executions[-1].ok) and len(executions) < 5:
        executions.append(cloud.run_state_machine("ReconcilerSweepStateMachine", {"reason": "test"}))
    cloud.faults.stop()
    cloud.run_until_quiet()
    # THEN faults struck workers, the state machine retried them, and every segment finished in the last execution
    failed = [i for i in cloud.invocations(SWEEP) if not i.ok]
    assert failed
    assert all(e.error == "SweepFailed" for e in executions[:-1])
    report = executions[-1].output
    assert report["status"] == "SUCCEEDED"
    assert all(s["done"] for s in segment_items(cloud, report["sweep_id"]))
    # AND nothing was counted twice: one republished event per drifted entity, and the data converge
    assert report["republished"] == len(drifted)
    assert divergence(cloud) == {}


def test_a_segment_failing_past_its_retries_fails_the_execution_and_the_next_one_resumes(cloud: LocalCloud) -> None:
    # GIVEN drifted tables, and sweep workers that cannot read the shipments table (every scan of it raises)
    drifted = drifted_tables(cloud, 120, 0.05)
    table = cloud.function(SWEEP).environment["SHIPPING_TABLE_NAME"]
    cloud.set_environment(SWEEP, SHIPPING_TABLE_NAME="no-such-table")
    # WHEN the sweep runs
    failed = cloud.run_state_machine("ReconcilerSweepStateMachine", {"reason": "test"})
    # THEN the shipments' segments spent their retries, the Map failed (nothing tolerates a failed item), the
    #      failure was recorded and the execution failed before the counters
    assert (failed.status, failed.error) == ("FAILED", "SweepFailed")
    recorded = header(cloud)
    assert recorded["status"] == "FAILED"
    assert "ExceedToleratedFailureThreshold" in recorded["error"]
    states = {s["sk"]: s for s in segment_items(cloud, recorded["sweep_id"])}
    assert not any(states[f"SEGMENT#shipping#{n}"]["done"] for n in range(SEGMENTS))
    assert not any(s["done"] or s["pages"] for sk, s in states.items() if sk.startswith("COUNTERS#"))
    # WHEN the table is readable again and the next execution runs
    cloud.set_environment(SWEEP, SHIPPING_TABLE_NAME=table)
    report = cloud.sweep(reason="test")
    cloud.run_until_quiet()
    # THEN it resumed the same sweep, finished the shipments' segments, and the data converge
    assert report["sweep_id"] == recorded["sweep_id"]
    assert report["status"] == "SUCCEEDED"
    assert report["republished"] == len(drifted)
    assert divergence(cloud) == {}


def test_a_sweep_whose_execution_was_stopped_is_resumed_by_the_next_one(cloud: LocalCloud) -> None:
    # GIVEN a sweep whose execution is stopped after its workers' first pages (one page per invocation)
    drifted = drifted_tables(cloud, 120, 0.05)
    cloud.set_environment(SWEEP, SWEEP_PAGE_ITEMS="10", SWEEP_RESERVE_MS="300000")
    assert cloud.state_machines is not None
    execution = cloud.state_machines.start("ReconcilerSweepStateMachine", {"reason": "test"})
    while len(worker_invocations(cloud)) < 3:
        time.sleep(0.005)
    cloud.stop_execution(execution)
    stopped = cloud.state_machines.wait(execution)
    assert stopped.status == "ABORTED"
    running = header(cloud)
    assert running["status"] == "RUNNING"
    done_before = {s["sk"]: s["pages"] for s in segment_items(cloud, running["sweep_id"])}
    assert not all(s["done"] for s in segment_items(cloud, running["sweep_id"]))
    # WHEN the next execution starts
    report = cloud.sweep(reason="test")
    cloud.run_until_quiet()
    # THEN it resumed the same sweep from its checkpoints (no page read again) and completed it
    assert report["sweep_id"] == running["sweep_id"]
    after = {s["sk"]: s["pages"] for s in segment_items(cloud, running["sweep_id"])}
    assert all(after[sk] >= pages for sk, pages in done_before.items())
    assert report["status"] == "SUCCEEDED"
    assert report["republished"] == len(drifted)
    assert divergence(cloud) == {}


def test_a_stopped_sweep_ends_aborted_even_when_its_task_in_flight_then_fails(cloud: LocalCloud) -> None:
    # GIVEN a sweep whose first worker task is stopped while in flight, and then fails (as a task cut short does)
    drifted_tables(cloud, 40, 0.05)
    assert cloud.state_machines is not None
    machines = cloud.state_machines
    stopped: list[str] = []

    def stop_during_first_worker(invocation: Invocation) -> None:
        if stopped or invocation.function != SWEEP or invocation.event.get("action") != "segment":
            return
        [arn] = cloud.running_executions()
        cloud.stop_execution(arn)
        stopped.append(arn)
        invocation.response = None
        invocation.error = FunctionError("RuntimeError", "cut short by the stop")

    # WHEN the execution runs to its end
    with cloud.listening(stop_during_first_worker):
        execution = machines.wait(machines.start("ReconcilerSweepStateMachine", {"reason": "test"}))
    # THEN it ended ABORTED, as StopExecution ends it on AWS, not FAILED by the task that failed after the stop
    assert stopped == [execution.arn]
    assert (execution.status, execution.error) == ("ABORTED", None)


def test_more_lagging_entities_than_a_pass_carries_start_the_sweep_and_incremental_repair_goes_on(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a pass that carries at most 20 suspects (MAX_SUSPECTS, made small), and a system with a watermark (its
    #       first pass, and the sweep that pass started)
    from reconciler import passes, service

    for module in (passes, service):
        monkeypatch.setattr(module, "MAX_SUSPECTS", 20)
    cloud.advance(300)
    cloud.run_until_quiet()
    # AND more products than that written with no availability (their events never published)
    now = datetime.now(UTC).isoformat()
    for n in range(30):
        put_item(cloud, "InventoryTable", _product(f"bulk-{n:05d}", now))
    # WHEN the next scheduled pass runs
    [second] = cloud.advance(300)
    # THEN it republished them, kept 20 of them as suspects, and made a sweep due
    assert (second.response["republished"], second.response["suspects"]) == (30, 20)
    # WHEN one more product is written and the pass after runs
    put_item(cloud, "InventoryTable", _product("late", datetime.now(UTC).isoformat()))
    [third] = cloud.advance(300)
    # THEN that pass started the sweep and still compared incrementally: it found and republished the late product
    assert third.response["mode"] == "incremental"
    assert third.response["sweep_started"]
    assert '"entity_id":"late"' in third.logs
    # AND once the pipeline and the sweep have run, everything converges
    cloud.run_until_quiet()
    assert header(cloud)["status"] == "SUCCEEDED"
    assert divergence(cloud) == {}


def test_a_counter_busy_through_every_retally_is_left_to_a_counters_sweep_the_next_pass_starts(
    cloud: LocalCloud,
) -> None:
    # GIVEN a system with a watermark (its first pass, and the sweep that pass started), holding 40 entities
    # AND one product whose `reserved` drifted off its reservations (5 more), written just now
    drifted = counter_drifted(cloud)
    put_item(cloud, "InventoryTable", {**drifted, "version": drifted["version"] + 1, "updated_at": _now()})
    assert violations(cloud) == {"reserved_equals_reservations": ["p000000"]}

    # AND that product written again while every re-tally reads (a product busy through the whole sweep)
    def write_during_retally(invocation: Invocation) -> None:
        if invocation.function == SWEEP and invocation.event.get("action") == "retally":
            now = product_item(cloud, "p000000")
            put_item(cloud, "InventoryTable", {**now, "version": now["version"] + 1})

    # WHEN the sweep runs
    with cloud.listening(write_during_retally):
        report = cloud.sweep(reason="test")
    # THEN every round was spent on it, nothing was recounted on a tally that is no ledger, and it is counted as left
    rounds = {i.event["round"] for i in cloud.invocations(SWEEP) if "round" in i.event}
    assert rounds == {1, 2, 3, 4}
    assert (report["status"], report["recounts"], report["corrections_unconfirmed"]) == ("SUCCEEDED", 0, 1)
    assert header(cloud)["counters_left"] == 1
    # WHEN the next scheduled pass runs, with the product at rest
    [scheduled] = cloud.advance(300)
    cloud.run_until_quiet()
    # THEN it started a sweep of the counters alone, which recounted the product, and everything converges
    assert scheduled.response["sweep_started"]
    counters = header(cloud)
    assert (counters["projection"], counters["reason"], counters["status"]) == (
        "reserved",
        "counters the last sweep recounted or left",
        "SUCCEEDED",
    )
    assert counters["counters_left"] == 0
    assert product_item(cloud, "p000000")["reserved"] == 1
    assert (divergence(cloud), violations(cloud)) == ({}, {})


def test_a_recount_skipped_because_its_product_moved_on_is_checked_again_by_a_counters_sweep(
    cloud: LocalCloud,
) -> None:
    # GIVEN a system with a watermark, holding 40 entities written an hour ago
    # AND one product whose `reserved` drifted off its reservations (5 more), at rest since then
    put_item(cloud, "InventoryTable", counter_drifted(cloud))
    # WHEN the sweep runs, and the product moves on (written again) before its recount reaches inventory
    report = cloud.sweep(reason="test")
    moved = product_item(cloud, "p000000")
    put_item(cloud, "InventoryTable", {**moved, "version": moved["version"] + 1})
    cloud.run_until_quiet()
    # THEN the sweep sent the recount, inventory skipped it (not at the version it observed), and the counter is off
    assert (report["recounts"], header(cloud)["recounts"]) == (1, 1)
    assert violations(cloud) == {"reserved_equals_reservations": ["p000000"]}
    # WHEN the next scheduled pass runs
    [scheduled] = cloud.advance(300)
    cloud.run_until_quiet()
    # THEN it started a counters sweep, which recounted the product at its new version: the counter is right
    assert scheduled.response["sweep_started"]
    assert (header(cloud)["projection"], header(cloud)["recounts"]) == ("reserved", 1)
    assert product_item(cloud, "p000000")["reserved"] == 1
    assert (divergence(cloud), violations(cloud)) == ({}, {})
    # AND the pass after starts one more counters sweep to check that recount, which finds every counter right,
    #     and the pass after that starts none
    [checking] = cloud.advance(300)
    cloud.run_until_quiet()
    assert checking.response["sweep_started"]
    checked = header(cloud)
    assert (checked["projection"], checked["recounts"], checked["counters_left"]) == ("reserved", 0, 0)
    [quiet] = cloud.advance(300)
    cloud.run_until_quiet()
    assert quiet.response["sweep_started"] is None


def counter_drifted(cloud: LocalCloud) -> dict[str, Any]:
    """After the first pass (and its sweep), 40 entities written an hour ago; returns product p000000 (reserved 1,
    one RESERVED reservation) with `reserved` 5 more than its reservations hold, for the caller to write."""
    cloud.advance(300)
    cloud.run_until_quiet()
    seed(source_tables(cloud), 40, datetime.now(UTC) - timedelta(hours=1))
    product = product_item(cloud, "p000000")
    assert product["reserved"] == 1
    return {**product, "reserved": 6, "available": product["on_hand"] - 6}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def product_item(cloud: LocalCloud, product_id: str) -> dict[str, Any]:
    key = to_item({"pk": f"PRODUCT#{product_id}", "sk": "PRODUCT"})
    found = cloud.get_item("InventoryTable", key, consistent=True)
    assert found is not None
    return from_item(found)


def test_a_first_deploy_next_to_full_tables_converges(cloud: LocalCloud) -> None:
    # GIVEN tables that already hold 300 entities, 5% of them drifted, and a reconciler that never ran
    assert drifted_tables(cloud, 300, 0.05)
    assert divergence(cloud) != {}
    # WHEN its first scheduled pass runs (no watermark yet)
    [first] = cloud.advance(300)
    # THEN it compared only what was written since it started, and started the sweep for what came before
    assert (first.response["mode"], first.response["mode_reason"]) == ("incremental", "no watermark yet")
    assert first.response["sweep_started"]
    # AND once the sweep and the pipeline have run, everything converges
    cloud.run_until_quiet()
    assert header(cloud)["status"] == "SUCCEEDED"
    assert divergence(cloud) == {}


def _product(product_id: str, updated_at: str) -> dict[str, Any]:
    return {
        "pk": f"PRODUCT#{product_id}",
        "sk": "PRODUCT",
        "product_id": product_id,
        "on_hand": 5,
        "reserved": 0,
        "available": 5,
        "version": 1,
        "event_type": "StockUpdated",
        "correlation_id": "bulk",
        "updated_at": updated_at,
        "recon_bucket": bucket_of(f"PRODUCT#{product_id}"),
    }

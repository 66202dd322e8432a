"""The full sweep at two sizes ten times apart, with 1 and 4 segments: per-worker peak memory, items read per
second, worker invocations (docs/CONSISTENCY.md, "The full sweep at any size").

Each size is seeded by `tools.reconcile_cost.seed` (no drift) into tables built from template.yaml, in moto's server
run as a process of its own with `bench.moto_at_scale` (`served()`), so that a Scan page costs moto what a page costs,
not a sort of the whole table, and what moto keeps is not in the measuring process. Then, for each segment count (the
template's `SweepSegments`), ReconcilerSweepFunction's tasks run in the order ReconcilerSweepStateMachine runs them:
start; every compare segment until it reports done; every counter segment until done; finish.
The Maps' workers run one at a time here.

- Time budget: each worker invocation's `get_remaining_time_in_millis` reports its deadline reached after
  PAGES_PER_INVOCATION pages (the worker asks after every page). The budget is the same at every size, so a segment
  ten times larger needs ten times the invocations, as it would under Lambda's timeout.
- Memory: tracemalloc is started when a worker invocation begins and stopped when it returns: its peak is what
  that invocation allocated (clients and modules already loaded, as in a warm container), the HTTP responses it
  reads included. moto answers from its own process, over loopback HTTP, as DynamoDB answers a Lambda worker: none
  of the database's memory is in the figure.
- Baseline: a bare paginated Scan (same Limit, ConsistentRead, TotalSegments) of the same tables, in the same run
  and under the same tracing, counted and dropped page by page: the SDK's floor for reading the tables.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from converge.contracts import with_tables
from localcloud.context import LambdaContext

SEGMENTS = (1, 4)
PAGES_PER_INVOCATION = 20
PAGE_ITEMS = 500  # the template's SWEEP_PAGE_ITEMS; the bare scan uses the same Limit
SWEEP = "ReconcilerSweepFunction"
SERVICE_TABLES = tuple(service.table for service in with_tables() if service.table)  # the contracts' tables
MEMORY_GOAL = 1.2  # per-worker peak, larger size over smaller


@dataclass
class PageBudget(LambdaContext):
    """A Lambda context whose deadline comes after `pages` pages: the worker asks once after each page."""

    pages: int = PAGES_PER_INVOCATION
    asked: int = 0

    def get_remaining_time_in_millis(self) -> int:
        self.asked += 1
        return 300_000 if self.asked < self.pages else 0


@dataclass
class Invocation:
    task: dict[str, Any]
    seconds: float
    peak_bytes: int
    done: bool


@dataclass
class SweepRun:
    invocations: list[Invocation] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _silenced() -> Iterator[None]:
    """The worker's logs and metrics lines to nowhere: a buffer that grew with every invocation would count."""
    from converge.observability import logger

    level = logger.log_level
    logger.setLevel(logging.WARNING)
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        try:
            yield
        finally:
            logger.setLevel(level)


def _traced(call: Any) -> tuple[Any, float, int]:
    """Run `call()` with tracemalloc on from its start: (result, seconds, peak bytes traced meanwhile). The
    collector runs first, so that one invocation's garbage is not the next one's."""
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = call()
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, seconds, peak


def run_sweep(runner: Any, pages: int = PAGES_PER_INVOCATION) -> SweepRun:
    """One sweep, its tasks in the state machine's order, every worker invocation timed and traced."""
    run = SweepRun()
    started = runner.invoke(SWEEP, {"action": "start", "request": {"reason": "benchmark"}})
    for phase in ("segments", "counters"):
        for task in started[phase]:
            done = False
            while not done:
                context = PageBudget(function_name=SWEEP, timeout_seconds=300, memory_limit_in_mb=512, pages=pages)
                result, seconds, peak = _traced(lambda t=task, c=context: runner.invoke(SWEEP, t, c))
                done = bool(result["done"])
                run.invocations.append(Invocation(task, seconds, peak, done))
    run.report = runner.invoke(SWEEP, {"action": "finish", "sweep_id": started["sweep_id"]})
    return run


def bare_scan(tables: dict[str, str], segments: int, pages: int = PAGES_PER_INVOCATION) -> dict[str, Any]:
    """Every item of `tables` by paginated Scan, PAGE_ITEMS a page, each segment's pages traced as the worker's
    are (`pages` pages a trace): items, seconds, and the largest peak."""
    import boto3

    client = boto3.client("dynamodb")
    items, seconds, peak = 0, 0.0, 0
    by_table: dict[str, int] = {}
    for role, table in tables.items():
        before = items
        for segment in range(segments):
            cursor: dict[str, Any] | None = None
            while True:

                def read_pages(start: dict[str, Any] | None = cursor, t: str = table, s: int = segment) -> Any:
                    count, key = 0, start
                    for _ in range(pages):
                        kwargs: dict[str, Any] = {"TableName": t, "Limit": PAGE_ITEMS, "ConsistentRead": True}
                        kwargs |= {"Segment": s, "TotalSegments": segments}
                        if key is not None:
                            kwargs["ExclusiveStartKey"] = key
                        page = client.scan(**kwargs)
                        count += len(page.get("Items", []))
                        key = page.get("LastEvaluatedKey")
                        if key is None:
                            break
                    return count, key

                (count, cursor), took, traced_peak = _traced(read_pages)
                items, seconds, peak = items + count, seconds + took, max(peak, traced_peak)
                if cursor is None:
                    break
        by_table[role] = items - before
    return {
        "items": items,
        "by_table": by_table,
        "seconds": round(seconds, 3),
        "items_per_s": _rate(items, seconds),
        "peak_mb": _mb(peak),
    }


def _rate(items: int, seconds: float) -> float:
    return round(items / seconds, 1) if seconds else 0.0


def _mb(size: int) -> float:
    return round(size / 2**20, 2)


def summarise(run: SweepRun, entities: int, items: int, segments: int, baseline: dict[str, Any]) -> dict[str, Any]:
    """One configuration's row: memory, invocations, throughput serial and on the critical path."""
    peaks = [i.peak_bytes for i in run.invocations]
    seconds = sum(i.seconds for i in run.invocations)
    per_segment: dict[tuple[str, str, int], float] = defaultdict(float)
    for i in run.invocations:
        per_segment[(i.task["action"], i.task["table"], i.task["segment"])] += i.seconds
    # With every segment's worker running at once (the Map's MaxConcurrency >= segments), each Map lasts as long as
    # its slowest segment; the two Maps run one after the other.
    critical = sum(
        max((s for (action, _, _), s in per_segment.items() if action == phase), default=0.0)
        for phase in ("segment", "counters")
    )
    read = int(run.report["items_read"])
    rate = _rate(read, seconds)
    by_worker: dict[str, int] = defaultdict(int)  # the largest peak of each kind of worker: phase and table
    for i in run.invocations:
        kind = f"{i.task['action']}:{i.task['table']}"
        by_worker[kind] = max(by_worker[kind], i.peak_bytes)
    return {
        "entities": entities,
        "items": items,
        "segments": segments,
        "worker_invocations": len(run.invocations),
        "compare_invocations": sum(1 for i in run.invocations if i.task["action"] == "segment"),
        "counter_invocations": sum(1 for i in run.invocations if i.task["action"] == "counters"),
        "peak_mb_max": _mb(max(peaks)),
        "peak_mb_median": _mb(int(statistics.median(peaks))),
        "peak_mb_by_worker": {kind: _mb(size) for kind, size in sorted(by_worker.items())},
        "items_read": read,
        "items_read_per_item": round(read / items, 2) if items else 0.0,
        # every table once, and the inventory table again for the counters
        "scanned_per_item": round((items + baseline["by_table"]["InventoryTable"]) / items, 2) if items else 0.0,
        "largest_table_share": round(max(baseline["by_table"].values()) / items, 3) if items else 0.0,
        "seconds": round(seconds, 2),
        "items_per_s": rate,
        "critical_path_seconds": round(critical, 2),
        "critical_path_items_per_s": _rate(read, critical),
        "bare_scan": baseline,
        "ratio_to_bare_scan": round(rate / baseline["items_per_s"], 3) if baseline["items_per_s"] else 0.0,
        "checked": int(run.report.get("checked", 0)),
        "repairs": int(run.report.get("republished", 0)) + int(run.report.get("corrections", 0)),
        "status": run.report.get("status"),
    }


def measure_size(
    entities: int, pages: int = PAGES_PER_INVOCATION, segment_counts: tuple[int, ...] = SEGMENTS
) -> list[dict[str, Any]]:
    """Seed `entities` (no drift) in a fresh moto backend and sweep it with each segment count."""
    from bench.moto_at_scale import served
    from converge import aws
    from tests.support.stack import FunctionRunner, create_stack, reset_caches
    from tools.reconcile_cost import seed

    rows = []
    with served(), _silenced():
        reset_caches()
        stack = create_stack()
        service_tables = {role: stack.tables[role] for role in SERVICE_TABLES}
        seed(stack.tables, entities, datetime.now(UTC) - timedelta(hours=1))
        for segments in segment_counts:
            stack.parameters["SweepSegments"] = segments
            runner = FunctionRunner(stack)
            baseline = bare_scan(service_tables, segments, pages)
            aws.dynamodb(), aws.events()  # the worker's clients, built before the first traced invocation
            run = run_sweep(runner, pages)
            rows.append(summarise(run, entities, baseline["items"], segments, baseline))
            print(
                f"sweep: {entities:,} entities, {segments} segments: {rows[-1]['seconds']:.0f} s of workers",
                file=sys.stderr,
            )
    reset_caches()
    return rows


def measure(
    sizes: list[int], pages: int = PAGES_PER_INVOCATION, segment_counts: tuple[int, ...] = SEGMENTS
) -> dict[str, Any]:
    """Every size with every segment count, `pages` pages per worker invocation, and the memory ratio larger/smaller
    per segment count."""
    started = time.perf_counter()
    rows = [row for entities in sizes for row in measure_size(entities, pages, segment_counts)]
    ratios = []
    for segments in segment_counts:
        mine = [r for r in rows if r["segments"] == segments]
        small, large = min(mine, key=lambda r: r["entities"]), max(mine, key=lambda r: r["entities"])
        ratios.append(
            {
                "segments": segments,
                "smaller": small["entities"],
                "larger": large["entities"],
                "size_factor": round(large["items"] / small["items"], 1) if small["items"] else 0.0,
                "peak_ratio": round(large["peak_mb_max"] / small["peak_mb_max"], 3) if small["peak_mb_max"] else 0.0,
                "peak_ratio_by_worker": {
                    kind: round(size / small["peak_mb_by_worker"][kind], 2)
                    for kind, size in large["peak_mb_by_worker"].items()
                    if small["peak_mb_by_worker"].get(kind)
                },
                "invocation_ratio": round(large["worker_invocations"] / small["worker_invocations"], 2),
            }
        )
    largest = max(rows, key=lambda r: (r["entities"], r["segments"]))
    return {
        "model": model(largest["items_read_per_item"], largest["scanned_per_item"], largest["largest_table_share"]),
        "sizes": sizes,
        "segments": list(segment_counts),
        "pages_per_invocation": pages,
        "page_items": PAGE_ITEMS,
        "rows": rows,
        "memory": ratios,
        "memory_goal": MEMORY_GOAL,
        "memory_flat": all(r["peak_ratio"] <= MEMORY_GOAL for r in ratios),
        "seconds": round(time.perf_counter() - started, 1),
    }


# ---------------------------------------------------------------- past this machine
@dataclass(frozen=True)
class Limit:
    value: float
    source: str


# Each limit with the public page it is read from (us-east-1 defaults; most can be raised on request).
LIMITS = {
    "lambda_concurrency": Limit(
        1000,
        "Lambda quotas, https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (concurrent "
        "executions: 1,000 per Region by default)",
    ),
    "map_concurrency": Limit(
        10_000,
        "Using Map state in Distributed mode, https://docs.aws.amazon.com/step-functions/latest/dg/"
        "state-map-distributed.html (up to 10,000 parallel child workflow executions)",
    ),
    "history_events": Limit(
        25_000,
        "Step Functions service quotas, https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html"
        " (execution history: 25,000 events per execution; a Distributed Map child execution has its own)",
    ),
    "payload_bytes": Limit(
        262_144,
        "Step Functions service quotas, https://docs.aws.amazon.com/step-functions/latest/dg/"
        "service-quotas.html (input or output of a task, state or execution: 256 KiB)",
    ),
    "partition_rcu": Limit(
        3000,
        "Understanding DynamoDB warm throughput, https://docs.aws.amazon.com/amazondynamodb/latest/"
        "developerguide/warm-throughput-scenarios.html (each partition: 3,000 read units per second)",
    ),
    "partition_wcu": Limit(
        1000,
        "Understanding DynamoDB warm throughput, https://docs.aws.amazon.com/amazondynamodb/latest/"
        "developerguide/warm-throughput-scenarios.html (each partition: 1,000 write units per second); every page "
        "of every worker updates the sweep's header item and checkpoints in the sweep's partition",
    ),
    "table_rru": Limit(
        40_000,
        "Quotas in Amazon DynamoDB, https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
        "ServiceQuotas.html (on-demand, per table: 40,000 read request units per second by default)",
    ),
}
ENTITIES = (10**6, 10**8, 10**9)
ITEMS_PER_ENTITY = 1.75
ITEM_KB = 1.0
# One worker at 512 MB against DynamoDB: a Scan page of 500 1-KB items, then its neighbourhood by BatchGetItem (100
# keys a call), about 0.25 s of requests a page, plus the worker's own CPU at 512 MB (a third of a vCPU).
WORKER_ITEMS_PER_S = 2000
WORKER_GB = 0.5
USABLE_S = 280  # Timeout 300 less SWEEP_RESERVE_MS
TABLES = 4
TARGET_S = 3600  # the rule: a sweep's compare phase within an hour
SEGMENT_ITEM_BYTES = 150  # one segment's entry in the state machine's plan (JSON)
TRANSITIONS_PER_INVOCATION = 2  # the Task and the Choice of the child execution
TRANSITIONS_PER_SEGMENT = 2  # the child execution's start and its Succeed
HISTORY_EVENTS_PER_INVOCATION = 7  # TaskStateEntered, Scheduled, Started, Succeeded, StateExited, Choice in and out


def model(read_per_item: float, scanned_per_item: float, largest_share: float) -> dict[str, Any]:
    """Segments, wall time, capacity and dollars of one sweep at 10^6, 10^8, 10^9 entities, from the measured reads
    per stored item and the assumptions above; and which limit binds."""
    from bench.cost import load_prices

    prices = load_prices()["prices"]

    def usd(key: str, count: float) -> float:
        return float(count * prices[key]["usd"] / prices[key]["per"])

    # A strongly consistent Scan pays 1 unit per 4 KB of the page; a read by key 1 unit per item (rounded up to 4 KB).
    units_per_read = (scanned_per_item * ITEM_KB / 4 + (read_per_item - scanned_per_item)) / read_per_item
    stored_per_worker_s = WORKER_ITEMS_PER_S / read_per_item
    by_throughput = int(LIMITS["table_rru"].value // (WORKER_ITEMS_PER_S * units_per_read))
    by_payload = int(LIMITS["payload_bytes"].value // (SEGMENT_ITEM_BYTES * (TABLES + 1)))
    by_concurrency = int(LIMITS["lambda_concurrency"].value // TABLES)
    pages_per_worker_s = stored_per_worker_s / PAGE_ITEMS
    by_state_writes = int(LIMITS["partition_wcu"].value // (pages_per_worker_s * TABLES))
    rows = []
    for entities in ENTITIES:
        items = entities * ITEMS_PER_ENTITY
        largest = items * largest_share
        wanted = max(4, math.ceil(largest / (stored_per_worker_s * TARGET_S)))
        caps = {
            "table read quota": by_throughput,
            "state payload": by_payload,
            "Lambda concurrency": by_concurrency,
            "sweep header writes": by_state_writes,
        }
        segments = min(wanted, *caps.values())
        binding = sorted((name for name, cap in caps.items() if cap < wanted), key=lambda name: caps[name])
        reads = items * read_per_item
        units = reads * units_per_read
        worker_s = reads / WORKER_ITEMS_PER_S
        # The largest table's segments set the wall time; the counters phase re-reads the inventory table (its share
        # of the scan is in scanned_per_item) and runs after it.
        wall = largest / segments / stored_per_worker_s * (1 + (scanned_per_item - 1))
        per_segment_invocations = math.ceil(largest / segments / stored_per_worker_s / USABLE_S)
        invocations = max(worker_s / USABLE_S, (TABLES + 1) * segments)
        transitions = TRANSITIONS_PER_INVOCATION * invocations + TRANSITIONS_PER_SEGMENT * (TABLES + 1) * segments
        history = HISTORY_EVENTS_PER_INVOCATION * per_segment_invocations
        if history > LIMITS["history_events"].value:
            binding.append("execution history")
        rows.append(
            {
                "entities": entities,
                "items": items,
                "segments": segments,
                "segments_wanted": wanted,
                "concurrent_workers": TABLES * segments,
                "wall_s": round(wall),
                "items_read": reads,
                "read_units": units,
                "usd_reads": round(usd("dynamodb_read_request_unit", units), 2),
                "worker_invocations": round(invocations),
                "invocations_per_segment": per_segment_invocations,
                "history_events_per_child": history,
                "lambda_gb_s": round(worker_s * WORKER_GB),
                "usd_lambda": round(
                    usd("lambda_gb_second_x86", worker_s * WORKER_GB) + usd("lambda_request", invocations), 2
                ),
                "transitions": round(transitions),
                "usd_stepfunctions": round(usd("stepfunctions_standard_transition", transitions), 2),
                "table_read_units_per_s": round(segments * WORKER_ITEMS_PER_S * units_per_read),
                "binding": binding,
            }
        )
    return {
        "assumptions": {
            "items_per_entity": ITEMS_PER_ENTITY,
            "item_kb": ITEM_KB,
            "worker_items_per_s": WORKER_ITEMS_PER_S,
            "worker_gb": WORKER_GB,
            "usable_s_per_invocation": USABLE_S,
            "target_s": TARGET_S,
            "read_per_item": read_per_item,
            "scanned_per_item": scanned_per_item,
            "largest_share": largest_share,
            "units_per_read": round(units_per_read, 3),
            "segment_caps": {
                "table read quota": by_throughput,
                "state payload": by_payload,
                "Lambda concurrency": by_concurrency,
                "sweep header writes": by_state_writes,
            },
        },
        "limits": {name: {"value": limit.value, "source": limit.source} for name, limit in LIMITS.items()},
        "prices": {
            k: prices[k]
            for k in (
                "dynamodb_read_request_unit",
                "lambda_gb_second_x86",
                "lambda_request",
                "stepfunctions_standard_transition",
            )
        },
        "rows": rows,
    }

"""The full sweep at any size: the state machine's tasks over parallel-scan segments of every table.

`ReconcilerSweepStateMachine` (template.yaml) runs `start`, then a Map over every (table, segment) running
`segment` until it reports done, then a Map over the inventory table's segments running `counters` (products'
`reserved` against the sweep's tally of their RESERVED reservations), then `confirm` (the counters the tally could
not confirm, re-tallied after a wait by a Map over the reservations' segments running `retally`, until their
products hold still or `MAX_RETALLIES` rounds are spent; the rest are left to a counters sweep, `RESERVED_COUNTER`,
that the next incremental pass starts), then `finish`. Each worker invocation:

- reads pages of its segment (Scan `Segment`/`TotalSegments`, `ExclusiveStartKey`), a bounded page at a time;
- compares each page's entities with their whole neighbourhood read by key (BatchGetItem), in both directions: a
  projection item found by the scan brings its source in, so orphans are found from the projection side;
- compares an entity once per sweep: on the page holding its primary item (the order, the product); an entity
  without one (an orphan) wherever the scan finds it;
- sends the repairs (deterministic ids: a page done twice sends the same events again, which consumers skip),
  then checkpoints the segment (its `LastEvaluatedKey` and its counts) before its time runs out.

Nothing holds more than a page and its neighbourhood. A sweep that fails keeps its checkpoints: the next execution
resumes it from them. The pass state of the incremental reconciler is not touched; what a sweep still finds
different is handed to the incremental passes as suspects.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from converge import aws
from converge.bus import EventSender
from converge.contracts import with_tables
from converge.observability import logger, metrics
from converge.projections import PRODUCT, PROJECTIONS_BY_NAME, RESERVATION, SAGAS, reserved_by_product
from converge.settings import settings
from reconciler import store, sweep_store
from reconciler.findings import RESERVED_COUNTER, Findings, RecountSuspect
from reconciler.health import SweepHeader, SweepStatus
from reconciler.passes import BACKFILLABLE, InvalidInvocation
from reconciler.repairs import recount, recount_needs_a_person
from reconciler.service import ReconcilerConfig, Report, config, decide, park, repair
from reconciler.snapshot import SOURCES, Scope, Snapshot, projection_keys, source_keys
from reconciler.sweep_store import SegmentState

COMPARE, COUNTERS, CONFIRM = "SEGMENT", "COUNTERS", "CONFIRM"
RETALLY = "RETALLY"  # + the round: "RETALLY1", ...
# Re-tallies of the counters a sweep could not confirm, each after a wait that doubles (`retally_wait`); a product
# written during every one is left to a counters sweep that the next incremental pass starts (passes.COUNTERS_LEFT).
MAX_RETALLIES = 4
SWEEP_TASK = "a task of the sweep's state machine"  # what the worker expects, as UnexpectedEventError names it
# The first source layout of each id space holds its entity's primary item (the order, the product).
PRIMARY = {layout.kind: layout for layout in reversed(SOURCES)}


@dataclass(frozen=True)
class SweepSettings:
    segments: int  # TotalSegments of every table's parallel scan
    page_items: int  # Scan Limit: the most items one page (and its neighbourhood) brings into memory
    reserve_ms: int  # stop this long (plus two pages' time) before the invocation's deadline
    max_concurrency: int  # segment workers each Map runs at once
    retally_wait_seconds: int  # the wait before the first re-tally (doubling each round): the sweep's repairs settle


def sweep_settings() -> SweepSettings:
    env = os.environ
    return SweepSettings(
        segments=max(1, int(env.get("SWEEP_SEGMENTS", "4"))),
        page_items=max(1, int(env.get("SWEEP_PAGE_ITEMS", "500"))),
        reserve_ms=max(0, int(env.get("SWEEP_RESERVE_MS", "20000"))),
        max_concurrency=max(1, int(env.get("SWEEP_MAX_CONCURRENCY", "16"))),
        retally_wait_seconds=max(0, int(env.get("SWEEP_RETALLY_WAIT_SECONDS", "30"))),
    )


def retally_wait(first_seconds: int, round_: int) -> int:
    """Seconds the state machine waits before re-tally `round_` (1, 2, ...): `first_seconds`, doubling each round.

    A counter left unconfirmed is mostly one the sweep's own repairs are still moving (its republished events reach
    their consumers seconds later); waiting lets them land, so that the re-tally reads a product at rest.
    """
    return first_seconds << max(0, round_ - 1)


class SweepNotReady(RuntimeError):
    """A task came before what it needs (the counters before the tally is complete): it fails, and is retried."""


# ---------------------------------------------------------------- the tasks the state machine sends
class _Task(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SweepRequest(_Task):
    """What a sweep is asked for: every projection (the daily schedule, an operator after a restore), or one."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # a schedule's input may carry more

    reason: str = "requested"
    projection: str | None = None


class StartTask(_Task):
    action: Literal["start"]
    request: SweepRequest = SweepRequest()
    execution: str | None = None


class SegmentTask(_Task):
    action: Literal["segment", "counters", "retally"]
    sweep_id: str = Field(min_length=1)
    table: str = Field(min_length=1)
    segment: int = Field(ge=0)
    total_segments: int = Field(ge=1)
    round: int = Field(default=0, ge=0, le=MAX_RETALLIES)  # retally: which re-tally

    @property
    def phase(self) -> str:
        return {"segment": COMPARE, "counters": COUNTERS}.get(self.action, f"{RETALLY}{self.round}")


class ConfirmTask(_Task):
    action: Literal["confirm"]
    sweep_id: str = Field(min_length=1)


class FinishTask(_Task):
    action: Literal["finish"]
    sweep_id: str = Field(min_length=1)


class FailTask(_Task):
    action: Literal["fail"]
    sweep_id: str = Field(min_length=1)
    error: str = ""
    cause: str = ""


SweepTask = Annotated[StartTask | SegmentTask | ConfirmTask | FinishTask | FailTask, Field(discriminator="action")]
_TASK: TypeAdapter[SweepTask] = TypeAdapter(SweepTask)


def parse_task(event: Any) -> SweepTask:
    try:
        task = _TASK.validate_python(event)
    except ValidationError as exc:
        raise InvalidInvocation(f"not a sweep task: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}") from exc
    if isinstance(task, StartTask) and task.request.projection not in (None, RESERVED_COUNTER, *BACKFILLABLE):
        one_of = sorted({RESERVED_COUNTER, *BACKFILLABLE})
        raise InvalidInvocation(f"a sweep covers every projection, or one of {one_of}")
    if isinstance(task, SegmentTask) and task.table not in {s.name for s in with_tables()}:
        raise InvalidInvocation(f"no table {task.table!r}")
    if isinstance(task, SegmentTask) and (task.action == "retally") != (task.round > 0):
        raise InvalidInvocation("a retally has a round (1 or more), and only a retally has one")
    return task


# ---------------------------------------------------------------- start, finish, fail
def tables_of(projection: str | None) -> list[str]:
    """The tables a sweep scans: every table, the two a backfilled projection or saga pair lives in, or for the
    counters alone (`RESERVED_COUNTER`) the table of the products and their reservations."""
    if projection is None:
        return [s.name for s in with_tables()]
    if projection == RESERVED_COUNTER:
        return sorted({PRODUCT.table, RESERVATION.table})
    if projection in PROJECTIONS_BY_NAME:
        declared = PROJECTIONS_BY_NAME[projection]
        return sorted({declared.table, declared.source.table})
    saga = next(s for s in SAGAS if s.name == projection)
    return sorted({saga.left.table, saga.right.table})


def _segment_items(states: list[SegmentState]) -> list[dict[str, Any]]:
    actions = {COMPARE: "segment", COUNTERS: "counters"}
    return [
        {
            "action": actions.get(s.phase, "retally"),
            "sweep_id": s.sweep_id,
            "table": s.table,
            "segment": s.segment,
            "total_segments": s.total_segments,
        }
        | ({"round": int(s.phase.removeprefix(RETALLY))} if s.phase.startswith(RETALLY) else {})
        for s in states
        if not s.done
    ]


def start(task: StartTask, now: datetime) -> dict[str, Any]:
    """Begin a sweep, or resume the unfinished one from its checkpoints. Returns the segments still to do, by phase
    (the state machine's two Maps iterate them)."""
    cfg, tuning = config(), sweep_settings()
    header = store.load_sweep_header(cfg.state_table)
    if header is not None and header.unfinished:
        if header.running and header.execution_arn not in (None, task.execution) and _still_running(header):
            logger.info(
                "a sweep is running in another execution; this one leaves it", extra={"sweep_id": header.sweep_id}
            )
            return {**_plan_output(header.sweep_id, [], resumed=False), "max_concurrency": tuning.max_concurrency}
        sweep_store.update_header(
            cfg.state_table,
            header.sweep_id,
            status="RUNNING",
            execution_arn=task.execution,
            progress_at=now.isoformat(),
        )
        states = list(sweep_store.segments_of(cfg.state_table, header.sweep_id))
        logger.info("resuming sweep", extra={"sweep_id": header.sweep_id, "left": sum(not s.done for s in states)})
        return {**_plan_output(header.sweep_id, states, resumed=True), "max_concurrency": tuning.max_concurrency}
    sweep_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    projection = task.request.projection
    states = [
        SegmentState(sweep_id, COMPARE, table, n, tuning.segments)
        for table in tables_of(projection)
        for n in range(tuning.segments)
    ]
    # A backfill recounts nothing; the counters need every reservation tallied (by the compare phase).
    if projection in (None, RESERVED_COUNTER) and cfg.corrections:
        states += [SegmentState(sweep_id, COUNTERS, PRODUCT.table, n, tuning.segments) for n in range(tuning.segments)]
    sweep_store.create_header(
        cfg.state_table,
        SweepHeader(
            sweep_id=sweep_id,
            status=SweepStatus.RUNNING,
            reason=task.request.reason,
            started_at=now,
            progress_at=now,
            segments_total=len(states),
            projection=projection,
            execution_arn=task.execution,
        ),
        replaces=None if header is None else header.sweep_id,
    )
    sweep_store.create_segments(cfg.state_table, states)
    logger.info("sweep started", extra={"sweep_id": sweep_id, "segments": len(states), "reason": task.request.reason})
    return {**_plan_output(sweep_id, states, resumed=False), "max_concurrency": tuning.max_concurrency}


def _still_running(header: SweepHeader) -> bool:
    """Whether the execution that runs the sweep is still running (one that failed or was stopped left it RUNNING:
    this execution resumes it)."""
    if header.execution_arn is None or ":execution:" not in header.execution_arn:
        return False
    described = aws.stepfunctions().describe_execution(executionArn=header.execution_arn)
    return str(described["status"]) == "RUNNING"


def _plan_output(sweep_id: str, states: list[SegmentState], resumed: bool) -> dict[str, Any]:
    return {
        "sweep_id": sweep_id,
        "segments": _segment_items([s for s in states if s.phase == COMPARE]),
        "counters": _segment_items([s for s in states if s.phase == COUNTERS]),
        "resumed": resumed,
    }


def finish(task: FinishTask, now: datetime) -> dict[str, Any]:
    """Sum the segments' counts into the sweep's report, once every segment is done; mark the sweep SUCCEEDED."""
    cfg = config()
    header = store.load_sweep_header(cfg.state_table)
    if header is None or header.sweep_id != task.sweep_id:
        raise InvalidInvocation(f"sweep {task.sweep_id} is not the current sweep")
    states = list(sweep_store.segments_of(cfg.state_table, task.sweep_id))
    report = Report(mode="full", mode_reason=header.reason, found=Findings().count_by_projection())
    for state in states:
        _add_counts(report, state.counts)
        report.items_read += state.items_read
    left = [s.key["sk"] for s in states if not s.done]
    summary = {"sweep_id": task.sweep_id, "projection": header.projection, "segments": len(states), **asdict(report)}
    if left:
        logger.warning("sweep not finished; resumed by the next execution", extra={"left": left[:20]})
        return {**summary, "status": "RUNNING", "left": len(left)}
    sweep_store.update_header(
        cfg.state_table, task.sweep_id, status="SUCCEEDED", finished_at=now.isoformat(), recounts=report.recounts
    )
    metrics.add_metric(name="ReconcilerRepairs", unit=MetricUnit.Count, value=report.republished + report.corrections)
    metrics.add_metric(name="ReconcilerCorrections", unit=MetricUnit.Count, value=report.corrections)
    metrics.add_metric(name="AnomaliesParked", unit=MetricUnit.Count, value=report.parked_for_a_person)
    metrics.add_metric(name="SweepsCompleted", unit=MetricUnit.Count, value=1)
    logger.info("reconciliation sweep", extra={"report": summary})
    return {**summary, "status": "SUCCEEDED"}


def fail(task: FailTask) -> dict[str, Any]:
    """Record why the sweep's execution failed; its checkpoints stay, and the next execution resumes it."""
    cfg = config()
    error = f"{task.error}: {task.cause}"[:1000]
    sweep_store.update_header(cfg.state_table, task.sweep_id, status="FAILED", error=error)
    logger.error("sweep failed; resumed by the next execution", extra={"sweep_id": task.sweep_id, "error": error})
    return {"sweep_id": task.sweep_id, "status": "FAILED"}


# ---------------------------------------------------------------- one segment
@dataclass
class _Budget:
    """When to stop: before the deadline, leaving the reserve and room for two more pages."""

    remaining_ms: Callable[[], int]
    reserve_ms: int
    slowest_ms: float = 0.0
    pages: int = 0

    def page_took(self, seconds: float) -> None:
        self.slowest_ms = max(self.slowest_ms, seconds * 1000)
        self.pages += 1

    def another_page(self) -> bool:
        return self.remaining_ms() > self.reserve_ms + 2 * self.slowest_ms


@dataclass
class _Page:
    """What one page of a segment contributed."""

    report: Report
    cost: store.ReadCost = field(default_factory=store.ReadCost)


def segment(task: SegmentTask, remaining_ms: Callable[[], int]) -> dict[str, Any]:
    """Advance one segment page by page until it is done or the invocation's time is nearly up."""
    cfg, tuning = config(), sweep_settings()
    phase = task.phase
    state = sweep_store.load_segment(cfg.state_table, task.sweep_id, phase, task.table, task.segment)
    header = store.load_sweep_header(cfg.state_table)
    if state is None or header is None or header.sweep_id != task.sweep_id:
        raise InvalidInvocation(f"no segment {phase}#{task.table}#{task.segment} in the current sweep")
    if phase == COUNTERS:
        # The tally is complete only once every compare segment of the table is: a recount on part of it would
        # correct counters that are right. (The state machine runs the counters after the compare Map; this holds
        # whoever invokes the task.)
        tallying = sweep_store.segments_of(cfg.state_table, task.sweep_id)
        if any(s.phase == COMPARE and s.table == RESERVATION.table and not s.done for s in tallying):
            raise SweepNotReady(f"sweep {task.sweep_id}: the {RESERVATION.table} table is not fully tallied yet")
    budget = _Budget(remaining_ms, tuning.reserve_ms)
    sender = EventSender(aws.events(), max_attempts=settings().put_events_max_attempts)
    pending = sweep_store.load_recounts(cfg.state_table, task.sweep_id).products if task.round else frozenset()
    first = True
    while not state.done:
        began = time.monotonic()
        state = _advance(cfg, header, task, state, sender, pending, first, tuning.page_items)
        first = False
        budget.page_took(time.monotonic() - began)
        if not budget.another_page():
            break
    logger.info(
        "sweep segment",
        extra={"sweep_id": task.sweep_id, "segment": state.key["sk"], "done": state.done, "pages": budget.pages},
    )
    return {"done": state.done, "pages": state.pages, "items_read": state.items_read}


def _advance(
    cfg: ReconcilerConfig,
    header: SweepHeader,
    task: SegmentTask,
    state: SegmentState,
    sender: EventSender,
    pending: frozenset[str],
    first: bool,
    page_items: int,
) -> SegmentState:
    """One page of the segment: read, compare (or tally, or recount), checkpoint; the segment's state after it.
    A function of its own so that the page and its neighbourhood are freed before the next page is read: a worker
    holds one page at a time, not the last one and the next."""
    page = _Page(Report(mode="full", mode_reason=header.reason))
    items, cursor = sweep_store.scan_page(
        cfg.table_of(task.table),
        task.segment,
        task.total_segments,
        state.cursor,
        page_items,
        page.cost,
        task.table,
    )
    if task.phase == COMPARE:
        _compare_page(cfg, header, task, state, items, page, sender)
    elif task.phase == COUNTERS:
        _recount_page(cfg, header, items, page, sender)
    else:
        _retally_page(cfg, task, state, items, pending)
    report = page.report
    report.items_read = page.cost.total_items
    after = replace(
        state,
        cursor=cursor,
        done=cursor is None,
        pages=state.pages + 1,
        invocations=state.invocations + (1 if first else 0),
        items_read=state.items_read + report.items_read,
        counts=_summed(state.counts, _counts(report)),
    )
    sweep_store.checkpoint(cfg.state_table, state, after)
    progress_at = datetime.now(UTC).isoformat()
    sweep_store.add_to_header(
        cfg.state_table, task.sweep_id, progress_at, items_read=report.items_read, segments_done=int(after.done)
    )
    metrics.add_metric(name="SweepItemsRead", unit=MetricUnit.Count, value=report.items_read)
    return after


def page_scope(role: str, items: list[dict[str, Any]]) -> Scope:
    """The entities a page's items belong to: sources by their layouts, projection items by their source ids."""
    scope = Scope.of_items(items)
    products, orders = set(scope.products), set(scope.orders)
    for projection in PROJECTIONS_BY_NAME.values():
        if projection.table != role:
            continue
        for item in items:
            source_id = projection.source_id_of(str(item["pk"]), str(item["sk"]))
            if source_id is not None:
                (products if projection.source.kind == PRODUCT.kind else orders).add(source_id)
    return Scope(frozenset(products), frozenset(orders))


def owned(role: str, page_keys: set[tuple[str, str]], scope: Scope, snapshot: Snapshot) -> Scope:
    """The page's entities this page compares: those whose primary item is on it, and those without one."""
    keep: dict[str, set[str]] = {PRODUCT.kind: set(), PRIMARY["order"].kind: set()}
    for kind, layout in PRIMARY.items():
        present = snapshot.entities(layout)
        for entity_id in scope.ids_of(layout):
            mine = layout.table == role and layout.key(entity_id) in page_keys
            if entity_id not in present or mine:
                keep[kind].add(entity_id)
    return Scope(frozenset(keep[PRODUCT.kind]), frozenset(keep[PRIMARY["order"].kind]))


def _compare_page(
    cfg: ReconcilerConfig,
    header: SweepHeader,
    task: SegmentTask,
    state: SegmentState,
    items: list[dict[str, Any]],
    page: _Page,
    sender: EventSender,
) -> None:
    if header.projection in (None, RESERVED_COUNTER) and task.table == RESERVATION.table:
        page_reservations = [i for i in items if RESERVATION.id_of(str(i["pk"]), str(i["sk"])) is not None]
        held = reserved_by_product(page_reservations)
        sweep_store.write_tally(cfg.state_table, task.sweep_id, sweep_store.page_id(task.segment, state.cursor), held)
    if header.projection == RESERVED_COUNTER:  # a counters sweep only tallies: its recounts are the counters phase's
        return
    snapshot = Snapshot()
    snapshot.add(task.table, items)
    scope = page_scope(task.table, items)
    # The primary items first: they decide which page compares an entity.
    primaries: dict[str, list[tuple[str, str]]] = {}
    for layout in PRIMARY.values():
        keys = [layout.key(i) for i in scope.ids_of(layout) if layout.key(i) not in snapshot.tables[layout.table]]
        primaries.setdefault(layout.table, []).extend(sorted(keys))
    for role, keys in primaries.items():
        snapshot.add(role, store.batch_get(cfg.table_of(role), keys, page.cost, role))
    mine = owned(task.table, {(str(i["pk"]), str(i["sk"])) for i in items}, scope, snapshot)
    for role, keys in source_keys(mine, already_read=snapshot).items():
        snapshot.add(role, store.batch_get(cfg.table_of(role), keys, page.cost, role))
    for role, keys in projection_keys(mine, snapshot).items():
        snapshot.add(role, store.batch_get(cfg.table_of(role), keys, page.cost, role))
    page.report.checked = len(mine)
    findings, corrections, unconfirmed = decide(cfg, snapshot, mine, page.cost, header.projection)
    _repair(cfg, findings, corrections, unconfirmed, sender, page.report, header.projection)


def _recount_page(
    cfg: ReconcilerConfig, header: SweepHeader, items: list[dict[str, Any]], page: _Page, sender: EventSender
) -> None:
    """Products' `reserved` against the sweep's tally of their RESERVED reservations.

    The tally was made while the sweep ran, so it is the ledger of a product only if no reservation of that product
    changed meanwhile. Every reservation change writes its products in the same transaction, so a product last
    written before the sweep started (less the overlap for clock skew) is confirmed; a busier one is left for the
    next sweep.
    """
    findings, corrections, unconfirmed, pending = Findings(), [], 0, []
    quiet_before = header.started_at - cfg.overlap
    for item in items:
        product_id = PRODUCT.id_of(str(item["pk"]), str(item["sk"]))
        if product_id is None:
            continue
        counted = sweep_store.tallied(cfg.state_table, header.sweep_id, product_id, page.cost)
        reserved = int(item.get("reserved") or 0)
        if counted == reserved:
            continue
        suspect = RecountSuspect(product_id, int(item["version"]), reserved, counted, int(item.get("on_hand") or 0))
        findings.recount_suspects.append(suspect)
        written = item.get("updated_at")
        if written is None or datetime.fromisoformat(str(written)) >= quiet_before:
            pending.append(product_id)  # re-tallied once the counters are done (`confirm`)
            continue
        corrections.append(recount(suspect))
        if (case := recount_needs_a_person(suspect)) is not None:
            findings.parked.append(case)
    if pending and not sweep_store.add_pending_recounts(cfg.state_table, header.sweep_id, pending):
        logger.warning("pending recounts full; left to a counters sweep", extra={"products": len(pending)})
        sweep_store.add_to_header(
            cfg.state_table, header.sweep_id, datetime.now(UTC).isoformat(), counters_left=len(pending)
        )
        unconfirmed += len(pending)
    _repair(cfg, findings, corrections, unconfirmed, sender, page.report, None)


def _retally_page(
    cfg: ReconcilerConfig, task: SegmentTask, state: SegmentState, items: list[dict[str, Any]], pending: frozenset[str]
) -> None:
    """One page of reservations tallied again, for the pending products only."""
    page_reservations = [i for i in items if RESERVATION.id_of(str(i["pk"]), str(i["sk"])) is not None]
    held = {p: q for p, q in reserved_by_product(page_reservations).items() if p in pending}
    page = sweep_store.page_id(task.segment, state.cursor)
    sweep_store.write_tally(cfg.state_table, retally_id(task.sweep_id, task.round), page, held)


def retally_id(sweep_id: str, round_: int) -> str:
    """Where re-tally `round_` of a sweep keeps its tallies (its own, beside the compare phase's)."""
    return f"{sweep_id}#R{round_}"


def confirm(task: ConfirmTask) -> dict[str, Any]:
    """The counters the tally could not confirm: recount those whose product held still through a whole re-tally,
    and start another re-tally for the rest (after `wait_seconds`), up to `MAX_RETALLIES`; what is left then is
    recorded on the header (`counters_left`) for the counters sweep the next incremental pass starts.

    A reservation that changes writes its products in the same transaction, so a product whose version is the same
    after a re-tally as before it began had no reservation change while the re-tally read: that tally is its
    ledger. (The first tally cannot say so: it ran before these products' versions were read.)
    """
    cfg, tuning = config(), sweep_settings()
    header = store.load_sweep_header(cfg.state_table)
    if header is None or header.sweep_id != task.sweep_id:
        raise InvalidInvocation(f"sweep {task.sweep_id} is not the current sweep")
    pending = sweep_store.load_recounts(cfg.state_table, task.sweep_id)
    states = list(sweep_store.segments_of(cfg.state_table, task.sweep_id))
    if any(s.phase == COUNTERS and not s.done for s in states):
        raise SweepNotReady(f"sweep {task.sweep_id}: the counters are not done yet")
    retally = [s for s in states if s.phase == f"{RETALLY}{pending.round}"]
    if any(not s.done for s in retally):  # resumed mid-round: that round's segments first, without another wait
        return {"more": True, "retally": _segment_items(retally), "wait_seconds": 0}
    cost, findings, corrections, confirmed = store.ReadCost(), Findings(), [], set()
    keys = [PRODUCT.key(p) for p in sorted(pending.products)]
    now = {
        product_id: item
        for item in store.batch_get(cfg.table_of(PRODUCT.table), keys, cost, PRODUCT.table)
        if (product_id := PRODUCT.id_of(str(item["pk"]), str(item["sk"]))) is not None
    }
    for product_id in sorted(pending.products):
        item = now.get(product_id)
        if item is None:  # deleted: nothing to recount
            confirmed.add(product_id)
            continue
        if pending.round == 0 or pending.versions.get(product_id) != int(item["version"]):
            continue  # not yet re-tallied, or written while the re-tally read: not its ledger
        confirmed.add(product_id)
        counted = sweep_store.tallied(cfg.state_table, retally_id(task.sweep_id, pending.round), product_id, cost)
        reserved = int(item.get("reserved") or 0)
        if counted == reserved:
            continue
        suspect = RecountSuspect(product_id, int(item["version"]), reserved, counted, int(item.get("on_hand") or 0))
        findings.recount_suspects.append(suspect)
        corrections.append(recount(suspect))
        if (case := recount_needs_a_person(suspect)) is not None:
            findings.parked.append(case)
    left = pending.products - confirmed
    more = bool(left) and pending.round < MAX_RETALLIES
    sender = EventSender(aws.events(), max_attempts=settings().put_events_max_attempts)
    report = Report(mode="full", mode_reason=header.reason)
    _repair(cfg, findings, corrections, 0 if more else len(left), sender, report, None)
    report.items_read = cost.total_items
    versions = {p: int(now[p]["version"]) for p in left if p in now}
    following = sweep_store.Recounts(frozenset(left), versions, pending.round + 1 if more else pending.round)
    segments = (
        [
            SegmentState(task.sweep_id, f"{RETALLY}{following.round}", RESERVATION.table, n, tuning.segments)
            for n in range(tuning.segments)
        ]
        if more
        else []
    )
    # The confirmation's own counts, summed by `finish` as a segment's are.
    done = SegmentState(
        task.sweep_id,
        CONFIRM,
        PRODUCT.table,
        pending.round,
        1,
        done=True,
        items_read=cost.total_items,
        counts=_counts(report),
    )
    sweep_store.save_segment(cfg.state_table, done)
    sweep_store.create_segments(cfg.state_table, segments)
    sweep_store.save_recounts(cfg.state_table, task.sweep_id, following)
    if segments:
        sweep_store.add_to_header(
            cfg.state_table, task.sweep_id, datetime.now(UTC).isoformat(), segments_total=len(segments)
        )
    elif left:
        # Never silent: counted in the report (`corrections_unconfirmed`), on the header, and as a metric; the next
        # incremental pass starts a counters sweep for them (reconciler.service).
        at = datetime.now(UTC).isoformat()
        sweep_store.add_to_header(cfg.state_table, task.sweep_id, at, counters_left=len(left))
        metrics.add_metric(name="SweepCountersLeft", unit=MetricUnit.Count, value=len(left))
        logger.warning(
            "counters left to a counters sweep: written during every re-tally", extra={"products": sorted(left)[:20]}
        )
    logger.info(
        "sweep counters confirmed",
        extra={"sweep_id": task.sweep_id, "round": pending.round, "recounted": len(corrections), "left": len(left)},
    )
    wait = retally_wait(tuning.retally_wait_seconds, following.round) if more else 0
    return {"more": more, "retally": _segment_items(segments), "wait_seconds": wait}


def _repair(
    cfg: ReconcilerConfig,
    findings: Findings,
    corrections: list[Any],
    unconfirmed: int,
    sender: EventSender,
    report: Report,
    backfill: str | None,
) -> None:
    report.found = findings.count_by_projection()
    report.differences = findings.count_by_difference()
    report.recounts = sum(1 for c in corrections if c.finding.projection == RESERVED_COUNTER)
    report.corrections_unconfirmed = unconfirmed
    report.corrections_disabled = len(findings.unrepaired)
    report.deferred = len(findings.deferred)
    repair(findings, corrections, sender, settings().event_bus_name, report, backfill)
    park(findings, cfg, report)
    suspects = Scope.of_findings(findings)
    if suspects and not sweep_store.add_suspects(cfg.state_table, suspects.products, suspects.orders):
        logger.warning("sweep suspects full; left to the next sweep", extra={"entities": len(suspects)})


# ---------------------------------------------------------------- counts carried in checkpoints
_SUMMED = (
    "checked",
    "republished",
    "republish_failures",
    "corrections",
    "corrections_unconfirmed",
    "corrections_disabled",
    "recounts",
    "deferred",
    "parked_for_a_person",
    "already_parked",
)


def _counts(report: Report) -> dict[str, int]:
    counts = {name: int(getattr(report, name)) for name in _SUMMED}
    counts |= {f"found.{k}": v for k, v in report.found.items() if v}
    counts |= {f"differences.{k}": v for k, v in report.differences.items() if v}
    return {k: v for k, v in counts.items() if v}


def _summed(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def _add_counts(report: Report, counts: dict[str, int]) -> None:
    for name, value in counts.items():
        group, _, key = name.partition(".")
        if key and group in ("found", "differences"):
            target: dict[str, int] = getattr(report, group)
            target[key] = target.get(key, 0) + value
        elif name in _SUMMED:
            setattr(report, name, getattr(report, name) + value)

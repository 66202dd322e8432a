"""One reconciliation pass, and what passes share: configuration, report, repairs, parking, dead letters.

Every 5 minutes an incremental pass compares only the entities written since the watermark (read from the
source tables' changed-since index) and those still different last time; once a day, or when invoked with
`{"mode": "full"}` (the operator's command after a restore), a full sweep compares every entity and recounts
derived counters. Both use the same rules (domain.compare over converge.projections).

An incremental pass reads the index a page at a time, oldest bucket first, comparing each page with its
neighbourhood before the next, and stops at its budget of index items: what it holds is one page, whatever the
write rate, and a window larger than the budget is finished by the next passes from where this one stopped.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from converge import aws
from converge.bus import EventSender, to_entry
from converge.consumer import BACKFILL_RESOURCE_PREFIX
from converge.contracts import with_inboxes, with_tables
from converge.envelope import correction_event, event_from_item, parse_eventbridge_json
from converge.errors import MalformedEventError, UnknownEventError
from converge.observability import logger, metrics
from converge.projections import Item
from converge.reconcile_index import BUCKET_ATTRIBUTE, UPDATED_AT_ATTRIBUTE, all_buckets
from converge.settings import settings
from reconciler import health, store, sweep_store
from reconciler.compare import compare, confirmed_corrections, to_confirm
from reconciler.dead_letters import DeadLetterKind, judge_dead_letter
from reconciler.findings import RESERVED_COUNTER, Correction, Findings
from reconciler.passes import (
    COUNTERS_LEFT,
    MAX_SUSPECTS,
    Mode,
    Position,
    ReconcilerState,
    backlog,
    bucket_id,
    next_bucket,
    next_state,
    plan_pass,
    resume_after,
)
from reconciler.snapshot import Scope, Snapshot, projection_keys, source_keys


@dataclass(frozen=True)
class ReconcilerConfig:
    # Service name -> its table (every service contract with a table).
    tables: dict[str, str]
    # DLQ url -> the inbox its valid messages are redriven to ("" = back onto the bus).
    dead_letter_queues: dict[str, str]
    state_table: str
    overlap: timedelta
    # Repairs against the grain of versions (corrections). Off: differences are still found and reported, only
    # forward repairs (republishing) are made - the switch for an operator who distrusts a correction.
    corrections: bool = True
    sweep_state_machine: str = ""  # the full sweep's state machine (reconciler.sweeper)
    sweep_stalled_seconds: int = 900  # a RUNNING sweep without progress this long is started again (it resumes)
    # The most changed-since index items one incremental pass reads (the rest is the next passes'), and a page of
    # them: a page and its neighbourhood is what a pass holds at once (docs/CONSISTENCY.md, under traffic).
    budget_items: int = 20_000
    page_items: int = 100

    def table_of(self, role: str) -> str:
        return self.tables[role]


def config() -> ReconcilerConfig:
    """Read per pass (not cached): cheap, and always the function's current environment.

    Every service contract with a table has `<NAME>_TABLE_NAME`; every one with a consumer `<NAME>_DLQ_URL` and
    `<NAME>_INBOX_URL` (template.yaml sets them; tests/unit/test_service_contracts.py checks it does).
    """
    env = os.environ
    # The sweep's worker drains no DLQ: its function has no DLQ in its environment (nor in its role).
    drains = "DELIVERY_DLQ_URL" in env
    return ReconcilerConfig(
        tables={service.name: env[f"{service.env_prefix}_TABLE_NAME"] for service in with_tables()},
        dead_letter_queues={
            **{env[f"{s.env_prefix}_DLQ_URL"]: env[f"{s.env_prefix}_INBOX_URL"] for s in with_inboxes()},
            env["DELIVERY_DLQ_URL"]: "",
        }
        if drains
        else {},
        state_table=env["STATE_TABLE_NAME"],
        overlap=timedelta(seconds=int(env.get("WATERMARK_OVERLAP_SECONDS", "120"))),
        corrections=env.get("CORRECTIONS_ENABLED", "true").lower() != "false",
        sweep_state_machine=env.get("SWEEP_STATE_MACHINE_ARN", ""),
        sweep_stalled_seconds=int(env.get("SWEEP_STALLED_SECONDS", "900")),
        budget_items=max(1, int(env.get("INCREMENTAL_BUDGET_ITEMS", "20000"))),
        page_items=max(1, int(env.get("INCREMENTAL_PAGE_ITEMS", "100"))),
    )


_PAGE_COUNTS = ("checked", "republished", "republish_failures", "corrections", "corrections_unconfirmed",
                "corrections_disabled", "recounts", "deferred", "parked_for_a_person", "already_parked")  # fmt: skip


@dataclass
class Report:
    mode: str = Mode.FULL.value
    mode_reason: str = ""
    sweep_started: str | None = None  # the execution of the full sweep this pass started, if it started one
    window_from: str | None = None  # incremental: entities written at or after this time were compared
    checked: int = 0  # entities compared (products + orders)
    items_read: int = 0  # items read from the three tables (Scan/Query ScannedCount, BatchGetItem items)
    items_read_by_table: dict[str, int] = field(default_factory=dict)
    read_requests: int = 0
    read_capacity_units: float = 0.0
    watermark: str | None = None  # where the next incremental pass starts (before its overlap)
    watermark_advanced: bool = False
    budget_items: int = 0  # incremental: the most index items this pass could read
    largest_page_items: int = 0  # incremental: the most items (a page and its neighbourhood) held at once
    buckets_behind: int = 0  # incremental: index buckets the budget left unfinished, resumed by the next pass
    backlog_seconds: float = 0.0  # incremental: how old the oldest write still unread is (0: none is)
    suspects: int = 0  # entities still different, checked again next pass
    found: dict[str, int] = field(default_factory=dict)  # per declared projection / saga / counter
    differences: dict[str, int] = field(default_factory=dict)  # missing / behind / ahead / different / ... / saga
    republished: int = 0
    republish_failures: int = 0
    corrections: int = 0  # correction events sent (ahead, different, orphaned, saga, counters)
    corrections_unconfirmed: int = 0  # found, but the source had moved on a second read: checked next pass
    corrections_disabled: int = 0  # found while CORRECTIONS_ENABLED is false: reported only
    recounts: int = 0
    deferred: int = 0  # saga repairs waiting for their other pair's repair: the next pass makes them
    parked_for_a_person: int = 0  # newly parked this pass (counted once however many passes see them)
    already_parked: int = 0
    anomalies: list[str] = field(default_factory=list)
    dead_letters: dict[str, int] = field(
        default_factory=lambda: {**{kind.value: 0 for kind in DeadLetterKind}, "already_parked": 0},
    )

    def add(self, page: Report) -> None:
        """Count a page's findings and repairs in this pass's report."""
        for name in _PAGE_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(page, name))
        for total, part in ((self.found, page.found), (self.differences, page.differences)):
            for key, value in part.items():
                total[key] = total.get(key, 0) + value
        self.anomalies.extend(page.anomalies)


def repair(
    findings: Findings,
    corrections: list[Correction],
    sender: EventSender,
    bus_name: str,
    report: Report,
    backfill: str | None = None,
) -> None:
    """Send every repair: the sources' current events (forward) and the confirmed corrections, each once."""
    entries = []
    for found in findings.republish:
        try:
            event = event_from_item(found.source_item)
        except MalformedEventError as exc:
            # A source item that is not a valid event cannot be republished; one must not stop the others.
            logger.error("cannot republish", extra={"entity_id": found.finding.entity_id, "reason": str(exc)})
            report.anomalies.append(f"{found.finding.entity_id}: {exc}")
            continue
        if event is None:  # a source item without event_type cannot lag: nothing was ever published for it
            continue
        logger.info("republishing", extra=asdict(found.finding))
        entries.append((event.metadata.event_id, to_entry(event, bus_name)))
    for correction in corrections:
        event = correction_event(correction.data, version=correction.version, correlation_id=_correlation_id())
        logger.info("correcting", extra=asdict(correction.finding))
        entries.append((event.metadata.event_id, to_entry(event, bus_name)))
    if backfill is not None:  # consumers recognise a backfilled event (converge.consumer.redelivery_of)
        for _, entry in entries:
            entry["Resources"] = [f"{BACKFILL_RESOURCE_PREFIX}{backfill}"]
    # The same source can repair two projections (an order both unreserved and un-notified): send it once.
    unique = list(dict(entries).items())
    result = sender.send(unique)
    failed = {entry.key for entry in result.failed or []}
    report.corrections = sum(1 for c in corrections if c.data.correction_id not in failed)
    report.republished = result.sent - report.corrections
    report.republish_failures = len(failed)


def _correlation_id() -> str:
    return f"reconciler:{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"


def park(findings: Findings, cfg: ReconcilerConfig, report: Report) -> None:
    """Record what needs a person once, with its reason; log and count only the first time."""
    for case in findings.parked:
        extra = {**asdict(case.finding), "kind": case.kind}
        first = store.park_anomaly(
            cfg.state_table,
            case.kind,
            case.finding.entity_id,
            case.detail,
            case.finding.reason,
            datetime.now(UTC).isoformat(),
            case.attributes,
        )
        if first:
            report.parked_for_a_person += 1
            logger.error("parked for a person", extra=extra)
        else:
            report.already_parked += 1
            logger.info("already parked for a person", extra=extra)
        report.anomalies.append(f"{case.finding.entity_id}: {case.kind}: {case.finding.reason}")


def drain_dead_letters(cfg: ReconcilerConfig, sender: EventSender, bus_name: str, report: Report) -> None:
    for dlq_url, inbox_url in cfg.dead_letter_queues.items():
        parked: list[store.DeadLetter] = []
        for letter in store.receive_dead_letters(dlq_url):
            if store.is_parked(cfg.state_table, letter):
                # Parked by an earlier pass or by a person: it stays in its DLQ for a person, judged no more.
                parked.append(letter)
                report.dead_letters["already_parked"] += 1
                continue
            body: dict[str, Any] | None = None
            parse_error: str | None = None
            event_id: str | None = None
            try:
                decoded = json.loads(letter.body)
                body = decoded if isinstance(decoded, dict) else None
                if body is None or "DDBStreamBatchInfo" not in body:
                    event_id = parse_eventbridge_json(letter.body).metadata.event_id
            except (ValueError, MalformedEventError, UnknownEventError) as exc:
                parse_error = str(exc)
            # Counted by event id in the state table (it survives the bus), or by the message's attribute (an
            # inbox redrive that an older reconciler counted that way): whichever saw more.
            counted = store.redrives_counted(cfg.state_table, dlq_url, event_id) if event_id else 0
            verdict = judge_dead_letter(body, parse_error, max(letter.redrives, counted))
            extra = {"queue": dlq_url, "message_id": letter.message_id, "reason": verdict.reason}
            if verdict.kind is DeadLetterKind.POISON:
                # Parked once: recorded with its reason in the state table, left in its DLQ for a person, and
                # counted only the first time, however many passes see it again.
                parked.append(letter)
                if store.park(cfg.state_table, letter, verdict.reason, datetime.now(UTC).isoformat()):
                    report.dead_letters[verdict.kind.value] += 1
                    logger.warning("poison message parked", extra=extra)
                else:
                    report.dead_letters["already_parked"] += 1
                    logger.info("poison message already parked", extra=extra)
                continue
            recounted = verdict.kind is DeadLetterKind.EVENT and event_id is not None
            if recounted and not store.count_redrive(cfg.state_table, dlq_url, str(event_id), counted):
                logger.info("dead letter counted by another pass; left for the next", extra=extra)
                continue
            report.dead_letters[verdict.kind.value] += 1
            if verdict.kind is DeadLetterKind.STREAM_BATCH:
                logger.info("stream batch failure acknowledged", extra=extra)
                store.acknowledge(letter)
            elif inbox_url:
                logger.info("redriving dead letter", extra=extra)
                store.redrive(letter, inbox_url, max(letter.redrives, counted))
            else:
                event = parse_eventbridge_json(letter.body)
                result = sender.send([(letter.message_id, to_entry(event, bus_name))])
                if not result.failed:
                    logger.info("redelivered dead letter through the bus", extra=extra)
                    store.acknowledge(letter)
        # Only after the queue is drained: released earlier, this pass would receive them again.
        store.release(parked)


def page_snapshot(
    cfg: ReconcilerConfig, changed: dict[str, list[Item]], suspects: Scope, cost: store.ReadCost
) -> tuple[Snapshot, Scope]:
    """Changed source items (by service) and suspects (the scope), each entity with its whole neighbourhood."""
    snapshot = Snapshot.of(**changed)
    scope = Scope.of_items(item for items in changed.values() for item in items).union(suspects)
    for role, keys in source_keys(scope, already_read=snapshot).items():
        snapshot.add(role, store.batch_get(cfg.table_of(role), keys, cost, role))
    for role, keys in projection_keys(scope, snapshot).items():
        snapshot.add(role, store.batch_get(cfg.table_of(role), keys, cost, role))
    return snapshot, scope


def reread_sources(cfg: ReconcilerConfig, snapshot: Snapshot, scope: Scope, cost: store.ReadCost) -> Snapshot:
    """The snapshot with the scope's source items read again (after every projection was read)."""
    fresh = snapshot
    for role, keys in source_keys(scope).items():
        fresh = fresh.refreshed(role, keys, store.batch_get(cfg.table_of(role), keys, cost, role))
    return fresh


def decide(
    cfg: ReconcilerConfig, snapshot: Snapshot, scope: Scope | None, cost: store.ReadCost, only: str | None = None
) -> tuple[Findings, list[Correction], int]:
    """Compare the scope's entities and confirm what needs a correction on a second read. Returns the findings, the
    corrections to send, and how many found corrections a second read did not confirm (checked again next pass).
    Counters are the sweep's (reconciler.sweeper): they need every reservation."""
    findings = compare(snapshot, scope, corrections=cfg.corrections, counters=False, only=only)
    # Only corrections need their sources read again: a republish is harmless if the source moved meanwhile.
    corrections = (
        confirmed_corrections(findings, reread_sources(cfg, snapshot, to_confirm(findings), cost))
        if findings.corrections
        else []
    )
    return findings, corrections, len(findings.corrections) - len(corrections)


def sweep_header(cfg: ReconcilerConfig) -> health.SweepHeader | None:
    """The full sweep's header; an unreadable one is logged and taken as none: the sweep's state never stops a pass."""
    try:
        return store.load_sweep_header(cfg.state_table)
    except health.InvalidSweepHeader as exc:
        logger.error("sweep header unreadable; its metrics report no sweep", extra={"reason": str(exc)})
        return None


def start_sweep(
    cfg: ReconcilerConfig, header: health.SweepHeader | None, reason: str, projection: str | None = None
) -> str | None:
    """Start the sweep's state machine unless a sweep is running and progressing; the execution ARN, or None."""
    if header is not None and header.running and projection is None:
        quiet = datetime.now(UTC) - header.last_progress_at
        if quiet < timedelta(seconds=cfg.sweep_stalled_seconds):
            logger.info("a sweep is running; not starting another", extra={"sweep_id": header.sweep_id})
            return None
    request = {"reason": reason} | ({"projection": projection} if projection else {})
    name = f"{re.sub(r'[^A-Za-z0-9]+', '-', reason)[:40]}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    started = aws.stepfunctions().start_execution(
        stateMachineArn=cfg.sweep_state_machine, name=name, input=json.dumps(request)
    )
    logger.info("sweep started", extra={"reason": reason, "execution": started["executionArn"]})
    return str(started["executionArn"])


class IncrementalPass:
    """The pages of one incremental pass: each compared with its neighbourhood and repaired before the next is read,
    so that the pass holds one page, and what the pages found is kept as counts and the ids still lagging."""

    def __init__(
        self, cfg: ReconcilerConfig, sender: EventSender, bus_name: str, report: Report, cost: store.ReadCost
    ) -> None:
        self.cfg, self.sender, self.bus_name, self.report, self.cost = cfg, sender, bus_name, report, cost
        self.lagging = Scope()  # found different: the next pass's suspects
        self.compared_products: set[str] = set()
        self.compared_orders: set[str] = set()
        # (pk, sk, updated_at) of the source items compared: an entity whose order and reservation (or whose two
        # writes, across the overlap) are both in the window is compared once per version, not once per item.
        self.seen: set[tuple[str, str, str]] = set()
        self.largest_page = 0

    def read_changed(self, state: ReconcilerState, since: datetime, started_at: datetime) -> dict[str, Position | None]:
        """Read the changed-since index page by page, the bucket furthest behind first, until every bucket is read to
        its end or the budget is spent. Returns where each bucket stopped (None: at its end)."""
        positions: dict[str, Position | None] = {
            bucket_id(service.name, bucket): state.positions.get(bucket_id(service.name, bucket), Position.at(since))
            for service in with_tables()
            if service.layouts  # a table of sources has the changed-since index
            for bucket in all_buckets()
        }
        budget = self.cfg.budget_items
        while budget > 0 and (bucket := next_bucket(positions)) is not None:
            role, _, shard = bucket.partition("#")
            start = positions[bucket]
            assert start is not None  # next_bucket names only a bucket with a position
            items, more = store.changed_page(
                self.cfg.table_of(role), shard, start, min(self.cfg.page_items, budget), self.cost, role
            )
            budget -= len(items)
            fresh = [item for item in items if _version_of(item) not in self.seen]
            if fresh:
                self.compare({role: fresh}, Scope())
            last = items[-1] if items else None
            positions[bucket] = (
                resume_after(str(last[UPDATED_AT_ATTRIBUTE]), (str(last["pk"]), str(last["sk"])), started_at,
                             self.cfg.overlap)
                if more and last is not None
                else None
            )  # fmt: skip
        return positions

    def check_suspects(self, suspects: Scope) -> None:
        """Compare the suspects this pass did not compare already, a page of them at a time."""
        rest = Scope(suspects.products - self.compared_products, suspects.orders - self.compared_orders)
        ids = [(True, p) for p in sorted(rest.products)] + [(False, o) for o in sorted(rest.orders)]
        for start in range(0, len(ids), self.cfg.page_items):
            page = ids[start : start + self.cfg.page_items]
            products = frozenset(i for is_product, i in page if is_product)
            self.compare({}, Scope(products, frozenset(i for is_product, i in page if not is_product)))

    def compare(self, changed: dict[str, list[Item]], suspects: Scope) -> None:
        snapshot, scope = page_snapshot(self.cfg, changed, suspects, self.cost)
        self.largest_page = max(self.largest_page, sum(len(table) for table in snapshot.tables.values()))
        findings, corrections, unconfirmed = decide(self.cfg, snapshot, scope, self.cost)
        page = Report(
            checked=snapshot.checked,
            found=findings.count_by_projection(),
            differences=findings.count_by_difference(),
            corrections_unconfirmed=unconfirmed,
            corrections_disabled=len(findings.unrepaired),
            deferred=len(findings.deferred),
        )
        for finding in findings.unrepaired:
            logger.warning("difference left unrepaired (corrections disabled)", extra=asdict(finding))
        repair(findings, corrections, self.sender, self.bus_name, page)
        park(findings, self.cfg, page)
        self.report.add(page)
        self.lagging = self.lagging.union(Scope.of_findings(findings))
        self.compared_products |= scope.products
        self.compared_orders |= scope.orders
        sources = (item for table in snapshot.tables.values() for item in table.values() if BUCKET_ATTRIBUTE in item)
        self.seen.update(_version_of(item) for item in sources)


def _version_of(item: Item) -> tuple[str, str, str]:
    return str(item["pk"]), str(item["sk"]), str(item.get(UPDATED_AT_ATTRIBUTE, ""))


def reconcile(mode: Mode = Mode.INCREMENTAL, backfill: str | None = None) -> Report:
    """One incremental pass (the 5-minute schedule); `{"mode": "full"}` (and a backfill of one projection) starts
    the full sweep instead, which the state machine fans out (reconciler.sweeper)."""
    if backfill is not None:
        mode = Mode.FULL
    cfg = config()
    bus_name = settings().event_bus_name
    sender = EventSender(aws.events(), max_attempts=settings().put_events_max_attempts)
    started_at = datetime.now(UTC)
    state = store.load_state(cfg.state_table)
    plan = plan_pass(mode, state, cfg.overlap, started_at)
    report = Report(mode=plan.mode.value, mode_reason=plan.reason, found=Findings().count_by_projection())
    header = sweep_header(cfg)
    if plan.sweep is not None:
        report.sweep_started = start_sweep(cfg, header, plan.sweep, backfill)
    elif backfill is None and header is not None and header.counters_to_verify:
        # The last sweep could not confirm some counters (their products busy through every re-tally), or sent
        # recounts that inventory skips if the product moved on first: a sweep of the counters alone checks them
        # again (it tallies the reservations afresh); one that finds every counter right makes none due.
        report.sweep_started = start_sweep(cfg, header, COUNTERS_LEFT, RESERVED_COUNTER)
    if backfill is not None:  # a backfill is the sweep of one projection; the scheduled passes go on as they are
        return report
    if plan.since is None:
        raise ValueError("an incremental plan has a start")
    report.window_from = plan.since.isoformat()
    report.budget_items = cfg.budget_items
    cost = store.ReadCost()
    walk = IncrementalPass(cfg, sender, bus_name, report, cost)
    positions = walk.read_changed(state, plan.since, started_at)
    # The sweep's suspects are checked here too, a bounded number per pass, until they agree.
    swept_products, swept_orders = sweep_store.load_suspects(cfg.state_table)
    swept = Scope(frozenset(sorted(swept_products)[:MAX_SUSPECTS]), frozenset(sorted(swept_orders)[:MAX_SUSPECTS]))
    walk.check_suspects(state.suspects.union(swept))
    report.items_read = cost.total_items
    report.items_read_by_table = dict(cost.items)
    report.read_requests = cost.requests
    report.read_capacity_units = cost.capacity_units
    report.largest_page_items = walk.largest_page
    # Only now, with every comparison made and every repair sent, may the watermark and the buckets' positions move:
    # a pass that raised before this line leaves them where they were, and the next pass reads the same pages again.
    left = next_state(state, started_at, walk.lagging, positions, cfg.overlap)
    saved = health.stamped(left, state, incremental=True, now=datetime.now(UTC))
    report.suspects = len(saved.suspects)
    report.buckets_behind = len(saved.positions)
    report.backlog_seconds = backlog(saved.positions, started_at).total_seconds()
    try:
        store.save_state(cfg.state_table, saved, expected_version=state.version)
        report.watermark, report.watermark_advanced = (saved.watermark.isoformat() if saved.watermark else None), True
        sweep_store.remove_suspects(cfg.state_table, swept.products, swept.orders)  # still different: in `saved`
    except store.ConcurrentPass as exc:
        logger.warning("another pass saved its state first; watermark left to it", extra={"reason": str(exc)})
    drain_dead_letters(cfg, sender, bus_name, report)
    metrics.add_metric(name="ReconcilerRepairs", unit=MetricUnit.Count, value=report.republished + report.corrections)
    metrics.add_metric(name="ReconcilerCorrections", unit=MetricUnit.Count, value=report.corrections)
    metrics.add_metric(name="AnomaliesParked", unit=MetricUnit.Count, value=report.parked_for_a_person)
    metrics.add_metric(name="PoisonMessagesParked", unit=MetricUnit.Count, value=report.dead_letters["poison"])
    metrics.add_metric(name="DeadLettersRedriven", unit=MetricUnit.Count, value=report.dead_letters["event"])
    metrics.add_metric(name="ReconcilerItemsRead", unit=MetricUnit.Count, value=report.items_read)
    metrics.add_metric(name="ReconcilerBacklogSeconds", unit=MetricUnit.Seconds, value=report.backlog_seconds)
    # The heartbeat and the sweep's progress (template.yaml alarms on both; a pass that raised sends neither).
    for metric in health.pass_metrics(state, header, datetime.now(UTC), completed=report.watermark_advanced):
        metrics.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
    logger.info("reconciliation pass", extra={"report": asdict(report)})
    return report

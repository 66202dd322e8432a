"""Scheduled reconciler: bring every declared projection back to what its source implies, then drain the DLQs.

Every 5 minutes an incremental pass compares only the entities written since the watermark (read from the
source tables' changed-since index) and those still different last time; once a day, or when invoked with
`{"mode": "full"}` (the operator's command after a restore), a full sweep compares every entity and recounts
derived counters. Both use the same rules (compare.compare over converge.projections).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge import aws
from converge.bus import EventSender, to_entry
from converge.consumer import BACKFILL_RESOURCE_PREFIX
from converge.contracts import read_order, with_inboxes, with_tables
from converge.envelope import correction_event, event_from_item, parse_eventbridge_json
from converge.errors import MalformedEventError, UnexpectedEventError, UnknownEventError
from converge.observability import logger, metrics, traced
from converge.projections import PRODUCT, RESERVATION
from converge.settings import settings
from reconciler import health, store
from reconciler.compare import compare, confirmed_corrections, confirmed_recounts, defer_saga_repairs, to_confirm
from reconciler.dead_letters import DeadLetterKind, judge_dead_letter
from reconciler.findings import RESERVED_COUNTER, Correction, Findings
from reconciler.passes import Mode, Plan, next_state, parse_invocation, plan_pass
from reconciler.repairs import recount, recount_needs_a_person
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

    def table_of(self, role: str) -> str:
        return self.tables[role]


def config() -> ReconcilerConfig:
    """Read per pass (not cached): cheap, and always the function's current environment.

    Every service contract with a table has `<NAME>_TABLE_NAME`; every one with a consumer `<NAME>_DLQ_URL` and
    `<NAME>_INBOX_URL` (template.yaml sets them; tests/unit/test_service_contracts.py checks it does).
    """
    env = os.environ
    return ReconcilerConfig(
        tables={service.name: env[f"{service.env_prefix}_TABLE_NAME"] for service in with_tables()},
        dead_letter_queues={
            **{env[f"{s.env_prefix}_DLQ_URL"]: env[f"{s.env_prefix}_INBOX_URL"] for s in with_inboxes()},
            env["DELIVERY_DLQ_URL"]: "",
        },
        state_table=env["STATE_TABLE_NAME"],
        overlap=timedelta(seconds=int(env.get("WATERMARK_OVERLAP_SECONDS", "120"))),
        corrections=env.get("CORRECTIONS_ENABLED", "true").lower() != "false",
    )


@dataclass
class Report:
    mode: str = Mode.FULL.value
    mode_reason: str = ""
    window_from: str | None = None  # incremental: entities written at or after this time were compared
    checked: int = 0  # entities compared (products + orders)
    items_read: int = 0  # items read from the three tables (Scan/Query ScannedCount, BatchGetItem items)
    items_read_by_table: dict[str, int] = field(default_factory=dict)
    read_requests: int = 0
    read_capacity_units: float = 0.0
    watermark: str | None = None  # where the next incremental pass starts (before its overlap)
    watermark_advanced: bool = False
    suspects: int = 0  # entities still different, checked again next pass
    found: dict[str, int] = field(default_factory=dict)  # per declared projection / saga / counter
    differences: dict[str, int] = field(default_factory=dict)  # missing / behind / ahead / different / ... / saga
    republished: int = 0
    republish_failures: int = 0
    corrections: int = 0  # correction events sent (ahead, different, orphaned, saga, counters)
    corrections_unconfirmed: int = 0  # found, but the source had moved on a second read: checked next pass
    corrections_disabled: int = 0  # found while CORRECTIONS_ENABLED is false: reported only
    recounts: int = 0
    deferred: int = 0  # saga repairs held back while their products are recounted: the next pass makes them
    parked_for_a_person: int = 0  # newly parked this pass (counted once however many passes see them)
    already_parked: int = 0
    anomalies: list[str] = field(default_factory=list)
    dead_letters: dict[str, int] = field(
        default_factory=lambda: {**{kind.value: 0 for kind in DeadLetterKind}, "already_parked": 0},
    )


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


def full_snapshot(cfg: ReconcilerConfig, cost: store.ReadCost) -> Snapshot:
    """Every item of every service's table, projections before sources (contracts.read_order says why)."""
    snapshot = Snapshot()
    for service in read_order():
        snapshot.add(service.name, store.scan_items(cfg.table_of(service.name), cost, service.name))
    return snapshot


def incremental_snapshot(
    cfg: ReconcilerConfig, plan: Plan, suspects: Scope, cost: store.ReadCost
) -> tuple[Snapshot, Scope]:
    """The entities changed since the plan's start and the suspects (the scope), each with its whole neighbourhood."""
    if plan.since is None:
        raise ValueError("an incremental plan has a start")
    snapshot = Snapshot()
    for service in with_tables():
        if service.layouts:  # a table of sources has the changed-since index
            snapshot.add(service.name, store.changed_since(cfg.table_of(service.name), plan.since, cost, service.name))
    changed = [item for table in snapshot.tables.values() for item in table.values()]
    scope = Scope.of_items(changed).union(suspects)
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


def reread_for_recount(cfg: ReconcilerConfig, products: list[str], cost: store.ReadCost) -> Snapshot:
    """Every reservation, then the suspect products: the second read a recount must agree with."""
    snapshot = Snapshot()
    table = cfg.table_of(RESERVATION.table)
    snapshot.add(
        RESERVATION.table,
        (i for i in store.scan_items(table, cost, RESERVATION.table) if RESERVATION.id_of(i["pk"], i["sk"])),
    )
    keys = [PRODUCT.key(product_id) for product_id in products]
    snapshot.add(PRODUCT.table, store.batch_get(cfg.table_of(PRODUCT.table), keys, cost, PRODUCT.table))
    return snapshot


def decide(
    cfg: ReconcilerConfig, snapshot: Snapshot, scope: Scope | None, cost: store.ReadCost, only: str | None = None
) -> tuple[Findings, list[Correction], int]:
    """Compare, confirm what needs a correction on a second read, recount confirmed counters (full sweep), and
    hold back saga repairs on products being recounted. Returns the findings, the corrections to send, and how
    many found corrections a second read did not confirm (checked again next pass)."""
    findings = compare(snapshot, scope, corrections=cfg.corrections, only=only)
    # Only corrections need their sources read again: a republish is harmless if the source moved meanwhile.
    corrections = (
        confirmed_corrections(findings, reread_sources(cfg, snapshot, to_confirm(findings), cost))
        if findings.corrections
        else []
    )
    unconfirmed = len(findings.corrections) - len(corrections)
    if findings.recount_suspects and cfg.corrections:
        suspects = [s.product_id for s in findings.recount_suspects]
        confirmed = confirmed_recounts(findings.recount_suspects, reread_for_recount(cfg, suspects, cost))
        unconfirmed += len(findings.recount_suspects) - len(confirmed)
        corrections = defer_saga_repairs(findings, corrections, {s.product_id for s in confirmed}, snapshot)
        for suspect in confirmed:
            corrections.append(recount(suspect))
            if (case := recount_needs_a_person(suspect)) is not None:
                findings.parked.append(case)
    return findings, corrections, unconfirmed


def sweep_header(cfg: ReconcilerConfig) -> health.SweepHeader | None:
    """The full sweep's header; an unreadable one is logged and taken as none: the sweep's state never stops a pass."""
    try:
        return store.load_sweep_header(cfg.state_table)
    except health.InvalidSweepHeader as exc:
        logger.error("sweep header unreadable; its metrics report no sweep", extra={"reason": str(exc)})
        return None


def reconcile(mode: Mode = Mode.INCREMENTAL, backfill: str | None = None) -> Report:
    """One pass. `backfill`: a full sweep of that projection only, its repairs marked as a backfill; it leaves
    the watermark, the suspects and the DLQs to the scheduled passes."""
    if backfill is not None:
        mode = Mode.FULL
    cfg = config()
    bus_name = settings().event_bus_name
    sender = EventSender(aws.events(), max_attempts=settings().put_events_max_attempts)
    started_at = datetime.now(UTC)
    state = store.load_state(cfg.state_table)
    plan = plan_pass(mode, state, cfg.overlap)
    report = Report(mode=plan.mode.value, mode_reason=plan.reason)
    report.window_from = plan.since.isoformat() if plan.since else None
    cost = store.ReadCost()
    scope: Scope | None = None  # a full sweep compares every entity it read
    if plan.mode is Mode.FULL:
        snapshot = full_snapshot(cfg, cost)
    else:
        snapshot, scope = incremental_snapshot(cfg, plan, state.suspects, cost)
    report.checked = snapshot.checked
    findings, corrections, unconfirmed = decide(cfg, snapshot, scope, cost, backfill)
    report.items_read = cost.total_items
    report.items_read_by_table = dict(cost.items)
    report.read_requests = cost.requests
    report.read_capacity_units = cost.capacity_units
    report.found = findings.count_by_projection()
    report.differences = findings.count_by_difference()
    report.recounts = sum(1 for c in corrections if c.finding.projection == RESERVED_COUNTER)
    report.corrections_unconfirmed = unconfirmed
    report.corrections_disabled = len(findings.unrepaired)
    report.deferred = len(findings.deferred)
    for finding in findings.unrepaired:
        logger.warning("difference left unrepaired (corrections disabled)", extra=asdict(finding))
    repair(findings, corrections, sender, bus_name, report, backfill)
    park(findings, cfg, report)
    if backfill is not None:
        logger.info("backfill pass", extra={"projection": backfill, "report": asdict(report)})
        return report
    # Only now, with every comparison made and every repair sent, may the watermark move: a pass that raised
    # before this line leaves it where it was, and the next pass reads the same window again.
    incremental = plan.mode is Mode.INCREMENTAL
    saved = health.stamped(
        next_state(state, started_at, findings), state, incremental=incremental, now=datetime.now(UTC)
    )
    report.suspects = len(saved.suspects)
    try:
        store.save_state(cfg.state_table, saved, expected_version=state.version)
        report.watermark, report.watermark_advanced = (saved.watermark.isoformat() if saved.watermark else None), True
    except store.ConcurrentPass as exc:
        logger.warning("another pass saved its state first; watermark left to it", extra={"reason": str(exc)})
    drain_dead_letters(cfg, sender, bus_name, report)
    metrics.add_metric(name="ReconcilerRepairs", unit=MetricUnit.Count, value=report.republished + report.corrections)
    metrics.add_metric(name="ReconcilerCorrections", unit=MetricUnit.Count, value=report.corrections)
    metrics.add_metric(name="AnomaliesParked", unit=MetricUnit.Count, value=report.parked_for_a_person)
    metrics.add_metric(name="PoisonMessagesParked", unit=MetricUnit.Count, value=report.dead_letters["poison"])
    metrics.add_metric(name="DeadLettersRedriven", unit=MetricUnit.Count, value=report.dead_letters["event"])
    metrics.add_metric(name="ReconcilerItemsRead", unit=MetricUnit.Count, value=report.items_read)
    # The heartbeat and the sweep's progress (template.yaml alarms on both; a pass that raised sends neither).
    completed = incremental and report.watermark_advanced
    for metric in health.pass_metrics(state, sweep_header(cfg), datetime.now(UTC), completed=completed):
        metrics.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
    logger.info("reconciliation pass", extra={"report": asdict(report)})
    return report


@traced
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Its schedule sends a scheduled event (or the operator `{"mode": "full"}`); anything else is miswired.
    if not isinstance(event, dict) or "Records" in event or "requestContext" in event:
        raise UnexpectedEventError("an EventBridge scheduled event", event)
    invocation = parse_invocation(event)
    return asdict(reconcile(invocation.mode, invocation.projection))

"""Scheduled reconciler: repair lagging projections from the source of truth, then drain the DLQs.

Every 5 minutes an incremental pass compares only the entities written since the watermark (read from the
source tables' changed-since index) and those still lagging last time; once a day, or when invoked with
`{"mode": "full"}`, a full sweep compares every entity. Both use the same rules (domain.find_lagging).
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
from converge.envelope import event_from_item, parse_eventbridge_json
from converge.errors import MalformedEventError, UnknownEventError
from converge.observability import logger, metrics, traced
from converge.settings import settings

import store
from domain import (
    DeadLetterKind,
    Findings,
    Mode,
    Plan,
    Scope,
    Snapshot,
    find_lagging,
    judge_dead_letter,
    neighbourhood_keys,
    next_state,
    plan_pass,
    requested_mode,
)


@dataclass(frozen=True)
class ReconcilerConfig:
    orders_table: str
    inventory_table: str
    notifications_table: str
    # DLQ url -> the inbox its valid messages are redriven to ("" = back onto the bus).
    dead_letter_queues: dict[str, str]
    state_table: str
    overlap: timedelta

    def table_of(self, role: str) -> str:
        return {"orders": self.orders_table, "inventory": self.inventory_table}.get(role, self.notifications_table)


def config() -> ReconcilerConfig:
    """Read per pass (not cached): cheap, and always the function's current environment."""
    env = os.environ
    return ReconcilerConfig(
        orders_table=env["ORDERS_TABLE_NAME"],
        inventory_table=env["INVENTORY_TABLE_NAME"],
        notifications_table=env["NOTIFICATIONS_TABLE_NAME"],
        dead_letter_queues={
            env["ORDERS_DLQ_URL"]: env["ORDERS_INBOX_URL"],
            env["INVENTORY_DLQ_URL"]: env["INVENTORY_INBOX_URL"],
            env["NOTIFICATIONS_DLQ_URL"]: env["NOTIFICATIONS_INBOX_URL"],
            env["DELIVERY_DLQ_URL"]: "",
        },
        state_table=env["STATE_TABLE_NAME"],
        overlap=timedelta(seconds=int(env.get("WATERMARK_OVERLAP_SECONDS", "120"))),
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
    suspects: int = 0  # entities still lagging, checked again next pass
    found: dict[str, int] = field(default_factory=dict)
    republished: int = 0
    republish_failures: int = 0
    anomalies: list[str] = field(default_factory=list)
    dead_letters: dict[str, int] = field(
        default_factory=lambda: {**{kind.value: 0 for kind in DeadLetterKind}, "already_parked": 0},
    )


def repair(findings: Findings, sender: EventSender, bus_name: str, report: Report) -> None:
    entries = []
    for found in findings.repairs:
        try:
            event = event_from_item(found.source_item)
        except MalformedEventError as exc:
            # A source item that is not a valid event cannot be republished; one must not stop the others.
            logger.error("cannot republish", extra={"entity_id": found.entity_id, "reason": str(exc)})
            report.anomalies.append(f"{found.entity_id}: {exc}")
            continue
        if event is None:  # a source item without event_type cannot lag: nothing was ever published for it
            continue
        logger.info(
            "republishing",
            extra={"projection": found.projection.value, "entity_id": found.entity_id, "reason": found.reason},
        )
        entries.append((event.metadata.event_id, to_entry(event, bus_name)))
    # The same source can repair two projections (an order both unreserved and un-notified): send it once.
    unique = list(dict(entries).items())
    result = sender.send(unique)
    report.republished = result.sent
    report.republish_failures = len(result.failed or [])


def drain_dead_letters(cfg: ReconcilerConfig, sender: EventSender, bus_name: str, report: Report) -> None:
    for dlq_url, inbox_url in cfg.dead_letter_queues.items():
        parked: list[store.DeadLetter] = []
        for letter in store.receive_dead_letters(dlq_url):
            body: dict[str, Any] | None = None
            parse_error: str | None = None
            try:
                decoded = json.loads(letter.body)
                body = decoded if isinstance(decoded, dict) else None
                if body is None or "DDBStreamBatchInfo" not in body:
                    parse_eventbridge_json(letter.body)
            except (ValueError, MalformedEventError, UnknownEventError) as exc:
                parse_error = str(exc)
            verdict = judge_dead_letter(body, parse_error, letter.redrives)
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
            report.dead_letters[verdict.kind.value] += 1
            if verdict.kind is DeadLetterKind.STREAM_BATCH:
                logger.info("stream batch failure acknowledged", extra=extra)
                store.acknowledge(letter)
            elif inbox_url:
                logger.info("redriving dead letter", extra=extra)
                store.redrive(letter, inbox_url)
            else:
                event = parse_eventbridge_json(letter.body)
                result = sender.send([(letter.message_id, to_entry(event, bus_name))])
                if not result.failed:
                    logger.info("redelivered dead letter through the bus", extra=extra)
                    store.acknowledge(letter)
        # Only after the queue is drained: released earlier, this pass would receive them again.
        store.release(parked)


def full_snapshot(cfg: ReconcilerConfig, cost: store.ReadCost) -> Snapshot:
    return Snapshot.from_items(
        inventory=store.scan_items(cfg.inventory_table, cost, "inventory"),
        orders=store.scan_items(cfg.orders_table, cost, "orders"),
        notifications=store.scan_items(cfg.notifications_table, cost, "notifications"),
    )


def incremental_snapshot(cfg: ReconcilerConfig, plan: Plan, suspects: Scope, cost: store.ReadCost) -> Snapshot:
    """The entities changed since the plan's start and the suspects, each with its whole neighbourhood."""
    if plan.since is None:
        raise ValueError("an incremental plan has a start")
    changed = {
        role: list(store.changed_since(cfg.table_of(role), plan.since, cost, role)) for role in ("orders", "inventory")
    }
    scope = Scope.of_items(changed["orders"] + changed["inventory"]).union(suspects)
    missing = neighbourhood_keys(scope, already_read=changed)
    fetched = {role: store.batch_get(cfg.table_of(role), keys, cost, role) for role, keys in missing.items()}
    return Snapshot.from_items(
        inventory=changed["inventory"] + fetched["inventory"],
        orders=changed["orders"] + fetched["orders"],
        notifications=fetched["notifications"],
    )


def reconcile(mode: Mode = Mode.INCREMENTAL) -> Report:
    cfg = config()
    bus_name = settings().event_bus_name
    sender = EventSender(aws.events(), max_attempts=settings().put_events_max_attempts)
    started_at = datetime.now(UTC)
    state = store.load_state(cfg.state_table)
    plan = plan_pass(mode, state, cfg.overlap)
    report = Report(mode=plan.mode.value, mode_reason=plan.reason)
    report.window_from = plan.since.isoformat() if plan.since else None
    cost = store.ReadCost()
    if plan.mode is Mode.FULL:
        snapshot = full_snapshot(cfg, cost)
    else:
        snapshot = incremental_snapshot(cfg, plan, state.suspects, cost)
    report.checked = len(snapshot.products) + len(snapshot.orders)
    report.items_read = cost.total_items
    report.items_read_by_table = dict(cost.items)
    report.read_requests = cost.requests
    report.read_capacity_units = cost.capacity_units
    findings = find_lagging(snapshot)
    report.found = findings.count_by_projection()
    report.anomalies = [f"{a.entity_id}: {a.reason}" for a in findings.anomalies]
    for anomaly in findings.anomalies:
        logger.error("projection anomaly", extra={"entity_id": anomaly.entity_id, "reason": anomaly.reason})
    repair(findings, sender, bus_name, report)
    # Only now, with every comparison made and every repair sent, may the watermark move: a pass that raised
    # before this line leaves it where it was, and the next pass reads the same window again.
    saved = next_state(state, started_at, findings)
    report.suspects = len(saved.suspects)
    try:
        store.save_state(cfg.state_table, saved, expected_version=state.version)
        report.watermark, report.watermark_advanced = (saved.watermark.isoformat() if saved.watermark else None), True
    except store.ConcurrentPass as exc:
        logger.warning("another pass saved its state first; watermark left to it", extra={"reason": str(exc)})
    drain_dead_letters(cfg, sender, bus_name, report)
    metrics.add_metric(name="ReconcilerRepairs", unit=MetricUnit.Count, value=report.republished)
    metrics.add_metric(name="PoisonMessagesParked", unit=MetricUnit.Count, value=report.dead_letters["poison"])
    metrics.add_metric(name="DeadLettersRedriven", unit=MetricUnit.Count, value=report.dead_letters["event"])
    metrics.add_metric(name="ReconcilerItemsRead", unit=MetricUnit.Count, value=report.items_read)
    logger.info("reconciliation pass", extra={"report": asdict(report)})
    return report


@traced
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return asdict(reconcile(requested_mode(event)))

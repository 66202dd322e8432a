"""Scheduled reconciler: repair lagging projections from the source of truth, then drain the DLQs."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
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
from domain import DeadLetterKind, Findings, Snapshot, find_lagging, judge_dead_letter


@dataclass(frozen=True)
class ReconcilerConfig:
    orders_table: str
    inventory_table: str
    notifications_table: str
    # DLQ url -> the inbox its valid messages are redriven to ("" = back onto the bus).
    dead_letter_queues: dict[str, str]


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
    )


@dataclass
class Report:
    found: dict[str, int] = field(default_factory=dict)
    republished: int = 0
    republish_failures: int = 0
    anomalies: list[str] = field(default_factory=list)
    dead_letters: dict[str, int] = field(
        default_factory=lambda: {kind.value: 0 for kind in DeadLetterKind},
    )


def repair(findings: Findings, sender: EventSender, bus_name: str, report: Report) -> None:
    entries = []
    for found in findings.repairs:
        event = event_from_item(found.source_item)
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
            report.dead_letters[verdict.kind.value] += 1
            extra = {"queue": dlq_url, "message_id": letter.message_id, "reason": verdict.reason}
            if verdict.kind is DeadLetterKind.POISON:
                logger.warning("poison message parked", extra=extra)
            elif verdict.kind is DeadLetterKind.STREAM_BATCH:
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


def reconcile() -> Report:
    cfg = config()
    bus_name = settings().event_bus_name
    sender = EventSender(aws.events(), max_attempts=settings().put_events_max_attempts)
    report = Report()
    snapshot = Snapshot.from_items(
        inventory=store.scan_items(cfg.inventory_table),
        orders=store.scan_items(cfg.orders_table),
        notifications=store.scan_items(cfg.notifications_table),
    )
    findings = find_lagging(snapshot)
    report.found = findings.count_by_projection()
    report.anomalies = [f"{a.entity_id}: {a.reason}" for a in findings.anomalies]
    for anomaly in findings.anomalies:
        logger.error("projection anomaly", extra={"entity_id": anomaly.entity_id, "reason": anomaly.reason})
    repair(findings, sender, bus_name, report)
    drain_dead_letters(cfg, sender, bus_name, report)
    metrics.add_metric(name="ReconcilerRepairs", unit=MetricUnit.Count, value=report.republished)
    metrics.add_metric(name="PoisonMessagesParked", unit=MetricUnit.Count, value=report.dead_letters["poison"])
    metrics.add_metric(name="DeadLettersRedriven", unit=MetricUnit.Count, value=report.dead_letters["event"])
    logger.info("reconciliation pass", extra={"report": asdict(report)})
    return report


@traced
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return asdict(reconcile())

"""Stream publisher: DynamoDB stream records -> domain events -> PutEvents, with partial batch responses.

Each INSERT/MODIFY record whose NewImage carries an `event_type` becomes one event (built by
`envelope.event_from_item`, so its id is deterministic). Records that are not entity changes (REMOVE, items
without `event_type`) are skipped. A record whose event cannot be built or sent is reported as a batch item
failure: Lambda checkpoints at the lowest failed sequence number and retries from there (bisecting, then
sending the batch's metadata to the OnFailure destination once retries are exhausted). A record whose image
cannot be deserialized (an unknown type descriptor) is such a failure too; the rest of its batch is published.
A batch of anything but DynamoDB stream records raises UnexpectedEventError: nothing in it is published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from converge.bus import EventSender, to_entry
from converge.dynamo import plain
from converge.envelope import event_from_item
from converge.errors import ConvergeError, UnexpectedEventError
from converge.events import Metadata
from converge.observability import logger, metrics


@dataclass
class PublishResult:
    published: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)  # sequence numbers

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq in self.failures]}


STREAM_BATCH = "a DynamoDB stream batch"
# What Powertools' TypeDeserializer raises for an image DynamoDB never writes: an unknown descriptor ({"X": "1"},
# TypeError), no descriptor ({}, IndexError), a number that is not one ({"N": "x"}, decimal's ArithmeticError),
# a descriptor with the wrong value ({"M": 1}, AttributeError; {"L": 1}, TypeError), nesting past the stack.
UNREADABLE_IMAGE = (TypeError, ValueError, LookupError, AttributeError, ArithmeticError, RecursionError)


def _is_stream_record(record: object) -> bool:
    return isinstance(record, dict) and record.get("eventSource") == "aws:dynamodb"


def stream_records(event: DynamoDBStreamEvent) -> list[DynamoDBRecord]:
    """The records of a DynamoDB stream batch; UnexpectedEventError (one line) for any other event.

    For a handler to call instead of `list(event.records)`, which raises KeyError or TypeError on another kind."""
    raw = event.raw_event
    records = raw.get("Records") if isinstance(raw, dict) else None
    if not isinstance(records, list) or not all(_is_stream_record(r) for r in records):
        raise UnexpectedEventError(STREAM_BATCH, raw)
    return list(event.records)


def _story(meta: Metadata) -> dict[str, Any]:
    """What an operator follows a published event by (docs/deploy.md, "Following one entity in the logs")."""
    return {
        "event_type": meta.event_type,
        "entity": meta.entity,
        "entity_id": meta.entity_id,
        "entity_version": meta.entity_version,
        "correlation_id": meta.correlation_id,
    }


def publish_records(
    records: list[DynamoDBRecord],
    sender: EventSender,
    bus_name: str,
    *,
    emit_versions: Mapping[str, int] | None = None,
) -> PublishResult:
    """Translate and send a batch of stream records; returns what was published and what failed.

    Each event is of its type's newest schema version unless `emit_versions` (the function's
    `EMIT_SCHEMA_VERSIONS`) pins the type to the one before."""
    if not all(_is_stream_record(r.raw_event) for r in records):
        # Another source's records (an SQS batch) carry no stream data: skipping them all would drop them silently.
        raise UnexpectedEventError(STREAM_BATCH, {"Records": [r.raw_event for r in records]})
    result = PublishResult()
    entries: list[tuple[str, dict[str, Any]]] = []
    published: dict[str, Metadata] = {}  # sequence -> the event's metadata, for the batch's log line
    for record in records:
        sequence = record.dynamodb.sequence_number if record.dynamodb else None
        if record.dynamodb is None or sequence is None:
            continue
        if record.event_name == DynamoDBRecordEventName.REMOVE:
            result.skipped += 1
            continue
        try:
            image = record.dynamodb.new_image
        except UNREADABLE_IMAGE as exc:
            reason = f"image not readable: {type(exc).__name__}: {exc}"
            logger.error("stream record is not a valid event", extra={"sequence_number": sequence, "reason": reason})
            result.failures.append(sequence)
            continue
        try:
            event = event_from_item(plain(image), emit_versions=emit_versions)
        except ConvergeError as exc:
            logger.error("stream record is not a valid event", extra={"sequence_number": sequence, "reason": str(exc)})
            result.failures.append(sequence)
            continue
        if event is None:
            result.skipped += 1
            continue
        entries.append((sequence, to_entry(event, bus_name)))
        published[sequence] = event.metadata

    report = sender.send(entries)
    assert report.failed is not None
    for failed in report.failed:
        logger.error("event not accepted by the bus", extra={"sequence_number": failed.key, "reason": failed.reason})
        result.failures.append(failed.key)
    result.published = report.sent
    refused = set(result.failures)
    sent = [_story(meta) for sequence, meta in published.items() if sequence not in refused]
    if sent:
        # One line a batch (not a record: the publisher is the hot path), naming each event it put on the bus.
        logger.info("published events", extra={"outcome": "published", "events": sent})
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=report.sent)
    if report.resent:
        metrics.add_metric(name="PutEventsEntriesResent", unit=MetricUnit.Count, value=report.resent)
    if result.failures:
        metrics.add_metric(name="PublishFailures", unit=MetricUnit.Count, value=len(result.failures))
    result.failures.sort(key=int)
    return result

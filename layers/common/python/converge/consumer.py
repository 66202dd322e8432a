"""Inbox consumer scaffold: SQS batch -> typed events -> a route per event type, with partial batch responses.

Routes are data: `{event type: (payload model, handler)}`. The consumer checks that the event carries the
model (else the record is malformed) and calls `handler(payload, event, deps)`, where `deps` are what the
function's entry point built (its stores): the handler never reaches for a global.

Every record ends as one of: applied, skipped (stale or duplicate: the stored version is as new or newer),
or a batch item failure with its reason logged (malformed, unknown, or a failure while applying). Failed
records go back to the inbox and, after the queue's maxReceiveCount, to the service DLQ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any, Generic, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.envelope import parse_eventbridge_json
from converge.errors import MalformedEventError, UnexpectedEventError, UnknownEventError
from converge.events import DomainEvent, EventData
from converge.observability import logger, metrics


class Outcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the stored state is as new or newer: a duplicate or an out-of-order delivery


DepsT = TypeVar("DepsT")
# An inbox route: the payload model the event must carry, and the handler of (payload, event, deps).
Route = tuple[type[EventData], Callable[[Any, DomainEvent, DepsT], Outcome]]
SQS_BATCH = "an SQS batch"
# The project's mark on a backfilled event (the reconciler's sweep for a rebuild), in the event's `resources`;
# EventBridge marks a replayed event with `replay-name`.
BACKFILL_RESOURCE_PREFIX = "converge:backfill/"


def redelivery_of(body: str) -> str | None:
    """The replay's name or the backfill's mark if this inbox body is a replayed or backfilled event, else None."""
    try:
        event = json.loads(body)
    except (TypeError, ValueError):
        return None
    if not isinstance(event, dict):
        return None
    if isinstance(event.get("replay-name"), str):
        return str(event["replay-name"])
    resources = event.get("resources")
    marks = (
        [r for r in resources if isinstance(r, str) and r.startswith(BACKFILL_RESOURCE_PREFIX)]
        if isinstance(resources, list)
        else []
    )
    return marks[0] if marks else None


def _is_sqs_record(record: object) -> bool:
    # What a failure is reported by (messageId) and what is parsed (body): without them it is no SQS record.
    return (
        isinstance(record, dict)
        and record.get("eventSource") == "aws:sqs"
        and isinstance(record.get("messageId"), str)
        and isinstance(record.get("body"), str)
    )


def expect_sqs_batch(event: object) -> dict[str, Any]:
    """The event if it is an SQS batch; otherwise UnexpectedEventError (one line, naming both kinds).

    Powertools' BatchProcessor would answer another kind with a KeyError (a stream record has no messageId), an
    UnexpectedBatchTypeError or a ValueError with a documentation link, from deep inside its own code."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not all(_is_sqs_record(r) for r in records):
        raise UnexpectedEventError(SQS_BATCH, event)
    return event  # type: ignore[return-value]


class InboxConsumer(Generic[DepsT]):
    """Routes inbox records to handlers by event type (routing is data, not an if/elif ladder)."""

    def __init__(
        self, routes: Mapping[str, Route[DepsT]], redelivery_routes: Mapping[str, Route[DepsT]] | None = None
    ) -> None:
        self.routes = dict(routes)
        # Routes for replayed or backfilled events (redelivery_of) that must not repeat a side effect.
        self.redelivery_routes = dict(redelivery_routes or {})
        # All records failing is reported as such (every id listed), not raised as a function error.
        self.processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def _route(self, record: SQSRecord) -> tuple[DomainEvent, Route[DepsT]]:
        try:
            event = parse_eventbridge_json(record.body)
        except RecursionError as exc:  # json's decoder recurses per level: deep nesting is malformed too
            raise MalformedEventError("body is not JSON: nested too deeply to parse") from exc
        route = self.routes.get(event.event_type)
        if event.event_type in self.redelivery_routes and redelivery_of(record.body) is not None:
            route = self.redelivery_routes[event.event_type]
        if route is None:
            raise UnknownEventError(f"{event.event_type} is not consumed here")
        model = route[0]
        if not isinstance(event.data, model):
            raise MalformedEventError(f"{event.event_type} does not carry {model.__name__}")
        return event, route

    def record_handler(self, record: SQSRecord, deps: DepsT) -> Outcome:
        try:
            event, (_, handler) = self._route(record)
        except (MalformedEventError, UnknownEventError) as exc:
            logger.warning(
                "rejected inbox record",
                extra={"message_id": record.message_id, "reason": str(exc), "error": type(exc).__name__},
            )
            metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=1)
            raise
        meta = event.metadata
        # One line per event, applied, skipped or failed, with what an operator follows an entity by (tools.trace,
        # Logs Insights): the entity, its version, the outcome and the correlation id carried from the first write.
        logger.append_keys(
            correlation_id=meta.correlation_id,
            event_id=meta.event_id,
            event_type=meta.event_type,
            entity=meta.entity,
            entity_id=meta.entity_id,
            entity_version=meta.entity_version,
        )
        try:
            try:
                outcome = handler(event.data, event, deps)
            except Exception as exc:
                # Logged here with the event's identity; BatchProcessor turns it into a batch item failure.
                logger.exception("failed to apply event", extra={"outcome": "failed", "reason": str(exc)})
                raise
            if outcome is Outcome.APPLIED:
                metrics.add_metric(name="EventsApplied", unit=MetricUnit.Count, value=1)
                lag_ms = (datetime.now(UTC) - meta.occurred_at).total_seconds() * 1000
                metrics.add_metric(name="ConvergenceLag", unit=MetricUnit.Milliseconds, value=max(lag_ms, 0.0))
                logger.info("applied event", extra={"outcome": "applied", "lag_ms": round(max(lag_ms, 0.0))})
            else:
                metrics.add_metric(name="EventsSkippedStale", unit=MetricUnit.Count, value=1)
                logger.info("skipped stale event", extra={"outcome": "skipped"})
        finally:
            logger.remove_keys(["correlation_id", "event_id", "event_type", "entity", "entity_id", "entity_version"])
        return outcome

    def handle(self, event: dict[str, Any], context: LambdaContext, deps: DepsT) -> PartialItemFailureResponse:
        """Process an SQS batch with `deps` handed to every route; the partial batch response."""
        return process_partial_response(
            event=expect_sqs_batch(event),
            record_handler=partial(self.record_handler, deps=deps),
            processor=self.processor,
            context=context,
        )

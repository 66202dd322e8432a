"""Typed failures shared by every service; each maps to one HTTP status or to a batch item failure.

A service's own errors subclass these. The HTTP resolver (converge.http) answers every error that has an
`http_status` in the project's shape, `{"message": str(error), **error.http_body()}`; no service registers its
own exception handler. In an inbox consumer any error is a batch item failure (retried, then dead-lettered).
"""

from __future__ import annotations

from enum import Enum
from http import HTTPStatus
from typing import Any, ClassVar


class ConvergeError(Exception):
    """Base of the project's own errors. `http_status` None: not a client's fault (a 500 if raised in an API)."""

    http_status: ClassVar[HTTPStatus | None] = None

    def http_body(self) -> dict[str, Any]:
        """What the HTTP answer's body carries besides its `message`."""
        return {}


class NotFoundError(ConvergeError):
    """The addressed resource does not exist, or the caller may not know it does (404)."""

    http_status = HTTPStatus.NOT_FOUND


class ConflictError(ConvergeError):
    """The request conflicts with the resource's state (409)."""

    http_status = HTTPStatus.CONFLICT


class ConcurrentUpdateError(ConflictError):
    """The entity changed (or vanished, or appeared) between our read and our conditional write.

    A use case decides again on fresh state; an API answers 409 if it still loses, a consumer fails the record
    (SQS retries it)."""


class TransitionNotAllowedError(ConflictError):
    """The entity's status does not allow the requested change (409 naming the status, as `<entity>_status`)."""

    def __init__(self, entity: str, entity_id: str, current: Enum, target: Enum) -> None:
        super().__init__(f"{entity} {entity_id} is {current.value} and cannot become {target.value}")
        self.entity, self.entity_id, self.current, self.target = entity, entity_id, current, target

    def http_body(self) -> dict[str, Any]:
        return {f"{self.entity}_status": self.current.value}


class UnprocessableError(ConvergeError):
    """A well-formed request the resource's state makes meaningless (422), e.g. a reused idempotency key."""

    http_status = HTTPStatus.UNPROCESSABLE_ENTITY


class SettingsError(ConvergeError):
    """A function's environment does not hold what it needs (a missing table name): fails its first invocation."""


class MalformedEventError(ConvergeError):
    """An inbound record is not a valid event (not JSON, missing metadata, wrong schema version, ...)."""


class UnknownEventError(ConvergeError):
    """An inbound event has a detail-type this consumer does not handle."""


class UnexpectedEventError(ConvergeError):
    """A function was invoked with another kind of event than its trigger delivers (a miswired trigger, a manual
    invoke with the wrong fixture). Nothing in it is processed: raising makes Lambda count an error (the alarm
    fires) and keeps an event source's messages for a retry or its DLQ, where a "handled" answer would drop them.
    The message is one line: the kind expected, then the kind received."""

    def __init__(self, expected: str, event: object) -> None:
        super().__init__(f"expected {expected}, got {kind_of(event)}")


# The event source of a batch's records -> what to call the batch.
_BATCH_KINDS = {
    "aws:sqs": "an SQS batch",
    "aws:dynamodb": "a DynamoDB stream batch",
    "aws:kinesis": "a Kinesis batch",
    "aws:sns": "an SNS notification",
    "aws:s3": "an S3 notification",
}


def kind_of(event: object) -> str:
    """What an event looks like, named as an AWS user names it (for UnexpectedEventError's message)."""
    if not isinstance(event, dict):
        return {list: "a JSON list", str: "a JSON string", type(None): "null", bool: "a JSON boolean"}.get(
            type(event), "a JSON number"
        )
    records = event.get("Records")
    if isinstance(records, list):
        first = records[0] if records else {}
        source = (first.get("eventSource") or first.get("EventSource")) if isinstance(first, dict) else None
        return _BATCH_KINDS.get(str(source), "a batch of records from an unknown source")
    context = event.get("requestContext")
    if isinstance(context, dict):
        if "elb" in context:
            return "an ALB request"
        if event.get("version") == "2.0":
            return "an API Gateway HTTP API (payload format 2.0) request"
        return "an API Gateway REST API (payload format 1.0) request"
    if "detail-type" in event:
        return f"an EventBridge event ({str(event['detail-type'])[:64]})"
    keys = ", ".join(sorted(str(k)[:32] for k in event)[:5])
    return f"an object with keys [{keys}]" if keys else "an empty object"

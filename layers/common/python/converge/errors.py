"""Typed failures shared by every service; each maps to one HTTP status or to a batch item failure."""

from __future__ import annotations


class ConvergeError(Exception):
    """Base of the project's own errors."""


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

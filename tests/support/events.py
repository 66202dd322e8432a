"""Builders of AWS-shaped events for handler tests (HTTP API v2, SQS-wrapped EventBridge, DynamoDB streams)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from converge.bus import to_entry
from converge.contracts import EVENT_TYPES
from converge.dynamo import to_item
from converge.envelope import event_from_item
from converge.events import DomainEvent

ACCOUNT = "123456789012"
REGION = "us-east-1"


DEFAULT_CALLER = "cust-1"


def jwt_authorizer_context(subject: str, *, admin: bool = False) -> dict[str, Any]:
    """`requestContext.authorizer.jwt` as API Gateway renders a Cognito token's claims: every value a string,
    a list as "[a b]"."""
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "sub": subject,
        "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_converge",
        "aud": "converge-test-client",
        "token_use": "id",
        "iat": str(now),
        "exp": str(now + 3600),
    }
    if admin:
        claims["cognito:groups"] = "[admin]"
    return {"claims": claims, "scopes": None}


def http_event(
    method: str,
    path: str,
    *,
    route: str | None = None,
    path_parameters: dict[str, str] | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw_body: str | None = None,
    caller: str | None = DEFAULT_CALLER,
    admin: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) request, as the JWT authorizer passes it on: with the verified
    claims of `caller` (a customer; with `admin`, a member of the admin group), or none if `caller` is None."""
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {route or path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "localapi",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {route or path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if caller is not None:
        event["requestContext"]["authorizer"] = {"jwt": jwt_authorizer_context(caller, admin=admin)}
    if path_parameters:
        event["pathParameters"] = path_parameters
    if text is not None:
        event["body"] = text
    return event


def domain_event(
    event_type: str, data: dict[str, Any], *, version: int = 1, correlation_id: str = "corr-test"
) -> DomainEvent:
    """A valid event of `event_type` whose entity state is `data` at `version`."""
    item = {
        **data,
        "event_type": event_type,
        "version": version,
        "correlation_id": correlation_id,
        "updated_at": datetime.now(UTC).isoformat(),
    }
    event = event_from_item(item)
    assert event is not None
    return event


def eventbridge_event(event: DomainEvent, bus_name: str = "converge-bus") -> dict[str, Any]:
    """The whole EventBridge event a rule's SQS target delivers for `event`."""
    entry = to_entry(event, bus_name)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": ACCOUNT,
        "time": event.metadata.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": json.loads(entry["Detail"]),
    }


def sqs_event(bodies: list[str], queue: str = "inbox") -> dict[str, Any]:
    """An SQS batch as Lambda's event source mapping delivers it."""
    records = []
    for i, body in enumerate(bodies):
        records.append(
            {
                "messageId": f"msg-{i}-{hashlib.sha1(body.encode()).hexdigest()[:8]}",
                "receiptHandle": f"rh-{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1764320000000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1764320000001",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def sqs_event_of(*events: DomainEvent) -> dict[str, Any]:
    return sqs_event([json.dumps(eventbridge_event(e)) for e in events])


def stream_record(
    new_image: dict[str, Any] | None,
    old_image: dict[str, Any] | None = None,
    *,
    sequence_number: int = 100,
    table_arn: str = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/test",
) -> dict[str, Any]:
    """One DynamoDB stream record (NEW_AND_OLD_IMAGES) as Lambda delivers it."""
    image = new_image or old_image or {}
    event_name = "REMOVE" if new_image is None else ("MODIFY" if old_image else "INSERT")
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1764320000,
        "Keys": to_item({"pk": image["pk"], "sk": image["sk"]}),
        "SequenceNumber": str(sequence_number),
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new_image is not None:
        dynamodb["NewImage"] = to_item(new_image)
    if old_image is not None:
        dynamodb["OldImage"] = to_item(old_image)
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": dynamodb,
        "eventSourceARN": f"{table_arn}/stream/2026-11-28T00:00:00.000",
    }


def known_event_types() -> list[str]:
    return sorted(EVENT_TYPES)

"""AWS clients, created lazily and once per container (not at import time).

The clients come from one botocore session, not from boto3: a low-level client is the same either way, but
importing boto3 also imports s3transfer and the resource layer (tens of milliseconds of a cold start), and one
session lets a second and third client reuse the first one's loaded endpoint rules and partitions.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.session import Session
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

# Creating clients from one shared session is not thread-safe.
_lock = threading.Lock()


@cache
def _session() -> Session:
    from botocore.session import Session  # deferred: a handler that never calls AWS does not pay for it

    return Session()


@cache
def _client(service: str) -> Any:
    with _lock:
        return _session().create_client(service)


def dynamodb() -> DynamoDBClient:
    return _client("dynamodb")  # type: ignore[no-any-return]


def events() -> EventBridgeClient:
    return _client("events")  # type: ignore[no-any-return]


def sqs() -> SQSClient:
    return _client("sqs")  # type: ignore[no-any-return]


def stepfunctions() -> Any:
    return _client("stepfunctions")


def reset_clients() -> None:
    """Forget cached clients and their session (tests start a fresh moto backend; localcloud swaps endpoints)."""
    _client.cache_clear()
    _session.cache_clear()

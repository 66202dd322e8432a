"""AWS clients, created lazily and once per container (not at import time)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient


@cache
def _client(service: str) -> Any:
    import boto3  # deferred: a handler that never calls AWS does not pay for it

    return boto3.session.Session().client(service)  # type: ignore[call-overload]


def dynamodb() -> DynamoDBClient:
    return _client("dynamodb")  # type: ignore[no-any-return]


def events() -> EventBridgeClient:
    return _client("events")  # type: ignore[no-any-return]


def sqs() -> SQSClient:
    return _client("sqs")  # type: ignore[no-any-return]


def reset_clients() -> None:
    """Forget cached clients (tests start a fresh moto backend; localcloud swaps endpoints)."""
    _client.cache_clear()

"""DynamoDB item helpers: (de)serialisation and versioned, conditional writes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """Python dict -> DynamoDB attribute map (None values are left out)."""
    return {k: _serializer.serialize(v) for k, v in data.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute map -> Python dict with ints instead of Decimals."""
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def plain(value: Any) -> Any:
    """Decimals (as boto3 and Powertools deserialise numbers) -> int/float, recursively."""
    return _plain(value)


def is_conditional_check_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def cancellation_codes(exc: ClientError) -> list[str]:
    """The per-item codes of a TransactionCanceledException ('None' for items that were fine)."""
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code", "None")) for r in reasons]


def put_if_newer(table: str, item: dict[str, Any], *, key_attr: str = "pk") -> bool:
    """Write `item` unless the stored copy has the same or a newer `version`.

    Returns True if written, False if the stored copy was as new or newer (a stale or duplicate event).
    One request, no read: the version condition is evaluated by DynamoDB.
    """
    from converge import aws

    try:
        aws.dynamodb().put_item(
            TableName=table,
            Item=to_item(item),
            ConditionExpression="attribute_not_exists(#pk) OR #version < :version",
            ExpressionAttributeNames={"#pk": key_attr, "#version": "version"},
            ExpressionAttributeValues={":version": {"N": str(int(item["version"]))}},
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            return False
        raise
    return True

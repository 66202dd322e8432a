"""DynamoDB item helpers: (de)serialisation and versioned, conditional writes."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer


@cache
def _codec() -> tuple[TypeSerializer, TypeDeserializer]:
    # Importing boto3.dynamodb.types imports all of boto3; functions that never (de)serialise items (the stream
    # publisher reads Powertools-deserialised images) skip it.
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


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
    serializer = _codec()[0]
    return {k: serializer.serialize(v) for k, v in data.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute map -> Python dict with ints instead of Decimals."""
    deserializer = _codec()[1]
    return {k: _plain(deserializer.deserialize(v)) for k, v in item.items()}


def plain(value: Any) -> Any:
    """Decimals (as boto3 and Powertools deserialise numbers) -> int/float, recursively."""
    return _plain(value)


def is_conditional_check_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def cancellation_codes(exc: ClientError) -> list[str]:
    """The per-item codes of a TransactionCanceledException ('None' for items that were fine)."""
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code", "None")) for r in reasons]


def put_if_absent(table: str, attributes: dict[str, Any], *, key_attr: str = "pk") -> bool:
    """Create an item (a DynamoDB attribute map, see `to_item`) unless its key exists; True if created.

    The key is the idempotency record: a retried or duplicated write creates nothing twice.
    """
    from converge import aws

    try:
        aws.dynamodb().put_item(
            TableName=table,
            Item=attributes,
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": key_attr},
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            return False
        raise
    return True


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

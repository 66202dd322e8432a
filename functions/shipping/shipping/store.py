"""ShipmentsTable adapter: conditional writes and reads, with ClientErrors turned into domain terms."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from converge import aws
from converge.dynamo import from_item, is_conditional_check_failure, put_if_absent, to_item
from converge.reconcile_index import BUCKET_ATTRIBUTE, bucket_of
from converge.settings import settings
from shipping.domain import ConcurrentUpdateError, Shipment

SORT_KEY = "SHIPMENT"


def _pk(order_id: str) -> str:
    return f"SHIPMENT#{order_id}"


def _key(order_id: str) -> dict[str, Any]:
    return to_item({"pk": _pk(order_id), "sk": SORT_KEY})


def _table() -> str:
    return settings().table_name


def _shipment(item: dict[str, Any]) -> Shipment:
    return Shipment.model_validate(from_item(item))


def _attributes(shipment: Shipment) -> dict[str, Any]:
    """The item's attributes besides its key: the state plus the reconciler's changed-since bucket."""
    return {**shipment.state(), BUCKET_ATTRIBUTE: bucket_of(_pk(shipment.order_id))}


def get(order_id: str) -> Shipment | None:
    response = aws.dynamodb().get_item(TableName=_table(), Key=_key(order_id), ConsistentRead=True)
    item = response.get("Item")
    return _shipment(item) if item else None


def create(shipment: Shipment) -> bool:
    """Store a new shipment unless one exists for its order (the key is the idempotency record); True if created."""
    return put_if_absent(_table(), {**_key(shipment.order_id), **to_item(_attributes(shipment))})


def replace(current: Shipment, updated: Shipment) -> Shipment:
    """Write `updated` over `current`, conditional on the stored status and version still being `current`'s.

    One UpdateItem (the API may not put items): every state attribute is set, and those `updated` no longer
    has (a reason) are removed. ConcurrentUpdateError if the shipment changed (or vanished) since it was read.
    """
    attributes = _attributes(updated)
    names = {f"#a{i}": name for i, name in enumerate(attributes)}
    values = {f":a{i}": value for i, value in enumerate(attributes.values())}
    expression = "SET " + ", ".join(f"{name} = :{name[1:]}" for name in names)
    removed = sorted(set(_attributes(current)) - set(attributes))
    if removed:
        names.update({f"#r{i}": name for i, name in enumerate(removed)})
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
    try:
        response = aws.dynamodb().update_item(
            TableName=_table(),
            Key=_key(current.order_id),
            UpdateExpression=expression,
            ConditionExpression="#status = :expected_status AND #version = :expected_version",
            ExpressionAttributeNames={**names, "#status": "status", "#version": "version"},
            ExpressionAttributeValues=to_item(
                {**values, ":expected_status": current.status.value, ":expected_version": current.version}
            ),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            raise ConcurrentUpdateError(f"shipment {current.order_id} changed since it was read") from exc
        raise
    return _shipment(response["Attributes"])

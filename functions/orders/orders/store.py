"""OrdersTable adapter: conditional writes and reads, with ClientErrors turned into domain terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from botocore.exceptions import ClientError

from converge import aws
from converge.dynamo import from_item, is_conditional_check_failure, to_item
from converge.events import ORDER_EVENT_BY_STATUS, OrderStatus
from converge.reconcile_index import BUCKET_ATTRIBUTE, bucket_of
from converge.settings import settings
from orders.domain import ConcurrentUpdateError, Order, marks_confirmed, sources_of

SORT_KEY = "ORDER"


def _pk(order_id: str) -> str:
    return f"ORDER#{order_id}"


def _key(order_id: str) -> dict[str, Any]:
    return to_item({"pk": _pk(order_id), "sk": SORT_KEY})


def _table() -> str:
    return settings().table_name


def _order(item: dict[str, Any]) -> Order:
    return Order.model_validate(from_item(item))


def create(order: Order) -> Order | None:
    """Store a new order; if one with this id exists, nothing is written and the stored order is returned.

    One request: the condition makes the put the idempotency record, and on failure DynamoDB hands back the
    stored item (ReturnValuesOnConditionCheckFailure), so a replay needs no extra read.
    """
    try:
        aws.dynamodb().put_item(
            TableName=_table(),
            Item={
                **_key(order.order_id),
                **to_item(order.state()),
                # The reconciler's changed-since index (converge.reconcile_index).
                **to_item({BUCKET_ATTRIBUTE: bucket_of(_pk(order.order_id))}),
            },
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if not is_conditional_check_failure(exc):
            raise
        # botocore's error type does not declare the item ReturnValuesOnConditionCheckFailure adds.
        stored = cast(dict[str, Any], exc.response).get("Item")
        return _order(stored) if stored else get(order.order_id)
    return None


def get(order_id: str) -> Order | None:
    response = aws.dynamodb().get_item(TableName=_table(), Key=_key(order_id), ConsistentRead=True)
    item = response.get("Item")
    return _order(item) if item else None


def replace_state(current: Order, updated: Order) -> Order:
    """Write `updated` over `current`, conditional on the stored status and version still being `current`'s.

    ConcurrentUpdateError if the order changed (or vanished) since it was read.
    """
    sets = [
        "#status = :status",
        "#version = :version",
        "event_type = :event_type",
        "correlation_id = :correlation_id",
        "updated_at = :updated_at",
        "recon_bucket = :recon_bucket",
    ]
    values: dict[str, Any] = {
        ":status": updated.status.value,
        ":version": updated.version,
        ":event_type": updated.event_type,
        ":correlation_id": updated.correlation_id,
        ":updated_at": updated.updated_at,
        ":recon_bucket": bucket_of(_pk(current.order_id)),
        ":expected_status": current.status.value,
        ":expected_version": current.version,
    }
    # A transition never clears a reason nor forgets a confirmation: only what it sets is written.
    if updated.reason is not None:
        sets.append("reason = :reason")
        values[":reason"] = updated.reason
    if updated.confirmed:
        sets.append("confirmed = :confirmed")
        values[":confirmed"] = True
    try:
        response = aws.dynamodb().update_item(
            TableName=_table(),
            Key=_key(current.order_id),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="#status = :expected_status AND #version = :expected_version",
            ExpressionAttributeNames={"#status": "status", "#version": "version"},
            ExpressionAttributeValues=to_item(values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            raise ConcurrentUpdateError(f"order {current.order_id} changed since it was read") from exc
        raise
    return _order(response["Attributes"])


def record_outcome(
    order_id: str,
    target: OrderStatus,
    *,
    correlation_id: str,
    at: str,
    reason: str | None = None,
    shortages: Sequence[str] = (),
) -> bool:
    """Move the order to `target` if its status allows it; False (nothing written) if not or if it is missing.

    No read: one UpdateItem whose condition is "status is one the machine lets move to `target`". A missing
    item fails that condition too, so the write never creates an order.
    """
    sources = sorted(status.value for status in sources_of(target))
    placeholders = {f":from{i}": status for i, status in enumerate(sources)}
    sets = [
        "#status = :status",
        "#version = #version + :one",
        "event_type = :event_type",
        "correlation_id = :correlation_id",
        "updated_at = :updated_at",
        "recon_bucket = :recon_bucket",
    ]
    values: dict[str, Any] = {
        ":status": target.value,
        ":one": 1,
        ":event_type": ORDER_EVENT_BY_STATUS[target],
        ":correlation_id": correlation_id,
        ":updated_at": at,
        ":recon_bucket": bucket_of(_pk(order_id)),
        **placeholders,
    }
    if reason is not None:
        sets.append("reason = :reason")
        values[":reason"] = reason
    if shortages:
        sets.append("shortages = :shortages")
        values[":shortages"] = list(shortages)
    if marks_confirmed(target):
        sets.append("confirmed = :confirmed")
        values[":confirmed"] = True
    try:
        aws.dynamodb().update_item(
            TableName=_table(),
            Key=_key(order_id),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=f"#status IN ({', '.join(placeholders)})",
            ExpressionAttributeNames={"#status": "status", "#version": "version"},
            ExpressionAttributeValues=to_item(values),
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            return False
        raise
    return True

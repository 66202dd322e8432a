"""The NotificationsTable adapter: version-conditional writes, idempotent puts, and reads in domain terms.

Every write carries a condition, so a duplicate or out-of-order delivery changes nothing; a failed condition
is an answer ("already there", "stale"), not an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from converge import aws
from converge.dynamo import from_item, is_conditional_check_failure, put_if_absent, put_if_newer, to_item
from converge.projections import CUSTOMER_PREFIX, NOTIFICATION_SK_PREFIX
from notifications.domain import (
    Availability,
    Notification,
    OrderOutcome,
    StoredAvailability,
    Watch,
    availability_key,
    customer_pk,
    watch_pk,
)


def _key(pk: str, sk: str) -> dict[str, Any]:
    return to_item({"pk": pk, "sk": sk})


def _stored_availability(attributes: dict[str, Any]) -> StoredAvailability:
    item = from_item(attributes)
    previous = item.get("previous_available")
    return StoredAvailability(
        availability=Availability.from_attributes(item),
        previous_available=None if previous is None else int(previous),
    )


class NotificationStore:
    """The read models of one NotificationsTable, built by the entry point from the function's settings."""

    def __init__(self, table_name: str) -> None:
        self.name = table_name

    def write_availability(self, availability: Availability) -> tuple[bool, StoredAvailability]:
        """Apply `availability` unless the stored version is the same or newer; one request, no read.

        Returns (written, stored state at the stored version). The item keeps `previous_available` (what it
        held before this version), so a retried delivery whose fan-out failed after the write can still tell that
        this version was a back-in-stock transition. A PutItem would lose it: it replaces the whole item.
        """
        pk, sk = availability.key
        values = {
            ":product_id": availability.product_id,
            ":on_hand": availability.on_hand,
            ":reserved": availability.reserved,
            ":available": availability.available,
            ":version": availability.version,
            ":updated_at": availability.updated_at,
        }
        try:
            response = aws.dynamodb().update_item(
                TableName=self.name,
                Key=_key(pk, sk),
                # Right-hand operands read the item as it was before this update: previous_available is the old
                # `available` (NULL on first sighting), whatever the order of the SET clauses.
                UpdateExpression=(
                    "SET previous_available = if_not_exists(available, :none), product_id = :product_id, "
                    "on_hand = :on_hand, reserved = :reserved, available = :available, version = :version, "
                    "updated_at = :updated_at"
                ),
                ConditionExpression="attribute_not_exists(pk) OR version < :version",
                ExpressionAttributeValues={**to_item(values), ":none": {"NULL": True}},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_conditional_check_failure(exc):
                raise
            # The stored copy is as new or newer; DynamoDB hands it back with the failure (no extra read).
            stored: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            if stored is None:  # only if the endpoint ignores ReturnValuesOnConditionCheckFailure
                stored = aws.dynamodb().get_item(TableName=self.name, Key=_key(pk, sk), ConsistentRead=True)["Item"]
            return False, _stored_availability(stored)
        return True, _stored_availability(response["Attributes"])

    def get_availability(self, product_id: str) -> Availability | None:
        pk, sk = availability_key(product_id)
        item = aws.dynamodb().get_item(TableName=self.name, Key=_key(pk, sk)).get("Item")
        return Availability.from_attributes(from_item(item)) if item else None

    def write_order_outcome(self, outcome: OrderOutcome) -> bool:
        """Apply the order outcome unless the stored version is the same or newer; True if written."""
        pk, sk = outcome.key
        return put_if_newer(self.name, {"pk": pk, "sk": sk, **outcome.as_dict()})

    def add_notification(self, notification: Notification) -> bool:
        """Create the notification unless its key exists; True if created. The key is the idempotency record."""
        pk, sk = notification.key
        return put_if_absent(self.name, to_item({"pk": pk, "sk": sk, **notification.attributes()}))

    def _query(self, pk: str, sk_prefix: str) -> Iterator[dict[str, Any]]:
        paginator = aws.dynamodb().get_paginator("query")
        pages = paginator.paginate(
            TableName=self.name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item({":pk": pk, ":prefix": sk_prefix}),
        )
        for page in pages:
            for item in page["Items"]:
                yield from_item(item)

    def list_notifications(self, customer_id: str) -> list[Notification]:
        """Every notification of the customer (the sort key orders by kind, not time: callers sort)."""
        return [
            Notification.from_item(customer_id, str(item["sk"]), item)
            for item in self._query(customer_pk(customer_id), NOTIFICATION_SK_PREFIX)
        ]

    def arm_watch(self, watch: Watch) -> bool:
        """Create or re-arm the watch unless it was armed by this rejection or a later one; True if written.

        A duplicate (or an older, late) rejection must not re-arm a watch a back-in-stock transition has spent.
        """
        pk, sk = watch.key
        try:
            aws.dynamodb().put_item(
                TableName=self.name,
                Item=to_item({"pk": pk, "sk": sk, **watch.attributes()}),
                ConditionExpression="attribute_not_exists(pk) OR armed_at < :armed_at",
                ExpressionAttributeValues=to_item({":armed_at": watch.armed_at}),
            )
        except ClientError as exc:
            if is_conditional_check_failure(exc):
                return False
            raise
        return True

    def list_watches(self, product_id: str) -> list[Watch]:
        return [Watch.from_attributes(item) for item in self._query(watch_pk(product_id), CUSTOMER_PREFIX)]

    def mark_watch_notified(self, watch: Watch, version: int) -> bool:
        """Spend the watch for the transition at `version`; False if a newer rejection re-armed it meanwhile."""
        pk, sk = watch.key
        try:
            aws.dynamodb().update_item(
                TableName=self.name,
                Key=_key(pk, sk),
                UpdateExpression="SET notified_version = :version",
                # Only the arming we read: a re-arm between our Query and this write stays armed.
                ConditionExpression="armed_at = :armed_at",
                ExpressionAttributeValues=to_item({":version": version, ":armed_at": watch.armed_at}),
            )
        except ClientError as exc:
            if is_conditional_check_failure(exc):
                return False
            raise
        return True

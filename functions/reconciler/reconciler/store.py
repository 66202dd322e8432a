"""AWS adapters of the reconciler: reads of the source and projection tables (counted), its own state item,
and the dead-letter queues."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from converge import aws
from converge.dynamo import from_item, is_conditional_check_failure, put_if_absent, to_item
from converge.reconcile_index import BUCKET_ATTRIBUTE, INDEX_NAME, UPDATED_AT_ATTRIBUTE
from reconciler.health import SweepHeader
from reconciler.passes import Position, ReconcilerState
from reconciler.snapshot import Scope

REDRIVES_ATTRIBUTE = "converge-redrives"
# The redrive count of an event by its id, per DLQ: an SQS message attribute does not survive the bus (a letter of
# the delivery DLQ is put back on the bus and comes back, if it fails again, as a new message without it).
REDRIVE_PK = "REDRIVE"
REDRIVE_KEPT_SECONDS = 14 * 24 * 3600  # the DLQs' retention: a count outlives no message it counts
BATCH_GET_MAX_KEYS = 100
BATCH_GET_MAX_ATTEMPTS = 8
STATE_KEY = {"pk": "RECONCILER", "sk": "STATE"}
SWEEP_KEY = {"pk": "SWEEP", "sk": "CURRENT"}  # the full sweep's header (reconciler.health.SweepHeader)


@dataclass
class ReadCost:
    """What a pass read, per table role: items (as counted by Scan/Query/BatchGetItem), requests, capacity."""

    items: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    capacity_units: float = 0.0

    def add(self, role: str, items: int, consumed: Any) -> None:
        self.items[role] = self.items.get(role, 0) + items
        self.requests += 1
        for entry in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
            self.capacity_units += float(entry.get("CapacityUnits", 0.0))

    @property
    def total_items(self) -> int:
        return sum(self.items.values())


def scan_items(table_name: str, cost: ReadCost, role: str) -> Iterator[dict[str, Any]]:
    """Every item of a table (a full, paginated scan)."""
    paginator = aws.dynamodb().get_paginator("scan")
    for page in paginator.paginate(TableName=table_name, ConsistentRead=True, ReturnConsumedCapacity="TOTAL"):
        cost.add(role, int(page.get("ScannedCount", 0)), page.get("ConsumedCapacity"))
        for item in page.get("Items", []):
            yield from_item(item)


def changed_page(
    table_name: str, bucket: str, start: Position, limit: int, cost: ReadCost, role: str
) -> tuple[list[dict[str, Any]], bool]:
    """One page (at most `limit` items) of one bucket of the changed-since index from `start`, oldest write first,
    and whether the bucket holds more after it."""
    query: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": INDEX_NAME,
        "KeyConditionExpression": "#bucket = :bucket AND #updated_at >= :since",
        "ExpressionAttributeNames": {"#bucket": BUCKET_ATTRIBUTE, "#updated_at": UPDATED_AT_ATTRIBUTE},
        "ExpressionAttributeValues": to_item({":bucket": bucket, ":since": start.updated_at}),
        "Limit": limit,
        "ReturnConsumedCapacity": "TOTAL",
    }
    if start.key is not None:
        pk, sk = start.key
        query["ExclusiveStartKey"] = to_item(
            {"pk": pk, "sk": sk, BUCKET_ATTRIBUTE: bucket, UPDATED_AT_ATTRIBUTE: start.updated_at}
        )
    page: dict[str, Any] = dict(aws.dynamodb().query(**query))
    cost.add(role, int(page.get("ScannedCount", 0)), page.get("ConsumedCapacity"))
    return [from_item(item) for item in page.get("Items", [])], "LastEvaluatedKey" in page


class IncompleteRead(RuntimeError):
    """BatchGetItem kept returning unprocessed keys (throttling): the pass cannot compare what it did not read."""


def batch_get(table_name: str, keys: Sequence[tuple[str, str]], cost: ReadCost, role: str) -> list[dict[str, Any]]:
    """The items at `keys` that exist (strongly consistent), 100 keys per BatchGetItem, unprocessed keys retried."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_MAX_KEYS):
        pending: list[Mapping[str, Any]] = [
            to_item({"pk": pk, "sk": sk}) for pk, sk in keys[start : start + BATCH_GET_MAX_KEYS]
        ]
        for attempt in range(BATCH_GET_MAX_ATTEMPTS):
            # Plain dict view: the typed response's nested TypedDicts make .get chains unreadable.
            response: dict[str, Any] = dict(
                aws.dynamodb().batch_get_item(
                    RequestItems={table_name: {"Keys": pending, "ConsistentRead": True}},  # type: ignore[dict-item]
                    ReturnConsumedCapacity="TOTAL",
                )
            )
            items = response.get("Responses", {}).get(table_name, [])
            cost.add(role, len(items), response.get("ConsumedCapacity"))
            found.extend(from_item(item) for item in items)
            pending = list(response.get("UnprocessedKeys", {}).get(table_name, {}).get("Keys", []))
            if not pending:
                break
            time.sleep(min(0.05 * 2**attempt, 2.0))  # AWS: back off before resending unprocessed keys
        if pending:
            raise IncompleteRead(f"{len(pending)} keys of {table_name} still unprocessed")
    return found


# ---------------------------------------------------------------- the reconciler's own state
class ConcurrentPass(RuntimeError):
    """Another pass saved its state since this one read it; this pass leaves the watermark where that one put it."""


def load_state(table_name: str) -> ReconcilerState:
    response = aws.dynamodb().get_item(TableName=table_name, Key=to_item(STATE_KEY), ConsistentRead=True)
    item = response.get("Item")
    return state_of(from_item(item)) if item else ReconcilerState()


def state_of(plain: dict[str, Any]) -> ReconcilerState:
    """The state of its item (converge.dynamo.from_item), as save_state writes it."""
    return ReconcilerState(
        watermark=datetime.fromisoformat(plain["watermark"]),
        suspects=Scope(frozenset(plain.get("suspect_products", [])), frozenset(plain.get("suspect_orders", []))),
        full_sweep_due=bool(plain.get("full_sweep_due", False)),
        version=int(plain["version"]),
        last_pass_at=datetime.fromisoformat(plain["last_pass_at"]) if plain.get("last_pass_at") else None,
        positions={
            bucket: Position(str(saved["updated_at"]), (str(saved["pk"]), str(saved["sk"])) if "pk" in saved else None)
            for bucket, saved in (plain.get("positions") or {}).items()
        },
    )


def save_state(table_name: str, state: ReconcilerState, expected_version: int) -> None:
    """Write the state if no other pass saved one since `expected_version` was read; ConcurrentPass if one did."""
    if state.watermark is None:
        raise ValueError("a saved state always has a watermark")
    try:
        aws.dynamodb().put_item(
            TableName=table_name,
            Item=to_item(
                {
                    **STATE_KEY,
                    "watermark": state.watermark.isoformat(),
                    "suspect_products": sorted(state.suspects.products),
                    "suspect_orders": sorted(state.suspects.orders),
                    "full_sweep_due": state.full_sweep_due,
                    "version": state.version,
                    "last_pass_at": state.last_pass_at.isoformat() if state.last_pass_at else None,
                    "positions": {
                        bucket: {"updated_at": p.updated_at} | ({"pk": p.key[0], "sk": p.key[1]} if p.key else {})
                        for bucket, p in state.positions.items()
                    },
                }
            ),
            ConditionExpression="attribute_not_exists(pk) OR #version = :expected",
            ExpressionAttributeNames={"#version": "version"},
            ExpressionAttributeValues=to_item({":expected": expected_version}),
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            raise ConcurrentPass(f"state moved past version {expected_version}") from exc
        raise


def load_sweep_header(table_name: str) -> SweepHeader | None:
    """The current (or last) full sweep's header, None if no sweep ever ran; InvalidSweepHeader if it is malformed."""
    response = aws.dynamodb().get_item(TableName=table_name, Key=to_item(SWEEP_KEY), ConsistentRead=True)
    item = response.get("Item")
    return SweepHeader.from_item(from_item(item)) if item else None


@dataclass(frozen=True)
class DeadLetter:
    queue_url: str
    message_id: str
    receipt_handle: str
    body: str
    redrives: int


def receive_dead_letters(queue_url: str, max_batches: int = 100) -> Iterator[DeadLetter]:
    """Messages of a DLQ, 10 at a time; each stays invisible (visibility timeout) until deleted or expired."""
    sqs = aws.sqs()
    for _ in range(max_batches):
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=[REDRIVES_ATTRIBUTE], WaitTimeSeconds=0
        )
        messages = response.get("Messages", [])
        if not messages:
            return
        for message in messages:
            attributes = message.get("MessageAttributes", {})
            redrives = (
                attributes[REDRIVES_ATTRIBUTE].get("StringValue", "0") if REDRIVES_ATTRIBUTE in attributes else "0"
            )
            yield DeadLetter(
                queue_url=queue_url,
                message_id=message["MessageId"],
                receipt_handle=message["ReceiptHandle"],
                body=message["Body"],
                redrives=int(redrives),
            )


PARKED_PK = "PARKED"
# A DLQ message is at most 256 KB; the parked record keeps enough of it to recognise, the DLQ keeps all of it.
PARKED_BODY_CHARS = 64 * 1024


def park(state_table: str, letter: DeadLetter, reason: str, parked_at: str) -> bool:
    """Record a poison message once (queue, id, reason, body); the message itself stays in its DLQ.

    Returns True the first time this message is parked, False when it already was (then nothing is counted again).
    """
    queue_name = letter.queue_url.rsplit("/", 1)[-1]
    return put_if_absent(
        state_table,
        to_item(
            {
                "pk": PARKED_PK,
                "sk": f"{queue_name}#{letter.message_id}",
                "queue_url": letter.queue_url,
                "message_id": letter.message_id,
                "reason": reason,
                "body": letter.body[:PARKED_BODY_CHARS],
                "parked_at": parked_at,
            }
        ),
    )


def is_parked(state_table: str, letter: DeadLetter) -> bool:
    """Whether the letter was parked already, by a pass or by a person (`python -m tools.dlq park`)."""
    queue_name = letter.queue_url.rsplit("/", 1)[-1]
    key = {"pk": {"S": PARKED_PK}, "sk": {"S": f"{queue_name}#{letter.message_id}"}}
    found = aws.dynamodb().get_item(TableName=state_table, Key=key, ProjectionExpression="pk", ConsistentRead=True)
    return "Item" in found


ANOMALY_PK = "ANOMALY"


def park_anomaly(
    state_table: str, kind: str, entity_id: str, detail: str, reason: str, parked_at: str, attributes: dict[str, Any]
) -> bool:
    """Record once what needs a person (a kind of case, an entity, the versions involved); True the first time.

    The record is the alarm's source and the person's work list (`python -m tools.dlq anomalies`); the same case
    seen again by later passes is not counted again.
    """
    return put_if_absent(
        state_table,
        to_item(
            {
                "pk": ANOMALY_PK,
                "sk": f"{kind}#{entity_id}#{detail}",
                "kind": kind,
                "entity_id": entity_id,
                "reason": reason,
                "parked_at": parked_at,
                **attributes,
            }
        ),
    )


def release(letters: Sequence[DeadLetter]) -> None:
    """Make parked messages visible again at the end of a pass, so people (python -m tools.dlq) and the next pass
    see them at once instead of after the DLQ's visibility timeout."""
    sqs = aws.sqs()
    for start in range(0, len(letters), 10):
        batch = letters[start : start + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=batch[0].queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                for i, letter in enumerate(batch)
            ],
        )


def _redrive_key(queue_url: str, event_id: str) -> dict[str, str]:
    return {"pk": REDRIVE_PK, "sk": f"{queue_url.rsplit('/', 1)[-1]}#{event_id}"}


def redrives_counted(state_table: str, queue_url: str, event_id: str) -> int:
    """How often the event `event_id` was redriven from this DLQ (0 if never, or longer ago than the retention)."""
    response = aws.dynamodb().get_item(
        TableName=state_table, Key=to_item(_redrive_key(queue_url, event_id)), ConsistentRead=True
    )
    item = from_item(response["Item"]) if "Item" in response else None
    if item is None or int(item.get("expires_at", 0)) < time.time():
        return 0
    return int(item.get("redrives", 0))


def count_redrive(state_table: str, queue_url: str, event_id: str, counted: int) -> bool:
    """Record one more redrive of `event_id` (from `counted`, as read); False if another pass counted it meanwhile
    (the letter is then left for the next pass)."""
    expires_at = int(time.time()) + REDRIVE_KEPT_SECONDS
    item = {**_redrive_key(queue_url, event_id), "redrives": counted + 1, "expires_at": expires_at}
    try:
        aws.dynamodb().put_item(
            TableName=state_table,
            Item=to_item(item),
            ConditionExpression="attribute_not_exists(pk) OR redrives = :counted OR expires_at < :now",
            ExpressionAttributeValues=to_item({":counted": counted, ":now": int(time.time())}),
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            return False
        raise
    return True


def redrive(letter: DeadLetter, inbox_url: str, redrives: int) -> None:
    """Send a dead letter back to its inbox (its `redrives` so far, plus this one), then delete it from the DLQ."""
    sqs = aws.sqs()
    sqs.send_message(
        QueueUrl=inbox_url,
        MessageBody=letter.body,
        MessageAttributes={REDRIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(redrives + 1)}},
    )
    acknowledge(letter)


def acknowledge(letter: DeadLetter) -> None:
    aws.sqs().delete_message(QueueUrl=letter.queue_url, ReceiptHandle=letter.receipt_handle)

"""AWS adapters of the reconciler: table scans and dead-letter queues."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from converge import aws
from converge.dynamo import from_item

REDRIVES_ATTRIBUTE = "converge-redrives"


def scan_items(table_name: str) -> Iterator[dict[str, Any]]:
    """Every item of a table (a full, paginated scan)."""
    paginator = aws.dynamodb().get_paginator("scan")
    for page in paginator.paginate(TableName=table_name, ConsistentRead=True):
        for item in page.get("Items", []):
            yield from_item(item)


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


def redrive(letter: DeadLetter, inbox_url: str) -> None:
    """Send a dead letter back to its inbox (counting the redrive), then delete it from the DLQ."""
    sqs = aws.sqs()
    sqs.send_message(
        QueueUrl=inbox_url,
        MessageBody=letter.body,
        MessageAttributes={REDRIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(letter.redrives + 1)}},
    )
    acknowledge(letter)


def acknowledge(letter: DeadLetter) -> None:
    aws.sqs().delete_message(QueueUrl=letter.queue_url, ReceiptHandle=letter.receipt_handle)

"""SQS event source mappings, emulated with the semantics AWS documents for Lambda.

A poll receives up to `BatchSize` messages and invokes the function with the Lambda SQS event. Then:
- success: every message of the batch is deleted;
- `ReportBatchItemFailures` and a `batchItemFailures` list: the others are deleted, the listed ones stay on the queue
  and reappear after the queue's visibility timeout (an identifier that names no message fails the whole batch);
- function error: no message is deleted; the whole batch reappears after the visibility timeout.

Messages that keep failing move to the queue's dead-letter queue by SQS's own redrive policy (`maxReceiveCount`),
which moto implements. The visibility timeout runs on moto's wall clock; when the caller advances localcloud's
clock, messages this mapping left in flight whose timeout has passed on that clock are made visible again
(ChangeMessageVisibility 0), so tests need not sleep through a 60-second timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from localcloud.clock import Clock
from localcloud.faults import Held
from localcloud.runtime import Invocation, Runtime

REGION = "us-east-1"
HOLD_SECONDS = 36000  # a delayed message stays invisible (SQS caps the total at 12 h), released by polls


@dataclass
class SqsMappingConfig:
    logical_id: str
    function: str
    queue_arn: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    enabled: bool = True

    @classmethod
    def from_properties(cls, logical_id: str, function: str, props: dict[str, Any]) -> SqsMappingConfig:
        return cls(
            logical_id=logical_id,
            function=function,
            queue_arn=str(props["EventSourceArn"]),
            batch_size=int(props.get("BatchSize", 10)),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            enabled=str(props.get("Enabled", True)).lower() != "false",
        )


@dataclass
class SqsStats:
    delivered: int = 0  # messages deleted after the function processed them
    failed: int = 0  # messages left on the queue (retried after the visibility timeout)
    invocations: int = 0


@dataclass
class _InFlight:
    receipt_handle: str
    visible_at: float


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping delivers it."""
    attributes = message.get("MessageAttributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType"),
            }
            for name, value in attributes.items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] or REGION,
    }


class SqsMapping:
    """One emulated SQS event source mapping."""

    def __init__(self, config: SqsMappingConfig, clients: Any, runtime: Runtime, clock: Clock) -> None:
        self.config = config
        self.clients = clients
        self.runtime = runtime
        self.clock = clock
        self.stats = SqsStats()
        _, _, _, _region, account, name = config.queue_arn.split(":", 5)
        self.queue_url: str = clients.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        self.in_flight: list[_InFlight] = []
        self.held: list[Held] = []  # messages held back by an injected delay (localcloud/faults/delivery.py)

    def visibility_timeout(self) -> int:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
        )
        return int(attributes["Attributes"].get("VisibilityTimeout", 30))

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.config.batch_size:
            response = self.clients.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.config.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            if not received:
                break
            messages.extend(received)
        return messages

    def release_due(self) -> None:
        """Make visible again the messages whose visibility timeout has passed on localcloud's clock."""
        now = self.clock.now()
        due = [m for m in self.in_flight if m.visible_at <= now]
        self.in_flight = [m for m in self.in_flight if m.visible_at > now]
        for message in due:
            try:
                self.clients.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
                )
            except ClientError:
                continue  # deleted or received again since (its old receipt handle no longer applies)

    def _release_held(self) -> None:
        """One poll has passed for every held message; those whose delay is over become visible again."""
        still: list[Held] = []
        for held in self.held:
            held.polls_left -= 1
            if held.polls_left > 0:
                still.append(held)
                continue
            try:
                self.clients.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=held.receipt_handle, VisibilityTimeout=0
                )
            except ClientError:
                continue  # its receipt handle expired: the message is visible again anyway
        self.held = still

    def _inject(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Delivery faults between the bus and this inbox (lost, duplicated, delayed, reordered); the messages
        to deliver now. Each message is also entered in the ledger."""
        faults, ledger = self.runtime.faults, self.runtime.ledger
        deliver: list[dict[str, Any]] = []
        for message in messages:
            if message["Body"] in faults.poison_bodies:
                deliver.append(message)  # a poison message is its own fault: not an event, never lost or copied
                continue
            delivery = ledger.delivery(self.config.function, message["Body"])
            first = message.get("Attributes", {}).get("ApproximateReceiveCount", "1") == "1"
            fault = faults.delivery_faults(message, self.config.function) if first else None
            if fault == "lost":
                self.clients.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                if delivery is not None:
                    delivery.lost += 1
                continue
            if fault == "delayed":
                # Invisible on moto's clock for far longer than any run; released after some polls instead.
                self.clients.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=HOLD_SECONDS
                )
                self.held.append(Held(message["ReceiptHandle"], faults.delay_polls()))
                if delivery is not None:
                    delivery.delayed += 1
                continue
            if fault == "duplicate":
                self.clients.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message["Body"])
                if delivery is not None:
                    delivery.duplicated += 1
            if delivery is not None:
                delivery.received += 1
            deliver.append(message)
        faults.shuffle(deliver, self.config.function)
        return deliver

    def step(self) -> bool:
        """Receive and deliver one batch; True if a batch was delivered (or messages are held back by a delay
        fault, or a fault moved something)."""
        if not self.config.enabled:
            return False
        self.release_due()
        self._release_held()
        poison = self.runtime.faults.poison(self.config.function)
        if poison is not None:
            self.clients.sqs.send_message(QueueUrl=self.queue_url, MessageBody=poison)
        received = self._receive()
        messages = self._inject(received)
        if not messages:
            return bool(received) or bool(self.held) or poison is not None
        event = {"Records": [lambda_record(m, self.config.queue_arn) for m in messages]}
        invocation = self.runtime.invoke(self.config.function, event, source="sqs")
        self.stats.invocations += 1
        failed_ids = self._failed_ids(invocation, [m["MessageId"] for m in messages])
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            self.clients.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        self.stats.delivered += len(done)
        self.stats.failed += len(messages) - len(done)
        self._account(invocation, messages, failed_ids)
        if failed_ids:
            visible_at = self.clock.now() + self.visibility_timeout()
            self.in_flight.extend(
                _InFlight(m["ReceiptHandle"], visible_at) for m in messages if m["MessageId"] in failed_ids
            )
        return True

    def _account(self, invocation: Invocation, messages: list[dict[str, Any]], failed_ids: set[str]) -> None:
        ledger, consumer = self.runtime.ledger, self.config.function
        for message in messages:
            if message["Body"] in self.runtime.faults.poison_bodies:
                continue
            delivery = ledger.delivery(consumer, message["Body"])
            if delivery is None:
                continue
            if message["MessageId"] in failed_ids:
                delivery.failed += 1
            else:
                delivery.processed += 1
        # Applied vs stale per record is known only to the consumer: its metrics say how many of each.
        # An invocation that failed after its work (an injected fault) still applied what its metrics say.
        metrics = invocation.metrics
        ledger.outcome(consumer, "applied", int(metrics.get("EventsApplied", 0)))
        ledger.outcome(consumer, "skipped_stale", int(metrics.get("EventsSkippedStale", 0)))
        ledger.outcome(consumer, "rejected", int(metrics.get("EventsRejected", 0)))
        ledger.outcome(consumer, "failed_receives", len(failed_ids))
        ledger.outcome(consumer, "function_errors", 0 if invocation.ok else 1)

    def _failed_ids(self, invocation: Invocation, message_ids: list[str]) -> set[str]:
        if invocation.error is not None:
            return set(message_ids)
        response = invocation.response
        if not self.config.report_batch_item_failures or not isinstance(response, dict):
            return set()
        failures = response.get("batchItemFailures") or []
        failed: set[str] = set()
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in message_ids:
                return set(message_ids)  # an invalid identifier fails the whole batch
            failed.add(identifier)
        return failed

    def depth(self) -> int:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

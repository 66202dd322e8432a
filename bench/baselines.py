"""The plain alternatives the benchmarks compare Converge with. Nothing here is deployed.

- `OnePerRecordSender`: a stream publisher that sends one PutEvents call per record (no batching of entries).
- `IdempotentProjectionConsumer`: the inbox consumer of many public samples: Powertools' idempotency utility
  (DynamoDB persistence layer) guards each event by its id, and the handler then writes the projection
  unconditionally. It is correct for duplicates, but not for reordering (an older event applied after a newer
  one overwrites it), and each event costs the guard's writes on top of the projection's.

Converge's consumers instead write once per event with a condition on the entity version: duplicates and
out-of-order deliveries are rejected by DynamoDB in the same request (see converge.dynamo.put_if_newer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from converge.bus import EventSender, FailedEntry, SendReport
from converge.dynamo import to_item
from converge.envelope import parse_eventbridge_json


class OnePerRecordSender(EventSender):
    """EventSender that puts every entry in a PutEvents call of its own (the unbatched baseline)."""

    def send(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> SendReport:
        total = SendReport()
        failed: list[FailedEntry] = []
        for entry in entries:
            report = super().send([entry])
            total.sent += report.sent
            total.calls += report.calls
            total.resent += report.resent
            failed.extend(report.failed or [])
        total.failed = failed
        return total


def create_tables(client: Any, idempotency_table: str, projection_table: str) -> None:
    """The idempotency table Powertools documents (partition key `id`) and a projection table."""
    client.create_table(
        TableName=idempotency_table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=projection_table,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )


class IdempotentProjectionConsumer:
    """SQS inbox consumer: idempotency guard by event id, then an unconditional projection write."""

    def __init__(self, client: Any, idempotency_table: str, projection_table: str) -> None:
        self.client = client
        self.projection_table = projection_table
        self.processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        self.config = IdempotencyConfig(event_key_jmespath="metadata.event_id", raise_on_no_idempotency_key=True)
        config = self.config
        persistence = DynamoDBPersistenceLayer(table_name=idempotency_table, boto3_client=client)

        @idempotent_function(data_keyword_argument="detail", config=config, persistence_store=persistence)
        def apply(detail: dict[str, Any]) -> dict[str, Any]:
            metadata, data = detail["metadata"], detail["data"]
            item = {
                "pk": f"{metadata['entity'].upper()}#{metadata['entity_id']}",
                "sk": "PROJECTION",
                "version": metadata["entity_version"],
                **data,
            }
            self.client.put_item(TableName=self.projection_table, Item=to_item(item))
            return {"event_id": metadata["event_id"]}

        self._apply = apply

    def record_handler(self, record: SQSRecord) -> dict[str, Any]:
        event = parse_eventbridge_json(record.body)
        return self._apply(detail=event.detail())  # type: ignore[no-any-return]

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.config.register_lambda_context(context)  # in-progress records expire with the invocation
        return dict(
            process_partial_response(
                event=event, record_handler=self.record_handler, processor=self.processor, context=context
            )
        )

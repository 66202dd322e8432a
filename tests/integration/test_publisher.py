"""The stream publisher: table writes become domain events on the bus; nothing is dropped silently."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

from converge.bus import MAX_BYTES_PER_CALL, EventSender, chunks, entry_size
from converge.envelope import parse_detail
from converge.events import event_id_for
from converge.publisher import publish_records
from tests.support.stack import FunctionRunner, Stack, lambda_stream_event

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def order_item(order_id: str, version: int, status: str = "PENDING", **extra: Any) -> dict[str, Any]:
    event_type = {"PENDING": "OrderPlaced", "CONFIRMED": "OrderConfirmed", "CANCELLED": "OrderCancelled"}[status]
    return {
        "pk": f"ORDER#{order_id}",
        "sk": "ORDER",
        "order_id": order_id,
        "customer_id": "c-1",
        "lines": [{"product_id": "p-1", "quantity": 2}],
        "status": status,
        "version": version,
        "event_type": event_type,
        "correlation_id": f"req-{order_id}",
        "updated_at": "2026-11-28T10:00:00+00:00",
        **extra,
    }


class FlakyBus:
    """A bus client that fails chosen entries for a number of calls, then behaves (PutEvents partial failure)."""

    def __init__(self, real: Any, fail_detail_types: set[str], failing_calls: int) -> None:
        self.real = real
        self.fail_detail_types = fail_detail_types
        self.failing_calls = failing_calls
        self.calls: list[int] = []

    def put_events(self, *, Entries: Sequence[Any]) -> dict[str, Any]:
        self.calls.append(len(Entries))
        failing = self.failing_calls > 0
        self.failing_calls -= 1
        results: list[dict[str, Any]] = []
        for entry in Entries:
            if failing and entry["DetailType"] in self.fail_detail_types:
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "injected"})
            else:
                results.extend(self.real.put_events(Entries=[entry])["Entries"])
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}


def test_table_writes_become_events_with_the_envelope(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order written and then confirmed in the orders table
    stack.put_item("OrdersTable", order_item("o-1", 1))
    stack.put_item("OrdersTable", order_item("o-1", 2, "CONFIRMED"))
    # WHEN the publisher receives the table's stream records
    response = functions.invoke("OrdersPublisherFunction", lambda_stream_event(stack, "OrdersTable"))
    # THEN both changes are on the bus, in the envelope, with deterministic ids and the command's correlation id
    assert response == {"batchItemFailures": []}
    events = stack.events_on_bus()
    assert sorted(e["detail-type"] for e in events) == ["OrderConfirmed", "OrderPlaced"]
    for raw in events:
        assert raw["source"] == "converge.orders"
        event = parse_detail(raw["detail-type"], raw["detail"])
        version = event.metadata.entity_version
        assert event.metadata.event_id == event_id_for("order", "o-1", version)
        assert event.metadata.correlation_id == "req-o-1"
        assert event.metadata.producer == "orders"


def test_non_entity_items_and_removals_are_skipped(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a projection-like item without event_type, and a deleted entity
    stack.put_item("OrdersTable", {"pk": "META#x", "sk": "META", "note": "not an entity"})
    stack.put_item("OrdersTable", order_item("o-2", 1))
    boto3.client("dynamodb").delete_item(
        TableName=stack.table("OrdersTable"), Key={"pk": {"S": "ORDER#o-2"}, "sk": {"S": "ORDER"}}
    )
    # WHEN the publisher runs over the stream
    response = functions.invoke("OrdersPublisherFunction", lambda_stream_event(stack, "OrdersTable"))
    # THEN only the entity insert is published and nothing fails
    assert response == {"batchItemFailures": []}
    assert [e["detail-type"] for e in stack.events_on_bus()] == ["OrderPlaced"]


def test_invalid_entity_item_is_reported_and_the_rest_published(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a valid order and an item claiming an unknown event type, and one missing its lines
    stack.put_item("OrdersTable", order_item("o-3", 1))
    stack.put_item("OrdersTable", {**order_item("o-4", 1), "event_type": "OrderTeleported"})
    broken = order_item("o-5", 1)
    del broken["lines"]
    stack.put_item("OrdersTable", broken)
    event = lambda_stream_event(stack, "OrdersTable")
    sequence = {r["dynamodb"]["Keys"]["pk"]["S"]: r["dynamodb"]["SequenceNumber"] for r in event["Records"]}
    # WHEN the publisher runs
    response = functions.invoke("OrdersPublisherFunction", event)
    # THEN the two bad records are batch item failures and the good one is on the bus
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed == {sequence["ORDER#o-4"], sequence["ORDER#o-5"]}
    assert [e["detail"]["data"]["order_id"] for e in stack.events_on_bus()] == ["o-3"]


def test_failed_entries_are_resent_until_accepted(stack: Stack) -> None:
    # GIVEN a bus that fails every OrderConfirmed entry on the first two calls
    stack.put_item("OrdersTable", order_item("o-6", 1))
    stack.put_item("OrdersTable", order_item("o-6", 2, "CONFIRMED"))
    records = list(DynamoDBStreamEvent(lambda_stream_event(stack, "OrdersTable")).records)
    bus = FlakyBus(boto3.client("events"), {"OrderConfirmed"}, failing_calls=2)
    # WHEN the records are published with three attempts
    result = publish_records(records, EventSender(bus, max_attempts=3, sleep=lambda _: None), stack.bus_name)
    # THEN the failed entry was resent and in the end both events are on the bus, no record reported
    assert result.failures == []
    assert bus.calls == [2, 1, 1]
    assert sorted(e["detail-type"] for e in stack.events_on_bus()) == ["OrderConfirmed", "OrderPlaced"]


def test_entries_that_keep_failing_are_reported_as_batch_item_failures(stack: Stack) -> None:
    # GIVEN a bus that fails OrderCancelled entries on every call
    stack.put_item("OrdersTable", order_item("o-7", 1))
    stack.put_item("OrdersTable", order_item("o-7", 2, "CANCELLED"))
    event = lambda_stream_event(stack, "OrdersTable")
    records = list(DynamoDBStreamEvent(event).records)
    bus = FlakyBus(boto3.client("events"), {"OrderCancelled"}, failing_calls=99)
    # WHEN the records are published
    result = publish_records(records, EventSender(bus, max_attempts=3, sleep=lambda _: None), stack.bus_name)
    # THEN the cancelled record is reported (so Lambda retries it and, after retries, sends it to OnFailure)
    cancelled_seq = event["Records"][1]["dynamodb"]["SequenceNumber"]
    assert result.failures == [cancelled_seq]
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": cancelled_seq}]}
    assert [e["detail-type"] for e in stack.events_on_bus()] == ["OrderPlaced"]


@pytest.mark.parametrize(
    ("count", "detail_bytes", "expected_calls"),
    [(25, 200, 3), (100, 200, 10), (6, 100_000, 3), (3, 200_000, 3)],
)
def test_calls_respect_ten_entries_and_256_kb(count: int, detail_bytes: int, expected_calls: int) -> None:
    # GIVEN entries of a given size
    entry = {"Source": "converge.orders", "DetailType": "OrderPlaced", "Detail": "x" * detail_bytes}
    entries = [(str(i), entry) for i in range(count)]
    # WHEN they are split into PutEvents calls
    calls = list(chunks(entries))
    # THEN no call has more than 10 entries or 256 KB, order is kept, and the count is the minimum
    assert len(calls) == expected_calls
    assert all(len(c) <= 10 and sum(entry_size(e) for _, e in c) <= MAX_BYTES_PER_CALL for c in calls)
    assert [k for c in calls for k, _ in c] == [str(i) for i in range(count)]


def test_an_entry_over_256_kb_is_reported_not_sent(stack: Stack) -> None:
    # GIVEN an order item whose event would exceed the PutEvents limit
    stack.put_item("OrdersTable", order_item("o-8", 1, reason="x" * (MAX_BYTES_PER_CALL + 10)))
    event = lambda_stream_event(stack, "OrdersTable")
    # WHEN it is published
    result = publish_records(
        list(DynamoDBStreamEvent(event).records), EventSender(boto3.client("events")), stack.bus_name
    )
    # THEN it is a batch item failure, not a silent drop and not a crash
    assert result.failures == [event["Records"][0]["dynamodb"]["SequenceNumber"]]
    assert stack.events_on_bus() == []


@pytest.mark.parametrize("fixture", sorted(p.name for p in EVENTS_DIR.glob("*PublisherFunction.*.json")))
def test_publisher_fixtures_publish_every_record(fixture: str, stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a committed sam-local-invoke fixture of a stream batch
    event = json.loads((EVENTS_DIR / fixture).read_text())
    function = fixture.split(".")[0]
    # WHEN the publisher function is invoked with it
    response = functions.invoke(function, event)
    # THEN every entity record is on the bus and none failed
    assert response == {"batchItemFailures": []}
    published = stack.events_on_bus()
    entity_records = [r for r in event["Records"] if r["eventName"] != "REMOVE"]
    assert len(published) == len(entity_records)

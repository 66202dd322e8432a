"""Publisher CPU per stream record, without the network, as a ratio to deserialising the same records.

The publisher's work per record is: Powertools' stream data class -> plain item -> validated `DomainEvent`
(Pydantic) -> JSON entry -> chunking into PutEvents calls. The bus is an in-memory `PutEventsClient`, so no
time is spent on HTTP. The baseline is the least any stream consumer does: boto3's `TypeDeserializer` over
each record's NewImage. Both run on the same records, interleaved, in the same process.

It also counts PutEvents calls per 100 records for small and large items, and checks every call the
in-memory bus received against EventBridge's limits (<=10 entries, <=256 KB).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from converge.bus import MAX_BYTES_PER_CALL, MAX_ENTRIES_PER_CALL, EventSender, entry_size
from converge.observability import metrics
from converge.projections import ORDER
from converge.publisher import publish_records

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/bench-OrdersTable/stream/2026-11-28T00:00:00.000"
BUS = "bench-bus"
BATCH_SIZE = 100  # the template's stream mappings deliver up to 100 records per invocation


class InMemoryBus:
    """A PutEvents client that accepts every entry and remembers the shape of every call."""

    def __init__(self) -> None:
        self.calls = 0
        self.entries = 0
        self.max_entries = 0
        self.max_bytes = 0

    def put_events(self, *, Entries: Sequence[Any]) -> Mapping[str, Any]:
        self.calls += 1
        self.entries += len(Entries)
        self.max_entries = max(self.max_entries, len(Entries))
        self.max_bytes = max(self.max_bytes, sum(entry_size(e) for e in Entries))
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(len(Entries))]}

    @property
    def over_limit(self) -> bool:
        return self.max_entries > MAX_ENTRIES_PER_CALL or self.max_bytes > MAX_BYTES_PER_CALL


def order_item(n: int, *, lines: int = 2, reason_bytes: int = 0) -> dict[str, Any]:
    """An orders-table item as the orders service writes it (docs/items.md).

    `reason_bytes` > 0 makes it a rejected order whose `shortages` list (64-character product ids) is about that
    many bytes: the contract caps `reason` at 1000 characters, not the list.
    """
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).isoformat()
    return {
        **dict(zip(("pk", "sk"), ORDER.key(f"o-{n}"), strict=True)),
        "order_id": f"o-{n}",
        "customer_id": f"c-{n % 97}",
        "lines": [{"product_id": f"p-{(n + i) % 50}", "quantity": 1 + i} for i in range(lines)],
        "status": "REJECTED" if reason_bytes else "CONFIRMED",
        "reason": "insufficient stock" if reason_bytes else None,
        "shortages": [f"p-{i:062d}" for i in range(reason_bytes // 67)],
        "created_at": at,
        "request_hash": "0" * 64,
        "event_type": "OrderRejected" if reason_bytes else "OrderConfirmed",
        "version": 2,
        "correlation_id": f"req-{n}",
        "updated_at": at,
    }


def stream_event(count: int, *, reason_bytes: int = 0, start: int = 0) -> dict[str, Any]:
    """A Lambda DynamoDB stream event of `count` MODIFY records (NEW_AND_OLD_IMAGES)."""
    serializer = TypeSerializer()

    def image(item: dict[str, Any]) -> dict[str, Any]:
        return {k: serializer.serialize(v) for k, v in item.items() if v is not None}

    records = []
    for n in range(start, start + count):
        new = order_item(n, reason_bytes=reason_bytes)
        old = {**new, "status": "PENDING", "event_type": "OrderPlaced", "version": 1, "reason": None}
        records.append(
            {
                "eventID": f"{n:032x}",
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1764331200,
                    "Keys": image({"pk": new["pk"], "sk": new["sk"]}),
                    "NewImage": image(new),
                    "OldImage": image(old),
                    "SequenceNumber": str(10**20 + n),
                    "SizeBytes": 400 + reason_bytes,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": STREAM_ARN,
            }
        )
    return {"Records": records}


def publish(event: dict[str, Any], bus: InMemoryBus) -> int:
    """What the publisher handler does with one stream batch (minus the Lambda decorators)."""
    records = list(DynamoDBStreamEvent(event).records)
    result = publish_records(records, EventSender(bus, sleep=lambda _s: None), BUS)
    metrics.clear_metrics()  # the handler's log_metrics flushes once per invocation
    if result.failures:
        raise RuntimeError(f"publisher failed records: {result.failures[:3]}")
    return result.published


def deserialise_only(event: dict[str, Any]) -> int:
    """The baseline: boto3's TypeDeserializer over every record's NewImage."""
    deserializer = TypeDeserializer()
    count = 0
    for record in event["Records"]:
        image = {k: deserializer.deserialize(v) for k, v in record["dynamodb"]["NewImage"].items()}
        count += bool(image)
    return count


def _timed(fn: Any, *args: Any) -> float:
    started = time.process_time()
    fn(*args)
    return time.process_time() - started


def measure(records: int = 2000, rounds: int = 7) -> dict[str, Any]:
    """CPU seconds per record of the publisher and of the baseline (median of interleaved rounds)."""
    batches = [stream_event(BATCH_SIZE, start=i) for i in range(0, records, BATCH_SIZE)]
    publish(batches[0], InMemoryBus())  # warm-up: Pydantic validators, Powertools lazy imports

    def run_publisher() -> None:
        for batch in batches:
            publish(batch, InMemoryBus())

    def run_baseline() -> None:
        for batch in batches:
            deserialise_only(batch)

    publisher_times, baseline_times = [], []
    gc.collect()
    for _ in range(rounds):
        publisher_times.append(_timed(run_publisher))
        baseline_times.append(_timed(run_baseline))
    total = len(batches) * BATCH_SIZE
    pub = statistics.median(publisher_times) / total
    base = statistics.median(baseline_times) / total
    return {
        "records": total,
        "rounds": rounds,
        "publisher_us_per_record": round(pub * 1e6, 1),
        "baseline_us_per_record": round(base * 1e6, 1),
        "ratio": round(pub / base, 2),
        "goal": 2.0,
        "calls_per_100": calls_per_100(),
        "stages": stages(min(records, 2000)),
    }


def calls_per_100() -> list[dict[str, Any]]:
    """PutEvents calls for 100 records of small and of large items (the 256 KB limit splits the batches)."""
    rows = []
    for label, reason_bytes in (("small (~0.6 KB)", 0), ("large (~30 KB)", 30_000), ("large (~100 KB)", 100_000)):
        bus = InMemoryBus()
        published = publish(stream_event(100, reason_bytes=reason_bytes), bus)
        rows.append(
            {
                "items": label,
                "records": 100,
                "published": published,
                "put_events_calls": bus.calls,
                "max_entries_per_call": bus.max_entries,
                "max_kb_per_call": round(bus.max_bytes / 1024, 1),
                "within_limits": not bus.over_limit,
            }
        )
    return rows


def _access(event: DynamoDBStreamEvent) -> list[Any]:
    return [(r.dynamodb.new_image, r.dynamodb.sequence_number, r.event_name) for r in event.records if r.dynamodb]


def stages(records: int = 2000) -> dict[str, float]:
    """CPU per record of each step of the publisher's path (same records; each step timed on its own)."""
    from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer as PowertoolsDeserializer

    from converge.bus import chunks, to_entry
    from converge.dynamo import plain
    from converge.envelope import event_from_item

    event = stream_event(records)
    images = [r["dynamodb"]["NewImage"] for r in event["Records"]]
    deserializer = PowertoolsDeserializer()

    def per_record(fn: Any) -> float:
        return round(min(_timed(fn) for _ in range(3)) / records * 1e6, 1)  # min of 3: CPU, not the neighbours

    result = {"boto3 TypeDeserializer (the baseline)": per_record(lambda: deserialise_only(event))}
    result["Powertools record access + NewImage"] = per_record(lambda: _access(DynamoDBStreamEvent(event)))
    raw = [{k: deserializer.deserialize(v) for k, v in image.items()} for image in images]
    result["Decimal -> int (converge.dynamo.plain)"] = per_record(lambda: [plain(i) for i in raw])
    items = [plain(i) for i in raw]
    result["item -> validated DomainEvent"] = per_record(lambda: [event_from_item(i) for i in items])
    events = [event_from_item(i) for i in items]
    result["DomainEvent -> PutEvents entry (JSON)"] = per_record(lambda: [to_entry(e, BUS) for e in events if e])  # type: ignore[misc]
    entries = [(str(n), to_entry(e, BUS)) for n, e in enumerate(events) if e]
    result["chunking (entry sizes)"] = per_record(lambda: list(chunks(entries)))
    return result

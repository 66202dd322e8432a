"""DynamoDB stream event source mappings, emulated with the semantics AWS documents for Lambda.

Each shard is read in order with moto's DynamoDB Streams API (describe_stream, get_shard_iterator, get_records)
and delivered to the function in batches of at most `BatchSize` records, one batch at a time per shard:

- success (or an empty/null `batchItemFailures`): the checkpoint moves past the batch;
- `ReportBatchItemFailures`: the checkpoint moves to the lowest failed sequence number; that record and every later
  one of the batch are retried (an identifier that names no record of the batch fails the whole batch);
- function error: with `BisectBatchOnFunctionError` the batch is split in two and each half retried (splitting
  does not consume retries); otherwise the whole batch is retried;
- after `MaximumRetryAttempts` retries, or when a record is older than `MaximumRecordAgeInSeconds`, the records are
  skipped and the `OnFailure` destination receives an invocation record with only the batch's metadata
  (`DDBStreamBatchInfo`), then processing continues with the next records.

One pump `step` makes at most one invocation per shard, so a retried batch blocks its shard, as on AWS.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from localcloud import destinations
from localcloud.clock import Clock, iso
from localcloud.runtime import Invocation, Runtime

RETENTION_SECONDS = 24 * 3600  # DynamoDB Streams keep records for 24 hours


def _plain(value: Any) -> Any:
    """boto3's parsed stream record -> the JSON Lambda delivers (datetimes as epoch seconds, bytes as base64)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    return value


@dataclass
class StreamMappingConfig:
    """The properties of one AWS::Lambda::EventSourceMapping on a DynamoDB stream (resolved)."""

    logical_id: str
    function: str  # logical id of the function
    stream_arn: str
    batch_size: int = 100
    starting_position: str = "TRIM_HORIZON"
    report_batch_item_failures: bool = False
    bisect: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age: int = -1
    on_failure: str | None = None
    enabled: bool = True

    @classmethod
    def from_properties(cls, logical_id: str, function: str, props: dict[str, Any]) -> StreamMappingConfig:
        return cls(
            logical_id=logical_id,
            function=function,
            stream_arn=str(props["EventSourceArn"]),
            batch_size=int(props.get("BatchSize", 100)),
            starting_position=str(props.get("StartingPosition", "TRIM_HORIZON")),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            bisect=str(props.get("BisectBatchOnFunctionError", False)).lower() == "true",
            maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
            maximum_record_age=int(props.get("MaximumRecordAgeInSeconds", -1)),
            on_failure=props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"),
            enabled=str(props.get("Enabled", True)).lower() != "false",
        )


@dataclass
class _Segment:
    records: list[dict[str, Any]]
    attempts: int = 0  # failed invocations that count against MaximumRetryAttempts
    invokes: int = 0
    last_error: bool = False


@dataclass
class _Shard:
    shard_id: str
    last_sequence: str | None = None  # the newest record read from the shard (our read position)
    buffer: list[dict[str, Any]] = field(default_factory=list)
    work: list[_Segment] = field(default_factory=list)


@dataclass
class StreamStats:
    delivered: int = 0  # records checkpointed after a successful invocation
    invocations: int = 0
    retried: int = 0
    discarded: int = 0  # records sent to OnFailure (or dropped without a destination)
    failure_records: list[dict[str, Any]] = field(default_factory=list)


class StreamMapping:
    """One emulated stream event source mapping."""

    def __init__(self, config: StreamMappingConfig, clients: Any, runtime: Runtime, clock: Clock) -> None:
        self.config = config
        self.clients = clients
        self.runtime = runtime
        self.clock = clock
        self.stats = StreamStats()
        self.shards: dict[str, _Shard] = {}
        # Sequence number -> when the record was written, on localcloud's clock. moto stamps records with wall-clock
        # time, and localcloud's clock runs ahead by whatever was advanced: measured against it, every record
        # written after an hour of advancing would look older than MaximumRecordAgeInSeconds and be discarded.
        self._born: dict[str, float] = {}
        self._discover()

    @property
    def _function(self) -> Any:
        return self.runtime.functions[self.config.function]

    def _discover(self) -> None:
        """Track every shard not yet known; StartingPosition LATEST skips what the shard already holds."""
        streams = self.clients.dynamodbstreams
        description = streams.describe_stream(StreamArn=self.config.stream_arn)["StreamDescription"]
        for shard_description in description.get("Shards", []):
            shard_id = shard_description["ShardId"]
            if shard_id in self.shards:
                continue
            shard = _Shard(shard_id=shard_id)
            if self.config.starting_position == "LATEST":
                existing = self._read(shard)
                shard.last_sequence = existing[-1]["dynamodb"]["SequenceNumber"] if existing else None
            self.shards[shard_id] = shard

    def _read(self, shard: _Shard) -> list[dict[str, Any]]:
        """Records after the shard's read position.

        A fresh iterator per poll, never one kept from an earlier poll: moto's iterators hold the shard object,
        and a cancelled TransactWriteItems replaces the table (and its shard) with a deep copy, which would leave
        a kept iterator reading an orphaned shard that holds the cancelled transaction's writes.
        """
        streams = self.clients.dynamodbstreams
        if shard.last_sequence is None:
            position: dict[str, Any] = {"ShardIteratorType": "TRIM_HORIZON"}
        else:
            position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.last_sequence}
        iterator = streams.get_shard_iterator(StreamArn=self.config.stream_arn, ShardId=shard.shard_id, **position)[
            "ShardIterator"
        ]
        records: list[dict[str, Any]] = []
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            batch = response.get("Records", [])
            if not batch:
                break
            records.extend(batch)
            iterator = response.get("NextShardIterator")
        return records

    def _fetch(self, shard: _Shard) -> None:
        for record in self._read(shard):
            lambda_record = _plain(record)
            lambda_record["eventSourceARN"] = self.config.stream_arn
            # The age counts from the precise creation time (the event carries it in whole seconds, as Lambda's).
            created = record["dynamodb"].get("ApproximateCreationDateTime")
            wall = created.timestamp() if isinstance(created, datetime) else None
            self._born[lambda_record["dynamodb"]["SequenceNumber"]] = (
                self.clock.at_wall_time(wall) if wall is not None else self._written(lambda_record)
            )
            shard.buffer.append(lambda_record)
            shard.last_sequence = record["dynamodb"]["SequenceNumber"]

    def pending(self) -> int:
        return sum(len(s.buffer) + sum(len(seg.records) for seg in s.work) for s in self.shards.values())

    def step(self) -> bool:
        """One delivery attempt per shard; True if anything moved (read, delivered, retried towards a limit)."""
        if not self.config.enabled:
            return False
        self._discover()
        moved = False
        for shard in self.shards.values():
            if not shard.work:
                self._fetch(shard)
                if not shard.buffer:
                    continue
                batch, shard.buffer = shard.buffer[: self.config.batch_size], shard.buffer[self.config.batch_size :]
                shard.work.append(_Segment(batch))
            moved = self._attempt(shard) or moved
        return moved

    # ------------------------------------------------------------------------------------------------ delivery
    def _written(self, record: dict[str, Any]) -> float:
        wall = record["dynamodb"].get("ApproximateCreationDateTime")
        return self.clock.now() if wall is None else self.clock.at_wall_time(float(wall))

    def _age(self, record: dict[str, Any]) -> float:
        sequence = record["dynamodb"]["SequenceNumber"]
        return self.clock.now() - self._born.get(sequence, self._written(record))

    def _forget(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self._born.pop(record["dynamodb"]["SequenceNumber"], None)

    def _expired(self, record: dict[str, Any]) -> bool:
        limit = self.config.maximum_record_age
        age = self._age(record)
        return age > RETENTION_SECONDS or (limit != -1 and age > limit)

    def _attempt(self, shard: _Shard) -> bool:
        segment = shard.work[0]
        # Records are in arrival order, so the expired ones lead; they are skipped without an invocation.
        expired = 0
        while expired < len(segment.records) and self._expired(segment.records[expired]):
            expired += 1
        if expired:
            old = _Segment(segment.records[:expired], segment.attempts, segment.invokes, segment.last_error)
            self._discard(shard, old, "RecordAgeExceeded")
            segment.records = segment.records[expired:]
            if not segment.records:
                shard.work.pop(0)
                return True
        invocation = self.runtime.invoke(self.config.function, {"Records": segment.records}, source="stream")
        self.stats.invocations += 1
        segment.invokes += 1
        failed_from = self._failed_from(invocation, segment.records)
        if failed_from is None:
            self.stats.delivered += len(segment.records)
            self._forget(segment.records)
            shard.work.pop(0)
            return True
        segment.last_error = invocation.error is not None
        if invocation.error is None or failed_from > 0:
            # A partial batch response: checkpoint before the lowest failed sequence number, retry the rest.
            self.stats.delivered += failed_from
            self._forget(segment.records[:failed_from])
            segment.records = segment.records[failed_from:]
        elif self.config.bisect and len(segment.records) > 1:
            half = len(segment.records) // 2
            shard.work[0:1] = [
                _Segment(segment.records[:half], segment.attempts, segment.invokes),
                _Segment(segment.records[half:], segment.attempts, segment.invokes),
            ]
            return True
        segment.attempts += 1
        self.stats.retried += len(segment.records)
        limit = self.config.maximum_retry_attempts
        if limit != -1 and segment.attempts > limit:
            self._discard(shard, segment, "RetryAttemptsExhausted")
            shard.work.pop(0)
            return True
        # Infinite retries block the shard until the records expire: not progress for run_until_quiet.
        return limit != -1

    def _failed_from(self, invocation: Invocation, records: list[dict[str, Any]]) -> int | None:
        """Index of the first record to retry, or None if the batch succeeded."""
        if invocation.error is not None:
            return 0
        response = invocation.response
        if not self.config.report_batch_item_failures or not isinstance(response, dict):
            return None
        failures = response.get("batchItemFailures")
        if not failures:
            return None
        sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
        indexes = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in sequence_numbers:
                return 0  # an empty, null or unknown identifier fails the whole batch
            indexes.append(sequence_numbers.index(identifier))
        return min(indexes)

    def _discard(self, shard: _Shard, segment: _Segment, condition: str) -> None:
        self.stats.discarded += len(segment.records)
        self._forget(segment.records)
        if not self.config.on_failure:
            return
        first, last = segment.records[0], segment.records[-1]
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if segment.last_error:
            response_context["functionError"] = "Unhandled"
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self._function.arn,
                "condition": condition,
                "approximateInvokeCount": segment.invokes,
            },
            "responseContext": response_context,
            "version": "1.0",
            "timestamp": iso(self.clock.now(), millis=True),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": iso(float(first["dynamodb"]["ApproximateCreationDateTime"])),
                "approximateArrivalOfLastRecord": iso(float(last["dynamodb"]["ApproximateCreationDateTime"])),
                "batchSize": len(segment.records),
                "streamArn": self.config.stream_arn,
            },
        }
        self.stats.failure_records.append(record)
        destinations.send(self.clients, self.config.on_failure, record)

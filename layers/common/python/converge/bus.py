"""Sending events to EventBridge: <=10 entries and <=256 KB per PutEvents, failed entries resent.

PutEvents is not all-or-nothing: it answers 200 with `FailedEntryCount` and an `ErrorCode` per failed entry.
Those entries are resent (with backoff) up to `max_attempts`; whatever still fails is returned to the caller,
which reports it (as batch item failures), so nothing is dropped silently.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from converge.events import DomainEvent

MAX_ENTRIES_PER_CALL = 10
MAX_BYTES_PER_CALL = 256 * 1024
RETRYABLE_CALL_ERRORS = {"ThrottlingException", "InternalException", "ServiceUnavailable", "InternalFailure"}


def entry_size(entry: dict[str, Any]) -> int:
    """Size of a PutEvents entry as EventBridge counts it (AWS docs, "Calculating PutEvents entry size")."""
    size = 14 if entry.get("Time") else 0
    size += len(entry["Source"].encode()) + len(entry["DetailType"].encode())
    size += len(entry.get("Detail", "").encode())
    size += sum(len(r.encode()) for r in entry.get("Resources", []))
    return size


def to_entry(event: DomainEvent, bus_name: str) -> dict[str, Any]:
    return {
        "EventBusName": bus_name,
        "Source": event.source,
        "DetailType": event.event_type,
        "Detail": json.dumps(event.detail(), separators=(",", ":")),
        "Time": event.metadata.occurred_at,
    }


def chunks(entries: Sequence[tuple[str, dict[str, Any]]]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Split (key, entry) pairs into calls of at most 10 entries and 256 KB, keeping their order."""
    batch: list[tuple[str, dict[str, Any]]] = []
    batch_bytes = 0
    for key, entry in entries:
        size = entry_size(entry)
        if batch and (len(batch) == MAX_ENTRIES_PER_CALL or batch_bytes + size > MAX_BYTES_PER_CALL):
            yield batch
            batch, batch_bytes = [], 0
        batch.append((key, entry))
        batch_bytes += size
    if batch:
        yield batch


class PutEventsClient(Protocol):
    """What the sender needs of an EventBridge client (boto3's, or an in-memory one in benchmarks)."""

    def put_events(self, *, Entries: Sequence[Any]) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class FailedEntry:
    key: str
    reason: str


@dataclass
class SendReport:
    sent: int = 0
    calls: int = 0
    resent: int = 0
    failed: list[FailedEntry] | None = None

    def __post_init__(self) -> None:
        if self.failed is None:
            self.failed = []


class EventSender:
    """PutEvents with chunking and resending of failed entries."""

    def __init__(
        self,
        client: PutEventsClient,
        *,
        max_attempts: int = 3,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._sleep = sleep

    def send(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> SendReport:
        """Send keyed entries; returns counts and the keys that still failed after all attempts."""
        report = SendReport()
        assert report.failed is not None
        pending = []
        last_reasons: dict[str, str] = {}
        for key, entry in entries:
            if entry_size(entry) > MAX_BYTES_PER_CALL:
                report.failed.append(FailedEntry(key, f"entry of {entry_size(entry)} bytes exceeds 256 KB"))
            else:
                pending.append((key, entry))
        for attempt in range(1, self._max_attempts + 1):
            if not pending:
                break
            if attempt > 1:
                report.resent += len(pending)
                self._sleep(self._base_delay * 2 ** (attempt - 2))
            retry: list[tuple[str, dict[str, Any]]] = []
            for batch in chunks(pending):
                report.calls += 1
                try:
                    response = self._client.put_events(Entries=[e for _, e in batch])
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "")
                    if code not in RETRYABLE_CALL_ERRORS:
                        raise
                    retry.extend(batch)
                    last_reasons.update({k: code for k, _ in batch})
                    continue
                for (key, entry), result in zip(batch, response["Entries"], strict=True):
                    if result.get("ErrorCode"):
                        retry.append((key, entry))
                        last_reasons[key] = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}".strip()
                    else:
                        report.sent += 1
            pending = retry
        report.failed.extend(FailedEntry(key, last_reasons.get(key, "failed")) for key, _ in pending)
        return report

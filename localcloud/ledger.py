"""What happened to every event: put on the bus, delivered to an inbox, processed, failed, lost by a fault.

The runtime observes each function's accepted PutEvents entries (localcloud/faults/sdk.py hooks) and each inbox
mapping reports its deliveries here. The convergence checker (localcloud/convergence.py) joins this with the DLQs
and the tables to account for every event: applied, skipped as stale, parked in a DLQ with its reason, or lost
by an injected fault and superseded (the consumer's projection of the entity equals its source at the end).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EventId:
    event_id: str
    event_type: str
    entity: str
    entity_id: str
    version: int


def identify(body: Any) -> EventId | None:
    """The identity of an EventBridge event (a JSON string or dict), or None if it is not a valid envelope."""
    try:
        event = json.loads(body) if isinstance(body, str | bytes) else body
        metadata = event["detail"]["metadata"]
        return EventId(
            str(metadata["event_id"]),
            str(metadata["event_type"]),
            str(metadata["entity"]),
            str(metadata["entity_id"]),
            int(metadata["entity_version"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class Delivery:
    """One event at one consumer (all copies of it: duplicates, retries, redrives)."""

    event: EventId
    received: int = 0  # receives by the mapping (each attempt)
    processed: int = 0  # receives that ended in success (applied or stale)
    failed: int = 0  # receives reported as failures (batch item failure or function error)
    lost: int = 0  # copies deleted by an injected lost-delivery fault
    duplicated: int = 0
    delayed: int = 0


@dataclass
class Ledger:
    published: Counter[str] = field(default_factory=Counter)  # function -> entries accepted by the bus
    events: dict[str, EventId] = field(default_factory=dict)  # every distinct event id put on the bus
    deliveries: dict[tuple[str, str], Delivery] = field(default_factory=dict)  # (consumer, event id)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)  # consumer -> applied/stale/... counts
    malformed_received: Counter[str] = field(default_factory=Counter)  # consumer -> receives of non-events

    def on_published(self, function: str, entries: list[dict[str, Any]]) -> None:
        self.published[function] += len(entries)
        for entry in entries:
            event = identify(entry.get("Detail") and {"detail": json.loads(entry["Detail"])})
            if event is not None:
                self.events.setdefault(event.event_id, event)

    def delivery(self, consumer: str, body: str) -> Delivery | None:
        event = identify(body)
        if event is None:
            self.malformed_received[consumer] += 1
            return None
        key = (consumer, event.event_id)
        if key not in self.deliveries:
            self.deliveries[key] = Delivery(event)
        return self.deliveries[key]

    def outcome(self, consumer: str, name: str, count: int) -> None:
        if count:
            self.outcomes.setdefault(consumer, Counter())[name] += count

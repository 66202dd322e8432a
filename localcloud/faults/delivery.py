"""Faults on localcloud's delivery paths (the inboxes' SQS event source mappings): lost, duplicate, delayed and
reordered deliveries, and poison messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from localcloud.faults.plan import FaultPlan, PlannedFaults

POISON_KINDS = ("not-json", "unknown-detail-type", "wrong-schema-version", "missing-metadata")


@dataclass
class Held:
    """A message held back by a delay fault: invisible until `polls_left` polls of its mapping have passed."""

    receipt_handle: str
    polls_left: int


class DeliveryFaults(PlannedFaults):
    """The faults of the inboxes' deliveries (what localcloud/sqs.py asks on every receive and poll)."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        super().__init__(plan)
        self.poison_bodies: dict[str, str] = {}  # body -> kind, for the checker's accounting
        self._seen_messages: set[str] = set()

    def delivery_faults(self, message: dict[str, Any], function: str) -> str | None:
        """For a message received from the inbox of `function`: "lost", "duplicate", "delayed" or None (decided
        once per message)."""
        if not self.active or not self._targets(function):
            return None
        if self.plan.event_types and _detail_type(message["Body"]) not in self.plan.event_types:
            return None
        message_id = message["MessageId"]
        if message_id in self._seen_messages:
            return None
        self._seen_messages.add(message_id)
        if self._roll("lost", self.plan.lost_delivery):
            self.stats["deliveries_lost"] += 1
            return "lost"
        if self._roll("duplicate", self.plan.duplicate_delivery):
            self.stats["deliveries_duplicated"] += 1
            return "duplicate"
        if self._roll("delayed", self.plan.delayed_delivery):
            self.stats["deliveries_delayed"] += 1
            return "delayed"
        return None

    def delay_polls(self) -> int:
        return self._rng("delay_polls").randint(1, max(1, self.plan.max_delay_polls))

    def shuffle(self, messages: list[dict[str, Any]], function: str) -> None:
        if self.active and self._targets(function) and self.plan.reorder and len(messages) > 1:
            before = [m["MessageId"] for m in messages]
            self._rng("reorder").shuffle(messages)
            if [m["MessageId"] for m in messages] != before:
                self.stats["batches_reordered"] += 1

    def poison(self, function: str) -> str | None:
        """The body of a poison message to send to the inbox of `function` on this poll, or None."""
        if not self.active or not self._targets(function) or not self._roll("poison", self.plan.poison_rate):
            return None
        number = self.stats["poison_injected"] + 1
        kind = POISON_KINDS[(number - 1) % len(POISON_KINDS)]
        body = poison_body(kind, number)
        self.stats["poison_injected"] += 1
        self.poison_bodies[body] = kind
        return body


def poison_body(kind: str, number: int) -> str:
    """A malformed inbox message of `kind`; `number` makes each body unique (the checker finds it in a DLQ)."""
    if kind == "not-json":
        return f"localcloud poison #{number}: not JSON {{"
    envelope: dict[str, Any] = {
        "version": "0",
        "id": f"localcloud-poison-{number}",
        "detail-type": "OrderPlaced",
        "source": "converge.orders",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "metadata": {
                "event_id": f"localcloud-poison-{number}",
                "event_type": "OrderPlaced",
                "schema_version": 1,
                "entity": "order",
                "entity_id": f"poison-{number}",
                "entity_version": 1,
                "correlation_id": f"poison-{number}",
                "occurred_at": "2026-01-01T00:00:00Z",
                "producer": "orders",
            },
            "data": {},
        },
    }
    if kind == "unknown-detail-type":
        envelope["detail-type"] = envelope["detail"]["metadata"]["event_type"] = "LocalcloudPoisonHappened"
    elif kind == "wrong-schema-version":
        envelope["detail"]["metadata"]["schema_version"] = 99
    elif kind == "missing-metadata":
        del envelope["detail"]["metadata"]
    return json.dumps(envelope)


def _detail_type(body: str) -> str | None:
    """The detail-type of an inbox message's EventBridge event, or None if the body is not one."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    detail_type = event.get("detail-type") if isinstance(event, dict) else None
    return detail_type if isinstance(detail_type, str) else None

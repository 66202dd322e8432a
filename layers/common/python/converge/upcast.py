"""Versions of the event contract: the newest of each type, the one before it, and the steps between them.

Producers emit the newest version of a type unless their function pins an older one (`EMIT_SCHEMA_VERSIONS`,
the setting a rollout uses while consumers still run the older code). Consumers accept the newest version and
the one before; the envelope upcasts the older one to the newest before anything sees it, so one service can
deploy before the others (docs/events.md, "Versions"). Each step is data: the previous version's payload model,
and a pure function each way. A version two behind the newest is malformed: its consumers are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from converge import events as ev

Payload = dict[str, Any]


@dataclass(frozen=True)
class Previous:
    """The version before a type's newest one: what it still accepts, and how it converts to and from it."""

    version: int
    model: type[ev.EventData]
    upcast: Callable[[Payload], Payload]  # a payload of `version` -> the newest version's payload
    downcast: Callable[[Payload], Payload]  # the newest payload -> what a producer pinned to `version` emits


def priced_order(data: Payload) -> Payload:
    """Order v1 -> v2: an order from before prices has no currency (ISO 4217 "XXX") and every unit price 0.

    Also what the orders service reads an item written before v2 as (a priced item is left as it is)."""
    if "currency" in data:
        return data
    lines = [{**line, "unit_price": 0} for line in data.get("lines") or []]
    return {**data, "currency": ev.NO_CURRENCY, "lines": lines}


def unpriced_order(data: Payload) -> Payload:
    """Order v2 -> v1: the order without its currency and its lines' prices (what v1's consumers read)."""
    lines = [{k: v for k, v in line.items() if k != "unit_price"} for line in data.get("lines") or []]
    return {**{k: v for k, v in data.items() if k != "currency"}, "lines": lines}


# event type -> its previous version (types with one version have none). A new version of a type moves its
# current model here (as the `...V<N>` class of converge.events) with the two steps, and `make schemas` releases it.
PREVIOUS: Mapping[str, Previous] = {
    event_type: Previous(1, model, priced_order, unpriced_order) for event_type, model in ev.ORDER_EVENTS_V1.items()
}


def latest_version(event_type: str) -> int:
    """The version producers of `event_type` emit by default."""
    previous = PREVIOUS.get(event_type)
    return ev.SCHEMA_VERSION if previous is None else previous.version + 1


def accepted_versions(event_type: str) -> tuple[int, ...]:
    """The versions consumers accept: the newest and, if it has one, the one before (oldest first)."""
    previous = PREVIOUS.get(event_type)
    newest = latest_version(event_type)
    return (newest,) if previous is None else (previous.version, newest)


def model_for(event_type: str, version: int, newest: type[ev.EventData]) -> type[ev.EventData]:
    """The payload model of one accepted version (`newest` is the type's current model, from its registry)."""
    if version == latest_version(event_type):
        return newest
    previous = PREVIOUS.get(event_type)
    if previous is None or version != previous.version:
        raise LookupError(f"{event_type} has no schema version {version}")
    return previous.model


def parse_emit_versions(text: str) -> dict[str, int]:
    """`EMIT_SCHEMA_VERSIONS` ("OrderPlaced=1,OrderConfirmed=1") -> {event type: version}; ValueError if it names
    a version consumers would not accept (a pin is a rollout's step back, never two)."""
    pins: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        event_type, sep, number = part.partition("=")
        if not sep or not number.strip().isdigit():
            raise ValueError(f"EMIT_SCHEMA_VERSIONS: {part!r} is not <EventType>=<version>")
        version = int(number)
        if version not in accepted_versions(event_type.strip()):
            raise ValueError(f"EMIT_SCHEMA_VERSIONS: {event_type.strip()} is not emitted as version {version}")
        pins[event_type.strip()] = version
    return pins

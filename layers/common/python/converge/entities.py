"""An entity kind's items in its service's table, written one way (docs/items.md).

`EntityTable` is built from a declared `EntityLayout` (converge.projections) and a table name (the function's
settings), so no service spells a key prefix or a sort key. Every entity write carries the same five attributes
besides the entity's state: `version` (the entity's own), and the stamp set here, once: `event_type` (the event
the write stands for), `correlation_id`, `updated_at` and `recon_bucket` (the reconciler's changed-since index,
converge.reconcile_index). A failed condition is the layer's ConcurrentUpdateError, never a ClientError.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol, TypeVar, cast

from botocore.exceptions import ClientError

from converge import aws
from converge.dynamo import from_item, is_conditional_check_failure, to_item
from converge.errors import ConcurrentUpdateError
from converge.projections import EntityLayout
from converge.reconcile_index import BUCKET_ATTRIBUTE, UPDATED_AT_ATTRIBUTE, bucket_of

# The stamp's attribute names, in the order an update expression sets them.
EVENT_TYPE, CORRELATION_ID = "event_type", "correlation_id"
STAMP_ATTRIBUTES = (EVENT_TYPE, CORRELATION_ID, UPDATED_AT_ATTRIBUTE, BUCKET_ATTRIBUTE)
# The stamp as a clause of a hand-built update's SET; its values come from EntityTable.stamp_values.
STAMP_SET = ", ".join(f"{name} = :{name}" for name in STAMP_ATTRIBUTES)


T = TypeVar("T")


def decide_again(attempts: int, attempt: Callable[[], T], on_lost: Callable[[], None]) -> T:
    """Run `attempt` (read, decide, write conditionally) until it does not lose a race, at most `attempts` times.

    Each lost race (ConcurrentUpdateError) is reported to `on_lost` and decided again on fresh state; the last
    one is raised (an API answers 409, a consumer's record is retried by SQS)."""
    for remaining in reversed(range(attempts)):
        try:
            return attempt()
        except ConcurrentUpdateError:
            if not remaining:
                raise
            on_lost()
    raise ValueError(f"attempts must be at least 1, not {attempts}")


def utc_now() -> str:
    """The time an entity write is stamped with (ISO 8601, UTC)."""
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class WriteContext:
    """Who asked for a write (its correlation id) and when: what every write stamps besides the event type."""

    correlation_id: str
    updated_at: str

    @classmethod
    def now(cls, correlation_id: str) -> WriteContext:
        return cls(correlation_id, utc_now())


class Stamped(Protocol):
    """An entity model that carries its own stamp values (the event it stands for, who asked, when)."""

    @property
    def event_type(self) -> str: ...

    @property
    def correlation_id(self) -> str: ...

    @property
    def updated_at(self) -> str: ...


class Versioned(Stamped, Protocol):
    """An entity model with a status and a version: what a conditional replace compares."""

    @property
    def status(self) -> Enum: ...

    @property
    def version(self) -> int: ...


def context_of(entity: Stamped) -> WriteContext:
    return WriteContext(entity.correlation_id, entity.updated_at)


class EntityTable:
    """The items of one entity kind (`layout`) in the table `name`: keys, reads, and stamped conditional writes."""

    def __init__(self, name: str, layout: EntityLayout) -> None:
        self.name = name
        self.layout = layout
        self.entity = layout.sk.lower()  # how messages name it: "order", "shipment", "reservation", "product"

    def pk(self, entity_id: str) -> str:
        return self.layout.key(entity_id)[0]

    def key(self, entity_id: str) -> dict[str, Any]:
        """The item's key as a DynamoDB attribute map."""
        pk, sk = self.layout.key(entity_id)
        return to_item({"pk": pk, "sk": sk})

    def stamp(self, entity_id: str, event_type: str, context: WriteContext) -> dict[str, Any]:
        """The stamp's attributes (plain values) of a write of `entity_id` standing for `event_type`."""
        values = (event_type, context.correlation_id, context.updated_at, bucket_of(self.pk(entity_id)))
        return dict(zip(STAMP_ATTRIBUTES, values, strict=True))

    def stamp_values(self, entity_id: str, event_type: str, context: WriteContext) -> dict[str, Any]:
        """The values of STAMP_SET in a hand-built update (an attribute map)."""
        return to_item({f":{k}": v for k, v in self.stamp(entity_id, event_type, context).items()})

    def item(self, entity_id: str, state: Mapping[str, Any], event_type: str, context: WriteContext) -> dict[str, Any]:
        """The whole item (an attribute map): key, state (None values left out) and stamp."""
        return {**self.key(entity_id), **to_item({**state, **self.stamp(entity_id, event_type, context)})}

    def get(self, entity_id: str) -> dict[str, Any] | None:
        """The stored item (plain values), read consistently, or None."""
        item = aws.dynamodb().get_item(TableName=self.name, Key=self.key(entity_id), ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def create(
        self, entity_id: str, state: Mapping[str, Any], event_type: str, context: WriteContext
    ) -> dict[str, Any] | None:
        """Write a new item unless one exists; None if written, else the stored item (plain) and nothing written.

        One request: the key is the idempotency record, and DynamoDB hands back the stored item with the failed
        condition (ReturnValuesOnConditionCheckFailure), so a replay needs no extra read."""
        try:
            aws.dynamodb().put_item(
                TableName=self.name,
                Item=self.item(entity_id, state, event_type, context),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_conditional_check_failure(exc):
                raise
            # botocore's error type does not declare the item ReturnValuesOnConditionCheckFailure adds.
            stored = cast(dict[str, Any], exc.response).get("Item")
            existing = from_item(stored) if stored else self.get(entity_id)
            if existing is None:  # deleted in between: as if it had changed under us
                raise ConcurrentUpdateError(f"{self.entity} {entity_id} changed while it was created") from exc
            return existing
        return None

    def create_entity(self, entity_id: str, entity: Stamped, state: Mapping[str, Any]) -> dict[str, Any] | None:
        """`create` for a model that carries its stamp values: None if written, else the stored item."""
        return self.create(entity_id, state, entity.event_type, context_of(entity))

    def replace(
        self,
        entity_id: str,
        current: Versioned,
        updated: Versioned,
        state: Mapping[str, Any],
        remove: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Write `state` (and `updated`'s stamp) if the stored status and version are still `current`'s; the item as
        written. ConcurrentUpdateError if the entity changed (or vanished) since it was read."""
        return self.update(
            entity_id,
            state,
            event_type=updated.event_type,
            context=context_of(updated),
            expected={"status": current.status.value, "version": current.version},
            remove=remove,
        )

    def update(
        self,
        entity_id: str,
        state: Mapping[str, Any],
        *,
        event_type: str,
        context: WriteContext,
        expected: Mapping[str, Any] | None = None,
        expected_in: Mapping[str, Collection[Any]] | None = None,
        increments: Mapping[str, int] | None = None,
        remove: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Set `state` (and the stamp) on the stored item if it still holds `expected` (attribute -> value) and its
        `expected_in` attributes are among the given values; add `increments` to numbers; remove `remove`.

        Returns the item as written (plain). ConcurrentUpdateError if the condition failed: the entity changed
        since it was read, or it does not exist (an update never creates an entity)."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}

        def name(attribute: str) -> str:
            placeholder = f"#n{len(names)}"
            names[placeholder] = attribute
            return placeholder

        def value(v: Any) -> str:
            placeholder = f":v{len(values)}"
            values[placeholder] = v
            return placeholder

        stamped = {**state, **self.stamp(entity_id, event_type, context)}
        sets = [f"{name(a)} = {value(v)}" for a, v in stamped.items()]
        sets += [f"{(n := name(a))} = {n} + {value(step)}" for a, step in (increments or {}).items()]
        expression = "SET " + ", ".join(sets)
        if remove:
            expression += " REMOVE " + ", ".join(name(a) for a in remove)
        conditions = [f"{name(a)} = {value(v)}" for a, v in (expected or {}).items()]
        for attribute, options in (expected_in or {}).items():
            conditions.append(f"{name(attribute)} IN ({', '.join(value(v) for v in sorted(options))})")
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": self.key(entity_id),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(values),
            "ReturnValues": "ALL_NEW",
        }
        if conditions:
            request["ConditionExpression"] = " AND ".join(conditions)
        try:
            response = aws.dynamodb().update_item(**request)
        except ClientError as exc:
            if is_conditional_check_failure(exc):
                raise ConcurrentUpdateError(f"{self.entity} {entity_id} changed since it was read") from exc
            raise
        return from_item(response["Attributes"])

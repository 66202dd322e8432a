"""AWS adapters of the segmented sweep: one page of a parallel-scan segment, and the sweep's checkpoints, tallies
and suspects in the reconciler's state table.

Items (ReconcilerStateTable, pk / sk):
- `SWEEP` / `CURRENT`: the sweep under way or the last one (`reconciler.health.SweepHeader`);
- `SWEEP#<id>` / `SEGMENT#<table>#<n>` and `COUNTERS#inventory#<n>`: one segment's checkpoint (`SegmentState`);
- `TALLY#<id>#<product>` / `<segment>#<page>`: the quantity one page's RESERVED reservations hold of a product;
- `RECOUNT#<id>` / `PENDING`: products whose `reserved` the tally could not confirm (written while the sweep ran),
  with the version each had when the last re-tally began (`Recounts`);
- `RECONCILER` / `SWEEP_SUSPECTS`: entities a sweep found different, checked again by the incremental passes.
Every sweep item but the header expires (`expires_at`) a week after it was written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from converge import aws
from converge.dynamo import from_item, is_conditional_check_failure, to_item
from reconciler.health import SweepHeader
from reconciler.store import SWEEP_KEY as HEADER_KEY
from reconciler.store import ReadCost

SUSPECTS_KEY = {"pk": "RECONCILER", "sk": "SWEEP_SUSPECTS"}
KEPT_SECONDS = 7 * 24 * 3600
# A state item holds at most 400 KB; past this many suspects a sweep leaves the rest to the next sweep.
MAX_SWEEP_SUSPECTS = 5000
# The products one sweep re-tallies (an id and a version each, in one item; each re-tally worker holds the ids).
MAX_PENDING_RECOUNTS = 5000
BATCH_WRITE_MAX = 25


class SweepConflict(RuntimeError):
    """Another worker moved this sweep or segment since it was read: this one stops and leaves it to that one."""


@dataclass(frozen=True)
class SegmentState:
    """One segment's checkpoint: where its scan stands and what it has counted so far."""

    sweep_id: str
    phase: str  # "SEGMENT" (compare) or "COUNTERS" (recount products' reserved)
    table: str
    segment: int
    total_segments: int
    cursor: dict[str, Any] | None = None  # the scan's LastEvaluatedKey (DynamoDB JSON), None at the start
    done: bool = False
    pages: int = 0
    invocations: int = 0
    items_read: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # report counters, summed by the sweep's finish

    @property
    def key(self) -> dict[str, str]:
        return {"pk": f"SWEEP#{self.sweep_id}", "sk": f"{self.phase}#{self.table}#{self.segment}"}


def create_header(state_table: str, header: SweepHeader, replaces: str | None) -> None:
    """Start a new sweep; SweepConflict if another start replaced `replaces` (the header read) first."""
    condition = "attribute_not_exists(pk)" if replaces is None else "sweep_id = :replaces"
    values = None if replaces is None else to_item({":replaces": replaces})
    try:
        aws.dynamodb().put_item(
            TableName=state_table,
            Item=to_item({**HEADER_KEY, **header.model_dump(mode="json")}),
            ConditionExpression=condition,
            **({"ExpressionAttributeValues": values} if values else {}),  # type: ignore[arg-type]
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            raise SweepConflict("another start created a sweep first") from exc
        raise


def update_header(state_table: str, sweep_id: str, **changes: Any) -> None:
    """Set attributes of the header of `sweep_id` (a header that moved on to another sweep is left alone)."""
    _update(state_table, HEADER_KEY, sweep_id, set_=changes)


def add_to_header(state_table: str, sweep_id: str, progress_at: str, **increments: int) -> None:
    _update(state_table, HEADER_KEY, sweep_id, set_={"progress_at": progress_at}, add=increments)


def _update(
    state_table: str, key: Mapping[str, str], sweep_id: str, set_: Mapping[str, Any], add: Mapping[str, int] = {}
) -> None:
    names = {f"#s{i}": name for i, name in enumerate(set_)} | {f"#a{i}": name for i, name in enumerate(add)}
    values = {f":s{i}": value for i, value in enumerate(set_.values())}
    values |= {f":a{i}": value for i, value in enumerate(add.values())}
    parts = ["SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(set_)))] if set_ else []
    if add:
        parts.append("ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(add))))
    try:
        aws.dynamodb().update_item(
            TableName=state_table,
            Key=to_item(dict(key)),
            UpdateExpression=" ".join(parts),
            ConditionExpression="sweep_id = :sweep",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item({**values, ":sweep": sweep_id}),
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            raise SweepConflict(f"sweep {sweep_id} is no longer the current one") from exc
        raise


def _plain_fields(state: Any) -> dict[str, Any]:
    return {name: getattr(state, name) for name in state.__dataclass_fields__}


# ---------------------------------------------------------------- segments
def create_segments(state_table: str, segments: Iterable[SegmentState]) -> None:
    expires_at = int(time.time()) + KEPT_SECONDS
    _batch_write(state_table, [{**s.key, **_segment_item(s), "expires_at": expires_at} for s in segments])


def _segment_item(state: SegmentState) -> dict[str, Any]:
    item = _plain_fields(state)
    item["cursor"] = json.dumps(state.cursor) if state.cursor is not None else None
    return item


def load_segment(state_table: str, sweep_id: str, phase: str, table: str, segment: int) -> SegmentState | None:
    key = {"pk": f"SWEEP#{sweep_id}", "sk": f"{phase}#{table}#{segment}"}
    response = aws.dynamodb().get_item(TableName=state_table, Key=to_item(key), ConsistentRead=True)
    return _segment_of(from_item(response["Item"])) if "Item" in response else None


def _segment_of(item: Mapping[str, Any]) -> SegmentState:
    names = SegmentState.__dataclass_fields__
    fields = {k: v for k, v in item.items() if k in names}
    fields["cursor"] = json.loads(item["cursor"]) if item.get("cursor") else None
    return SegmentState(**fields)


def segments_of(state_table: str, sweep_id: str, cost: ReadCost | None = None) -> Iterator[SegmentState]:
    """Every segment checkpoint of one sweep (a Query of its partition, paginated)."""
    paginator = aws.dynamodb().get_paginator("query")
    pages = paginator.paginate(
        TableName=state_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=to_item({":pk": f"SWEEP#{sweep_id}"}),
        ConsistentRead=True,
    )
    for page in pages:
        for item in page.get("Items", []):
            yield _segment_of(from_item(item))


def checkpoint(state_table: str, before: SegmentState, after: SegmentState) -> None:
    """Save a segment's progress if no other worker saved it since `before` was read (SweepConflict if one did)."""
    try:
        aws.dynamodb().put_item(
            TableName=state_table,
            Item=to_item({**after.key, **_segment_item(after), "expires_at": int(time.time()) + KEPT_SECONDS}),
            ConditionExpression="pages = :pages AND done = :false",
            ExpressionAttributeValues=to_item({":pages": before.pages, ":false": False}),
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            raise SweepConflict(f"segment {after.key['sk']} of sweep {after.sweep_id} moved on") from exc
        raise


def scan_page(
    table_name: str,
    segment: int,
    total_segments: int,
    cursor: dict[str, Any] | None,
    limit: int,
    cost: ReadCost,
    role: str,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of a parallel-scan segment (strongly consistent): its items and the key to continue from (None:
    the segment is done)."""
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "Segment": segment,
        "TotalSegments": total_segments,
        "Limit": limit,
        "ConsistentRead": True,
        "ReturnConsumedCapacity": "TOTAL",
    }
    if cursor is not None:
        kwargs["ExclusiveStartKey"] = cursor
    page: dict[str, Any] = dict(aws.dynamodb().scan(**kwargs))
    cost.add(role, int(page.get("ScannedCount", 0)), page.get("ConsumedCapacity"))
    return [from_item(item) for item in page.get("Items", [])], page.get("LastEvaluatedKey")


# ---------------------------------------------------------------- tallies (the reserved counters' ledger)
def page_id(segment: int, cursor: dict[str, Any] | None) -> str:
    """A page's identity within a segment: where it starts. A page read again after a retry starts at the same
    key, so its tally overwrites the first one's: nothing is counted twice."""
    start = hashlib.sha256(json.dumps(cursor, sort_keys=True).encode()).hexdigest()[:16] if cursor else "start"
    return f"{segment:05d}#{start}"


def write_tally(state_table: str, sweep_id: str, page: str, held: Mapping[str, int]) -> None:
    expires_at = int(time.time()) + KEPT_SECONDS
    _batch_write(
        state_table,
        [
            {"pk": f"TALLY#{sweep_id}#{product_id}", "sk": page, "quantity": quantity, "expires_at": expires_at}
            for product_id, quantity in sorted(held.items())
        ],
    )


def tallied(state_table: str, sweep_id: str, product_id: str, cost: ReadCost) -> int:
    """What the sweep's pages counted of one product's RESERVED reservations (0 if none)."""
    paginator = aws.dynamodb().get_paginator("query")
    total = 0
    for page in paginator.paginate(
        TableName=state_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=to_item({":pk": f"TALLY#{sweep_id}#{product_id}"}),
        ConsistentRead=True,
        ReturnConsumedCapacity="TOTAL",
    ):
        cost.add("state", int(page.get("ScannedCount", 0)), page.get("ConsumedCapacity"))
        total += sum(int(from_item(item)["quantity"]) for item in page.get("Items", []))
    return total


# ---------------------------------------------------------------- recounts the tally could not confirm
@dataclass(frozen=True)
class Recounts:
    """The products a sweep re-tallies: `versions` as read when re-tally `round` began (empty before the first)."""

    products: frozenset[str] = frozenset()
    versions: dict[str, int] = field(default_factory=dict)
    round: int = 0


def _recount_key(sweep_id: str) -> dict[str, str]:
    return {"pk": f"RECOUNT#{sweep_id}", "sk": "PENDING"}


def add_pending_recounts(state_table: str, sweep_id: str, products: Iterable[str]) -> bool:
    """Add products to a sweep's pending recounts (a string set: concurrent pages add safely). False when full."""
    ids = sorted(set(products))
    if not ids:
        return True
    try:
        aws.dynamodb().update_item(
            TableName=state_table,
            Key=to_item(_recount_key(sweep_id)),
            UpdateExpression="ADD #products :ids, #size :n SET expires_at = :expires",
            ConditionExpression="attribute_not_exists(#size) OR #size < :max",
            ExpressionAttributeNames={"#products": "products", "#size": "size"},
            ExpressionAttributeValues={":ids": {"SS": ids}}
            | to_item({":n": len(ids), ":max": MAX_PENDING_RECOUNTS, ":expires": int(time.time()) + KEPT_SECONDS}),
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            return False
        raise
    return True


def load_recounts(state_table: str, sweep_id: str) -> Recounts:
    response = aws.dynamodb().get_item(TableName=state_table, Key=to_item(_recount_key(sweep_id)), ConsistentRead=True)
    item = from_item(response["Item"]) if "Item" in response else {}
    versions = {str(k): int(v) for k, v in (item.get("versions") or {}).items()}
    return Recounts(frozenset(item.get("products") or ()), versions, int(item.get("round") or 0))


def save_recounts(state_table: str, sweep_id: str, recounts: Recounts) -> None:
    """Replace the pending recounts (only the confirm task writes them once the counters are done: no race)."""
    item: dict[str, Any] = {
        **_recount_key(sweep_id),
        "size": len(recounts.products),
        "versions": recounts.versions,
        "round": recounts.round,
        "expires_at": int(time.time()) + KEPT_SECONDS,
    }
    if recounts.products:  # a string set cannot be empty
        item["products"] = set(recounts.products)
    aws.dynamodb().put_item(TableName=state_table, Item=to_item(item))


def save_segment(state_table: str, state: SegmentState) -> None:
    """Write a segment's state whatever it was (a task that is done in one invocation, run again on a retry)."""
    item = {**state.key, **_segment_item(state), "expires_at": int(time.time()) + KEPT_SECONDS}
    aws.dynamodb().put_item(TableName=state_table, Item=to_item(item))


# ---------------------------------------------------------------- suspects
def add_suspects(state_table: str, products: Iterable[str], orders: Iterable[str]) -> bool:
    """Add entities to the sweep's suspects (string sets: concurrent pages add safely). False when the item is
    full (`size` counts what was added): those entities are found again by the next sweep."""
    sets = {name: sorted(set(ids)) for name, ids in (("products", products), ("orders", orders))}
    sets = {name: ids for name, ids in sets.items() if ids}
    if not sets:
        return True
    try:
        aws.dynamodb().update_item(
            TableName=state_table,
            Key=to_item(SUSPECTS_KEY),
            UpdateExpression="ADD " + ", ".join(f"#{n} :{n}" for n in [*sets, "size"]),
            ConditionExpression="attribute_not_exists(#size) OR #size < :max",
            ExpressionAttributeNames={f"#{n}": n for n in [*sets, "size"]},
            ExpressionAttributeValues={f":{n}": {"SS": ids} for n, ids in sets.items()}
            | to_item({":size": sum(len(ids) for ids in sets.values()), ":max": MAX_SWEEP_SUSPECTS}),
        )
    except ClientError as exc:
        if is_conditional_check_failure(exc):
            return False
        raise
    return True


def load_suspects(state_table: str) -> tuple[frozenset[str], frozenset[str]]:
    """The sweep's suspects: (products, orders)."""
    response = aws.dynamodb().get_item(TableName=state_table, Key=to_item(SUSPECTS_KEY), ConsistentRead=True)
    item = from_item(response["Item"]) if "Item" in response else {}
    return frozenset(item.get("products") or ()), frozenset(item.get("orders") or ())


def remove_suspects(state_table: str, products: Iterable[str], orders: Iterable[str]) -> None:
    """Take checked entities out of the sweep's suspects (the incremental pass has them now)."""
    sets = {name: sorted(set(ids)) for name, ids in (("products", products), ("orders", orders))}
    sets = {name: ids for name, ids in sets.items() if ids}
    if not sets:
        return
    aws.dynamodb().update_item(
        TableName=state_table,
        Key=to_item(SUSPECTS_KEY),
        UpdateExpression="DELETE " + ", ".join(f"#{n} :{n}" for n in sets) + " ADD #size :minus",
        ExpressionAttributeNames={f"#{n}": n for n in [*sets, "size"]},
        ExpressionAttributeValues={f":{n}": {"SS": ids} for n, ids in sets.items()}
        | to_item({":minus": -sum(len(ids) for ids in sets.values())}),
    )


def _batch_write(table_name: str, items: list[dict[str, Any]]) -> None:
    client = aws.dynamodb()
    for start in range(0, len(items), BATCH_WRITE_MAX):
        pending: list[Any] = [{"PutRequest": {"Item": to_item(i)}} for i in items[start : start + BATCH_WRITE_MAX]]
        for attempt in range(8):
            response: dict[str, Any] = dict(client.batch_write_item(RequestItems={table_name: pending}))
            pending = list(response.get("UnprocessedItems", {}).get(table_name, []))
            if not pending:
                break
            time.sleep(min(0.05 * 2**attempt, 2.0))
        if pending:
            raise RuntimeError(f"{len(pending)} items of {table_name} still unprocessed")

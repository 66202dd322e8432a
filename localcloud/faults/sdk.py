"""Faults at the functions' SDK calls: botocore hooks (handler crashes and timeouts, throttles, PutEvents entry
failures) and the SDK clock, whose retry backoff is counted, not slept."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localcloud.faults.plan import FaultPlan, PlannedFaults

INJECTED_MESSAGE = "localcloud injected fault"


class InjectedFault(RuntimeError):
    """A handler exception injected by localcloud."""


class InjectedTimeout(BaseException):
    """A timeout injected by localcloud; a BaseException so that no handler code catches it."""


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


class SdkFaults(PlannedFaults):
    """The faults of the invocations and of the SDK calls they make (what the botocore hooks dispatch to)."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        super().__init__(plan)
        self.sdk_backoff_seconds = 0.0
        self._local = threading.local()
        # Called with (function, entries accepted by the bus) after every PutEvents of a function.
        self.published_listeners: list[Callable[[str, list[dict[str, Any]]], None]] = []

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
_injectors: list[SdkFaults] = []  # the injectors of the running LocalClouds (usually one)
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


def register(injector: SdkFaults) -> None:
    with _registry_lock:
        _install_hooks()
        if injector not in _injectors:
            _injectors.append(injector)


def unregister(injector: SdkFaults) -> None:
    with _registry_lock:
        if injector in _injectors:
            _injectors.remove(injector)

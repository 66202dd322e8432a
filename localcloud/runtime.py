"""Running the template's functions in-process, one at a time, with the environment the stack gives them.

All functions share one interpreter (and the layer's module-level caches), so an invocation:
- holds a lock (invocations are serial, as if every function had reserved concurrency 1),
- sets os.environ to the function's environment (resolved by the deployed stack) and restores it afterwards,
- clears the layer's cached settings before and after,
- captures what the function writes to stdout (Powertools Logger JSON lines, EMF metrics blobs).
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from localcloud.context import LambdaContext
from localcloud.faults import FaultInjector, InjectedTimeout
from localcloud.ledger import Ledger
from localcloud.loader import load_handler


@dataclass(frozen=True)
class Function:
    """A deployed function: its physical identity and how to run its code here."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...] = ()


@dataclass
class FunctionError:
    """What Lambda reports for an invocation that raised (errorType/errorMessage/stackTrace) or timed out."""

    error_type: str
    message: str
    trace: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"errorType": self.error_type, "errorMessage": self.message, "stackTrace": self.trace}


@dataclass
class Invocation:
    function: str
    request_id: str
    event: Any
    response: Any = None
    error: FunctionError | None = None
    logs: str = ""
    duration_ms: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class _Tee(io.TextIOBase):
    """Writes go to the real stream and, while an invocation runs, to its buffer."""

    def __init__(self, real: TextIO) -> None:
        self.real = real
        self.buffer_: io.StringIO | None = None
        self.echo = False

    def write(self, text: str) -> int:
        if self.buffer_ is not None:
            self.buffer_.write(text)
            if self.echo:
                self._stream().write(text)
            return len(text)
        return self._stream().write(text)

    def flush(self) -> None:
        self._stream().flush()

    def _stream(self) -> TextIO:
        # The stream this tee replaced may have been closed since (a test harness's capture of an earlier test).
        return sys.__stdout__ if getattr(self.real, "closed", False) and sys.__stdout__ else self.real


def emf_metrics(logs: str) -> dict[str, float]:
    """Sum the metric values of the CloudWatch EMF blobs in a function's output."""
    totals: defaultdict[str, float] = defaultdict(float)
    for line in logs.splitlines():
        line = line.strip()
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                value = blob.get(metric["Name"])
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] += sum(float(v) for v in values if isinstance(v, int | float))
    return dict(totals)


class Runtime:
    """Invokes functions in-process, serially, each in its own environment."""

    def __init__(self, functions: dict[str, Function], base_environment: dict[str, str], *, echo_logs: bool = False):
        self.functions = functions
        self.base_environment = base_environment
        self.echo_logs = echo_logs
        self.lock = threading.RLock()
        self.history: list[Invocation] = []
        self.keep_history = True
        self.listeners: list[Callable[[Invocation], None]] = []
        self.metrics: defaultdict[str, float] = defaultdict(float)
        self.invocations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.faults = FaultInjector()  # inactive unless the LocalCloud has a FaultPlan
        self.ledger = Ledger()  # what happened to every event (localcloud/ledger.py)
        self.faults.published_listeners.append(self.ledger.on_published)

    def by_arn(self, arn: str) -> Function:
        for function in self.functions.values():
            if arn in (function.arn, function.name) or arn.startswith(function.arn + ":"):
                return function
        raise KeyError(f"no function with ARN {arn}")

    @contextmanager
    def _environment(self, function: Function, context: LambdaContext) -> Iterator[None]:
        env = {
            **self.base_environment,
            **function.environment,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
            "AWS_LAMBDA_LOG_STREAM_NAME": context.log_stream_name,
            "_HANDLER": function.handler,
            "LAMBDA_TASK_ROOT": str(function.code_dir),
        }
        # Only the function's keys are set and restored (never a wholesale clear: the pump thread reads the
        # process environment concurrently, e.g. when it creates a client).
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        _clear_layer_caches()
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            _clear_layer_caches()

    @contextmanager
    def _capture(self) -> Iterator[io.StringIO]:
        """Capture stdout, including logging handlers that hold a reference to the stream they were given."""
        buffer = io.StringIO()
        real = sys.stdout
        tee = _Tee(real)
        tee.buffer_, tee.echo = buffer, self.echo_logs
        swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
        loggers = [
            logging.getLogger(),
            *[lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)],
        ]
        for lg in loggers:
            for handler in lg.handlers:
                # A logger created during an earlier invocation (Powertools' Logger at a module's first import)
                # holds that invocation's _Tee: it is this invocation's output too.
                if not isinstance(handler, logging.StreamHandler):
                    continue
                if handler.stream in (real, sys.__stdout__) or isinstance(handler.stream, _Tee):
                    swapped.append((handler, handler.stream))
                    handler.setStream(tee)  # type: ignore[arg-type]
        sys.stdout = tee  # type: ignore[assignment]
        # Lambda sends warnings (stderr) to the function's log too.
        with warnings.catch_warnings():
            warnings.simplefilter("default")

            def to_log(
                message: Warning | str,
                category: type[Warning],
                filename: str,
                lineno: int,
                file: TextIO | None = None,
                line: str | None = None,
            ) -> None:
                buffer.write(warnings.formatwarning(message, category, filename, lineno, line))

            warnings.showwarning = to_log
            try:
                yield buffer
            finally:
                sys.stdout = real
                tee.buffer_ = None  # anything still holding it writes to the real stream from now on
                for handler, stream in swapped:
                    handler.setStream(stream)

    def invoke(self, logical_id: str, event: Any, *, source: str = "sync") -> Invocation:
        """Run a function synchronously; exceptions become a FunctionError, as Lambda reports them.

        `source` says who invokes: "sync" (HTTP API, invoke), "stream", "sqs" (event source mappings) or "async"
        (schedules, rule targets); injected faults (localcloud/faults/) apply to the event-driven ones."""
        function = self.functions[logical_id]
        with self.lock:
            for layer in function.layer_dirs:
                if str(layer) not in sys.path:
                    sys.path.insert(0, str(layer))
            context = LambdaContext(
                function_name=function.name,
                timeout_seconds=float(function.timeout),
                memory_limit_in_mb=function.memory,
                aws_request_id=str(uuid.uuid4()),
            )
            invocation = Invocation(function=logical_id, request_id=context.aws_request_id, event=event)
            started = time.monotonic()
            with self._environment(function, context), self._capture() as buffer:
                self.faults.begin(logical_id, source)
                try:
                    handler = load_handler(function.code_dir, function.handler)
                    invocation.response = handler(event, context)
                    owed = self.faults.end()
                    if owed is not None:
                        raise owed
                except InjectedTimeout as exc:
                    invocation.response = None
                    invocation.error = FunctionError(
                        "Sandbox.Timedout", f"Task timed out after {function.timeout:.2f} seconds ({exc})"
                    )
                # Whatever the handler raises is a function error, reported to the caller as Lambda does.
                except Exception as exc:  # noqa: BLE001
                    invocation.response = None
                    invocation.error = FunctionError(type(exc).__name__, str(exc), traceback.format_exception(exc)[-6:])
                    if self.echo_logs:  # Lambda logs an uncaught exception with its stack trace (serve --logs)
                        print(f"{logical_id} raised:", file=sys.__stderr__)
                        traceback.print_exception(exc, file=sys.__stderr__)
                finally:
                    self.faults.end()
            invocation.duration_ms = (time.monotonic() - started) * 1000
            if invocation.error is None and invocation.duration_ms > function.timeout * 1000:
                # In-process code cannot be stopped; an overrun is reported as the timeout Lambda would report.
                invocation.error = FunctionError(
                    "Sandbox.Timedout", f"Task timed out after {function.timeout:.2f} seconds"
                )
            invocation.logs = buffer.getvalue()
            invocation.metrics = emf_metrics(invocation.logs)
            for name, value in invocation.metrics.items():
                self.metrics[name] += value
            self.invocations[logical_id] += 1
            if invocation.error is not None:
                self.errors[logical_id] += 1
            if self.keep_history:
                self.history.append(invocation)
            for listener in self.listeners:
                listener(invocation)
            return invocation


def _clear_layer_caches() -> None:
    settings_module = sys.modules.get("converge.settings")
    if settings_module is not None:
        settings_module.settings.cache_clear()
    # One interpreter holds the layer's logger and metrics for every function (in Lambda each has its own process):
    # their lines carry the service of the function now running, as POWERTOOLS_SERVICE_NAME says (Powertools'
    # `service` setter and appended keys).
    observability = sys.modules.get("converge.observability")
    if observability is not None:
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", "converge")
        observability.logger.append_keys(service=service)
        observability.metrics.service = service

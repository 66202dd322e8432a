"""The whole pipeline on localcloud: AWS requests per business operation, throughput, lag, memory.

localcloud deploys template.yaml into moto and runs every function in-process with Lambda's pollers emulated
(stream and SQS event source mappings). The benchmark drives it through the HTTP API like a client would and
observes it without touching the functions:

- requests: botocore `before-call`/`after-call` hooks on the functions' clients (converge.aws) and on
  localcloud's own clients (the emulated Lambda pollers), see bench.counting;
- invocations, billed milliseconds and the functions' EMF metrics (EventsApplied, ...): a runtime listener;
- lag: every command carries an `x-correlation-id`; services copy it into every event they cause, so the
  moment the last consumer batch holding an event of that correlation id completes is when every projection
  reflects the command.
"""

from __future__ import annotations

import json
import math
import random
import resource
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.counting import READS, WRITES, RequestCounter
from localcloud.cloud import LocalCloud
from localcloud.loader import ensure_layer_on_path, load_module
from localcloud.runtime import Invocation
from localcloud.scenario import WAREHOUSE, Principal, Tokens

POLLERS = "Lambda pollers (localcloud)"


@dataclass
class FunctionStats:
    invocations: int = 0
    billed_ms: float = 0.0  # Lambda rounds each invocation up to the next millisecond
    metrics: Counter[str] = field(default_factory=Counter)
    records: int = 0  # records or messages in the invocation's event


class Observer:
    """Counts requests, invocations and metrics per function; remembers when each correlation id converged."""

    def __init__(self, cloud: LocalCloud, *, capture_consumer_events: bool = False) -> None:
        from converge import aws  # the functions' clients: the layer caches one per service for the process

        self.cloud = cloud
        self.names = {f.name: logical_id for logical_id, f in cloud.runtime.functions.items()}
        self.counter = RequestCounter(actor_of=self._actor)
        for client in (aws.dynamodb(), aws.events(), aws.sqs()):
            self.counter.attach(client)
        for service in ("sqs", "dynamodbstreams"):
            self.counter.attach(getattr(cloud.clients, service), actor=POLLERS)
        self.consumers = {m.config.function for m in cloud.sqs_mappings.values()}
        self.publishers = {m.config.function for m in cloud.stream_mappings.values()}
        self.functions: defaultdict[str, FunctionStats] = defaultdict(FunctionStats)
        self.converged_at: dict[str, float] = {}
        self.capture = capture_consumer_events
        self.captured: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        cloud.runtime.keep_history = False
        cloud.runtime.listeners.append(self._on_invocation)

    def _actor(self) -> str:
        import os

        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        return self.names.get(name or "", name or "(driver)")

    def _on_invocation(self, invocation: Invocation) -> None:
        done = time.perf_counter()
        stats = self.functions[invocation.function]
        stats.invocations += 1
        stats.billed_ms += math.ceil(invocation.duration_ms)
        stats.metrics.update({k: v for k, v in invocation.metrics.items() if k != "ConvergenceLag"})
        records = invocation.event.get("Records", []) if isinstance(invocation.event, dict) else []
        stats.records += len(records)
        if invocation.function not in self.consumers:
            return
        if self.capture:
            self.captured[invocation.function].append(invocation.event)
        failed = set()
        if isinstance(invocation.response, dict):
            failed = {f.get("itemIdentifier") for f in invocation.response.get("batchItemFailures") or []}
        if invocation.error is not None:
            return
        for record in records:
            if record.get("messageId") in failed:
                continue
            try:
                correlation_id = json.loads(record["body"])["detail"]["metadata"]["correlation_id"]
            except (KeyError, TypeError, ValueError):
                continue
            self.converged_at[correlation_id] = done

    def reset(self) -> None:
        self.counter.reset()
        self.functions.clear()
        self.converged_at.clear()
        self.captured.clear()


class Shop:
    """Clients of the HTTP API, each with its token: customers place and cancel their own orders, the warehouse (an
    admin) sets stock and restocks. Every command carries a correlation id."""

    def __init__(self, cloud: LocalCloud, products: int, seed: int = 7) -> None:
        self.cloud = cloud
        self.rng = random.Random(seed)
        self.tokens = Tokens(cloud.token)  # one token per principal: signing is not what is measured
        self.products = [f"p-{i:04d}" for i in range(products)]
        self.orders: list[str] = []
        self.customer_of: dict[str, Principal] = {}  # order id -> the customer who placed it
        self.sent: dict[str, float] = {}  # correlation id -> when the command's source write had returned
        self.statuses: Counter[str] = Counter()
        self._n = 0

    def _call(self, kind: str, who: Principal, method: str, path: str, body: Any = None) -> Any:
        self._n += 1
        correlation_id = f"{kind}-{self._n}"
        headers = {"x-correlation-id": correlation_id}
        response = self.cloud.http(method, path, body=body, headers=headers, token=self.tokens(who))
        self.statuses[f"{kind} {response.status}"] += 1
        if response.status >= 300:
            return None
        self.sent[correlation_id] = time.perf_counter()
        return response.json()

    def set_stock(self, product: str, on_hand: int) -> None:
        self._call("set_stock", WAREHOUSE, "PUT", f"/products/{product}/stock", {"on_hand": on_hand})

    def place_order(self) -> None:
        chosen = self.rng.sample(self.products, k=min(2, len(self.products)))
        customer = Principal(f"c-{self.rng.randint(0, 99):02d}")
        body = {"lines": [{"product_id": p, "quantity": self.rng.randint(1, 3)} for p in chosen]}
        placed = self._call("place_order", customer, "POST", "/orders", body)
        if placed:
            self.orders.append(placed["order_id"])
            self.customer_of[placed["order_id"]] = customer

    def cancel_order(self) -> None:
        if self.orders:
            order_id = self.orders.pop(self.rng.randrange(len(self.orders)))
            self._call("cancel_order", self.customer_of.pop(order_id), "POST", f"/orders/{order_id}/cancel")

    def restock(self) -> None:
        product = self.rng.choice(self.products)
        delta = {"delta": self.rng.randint(1, 10)}
        self._call("restock", WAREHOUSE, "POST", f"/products/{product}/stock/adjustments", delta)


@contextmanager
def deployed(*, baseline: bool = False) -> Iterator[LocalCloud]:
    """The template on localcloud; `baseline` swaps in the one-event-per-invocation alternative."""
    ensure_layer_on_path()
    with LocalCloud() as cloud:
        restore: list[tuple[Any, str, Any]] = []
        if baseline:
            from bench.baselines import OnePerRecordSender

            # One record or message per invocation: the mappings' BatchSize, set on localcloud's emulation.
            for stream in cloud.stream_mappings.values():
                stream.config.batch_size = 1
            for queue in cloud.sqs_mappings.values():
                queue.config.batch_size = 1
            for logical_id in {m.config.function for m in cloud.stream_mappings.values()}:
                function = cloud.runtime.functions[logical_id]
                module = load_module(function.code_dir, function.handler.rsplit(".", 1)[0])
                restore.append((module, "EventSender", getattr(module, "EventSender")))  # noqa: B009
                setattr(module, "EventSender", OnePerRecordSender)  # noqa: B010
        try:
            yield cloud
        finally:
            for module, name, value in restore:
                setattr(module, name, value)


def _phase(observer: Observer, units: int) -> dict[str, Any]:
    """Everything the observer saw, per business operation (divided by `units`)."""
    counter = observer.counter
    per_function = {}
    for name, stats in sorted(observer.functions.items()):
        per_function[name] = {
            "invocations": stats.invocations / units,
            "billed_ms": stats.billed_ms / units,
            "records": stats.records / units,
            "memory_mb": observer.cloud.runtime.functions[name].memory,
            **{k: v / units for k, v in sorted(stats.metrics.items())},
        }
    requests: dict[str, dict[str, float]] = defaultdict(dict)
    for (actor, service, operation), n in sorted(counter.requests.items()):
        requests[actor][f"{service}:{operation}"] = n / units
    items = {
        f"{actor}|{service}:{operation}": n / units
        for (actor, service, operation), n in sorted(counter.items.items())
        if n != counter.requests[(actor, service, operation)]
    }
    consumer_path = {}
    for name in sorted(observer.consumers):
        applied = observer.functions[name].metrics.get("EventsApplied", 0) if name in observer.functions else 0
        stale = observer.functions[name].metrics.get("EventsSkippedStale", 0) if name in observer.functions else 0
        dynamo = counter.total(actor=name, service="dynamodb")
        reads = counter.total(actor=name, service="dynamodb", operations=READS)
        writes = counter.total(actor=name, service="dynamodb", operations=WRITES)
        consumer_path[name] = {
            "events_applied": applied,
            "events_stale": stale,
            "dynamodb_requests": dynamo,
            "reads": reads,
            "writes": writes,
            "requests_per_applied_event": round(dynamo / applied, 2) if applied else None,
        }
    return {
        "units": units,
        "functions": per_function,
        "requests": dict(requests),
        "items": items,
        "received_by_pollers": counter.received.get(POLLERS, 0) / units,
        "empty_receives_by_pollers": counter.empty_receives.get(POLLERS, 0) / units,
        "consumer_path": consumer_path,
        "raw": counter.snapshot(),
    }


OPERATIONS = ("place_order", "cancel_order", "restock")


def count_operations(n: int = 20, *, baseline: bool = False, capture: bool = False) -> dict[str, Any]:
    """AWS requests, invocations and items per business operation, each operation run `n` times then drained."""
    with deployed(baseline=baseline) as cloud:
        shop = Shop(cloud, products=10)
        observer = Observer(cloud, capture_consumer_events=capture)
        for product in shop.products:
            shop.set_stock(product, 100 * n)
        # Warm-up: the first invocation of each function imports its code (a cold start), not counted.
        shop.place_order()
        shop.cancel_order()
        shop.restock()
        cloud.run_until_quiet()
        observer.reset()
        phases: dict[str, Any] = {}
        captured: dict[str, list[dict[str, Any]]] = {}
        for operation in OPERATIONS:
            if operation == "cancel_order":
                shop.orders = shop.orders[-n:]
            for _ in range(n):
                getattr(shop, operation)()
            cloud.run_until_quiet()
            phases[operation] = _phase(observer, n)
            for name, events in observer.captured.items():
                captured.setdefault(name, []).extend(events)
            observer.reset()
        result: dict[str, Any] = {"n": n, "baseline": baseline, "phases": phases, "statuses": dict(shop.statuses)}
        if capture:
            result["consumer_redelivery"] = _redeliver(cloud, observer, captured)
            result["idempotency_baseline"] = idempotency_baseline(captured)
        return result


def _redeliver(cloud: LocalCloud, observer: Observer, captured: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Deliver every consumed message once more (a duplicate) to Converge's consumers; requests per event."""
    observer.reset()
    events = 0
    for name, batches in captured.items():
        for batch in batches:
            cloud.invoke(name, batch)
            events += len(batch["Records"])
    counter = observer.counter
    consumers = sorted(captured)
    dynamo = sum(counter.total(actor=c, service="dynamodb") for c in consumers)
    reads = sum(counter.total(actor=c, service="dynamodb", operations=READS) for c in consumers)
    return {
        "events": events,
        "dynamodb_requests_per_event": round(dynamo / events, 2) if events else None,
        "reads_per_event": round(reads / events, 2) if events else None,
    }


def idempotency_baseline(captured: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The same inbox messages through the idempotency-guarded consumer, one event per invocation, twice."""
    import boto3

    from bench.baselines import IdempotentProjectionConsumer, create_tables
    from localcloud.context import LambdaContext

    client = boto3.client("dynamodb", region_name="us-east-1")
    counter = RequestCounter()
    counter.attach(client, actor="baseline consumer")
    create_tables(client, "bench-idempotency", "bench-projection")
    counter.reset()
    consumer = IdempotentProjectionConsumer(client, "bench-idempotency", "bench-projection")
    records = [r for batches in captured.values() for batch in batches for r in batch["Records"]]
    passes = {}
    for label in ("first delivery", "redelivery"):
        counter.reset()
        for record in records:
            consumer.handle({"Records": [record]}, LambdaContext(function_name="baseline"))
        total = counter.total(service="dynamodb")
        reads = counter.total(service="dynamodb", operations=READS)
        passes[label] = {
            "events": len(records),
            "dynamodb_requests_per_event": round(total / len(records), 2) if records else None,
            "reads_per_event": round(reads / len(records), 2) if records else None,
            "by_operation": {o: n for (_, s, o), n in counter.requests.items() if s == "dynamodb"},
        }
    return passes


# ------------------------------------------------------------------------------------------------ load
def run_load(operations: int, *, seed: int = 11, pump_every: int = 10, products: int = 100) -> dict[str, Any]:
    """`operations` commands (70% orders, 15% cancels, 15% restocks) in bursts of `pump_every`, each burst
    drained by localcloud's pollers before the next (localcloud runs one poller at a time, in this thread).
    """
    with deployed() as cloud:
        shop = Shop(cloud, products=products, seed=seed)
        observer = Observer(cloud)
        for product in shop.products:
            shop.set_stock(product, 50)
        # Warm-up: the first invocation of each function imports its code (a cold start), not timed.
        shop.place_order()
        shop.cancel_order()
        shop.restock()
        cloud.run_until_quiet()
        observer.reset()
        shop.sent.clear()
        rng = random.Random(seed)
        started = time.perf_counter()
        for index in range(1, operations + 1):
            roll = rng.random()
            if roll < 0.70:
                shop.place_order()
            elif roll < 0.85:
                shop.cancel_order()
            else:
                shop.restock()
            if index % pump_every == 0:
                cloud.run_until_quiet()
        cloud.run_until_quiet()
        seconds = time.perf_counter() - started
        published = sum(s.metrics.get("EventsPublished", 0) for s in observer.functions.values())
        delivered = sum(s.records for name, s in observer.functions.items() if name in observer.consumers)
        lags = sorted(observer.converged_at[c] - t for c, t in shop.sent.items() if c in observer.converged_at)
        unconverged = sum(1 for c in shop.sent if c not in observer.converged_at)
        return {
            "operations": operations,
            "commands_accepted": len(shop.sent),
            "seconds": round(seconds, 2),
            "events_published": int(published),
            "deliveries": delivered,
            "events_per_s": round(published / seconds, 1),
            "deliveries_per_s": round(delivered / seconds, 1),
            "operations_per_s": round(operations / seconds, 1),
            "lag_ms": _percentiles(lags),
            "commands_without_consumer_event": unconverged,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "invocations": {name: s.invocations for name, s in sorted(observer.functions.items())},
            "statuses": dict(shop.statuses),
        }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(values[-1] * 1000, 1),
        "mean": round(statistics.fmean(values) * 1000, 1),
    }


def profile_load(operations: int, top: int = 15) -> dict[str, Any]:
    """pyinstrument over a load run: own time per function (top frames) and per package."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    run_load(operations)
    session = profiler.stop()
    root = session.root_frame()
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()

    def walk(frame: Any, package: str) -> None:
        # A frame's own time is in its synthetic "[self]" child; a stdlib frame's time goes to the package
        # that called it (moto's deepcopy is moto's cost).
        own_package = _package(frame.file_path or "")
        if own_package != "stdlib/interpreter" or package == "":
            package = own_package
        for child in frame.children:
            if child.is_synthetic:
                own[f"{frame.function} ({_short(frame.file_path or '')}:{frame.line_no})"] += child.time
                packages[package] += child.time
            else:
                walk(child, package)

    walk(root, "")
    total = sum(own.values()) or 1.0
    return {
        "operations": operations,
        "seconds": round(session.duration, 2),
        "top_frames": [{"frame": k, "share": round(v / total, 3)} for k, v in own.most_common(top)],
        "packages": [{"package": k, "share": round(v / total, 3)} for k, v in packages.most_common(12)],
    }


REPOSITORY = str(Path(__file__).resolve().parents[1])  # frames in the project's own files are shown relative to it


def _short(path: str) -> str:
    for marker in ("site-packages/", f"{REPOSITORY}/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path.rsplit("/", 2)[-1] if "/" in path else path


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    for part in ("localcloud", "bench", "layers/common/python/converge", "functions/"):
        if f"/{part}" in path:
            return "converge layer" if "converge" in part else ("functions" if part == "functions/" else part)
    return "stdlib/interpreter"

"""`python -m localcloud demo`: the whole system on localcloud, a scenario through the HTTP API, a convergence report.

Set stock for N products, place M orders of random lines (with some cancellations and restocks in between, while
the pipeline pumps now and then, so events interleave with commands), pump until quiet, fire the reconciler through
its schedule, pump again, and report what happened and whether every projection equals its source of truth.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localcloud import convergence
from localcloud.cloud import LocalCloud
from localcloud.faults import FaultPlan
from localcloud.runtime import Invocation
from localcloud.scenario import Mix, Scenario, api_caller
from localcloud.template import TEMPLATE_PATH, load_template

PUMP_EVERY = 4  # operations between two pump rounds while the scenario runs
SAMPLE_EVERY_PUMPS = 3  # a divergence sample scans three tables: not after every pump round


@dataclass
class Sample:
    seconds: float
    phase: str
    divergent: int
    by_projection: dict[str, int]


@dataclass
class DemoReport:
    products: int
    orders: int
    seed: int
    operations: dict[str, int] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)
    crossings: int = 0  # a cancellation and a dispatch of one order, both accepted before either was heard of
    events: dict[str, int] = field(default_factory=dict)
    pipeline: dict[str, int] = field(default_factory=dict)
    invocations: dict[str, int] = field(default_factory=dict)
    function_errors: dict[str, int] = field(default_factory=dict)
    dead_letter_queues: dict[str, int] = field(default_factory=dict)
    divergent: dict[str, int] = field(default_factory=dict)
    divergent_ids: dict[str, list[str]] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)
    reconciler_runs: int = 0
    reconciler_passes_at: list[float] = field(default_factory=list)  # seconds since start of each pass
    faults_stopped_at: float | None = None  # seconds since start, when faults were on
    seconds_scenario: float = 0.0
    seconds_to_converge: float = 0.0
    seconds_total: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    @property
    def total_divergent(self) -> int:
        return sum(self.divergent.values())


def _get_att_target(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
    return None


def dead_letter_queues(template: dict[str, Any]) -> list[str]:
    """Queues the template names as a redrive target, a rule target's DLQ or a mapping's OnFailure destination:
    where events go. Not the alarm email subscription's DLQ, where undeliverable alarms go."""
    resources = template.get("Resources", {})
    names: set[str | None] = set()
    for resource in resources.values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::SNS::Subscription":
            continue
        names.add(_get_att_target(props.get("RedrivePolicy", {}).get("deadLetterTargetArn")))
        for target in props.get("Targets", []):
            names.add(_get_att_target(target.get("DeadLetterConfig", {}).get("Arn")))
        for event in props.get("Events", {}).values():
            destination = event.get("Properties", {}).get("DestinationConfig", {}).get("OnFailure", {})
            names.add(_get_att_target(destination.get("Destination")))
    return sorted(n for n in names if n and resources.get(n, {}).get("Type") == "AWS::SQS::Queue")


# The demo's storefront: few customers and small stock, so that orders are rejected for lack of stock too.
DEMO_MIX = Mix(
    cancel=0.15,
    restock=0.10,
    dispatch=0.35,
    cross=0.05,
    stock=(0, 25),
    restock_delta=(1, 10),
    quantity=(1, 5),
    customers=10,
)


class Demo:
    def __init__(self, cloud: LocalCloud, products: int, orders: int, seed: int, progress: bool = True) -> None:
        self.cloud = cloud
        self.rng = random.Random(seed)
        self.report = DemoReport(products=products, orders=orders, seed=seed)
        self.scenario = Scenario(self.rng, products, orders, DEMO_MIX)
        self.call = api_caller(cloud)
        self.progress = progress
        self.started = time.monotonic()
        self.events: Counter[str] = Counter()
        cloud.runtime.listeners.append(self._count)
        cloud.runtime.keep_history = False

    # ------------------------------------------------------------------------------------------------ counting
    def _count(self, invocation: Invocation) -> None:
        if invocation.function == "ReconcilerFunction":
            self.report.reconciler_passes_at.append(time.monotonic() - self.started)
        metrics = invocation.metrics
        for name, label in (
            ("EventsPublished", "published"),
            ("EventsApplied", "applied"),
            ("EventsSkippedStale", "skipped_stale"),
            ("EventsRejected", "rejected"),
        ):
            self.events[label] += int(metrics.get(name, 0))
        response = invocation.response
        if isinstance(response, dict) and response.get("batchItemFailures"):
            self.events["batch_item_failures"] += len(response["batchItemFailures"])

    def sample(self, phase: str) -> convergence.Divergence:
        result = convergence.check(self.cloud.clients.dynamodb, convergence.service_tables(self.cloud))
        self.report.samples.append(Sample(time.monotonic() - self.started, phase, result.total, result.counts))
        return result

    def run(self) -> DemoReport:
        operations = self.scenario.operations()
        bar = _progress(len(operations) + 2, self.progress)
        self.sample("start")
        for index, (kind, argument) in enumerate(operations, start=1):
            self.scenario.run(kind, argument, self.call)
            if index % PUMP_EVERY == 0:
                self.cloud.pump()
                if index % (PUMP_EVERY * SAMPLE_EVERY_PUMPS) == 0:
                    self.sample("scenario")
            bar.update(1)
        self.report.seconds_scenario = time.monotonic() - self.started
        converge_started = time.monotonic()
        bar.set_description("converging")
        faulted = self.cloud.faults.active
        if faulted:
            self.report.faults_stopped_at = time.monotonic() - self.started
        self.cloud.faults.stop()
        while self.cloud.pump():
            self.sample("converging")
        if faulted:
            self._settle()
        bar.update(1)
        bar.set_description("reconciling")
        reconciled = self.cloud.advance(self._reconcile_period())
        self.report.reconciler_runs = len(reconciled)
        while self.cloud.pump():
            self.sample("reconciled")
        final = self.sample("final")
        self.report.seconds_to_converge = self._converged_at(converge_started)
        bar.update(1)
        bar.close()
        self._finish(final)
        return self.report

    def _settle(self) -> None:
        """After faults: failed messages come back after their visibility timeout (without firing schedules)."""
        for _ in range(20):
            busy = any(m.held or m.in_flight or m.depth() for m in self.cloud.sqs_mappings.values())
            if not busy:
                return
            self.cloud.clock.advance(61)
            for queue in self.cloud.sqs_mappings.values():
                queue.release_due()
            while self.cloud.pump():
                self.sample("converging")

    def _reconcile_period(self) -> float:
        due = [s.next_due for s in self.cloud.schedules.values()]
        return max(0.0, min(due) - self.cloud.clock.now()) + 1 if due else 0.0

    def _converged_at(self, converge_started: float) -> float:
        """Seconds from the end of the scenario to the first sample after which nothing diverged any more."""
        offset = converge_started - self.started
        last_divergent = max((s.seconds for s in self.report.samples if s.divergent), default=offset)
        after = [s.seconds for s in self.report.samples if s.seconds > last_divergent and s.divergent == 0]
        return max(0.0, (min(after) if after else self.report.samples[-1].seconds) - offset)

    def _finish(self, final: convergence.Divergence) -> None:
        report = self.report
        responses = self.scenario.responses
        operations: Counter[str] = Counter()
        for key, count in responses.items():
            operations[key.rsplit(" ", 1)[0]] += count
        report.operations = dict(operations)
        report.responses = dict(sorted(responses.items()))
        report.crossings = self.scenario.crossings
        report.events = dict(self.events)
        streams = self.cloud.stream_mappings.values()
        queues = self.cloud.sqs_mappings.values()
        report.pipeline = {
            "stream_records_delivered": sum(m.stats.delivered for m in streams),
            "stream_records_to_on_failure": sum(m.stats.discarded for m in streams),
            "inbox_messages_processed": sum(m.stats.delivered for m in queues),
            "inbox_messages_failed": sum(m.stats.failed for m in queues),
        }
        report.invocations = dict(self.cloud.runtime.invocations)
        report.function_errors = dict(self.cloud.runtime.errors)
        report.dead_letter_queues = {
            q: self.cloud.queue_depth(q) for q in dead_letter_queues(load_template(self.cloud.template_path))
        }
        report.divergent = final.counts
        report.divergent_ids = {k: v[:20] for k, v in final.divergent.items() if v}
        report.checked = final.checked
        report.seconds_total = time.monotonic() - self.started


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="scenario", unit="op", file=sys.stderr, leave=False)


def plot(report: DemoReport, path: Path) -> None:
    """Divergent entities over time, per projection, with the phases marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [s.seconds for s in report.samples]
    figure, axes = plt.subplots(figsize=(11, 4.5), dpi=110)
    for projection in convergence.PROJECTIONS:
        axes.step(seconds, [s.by_projection.get(projection, 0) for s in report.samples], where="post", label=projection)
    axes.step(seconds, [s.divergent for s in report.samples], where="post", color="black", linewidth=2, label="total")
    marks = [(report.seconds_scenario, "scenario ends", "grey", "--")]
    if report.faults_stopped_at is not None:
        marks.append((report.faults_stopped_at, "faults stop", "tab:red", ":"))
    marks += [
        (at, f"reconciliation pass {n}", "tab:green", "-.") for n, at in enumerate(report.reconciler_passes_at, 1)
    ]
    for at, label, color, style in marks:
        axes.axvline(at, color=color, linestyle=style, linewidth=1, label=label)
    axes.set_title(
        f"Convergence: {report.products} products, {report.orders} orders - "
        f"{report.total_divergent} divergent at the end"
    )
    axes.set_xlabel("seconds since start (wall clock)")
    axes.set_ylabel("entities whose projection differs")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    # Outside the axes, so that it never covers a line.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# What the summary's figures mean, where a figure alone would puzzle: one line each.
DISPATCH_404 = (
    "dispatches that found no shipment: the scenario dispatches placed orders at random, and shipping creates an "
    "order's shipment only on its OrderConfirmed (never for an order rejected for lack of stock or cancelled before "
    "it was confirmed; not yet for one whose confirmation is still in the pipeline)"
)
DLQ_DEPTHS = (
    "messages that failed past their retries (an inbox message received 5 times, a stream batch out of retries, an "
    "event EventBridge could not deliver); the reconciler judges each on its pass: redrives a valid event, "
    "acknowledges a stream failure, parks poison (left in its DLQ, alarmed; on AWS `python -m tools.dlq` lists it)"
)


def dispatches_not_found(responses: dict[str, int]) -> int:
    """Dispatches answered 404 (plain and crossing ones)."""
    return sum(n for key, n in responses.items() if key.endswith("dispatch 404"))


def summary(report: DemoReport) -> str:
    not_found = dispatches_not_found(report.responses)
    lines = [
        f"localcloud demo: {report.products} products, {report.orders} orders (seed {report.seed})",
        f"  operations      {report.operations}",
        f"  crossings       {report.crossings} (cancel and dispatch of one order, both accepted: dispatch wins)",
        f"  responses       {report.responses}",
        *([f"  dispatch 404    {not_found} {DISPATCH_404}"] if not_found else []),
        f"  events          {report.events}",
        f"  pipeline        {report.pipeline}",
        f"  function errors {report.function_errors or 'none'}",
        f"  reconciler runs {report.reconciler_runs}",
        f"  DLQ depths      {report.dead_letter_queues}",
        f"                  {DLQ_DEPTHS}",
        f"  checked         {report.checked}",
        f"  divergent       {report.divergent} -> {report.total_divergent} in total",
        f"  time            scenario {report.seconds_scenario:.1f}s, "
        f"converged {report.seconds_to_converge:.2f}s after it, "
        f"total {report.seconds_total:.1f}s",
    ]
    return "\n".join(lines)


def run_demo(
    products: int = 10,
    orders: int = 80,
    seed: int = 7,
    out: Path = Path("out"),
    *,
    template: Path = TEMPLATE_PATH,
    endpoint: str | None = None,
    progress: bool = True,
    faults: FaultPlan | None = None,
) -> DemoReport:
    """Run the scenario on a fresh in-process LocalCloud; writes demo-report.json and convergence.png to `out`.
    With `faults`, the scenario runs under them; they stop before the system converges."""
    with LocalCloud(template, endpoint=endpoint, faults=faults) as cloud:
        report = Demo(cloud, products, orders, seed, progress).run()
    out.mkdir(parents=True, exist_ok=True)
    document = asdict(report)
    document["total_divergent"] = report.total_divergent
    (out / "demo-report.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(report, out / "convergence.png")
    return report

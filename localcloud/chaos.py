"""`python -m localcloud chaos`: many orders under injected faults, then proof that the system converges.

1. **Faults on** (FaultPlan, default `FaultPlan.chaos`: 10% handler exceptions, 5% DynamoDB and EventBridge
   throttling, 5% PutEvents entries failed, 2% lost deliveries, 5% duplicates, 5% delayed + shuffled batches,
   poison messages; with `--drift` also source rollbacks, corrupted and deleted projection items, forged and orphan
   saga events, each rolled after every operation). Stock is set for P products, then N orders are placed through
   the HTTP API with some cancellations and restocks; the pipeline pumps every few operations and localcloud's clock
   moves, so failed messages come back after their visibility timeout and the reconciler's 5-minute schedule fires
   as on AWS.
2. **Faults stop.** Schedules are paused; the pipeline is drained (pump until quiet, let visibility timeouts
   pass, repeat) until no inbox holds a message. Divergent entities are counted: this is what the event flow alone
   left behind.
3. **Reconciliation passes**, each the reconciler's scheduled invocation (`--pass-mode scheduled`, what the
   5-minute schedule sends) or a full sweep (`--pass-mode full`), or the full sweep first and scheduled passes after
   (`--pass-mode operator`: what an operator runs after a restore, then the schedule; the default when drift faults
   are on, since a source restored with its old `updated_at`, a damaged projection of an unchanged source and a
   forged event applied to a projection are out of an incremental pass's sight), followed by a drain. Divergence is
   counted after each pass; the run needs 0 within 2 passes.
4. **The checker** (localcloud/convergence.py `verify`): projections vs sources, invariants, every event
   accounted for (processed, parked with a reason, lost-but-superseded, or lost), poison messages parked vs
   injected. The report goes to a Markdown file (out/RELIABILITY.md; docs/RELIABILITY.md with --update-docs) and a
   JSON file.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localcloud import convergence
from localcloud.cloud import LocalCloud
from localcloud.demo import dead_letter_queues
from localcloud.faults import DRIFT_KINDS, DRIFT_STATS, FaultPlan
from localcloud.runtime import Invocation
from localcloud.scenario import Scenario, api_caller
from localcloud.template import TEMPLATE_PATH, load_template

PUMP_EVERY = 4  # operations between two pump rounds (commands and events interleave)
QUIET_EVERY = 40  # operations between two runs until quiet: a backlog would make every SQS receive slower
CLOCK_STEP_EVERY = 100  # operations between two 61-second steps of localcloud's clock
CLOCK_STEP = 61.0  # just past the inboxes' 60-second visibility timeout
MAX_DRAIN_CYCLES = 40
REQUIRED_PASSES = 2
MAX_PASSES = 4  # passes run (and reported) until nothing diverges, at most
PASS_MODES = ("scheduled", "full", "operator")
DRIFT_EXAMPLES = 20  # drift faults listed in the report


@dataclass
class PassResult:
    number: int
    mode: str
    divergent: int
    divergent_by_projection: dict[str, int]
    invariant_violations: int
    republished: int = 0
    found: dict[str, int] = field(default_factory=dict)
    items_read: int = 0
    seconds: float = 0.0
    # The full sweep this pass started, as its execution's `finish` reported it (None: the pass started none):
    # status, what it recounted and what it could not confirm, republished, corrections, items read.
    sweep: dict[str, Any] | None = None


# `projection`: None for a full sweep, "reserved" for the counters sweep a pass starts after a sweep that recounted.
SWEEP_FIGURES = (
    "status", "recounts", "corrections_unconfirmed", "republished", "corrections", "items_read", "projection",
)  # fmt: skip


@dataclass
class ChaosReport:
    orders: int
    products: int
    seed: int
    pass_mode: str
    plan: dict[str, Any]
    operations: dict[str, int] = field(default_factory=dict)
    crossings: int = 0  # a cancellation and a dispatch of one order, both accepted before either was heard of
    injected: dict[str, int] = field(default_factory=dict)
    sdk_backoff_seconds_not_slept: float = 0.0
    function_errors: dict[str, int] = field(default_factory=dict)
    invocations: int = 0
    reconciler_runs_during_faults: int = 0
    divergent_after_faults: int = 0
    divergent_after_faults_by_projection: dict[str, int] = field(default_factory=dict)
    invariant_violations_after_faults: dict[str, int] = field(default_factory=dict)
    passes: list[PassResult] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    divergent_examples: dict[str, list[str]] = field(default_factory=dict)
    lost_examples: list[str] = field(default_factory=list)
    poison_injected: int = 0
    poison_parked: int = 0
    drift_examples: list[str] = field(default_factory=list)
    events_lost: int = 0
    converged_within_required_passes: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    command: str = ""

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ChaosReport:
        """A report read back from its JSON (to render the Markdown again without a new run)."""
        fields = {k: v for k, v in document.items() if k in cls.__dataclass_fields__}
        fields["passes"] = [PassResult(**p) for p in fields.get("passes", [])]
        return cls(**fields)

    @property
    def ok(self) -> bool:
        return (
            self.converged_within_required_passes
            and self.events_lost == 0
            and self.poison_parked == self.poison_injected
        )


class Chaos:
    def __init__(
        self,
        cloud: LocalCloud,
        orders: int,
        products: int,
        seed: int,
        pass_mode: str = "scheduled",
        progress: bool = True,
    ) -> None:
        if pass_mode not in PASS_MODES:
            raise ValueError(f"pass mode {pass_mode!r}: one of {PASS_MODES}")
        self.cloud = cloud
        self.rng = random.Random(seed)
        self.scenario = Scenario(self.rng, products, orders)
        self.call = api_caller(cloud)
        self.progress = progress
        self.report = ChaosReport(orders, products, seed, pass_mode, cloud.faults.plan.describe())
        self.dlqs = dead_letter_queues(load_template(cloud.template_path))
        self.parked_reasons: dict[str, str] = {}
        cloud.runtime.keep_history = False
        cloud.runtime.listeners.append(self._listen)
        self._reconciler_reports: list[dict[str, Any]] = []
        self._sweep_reports: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------------- observing
    def _listen(self, invocation: Invocation) -> None:
        finished = isinstance(invocation.event, dict) and invocation.event.get("action") == "finish"
        if invocation.function == "ReconcilerSweepFunction" and finished and isinstance(invocation.response, dict):
            self._sweep_reports.append(invocation.response)
        if invocation.function != "ReconcilerFunction":
            return
        if isinstance(invocation.response, dict):
            self._reconciler_reports.append(invocation.response)
        self.parked_reasons.update(convergence.parked_reasons(invocation.logs))

    def _note(self, text: str) -> None:
        if self.progress:
            print(f"chaos: {text}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------------------------------- scenario
    def run_scenario(self) -> None:
        self.run_operations(self.scenario.operations())

    def run_operations(
        self, operations: list[tuple[str, Any]], after_each: Callable[[int], None] | None = None
    ) -> None:
        """Run `operations` through the HTTP API with the plan's drift, pumping and stepping the clock as it goes;
        `after_each(index)` after each one (the rebuild scenario samples divergence there)."""
        started = time.monotonic()
        for index, (kind, argument) in enumerate(operations, start=1):
            self.scenario.run(kind, argument, self.call)
            self.cloud.faults.drift(self.cloud)  # drift faults, at the plan's rates per operation (none if off)
            if index % QUIET_EVERY == 0:
                self.cloud.run_until_quiet()
            elif index % PUMP_EVERY == 0:
                self.cloud.pump()
            if index % CLOCK_STEP_EVERY == 0:
                self.report.reconciler_runs_during_faults += len(self.cloud.advance(CLOCK_STEP))
            if self.progress and index % 1000 == 0:
                rate = index / (time.monotonic() - started)
                self._note(f"{index}/{len(operations)} operations ({rate:.0f}/s)")
            if after_each is not None:
                after_each(index)

    # ------------------------------------------------------------------------------------------- draining
    def _inboxes_busy(self) -> bool:
        for mapping in self.cloud.sqs_mappings.values():
            if mapping.held or mapping.in_flight or mapping.depth():
                return True
        return any(m.pending() for m in self.cloud.stream_mappings.values())

    def drain(self) -> None:
        """Pump until quiet; let visibility timeouts pass (schedules paused) until no inbox holds anything."""
        for _ in range(MAX_DRAIN_CYCLES):
            self.cloud.run_until_quiet()
            if not self._inboxes_busy():
                return
            self.cloud.advance(CLOCK_STEP)
        self._note("drain: inboxes still busy after the last cycle")

    def _pause_schedules(self) -> None:
        for schedule in self.cloud.schedules.values():
            schedule.enabled = False

    def reconcile_pass(self, number: int) -> PassResult:
        started = time.monotonic()
        schedules = sorted(
            (s for s in self.cloud.schedules.values() if any(t.function == "ReconcilerFunction" for t in s.targets)),
            key=lambda s: s._period or 86400,
        )
        mode = self.report.pass_mode
        if mode == "operator":
            mode = "full" if number == 1 else "scheduled"
        if mode == "full":
            event: Any = {"mode": "full"}
        else:
            schedule = schedules[0]
            target = next(t for t in schedule.targets if t.function == "ReconcilerFunction")
            event = schedule.event(self.cloud.clock.now(), target, "123456789012", "us-east-1")
        before, sweeps_before = len(self._reconciler_reports), len(self._sweep_reports)
        self.cloud.invoke_async("ReconcilerFunction", event)
        self.drain()
        result = convergence.verify(self.cloud, self.dlqs, self.parked_reasons)
        reports = self._reconciler_reports[before:]
        last = reports[-1] if reports else {}
        return PassResult(
            number=number,
            mode=str(last.get("mode", mode)),
            divergent=result.divergence.total,
            divergent_by_projection=result.divergence.counts,
            invariant_violations=result.invariants.total,
            republished=int(last.get("republished", 0)),
            found=dict(last.get("found", {})),
            items_read=int(last.get("items_read", 0)),
            seconds=time.monotonic() - started,
            sweep=next(
                ({k: r.get(k) for k in SWEEP_FIGURES} for r in reversed(self._sweep_reports[sweeps_before:])), None
            ),
        )

    # ------------------------------------------------------------------------------------------- the run
    def run(self) -> ChaosReport:
        report, cloud = self.report, self.cloud
        t0 = time.monotonic()
        self._note(f"{report.orders} orders over {report.products} products, faults {report.plan}")
        self.run_scenario()
        report.operations = dict(self.scenario.responses)
        report.crossings = self.scenario.crossings
        t1 = time.monotonic()
        cloud.faults.stop()
        self._pause_schedules()
        self._note("faults stopped; draining")
        self.drain()
        t2 = time.monotonic()
        after = convergence.verify(cloud, self.dlqs, self.parked_reasons)
        report.divergent_after_faults = after.divergence.total
        report.divergent_after_faults_by_projection = after.divergence.counts
        report.invariant_violations_after_faults = after.invariants.counts
        self._note(f"divergent after faults stopped: {after.divergence.total} {after.divergence.counts}")
        final = after
        for number in range(1, MAX_PASSES + 1):
            if number > REQUIRED_PASSES and final.divergence.total == 0 and final.invariants.total == 0:
                break
            result = self.reconcile_pass(number)
            report.passes.append(result)
            self._note(f"after pass {number} ({result.mode}): {result.divergent} divergent")
            final = convergence.verify(cloud, self.dlqs, self.parked_reasons)
        t3 = time.monotonic()
        report.converged_within_required_passes = any(
            p.divergent == 0 and p.invariant_violations == 0 for p in report.passes[:REQUIRED_PASSES]
        ) and (final.divergence.total == 0 and final.invariants.total == 0)
        report.final = final.summary()
        report.divergent_examples = {k: v[:10] for k, v in final.divergence.divergent.items() if v}
        report.divergent_examples |= {k: v[:10] for k, v in final.invariants.violations.items() if v}
        report.lost_examples = final.accounting.lost_examples
        report.events_lost = final.accounting.lost
        report.poison_parked = final.accounting.poison_parked
        report.injected = dict(sorted(cloud.faults.stats.items()))
        report.poison_injected = cloud.faults.stats["poison_injected"]
        report.drift_examples = [fault.describe() for fault in cloud.faults.drift_log[:DRIFT_EXAMPLES]]
        report.sdk_backoff_seconds_not_slept = round(cloud.faults.sdk_backoff_seconds, 1)
        report.function_errors = dict(cloud.runtime.errors)
        report.invocations = sum(cloud.runtime.invocations.values())
        report.seconds = {
            "faulted_scenario": round(t1 - t0, 1),
            "drain_after_faults": round(t2 - t1, 1),
            "reconciliation": round(t3 - t2, 1),
            "total": round(time.monotonic() - t0, 1),
        }
        return report


# ------------------------------------------------------------------------------------------------ reporting
FULL_FIGURE_ORDERS = 10_000


def _scale_note(report: ChaosReport) -> list[str]:
    if report.orders >= FULL_FIGURE_ORDERS:
        return []
    per_order = report.seconds.get("faulted_scenario", 0.0) / max(report.orders, 1)
    return [
        "## Scale",
        "",
        f"The issue's full figure is {FULL_FIGURE_ORDERS:,} orders over 200 products. This run has {report.orders:,}: "
        f"the largest that finished here in about 15 minutes (2 cores, moto in-process). The faulted scenario cost "
        f"{per_order:.2f} s per order, almost all of it moto (its response serializer and update-expression "
        "validation, several ms per DynamoDB call), and the cost per order grows with the tables, so "
        f"{FULL_FIGURE_ORDERS:,} orders would take well over {per_order * FULL_FIGURE_ORDERS / 60:.0f} minutes. "
        f"The same command runs them: `python -m localcloud chaos --orders {FULL_FIGURE_ORDERS} --products 200`.",
        "",
    ]


PASS_MODE_TEXT = {
    "scheduled": "every pass is the reconciler's 5-minute scheduled invocation",
    "full": 'every pass is a full sweep, `{"mode": "full"}`',
    "operator": 'pass 1 is the full sweep, `{"mode": "full"}`, what the operator runs after a restore and the '
    "daily schedule runs; the passes after it are the 5-minute scheduled invocation",
}


def _drift_note(report: ChaosReport) -> list[str]:
    drifted = {DRIFT_STATS[kind]: report.injected.get(DRIFT_STATS[kind], 0) for kind in DRIFT_KINDS}
    if not any(drifted.values()):
        return []
    return [
        "Drift faults change state instead of a delivery, rolled after every scenario operation: "
        f"`source_items_rolled_back` {drifted['source_items_rolled_back']} (a source item put back to an earlier "
        "image of itself, old version and `updated_at` included, as a restore's copy-back does), "
        f"`projection_items_corrupted` {drifted['projection_items_corrupted']} (rewritten with wrong data at its "
        f"current version), `projection_items_deleted` {drifted['projection_items_deleted']}, "
        f"`forged_events_injected` {drifted['forged_events_injected']} (valid events with huge versions and made-up "
        "data sent straight into an inbox), "
        f"`orphan_saga_events_injected` {drifted['orphan_saga_events_injected']} (saga events of orders that do not "
        "exist). The first of them:",
        "",
        *(f"- {example}" for example in report.drift_examples),
        "",
    ]


def markdown(report: ChaosReport, command: str) -> str:
    acc = report.final.get("accounting", {})
    rows = [
        ("after faults stopped (pipeline drained)", report.divergent_after_faults),
        *((f"after reconciliation pass {p.number} ({p.mode})", p.divergent) for p in report.passes),
    ]
    lines = [
        "# Reliability: the chaos run",
        "",
        "Produced by a command, not written by hand:",
        "",
        "```",
        command,
        "```",
        "",
        f"{report.orders} orders over {report.products} products on localcloud (template.yaml on moto, in-process), "
        f"seed {report.seed}. Faults (localcloud/faults.py, `FaultPlan`): `{json.dumps(report.plan)}`. "
        "The scenario runs with faults on; then faults stop, the pipeline drains, and reconciliation passes run "
        f"(`--pass-mode {report.pass_mode}`: {PASS_MODE_TEXT.get(report.pass_mode, report.pass_mode)}). "
        'How faults are injected: docs/localcloud.md, "Fault injection".',
        "",
        "## Result",
        "",
        "| figure | value | required |",
        "|---|---|---|",
        *(f"| divergent entities {label} | {value} | |" for label, value in rows),
        f"| converged within {REQUIRED_PASSES} passes | {'yes' if report.converged_within_required_passes else 'NO'}"
        " | yes |",
        f"| events lost | {report.events_lost} | 0 |",
        f"| poison messages injected / parked in a DLQ | {report.poison_injected} / {report.poison_parked} | equal |",
        f"| saga cases parked for a person (ReconcilerStateTable, `pk = ANOMALY`; counted once, alarmed) | "
        f"{len(report.final.get('parked_for_a_person', []))} | accounted for |",
        f"| wall time | {report.seconds.get('total', 0):.0f} s (faulted scenario "
        f"{report.seconds.get('faulted_scenario', 0):.0f} s, drain {report.seconds.get('drain_after_faults', 0):.0f}"
        f" s, reconciliation {report.seconds.get('reconciliation', 0):.0f} s) | |",
        "",
        *(
            [
                f"Parked for a person: {', '.join(report.final['parked_for_a_person'])}: orders the customer was told "
                "are confirmed whose stock could not be reserved again when the reconciler reinstated them (drift "
                "faults confirm orders by forged outcomes and roll reservations and products back; docs/"
                "CONSISTENCY.md, the saga pair). The checker counts them as "
                "accounted for, not divergent, only while the pair is exactly (CONFIRMED, FAILED).",
                "",
            ]
            if report.final.get("parked_for_a_person")
            else []
        ),
        "Divergent = entities whose projection differs from its source of truth (availability vs product, order vs "
        "reservation, order outcome + notification vs order) plus entities breaking an invariant "
        "(0 <= reserved <= on_hand, reserved = sum of RESERVED reservations, no PENDING order, notification "
        "exactly once).",
        "",
        *_scale_note(report),
        "## Reconciliation passes",
        "",
        "| pass | mode | divergent after | by projection | republished | found | items read | seconds |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {p.number} | {p.mode} | {p.divergent} | {p.divergent_by_projection} | {p.republished} | "
            f"{p.found} | {p.items_read} | {p.seconds:.1f} |"
            for p in report.passes
        ),
        "",
        *(
            f"Pass {p.number}'s {'counters' if p.sweep.get('projection') else 'full'} sweep: {p.sweep}."
            for p in report.passes
            if p.sweep is not None
        ),
        "",
        f"Divergent right after faults stopped, by projection: {report.divergent_after_faults_by_projection}; "
        f"invariant violations: {report.invariant_violations_after_faults}.",
        "",
        "## Faults injected",
        "",
        "| fault | count |",
        "|---|---|",
        *(f"| {name} | {count} |" for name, count in report.injected.items()),
        "",
        *_drift_note(report),
        f"Throttles count per request attempt: the SDK retried them (`sdk_retries`; its backoff, "
        f"{report.sdk_backoff_seconds_not_slept} s in total, was counted, not slept). Function errors by function: "
        f"{report.function_errors}. Invocations: {report.invocations}. Reconciler runs while faults were on: "
        f"{report.reconciler_runs_during_faults}.",
        "",
        "## Every event accounted for",
        "",
        "| | count |",
        "|---|---|",
        f"| distinct events put on the bus | {acc.get('events_published', 0)} |",
        f"| PutEvents entries accepted (resends and republishes included) | {acc.get('entries_published', 0)} |",
        f"| events no inbox subscribes to | {acc.get('events_without_subscriber', 0)} |",
        f"| deliveries (event x consumer) | {acc.get('deliveries', 0)} |",
        f"| processed (applied or skipped as stale) | {acc.get('processed', 0)} |",
        f"| parked in a DLQ | {acc.get('parked', 0)} |",
        f"| every copy lost by a fault, entity converged anyway (superseded / repaired) | "
        f"{acc.get('lost_superseded', 0)} |",
        f"| **lost** | **{acc.get('lost', 0)}** |",
        f"| stream records sent to OnFailure (retries exhausted; repaired from state) | "
        f"{acc.get('stream_records_to_on_failure', 0)} |",
        "",
        f"Consumer outcomes (receives, from the consumers' metrics): {acc.get('outcomes', {})}.",
        f"DLQ depths at the end: {acc.get('dlq_messages', {})}. Parked, by the reason the reconciler logged: "
        f"{acc.get('parked_reasons', {})}.",
        "",
        "## Operations",
        "",
        f"{dict(sorted(report.operations.items()))}",
        "",
        f"Crossings (a cancellation and a dispatch of one order, both accepted before either service heard of the "
        f"other; dispatch wins): {report.crossings}.",
        "",
    ]
    if report.divergent_examples or report.lost_examples:
        lines += ["## Left divergent or lost", "", f"{report.divergent_examples}", "", f"{report.lost_examples}", ""]
    return "\n".join(lines)


def run_chaos(
    orders: int = 10_000,
    products: int = 200,
    seed: int = 7,
    plan: FaultPlan | None = None,
    *,
    pass_mode: str | None = None,
    template: Path = TEMPLATE_PATH,
    endpoint: str | None = None,
    progress: bool = True,
) -> ChaosReport:
    """One chaos run on a fresh in-process LocalCloud. `pass_mode` None: "operator" (the full sweep first) if the
    plan has drift faults, else "scheduled"."""
    plan = plan or FaultPlan.chaos(seed)
    mode = pass_mode or ("operator" if plan.drifts else "scheduled")
    with LocalCloud(template, endpoint=endpoint, faults=plan) as cloud:
        return Chaos(cloud, orders, products, seed, mode, progress).run()


def write(report: ChaosReport, markdown_path: Path | None, json_path: Path | None, command: str) -> None:
    report.command = report.command or command
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown(report, report.command))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        document = asdict(report) | {"ok": report.ok}
        json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")

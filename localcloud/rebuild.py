"""tools.rebuild against a running LocalCloud, and the rebuild scenario: one projection dropped and rebuilt from
each source while the storefront keeps taking orders with faults on.

    python -m localcloud rebuild --projection availability --orders 300      # docs/CONSISTENCY.md

Per source, on a fresh LocalCloud with the chaos fault plan: the first half of the storefront's operations run;
the projection is dropped; a few more (5%) run against the dropped projection; the refill starts (a replay of the
bus archive to that projection's rule only, or the reconciler's snapshot backfill of it) and the rest
runs while it is delivered; then the rebuild settles and checks that projection. Faults stop, the pipeline drains,
and reconciliation passes run until nothing diverges, as in `chaos`. Divergence is sampled throughout, by the
independent checker (localcloud/convergence.py), for the plot.

Duplicate notifications are counted against the sources, not the notifications service's own bookkeeping. An
order notification is keyed by order and kind, so it cannot repeat. A back-in-stock notification names the
rejected order whose shortage armed its watch: a customer may get one per (order, product short in it), so a
second one naming the same pair, or one naming an order that was not rejected short of that product, is counted.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localcloud import convergence
from localcloud.archive import ARCHIVE_LAG_SECONDS
from localcloud.chaos import MAX_PASSES, Chaos
from localcloud.cloud import LocalCloud
from localcloud.faults import FaultPlan
from localcloud.template import TEMPLATE_PATH
from tools.rebuild import SOURCES, RebuildReport, Target, rebuild

SAMPLE_EVERY = 5  # operations between two divergence samples
BEFORE, WHILE_DROPPED = 0.5, 0.05  # shares of the operations before the drop and between the drop and the refill


def target(
    cloud: LocalCloud, traffic: Callable[[str], None] | None = None, settle: Callable[[], None] | None = None
) -> Target:
    """A Target for `cloud`; `traffic` runs at the rebuild's phases, `settle` replaces pumping until quiet."""
    tables = convergence.service_tables(cloud)

    def pump_until_quiet() -> None:
        cloud.run_until_quiet()

    def backfill(projection: str) -> int:
        # The sweep of one projection on the state machine, as the tool starts it on a stack, waited for.
        return int(cloud.sweep(reason="rebuild", projection=projection)["republished"])

    def replay(name: str, service: str) -> Callable[[], int]:
        rules = cloud.clients.events.list_rules(EventBusName=cloud.bus_name())["Rules"]
        rule = next(r["Arn"] for r in rules if f"{service.capitalize()}InboxRule" in r["Name"])
        # Everything archived up to the lag; the last minutes reach the consumer through the live stream.
        cloud.clock.advance(ARCHIVE_LAG_SECONDS + 1)
        started = cloud.archive.start_replay(name, filter_arns=[str(rule)])
        return lambda: started.replayed  # delivered a one-minute slice per pump, as traffic goes on

    return Target(
        dynamodb=cloud.clients.dynamodb,
        tables=tables,
        backfill=backfill,
        replay=replay,
        settle=settle or pump_until_quiet,
        divergent=lambda p: len(convergence.check(cloud.clients.dynamodb, tables).by_check.get(p, [])),
        traffic=traffic or (lambda phase: None),
    )


# ------------------------------------------------------------------------------------------------ the scenario
@dataclass
class Sample:
    seconds: float
    divergent: int  # entities the rebuilt projection's check finds divergent
    total: int  # every projection


@dataclass
class RebuildRun:
    """One source's rebuild under traffic and faults."""

    source: str
    projection: str
    orders: int
    products: int
    seed: int
    plan: dict[str, Any]
    rebuild: dict[str, Any] = field(default_factory=dict)  # tools.rebuild's report
    samples: list[Sample] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)  # phase -> seconds since the start
    divergent_peak: int = 0  # of the rebuilt projection
    divergent_before_drop: int = 0  # its peak before the drop: the lag the faults alone cause
    # Seconds from the refill's start until the projection's divergence is back to that level (-1: never).
    recovered_seconds: float = -1.0
    divergent_after_rebuild: int = -1  # of the rebuilt projection, when the rebuild settled (faults still on)
    divergent_final: int = -1  # every projection, after the faults stopped and reconciliation ran
    passes: list[int] = field(default_factory=list)  # every projection's divergence after each pass
    notifications: int = 0
    duplicate_notifications: int = 0
    operations: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.divergent_final == 0 and self.duplicate_notifications == 0 and self.divergent_after_rebuild >= 0


def duplicate_notifications(cloud: LocalCloud) -> tuple[int, int]:
    """(notifications, back-in-stock notifications beyond what the rejected orders allow): see the docstring."""
    orders = convergence.scan(cloud.clients.dynamodb, cloud.table_name("OrdersTable")).values()
    notifications = convergence.scan(cloud.clients.dynamodb, cloud.table_name("NotificationsTable")).values()
    allowed = {
        (str(o["customer_id"]), str(o["order_id"]), str(product))
        for o in orders
        if o.get("sk") == "ORDER" and o.get("status") == "REJECTED"
        for product in o.get("shortages") or []
    }
    sent: Counter[tuple[str, str, str]] = Counter()
    total = 0
    for item in notifications:
        if not str(item.get("sk", "")).startswith("NOTIFICATION#"):
            continue
        total += 1
        if item.get("kind") == "BACK_IN_STOCK":
            customer = str(item["pk"]).removeprefix("CUSTOMER#")
            sent[(customer, str(item.get("order_id")), str(item.get("product_id")))] += 1
    beyond = sum(n if key not in allowed else n - 1 for key, n in sent.items())
    return total, beyond


class RebuildScenario:
    def __init__(self, cloud: LocalCloud, run: RebuildRun, progress: bool) -> None:
        self.cloud, self.run = cloud, run
        self.chaos = Chaos(cloud, run.orders, run.products, run.seed, "operator", progress=False)
        self.progress = progress
        self.tables = convergence.service_tables(cloud)
        self.t0 = time.monotonic()
        operations = self.chaos.scenario.operations()
        first, second = int(len(operations) * BEFORE), int(len(operations) * (BEFORE + WHILE_DROPPED))
        self.before, self.dropped, self.refilling = operations[:first], operations[first:second], operations[second:]

    def _note(self, text: str) -> None:
        if self.progress:
            print(f"rebuild[{self.run.source}]: {text}", file=sys.stderr, flush=True)

    def _now(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def sample(self, index: int = 0) -> None:
        if index % SAMPLE_EVERY:
            return
        divergence = convergence.check(self.cloud.clients.dynamodb, self.tables)
        ours = len(divergence.by_check.get(self.run.projection, []))
        self.run.samples.append(Sample(self._now(), ours, divergence.total))
        self.run.divergent_peak = max(self.run.divergent_peak, ours)

    def traffic(self, phase: str) -> None:
        self.run.marks[phase] = self._now()
        self.sample()
        self.chaos.run_operations(self.dropped if phase == "dropped" else self.refilling, self.sample)
        self._note(f"{phase}: traffic ran")

    def settle(self) -> None:
        self.chaos.drain()
        self.sample()

    def execute(self) -> RebuildRun:
        run, cloud = self.run, self.cloud
        self.sample()
        self.chaos.run_operations(self.before, self.sample)
        self._note(f"{len(self.before)} operations before the drop")
        run.marks["drop"] = self._now()
        replay_name = f"rebuild-{run.projection}-{run.seed}"
        rebuilt = target(cloud, self.traffic, self.settle)
        report: RebuildReport = rebuild(rebuilt, run.projection, run.source, progress=False, replay_name=replay_name)
        run.marks["rebuilt"] = self._now()
        run.rebuild = asdict(report)
        run.divergent_after_rebuild = report.divergent
        self._note(f"rebuilt: {report.divergent} divergent, faults still on; stopping them")
        cloud.faults.stop()
        self.chaos._pause_schedules()
        run.marks["faults stop"] = self._now()
        self.chaos.drain()
        self.sample()
        for number in range(1, MAX_PASSES + 1):
            result = self.chaos.reconcile_pass(number)
            run.marks[f"pass {number}"] = self._now()
            run.passes.append(result.divergent)
            self.sample()
            if result.divergent == 0 and result.invariant_violations == 0:
                break
        run.divergent_final = convergence.check(cloud.clients.dynamodb, self.tables).total
        run.divergent_before_drop = max((s.divergent for s in run.samples if s.seconds < run.marks["drop"]), default=0)
        refill = run.marks["refilling"]
        recovered = [s.seconds for s in run.samples if s.seconds >= refill and s.divergent <= run.divergent_before_drop]
        run.recovered_seconds = round(recovered[0] - refill, 1) if recovered else -1.0
        run.notifications, run.duplicate_notifications = duplicate_notifications(cloud)
        run.operations = dict(self.chaos.scenario.responses)
        run.seconds = self._now()
        self._note(f"final: {run.divergent_final} divergent, {run.duplicate_notifications} duplicate notifications")
        return run


def run_rebuild(
    projection: str = "availability",
    sources: tuple[str, ...] = SOURCES,
    orders: int = 300,
    products: int = 20,
    seed: int = 7,
    *,
    plan: FaultPlan | None = None,
    template: Path = TEMPLATE_PATH,
    progress: bool = True,
) -> list[RebuildRun]:
    """The rebuild scenario once per source, each on a fresh LocalCloud with the same seed and fault plan."""
    runs = []
    for source in sources:
        chosen = plan or FaultPlan.chaos(seed)
        run = RebuildRun(source, projection, orders, products, seed, chosen.describe())
        with LocalCloud(template, faults=chosen) as cloud:
            runs.append(RebuildScenario(cloud, run, progress).execute())
    return runs


def plot(runs: list[RebuildRun], path: Path) -> None:
    """Divergence of the rebuilt projection over time, one panel per source, with the phases marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.2), dpi=110, sharey=True, squeeze=False)
    colors = {"drop": "tab:red", "refilling": "tab:blue", "rebuilt": "tab:green", "faults stop": "black"}
    for axes, run in zip(panels[0], runs, strict=True):
        seconds = [s.seconds for s in run.samples]
        axes.step(seconds, [s.divergent for s in run.samples], where="post", linewidth=2, label=run.projection)
        axes.step(seconds, [s.total for s in run.samples], where="post", color="grey", alpha=0.6, label="all")
        for phase, at in run.marks.items():
            if phase == "dropped":
                continue
            color = colors.get(phase, "tab:purple")
            axes.axvline(at, color=color, linestyle=":", linewidth=1, label=phase)
        axes.set_title(f"from {run.source}: peak {run.divergent_peak}, final {run.divergent_final}")
        axes.set_xlabel("seconds since start (wall clock)")
        axes.grid(alpha=0.3)
        axes.set_ylim(bottom=0)
    panels[0][0].set_ylabel("divergent entities")
    panels[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small")
    first = runs[0]
    figure.suptitle(
        f"Rebuilding {first.projection} under traffic and faults: {first.orders} orders, {first.products} products"
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


COLUMNS = (
    "source", "entities dropped", "events replayed", "kept (rewritten live)", "divergence before drop / peak",
    "back to the pre-drop level after", "rebuild command (with traffic)", "divergent after rebuild",
    "final divergent", "notifications", "duplicates",
)  # fmt: skip


def summary(runs: list[RebuildRun]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for run in runs:
        r = run.rebuild
        cells = [
            run.source, r["dropped"], r["events_replayed"], r["kept"],
            f"{run.divergent_before_drop} / {run.divergent_peak}", f"{run.recovered_seconds:.1f} s",
            f"{r['seconds']:.1f} s", run.divergent_after_rebuild, run.divergent_final, run.notifications,
            run.duplicate_notifications,
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"

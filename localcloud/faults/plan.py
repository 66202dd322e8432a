"""The fault plan: what to inject, at which rates, and the seeded dice every fault kind rolls."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

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


class PlannedFaults:
    """The plan of one LocalCloud and its dice: every fault kind draws from its own seeded `random.Random`, so a
    run is reproducible and enabling one fault does not change where the others strike. Inactive until started."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.active = False
        self.stats: Counter[str] = Counter()
        self._rngs: dict[str, random.Random] = {}

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

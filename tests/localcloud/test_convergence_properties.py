"""Stateful property test: any sequence of commands and faults keeps the invariants and converges.

Hypothesis drives the real template on localcloud with commands (set stock, adjust, place, cancel) interleaved with
faults for one pump round (handler exceptions and timeouts, throttling, failed PutEvents entries, lost, duplicated,
delayed and reordered deliveries, a publisher outage long enough for a stream batch to exhaust its retries), drift
faults (a source item rolled back to an earlier image as a restore's copy-back does, a projection item corrupted or
deleted, a forged event or an orphan saga event sent straight into an inbox), partial pumping and the clock moving.
After every step: 0 <= reserved <= on_hand for every product, and no order moved backwards except where a rollback
moved it (the rollback rule re-baselines that order). At the end of each example: faults stop, the pipeline drains,
then at most two reconciliation passes - the full sweep first (`{"mode": "full"}`, what the operator runs after a
restore: an incremental pass does not see a source restored with its old `updated_at` or a projection damaged under
an unchanged source), then the reconciler's scheduled invocation - and the checker finds nothing divergent, no
invariant broken, no event lost.

The machine can fail: with the reconciler's corrections switched off (CORRECTIONS_ENABLED=false) Hypothesis finds an
example that does not converge (`test_the_machine_finds_a_counterexample_when_corrections_are_off`).

One LocalCloud serves every example (a deploy takes seconds); each example uses its own product and order ids (drift
faults strike only those), and the end-of-example check covers the whole system, earlier examples included.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from localcloud import convergence
from localcloud.cloud import LocalCloud
from localcloud.demo import dead_letter_queues
from localcloud.faults import FORGED_KINDS, ORPHAN_KINDS, FaultPlan
from localcloud.template import load_template
from tests.localcloud.helpers import admin_token, customer_token
from tests.localcloud.real import REAL_TEMPLATE

DLQS = dead_letter_queues(load_template(REAL_TEMPLATE))
VISIBILITY = 61.0  # past the inboxes' 60-second visibility timeout
PASSES = 2
PUBLISHERS = ("OrdersPublisherFunction", "InventoryPublisherFunction")

# Order status -> the statuses it may move to (docs: PENDING -> CONFIRMED | REJECTED; PENDING or CONFIRMED -> CANCELLED)
FORWARD = {
    "PENDING": {"PENDING", "CONFIRMED", "REJECTED", "CANCELLED", "SHIPPED"},
    "CONFIRMED": {"CONFIRMED", "CANCELLED", "SHIPPED"},
    "REJECTED": {"REJECTED"},
    "CANCELLED": {"CANCELLED", "SHIPPED"},  # a dispatch that crossed the cancellation wins
    "SHIPPED": {"SHIPPED"},
}

FAULTS: dict[str, dict[str, Any]] = {
    "exception": {"handler_exception": 0.5},
    "timeout": {"handler_timeout": 0.5},
    "throttle_attempts": {"dynamodb_throttle": 0.3, "events_throttle": 0.3},
    "throttle_calls": {"dynamodb_throttle": 0.3, "events_throttle": 0.3, "throttle_scope": "call"},
    "failed_entries": {"put_events_entry_failure": 0.5},
    "lost": {"lost_delivery": 1.0},
    "duplicate": {"duplicate_delivery": 1.0},
    "delay_and_reorder": {"delayed_delivery": 0.5, "reorder": True},
}

LINE = st.tuples(st.integers(0, 2), st.integers(1, 4))  # (product index, quantity)
SEEDS = st.integers(0, 2**16)  # a drift fault's own random choices (which item, which earlier image, what data)


class NotConverged(AssertionError):
    """The end of an example: the system did not converge within PASSES reconciliation passes."""


_cloud: LocalCloud | None = None
_examples = itertools.count()


def shared_cloud() -> LocalCloud:
    global _cloud
    if _cloud is None:
        _cloud = LocalCloud(REAL_TEMPLATE).start()
        # The reconciler runs when the test says so (the end of an example), not when the clock passes 5 minutes.
        for schedule in _cloud.schedules.values():
            schedule.enabled = False
    return _cloud


def stop_shared_cloud() -> None:
    global _cloud
    if _cloud is not None:
        _cloud.stop()
        _cloud = None


@pytest.fixture(scope="module", autouse=True)
def _stop_shared_cloud() -> Iterator[None]:
    yield
    stop_shared_cloud()


def _item(cloud: LocalCloud, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    from boto3.dynamodb.types import TypeDeserializer

    raw = cloud.get_item(table, {"pk": {"S": pk}, "sk": {"S": sk}}, consistent=True)
    if raw is None:
        return None
    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in raw.items()}


class ConvergenceMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.cloud = self.deployed()
        self.example = next(_examples)
        self.products = [f"sm{self.example}-p{i}" for i in range(3)]
        self.statuses: dict[str, str] = {}
        self.stocked: set[str] = set()  # products that exist
        self.steps = 0
        # The example's one customer places and cancels its orders; the warehouse's admin sets stock and dispatches.
        self.as_customer = customer_token(self.cloud, f"sm{self.example}-c")
        self.as_admin = admin_token(self.cloud)

    def deployed(self) -> LocalCloud:
        """The LocalCloud the examples run on: the module's shared one (a subclass may bring its own)."""
        return shared_cloud()

    def entities(self) -> set[str]:
        """This example's products and orders: what its drift faults may strike."""
        return {*self.products, *self.statuses}

    # ------------------------------------------------------------------------------------------- commands
    @rule(product=st.integers(0, 2), on_hand=st.integers(0, 8))
    def set_stock(self, product: int, on_hand: int) -> None:
        path, body = f"/products/{self.products[product]}/stock", {"on_hand": on_hand}
        response = self.cloud.http("PUT", path, body=body, token=self.as_admin)
        # 409: on_hand below what is reserved (the invariant refuses it)
        assert response.status in (200, 409), response.body
        self.stocked.add(self.products[product])

    @rule(product=st.integers(0, 2), delta=st.sampled_from([-3, -2, -1, 1, 2, 3, 5]))
    def adjust(self, product: int, delta: int) -> None:
        response = self.cloud.http(
            "POST", f"/products/{self.products[product]}/stock/adjustments", body={"delta": delta}, token=self.as_admin
        )
        assert response.status in (200, 404, 409, 422), response.body

    @rule(target=orders, lines=st.lists(LINE, min_size=1, max_size=3, unique_by=lambda line: line[0]))
    def place(self, lines: list[tuple[int, int]]) -> str:
        body = {"lines": [{"product_id": self.products[p], "quantity": q} for p, q in lines]}
        response = self.cloud.http("POST", "/orders", body=body, token=self.as_customer)
        assert response.status == 201, response.body
        order_id = str(response.json()["order_id"])
        self.statuses[order_id] = "PENDING"
        return order_id

    @rule(order_id=orders)
    def cancel(self, order_id: str) -> None:
        response = self.cloud.http("POST", f"/orders/{order_id}/cancel", token=self.as_customer)
        assert response.status in (200, 409), response.body

    @rule(order_id=orders)
    def dispatch(self, order_id: str) -> None:
        # The warehouse says the parcel left: 404 before the shipment exists, 409 once it is cancelled.
        response = self.cloud.http("POST", f"/shipments/{order_id}/dispatch", token=self.as_admin)
        assert response.status in (200, 404, 409), response.body

    @rule(order_id=orders)
    def cancel_and_dispatch_cross(self, order_id: str) -> None:
        # Both accepted by their own service before either hears of the other: dispatch wins, in every order.
        cancelled = self.cloud.http("POST", f"/orders/{order_id}/cancel", token=self.as_customer)
        dispatched = self.cloud.http("POST", f"/shipments/{order_id}/dispatch", token=self.as_admin)
        assert cancelled.status in (200, 409), cancelled.body
        assert dispatched.status in (200, 404, 409), dispatched.body

    # ------------------------------------------------------------------------------------------- the pipeline
    @rule(rounds=st.integers(1, 3))
    def pump_partially(self, rounds: int) -> None:
        for _ in range(rounds):
            self.cloud.pump()

    @rule()
    def time_passes(self) -> None:
        self.cloud.advance(VISIBILITY)

    @rule(kind=st.sampled_from(sorted(FAULTS)), rounds=st.integers(1, 2))
    def fault_for_a_step(self, kind: str, rounds: int) -> None:
        self.steps += 1
        self.cloud.faults.start(FaultPlan(seed=self.example * 1000 + self.steps, **FAULTS[kind]))
        try:
            for _ in range(rounds):
                self.cloud.pump()
        finally:
            self.cloud.faults.stop()

    @rule()
    def publisher_outage(self) -> None:
        # Every PutEvents of the publishers is throttled (surfacing to them, not retried by the SDK) until their
        # stream batches exhaust their retries: the records go to OnFailure, metadata only.
        self.steps += 1
        plan = FaultPlan(seed=self.steps, events_throttle=1.0, throttle_scope="call", functions=PUBLISHERS)
        self.cloud.faults.start(plan)
        try:
            self.cloud.run_until_quiet()
        finally:
            self.cloud.faults.stop()

    # ------------------------------------------------------------------------------------------- drift
    # Each drift rule is enabled only when it has something of this example's to strike.
    def has_earlier_images(self) -> bool:
        return bool(self.cloud.faults.rollback_keys(self.cloud, self.entities()))

    def has_projection_items(self) -> bool:
        return bool(self.cloud.faults.projection_keys(self.cloud, self.entities()))

    @precondition(has_earlier_images)
    @rule(seed=SEEDS)
    def rollback_a_source_item(self, seed: int) -> None:
        fault = self.cloud.faults.rollback_source(self.cloud, random.Random(seed), entity_ids=self.entities())
        if fault is not None and fault.variant == "order" and fault.after is not None:
            # A restore moves an order back: from here on it may move forward from the restored status.
            self.statuses[fault.entity_id] = str(fault.after["status"])

    @precondition(has_projection_items)
    @rule(seed=SEEDS, delete=st.booleans())
    def damage_a_projection_item(self, seed: int, delete: bool) -> None:
        faults, rng = self.cloud.faults, random.Random(seed)
        damage = faults.delete_projection if delete else faults.corrupt_projection
        damage(self.cloud, rng, entity_ids=self.entities())

    @precondition(lambda self: bool(self.stocked))
    @rule(seed=SEEDS, kind=st.sampled_from(FORGED_KINDS))
    def forge_an_event(self, seed: int, kind: str) -> None:
        self.cloud.faults.forge_event(self.cloud, random.Random(seed), kind=kind, entity_ids=self.entities())

    @precondition(lambda self: bool(self.stocked))
    @rule(seed=SEEDS, kind=st.sampled_from(ORPHAN_KINDS))
    def inject_an_orphan_saga_event(self, seed: int, kind: str) -> None:
        self.cloud.faults.inject_orphan_saga_event(
            self.cloud, random.Random(seed), kind=kind, entity_ids=self.entities()
        )

    # ------------------------------------------------------------------------------------------- invariants
    @invariant()
    def reserved_within_on_hand(self) -> None:
        # Holds through rollbacks too: a restored product is an earlier image of itself, consistent when it was
        # written, and every stock write after it is conditional (reserve: available >= q; release: reserved >= q;
        # adjust: available >= -delta). What a rollback breaks - reserved = sum of RESERVED reservations - is
        # the end-of-example check's, after the full sweep recounted it.
        for product_id in self.products:
            product = _item(self.cloud, "InventoryTable", f"PRODUCT#{product_id}", "PRODUCT")
            if product is not None:
                assert 0 <= product["reserved"] <= product["on_hand"], product
                assert product["available"] == product["on_hand"] - product["reserved"], product

    @invariant()
    def orders_never_move_backwards(self) -> None:
        for order_id, previous in self.statuses.items():
            order = _item(self.cloud, "OrdersTable", f"ORDER#{order_id}", "ORDER")
            assert order is not None
            assert order["status"] in FORWARD[previous], (order_id, previous, order["status"])
            self.statuses[order_id] = str(order["status"])

    # ------------------------------------------------------------------------------------------- convergence
    def _drain(self) -> None:
        for _ in range(12):
            self.cloud.run_until_quiet()
            mappings = self.cloud.sqs_mappings.values()
            if not any(m.held or m.in_flight or m.depth() for m in mappings):
                return
            self.cloud.advance(VISIBILITY)

    def teardown(self) -> None:
        cloud = self.cloud
        cloud.faults.stop()
        self._drain()
        schedule = min(
            (s for s in cloud.schedules.values() if any(t.function == "ReconcilerFunction" for t in s.targets)),
            key=lambda s: s.next_due,
        )
        target = next(t for t in schedule.targets if t.function == "ReconcilerFunction")
        reasons: dict[str, str] = {}
        report = convergence.verify(cloud, DLQS)
        for number in range(1, PASSES + 1):
            if report.converged:
                break
            # Pass 1: the full sweep (the operator's command after a restore, the daily schedule); then the 5-minute
            # schedule's invocation.
            event: Any = (
                {"mode": "full"}
                if number == 1
                else schedule.event(cloud.clock.now(), target, "123456789012", "us-east-1")
            )
            invocation = cloud.invoke("ReconcilerFunction", event)
            assert invocation.ok, invocation.error
            reasons |= convergence.parked_reasons(invocation.logs)
            self._drain()
            report = convergence.verify(cloud, DLQS, reasons)
        if not report.converged:
            raise NotConverged(
                f"after {PASSES} passes: divergent {report.divergence.divergent}; invariants broken "
                f"{report.invariants.violations}; lost {report.accounting.lost_examples}"
            )


ConvergenceMachine.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=20,
    derandomize=True,
    database=None,  # every run the same examples: no replay of a stored failure
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestConvergence = ConvergenceMachine.TestCase


@pytest.mark.slow
def test_the_machine_finds_a_counterexample_when_corrections_are_off() -> None:
    # GIVEN a LocalCloud of its own whose reconciler has its corrections switched off (CORRECTIONS_ENABLED=false in
    # the deployed function's environment, which localcloud applies to every invocation): only forward
    # republishing remains, which a corrupted projection or a forged version beyond the source's defeats. (In-process
    # moto is one account per process: the shared cloud goes first, and comes back for whatever test needs it.)
    stop_shared_cloud()
    cloud = LocalCloud(REAL_TEMPLATE).start()
    try:
        for schedule in cloud.schedules.values():
            schedule.enabled = False
        for function in ("ReconcilerFunction", "ReconcilerSweepFunction"):  # the pass's and the sweep's corrections
            cloud.set_environment(function, CORRECTIONS_ENABLED="false")

        class Uncorrected(ConvergenceMachine):
            def deployed(self) -> LocalCloud:
                return cloud

        budget = settings(
            max_examples=10,
            stateful_step_count=15,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],  # finding one is the point; shrinking it would replay many slow examples
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
        )
        # WHEN Hypothesis runs the state machine on it
        # THEN it finds an example that does not converge within the passes
        with pytest.raises(NotConverged):
            run_state_machine_as_test(Uncorrected, settings=budget)
    finally:
        cloud.stop()

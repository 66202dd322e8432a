"""Fault injection (localcloud/faults.py): each fault at the AWS boundary, seeded and reproducible."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from converge.contracts import EVENT_TYPES
from converge.dynamo import from_item
from converge.envelope import parse_eventbridge_json
from localcloud.cloud import LocalCloud
from localcloud.faults import (
    ATTACKER_TEXT,
    DRIFT_KINDS,
    DRIFT_RATE,
    DRIFT_STATS,
    FORGED_KINDS,
    FORGED_VERSION,
    ORPHAN_KINDS,
    FaultPlan,
)
from tests.localcloud.helpers import FIXTURE_TEMPLATE, admin_token, customer_token, drain
from tests.localcloud.real import REAL_TEMPLATE


def _send(cloud: LocalCloud, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        cloud.send_message("WorkQueue", json.dumps(body))


def _received(cloud: LocalCloud) -> list[list[int]]:
    """The `n` of every message of every QueueFunction invocation, per invocation."""
    return [
        [json.loads(r["body"])["n"] for r in invocation.event["Records"] if "n" in json.loads(r["body"])]
        for invocation in cloud.invocations("QueueFunction")
    ]


def _settle(cloud: LocalCloud, cycles: int = 6) -> None:
    for _ in range(cycles):
        cloud.run_until_quiet()
        cloud.advance(31)  # past WorkQueue's 30-second visibility timeout
    cloud.run_until_quiet()


@pytest.fixture
def faulty() -> Iterator[Any]:
    """A fixture-template LocalCloud with the given plan: `with faulty(plan) as cloud`."""
    clouds: list[LocalCloud] = []

    def start(plan: FaultPlan) -> LocalCloud:
        cloud = LocalCloud(FIXTURE_TEMPLATE, faults=plan).start()
        clouds.append(cloud)
        return cloud

    yield start
    for cloud in clouds:
        cloud.stop()


def test_lost_and_duplicated_deliveries_are_counted_and_the_rest_delivered(faulty: Any) -> None:
    # GIVEN an inbox with 40 messages and a plan that loses and duplicates some deliveries
    cloud = faulty(FaultPlan(seed=3, lost_delivery=0.2, duplicate_delivery=0.2))
    _send(cloud, [{"behaviour": "ok", "n": n} for n in range(40)])
    # WHEN the mapping delivers everything
    _settle(cloud)
    # THEN the function received sent + duplicated - lost messages (a copy can be lost too), nothing is left
    stats = cloud.faults.stats
    assert stats["deliveries_lost"] > 0
    assert stats["deliveries_duplicated"] > 0
    received = Counter(n for batch in _received(cloud) for n in batch)
    assert sum(received.values()) == 40 + stats["deliveries_duplicated"] - stats["deliveries_lost"]
    assert 40 - stats["deliveries_lost"] <= len(received) < 40
    assert max(received.values()) > 1
    assert cloud.queue_depth("WorkQueue") == 0


def test_delayed_and_reordered_deliveries_arrive_out_of_order(faulty: Any) -> None:
    # GIVEN messages sent in order and a plan that delays some and shuffles every batch
    cloud = faulty(FaultPlan(seed=5, delayed_delivery=0.3, reorder=True))
    _send(cloud, [{"behaviour": "ok", "n": n} for n in range(30)])
    # WHEN the mapping delivers everything (run_until_quiet waits for held messages)
    cloud.run_until_quiet()
    # THEN every message arrived once, not in the order sent
    order = [n for batch in _received(cloud) for n in batch]
    assert sorted(order) == list(range(30))
    assert order != list(range(30))
    assert cloud.faults.stats["deliveries_delayed"] > 0
    assert cloud.faults.stats["batches_reordered"] > 0


def test_a_poison_message_ends_in_the_dead_letter_queue(faulty: Any) -> None:
    # GIVEN a plan that adds a poison message to the queue on its first poll, then stops
    cloud = faulty(FaultPlan(seed=1, poison_rate=1.0))
    cloud.pump()
    cloud.faults.stop()
    # WHEN the function keeps failing it (not JSON) until maxReceiveCount
    _settle(cloud)
    # THEN SQS moved it to the DLQ
    assert cloud.faults.stats["poison_injected"] == 1
    dead = cloud.receive_messages("WorkDLQ")
    assert [m["Body"] for m in dead] == list(cloud.faults.poison_bodies)


@pytest.mark.parametrize(
    ("plan", "error_type"),
    [
        (FaultPlan(seed=1, handler_exception=1.0), "InjectedFault"),
        (FaultPlan(seed=1, handler_timeout=1.0), "Sandbox.Timedout"),
    ],
)
def test_an_injected_handler_failure_is_a_function_error_and_the_batch_is_retried(
    faulty: Any, plan: FaultPlan, error_type: str
) -> None:
    # GIVEN a plan that fails every invocation, and one message
    cloud = faulty(plan)
    _send(cloud, [{"behaviour": "ok", "n": 1}])
    # WHEN the mapping delivers it
    cloud.run_until_quiet()
    # THEN the invocation failed as Lambda reports it, and the message stays on the queue
    first = cloud.invocations("QueueFunction")[0]
    assert first.error is not None
    assert first.error.error_type == error_type
    assert first.response is None
    assert cloud.queue_depth("WorkQueue") == 1
    # AND once faults stop it is delivered after its visibility timeout
    cloud.faults.stop()
    _settle(cloud)
    assert cloud.queue_depth("WorkQueue") == 0
    assert cloud.invocations()[-1].ok


def test_synchronous_invocations_are_not_faulted_by_default(faulty: Any) -> None:
    # GIVEN a plan that fails every invocation
    cloud = faulty(FaultPlan(seed=1, handler_exception=1.0))
    # WHEN a function is invoked synchronously
    invocation = cloud.invoke("ScheduledFunction", {"ping": 1})
    # THEN it runs unharmed (faults reach event-driven invocations unless include_sync)
    assert invocation.ok
    assert invocation.response["received"] == {"ping": 1}


def test_the_same_seed_injects_the_same_faults() -> None:
    # GIVEN two clouds with the same plan and the same inputs
    stats = []
    for _ in range(2):
        with LocalCloud(FIXTURE_TEMPLATE, faults=FaultPlan(seed=9, lost_delivery=0.3, duplicate_delivery=0.3)) as cloud:
            _send(cloud, [{"behaviour": "ok", "n": n} for n in range(20)])
            _settle(cloud)
            stats.append((dict(cloud.faults.stats), sorted(n for b in _received(cloud) for n in b)))
    # THEN they inject and deliver the same
    assert stats[0] == stats[1]


# ---------------------------------------------------------------------------------------- SDK faults (real template)
@pytest.fixture
def real_faulty() -> Iterator[Any]:
    clouds: list[LocalCloud] = []

    def start(plan: FaultPlan) -> LocalCloud:
        cloud = LocalCloud(REAL_TEMPLATE, faults=plan).start()
        clouds.append(cloud)
        return cloud

    yield start
    for cloud in clouds:
        cloud.stop()


def test_throttled_attempts_are_retried_by_the_sdk_and_the_projection_converges(real_faulty: Any) -> None:
    # GIVEN DynamoDB and EventBridge throttling half of the event-driven functions' request attempts
    cloud = real_faulty(FaultPlan(seed=2, dynamodb_throttle=0.5, events_throttle=0.5))
    products = [f"p{n}" for n in range(6)]
    # WHEN stock is set for six products, the pipeline settling after each
    for product in products:
        assert (
            cloud.http("PUT", f"/products/{product}/stock", body={"on_hand": 4}, token=admin_token(cloud)).status == 200
        )
        cloud.run_until_quiet()
    # THEN throttles were injected and retried by the SDK, and availability still arrived
    stats = cloud.faults.stats
    assert stats["dynamodb_throttled_attempts"] > 0
    assert stats["events_throttled_attempts"] > 0
    assert stats["sdk_retries"] > 0
    for product in products:
        assert cloud.http("GET", f"/availability/{product}", token=admin_token(cloud)).json()["available"] == 4


def test_a_throttled_call_reaches_the_handler_and_the_stream_batch_goes_to_on_failure(real_faulty: Any) -> None:
    # GIVEN every PutEvents call of the inventory publisher throttled, not retried by the SDK
    plan = FaultPlan(seed=2, events_throttle=1.0, throttle_scope="call", functions=("InventoryPublisherFunction",))
    cloud = real_faulty(plan)
    # WHEN stock is set and the pipeline settles
    cloud.http("PUT", "/products/p1/stock", body={"on_hand": 4}, token=admin_token(cloud))
    cloud.run_until_quiet()
    # THEN the publisher's stream batch exhausted its retries: OnFailure holds its metadata, no availability
    records = drain(cloud, "InventoryDLQ")
    assert len(records) == 1
    assert records[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert "DDBStreamBatchInfo" in records[0]
    assert cloud.http("GET", "/availability/p1", token=admin_token(cloud)).status == 404


def test_failed_put_events_entries_are_resent_by_the_publisher(real_faulty: Any) -> None:
    # GIVEN half of the PutEvents entries failed individually
    cloud = real_faulty(FaultPlan(seed=4, put_events_entry_failure=0.5))
    # WHEN several products get stock in one stream batch and the pipeline settles
    for product in ("p1", "p2", "p3", "p4", "p5"):
        cloud.http("PUT", f"/products/{product}/stock", body={"on_hand": 2}, token=admin_token(cloud))
    cloud.run_until_quiet()
    # THEN entries failed, the publisher resent them, and every product's availability arrived
    assert cloud.faults.stats["put_events_entries_failed"] > 0
    for product in ("p1", "p2", "p3", "p4", "p5"):
        response = cloud.http("GET", f"/availability/{product}", token=admin_token(cloud))
        assert response.status == 200, product


# ---------------------------------------------------------------------------------------- drift faults (real template)
@pytest.fixture(scope="module")
def drifting() -> Iterator[LocalCloud]:
    """One real-template LocalCloud for the drift tests (each uses its own product and order ids); schedules off."""
    with LocalCloud(REAL_TEMPLATE) as cloud:
        for schedule in cloud.schedules.values():
            schedule.enabled = False
        yield cloud


def _stored(cloud: LocalCloud, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    raw = cloud.get_item(table, {"pk": {"S": pk}, "sk": {"S": sk}}, consistent=True)
    return None if raw is None else from_item(raw)


def _place(cloud: LocalCloud, customer: str, lines: list[tuple[str, int]]) -> str:
    body = {"lines": [{"product_id": p, "quantity": q} for p, q in lines]}
    response = cloud.http("POST", "/orders", body=body, token=customer_token(cloud, customer))
    assert response.status == 201, response.body
    return str(response.json()["order_id"])


def test_a_rolled_back_source_item_is_an_earlier_image_of_itself(drifting: LocalCloud) -> None:
    # GIVEN a product whose stock was set twice (versions 1 and 2) and an order that was confirmed (versions 1, 2)
    cloud = drifting
    cloud.http("PUT", "/products/rb-p1/stock", body={"on_hand": 3}, token=admin_token(cloud))
    cloud.run_until_quiet()
    first = _stored(cloud, "InventoryTable", "PRODUCT#rb-p1", "PRODUCT")
    cloud.http("PUT", "/products/rb-p1/stock", body={"on_hand": 7}, token=admin_token(cloud))
    order_id = _place(cloud, "rb-c", [("rb-p1", 1)])
    placed = _stored(cloud, "OrdersTable", f"ORDER#{order_id}", "ORDER")
    cloud.run_until_quiet()
    assert _stored(cloud, "OrdersTable", f"ORDER#{order_id}", "ORDER")["status"] == "CONFIRMED"  # type: ignore[index]
    # WHEN the product, then the order, is rolled back (a restore's copy-back)
    product_fault = cloud.faults.rollback_source(cloud, random.Random(1), entity_ids={"rb-p1"})
    order_fault = cloud.faults.rollback_source(cloud, random.Random(1), entity_ids={order_id})
    # THEN each item is an earlier image of itself, old version and updated_at included, put straight in the table
    assert product_fault is not None
    assert order_fault is not None
    assert product_fault.variant == "product"
    assert product_fault.where == "InventoryTable"
    rolled_product = _stored(cloud, "InventoryTable", "PRODUCT#rb-p1", "PRODUCT")
    assert rolled_product is not None
    assert rolled_product == product_fault.after
    assert product_fault.before is not None
    assert product_fault.before["version"] > rolled_product["version"]
    assert rolled_product["on_hand"] < 7
    if rolled_product["version"] == first["version"]:  # type: ignore[index]
        assert rolled_product == first
    assert _stored(cloud, "OrdersTable", f"ORDER#{order_id}", "ORDER") == placed == order_fault.after
    assert cloud.faults.stats["source_items_rolled_back"] == 2
    assert cloud.faults.drift_log[-2:] == [product_fault, order_fault]


def test_an_item_without_an_earlier_version_is_never_rolled_back(drifting: LocalCloud) -> None:
    # GIVEN a product whose stock was set once
    cloud = drifting
    cloud.http("PUT", "/products/rb-once/stock", body={"on_hand": 2}, token=admin_token(cloud))
    cloud.run_until_quiet()
    before = _stored(cloud, "InventoryTable", "PRODUCT#rb-once", "PRODUCT")
    # WHEN a rollback is asked for among its items
    fault = cloud.faults.rollback_source(cloud, random.Random(2), entity_ids={"rb-once"})
    # THEN there is nothing earlier to restore: nothing happens
    assert fault is None
    assert _stored(cloud, "InventoryTable", "PRODUCT#rb-once", "PRODUCT") == before


def test_a_corrupted_projection_item_keeps_its_version_and_holds_wrong_data(drifting: LocalCloud) -> None:
    # GIVEN a product and a confirmed order, projected into availability, the order outcome and a notification
    cloud = drifting
    cloud.http("PUT", "/products/cp-p1/stock", body={"on_hand": 5}, token=admin_token(cloud))
    order_id = _place(cloud, "cp-c", [("cp-p1", 2)])
    cloud.run_until_quiet()
    # WHEN projection items of them are corrupted, several times
    faults = [
        cloud.faults.corrupt_projection(cloud, random.Random(seed), entity_ids={"cp-p1", order_id}) for seed in range(8)
    ]
    # THEN each rewritten item is in the table as corrupted, at the version it had, with different data
    assert all(fault is not None for fault in faults)
    assert {fault.variant for fault in faults if fault} == {"availability", "order_outcome", "order_notification"}
    for fault in faults:
        assert fault is not None
        assert fault.key is not None
        assert fault.before is not None
        assert fault.after is not None
        assert fault.after != fault.before
        assert fault.after.get("version") == fault.before.get("version")
    last_by_key = {fault.key: fault for fault in faults if fault and fault.key}
    for (pk, sk), fault in last_by_key.items():
        assert _stored(cloud, "NotificationsTable", pk, sk) == fault.after
    availability = cloud.http("GET", "/availability/cp-p1", token=admin_token(cloud)).json()
    product = _stored(cloud, "InventoryTable", "PRODUCT#cp-p1", "PRODUCT")
    assert product is not None
    assert (availability["version"], availability["on_hand"]) != (5, product["on_hand"])
    assert cloud.faults.stats["projection_items_corrupted"] >= 8


def test_a_deleted_projection_item_is_gone(drifting: LocalCloud) -> None:
    # GIVEN a product whose availability is projected
    cloud = drifting
    cloud.http("PUT", "/products/dp-p1/stock", body={"on_hand": 4}, token=admin_token(cloud))
    cloud.run_until_quiet()
    assert _stored(cloud, "NotificationsTable", "AVAILABILITY#dp-p1", "AVAILABILITY") is not None
    # WHEN a projection item of it is deleted
    fault = cloud.faults.delete_projection(cloud, random.Random(3), entity_ids={"dp-p1"})
    # THEN the availability item is gone (the product is not)
    assert fault is not None
    assert fault.variant == "availability"
    assert fault.after is None
    assert _stored(cloud, "NotificationsTable", "AVAILABILITY#dp-p1", "AVAILABILITY") is None
    assert cloud.http("GET", "/availability/dp-p1", token=admin_token(cloud)).status == 404
    assert _stored(cloud, "InventoryTable", "PRODUCT#dp-p1", "PRODUCT") is not None
    assert cloud.faults.stats["projection_items_deleted"] == 1


def test_forged_events_are_valid_carry_their_source_and_wait_in_the_inbox(drifting: LocalCloud) -> None:
    # GIVEN a product, and an order that is still PENDING (the pipeline has not run since it was placed)
    cloud = drifting
    cloud.http("PUT", "/products/fe-p1/stock", body={"on_hand": 6}, token=admin_token(cloud))
    cloud.run_until_quiet()
    order_id = _place(cloud, "fe-c", [("fe-p1", 1)])
    # WHEN one forged event of each kind is injected
    faults = [
        cloud.faults.forge_event(cloud, random.Random(4), kind=kind, entity_ids={"fe-p1", order_id})
        for kind in FORGED_KINDS
    ]
    # THEN each message is on its inbox, parses as a contract event, with the source of its type and a huge version
    notifications, orders = drain(cloud, "NotificationsInbox"), drain(cloud, "OrdersInbox")
    by_type = {body["detail-type"]: body for body in notifications + orders}
    assert sorted(by_type) == ["OrderRejected", "StockReserved", "StockUpdated"]
    assert [b["detail-type"] for b in orders] == ["StockReserved"]
    for fault in faults:
        assert fault is not None
        assert fault.body is not None
        event = parse_eventbridge_json(fault.body)
        assert json.loads(fault.body)["source"] == event.source == EVENT_TYPES[event.event_type].source
        assert event.metadata.entity_version >= FORGED_VERSION
        assert cloud.faults.forged_bodies[fault.body] == f"forged:{fault.variant}"
    assert by_type["StockUpdated"]["detail"]["data"]["product_id"] == "fe-p1"
    assert by_type["OrderRejected"]["detail"]["data"]["reason"] == ATTACKER_TEXT
    assert by_type["StockReserved"]["detail"]["data"]["order_id"] == order_id
    assert cloud.faults.stats["forged_events_injected"] == 3
    cloud.run_until_quiet()  # the order's own events, for the tests after this one


def test_orphan_saga_events_name_an_order_that_does_not_exist(drifting: LocalCloud) -> None:
    # GIVEN products
    cloud = drifting
    for product in ("os-p1", "os-p2"):
        cloud.http("PUT", f"/products/{product}/stock", body={"on_hand": 9}, token=admin_token(cloud))
    cloud.run_until_quiet()
    # WHEN one orphan saga event of each kind is injected
    faults = [
        cloud.faults.inject_orphan_saga_event(cloud, random.Random(5), kind=kind, entity_ids={"os-p1", "os-p2"})
        for kind in ORPHAN_KINDS
    ]
    # THEN each is a valid event of an order missing from OrdersTable, naming real products, on the right inbox
    inventory, orders = drain(cloud, "InventoryInbox"), drain(cloud, "OrdersInbox")
    assert [b["detail-type"] for b in inventory] == ["OrderPlaced"]
    assert [b["detail-type"] for b in orders] == ["StockReserved", "StockReservationFailed"]
    for fault in faults:
        assert fault is not None
        assert fault.body is not None
        event = parse_eventbridge_json(fault.body)
        assert json.loads(fault.body)["source"] == event.source
        assert _stored(cloud, "OrdersTable", f"ORDER#{fault.entity_id}", "ORDER") is None
        assert {line.product_id for line in event.data.lines} <= {"os-p1", "os-p2"}  # type: ignore[attr-defined]
        assert cloud.faults.forged_bodies[fault.body] == f"orphan:{fault.variant}"
    assert cloud.faults.stats["orphan_saga_events_injected"] == 3


def test_an_orphan_order_placed_reserves_stock_for_no_order(drifting: LocalCloud) -> None:
    # GIVEN a product with stock
    cloud = drifting
    cloud.http("PUT", "/products/oo-p1/stock", body={"on_hand": 9}, token=admin_token(cloud))
    cloud.run_until_quiet()
    # WHEN an orphan OrderPlaced is injected and the pipeline runs
    fault = cloud.faults.inject_orphan_saga_event(cloud, random.Random(6), kind="order-placed", entity_ids={"oo-p1"})
    cloud.run_until_quiet()
    # THEN inventory reserved stock for an order that does not exist (what the reconciler must undo)
    assert fault is not None
    assert fault.after is not None
    reservation = _stored(cloud, "InventoryTable", f"RESERVATION#{fault.entity_id}", "RESERVATION")
    assert reservation is not None
    assert reservation["status"] == "RESERVED"
    product = _stored(cloud, "InventoryTable", "PRODUCT#oo-p1", "PRODUCT")
    assert product is not None
    assert product["reserved"] == fault.after["lines"][0]["quantity"]
    assert _stored(cloud, "OrdersTable", f"ORDER#{fault.entity_id}", "ORDER") is None


def test_drift_faults_strike_at_their_rates_and_stop_when_faults_stop(drifting: LocalCloud) -> None:
    # GIVEN a product with two versions and its availability, and a plan with every drift kind at rate 1
    cloud = drifting
    cloud.http("PUT", "/products/dr-p1/stock", body={"on_hand": 3}, token=admin_token(cloud))
    cloud.http("PUT", "/products/dr-p1/stock", body={"on_hand": 8}, token=admin_token(cloud))
    cloud.run_until_quiet()
    before = Counter(cloud.faults.stats)
    cloud.faults.start(FaultPlan(seed=11).with_drift(1.0))
    try:
        # WHEN drift is rolled once
        injected = cloud.faults.drift(cloud)
    finally:
        cloud.faults.stop()
    # THEN one fault of each kind was injected and counted
    assert sorted(fault.kind for fault in injected) == sorted(DRIFT_KINDS)
    counted = Counter(cloud.faults.stats)
    counted.subtract(before)
    assert {name: counted[name] for name in DRIFT_STATS.values()} == dict.fromkeys(DRIFT_STATS.values(), 1)
    # AND once faults stop, drift injects nothing
    assert cloud.faults.drift(cloud) == []
    cloud.run_until_quiet()


def test_the_chaos_plan_with_drift_turns_every_drift_kind_on() -> None:
    # GIVEN the chaos mix with and without drift
    plain, drifting = FaultPlan.chaos(3), FaultPlan.chaos(3, drift=True)
    # THEN only the drift plan has drift rates, and describes them
    assert not plain.drifts
    assert drifting.drifts
    assert {kind: drifting.describe()[kind] for kind in DRIFT_KINDS} == dict.fromkeys(DRIFT_KINDS, DRIFT_RATE)
    assert drifting.with_drift(0.0) == plain

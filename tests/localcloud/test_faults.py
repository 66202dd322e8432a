"""Fault injection (localcloud/faults.py): each fault at the AWS boundary, seeded and reproducible."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from localcloud.faults import FaultPlan
from tests.localcloud.helpers import FIXTURE_TEMPLATE, drain
from tests.localcloud.real import REAL_TEMPLATE


def _send(cloud: LocalCloud, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        cloud.clients.sqs.send_message(QueueUrl=cloud.queue_url("WorkQueue"), MessageBody=json.dumps(body))


def _received(cloud: LocalCloud) -> list[list[int]]:
    """The `n` of every message of every QueueFunction invocation, per invocation."""
    return [
        [json.loads(r["body"])["n"] for r in invocation.event["Records"] if "n" in json.loads(r["body"])]
        for invocation in cloud.runtime.history
        if invocation.function == "QueueFunction"
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
    dead = cloud.clients.sqs.receive_message(QueueUrl=cloud.queue_url("WorkDLQ"), MaxNumberOfMessages=10)
    assert [m["Body"] for m in dead["Messages"]] == list(cloud.faults.poison_bodies)


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
    first = next(i for i in cloud.runtime.history if i.function == "QueueFunction")
    assert first.error is not None
    assert first.error.error_type == error_type
    assert first.response is None
    assert cloud.queue_depth("WorkQueue") == 1
    # AND once faults stop it is delivered after its visibility timeout
    cloud.faults.stop()
    _settle(cloud)
    assert cloud.queue_depth("WorkQueue") == 0
    assert cloud.runtime.history[-1].ok


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
        assert cloud.http("PUT", f"/products/{product}/stock", body={"on_hand": 4}).status == 200
        cloud.run_until_quiet()
    # THEN throttles were injected and retried by the SDK, and availability still arrived
    stats = cloud.faults.stats
    assert stats["dynamodb_throttled_attempts"] > 0
    assert stats["events_throttled_attempts"] > 0
    assert stats["sdk_retries"] > 0
    for product in products:
        assert cloud.http("GET", f"/availability/{product}").json()["available"] == 4


def test_a_throttled_call_reaches_the_handler_and_the_stream_batch_goes_to_on_failure(real_faulty: Any) -> None:
    # GIVEN every PutEvents call of the inventory publisher throttled, not retried by the SDK
    plan = FaultPlan(seed=2, events_throttle=1.0, throttle_scope="call", functions=("InventoryPublisherFunction",))
    cloud = real_faulty(plan)
    # WHEN stock is set and the pipeline settles
    cloud.http("PUT", "/products/p1/stock", body={"on_hand": 4})
    cloud.run_until_quiet()
    # THEN the publisher's stream batch exhausted its retries: OnFailure holds its metadata, no availability
    records = drain(cloud, "InventoryDLQ")
    assert len(records) == 1
    assert records[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert "DDBStreamBatchInfo" in records[0]
    assert cloud.http("GET", "/availability/p1").status == 404


def test_failed_put_events_entries_are_resent_by_the_publisher(real_faulty: Any) -> None:
    # GIVEN half of the PutEvents entries failed individually
    cloud = real_faulty(FaultPlan(seed=4, put_events_entry_failure=0.5))
    # WHEN several products get stock in one stream batch and the pipeline settles
    for product in ("p1", "p2", "p3", "p4", "p5"):
        cloud.http("PUT", f"/products/{product}/stock", body={"on_hand": 2})
    cloud.run_until_quiet()
    # THEN entries failed, the publisher resent them, and every product's availability arrived
    assert cloud.faults.stats["put_events_entries_failed"] > 0
    for product in ("p1", "p2", "p3", "p4", "p5"):
        response = cloud.http("GET", f"/availability/{product}")
        assert response.status == 200, product

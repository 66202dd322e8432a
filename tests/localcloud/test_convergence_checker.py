"""The convergence checker (localcloud/convergence.py `verify`): projections, invariants, every event accounted for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcloud import convergence
from localcloud.cloud import LocalCloud
from localcloud.demo import dead_letter_queues
from localcloud.faults import FaultPlan
from localcloud.template import load_template
from tests.localcloud.real import REAL_TEMPLATE

DLQS = dead_letter_queues(load_template(REAL_TEMPLATE))


@pytest.fixture
def real() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as cloud:
        yield cloud


def _order(cloud: LocalCloud, product: str, quantity: int, customer: str = "c-1") -> str:
    response = cloud.http(
        "POST", "/orders", body={"customer_id": customer, "lines": [{"product_id": product, "quantity": quantity}]}
    )
    assert response.status == 201, response.body
    return str(response.json()["order_id"])


def _put(cloud: LocalCloud, table: str, item: dict[str, Any]) -> None:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    cloud.clients.dynamodb.put_item(
        TableName=cloud.table_name(table), Item={k: serializer.serialize(v) for k, v in item.items()}
    )


def _reconcile(cloud: LocalCloud) -> None:
    cloud.invoke("ReconcilerFunction", {"mode": "full"})
    cloud.run_until_quiet()


def test_a_converged_system_has_nothing_divergent_and_every_event_processed(real: LocalCloud) -> None:
    # GIVEN stock, one confirmed and one rejected order, settled
    real.http("PUT", "/products/p1/stock", body={"on_hand": 3})
    real.run_until_quiet()
    _order(real, "p1", 2)
    _order(real, "p1", 5)
    real.run_until_quiet()
    # WHEN the checker runs
    report = convergence.verify(real, DLQS)
    # THEN nothing diverges, no invariant is broken, and every delivery was processed
    assert report.converged
    assert report.divergence.total == 0
    assert report.invariants.total == 0
    accounting = report.accounting
    assert accounting.events_published > 0
    assert accounting.deliveries == accounting.processed > 0
    assert accounting.lost == accounting.parked == 0
    assert accounting.outcomes["applied"] > 0


def test_broken_invariants_are_counted_per_rule(real: LocalCloud) -> None:
    # GIVEN a settled order, then tables corrupted behind the services' backs
    real.http("PUT", "/products/p1/stock", body={"on_hand": 3})
    real.run_until_quiet()
    order_id = _order(real, "p1", 2)
    real.run_until_quiet()
    inventory = convergence.scan(real.clients.dynamodb, real.table_name("InventoryTable"))
    product = inventory[("PRODUCT#p1", "PRODUCT")]
    _put(real, "InventoryTable", product | {"reserved": 5, "available": -2})  # reserved > on_hand
    _put(
        real,
        "OrdersTable",
        {
            "pk": "ORDER#ghost",
            "sk": "ORDER",
            "order_id": "ghost",
            "customer_id": "c-9",
            "status": "PENDING",
            "lines": [],
            "version": 1,
        },
    )
    real.clients.dynamodb.delete_item(
        TableName=real.table_name("NotificationsTable"),
        Key={"pk": {"S": "CUSTOMER#c-1"}, "sk": {"S": f"NOTIFICATION#ORDER_CONFIRMED#{order_id}"}},
    )
    # WHEN the checker runs
    report = convergence.verify(real, DLQS)
    # THEN each broken rule counts the entity that breaks it
    violations = report.invariants.violations
    assert violations["reserved_within_on_hand"] == ["p1"]
    assert violations["reserved_equals_reservations"] == ["p1"]
    assert violations["order_not_terminal"] == ["ghost"]
    assert violations["notification_not_exactly_once"] == [order_id]
    assert not report.converged


def test_a_lost_delivery_is_lost_until_reconciliation_republishes_it() -> None:
    # GIVEN every delivery to the inventory inbox lost while an order is placed
    plan = FaultPlan(seed=1, lost_delivery=1.0, functions=("InventoryConsumerFunction",))
    with LocalCloud(REAL_TEMPLATE) as cloud:
        cloud.http("PUT", "/products/p1/stock", body={"on_hand": 3})
        cloud.run_until_quiet()
        cloud.faults.start(plan)
        order_id = _order(cloud, "p1", 1)
        cloud.run_until_quiet()
        cloud.faults.stop()
        # WHEN the checker runs
        before = convergence.verify(cloud, DLQS)
        # THEN the order is PENDING, its OrderPlaced delivery to inventory counts as lost
        assert before.invariants.violations["order_not_terminal"] == [order_id]
        assert before.accounting.lost == 1
        assert any("OrderPlaced" in example for example in before.accounting.lost_examples)
        # AND after a reconciliation pass republishes it, it is processed and nothing is lost
        _reconcile(cloud)
        after = convergence.verify(cloud, DLQS)
        assert after.converged, after.summary()
        assert after.accounting.lost == 0


def test_parked_poison_is_counted_with_the_reason_the_reconciler_gave() -> None:
    # GIVEN a poison message injected into an inbox, failed until SQS moved it to the DLQ
    with LocalCloud(REAL_TEMPLATE, faults=FaultPlan(seed=1, poison_rate=1.0)) as cloud:
        cloud.sqs_mappings[next(iter(cloud.sqs_mappings))].step()
        cloud.faults.stop()
        for _ in range(7):
            cloud.run_until_quiet()
            cloud.advance(61)
        # WHEN the reconciler drains the DLQs and the checker runs with the reasons it logged
        invocation = cloud.invoke("ReconcilerFunction", {"mode": "full"})
        reasons = convergence.parked_reasons(invocation.logs)
        report = convergence.verify(cloud, DLQS, reasons)
        # THEN the poison message is parked, counted, with the reconciler's reason
        assert cloud.faults.stats["poison_injected"] == 1
        assert report.accounting.poison_parked == 1
        assert sum(report.accounting.dlq_messages.values()) == 1
        assert len(reasons) == 1
        assert list(report.accounting.parked_reasons) == list(reasons.values())

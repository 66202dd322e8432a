"""A mixed-version fleet in localcloud: the orders publisher still emits order events as schema v1 (pinned by
EMIT_SCHEMA_VERSIONS, as during a rollout) while the reconciler, already deployed, republishes them as v2. Every
consumer takes both, upcasting v1, and the system converges."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from converge.upcast import PREVIOUS
from localcloud.cloud import LocalCloud
from localcloud.faults import FaultPlan
from tests.localcloud.helpers import admin_token, customer_token
from tests.localcloud.real import REAL_TEMPLATE

CONSUMERS = ("InventoryConsumerFunction", "NotificationsConsumerFunction", "ShippingConsumerFunction")


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    # Lost deliveries: the reconciler has something to republish, and republishes it as the newest version.
    with LocalCloud(REAL_TEMPLATE, faults=FaultPlan(seed=5, lost_delivery=0.3)) as deployed:
        yield deployed


def delivered_order_events(cloud: LocalCloud) -> Counter[tuple[str, int]]:
    """(producer, schema version) of every order event the consumers were handed."""
    seen: Counter[tuple[str, int]] = Counter()
    for invocation in cloud.invocations():
        if invocation.function not in CONSUMERS or not isinstance(invocation.event, dict):
            continue
        for record in invocation.event.get("Records", []):
            detail = json.loads(record["body"]).get("detail", {})
            metadata = detail.get("metadata", {}) if isinstance(detail, dict) else {}
            if metadata.get("event_type") in PREVIOUS:
                seen[(str(detail["data"].get("currency", "none")), int(metadata["schema_version"]))] += 1
    return seen


def test_an_orders_publisher_on_v1_and_a_reconciler_on_v2_converge(cloud: LocalCloud) -> None:
    # GIVEN the orders publisher pinned to v1 of every order event, the rest of the fleet on v2
    pinned = ",".join(f"{event_type}={previous.version}" for event_type, previous in sorted(PREVIOUS.items()))
    cloud.set_environment("OrdersPublisherFunction", EMIT_SCHEMA_VERSIONS=pinned)
    # WHEN priced orders are placed, some cancelled, with 30% of deliveries lost, and the reconciler repairs
    for product in ("p-1", "p-2"):
        assert (
            cloud.http("PUT", f"/products/{product}/stock", body={"on_hand": 5}, token=admin_token(cloud)).status == 200
        )
    placed = []
    for n in range(10):
        line = {"product_id": f"p-{1 + n % 2}", "quantity": 1, "unit_price": 1999}
        response = cloud.http(
            "POST", "/orders", token=customer_token(cloud, f"c-{n}"), body={"currency": "EUR", "lines": [line]}
        )
        assert response.status == 201
        placed.append(response.json()["order_id"])
        cloud.run_until_quiet()
    for n, order_id in enumerate(placed[:3]):
        cloud.http("POST", f"/orders/{order_id}/cancel", token=customer_token(cloud, f"c-{n}"))
    cloud.run_until_quiet()
    cloud.faults.stop()
    for _ in range(2):
        cloud.invoke("ReconcilerFunction", {"mode": "full"})
        cloud.run_until_quiet()
    # THEN consumers were handed order events of both versions: v1 from the publisher (no currency: it upcasts
    # to XXX), v2 from the reconciler (EUR)
    seen = delivered_order_events(cloud)
    assert seen[("none", 1)] > 0, seen
    assert seen[("EUR", 2)] > 0, seen
    assert {version for _, version in seen} == {1, 2}
    # AND every projection agrees with its source
    divergence = cloud.check_convergence()
    assert divergence.total == 0, divergence.counts

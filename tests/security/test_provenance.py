"""Events that should not be trusted, sent where an attacker (or a miswired producer) could send them, in localcloud
on the real template: the forged source, the cross-producer forgery, the direct-to-inbox send."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from converge.dynamo import from_item
from localcloud.cloud import LocalCloud
from localcloud.faults import eventbridge_body
from tests.localcloud.real import REAL_TEMPLATE


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as deployed:
        warehouse = deployed.token("sec-warehouse", admin=True)  # stock is the warehouse's (the admin group)
        assert deployed.http("PUT", "/products/sec-p1/stock", body={"on_hand": 4}, token=warehouse).status == 200
        deployed.run_until_quiet()
        yield deployed


def availability(cloud: LocalCloud) -> dict[str, Any]:
    item = cloud.get_item("NotificationsTable", {"pk": {"S": "AVAILABILITY#sec-p1"}, "sk": {"S": "AVAILABILITY"}})
    assert item is not None
    return from_item(item)


def forged_stock_update(cloud: LocalCloud) -> dict[str, Any]:
    """A StockUpdated of the real product at a huge version with made-up numbers, as an inbox message."""
    item = {"product_id": "sec-p1", "on_hand": 900, "reserved": 0, "available": 900, "event_type": "StockUpdated",
            "version": 10**9, "correlation_id": "attacker", "updated_at": "2026-12-03T10:00:00+00:00"}  # fmt: skip
    return dict(json.loads(eventbridge_body(item, "forged-envelope")))


def rejections(cloud: LocalCloud, function: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for i in cloud.invocations(function) for line in i.logs.splitlines()]
    return [line for line in lines if line.get("message") == "rejected inbox record"]


def orders_source(event: dict[str, Any]) -> dict[str, Any]:
    return event | {"source": "converge.orders"}


def orders_producer(event: dict[str, Any]) -> dict[str, Any]:
    metadata = event["detail"]["metadata"] | {"producer": "orders"}
    return event | {"detail": event["detail"] | {"metadata": metadata}}


def orders_source_and_producer(event: dict[str, Any]) -> dict[str, Any]:
    return orders_producer(orders_source(event))


@pytest.mark.parametrize("forge", [orders_source, orders_producer, orders_source_and_producer])
def test_a_direct_send_with_another_producers_provenance_is_refused_and_changes_nothing(
    cloud: LocalCloud, forge: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    # GIVEN the product's availability as the pipeline projected it
    before = availability(cloud)
    # WHEN a StockUpdated claiming to come from orders is sent straight into the notifications inbox
    #      (moto does not enforce the queue policy's deny; the consumer is the second door)
    body = json.dumps(forge(forged_stock_update(cloud)))
    cloud.send_message("NotificationsInbox", body)
    cloud.run_until_quiet()
    # THEN the consumer refused it as a batch item failure, with the reason logged naming the provenance
    (rejected,) = rejections(cloud, "NotificationsConsumerFunction")
    assert "orders" in rejected["reason"], rejected
    assert rejected["error"] == "MalformedEventError"
    # AND the projection is what it was
    assert availability(cloud) == before


def test_an_orders_publisher_cannot_put_a_stock_event_that_reaches_a_consumer(cloud: LocalCloud) -> None:
    # GIVEN a StockUpdated put on the bus with the orders publisher's source (what a compromised orders
    #       publisher could try; its IAM grant also binds converge.orders to order event types only)
    before = availability(cloud)
    event = forged_stock_update(cloud)
    entry = {"EventBusName": cloud.bus_name(), "Source": "converge.orders", "DetailType": "StockUpdated",
             "Detail": json.dumps(event["detail"])}  # fmt: skip
    # WHEN it is put on the bus
    assert cloud.put_events(entry)["FailedEntryCount"] == 0
    cloud.run_until_quiet()
    # THEN no inbox rule routes (converge.orders, StockUpdated): no consumer saw it, and nothing changed
    consumed = [
        record
        for i in cloud.invocations()
        if i.function.endswith("ConsumerFunction") and isinstance(i.event, dict)
        for record in i.event.get("Records", [])
        if "forged" in record.get("body", "") or '"attacker"' in record.get("body", "")
    ]
    assert consumed == []
    assert availability(cloud) == before


def test_a_valid_looking_forgery_sent_straight_in_is_undone_by_the_reconciler(cloud: LocalCloud) -> None:
    # GIVEN a StockUpdated with inventory's own provenance but made-up numbers at a huge version, sent straight
    #       into the notifications inbox (only a principal the queue policy would deny could do this on AWS)
    before = availability(cloud)
    body = json.dumps(forged_stock_update(cloud))
    cloud.send_message("NotificationsInbox", body)
    cloud.run_until_quiet()
    assert availability(cloud)["available"] == 900  # the consumer cannot tell it from a real one
    # WHEN the reconciler's full sweep runs
    cloud.invoke("ReconcilerFunction", {"mode": "full"})
    cloud.run_until_quiet()
    # THEN the availability is the product's again (corrected against the grain of the forged version)
    after = availability(cloud)
    assert (after["on_hand"], after["reserved"], after["available"]) == (
        before["on_hand"],
        before["reserved"],
        before["available"],
    )

"""A backfill: the reconciler's full sweep of one projection, its republished events marked as a backfill."""

from __future__ import annotations

import pytest

from converge.consumer import BACKFILL_RESOURCE_PREFIX
from reconciler.passes import InvalidInvocation
from tests.integration.test_reconciler import availability, order, product
from tests.support.stack import FunctionRunner, Stack


def test_a_backfill_republishes_only_its_projection_marked_as_a_backfill(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a missing availability and a confirmed order shipping never heard of (shipping joins late)
    history = {
        "InventoryTable": product("p1", 3, on_hand=7),
        "NotificationsTable": availability("p1", 2),
        "OrdersTable": order("o1", "CONFIRMED", 2),
    }
    for table, item in history.items():
        stack.put_item(table, item)
    # WHEN the reconciler backfills the order <-> shipment pair only
    report = functions.sweep(projection="order_shipment")
    # THEN only the order's event is republished, carrying the backfill mark; the availability waits
    events = stack.events_on_bus()
    assert [e["detail-type"] for e in events] == ["OrderConfirmed"]
    assert events[0]["resources"] == [f"{BACKFILL_RESOURCE_PREFIX}order_shipment"]
    assert report["found"]["order_shipment"] == 1
    assert report["found"]["availability"] == 0


def test_a_backfill_of_an_unknown_projection_is_refused(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN/WHEN a backfill names no declared projection, or is not a full sweep
    # THEN the invocation fails, and nothing is sent
    for event in ({"mode": "full", "projection": "nope"}, {"mode": "incremental", "projection": "availability"}):
        with pytest.raises(InvalidInvocation, match="backfill"):
            functions.invoke("ReconcilerFunction", event)
    assert stack.events_on_bus() == []

"""Drift repaired against the grain of versions, on the real template.yaml end to end: a forged event, an orphan
reservation and a source rolled back to an earlier image are each found by the full sweep and corrected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud import convergence
from localcloud.cloud import LocalCloud
from localcloud.demo import dead_letter_queues
from localcloud.template import load_template
from tests.localcloud.helpers import admin_token, customer_token, put_item
from tests.localcloud.real import REAL_TEMPLATE
from tests.support.events import domain_event, eventbridge_event

DLQS = dead_letter_queues(load_template(REAL_TEMPLATE))
FORGED_VERSION = 10**12
STOCK_FIELDS = ("on_hand", "reserved", "available", "version")


@pytest.fixture
def real() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as cloud:
        yield cloud


def _ok(response: Any) -> Any:
    assert 200 <= response.status < 300, (response.status, response.body)
    return response.json()


def _stock(cloud: LocalCloud, product_id: str) -> tuple[int, ...]:
    body = _ok(cloud.http("GET", f"/products/{product_id}", token=admin_token(cloud)))
    return tuple(body[name] for name in STOCK_FIELDS)


def _availability(cloud: LocalCloud, product_id: str) -> tuple[int, ...]:
    body = _ok(cloud.http("GET", f"/availability/{product_id}", token=admin_token(cloud)))
    return tuple(body[name] for name in STOCK_FIELDS)


def _settled_world(cloud: LocalCloud) -> list[str]:
    """Stock for two products and three orders (two confirmed, one rejected), fully propagated."""
    _ok(cloud.http("PUT", "/products/sku-1/stock", body={"on_hand": 10}, token=admin_token(cloud)))
    _ok(cloud.http("PUT", "/products/sku-2/stock", body={"on_hand": 2}, token=admin_token(cloud)))
    cloud.run_until_quiet()
    orders = []
    for customer_id, lines in (
        ("cust-1", [{"product_id": "sku-1", "quantity": 2}]),
        ("cust-2", [{"product_id": "sku-1", "quantity": 1}, {"product_id": "sku-2", "quantity": 1}]),
        ("cust-3", [{"product_id": "sku-2", "quantity": 5}]),
    ):
        placed = cloud.http("POST", "/orders", body={"lines": lines}, token=customer_token(cloud, customer_id))
        orders.append(_ok(placed)["order_id"])
    cloud.run_until_quiet()
    statuses = [_ok(cloud.http("GET", f"/orders/{o}", token=admin_token(cloud)))["status"] for o in orders]
    assert statuses == ["CONFIRMED", "CONFIRMED", "REJECTED"]
    assert _availability(cloud, "sku-1") == _stock(cloud, "sku-1")
    return orders


def _send(cloud: LocalCloud, inbox: str, event_type: str, data: dict[str, Any], version: int) -> None:
    """A valid event of the contract sent straight into an inbox (SQS SendMessage), as its rule would deliver it."""
    envelope = eventbridge_event(domain_event(event_type, data, version=version, correlation_id="forged"))
    cloud.send_message(inbox, json.dumps(envelope))


def _full_pass(cloud: LocalCloud) -> dict[str, Any]:
    """The full sweep (its state machine on moto's interpreter), then the pipeline settles; the sweep's report."""
    report = cloud.sweep()
    cloud.run_until_quiet()
    return report


def _item(cloud: LocalCloud, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    return cloud.table_items(table).get((pk, sk))


def test_a_forged_stock_event_is_corrected_and_the_next_real_change_propagates(real: LocalCloud) -> None:
    # GIVEN a settled world
    _settled_world(real)
    # WHEN a valid StockUpdated at version 10**12 with wrong numbers is sent straight into the notifications inbox
    forged = {"product_id": "sku-1", "on_hand": 500, "reserved": 0, "available": 500}
    _send(real, "NotificationsInbox", "StockUpdated", forged, FORGED_VERSION)
    real.run_until_quiet()
    # THEN the availability holds the forged version
    assert _availability(real, "sku-1") == (500, 0, 500, FORGED_VERSION)
    # AND WHEN a full pass runs and the pipeline settles
    report = _full_pass(real)
    # THEN the availability equals the product again
    assert report["corrections"] >= 1
    assert _availability(real, "sku-1") == _stock(real, "sku-1")
    # AND a legitimate stock adjustment through the API propagates at the product's new version
    before = _stock(real, "sku-1")
    adjusted = _ok(real.http("POST", "/products/sku-1/stock/adjustments", body={"delta": 4}, token=admin_token(real)))
    real.run_until_quiet()
    assert adjusted["version"] == before[3] + 1
    assert (
        _availability(real, "sku-1")
        == _stock(real, "sku-1")
        == (before[0] + 4, before[1], before[2] + 4, adjusted["version"])
    )
    assert convergence.verify(real, DLQS).converged


def test_an_order_placed_for_no_order_reserves_stock_until_a_full_pass_gives_it_back(real: LocalCloud) -> None:
    # GIVEN a settled world
    _settled_world(real)
    before = _stock(real, "sku-1")
    # WHEN an OrderPlaced for an order that does not exist is sent into the inventory inbox
    ghost = {
        "order_id": "ghost-1",
        "customer_id": "cust-9",
        "status": "PENDING",
        "lines": [{"product_id": "sku-1", "quantity": 3}],
    }
    _send(real, "InventoryInbox", "OrderPlaced", ghost, 1)
    real.run_until_quiet()
    # THEN it reserves stock
    reservation = _item(real, "InventoryTable", "RESERVATION#ghost-1", "RESERVATION")
    assert reservation is not None
    assert reservation["status"] == "RESERVED"
    assert _stock(real, "sku-1")[1] == before[1] + 3
    # AND WHEN a full pass runs and the pipeline settles
    _full_pass(real)
    # THEN the orphan reservation is gone and the product's reserved is back, its availability with it
    assert _item(real, "InventoryTable", "RESERVATION#ghost-1", "RESERVATION") is None
    after = _stock(real, "sku-1")
    assert after[:3] == before[:3]
    assert _availability(real, "sku-1") == after
    assert convergence.verify(real, DLQS).converged


def test_a_product_rolled_back_to_an_earlier_image_is_followed_by_its_availability(real: LocalCloud) -> None:
    # GIVEN a settled world, the image of sku-1 as it is now, then a later adjustment, propagated
    _settled_world(real)
    earlier = _item(real, "InventoryTable", "PRODUCT#sku-1", "PRODUCT")
    assert earlier is not None
    _ok(real.http("POST", "/products/sku-1/stock/adjustments", body={"delta": 5}, token=admin_token(real)))
    real.run_until_quiet()
    newer = _availability(real, "sku-1")
    assert newer[3] == earlier["version"] + 1
    # WHEN the product item is restored to the earlier image (its old version and updated_at)
    put_item(real, "InventoryTable", earlier)
    assert _stock(real, "sku-1")[3] == earlier["version"]
    assert _availability(real, "sku-1") == newer  # ahead of its source
    # AND a full pass runs and the pipeline settles
    _full_pass(real)
    # THEN the availability equals the restored product
    restored = _stock(real, "sku-1")
    assert restored == tuple(earlier[name] for name in STOCK_FIELDS)
    assert _availability(real, "sku-1") == restored
    # AND the checker finds nothing divergent
    report = convergence.verify(real, DLQS)
    assert report.divergence.counts == {
        "availability": 0,
        "order_reservations": 0,
        "order_notifications": 0,
        "order_shipments": 0,
    }
    assert report.divergence.total == 0
    assert report.invariants.total == 0, report.summary()
    assert report.converged, report.summary()

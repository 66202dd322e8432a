"""Shipping's projection bootstrapped from history in localcloud, from the archive and from a snapshot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.archive import ARCHIVE_LAG_SECONDS
from localcloud.cloud import LocalCloud
from tests.localcloud.helpers import admin_token, customer_token
from tests.localcloud.real import REAL_TEMPLATE
from tests.localcloud.test_archive_replay import notification_items, rule_arn


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as deployed:
        yield deployed


def items(cloud: LocalCloud, table: str, sk: str) -> dict[str, dict[str, str]]:
    scanned = cloud.scan_items(table)
    return {
        i["pk"]["S"].split("#", 1)[1]: {k: v.get("S", "") for k, v in i.items()} for i in scanned if i["sk"]["S"] == sk
    }


def storefront(cloud: LocalCloud) -> None:
    """Orders confirmed, rejected for lack of stock, and cancelled; then shipping's table emptied (it joins now)."""
    assert cloud.http("PUT", "/products/p-1/stock", body={"on_hand": 6}, token=admin_token(cloud)).status == 200
    cloud.run_until_quiet()
    placed = []
    for n in range(8):
        body = {"lines": [{"product_id": "p-1", "quantity": 1}]}
        response = cloud.http("POST", "/orders", body=body, token=customer_token(cloud, f"c-{n}"))
        assert response.status == 201
        placed.append(response.json()["order_id"])
        cloud.run_until_quiet()
    for n, order_id in enumerate(placed[:2]):
        assert cloud.http("POST", f"/orders/{order_id}/cancel", token=customer_token(cloud, f"c-{n}")).status == 200
    cloud.run_until_quiet()
    for item in cloud.scan_items("ShipmentsTable"):
        cloud.delete_item("ShipmentsTable", {"pk": item["pk"], "sk": item["sk"]})


def confirmed_uncancelled(cloud: LocalCloud) -> set[str]:
    return {oid for oid, order in items(cloud, "OrdersTable", "ORDER").items() if order["status"] == "CONFIRMED"}


def pending_shipments(cloud: LocalCloud) -> set[str]:
    return {oid for oid, s in items(cloud, "ShipmentsTable", "SHIPMENT").items() if s["status"] == "PENDING"}


@pytest.mark.parametrize("source", ["archive", "snapshot"])
def test_a_late_shipping_is_bootstrapped_with_a_shipment_per_confirmed_uncancelled_order(
    cloud: LocalCloud, source: str
) -> None:
    # GIVEN a history of confirmed, rejected and cancelled orders that shipping never saw
    storefront(cloud)
    notified = notification_items(cloud)
    assert confirmed_uncancelled(cloud)
    assert pending_shipments(cloud) == set()
    # WHEN shipping's projection is bootstrapped from the archive (its rule only) or from the sources' state
    if source == "archive":
        cloud.clock.advance(ARCHIVE_LAG_SECONDS + 1)
        cloud.archive.start_replay("bootstrap-shipping", filter_arns=[rule_arn(cloud, "ShippingInboxRule")])
    else:
        cloud.invoke("ReconcilerFunction", {"mode": "full", "projection": "order_shipment"})
    cloud.run_until_quiet()
    # THEN shipments exist for exactly the confirmed, uncancelled orders, nobody is notified again,
    # and every projection agrees with its source
    assert pending_shipments(cloud) == confirmed_uncancelled(cloud)
    assert notification_items(cloud) == notified
    assert cloud.check_convergence().total == 0

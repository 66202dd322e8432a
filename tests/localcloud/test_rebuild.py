"""tools.rebuild on localcloud: a projection dropped and rebuilt from each source, checked at the end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from localcloud.cloud import LocalCloud
from localcloud.rebuild import duplicate_notifications, run_rebuild, target
from tests.localcloud.helpers import admin_token, customer_token, refused
from tests.localcloud.real import REAL_TEMPLATE
from tests.localcloud.test_archive_replay import notification_items
from tests.localcloud.test_bootstrap_shipping import storefront
from tools.rebuild import RebuildError, drop_if_unchanged, rebuild, scan_keys


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as deployed:
        yield deployed


@pytest.mark.parametrize("source", ["archive", "snapshot"])
@pytest.mark.parametrize("projection", ["availability", "order_outcome"])
def test_a_projection_is_rebuilt_from_either_source_and_converges(
    cloud: LocalCloud, projection: str, source: str
) -> None:
    # GIVEN a storefront history
    storefront(cloud)
    notified = notification_items(cloud)
    # WHEN the projection is dropped and rebuilt
    report = rebuild(target(cloud), projection, source, progress=False)
    # THEN its items were dropped and written again, it converged, and no customer was notified again
    assert report.dropped > 0
    assert report.written == report.dropped
    assert report.events_replayed > 0
    assert report.divergent == 0
    assert notification_items(cloud) == notified


def test_customer_notifications_are_not_rebuildable(cloud: LocalCloud) -> None:
    with pytest.raises(RebuildError, match="not rebuildable"):
        rebuild(target(cloud), "order_notification", "snapshot", progress=False)


def test_a_refill_that_brings_nothing_is_caught_by_the_closing_check(cloud: LocalCloud) -> None:
    # GIVEN a storefront history, and a target whose backfill republishes nothing (a broken refill)
    storefront(cloud)
    broken = replace(target(cloud), backfill=lambda projection: 0)
    # WHEN availability is rebuilt through it
    report = rebuild(broken, "availability", "snapshot", progress=False)
    # THEN the closing check names every dropped entity as divergent
    assert report.dropped > 0
    assert report.written == 0
    assert report.divergent == report.dropped


def test_the_drop_keeps_an_item_a_live_event_rewrote_after_the_scan(cloud: LocalCloud) -> None:
    # GIVEN an availability item as the rebuild's scan read it
    storefront(cloud)
    client, table = cloud.clients.dynamodb, cloud.table_name("NotificationsTable")
    scanned = next(i for i in scan_keys(client, table) if i["sk"]["S"] == "AVAILABILITY")
    # AND a live event rewrites it at the next version before the drop reaches it
    key = {"pk": scanned["pk"], "sk": scanned["sk"]}
    newer = str(int(scanned["version"]["N"]) + 1)
    client.update_item(
        TableName=table, Key=key, UpdateExpression="SET version = :v", ExpressionAttributeValues={":v": {"N": newer}}
    )
    # WHEN the drop comes to it
    dropped = drop_if_unchanged(client, table, scanned)
    # THEN it is kept at the live version
    assert dropped is False
    assert client.get_item(TableName=table, Key=key)["Item"]["version"] == {"N": newer}


def test_duplicate_back_in_stock_notifications_are_counted_against_the_rejected_orders(cloud: LocalCloud) -> None:
    # GIVEN an order rejected for lack of stock whose watch has since sent its back-in-stock notification
    assert cloud.http("PUT", "/products/p-1/stock", body={"on_hand": 0}, token=admin_token(cloud)).status == 200
    cloud.run_until_quiet()
    body = {"lines": [{"product_id": "p-1", "quantity": 1}]}
    assert cloud.http("POST", "/orders", body=body, token=customer_token(cloud, "c-1")).status == 201
    cloud.run_until_quiet()
    assert cloud.http("PUT", "/products/p-1/stock", body={"on_hand": 4}, token=admin_token(cloud)).status == 200
    cloud.run_until_quiet()
    total, beyond = duplicate_notifications(cloud)
    assert beyond == 0
    items = cloud.scan_items("NotificationsTable")
    sent = next(i for i in items if i["sk"]["S"].startswith("NOTIFICATION#BACK_IN_STOCK#"))
    # WHEN the same watch notifies again at another version, and a notification names an order never rejected
    again = sent | {"sk": {"S": sent["sk"]["S"] + "0"}}
    unfounded = sent | {"sk": {"S": sent["sk"]["S"] + "1"}, "order_id": {"S": "never-rejected"}}
    for item in (again, unfounded):
        cloud.put_item("NotificationsTable", item)
    # THEN both are counted beyond what the rejected orders allow
    assert duplicate_notifications(cloud) == (total + 2, 2)


@pytest.mark.parametrize("source", ["archive", "snapshot"])
def test_a_rebuild_under_traffic_and_faults_converges_without_notifying_anyone_twice(source: str) -> None:
    # GIVEN a storefront taking orders under the chaos fault plan
    # WHEN availability is dropped half way and rebuilt from `source` while orders keep coming
    (run,) = run_rebuild("availability", (source,), orders=40, products=12, seed=3, progress=False)
    # THEN divergence rose when the projection was dropped, the rebuild refilled it from history,
    # and everything converged after the faults stopped, with no customer notified twice
    assert run.divergent_peak > 0
    assert run.rebuild["dropped"] > 0
    assert run.rebuild["events_replayed"] > 0
    assert run.divergent_final == 0
    assert run.notifications > 0
    assert run.duplicate_notifications == 0
    assert run.ok
    assert refused(run.operations) == {}
    assert run.samples[-1].divergent == 0
    assert run.recovered_seconds >= 0

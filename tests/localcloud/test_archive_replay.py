"""The bus archive and StartReplay in localcloud (localcloud/archive.py): FilterArns, lag, order, replay-name."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from localcloud.archive import ARCHIVE_LAG_SECONDS, SLICE_SECONDS
from localcloud.cloud import LocalCloud
from tests.localcloud.helpers import admin_token, customer_token
from tests.localcloud.real import REAL_TEMPLATE


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as deployed:
        yield deployed


def rule_arn(cloud: LocalCloud, logical_id: str) -> str:
    return str(next(r["Arn"] for r in cloud.rules() if logical_id in r["Name"]))


def replayed_bodies(cloud: LocalCloud, function: str) -> list[dict[str, object]]:
    bodies = [
        json.loads(record["body"])
        for invocation in cloud.invocations(function)
        if isinstance(invocation.event, dict)
        for record in invocation.event.get("Records", [])
        if "body" in record
    ]
    return [b for b in bodies if "replay-name" in b]


def run_storefront(cloud: LocalCloud) -> None:
    for stock in (5, 0, 7, 3):
        assert cloud.http("PUT", "/products/p-1/stock", body={"on_hand": stock}, token=admin_token(cloud)).status == 200
        cloud.run_until_quiet()
    body = {"lines": [{"product_id": "p-1", "quantity": 1}]}
    placed = cloud.http("POST", "/orders", body=body, token=customer_token(cloud, "c-1"))
    assert placed.status == 201
    cloud.run_until_quiet()


def notification_items(cloud: LocalCloud) -> list[dict[str, object]]:
    return [i for i in cloud.scan_items("NotificationsTable") if i["sk"]["S"].startswith("NOTIFICATION#")]


def test_a_replay_filtered_to_one_rule_reaches_only_that_rules_inbox(cloud: LocalCloud) -> None:
    # GIVEN a storefront history, archived and past the archiving lag
    run_storefront(cloud)
    cloud.clock.advance(ARCHIVE_LAG_SECONDS + 1)
    notifications_before = notification_items(cloud)
    # WHEN the archive is replayed to the notifications rule only
    replay = cloud.archive.start_replay("notifications-only", filter_arns=[rule_arn(cloud, "NotificationsInboxRule")])
    cloud.run_until_quiet()
    # THEN only the notifications consumer received replayed events, each marked with the replay's name
    assert replay.done
    assert replay.replayed > 0
    seen = replayed_bodies(cloud, "NotificationsConsumerFunction")
    assert seen
    assert {b["replay-name"] for b in seen} == {"notifications-only"}
    for other in ("OrdersConsumerFunction", "InventoryConsumerFunction", "ShippingConsumerFunction"):
        assert replayed_bodies(cloud, other) == []
    # AND no customer was notified twice, and every projection still equals its source
    assert notification_items(cloud) == notifications_before
    assert cloud.check_convergence().total == 0


def test_events_newer_than_the_archiving_lag_are_not_replayed(cloud: LocalCloud) -> None:
    # GIVEN events put just now (the archive has recorded them, but they are not yet replayable)
    run_storefront(cloud)
    # WHEN a replay starts at once
    replay = cloud.archive.start_replay("too-soon")
    # THEN it sees none of them: the last minutes come from the live stream, not the archive
    assert replay.slices == []
    assert cloud.archive.recorded


def test_out_of_order_replay_into_a_dropped_projection_rebuilds_it_at_the_newest_version(cloud: LocalCloud) -> None:
    # GIVEN a product written four times and its availability projection deleted, all within one minute of
    #       localcloud's clock (the replay's slices are minutes of ingestion time: started at a minute's start, the
    #       writes of a few seconds, even on a busy machine, land in one slice)
    cloud.clock.advance(SLICE_SECONDS - cloud.clock.now() % SLICE_SECONDS)
    run_storefront(cloud)
    key = {"pk": {"S": "AVAILABILITY#p-1"}, "sk": {"S": "AVAILABILITY"}}
    wanted = cloud.get_item("NotificationsTable", key)
    assert wanted is not None
    cloud.delete_item("NotificationsTable", key)
    cloud.clock.advance(ARCHIVE_LAG_SECONDS + 1)
    # WHEN the archive is replayed to notifications (one slice: its events arrive shuffled)
    replay = cloud.archive.start_replay("rebuild", filter_arns=[rule_arn(cloud, "NotificationsInboxRule")])
    assert len(replay.slices) == 1
    cloud.run_until_quiet()
    # THEN the version-conditional write kept the newest version, whatever the order of delivery
    rebuilt = cloud.get_item("NotificationsTable", key)
    assert rebuilt is not None
    assert rebuilt["version"] == wanted["version"]
    assert rebuilt["available"] == wanted["available"]


def test_a_filter_naming_no_rule_of_the_bus_is_refused(cloud: LocalCloud) -> None:
    with pytest.raises(ValueError, match="FilterArns"):
        cloud.archive.start_replay("bad", filter_arns=["arn:aws:events:us-east-1:123456789012:rule/converge-bus/nope"])

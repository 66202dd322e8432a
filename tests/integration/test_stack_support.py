"""The test stack itself: tables come from template.yaml and the tap sees what the bus receives."""

from __future__ import annotations

import boto3

from tests.support.stack import Stack


def test_tables_are_built_from_the_template_with_streams(stack: Stack) -> None:
    # GIVEN the stack built from template.yaml
    client = boto3.client("dynamodb")
    # WHEN each table is described
    for logical_id in ("OrdersTable", "InventoryTable", "NotificationsTable"):
        table = client.describe_table(TableName=stack.table(logical_id))["Table"]
        # THEN its key schema and stream are the template's
        assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
        assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_tap_receives_events_put_on_the_bus(stack: Stack) -> None:
    # GIVEN the bus and its tap
    events = boto3.client("events")
    # WHEN an event is put on the bus
    events.put_events(
        Entries=[{"EventBusName": stack.bus_name, "Source": "converge.orders", "DetailType": "X", "Detail": "{}"}]
    )
    # THEN the tap holds it
    assert [e["detail-type"] for e in stack.events_on_bus()] == ["X"]

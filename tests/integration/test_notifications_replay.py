"""Replayed and backfilled events at the notifications consumer: state applied, no customer notified twice."""

from __future__ import annotations

import json
from typing import Any

import boto3

from converge.consumer import BACKFILL_RESOURCE_PREFIX
from converge.dynamo import to_item
from tests.integration.test_notifications_consumer import (
    CONSUMER,
    TABLE,
    availability,
    failures,
    notifications,
    order_confirmed,
    order_rejected,
    stock_updated,
)
from tests.support.events import eventbridge_event, sqs_event, sqs_event_of
from tests.support.stack import FunctionRunner, Stack


def replayed(*events: Any, name: str = "rebuild-1") -> dict[str, Any]:
    return sqs_event([json.dumps(eventbridge_event(e) | {"replay-name": name}) for e in events])


def backfilled(*events: Any) -> dict[str, Any]:
    return sqs_event(
        [json.dumps(eventbridge_event(e) | {"resources": [f"{BACKFILL_RESOURCE_PREFIX}r1"]}) for e in events]
    )


def test_a_replay_into_a_dropped_availability_notifies_no_watcher(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a watcher told at version 2, re-armed by a later rejection, and the availability projection dropped
    stock = [stock_updated(0, version=1), stock_updated(3, version=2), stock_updated(0, version=3)]
    functions.invoke(CONSUMER, sqs_event_of(stock[0], order_rejected(), stock[1]))
    functions.invoke(CONSUMER, sqs_event_of(stock[2], order_rejected("o-10")))
    key = to_item({"pk": "AVAILABILITY#sku-1", "sk": "AVAILABILITY"})
    boto3.client("dynamodb").delete_item(TableName=stack.table(TABLE), Key=key)
    before = notifications(stack)
    # WHEN the stock history is replayed (0 at version 1, then 3 at version 2: a "transition", then 0 again)
    response = functions.invoke(CONSUMER, replayed(*stock))
    # THEN the projection is rebuilt at the newest version, nobody is notified, and the watch stays armed
    assert failures(response) == []
    assert notifications(stack) == before
    item = availability(stack)
    assert item is not None
    assert (item["version"], item["available"]) == (3, 0)
    watch = stack.get_item(TABLE, "WATCH#sku-1", "CUSTOMER#c-1")
    assert watch is not None
    assert watch.get("notified_version") is None


def test_a_full_replay_and_a_backfill_leave_the_notifications_as_they_were(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a history with a confirmation, a rejection and a back-in-stock notification
    history = [stock_updated(0, version=1), order_rejected(), stock_updated(4, version=2), order_confirmed()]
    functions.invoke(CONSUMER, sqs_event_of(*history))
    before = notifications(stack)
    assert {n["kind"] for n in before} == {"ORDER_REJECTED", "BACK_IN_STOCK", "ORDER_CONFIRMED"}
    # WHEN all of it is replayed, backwards, and then backfilled
    functions.invoke(CONSUMER, replayed(*reversed(history)))
    functions.invoke(CONSUMER, backfilled(*history))
    # THEN the notification count is unchanged and the projection still holds the newest state
    assert notifications(stack) == before
    item = availability(stack)
    assert item is not None
    assert (item["version"], item["available"]) == (2, 4)

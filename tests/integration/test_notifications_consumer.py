"""The notifications inbox consumer under moto: projections by version, notifications exactly once, watches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from converge.projections import PROJECTIONS_BY_NAME
from localcloud.template import ROOT
from tests.support.events import domain_event, eventbridge_event, sqs_event, sqs_event_of
from tests.support.stack import FunctionRunner, Stack

CONSUMER = "NotificationsConsumerFunction"
TABLE = "NotificationsTable"
FIXTURE = ROOT / "events" / f"{CONSUMER}.back-in-stock-after-rejection.json"
LINES = [{"product_id": "sku-1", "quantity": 1}]


def stock_updated(available: int, version: int, product_id: str = "sku-1") -> Any:
    data = {"product_id": product_id, "on_hand": available + 1, "reserved": 1, "available": available}
    return domain_event("StockUpdated", data, version=version)


def order_confirmed(order_id: str = "o-1", customer_id: str = "c-1") -> Any:
    data = {"order_id": order_id, "customer_id": customer_id, "lines": LINES, "status": "CONFIRMED"}
    return domain_event("OrderConfirmed", data, version=2)


def order_rejected(order_id: str = "o-9", customer_id: str = "c-1", shortages: tuple[str, ...] = ("sku-1",)) -> Any:
    data = {
        "order_id": order_id,
        "customer_id": customer_id,
        "lines": LINES,
        "status": "REJECTED",
        "reason": "insufficient stock",
        "shortages": list(shortages),
    }
    return domain_event("OrderRejected", data, version=2)


def failures(response: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def notifications(stack: Stack, customer_id: str = "c-1") -> list[dict[str, Any]]:
    items = [i for i in stack.scan(TABLE) if i["pk"] == f"CUSTOMER#{customer_id}"]
    return sorted(items, key=lambda i: str(i["sk"]))


def availability(stack: Stack, product_id: str = "sku-1") -> dict[str, Any] | None:
    return stack.get_item(TABLE, f"AVAILABILITY#{product_id}", "AVAILABILITY")


def emitted_metrics(output: str) -> dict[str, float]:
    """Sum of each metric over the EMF blobs Powertools printed."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            name = definition["Name"]
            value = blob[name]
            totals[name] = totals.get(name, 0) + (sum(value) if isinstance(value, list) else value)
    return totals


# ------------------------------------------------------------------ availability
def test_stock_updated_creates_then_updates_the_availability(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a product never seen
    # WHEN its stock is reported at version 1 and then at version 2
    first = functions.invoke(CONSUMER, sqs_event_of(stock_updated(4, version=1)))
    second = functions.invoke(CONSUMER, sqs_event_of(stock_updated(9, version=2)))
    # THEN the availability projection holds version 2's state, without the event_type of an entity
    assert failures(first) == failures(second) == []
    item = availability(stack)
    assert item is not None
    assert (item["on_hand"], item["reserved"], item["available"], item["version"]) == (10, 1, 9, 2)
    assert "event_type" not in item


def test_an_older_version_after_a_newer_one_is_skipped(
    stack: Stack, functions: FunctionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the availability at version 3
    functions.invoke(CONSUMER, sqs_event_of(stock_updated(7, version=3)))
    before = availability(stack)
    capsys.readouterr()
    # WHEN version 2 arrives late
    response = functions.invoke(CONSUMER, sqs_event_of(stock_updated(1, version=2)))
    # THEN it is not a failure, the projection is unchanged and it is counted as skipped
    assert failures(response) == []
    assert availability(stack) == before
    assert emitted_metrics(capsys.readouterr().out).get("EventsSkippedStale") == 1


def test_the_same_stock_event_twice_is_applied_once(
    stack: Stack, functions: FunctionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN one StockUpdated event
    event = stock_updated(5, version=1)
    # WHEN it is delivered twice
    functions.invoke(CONSUMER, sqs_event_of(event))
    functions.invoke(CONSUMER, sqs_event_of(event))
    # THEN it was applied once and skipped once, leaving version 1
    metrics = emitted_metrics(capsys.readouterr().out)
    assert (metrics.get("EventsApplied"), metrics.get("EventsSkippedStale")) == (1, 1)
    item = availability(stack)
    assert item is not None
    assert (item["available"], item["version"]) == (5, 1)


def test_out_of_order_versions_in_one_batch_end_at_the_newest(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN versions 1..4 of a product delivered shuffled in one batch
    batch = sqs_event_of(*(stock_updated(v * 10, version=v) for v in (2, 4, 1, 3)))
    # WHEN the batch is consumed
    response = functions.invoke(CONSUMER, batch)
    # THEN no record fails and the projection is version 4's
    assert failures(response) == []
    item = availability(stack)
    assert item is not None
    assert (item["available"], item["version"]) == (40, 4)


# ------------------------------------------------------------------ order outcomes
def test_order_confirmed_delivered_three_times_notifies_once(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an OrderConfirmed event
    event = order_confirmed()
    # WHEN it is delivered three times (twice in one batch, once later)
    functions.invoke(CONSUMER, sqs_event_of(event, event))
    response = functions.invoke(CONSUMER, sqs_event_of(event))
    # THEN the customer has exactly one ORDER_CONFIRMED notification and the outcome is projected
    assert failures(response) == []
    assert [n["sk"] for n in notifications(stack)] == ["NOTIFICATION#ORDER_CONFIRMED#o-1"]
    outcome = stack.get_item(TABLE, "ORDER#o-1", "ORDER")
    assert outcome is not None
    assert (outcome["status"], outcome["customer_id"], outcome["version"]) == ("CONFIRMED", "c-1", 2)


def test_a_retry_after_the_projection_was_written_still_notifies(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an earlier delivery wrote the order outcome and failed before its notification
    stack.put_item(
        TABLE,
        {
            "pk": "ORDER#o-1",
            "sk": "ORDER",
            "order_id": "o-1",
            "customer_id": "c-1",
            "status": "CONFIRMED",
            "version": 2,
        },
    )
    # WHEN the event is retried
    response = functions.invoke(CONSUMER, sqs_event_of(order_confirmed()))
    # THEN the notification is written even though the projection is already at this version
    assert failures(response) == []
    assert [n["sk"] for n in notifications(stack)] == ["NOTIFICATION#ORDER_CONFIRMED#o-1"]


def test_order_rejected_notifies_with_the_reason_and_watches_the_short_products(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN an order rejected for lack of sku-1 and sku-2
    event = order_rejected(shortages=("sku-1", "sku-2"))
    # WHEN it is consumed
    response = functions.invoke(CONSUMER, sqs_event_of(event))
    # THEN the customer is told why, and watches both products
    assert failures(response) == []
    [notification] = notifications(stack)
    assert notification["sk"] == "NOTIFICATION#ORDER_REJECTED#o-9"
    assert (notification["kind"], notification["reason"], notification["order_id"]) == (
        "ORDER_REJECTED",
        "insufficient stock",
        "o-9",
    )
    for product_id in ("sku-1", "sku-2"):
        watch = stack.get_item(TABLE, f"WATCH#{product_id}", "CUSTOMER#c-1")
        assert watch is not None
        assert (watch["customer_id"], watch["order_id"], watch.get("notified_version")) == ("c-1", "o-9", None)


# ------------------------------------------------------------------ back in stock
def test_back_in_stock_after_a_rejection_notifies_the_watcher_once(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN sku-1 out of stock and a customer whose order was rejected for it
    functions.invoke(CONSUMER, sqs_event_of(stock_updated(0, version=3), order_rejected()))
    restock = stock_updated(6, version=4)
    # WHEN sku-1 comes back in stock, and that event is delivered again
    functions.invoke(CONSUMER, sqs_event_of(restock))
    response = functions.invoke(CONSUMER, sqs_event_of(restock))
    # THEN the customer has one BACK_IN_STOCK notification for that transition, and the watch is spent
    assert failures(response) == []
    back = [n for n in notifications(stack) if n["kind"] == "BACK_IN_STOCK"]
    assert [n["sk"] for n in back] == ["NOTIFICATION#BACK_IN_STOCK#sku-1#4"]
    assert (back[0]["product_id"], back[0]["order_id"]) == ("sku-1", "o-9")
    watch = stack.get_item(TABLE, "WATCH#sku-1", "CUSTOMER#c-1")
    assert watch is not None
    assert watch["notified_version"] == 4


def test_a_spent_watch_is_not_notified_by_the_next_transition(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a watcher already told that sku-1 came back at version 2
    rejection = order_rejected()
    functions.invoke(CONSUMER, sqs_event_of(stock_updated(0, version=1), rejection, stock_updated(3, version=2)))
    # WHEN sku-1 runs out and comes back again, and the rejection is redelivered in between
    functions.invoke(CONSUMER, sqs_event_of(stock_updated(0, version=3), rejection, stock_updated(8, version=4)))
    # THEN the customer was told once, for the first transition
    back = [n["sk"] for n in notifications(stack) if n["kind"] == "BACK_IN_STOCK"]
    assert back == ["NOTIFICATION#BACK_IN_STOCK#sku-1#2"]


def test_a_new_rejection_re_arms_the_watch(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a watcher told that sku-1 came back at version 2
    functions.invoke(CONSUMER, sqs_event_of(stock_updated(0, version=1), order_rejected(), stock_updated(3, version=2)))
    # WHEN another order of the customer is rejected for sku-1 and sku-1 comes back again
    functions.invoke(
        CONSUMER, sqs_event_of(stock_updated(0, version=3), order_rejected("o-10"), stock_updated(8, version=4))
    )
    # THEN the customer is told about both transitions
    back = [n["sk"] for n in notifications(stack) if n["kind"] == "BACK_IN_STOCK"]
    assert back == ["NOTIFICATION#BACK_IN_STOCK#sku-1#2", "NOTIFICATION#BACK_IN_STOCK#sku-1#4"]


def test_a_redelivered_transition_finishes_a_fan_out_that_failed(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an earlier delivery of version 4 projected the 0 -> 6 transition and failed before notifying
    functions.invoke(CONSUMER, sqs_event_of(order_rejected()))
    stack.put_item(
        TABLE,
        {
            "pk": "AVAILABILITY#sku-1",
            "sk": "AVAILABILITY",
            "product_id": "sku-1",
            "on_hand": 7,
            "reserved": 1,
            "available": 6,
            "previous_available": 0,
            "version": 4,
            "updated_at": "2026-11-28T11:00:00.000000Z",
        },
    )
    # WHEN version 4 is redelivered
    response = functions.invoke(CONSUMER, sqs_event_of(stock_updated(6, version=4)))
    # THEN the watcher gets the notification of that transition
    assert failures(response) == []
    back = [n["sk"] for n in notifications(stack) if n["kind"] == "BACK_IN_STOCK"]
    assert back == ["NOTIFICATION#BACK_IN_STOCK#sku-1#4"]


def test_first_sighting_in_stock_is_not_a_transition(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a watcher of a product this service has never seen
    functions.invoke(CONSUMER, sqs_event_of(order_rejected()))
    # WHEN the product is first reported in stock
    functions.invoke(CONSUMER, sqs_event_of(stock_updated(5, version=9)))
    # THEN nobody is told it is back: it was never seen out of stock here
    assert [n["kind"] for n in notifications(stack)] == ["ORDER_REJECTED"]


# ------------------------------------------------------------------ bad records
def test_only_bad_records_of_a_batch_fail(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a batch with a malformed body, an event type not consumed here, a wrong schema version and a good event
    good = eventbridge_event(stock_updated(2, version=1))
    unknown = eventbridge_event(
        domain_event("OrderPlaced", {**order_confirmed().data.model_dump(), "status": "PENDING"})
    )
    wrong_schema = eventbridge_event(stock_updated(3, version=1, product_id="sku-9"))
    wrong_schema["detail"]["metadata"]["schema_version"] = 2
    batch = sqs_event(["{not json", json.dumps(unknown), json.dumps(wrong_schema), json.dumps(good)])
    ids = [r["messageId"] for r in batch["Records"]]
    # WHEN it is consumed
    response = functions.invoke(CONSUMER, batch)
    # THEN exactly the three bad records are reported, and the good one is applied
    assert sorted(failures(response)) == sorted(ids[:3])
    item = availability(stack)
    assert item is not None
    assert item["available"] == 2
    assert availability(stack, "sku-9") is None


# ------------------------------------------------------------------ the sam local fixture
def test_the_fixture_batch_ends_with_a_back_in_stock_notification(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the committed fixture: sku-2 out, an order confirmed, one rejected for sku-2, sku-2 restocked
    event = json.loads(FIXTURE.read_text())
    # WHEN the consumer is invoked with it
    response = functions.invoke(CONSUMER, event)
    # THEN every record is applied and cust-42 has all three notifications
    assert failures(response) == []
    kinds = sorted(n["kind"] for n in notifications(stack, "cust-42"))
    assert kinds == ["BACK_IN_STOCK", "ORDER_CONFIRMED", "ORDER_REJECTED"]
    item = availability(stack, "sku-2")
    assert item is not None
    assert (item["available"], item["version"]) == (20, 5)


# ------------------------------------------------------------------ shipped orders
TOO_LATE = "cancellation came too late: the parcel had already left the warehouse"


def order_event(event_type: str, version: int, order_id: str = "o-1", customer_id: str = "c-1", **extra: Any) -> Any:
    status = {"OrderConfirmed": "CONFIRMED", "OrderCancelled": "CANCELLED", "OrderShipped": "SHIPPED"}[event_type]
    data = {"order_id": order_id, "customer_id": customer_id, "lines": LINES, "status": status, **extra}
    return domain_event(event_type, data, version=version)


def outcome_of(stack: Stack, order_id: str = "o-1") -> tuple[str, int]:
    item = stack.get_item(TABLE, f"ORDER#{order_id}", "ORDER")
    assert item is not None
    return item["status"], item["version"]


def assert_agrees_with_the_reconciler(stack: Stack, order: dict[str, Any]) -> None:
    """The stored outcome and notifications are what converge.projections expects of `order` (no finding)."""
    for name in ("order_outcome", "order_notification"):
        projection = PROJECTIONS_BY_NAME[name]
        expected = projection.expected(order)
        stored = {
            (i["pk"], i["sk"]): i for i in stack.scan(TABLE) if projection.source_id_of(i["pk"], i["sk"]) == "o-1"
        }
        for key in set(expected) | set(stored):
            assert projection.difference(order, expected.get(key), stored.get(key)) is None, (name, key)


def test_order_shipped_projects_the_outcome_and_notifies_once(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an OrderShipped event (version 3: placed, confirmed, shipped)
    event = order_event("OrderShipped", 3)
    # WHEN it is delivered three times (twice in one batch, once later)
    functions.invoke(CONSUMER, sqs_event_of(event, event))
    response = functions.invoke(CONSUMER, sqs_event_of(event))
    # THEN the outcome is SHIPPED at version 3 and the customer has exactly one ORDER_SHIPPED notification
    assert failures(response) == []
    assert outcome_of(stack) == ("SHIPPED", 3)
    [notification] = notifications(stack)
    assert notification["sk"] == "NOTIFICATION#ORDER_SHIPPED#o-1"
    assert (notification["kind"], notification["order_id"], notification.get("reason")) == (
        "ORDER_SHIPPED",
        "o-1",
        None,
    )


def test_a_shipment_that_crossed_a_cancellation_says_the_cancellation_came_too_late(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN an order confirmed (v2), cancelled (v3), then shipped anyway (v4: dispatch wins)
    events = [
        order_event("OrderConfirmed", 2),
        order_event("OrderCancelled", 3, confirmed=True),
        order_event("OrderShipped", 4, confirmed=True, reason=TOO_LATE),
    ]
    # WHEN they are consumed
    response = functions.invoke(CONSUMER, sqs_event_of(*events))
    # THEN the outcome is SHIPPED at v4, and the customer was told of the confirmation and of the shipment, why
    assert failures(response) == []
    assert outcome_of(stack) == ("SHIPPED", 4)
    kinds = {n["kind"]: n.get("reason") for n in notifications(stack)}
    assert kinds == {"ORDER_CONFIRMED": None, "ORDER_SHIPPED": TOO_LATE}


@pytest.mark.parametrize("reason", [None, TOO_LATE])
def test_any_arrival_order_of_a_shipped_orders_events_ends_the_same(
    stack: Stack, functions: FunctionRunner, reason: str | None
) -> None:
    # GIVEN the events of an order shipped at v4 (with a crossed cancellation at v3, or without)
    extra = {"reason": reason} if reason else {}
    middle = order_event("OrderCancelled", 3, confirmed=True) if reason else order_event("OrderConfirmed", 2)
    shipped = order_event("OrderShipped", 4 if reason else 3, **extra)
    # WHEN they arrive newest first, each twice
    response = functions.invoke(CONSUMER, sqs_event_of(shipped, middle, shipped, middle))
    # THEN the outcome stays SHIPPED at the shipment's version, one ORDER_SHIPPED notification carries the reason,
    #      and the reconciler finds nothing to correct
    assert failures(response) == []
    assert outcome_of(stack) == ("SHIPPED", shipped.metadata.entity_version)
    [shipment] = [n for n in notifications(stack) if n["kind"] == "ORDER_SHIPPED"]
    assert shipment.get("reason") == reason
    order = {
        "order_id": "o-1",
        "customer_id": "c-1",
        "status": "SHIPPED",
        "reason": reason,
        "version": shipped.metadata.entity_version,
    }
    assert_agrees_with_the_reconciler(stack, order)


def test_a_retry_after_the_shipped_outcome_was_written_still_notifies(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an earlier delivery wrote the SHIPPED outcome and failed before its notification
    stack.put_item(
        TABLE,
        {"pk": "ORDER#o-1", "sk": "ORDER", "order_id": "o-1", "customer_id": "c-1", "status": "SHIPPED", "version": 3},
    )
    # WHEN the event is retried
    response = functions.invoke(CONSUMER, sqs_event_of(order_event("OrderShipped", 3)))
    # THEN the notification is written even though the outcome is already at this version
    assert failures(response) == []
    assert [n["sk"] for n in notifications(stack)] == ["NOTIFICATION#ORDER_SHIPPED#o-1"]


def test_the_order_shipped_fixture_notifies_the_fixture_customer(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the committed OrderShipped fixture (cust-42's order, version 3)
    event = json.loads((ROOT / "events" / f"{CONSUMER}.order-shipped.json").read_text())
    # WHEN the consumer is invoked with it
    response = functions.invoke(CONSUMER, event)
    # THEN the outcome is SHIPPED and cust-42 has one ORDER_SHIPPED notification
    assert failures(response) == []
    assert [n["kind"] for n in notifications(stack, "cust-42")] == ["ORDER_SHIPPED"]
    assert outcome_of(stack, "016c8d9b-75f4-55bb-9b76-932d48efa3e6") == ("SHIPPED", 3)

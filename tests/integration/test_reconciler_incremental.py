"""Incremental reconciliation under moto: reads grow with drift, not with the tables; the watermark survives
between passes and moves only after a successful one; the full sweep still finds what the watermark cannot see.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from converge.contracts import with_tables
from converge.envelope import parse_detail
from tests.support.events import sqs_event
from tests.support.stack import TABLE_PROPERTIES, FunctionRunner, Stack
from tools.reconcile_cost import Dataset, make_drift, seed

RECONCILER = "ReconcilerFunction"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
SCHEDULED = json.loads((EVENTS_DIR / "ReconcilerFunction.scheduled.json").read_text())
FULL_SWEEP = json.loads((EVENTS_DIR / "ReconcilerFunction.full-sweep.json").read_text())
ENTITIES = 2000
# What a drifted entity's repair republishes: a product for availability, a cancelled order for its reservation.
REPAIR_OF = {"StockUpdated": "availability", "OrderCancelled": "order_reservation"}


def bootstrapped(stack: Stack, functions: FunctionRunner, entities: int = ENTITIES) -> Dataset:
    """Entities written an hour ago with every projection current, a first pass (which starts the full sweep for
    what came before its watermark) and that sweep behind them."""
    data = seed(stack.tables, entities, datetime.now(UTC) - timedelta(hours=1))
    first = functions.invoke(RECONCILER, SCHEDULED)
    assert (first["mode"], first["mode_reason"], first["republished"]) == ("incremental", "no watermark yet", 0)
    assert first["sweep_started"]
    assert functions.sweep()["republished"] == 0
    return data


def republished(stack: Stack) -> set[tuple[str, str]]:
    """(projection repaired, entity id) of every event the reconciler put on the bus since the last call."""
    events = [parse_detail(e["detail-type"], e["detail"]) for e in stack.events_on_bus()]
    return {(REPAIR_OF[e.event_type], e.metadata.entity_id) for e in events}


def state(stack: Stack) -> dict[str, Any]:
    item = stack.get_item("ReconcilerStateTable", "RECONCILER", "STATE")
    assert item is not None
    return item


@pytest.mark.parametrize("fraction", [0.001, 0.01])
def test_both_modes_find_exactly_the_drifted_entities(stack: Stack, functions: FunctionRunner, fraction: float) -> None:
    # GIVEN 2,000 entities, and then `fraction` of them changed without their projections following
    data = bootstrapped(stack, functions)
    drifted = make_drift(stack.tables, data, fraction, datetime.now(UTC))
    assert len(drifted) == round(fraction * ENTITIES)
    # WHEN the scheduled (incremental) pass runs, and then a full sweep
    incremental = functions.invoke(RECONCILER, SCHEDULED)
    from_incremental = republished(stack)
    full = functions.sweep()
    from_full = republished(stack)
    # THEN each republished exactly the drifted entities, as the repairs their projections need
    assert (incremental["mode"], full["mode"]) == ("incremental", "full")
    assert from_incremental == drifted
    assert from_full == drifted


def test_an_incremental_pass_reads_at_most_5_percent_of_a_full_sweep_at_0_1_percent_drift(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN 2,000 entities (3,500 items with their projections) and 0.1% drift
    data = bootstrapped(stack, functions)
    make_drift(stack.tables, data, 0.001, datetime.now(UTC))
    # WHEN both passes run
    incremental = functions.invoke(RECONCILER, SCHEDULED)
    full = functions.sweep()
    # THEN the full sweep read every item (scanned, and each entity's neighbourhood by key), and the incremental
    #      pass at most 5% of the tables (here: the drifted entities and their neighbourhoods)
    every_item = sum(len(stack.scan(str(s.table))) for s in with_tables())
    assert every_item <= full["items_read"]
    assert 0 < incremental["items_read"] <= 0.05 * every_item
    assert incremental["checked"] == 2


def test_a_pass_with_nothing_changed_reads_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a bootstrapped system in which nothing changed since
    bootstrapped(stack, functions, entities=200)
    # WHEN the scheduled pass runs
    report = functions.invoke(RECONCILER, SCHEDULED)
    # THEN it queried the index buckets, found no item, compared nothing and moved the watermark on
    assert (report["mode"], report["items_read"], report["checked"], report["republished"]) == ("incremental", 0, 0, 0)
    assert report["watermark_advanced"] is True


def recreate_table(stack: Stack, logical_id: str) -> None:
    props = {k: v for k, v in stack.template["Resources"][logical_id]["Properties"].items() if k in TABLE_PROPERTIES}
    props["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    boto3.client("dynamodb").create_table(TableName=stack.tables[logical_id], **props)


def test_the_watermark_advances_only_after_a_successful_pass(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a bootstrapped system, a drifted product, and the notifications table unavailable
    data = bootstrapped(stack, functions, entities=200)
    before = state(stack)
    drifted = make_drift(stack.tables, data, 0.005, datetime.now(UTC))
    backup = stack.scan("NotificationsTable")
    boto3.client("dynamodb").delete_table(TableName=stack.tables["NotificationsTable"])
    # WHEN a pass fails midway (after reading the changes, while reading the projections)
    with pytest.raises(ClientError):
        functions.invoke(RECONCILER, SCHEDULED)
    # THEN the saved state is untouched
    assert state(stack) == before
    # WHEN the table is back and the next pass runs
    recreate_table(stack, "NotificationsTable")
    for item in backup:
        stack.put_item("NotificationsTable", item)
    report = functions.invoke(RECONCILER, SCHEDULED)
    # THEN it covers the failed pass's window: the drift is found, and only now the watermark moves
    assert republished(stack) == drifted
    after = state(stack)
    assert report["watermark_advanced"] is True
    assert after["watermark"] > before["watermark"]
    assert after["version"] == before["version"] + 1


def test_a_full_sweep_finds_drift_older_than_the_watermark(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a bootstrapped system whose projections are then damaged behind the reconciler's back:
    #       an availability deleted and an order outcome rolled back (their sources did not change)
    data = bootstrapped(stack, functions, entities=200)
    product, order = data.products[7], data.orders[3]
    boto3.client("dynamodb").delete_item(
        TableName=stack.tables["NotificationsTable"],
        Key={"pk": {"S": f"AVAILABILITY#{product}"}, "sk": {"S": "AVAILABILITY"}},
    )
    outcome = stack.get_item("NotificationsTable", f"ORDER#{order}", "ORDER")
    assert outcome is not None
    stack.put_item("NotificationsTable", {**outcome, "version": 1})
    # WHEN an incremental pass runs, then a full sweep
    incremental = functions.invoke(RECONCILER, SCHEDULED)
    assert republished(stack) == set()
    full = functions.sweep()
    # THEN only the sweep sees the damage and republishes both sources
    assert incremental["found"]["availability"] == incremental["found"]["order_outcome"] == 0
    assert (full["found"]["availability"], full["found"]["order_outcome"]) == (1, 1)
    assert full["differences"] == {"missing": 1, "behind": 1}
    events = {(e["detail-type"], e["detail"]["metadata"]["entity_id"]) for e in stack.events_on_bus()}
    assert events == {("StockUpdated", product), ("OrderConfirmed", order)}


def test_lagging_entities_are_checked_again_until_their_projections_catch_up(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a drifted product whose repair is found but never applied (its event lost again)
    data = bootstrapped(stack, functions, entities=40)
    drifted = make_drift(stack.tables, data, 0.025, datetime.now(UTC))
    first = functions.invoke(RECONCILER, SCHEDULED)
    assert (first["suspects"], republished(stack)) == (1, drifted)
    # WHEN the next pass runs although the product did not change again
    second = functions.invoke(RECONCILER, SCHEDULED)
    repairs = stack.events_on_bus()
    # THEN it is checked and republished again
    assert second["found"]["availability"] + second["found"]["order_reservation"] == 1
    assert len(repairs) == 1
    # WHEN that repair reaches its consumers (they apply it) and another pass runs
    consumers = {"StockUpdated": ["NotificationsConsumerFunction"],
                 "OrderCancelled": ["InventoryConsumerFunction", "NotificationsConsumerFunction"]}  # fmt: skip
    for consumer in consumers[repairs[0]["detail-type"]]:
        assert functions.invoke(consumer, sqs_event([json.dumps(repairs[0])])) == {"batchItemFailures": []}
    third = functions.invoke(RECONCILER, SCHEDULED)
    # THEN nothing lags any more and nothing is carried
    assert (third["republished"], third["suspects"]) == (0, 0)


def test_writes_through_the_services_are_seen_by_the_next_incremental_pass(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN an empty system after its first pass (which starts a sweep of what came before it)
    assert functions.invoke(RECONCILER, SCHEDULED)["mode_reason"] == "no watermark yet"
    # WHEN stock is set and an order placed through the APIs (the fixtures sam local invoke uses),
    #      and no consumer runs
    for api, fixture in (("InventoryApiFunction", "set-stock"), ("OrdersApiFunction", "place-order")):
        response = functions.invoke(api, json.loads((EVENTS_DIR / f"{api}.{fixture}.json").read_text()))
        assert response["statusCode"] in (200, 201)
    report = functions.invoke(RECONCILER, SCHEDULED)
    # THEN the incremental pass found both writes through the changed-since index
    assert report["mode"] == "incremental"
    assert (report["found"]["availability"], report["found"]["order_reservation"]) == (1, 1)
    placed = [e for e in stack.events_on_bus() if e["detail-type"] == "OrderPlaced"]
    # WHEN inventory reacts to the order (a transaction writing the reservation) and another pass runs
    assert functions.invoke("InventoryConsumerFunction", sqs_event([json.dumps(placed[0])])) == {
        "batchItemFailures": []
    }
    report = functions.invoke(RECONCILER, SCHEDULED)
    # THEN the reservation written in that transaction was seen too: the order still awaits its outcome
    assert report["found"]["order_reservation"] == 1
    assert report["differences"].get("republish_reservation") == 1


def test_the_full_sweep_fixture_starts_the_sweep_even_with_a_watermark(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a system with a watermark
    bootstrapped(stack, functions, entities=20)
    # WHEN the reconciler is invoked with the committed full-sweep fixture (the operator's command)
    report = functions.invoke(RECONCILER, FULL_SWEEP)
    # THEN it started the sweep's state machine because it was asked to, and read nothing itself
    assert (report["mode"], report["mode_reason"], report["items_read"]) == ("full", "requested", 0)
    execution = boto3.client("stepfunctions").describe_execution(executionArn=report["sweep_started"])
    assert json.loads(execution["input"]) == {"reason": "requested"}


def test_a_pass_that_lost_the_race_to_save_its_state_leaves_the_winners_state(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a saved state (version 1), and the reconciler's store as a pass that read version 0 would use it
    bootstrapped(stack, functions, entities=20)
    winner = state(stack)
    from reconciler import store
    from reconciler.passes import ReconcilerState

    late = ReconcilerState(watermark=datetime.now(UTC) + timedelta(hours=1), version=1)
    # WHEN that pass saves its state
    with pytest.raises(store.ConcurrentPass):
        store.save_state(stack.tables["ReconcilerStateTable"], late, expected_version=0)
    # THEN the winner's state stands
    assert state(stack) == winner

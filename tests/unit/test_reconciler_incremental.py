"""Incremental reconciliation without AWS: which pass runs, what it compares, what it leaves for the next one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcloud.loader import load_module
from localcloud.template import function_specs

domain: Any = load_module(function_specs()["ReconcilerFunction"].code_dir, "domain")

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
OVERLAP = timedelta(seconds=120)


def test_a_scheduled_event_asks_for_an_incremental_pass_and_mode_full_for_a_sweep() -> None:
    # GIVEN the EventBridge scheduled event, the daily schedule's input, and a typo
    scheduled = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    # THEN the mode is read from the event, and an unknown mode is refused rather than guessed
    assert domain.requested_mode(scheduled) is domain.Mode.INCREMENTAL
    assert domain.requested_mode({"mode": "full"}) is domain.Mode.FULL
    with pytest.raises(domain.InvalidInvocation):
        domain.requested_mode({"mode": "fulll"})


def test_without_a_watermark_or_with_too_many_suspects_the_pass_is_a_full_sweep() -> None:
    # GIVEN no saved state, a state whose last pass overflowed its suspects, and a normal state
    fresh = domain.ReconcilerState()
    overflowed = domain.ReconcilerState(watermark=T0, full_sweep_due=True, version=3)
    normal = domain.ReconcilerState(watermark=T0, version=3)
    # WHEN an incremental pass is requested
    plans = [domain.plan_pass(domain.Mode.INCREMENTAL, s, OVERLAP) for s in (fresh, overflowed, normal)]
    # THEN only the normal state allows one, starting the overlap before the watermark
    assert [p.mode for p in plans] == [domain.Mode.FULL, domain.Mode.FULL, domain.Mode.INCREMENTAL]
    assert plans[2].since == T0 - OVERLAP
    assert domain.plan_pass(domain.Mode.FULL, normal, OVERLAP).mode is domain.Mode.FULL


def repairs(*pairs: tuple[str, str]) -> Any:
    findings = domain.Findings()
    for projection, entity_id in pairs:
        findings.repairs.append(domain.Repair(domain.Projection(projection), entity_id, "lagging", {}))
    return findings


def test_a_successful_pass_moves_the_watermark_to_its_start_and_keeps_the_lagging_as_suspects() -> None:
    # GIVEN a state at T0 and a pass started 5 minutes later that found a product and an order lagging
    previous = domain.ReconcilerState(watermark=T0, version=7)
    found = repairs(("availability", "p1"), ("reservations", "o1"), ("notifications", "o1"))
    # WHEN the pass computes the state it leaves
    state = domain.next_state(previous, T0 + timedelta(minutes=5), found)
    # THEN the watermark is the pass's start, the lagging entities are kept, and the version moves on
    assert state.watermark == T0 + timedelta(minutes=5)
    assert state.suspects == domain.Scope(frozenset({"p1"}), frozenset({"o1"}))
    assert state.version == 8
    assert state.full_sweep_due is False


def test_the_watermark_never_moves_back_and_too_many_suspects_schedule_a_sweep() -> None:
    # GIVEN a pass that started before the saved watermark and found more lagging products than a state holds
    previous = domain.ReconcilerState(watermark=T0, version=1)
    found = repairs(*[("availability", f"p{i}") for i in range(domain.MAX_SUSPECTS + 1)])
    # WHEN it computes its state
    state = domain.next_state(previous, T0 - timedelta(minutes=1), found)
    # THEN the watermark stays, the suspects are dropped and the next pass is a full sweep instead
    assert state.watermark == T0
    assert len(state.suspects) == 0
    assert state.full_sweep_due is True


def test_changed_items_name_their_entities_and_only_missing_neighbours_are_fetched() -> None:
    # GIVEN a changed product, a changed order and a changed reservation (of another order)
    changed = {
        "inventory": [{"pk": "PRODUCT#p1", "sk": "PRODUCT"}, {"pk": "RESERVATION#o2", "sk": "RESERVATION"}],
        "orders": [{"pk": "ORDER#o1", "sk": "ORDER"}],
    }
    # WHEN the scope and the keys still to read are derived
    scope = domain.Scope.of_items(changed["inventory"] + changed["orders"])
    keys = domain.neighbourhood_keys(scope, already_read=changed)
    # THEN every other item of their neighbourhoods is fetched from the table that holds it (the order's
    #      notifications outcome too, although its key equals the order's), and nothing twice
    assert scope == domain.Scope(frozenset({"p1"}), frozenset({"o1", "o2"}))
    assert keys == {
        "orders": [("ORDER#o2", "ORDER")],
        "inventory": [("RESERVATION#o1", "RESERVATION")],
        "notifications": [("AVAILABILITY#p1", "AVAILABILITY"), ("ORDER#o1", "ORDER"), ("ORDER#o2", "ORDER")],
    }


# ---------------------------------------------------------------- incremental == full, restricted to the scope
IDS = st.sampled_from([f"e{i}" for i in range(8)])
ORDER_STATUS = st.sampled_from(["PENDING", "CONFIRMED", "REJECTED", "CANCELLED"])
RESERVATION_STATUS = st.sampled_from(["RESERVED", "FAILED", "RELEASED"])
VERSION = st.integers(min_value=1, max_value=4)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """Random contents of the three tables: any entity may lack any projection, or have it at any version."""
    inventory: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for pid in draw(st.sets(IDS)):
        inventory.append({"pk": f"PRODUCT#{pid}", "sk": "PRODUCT", "product_id": pid, "version": draw(VERSION)})
        if draw(st.booleans()):
            notifications.append({"pk": f"AVAILABILITY#{pid}", "sk": "AVAILABILITY", "version": draw(VERSION)})
    for oid in draw(st.sets(IDS)):
        orders.append({"pk": f"ORDER#{oid}", "sk": "ORDER", "order_id": oid, "status": draw(ORDER_STATUS),
                       "version": draw(VERSION)})  # fmt: skip
        if draw(st.booleans()):
            inventory.append({"pk": f"RESERVATION#{oid}", "sk": "RESERVATION", "order_id": oid,
                              "status": draw(RESERVATION_STATUS), "version": 1})  # fmt: skip
        if draw(st.booleans()):
            notifications.append({"pk": f"ORDER#{oid}", "sk": "ORDER", "order_id": oid, "version": draw(VERSION)})
    return {"inventory": inventory, "orders": orders, "notifications": notifications}


def findings_of(items: dict[str, list[dict[str, Any]]]) -> tuple[set[tuple[str, str]], set[str]]:
    found = domain.find_lagging(domain.Snapshot.from_items(items["inventory"], items["orders"], items["notifications"]))
    return {(r.projection.value, r.entity_id) for r in found.repairs}, {a.entity_id for a in found.anomalies}


@settings(max_examples=300, derandomize=True, deadline=None)
@given(contents=tables(), products=st.sets(IDS), orders=st.sets(IDS))
def test_an_incremental_pass_finds_what_a_full_sweep_finds_for_the_entities_in_its_scope(
    contents: dict[str, list[dict[str, Any]]], products: set[str], orders: set[str]
) -> None:
    # GIVEN any table contents and any scope
    scope = domain.Scope(frozenset(products), frozenset(orders))
    # WHEN an incremental pass reads only the scope's neighbourhoods (what neighbourhood_keys asks for)
    wanted = {role: set(keys) for role, keys in domain.neighbourhood_keys(scope).items()}
    read = {role: [i for i in items if (i["pk"], i["sk"]) in wanted[role]] for role, items in contents.items()}
    incremental_repairs, incremental_anomalies = findings_of(read)
    # THEN it finds exactly the full sweep's findings about those entities
    full_repairs, full_anomalies = findings_of(contents)
    in_scope = {
        (projection, entity_id)
        for projection, entity_id in full_repairs
        if entity_id in (scope.products if projection == "availability" else scope.orders)
    }
    assert incremental_repairs == in_scope
    assert incremental_anomalies == full_anomalies & scope.orders

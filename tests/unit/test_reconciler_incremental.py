"""Incremental reconciliation without AWS: which pass runs, what it reads and compares, what it leaves for the next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.compare import compare
from reconciler.passes import (
    MAX_SUSPECTS,
    TOO_MANY_SUSPECTS,
    InvalidInvocation,
    Mode,
    Position,
    ReconcilerState,
    backlog,
    next_bucket,
    next_state,
    parse_invocation,
    plan_pass,
    resume_after,
)
from reconciler.snapshot import Scope, Snapshot, projection_keys, source_keys

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
OVERLAP = timedelta(seconds=120)
Item = dict[str, Any]


def test_a_scheduled_event_asks_for_an_incremental_pass_and_mode_full_for_a_sweep() -> None:
    # GIVEN the EventBridge scheduled event, the daily schedule's input, and a typo
    scheduled = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    # THEN the mode is read from the event, and an unknown mode is refused rather than guessed
    assert parse_invocation(scheduled).mode is Mode.INCREMENTAL
    assert parse_invocation({"mode": "full"}).mode is Mode.FULL
    with pytest.raises(InvalidInvocation):
        parse_invocation({"mode": "fulll"})


def test_without_a_watermark_or_with_too_many_suspects_a_pass_starts_a_sweep_and_stays_incremental() -> None:
    # GIVEN no saved state, a state whose last pass overflowed its suspects, and a normal state
    fresh = ReconcilerState()
    overflowed = ReconcilerState(watermark=T0, full_sweep_due=True, version=3)
    normal = ReconcilerState(watermark=T0, version=3)
    now = T0 + OVERLAP * 3
    # WHEN an incremental pass is requested
    plans = [plan_pass(Mode.INCREMENTAL, s, OVERLAP, now) for s in (fresh, overflowed, normal)]
    # THEN every one is incremental: the first covers what is written from now on, the others start the overlap
    # before the watermark
    assert [p.mode for p in plans] == [Mode.INCREMENTAL] * 3
    assert [p.since for p in plans] == [now - OVERLAP, T0 - OVERLAP, T0 - OVERLAP]
    # AND the first two start the full sweep for what they cannot see, the normal one none
    assert [p.sweep for p in plans] == ["no watermark yet", TOO_MANY_SUSPECTS, None]
    # AND a requested full sweep is started, not done by the pass, which goes on as the scheduled one would
    requested = plan_pass(Mode.FULL, normal, OVERLAP, now)
    assert (requested.mode, requested.sweep, requested.since) == (Mode.FULL, "requested", T0 - OVERLAP)


# ---------------------------------------------------------------- items
def product(pid: str, version: int = 1, *, on_hand: int = 10, reserved: int = 0) -> Item:
    return {
        "pk": f"PRODUCT#{pid}",
        "sk": "PRODUCT",
        "product_id": pid,
        "on_hand": on_hand,
        "reserved": reserved,
        "available": on_hand - reserved,
        "version": version,
    }


def order(oid: str, status: str, version: int = 2, *, customer: str = "c1", reason: str | None = None) -> Item:
    return {
        "pk": f"ORDER#{oid}",
        "sk": "ORDER",
        "order_id": oid,
        "customer_id": customer,
        "status": status,
        "version": version,
        "lines": [{"product_id": "p1", "quantity": 1}],
        "reason": reason,
    }


def reservation(oid: str, status: str, version: int = 1, *, product_id: str = "p1", quantity: int = 1) -> Item:
    return {
        "pk": f"RESERVATION#{oid}",
        "sk": "RESERVATION",
        "order_id": oid,
        "status": status,
        "version": version,
        "lines": [{"product_id": product_id, "quantity": quantity}],
    }


def availability(pid: str, version: int = 1) -> Item:
    return {**product(pid, version), "pk": f"AVAILABILITY#{pid}", "sk": "AVAILABILITY"}


# ---------------------------------------------------------------- what a pass leaves behind
def lagging_world() -> Any:
    """A snapshot with an availability behind, a recount suspect, an orphaned outcome and a pair to release."""
    return Snapshot.of(
        inventory=[
            product("p1", 3),
            product("p2", 1, reserved=4),
            reservation("o2", "RESERVED", product_id="p3"),
        ],
        orders=[order("o2", "REJECTED")],
        notifications=[
            availability("p1", 2),
            availability("p2", 1) | {"reserved": 4, "available": 6},
            {"pk": "ORDER#o1", "sk": "ORDER", "order_id": "o1", "customer_id": "c1", "status": "CONFIRMED"},
            {
                "pk": "ORDER#o2",
                "sk": "ORDER",
                "order_id": "o2",
                "customer_id": "c1",
                "status": "REJECTED",
                "version": 2,
            },
            {"pk": "CUSTOMER#c1", "sk": "NOTIFICATION#ORDER_REJECTED#o2", "kind": "ORDER_REJECTED", "order_id": "o2"},
        ],
    )


def test_the_entities_found_different_are_the_scope_of_the_next_check() -> None:
    # GIVEN a full compare finding a lagging product, a drifted counter, an orphaned outcome and a saga pair
    findings = compare(lagging_world())
    # WHEN their scope is taken
    scope = Scope.of_findings(findings)
    # THEN it names each entity by its kind (a reservation by its order)
    assert scope == Scope(frozenset({"p1", "p2"}), frozenset({"o1", "o2"}))


def test_a_successful_pass_moves_the_watermark_to_its_start_and_keeps_the_lagging_as_suspects() -> None:
    # GIVEN a state at T0 and a pass started 5 minutes later that found entities lagging
    previous = ReconcilerState(watermark=T0, version=7)
    findings = compare(lagging_world())
    # WHEN the pass computes the state it leaves
    state = next_state(previous, T0 + timedelta(minutes=5), findings)
    # THEN the watermark is the pass's start, the lagging entities are kept, and the version moves on
    assert state.watermark == T0 + timedelta(minutes=5)
    assert state.suspects == Scope(frozenset({"p1", "p2"}), frozenset({"o1", "o2"}))
    assert state.version == 8
    assert state.full_sweep_due is False


def test_differences_left_unrepaired_are_still_suspects() -> None:
    # GIVEN a pass with corrections turned off that found an orphaned outcome and a pair to release
    findings = compare(lagging_world(), corrections=False)
    assert findings.corrections == []
    # THEN those entities are still checked next time
    state = next_state(ReconcilerState(watermark=T0), T0, findings)
    assert {"o1", "o2"} <= state.suspects.orders


def test_the_watermark_never_moves_back_and_too_many_suspects_schedule_a_sweep() -> None:
    # GIVEN a pass that started before the saved watermark and found more lagging products than a state holds
    previous = ReconcilerState(watermark=T0, version=1)
    products = [product(f"p{i}") for i in range(MAX_SUSPECTS + 1)]
    findings = compare(Snapshot.of(inventory=products))  # no availability at all
    assert len(findings.republish) == MAX_SUSPECTS + 1
    # WHEN it computes its state
    state = next_state(previous, T0 - timedelta(minutes=1), findings)
    # THEN the watermark stays, the first MAX_SUSPECTS are kept (the incremental passes go on checking them) and a
    # sweep is due for the rest
    assert state.watermark == T0
    assert len(state.suspects) == MAX_SUSPECTS
    assert "p0" in state.suspects.products
    assert state.full_sweep_due is True


# ---------------------------------------------------------------- what an incremental pass reads
def test_changed_items_name_their_entities_and_the_sources_are_read_before_their_projections() -> None:
    # GIVEN a changed product, a changed order and a changed reservation (of another order)
    changed = [
        product("p1"),
        reservation("o2", "RESERVED"),
        order("o1", "CONFIRMED", customer="c1"),
    ]
    already = Snapshot.of(inventory=changed[:2], orders=changed[2:])
    # WHEN the scope and the source keys still to read are derived
    scope = Scope.of_items(changed)
    assert scope == Scope(frozenset({"p1"}), frozenset({"o1", "o2"}))
    keys = source_keys(scope, already_read=already)
    # THEN only the sources not read yet are fetched, from the table that holds them (the orders' shipments too)
    assert keys == {
        "orders": [("ORDER#o2", "ORDER")],
        "inventory": [("RESERVATION#o1", "RESERVATION")],
        "notifications": [],
        "shipping": [("SHIPMENT#o1", "SHIPMENT"), ("SHIPMENT#o2", "SHIPMENT")],
    }
    # WHEN the sources are read (o2 is a rejected order of customer c2) and the projection keys derived
    sources = Snapshot.of(
        inventory=[*changed[:2], reservation("o1", "RESERVED")],
        orders=[changed[2], order("o2", "REJECTED", customer="c2")],
    )
    projection = projection_keys(scope, sources)
    # THEN every projection item their sources imply is fetched (the notifications under each order's customer),
    #      and the fixed keys where a stale or forged item would sit, each once, all from notifications
    assert projection["orders"] == projection["inventory"] == []
    assert set(projection["notifications"]) >= {
        ("AVAILABILITY#p1", "AVAILABILITY"),
        ("ORDER#o1", "ORDER"),
        ("ORDER#o2", "ORDER"),
        ("CUSTOMER#c1", "NOTIFICATION#ORDER_CONFIRMED#o1"),
        ("CUSTOMER#c2", "NOTIFICATION#ORDER_REJECTED#o2"),
    }
    assert len(set(projection["notifications"])) == len(projection["notifications"])


# ---------------------------------------------------------------- incremental == full, restricted to the scope
IDS = [f"e{i}" for i in range(6)]
ENTITY = st.sampled_from(IDS)
CUSTOMER = st.sampled_from(["c1", "c2"])
ORDER_STATUS = st.sampled_from(["PENDING", "CONFIRMED", "REJECTED", "CANCELLED"])
RESERVATION_STATUS = st.sampled_from(["RESERVED", "FAILED", "RELEASED"])
VERSION = st.integers(min_value=1, max_value=4)
SMALL = st.integers(min_value=0, max_value=3)
KINDS = ("ORDER_CONFIRMED", "ORDER_REJECTED")


@st.composite
def tables(draw: st.DrawFn, any_kind: bool) -> dict[str, list[Item]]:
    """Random contents of the three tables, every projection item at a key derivable from its source.

    Any entity may lack any projection, or hold it at any version, with any data, or have one without a source
    (at the key that source would give it). Notifications sit under their order's own customer; `any_kind`:
    of either kind whatever the order's status, else only of the kinds the status implies.
    """
    inventory: list[Item] = []
    orders: list[Item] = []
    notifications: list[Item] = []
    products = draw(st.sets(ENTITY))
    for pid in products:
        on_hand, reserved = draw(SMALL) + 3, draw(SMALL)
        inventory.append(product(pid, draw(VERSION), on_hand=on_hand, reserved=reserved))
    for pid in draw(st.sets(ENTITY)):  # availability, with or without its product
        copy = availability(pid, draw(VERSION))
        copy["on_hand"] = draw(SMALL) + 3
        notifications.append(copy)
    order_items: dict[str, Item] = {}
    for oid in draw(st.sets(ENTITY)):
        order_items[oid] = order(oid, draw(ORDER_STATUS), draw(VERSION), customer=draw(CUSTOMER))
        orders.append(order_items[oid])
    for oid in draw(st.sets(ENTITY)):  # reservations, with or without their order
        inventory.append(reservation(oid, draw(RESERVATION_STATUS), draw(VERSION), product_id=draw(ENTITY), quantity=1))
    for oid in draw(st.sets(ENTITY)):  # outcomes, with or without their order, any customer and status
        notifications.append(
            {
                "pk": f"ORDER#{oid}",
                "sk": "ORDER",
                "order_id": oid,
                "customer_id": draw(CUSTOMER),
                "status": draw(ORDER_STATUS),
                "version": draw(VERSION),
            }
        )
    for oid, source in order_items.items():  # notifications under the order's own customer
        implied = {"CONFIRMED": ["ORDER_CONFIRMED"], "REJECTED": ["ORDER_REJECTED"]}
        implied["CANCELLED"] = ["ORDER_CONFIRMED"]
        for kind in KINDS if any_kind else implied.get(source["status"], []):
            if draw(st.booleans()):
                notifications.append(
                    {
                        "pk": f"CUSTOMER#{source['customer_id']}",
                        "sk": f"NOTIFICATION#{kind}#{oid}",
                        "kind": kind,
                        "order_id": oid,
                        "reason": draw(st.sampled_from([None, "out of stock"])),
                    }
                )
    return {"inventory": inventory, "orders": orders, "notifications": notifications}


def snapshot_of(contents: dict[str, list[Item]]) -> Any:
    return Snapshot.of(**contents)


def read(contents: dict[str, list[Item]], keys: dict[str, list[tuple[str, str]]], into: Any) -> Any:
    """`into` with the items at `keys` added, as a batch get of each table would return them."""
    for role, wanted in keys.items():
        into.add(role, [i for i in contents.get(role, []) if (i["pk"], i["sk"]) in set(wanted)])
    return into


def summary(findings: Any, scope: Any | None = None) -> tuple[set[tuple[str, str, str]], set[str]]:
    """(projection, entity, difference) of every finding, and every correction's id; within `scope` if given."""
    product_kinds = {"availability", "reserved"}

    def in_scope(projection: str, entity_id: str) -> bool:
        if scope is None:
            return True
        return entity_id in (scope.products if projection in product_kinds else scope.orders)

    found = {(f.projection, f.entity_id, f.difference) for f in findings.all if in_scope(f.projection, f.entity_id)}
    ids = {c.data.correction_id for c in findings.corrections if in_scope(c.finding.projection, c.finding.entity_id)}
    return found, ids


def incremental_equals_full(contents: dict[str, list[Item]], products: set[str], orders: set[str]) -> None:
    # GIVEN any table contents and any scope
    scope = Scope(frozenset(products), frozenset(orders))
    # WHEN an incremental pass reads the scope's sources, then the projection keys those sources imply
    sources = read(contents, source_keys(scope), Snapshot())
    snapshot = read(contents, projection_keys(scope, sources), sources)
    incremental = compare(snapshot, scope)
    # THEN it finds exactly what a full sweep finds about the scope's entities (counters aside: full sweep only)
    full = compare(snapshot_of(contents), counters=False)
    assert incremental.recount_suspects == []
    assert summary(incremental) == summary(full, scope)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(contents=tables(any_kind=False), products=st.sets(ENTITY), orders=st.sets(ENTITY))
def test_an_incremental_pass_finds_what_a_full_sweep_finds_for_the_entities_in_its_scope(
    contents: dict[str, list[Item]], products: set[str], orders: set[str]
) -> None:
    incremental_equals_full(contents, products, orders)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(contents=tables(any_kind=True), products=st.sets(ENTITY), orders=st.sets(ENTITY))
def test_an_incremental_pass_finds_stray_notifications_under_the_orders_customer_too(
    contents: dict[str, list[Item]], products: set[str], orders: set[str]
) -> None:
    incremental_equals_full(contents, products, orders)


@pytest.mark.parametrize(
    ("status", "kind"),
    [("PENDING", "ORDER_CONFIRMED"), ("REJECTED", "ORDER_CONFIRMED"), ("CONFIRMED", "ORDER_REJECTED")],
)
def test_a_notification_the_orders_status_excludes_is_read_by_an_incremental_pass(status: str, kind: str) -> None:
    # GIVEN an order in scope and, under its own customer, a notification its status excludes
    stray = {"pk": "CUSTOMER#c1", "sk": f"NOTIFICATION#{kind}#o1", "kind": kind, "order_id": "o1"}
    contents = {"inventory": [], "orders": [order("o1", status, customer="c1")], "notifications": [stray]}
    assert ("order_notification", "o1", "different") in summary(compare(snapshot_of(contents)))[0]
    # THEN the incremental pass reads it, and finds it
    scope = Scope(orders=frozenset({"o1"}))
    sources = read(contents, source_keys(scope), Snapshot())
    assert ("CUSTOMER#c1", f"NOTIFICATION#{kind}#o1") in projection_keys(scope, sources)["notifications"]


# ---------------------------------------------------------------- a pass bounded by its budget
def test_a_bucket_stopped_before_the_overlap_resumes_after_its_last_item_and_inside_it_from_the_overlap() -> None:
    # GIVEN a pass started at T0 whose budget ran out in two buckets: one at an item written 10 minutes before,
    #       one at an item written 30 s before (inside the overlap, where a write in flight may still land)
    settled, recent = (T0 - timedelta(minutes=10)).isoformat(), (T0 - timedelta(seconds=30)).isoformat()
    # WHEN it says where the next pass resumes them
    after_settled = resume_after(settled, ("PRODUCT#p1", "PRODUCT"), T0, OVERLAP)
    after_recent = resume_after(recent, ("PRODUCT#p2", "PRODUCT"), T0, OVERLAP)
    # THEN the first just after its last item (nothing can land behind it), the second from the overlap's start
    assert after_settled == Position(settled, ("PRODUCT#p1", "PRODUCT"))
    assert after_recent == Position.at(T0 - OVERLAP)
    # AND the state keeps only the first: the second is where the next watermark's overlap starts anyway, and a
    # bucket read to its end (None) needs no position either
    stopped = {"inventory#1": after_settled, "inventory#2": after_recent, "orders#3": None}
    state = next_state(ReconcilerState(watermark=T0 - timedelta(minutes=5)), T0, Scope(), stopped, OVERLAP)
    assert state.positions == {"inventory#1": after_settled}
    assert backlog(state.positions, T0) == timedelta(minutes=10)


def test_the_next_page_is_read_from_the_bucket_furthest_behind() -> None:
    # GIVEN three buckets, one read to its end
    positions = {"inventory#0": Position.at(T0), "orders#5": Position.at(T0 - OVERLAP), "orders#6": None}
    # THEN the one furthest behind is read next, and none once every bucket is at its end
    assert next_bucket(positions) == "orders#5"
    assert next_bucket(dict.fromkeys(positions)) is None

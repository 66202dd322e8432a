"""Reconciliation rules without AWS: every difference between a projection and its source, and its repair."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

import pytest

from converge.events import ProjectionCorrected, ReservationCorrected, ReservedRecounted
from converge.projections import (
    PROJECTIONS,
    REINSTATE_FAILED,
    SAGA_RESOLUTIONS,
    SAGAS,
    SHIPMENT_RESOLUTIONS,
    ProjectionName,
    Resolution,
    SagaName,
)
from reconciler.compare import compare as compare_snapshot
from reconciler.compare import confirmed_corrections, confirmed_recounts, defer_saga_repairs
from reconciler.dead_letters import MAX_REDRIVES, judge_dead_letter
from reconciler.findings import Findings
from reconciler.repairs import SAGA_ACTIONS, SAGA_CORRECTIONS, recount, recount_needs_a_person
from reconciler.snapshot import Scope, Snapshot

Item = dict[str, Any]
UPDATED_AT = "2026-11-28T10:00:00+00:00"


# ---------------------------------------------------------------- items as the services store them
def product(pid: str, version: int = 3, *, on_hand: int = 10, reserved: int = 0, available: int | None = None) -> Item:
    return {
        "pk": f"PRODUCT#{pid}",
        "sk": "PRODUCT",
        "product_id": pid,
        "on_hand": on_hand,
        "reserved": reserved,
        "available": on_hand - reserved if available is None else available,
        "version": version,
        "event_type": "StockUpdated",
        "updated_at": UPDATED_AT,
    }


def order(
    oid: str,
    status: str,
    version: int = 2,
    *,
    customer: str = "c1",
    reason: str | None = None,
    lines: list[Item] | None = None,
) -> Item:
    return {
        "pk": f"ORDER#{oid}",
        "sk": "ORDER",
        "order_id": oid,
        "customer_id": customer,
        "status": status,
        "version": version,
        "lines": lines or [{"product_id": "p1", "quantity": 2}],
        "reason": reason,
        "event_type": "Order" + {"PENDING": "Placed"}.get(status, status.title()),
        "updated_at": UPDATED_AT,
    }


def reservation(oid: str, status: str, version: int = 1, *, lines: list[Item] | None = None, **extra: Any) -> Item:
    return {
        "pk": f"RESERVATION#{oid}",
        "sk": "RESERVATION",
        "order_id": oid,
        "status": status,
        "version": version,
        "lines": lines or [{"product_id": "p1", "quantity": 2}],
        "updated_at": UPDATED_AT,
        **extra,
    }


def availability(pid: str, version: int = 3, *, on_hand: int = 10, reserved: int = 0) -> Item:
    return {
        "pk": f"AVAILABILITY#{pid}",
        "sk": "AVAILABILITY",
        "product_id": pid,
        "on_hand": on_hand,
        "reserved": reserved,
        "available": on_hand - reserved,
        "version": version,
        "updated_at": UPDATED_AT,
    }


def outcome(oid: str, status: str, version: int = 2, *, customer: str = "c1") -> Item:
    return {
        "pk": f"ORDER#{oid}",
        "sk": "ORDER",
        "order_id": oid,
        "customer_id": customer,
        "status": status,
        "version": version,
        "updated_at": UPDATED_AT,
    }


def notification(oid: str, kind: str = "ORDER_CONFIRMED", *, customer: str = "c1", reason: str | None = None) -> Item:
    return {
        "pk": f"CUSTOMER#{customer}",
        "sk": f"NOTIFICATION#{kind}#{oid}",
        "kind": kind,
        "order_id": oid,
        "reason": reason,
        "created_at": UPDATED_AT,
    }


def shipment(oid: str, status: str, version: int = 1, **extra: Any) -> Item:
    return {
        "pk": f"SHIPMENT#{oid}",
        "sk": "SHIPMENT",
        "order_id": oid,
        "customer_id": "c1",
        "status": status,
        "version": version,
        "lines": [{"product_id": "p1", "quantity": 2}],
        "updated_at": UPDATED_AT,
        **extra,
    }


@dataclass
class World:
    """The four tables; by default one product, one confirmed order and every projection agreeing."""

    inventory: list[Item] = field(default_factory=list)
    orders: list[Item] = field(default_factory=list)
    notifications: list[Item] = field(default_factory=list)
    shipping: list[Item] = field(default_factory=list)

    def snapshot(self) -> Any:
        return Snapshot.of(
            inventory=self.inventory, orders=self.orders, notifications=self.notifications, shipping=self.shipping
        )


def agreeing() -> World:
    return World(
        inventory=[product("p1", 3, on_hand=10, reserved=2), reservation("o1", "RESERVED")],
        orders=[order("o1", "CONFIRMED", 2)],
        notifications=[availability("p1", 3, reserved=2), outcome("o1", "CONFIRMED", 2), notification("o1")],
        shipping=[shipment("o1", "PENDING")],
    )


def compare(world: World, **options: Any) -> Any:
    return compare_snapshot(world.snapshot(), **options)


def about(findings: Any, projection: str) -> Any:
    """The findings about one projection, so that a test's other items do not hide what it shows."""
    return Findings(
        republish=[r for r in findings.republish if r.finding.projection == projection],
        corrections=[c for c in findings.corrections if c.finding.projection == projection],
        parked=[p for p in findings.parked if p.finding.projection == projection],
        unrepaired=[f for f in findings.unrepaired if f.projection == projection],
        deferred=[f for f in findings.deferred if f.projection == projection],
    )


def test_an_agreeing_state_needs_nothing() -> None:
    # GIVEN a product, a confirmed order, its reservation and every projection as their sources imply
    findings = compare(agreeing())
    # THEN nothing is found, republished, corrected, parked or recounted
    assert findings.all == []
    assert findings.corrections == []
    assert findings.recount_suspects == []


@pytest.mark.parametrize("confirmed_before", [True, False])
def test_a_cancelled_order_agrees_with_or_without_its_confirmation(confirmed_before: bool) -> None:
    # GIVEN a cancelled order (released reservation, CANCELLED outcome), once confirmed before and once not
    world = World(
        inventory=[product("p1"), reservation("o1", "RELEASED", 2)],
        orders=[order("o1", "CANCELLED", 3)],
        notifications=[availability("p1"), outcome("o1", "CANCELLED", 3)]
        + ([notification("o1", "ORDER_CONFIRMED")] if confirmed_before else []),
    )
    # THEN both agree
    assert compare(world).all == []


# ---------------------------------------------------------------- every projection, every direction
@dataclass(frozen=True)
class Case:
    """A world with one difference in one projection, and what must come out of it."""

    projection: str
    entity_id: str
    difference: str
    world: Callable[[], World]
    source: Item | None = None  # missing / behind: the source item republished
    key: tuple[str, str] | None = None  # otherwise: the corrected item's key ...
    observed: Item | None = None  # ... what the correction observed there ...
    expected: Item | None = None  # ... and what it writes (None: delete)


def world_with(*, inventory: list[Item] | None = None, orders: list[Item] | None = None, **notifications: Any) -> World:
    """The agreeing world with some items replaced: notifications by role name, None to remove it."""
    base = agreeing()
    extra = notifications.pop("extra", [])
    projections = {"availability": base.notifications[0], "outcome": base.notifications[1]}
    projections["notification"] = base.notifications[2]
    projections.update(notifications)
    return World(
        inventory=base.inventory if inventory is None else inventory,
        orders=base.orders if orders is None else orders,
        notifications=[i for i in projections.values() if i is not None] + extra,
    )


AV_KEY = ("AVAILABILITY#p1", "AVAILABILITY")
OUT_KEY = ("ORDER#o1", "ORDER")
CONFIRMED_KEY = ("CUSTOMER#c1", "NOTIFICATION#ORDER_CONFIRMED#o1")
P1 = product("p1", 3, on_hand=10, reserved=2)
O1 = order("o1", "CONFIRMED", 2)
AV_P1 = {"product_id": "p1", "on_hand": 10, "reserved": 2, "available": 8, "version": 3, "updated_at": UPDATED_AT}
OUT_O1 = {"order_id": "o1", "customer_id": "c1", "status": "CONFIRMED", "version": 2}
NOTE_O1 = {"kind": "ORDER_CONFIRMED", "order_id": "o1", "reason": None, "created_at": UPDATED_AT}

CASES = {
    # availability: a copy of the product
    "availability missing": Case("availability", "p1", "missing", lambda: world_with(availability=None), source=P1),
    "availability behind": Case(
        "availability", "p1", "behind", lambda: world_with(availability=availability("p1", 2, reserved=1)), source=P1
    ),
    "availability ahead": Case(
        "availability",
        "p1",
        "ahead",
        lambda: world_with(availability=availability("p1", 4, on_hand=12, reserved=2)),
        key=AV_KEY,
        observed={"product_id": "p1", "on_hand": 12, "reserved": 2, "available": 10, "version": 4},
        expected=AV_P1,
    ),
    "availability different": Case(
        "availability",
        "p1",
        "different",
        lambda: world_with(availability=availability("p1", 3, on_hand=9, reserved=2)),
        key=AV_KEY,
        observed={"product_id": "p1", "on_hand": 9, "reserved": 2, "available": 7, "version": 3},
        expected=AV_P1,
    ),
    "availability orphaned": Case(
        "availability",
        "p9",
        "orphaned",
        lambda: world_with(extra=[availability("p9", 5, on_hand=4)]),
        key=("AVAILABILITY#p9", "AVAILABILITY"),
        observed={"product_id": "p9", "on_hand": 4, "reserved": 0, "available": 4, "version": 5},
        expected=None,
    ),
    # order outcome: a copy of the decided order
    "outcome missing": Case("order_outcome", "o1", "missing", lambda: world_with(outcome=None), source=O1),
    "outcome behind": Case(
        "order_outcome",
        "o1",
        "behind",
        lambda: world_with(
            inventory=[P1, reservation("o1", "RELEASED", 2)],
            orders=[order("o1", "CANCELLED", 3)],
            outcome=outcome("o1", "CONFIRMED", 2),
        ),
        source=order("o1", "CANCELLED", 3),
    ),
    "outcome ahead": Case(
        "order_outcome",
        "o1",
        "ahead",
        lambda: world_with(outcome=outcome("o1", "CANCELLED", 3)),
        key=OUT_KEY,
        observed={"order_id": "o1", "customer_id": "c1", "status": "CANCELLED", "version": 3},
        expected=OUT_O1,
    ),
    "outcome ahead of a pending order": Case(
        "order_outcome",
        "o1",
        "ahead",
        lambda: world_with(
            orders=[order("o1", "PENDING", 1)],
            inventory=[P1, reservation("o1", "RESERVED")],
            outcome=outcome("o1", "CONFIRMED", 2),
            notification=None,
        ),
        key=OUT_KEY,
        observed=OUT_O1,
        expected=None,
    ),
    "outcome different": Case(
        "order_outcome",
        "o1",
        "different",
        lambda: world_with(outcome=outcome("o1", "REJECTED", 2)),
        key=OUT_KEY,
        observed={"order_id": "o1", "customer_id": "c1", "status": "REJECTED", "version": 2},
        expected=OUT_O1,
    ),
    "outcome orphaned": Case(
        "order_outcome",
        "o9",
        "orphaned",
        lambda: world_with(extra=[outcome("o9", "CONFIRMED", 4, customer="c3")]),
        key=("ORDER#o9", "ORDER"),
        observed={"order_id": "o9", "customer_id": "c3", "status": "CONFIRMED", "version": 4},
        expected=None,
    ),
    # order notification: one per decided order, under the order's customer (unversioned: never behind/ahead)
    "notification missing": Case(
        "order_notification", "o1", "missing", lambda: world_with(notification=None), source=O1
    ),
    "notification different": Case(
        "order_notification",
        "o1",
        "different",
        lambda: world_with(
            inventory=[P1, reservation("o1", "RELEASED", 2)],
            orders=[order("o1", "REJECTED", 2, reason="out of stock: p1")],
            outcome=outcome("o1", "REJECTED", 2),
            notification=notification("o1", "ORDER_REJECTED", reason="forged"),
        ),
        key=("CUSTOMER#c1", "NOTIFICATION#ORDER_REJECTED#o1"),
        observed={"kind": "ORDER_REJECTED", "order_id": "o1", "reason": "forged"},
        expected={"kind": "ORDER_REJECTED", "order_id": "o1", "reason": "out of stock: p1", "created_at": UPDATED_AT},
    ),
    "notification that must be absent": Case(
        "order_notification",
        "o1",
        "different",
        lambda: world_with(extra=[notification("o1", "ORDER_REJECTED", reason="forged")]),
        key=("CUSTOMER#c1", "NOTIFICATION#ORDER_REJECTED#o1"),
        observed={"kind": "ORDER_REJECTED", "order_id": "o1", "reason": "forged"},
        expected=None,
    ),
    "notification under another customer": Case(
        "order_notification",
        "o1",
        "different",
        lambda: world_with(extra=[notification("o1", customer="c2")]),
        key=("CUSTOMER#c2", "NOTIFICATION#ORDER_CONFIRMED#o1"),
        observed={"kind": "ORDER_CONFIRMED", "order_id": "o1", "reason": None},
        expected=None,
    ),
    "notification orphaned": Case(
        "order_notification",
        "o9",
        "orphaned",
        lambda: world_with(extra=[notification("o9", customer="c3")]),
        key=("CUSTOMER#c3", "NOTIFICATION#ORDER_CONFIRMED#o9"),
        observed={"kind": "ORDER_CONFIRMED", "order_id": "o9", "reason": None},
        expected=None,
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_each_difference_of_each_projection_has_its_repair(case: Case) -> None:
    # GIVEN a world in which one projection item differs from what its source implies
    # WHEN the snapshot is compared
    found = about(compare(case.world()), case.projection)
    # THEN exactly that difference is found, about the source entity
    assert [(f.entity_id, f.difference) for f in found.all] == [(case.entity_id, case.difference)]
    if case.source is not None:
        # AND missing or behind: the source's current state is republished (a versioned write applies it)
        assert [r.source_item for r in found.republish] == [case.source]
        assert found.corrections == []
    else:
        # AND otherwise: a correction observes the stored item and writes what the source implies (or deletes)
        assert found.republish == []
        [correction] = found.corrections
        data = correction.data
        assert isinstance(data, ProjectionCorrected)
        assert case.key is not None
        assert (data.projection, data.entity_id, data.pk, data.sk) == (case.projection, case.entity_id, *case.key)
        assert data.observed == case.observed
        assert data.expected == case.expected


def test_each_declared_projection_and_direction_is_covered() -> None:
    covered = {(c.projection, c.difference) for c in CASES.values()}
    versioned = {"availability", "order_outcome"}
    for name in ("availability", "order_outcome", "order_notification"):
        directions = ["missing", "different", "orphaned"] + (["behind", "ahead"] if name in versioned else [])
        assert {(name, d) for d in directions} <= covered


def test_a_correction_is_identified_by_what_it_observed_and_what_it_writes() -> None:
    # GIVEN the same ahead availability compared twice, and once with a different stored item
    twice = [compare(world_with(availability=availability("p1", 4))) for _ in range(2)]
    other = compare(world_with(availability=availability("p1", 5)))
    # THEN the same observation gives the same correction id (a resend is the same event), another a new one
    ids = [f.corrections[0].data.correction_id for f in (*twice, other)]
    assert ids[0] == ids[1] != ids[2]


# ---------------------------------------------------------------- the saga pair: every (order, reservation) pair
ORDER_LINES = [{"product_id": "p1", "quantity": 2}, {"product_id": "p2", "quantity": 1}]
RESERVATION_LINES = [{"product_id": "p1", "quantity": 2}]
FAILED_REINSTATEMENT: dict[str, Any] = {REINSTATE_FAILED: True}
ACTIONS = {
    Resolution.RELEASE: "release",
    Resolution.REMOVE: "remove",
    Resolution.REINSTATE: "reinstate",
    Resolution.TOMBSTONE: "tombstone",
}


# The shipment each order status agrees with (order_shipment), so that only the order <-> reservation pair speaks.
AGREEING_SHIPMENT = {"CONFIRMED": "PENDING", "CANCELLED": "DISPATCHED", "SHIPPED": "DISPATCHED"}


def saga_world(order_status: str | None, reservation_status: str | None, **flags: Any) -> World:
    world = World()
    if order_status is not None:
        world.orders.append(order("o1", order_status, 2, lines=ORDER_LINES))
    if reservation_status is not None:
        world.inventory.append(reservation("o1", reservation_status, 3, lines=RESERVATION_LINES, **flags))
    if order_status in AGREEING_SHIPMENT:  # a shipped reservation's parcel was dispatched
        status = "DISPATCHED" if reservation_status == "SHIPPED" else AGREEING_SHIPMENT[order_status]
        world.shipping.append(shipment("o1", status, 4))
    return world


@pytest.mark.parametrize(("pair", "resolution"), list(SAGA_RESOLUTIONS.items()), ids=str)
def test_each_saga_pair_comes_out_as_its_resolution(
    pair: tuple[str | None, str | None], resolution: Resolution
) -> None:
    # GIVEN an order (or none) and its reservation (or none) in the statuses of one row of the table
    order_status, reservation_status = pair
    world = saga_world(order_status, reservation_status)
    # WHEN compared
    found = about(compare(world), "order_reservation")
    # THEN the declared resolution is what comes out
    if resolution is Resolution.AGREES:
        assert found.all == []
        return
    assert [(f.entity_id, f.difference) for f in found.all] == [("o1", resolution.value)]
    if resolution is Resolution.PARK:
        [parked] = found.parked
        assert parked.attributes == {"order_status": order_status, "reservation_status": reservation_status}
        assert found.republish == found.corrections == []
        return
    assert found.parked == []
    if resolution is Resolution.REPUBLISH_SHIPMENT:
        assert [r.source_item["pk"] for r in found.republish] == ["SHIPMENT#o1"]
        assert found.corrections == []
    elif resolution is Resolution.REPUBLISH_ORDER:
        assert [r.source_item["pk"] for r in found.republish] == ["ORDER#o1"]
        assert found.corrections == []
    elif resolution is Resolution.REPUBLISH_RESERVATION:
        assert [r.source_item["pk"] for r in found.republish] == ["RESERVATION#o1"]
        assert found.corrections == []
    else:
        assert found.republish == []
        [correction] = found.corrections
        data = correction.data
        assert isinstance(data, ReservationCorrected)
        assert (data.order_id, data.action.value) == ("o1", ACTIONS[resolution])
        assert data.observed_status == reservation_status
        assert data.observed_version == (3 if reservation_status else None)
        assert data.order_status == order_status
        # the order's lines (what it still needs), or the orphan reservation's own
        expected_lines = ORDER_LINES if order_status else RESERVATION_LINES
        assert [line.model_dump() for line in data.lines] == expected_lines
        assert correction.version == (2 if order_status else 3)


@pytest.mark.parametrize(("pair", "resolution"), list(SHIPMENT_RESOLUTIONS.items()), ids=str)
def test_each_order_shipment_pair_comes_out_as_its_resolution(
    pair: tuple[str | None, str | None], resolution: Resolution
) -> None:
    # GIVEN an order (or none) and its shipment (or none) in the statuses of one row of the table
    order_status, shipment_status = pair
    world = World()
    if order_status is not None:
        world.orders.append(order("o1", order_status, 2, lines=ORDER_LINES))
    if shipment_status is not None:
        world.shipping.append(shipment("o1", shipment_status, 4))
    # WHEN compared
    found = about(compare(world), "order_shipment")
    # THEN the declared resolution comes out: a republish of the side that is ahead, or parked for a person
    if resolution is Resolution.AGREES:
        assert found.all == []
        return
    assert [(f.entity_id, f.difference) for f in found.all] == [("o1", resolution.value)]
    assert found.corrections == []  # shipping takes no corrections: forward repairs or a person
    if resolution is Resolution.PARK:
        [parked] = found.parked
        assert parked.kind == f"order_{order_status}_shipment_{shipment_status}".lower()
        assert found.republish == []
    else:
        if resolution is Resolution.REPUBLISH_RESERVATION:  # the order is behind its reservation, absent here
            assert found.republish == []
            assert [f.difference for f in found.deferred] == [resolution.value]
            return
        wanted = {Resolution.REPUBLISH_ORDER: "ORDER#o1", Resolution.REPUBLISH_SHIPMENT: "SHIPMENT#o1"}[resolution]
        assert [r.source_item["pk"] for r in found.republish] == [wanted]


def test_a_shipment_pair_with_nothing_to_republish_waits_for_the_other_pair() -> None:
    # GIVEN a confirmed order whose stock was shipped, and no shipment item to send again
    world = saga_world("CONFIRMED", "SHIPPED")
    world.shipping = []
    # WHEN compared
    findings = compare(world)
    # THEN the reservation pair's repair is deferred (named, checked next pass), not sent and not dropped
    assert [(f.projection, f.difference) for f in findings.deferred] == [("order_reservation", "republish_shipment")]
    assert about(findings, "order_reservation").republish == []


def test_a_shipped_reservation_under_a_shipment_restored_to_before_its_dispatch_is_parked_not_deferred() -> None:
    # GIVEN a confirmed order whose stock was shipped, and its shipment restored to PENDING (before its dispatch):
    #       ShipmentDispatched never reached orders, and the shipment item no longer holds it
    world = saga_world("CONFIRMED", "SHIPPED")
    world.shipping = [shipment("o1", "PENDING", 1)]
    # WHEN compared
    findings = compare(world)
    # THEN the reservation pair's republish has nothing to send and the shipment pair agrees, so no repair will
    #      ever come: the case is parked for a person, not deferred pass after pass
    found = about(findings, "order_reservation")
    assert found.deferred == found.republish == found.corrections == []
    [parked] = found.parked
    assert (parked.kind, parked.finding.difference) == ("stock_shipped_without_a_dispatch", "park")
    assert about(findings, "order_shipment").all == []


def test_a_republish_waits_while_its_sources_own_pair_repairs_it() -> None:
    # GIVEN a confirmed order cancelled while its stock is held and its shipment PENDING (shipping missed the
    #       cancellation)
    world = saga_world("CANCELLED", "RESERVED")
    world.orders[0]["confirmed"] = True
    world.shipping = [shipment("o1", "PENDING", 1)]
    # WHEN compared
    findings = compare(world)
    # THEN the reservation pair waits for the shipment (nothing to send yet), because the shipment pair's repair
    #      (OrderCancelled again) is coming: shipping cancels it, and its ShipmentCancelled releases the stock
    assert [f.difference for f in about(findings, "order_reservation").deferred] == ["republish_shipment"]
    assert about(findings, "order_reservation").parked == []
    assert [r.source_item["pk"] for r in about(findings, "order_shipment").republish] == ["ORDER#o1"]


def test_a_confirmed_order_whose_reinstatement_failed_is_parked_for_a_person() -> None:
    # GIVEN a confirmed order whose reservation is FAILED because a reinstatement found no stock
    world = saga_world("CONFIRMED", "FAILED", **FAILED_REINSTATEMENT)
    # WHEN compared
    found = about(compare(world), "order_reservation")
    # THEN it is parked with both statuses, and nothing is sent for it
    [parked] = found.parked
    assert (parked.kind, parked.finding.entity_id) == ("confirmed_without_stock", "o1")
    assert parked.attributes == {"order_status": "CONFIRMED", "reservation_status": "FAILED"}
    assert found.corrections == []
    assert found.republish == []
    # AND the same case seen again is the same parked case (counted once), at other versions another one
    again = compare(saga_world("CONFIRMED", "FAILED", **FAILED_REINSTATEMENT)).parked
    assert again == [parked]
    later = World(
        orders=[order("o1", "CONFIRMED", 2)], inventory=[reservation("o1", "FAILED", 5, **FAILED_REINSTATEMENT)]
    )
    assert compare(later).parked != [parked]


# ---------------------------------------------------------------- derived counters
def counter_world(*, reserved: int, on_hand: int = 10, available: int | None = None) -> World:
    return World(
        inventory=[
            product("p1", 7, on_hand=on_hand, reserved=reserved, available=available),
            reservation("o1", "RESERVED", lines=[{"product_id": "p1", "quantity": 2}]),
            reservation("o2", "RESERVED", lines=[{"product_id": "p1", "quantity": 1}]),
            reservation("o3", "FAILED", lines=[{"product_id": "p1", "quantity": 5}]),
            reservation("o4", "RELEASED", lines=[{"product_id": "p1", "quantity": 4}]),
        ],
    )


def test_a_full_compare_suspects_a_reserved_count_that_differs_from_its_reservations() -> None:
    # GIVEN a product whose reserved (5) differs from what its RESERVED reservations hold (2 + 1)
    world = counter_world(reserved=5)
    # WHEN a full compare (no scope) runs
    suspects = compare(world).recount_suspects
    # THEN the product is a recount suspect, with what it says and what was counted
    assert [(s.product_id, s.version, s.reserved, s.counted, s.on_hand) for s in suspects] == [("p1", 7, 5, 3, 10)]


def test_a_scoped_compare_never_recounts() -> None:
    # GIVEN the same drifted product, in the scope of an incremental pass
    scope = Scope(frozenset({"p1"}), frozenset({"o1", "o2", "o3", "o4"}))
    # THEN it is not a suspect: only a full read sees every reservation
    assert compare(counter_world(reserved=5), scope=scope).recount_suspects == []


def test_a_count_that_agrees_is_not_suspect_but_a_wrong_available_is() -> None:
    assert compare(counter_world(reserved=3)).recount_suspects == []
    [suspect] = compare(counter_world(reserved=3, available=9)).recount_suspects
    assert (suspect.product_id, suspect.counted) == ("p1", 3)


def test_a_recount_is_confirmed_only_by_a_second_read_at_the_same_version_still_differing() -> None:
    # GIVEN a suspect from a first read
    suspects = compare(counter_world(reserved=5)).recount_suspects
    # WHEN second reads show it unchanged, moved on (another version), repaired meanwhile, or gone
    unchanged = counter_world(reserved=5).snapshot()
    moved = World(inventory=[product("p1", 8, reserved=5), *counter_world(reserved=5).inventory[1:]]).snapshot()
    repaired = counter_world(reserved=3).snapshot()
    gone = World(inventory=counter_world(reserved=5).inventory[1:]).snapshot()
    # THEN only the unchanged one is confirmed
    assert [s.product_id for s in confirmed_recounts(suspects, unchanged)] == ["p1"]
    assert confirmed_recounts(suspects, moved) == []
    assert confirmed_recounts(suspects, repaired) == []
    assert confirmed_recounts(suspects, gone) == []


def test_a_confirmed_recount_sets_reserved_to_the_count_at_the_observed_version() -> None:
    [suspect] = compare(counter_world(reserved=5)).recount_suspects
    correction = recount(suspect)
    data = correction.data
    assert isinstance(data, ReservedRecounted)
    assert (data.product_id, data.observed_version, data.reserved) == ("p1", 7, 3)
    assert (correction.finding.projection, correction.finding.entity_id) == ("reserved", "p1")
    assert recount_needs_a_person(suspect) is None


def test_saga_repairs_on_a_product_being_recounted_wait_for_the_next_pass() -> None:
    # GIVEN a product whose reserved differs from its ledger, a cancelled order still holding some of it (a
    #       rolled-back reservation), and a cancelled order holding another product
    world = World(
        inventory=[
            product("p1", 7, reserved=0),
            product("p2", 4, reserved=1),
            reservation("o1", "RESERVED", lines=[{"product_id": "p1", "quantity": 2}]),
            reservation("o2", "RESERVED", lines=[{"product_id": "p2", "quantity": 1}]),
        ],
        orders=[
            order("o1", "CANCELLED", 3, lines=[{"product_id": "p1", "quantity": 2}]),
            order("o2", "CANCELLED", 3, lines=[{"product_id": "p2", "quantity": 1}]),
        ],
    )
    findings = compare(world)
    assert {s.product_id for s in findings.recount_suspects} == {"p1"}
    # WHEN the pass recounts p1
    sent = defer_saga_repairs(findings, list(findings.corrections), {"p1"}, world.snapshot())
    # THEN the release of o1 (it touches p1) waits for the next pass and stays a suspect; o2's goes now
    saga = {r.finding.entity_id for r in findings.republish if r.finding.projection == "order_reservation"}
    assert saga == {"o2"}
    assert [f.entity_id for f in findings.deferred] == ["o1"]
    assert "o1" in Scope.of_findings(findings).orders
    assert sent == list(findings.corrections)


def test_a_count_above_on_hand_needs_a_person() -> None:
    # GIVEN reservations holding more (3) than the product has on hand (2)
    [suspect] = compare(counter_world(reserved=0, on_hand=2)).recount_suspects
    # THEN the recount is parked for a person to count the stock
    parked = recount_needs_a_person(suspect)
    assert parked is not None
    assert (parked.kind, parked.finding.entity_id, parked.attributes) == (
        "stock_recount_raised_on_hand",
        "p1",
        {"on_hand": 2},
    )


# ---------------------------------------------------------------- corrections turned off
def test_without_corrections_the_differences_are_left_unrepaired_and_republishing_still_happens() -> None:
    # GIVEN an ahead availability, an orphaned outcome, a stray notification, a released-too-late reservation
    #       and a behind outcome
    world = World(
        inventory=[product("p1", 3), reservation("o1", "RESERVED"), reservation("o2", "RESERVED")],
        orders=[order("o1", "CONFIRMED", 2), order("o2", "REJECTED", 2)],
        notifications=[
            availability("p1", 4),
            outcome("o1", "CONFIRMED", 1),
            notification("o1"),
            notification("o1", customer="c2"),
            outcome("o2", "REJECTED", 2),
            notification("o2", "ORDER_REJECTED"),
            outcome("o9", "CONFIRMED", 1),
        ],
        shipping=[shipment("o1", "PENDING")],
    )
    with_corrections = compare(world, counters=False)
    # WHEN compared with corrections turned off
    without = compare(world, corrections=False, counters=False)
    # THEN nothing is corrected, every correction's difference is left unrepaired, and republishing still happens
    assert without.corrections == []
    assert without.unrepaired == [c.finding for c in with_corrections.corrections]
    assert {(f.projection, f.entity_id, f.difference) for f in without.unrepaired} == {
        ("availability", "p1", "ahead"),
        ("order_notification", "o1", "different"),
        ("order_outcome", "o9", "orphaned"),
        ("order_reservation", "o2", "release"),
    }
    assert without.republish == with_corrections.republish
    assert [(r.finding.projection, r.source_item["pk"]) for r in without.republish] == [("order_outcome", "ORDER#o1")]


# ---------------------------------------------------------------- corrections confirmed by a second read
def test_a_correction_is_dropped_when_the_reread_source_explains_the_difference() -> None:
    # GIVEN an outcome that looks ahead of a CONFIRMED order (the order was cancelled between the two reads)
    first = world_with(outcome=outcome("o1", "CANCELLED", 3))
    findings = compare(first)
    assert [c.finding.difference for c in findings.corrections] == ["ahead"]
    # WHEN the order is read again and is CANCELLED at the outcome's version
    reread = first.snapshot().refreshed("orders", [("ORDER#o1", "ORDER")], [order("o1", "CANCELLED", 3)])
    # THEN the correction is not sent
    assert confirmed_corrections(findings, reread) == []


def test_a_correction_is_dropped_when_the_source_moved_even_if_it_still_differs() -> None:
    # GIVEN an availability ahead of its product, and a second read finding the product one version on
    first = world_with(availability=availability("p1", 5))
    findings = compare(first)
    reread = first.snapshot().refreshed("inventory", [("PRODUCT#p1", "PRODUCT")], [product("p1", 4, reserved=2)])
    # THEN the correction the first read asked for is not the one the fresh source asks for: not sent
    assert confirmed_corrections(findings, reread) == []


def test_corrections_still_asked_for_by_the_reread_sources_are_sent() -> None:
    # GIVEN an ahead availability and a rejected order still holding stock, unchanged on the second read
    first = world_with(
        availability=availability("p1", 4),
        extra=[outcome("o2", "REJECTED", 2), notification("o2", "ORDER_REJECTED")],
    )
    first.orders.append(order("o2", "REJECTED", 2))
    first.inventory.append(reservation("o2", "RESERVED"))
    findings = compare(first, counters=False)
    # WHEN the sources are read again unchanged
    confirmed = confirmed_corrections(findings, first.snapshot())
    # THEN both corrections are sent
    assert confirmed == findings.corrections
    assert {(c.finding.projection, c.finding.difference) for c in confirmed} == {
        ("availability", "ahead"),
        ("order_reservation", "release"),
    }


def test_a_reservation_correction_is_dropped_when_the_reread_order_moved() -> None:
    # GIVEN a confirmed order without a reservation (to reinstate), whose second read shows it cancelled
    first = World(orders=[order("o1", "CONFIRMED", 2)])
    findings = compare(first)
    assert [c.finding.difference for c in findings.corrections] == ["reinstate"]
    reread = first.snapshot().refreshed("orders", [("ORDER#o1", "ORDER")], [order("o1", "CANCELLED", 3)])
    # THEN no reinstatement is sent
    assert confirmed_corrections(findings, reread) == []


# ---------------------------------------------------------------- dead letters
def test_dead_letters_are_judged_by_shape_and_history() -> None:
    stream_failure = {"requestContext": {"condition": "RetryAttemptsExhausted"}, "DDBStreamBatchInfo": {}}
    assert judge_dead_letter(stream_failure, None, 0).kind.value == "stream_batch"
    assert judge_dead_letter(None, "body is not JSON", 0).kind.value == "poison"
    assert judge_dead_letter({"detail": {}}, None, 0).kind.value == "event"
    assert judge_dead_letter({"detail": {}}, None, MAX_REDRIVES).kind.value == "poison"


def test_a_reservation_whose_event_moves_nothing_is_not_republished_for_a_shipment_pair() -> None:
    # GIVEN a restored PENDING order and shipment whose stock was shipped (the reservation is SHIPPED)
    world = World(
        orders=[order("o1", "PENDING", 2)],
        inventory=[reservation("o1", "SHIPPED", 3)],
        shipping=[shipment("o1", "PENDING")],
    )
    # WHEN compared
    findings = compare(world, counters=False)
    # THEN StockShipped is not sent again (orders does not consume it), and since the order <-> reservation pair
    #      parks the case, no repair will ever give the order <-> shipment pair news to wait for: both are parked
    assert about(findings, "order_shipment").republish == about(findings, "order_shipment").deferred == []
    assert [p.kind for p in about(findings, "order_shipment").parked] == ["order_pending_shipment_pending"]
    assert [p.kind for p in about(findings, "order_reservation").parked] == ["stock_shipped_for_an_unconfirmed_order"]


def test_the_names_a_finding_can_carry_are_exactly_the_declared_ones() -> None:
    # GIVEN the declared projections and saga pairs
    declared = {p.name for p in PROJECTIONS} | {saga.name for saga in SAGAS}
    # THEN the typed names list each of them and nothing else (a declaration cannot outlive or miss its name)
    assert set(get_args(ProjectionName)) | set(get_args(SagaName)) == declared


def test_every_saga_pair_that_can_resolve_by_a_correction_declares_how_it_is_built() -> None:
    # GIVEN the resolutions each declared pair can come to
    for saga in SAGAS:
        correcting = set(saga.resolutions.values()) & set(SAGA_ACTIONS)
        # THEN a pair that corrects has a builder, and one that only republishes or parks needs none
        assert (saga.name in SAGA_CORRECTIONS) == bool(correcting), saga.name


def test_a_finding_is_logged_as_plain_json() -> None:
    # GIVEN a finding from a comparison (a missing availability)
    world = agreeing()
    world.notifications = []
    finding = compare(world).all[0]
    # THEN its fields serialise as the strings a log line carries
    assert json.loads(json.dumps(asdict(finding)))["projection"] == finding.projection
    assert json.loads(json.dumps(asdict(finding)))["difference"] == "missing"

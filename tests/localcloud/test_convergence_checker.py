"""The convergence checker (localcloud/convergence.py `verify`): projections, invariants, every event accounted for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcloud import convergence
from localcloud.cloud import LocalCloud
from localcloud.demo import dead_letter_queues
from localcloud.faults import FaultPlan
from localcloud.template import load_template
from tests.localcloud.helpers import admin_token, customer_token, put_item
from tests.localcloud.real import REAL_TEMPLATE

DLQS = dead_letter_queues(load_template(REAL_TEMPLATE))


@pytest.fixture
def real() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as cloud:
        yield cloud


def _order(cloud: LocalCloud, product: str, quantity: int, customer: str = "c-1") -> str:
    body = {"lines": [{"product_id": product, "quantity": quantity}]}
    response = cloud.http("POST", "/orders", body=body, token=customer_token(cloud, customer))
    assert response.status == 201, response.body
    return str(response.json()["order_id"])


def _reconcile(cloud: LocalCloud) -> None:
    cloud.invoke("ReconcilerFunction", {"mode": "full"})
    cloud.run_until_quiet()


def test_a_converged_system_has_nothing_divergent_and_every_event_processed(real: LocalCloud) -> None:
    # GIVEN stock, one confirmed and one rejected order, settled
    real.http("PUT", "/products/p1/stock", body={"on_hand": 3}, token=admin_token(real))
    real.run_until_quiet()
    _order(real, "p1", 2)
    _order(real, "p1", 5)
    real.run_until_quiet()
    # WHEN the checker runs
    report = convergence.verify(real, DLQS)
    # THEN nothing diverges, no invariant is broken, and every delivery was processed
    assert report.converged
    assert report.divergence.total == 0
    assert report.invariants.total == 0
    accounting = report.accounting
    assert accounting.events_published > 0
    assert accounting.deliveries == accounting.processed > 0
    assert accounting.lost == accounting.parked == 0
    assert accounting.outcomes["applied"] > 0


def test_broken_invariants_are_counted_per_rule(real: LocalCloud) -> None:
    # GIVEN a settled order, then tables corrupted behind the services' backs
    real.http("PUT", "/products/p1/stock", body={"on_hand": 3}, token=admin_token(real))
    real.run_until_quiet()
    order_id = _order(real, "p1", 2)
    real.run_until_quiet()
    inventory = real.table_items("InventoryTable")
    product = inventory[("PRODUCT#p1", "PRODUCT")]
    put_item(real, "InventoryTable", product | {"reserved": 5, "available": -2})  # reserved > on_hand
    put_item(
        real,
        "OrdersTable",
        {
            "pk": "ORDER#ghost",
            "sk": "ORDER",
            "order_id": "ghost",
            "customer_id": "c-9",
            "status": "PENDING",
            "lines": [],
            "version": 1,
        },
    )
    real.delete_item(
        "NotificationsTable", {"pk": {"S": "CUSTOMER#c-1"}, "sk": {"S": f"NOTIFICATION#ORDER_CONFIRMED#{order_id}"}}
    )
    # WHEN the checker runs
    report = convergence.verify(real, DLQS)
    # THEN each broken rule counts the entity that breaks it
    violations = report.invariants.violations
    assert violations["reserved_within_on_hand"] == ["p1"]
    assert violations["reserved_equals_reservations"] == ["p1"]
    assert violations["order_not_terminal"] == ["ghost"]
    assert violations["notification_not_exactly_once"] == [order_id]
    assert not report.converged


def test_a_lost_delivery_is_lost_until_reconciliation_republishes_it() -> None:
    # GIVEN every delivery to the inventory inbox lost while an order is placed
    plan = FaultPlan(seed=1, lost_delivery=1.0, functions=("InventoryConsumerFunction",))
    with LocalCloud(REAL_TEMPLATE) as cloud:
        cloud.http("PUT", "/products/p1/stock", body={"on_hand": 3}, token=admin_token(cloud))
        cloud.run_until_quiet()
        cloud.faults.start(plan)
        order_id = _order(cloud, "p1", 1)
        cloud.run_until_quiet()
        cloud.faults.stop()
        # WHEN the checker runs
        before = convergence.verify(cloud, DLQS)
        # THEN the order is PENDING, its OrderPlaced delivery to inventory counts as lost
        assert before.invariants.violations["order_not_terminal"] == [order_id]
        assert before.accounting.lost == 1
        assert any("OrderPlaced" in example for example in before.accounting.lost_examples)
        # AND after a reconciliation pass republishes it, it is processed and nothing is lost
        _reconcile(cloud)
        after = convergence.verify(cloud, DLQS)
        assert after.converged, after.summary()
        assert after.accounting.lost == 0


def test_parked_poison_is_counted_with_the_reason_the_reconciler_gave() -> None:
    # GIVEN a poison message injected into an inbox, failed until SQS moved it to the DLQ
    with LocalCloud(REAL_TEMPLATE, faults=FaultPlan(seed=1, poison_rate=1.0)) as cloud:
        cloud.sqs_mappings[next(iter(cloud.sqs_mappings))].step()
        cloud.faults.stop()
        for _ in range(7):
            cloud.run_until_quiet()
            cloud.advance(61)
        # WHEN the reconciler drains the DLQs and the checker runs with the reasons it logged
        invocation = cloud.invoke("ReconcilerFunction", {"mode": "full"})
        reasons = convergence.parked_reasons(invocation.logs)
        report = convergence.verify(cloud, DLQS, reasons)
        # THEN the poison message is parked, counted, with the reconciler's reason
        assert cloud.faults.stats["poison_injected"] == 1
        assert report.accounting.poison_parked == 1
        assert sum(report.accounting.dlq_messages.values()) == 1
        assert len(reasons) == 1
        assert list(report.accounting.parked_reasons) == list(reasons.values())


def test_an_order_parked_for_a_person_is_counted_as_parked_not_divergent(real: LocalCloud) -> None:
    # GIVEN a confirmed order whose reservation failed (stock gone), fixed up consistently elsewhere, and the
    # reconciler's ANOMALY item parking it for a person
    real.http("PUT", "/products/p1/stock", body={"on_hand": 3}, token=admin_token(real))
    real.run_until_quiet()
    order_id = _order(real, "p1", 2)
    real.run_until_quiet()
    inventory = real.table_items("InventoryTable")
    reservation = inventory[(f"RESERVATION#{order_id}", "RESERVATION")]
    put_item(real, "InventoryTable", reservation | {"status": "FAILED", "reinstate_failed": True})
    for table, key in (("InventoryTable", ("PRODUCT#p1", "PRODUCT")), ("NotificationsTable", AVAILABILITY_P1)):
        item = real.table_items(table)[key]
        put_item(real, table, item | {"reserved": 0, "available": 3})
    put_item(real, "ReconcilerStateTable", _anomaly(order_id))
    # WHEN the checker runs
    report = convergence.verify(real, DLQS)
    # THEN the order is parked for a person, in the report, and nothing diverges
    assert report.divergence.parked_for_a_person == [order_id]
    assert report.accounting.parked_for_a_person == 1
    assert report.summary()["parked_for_a_person"] == [order_id]
    assert report.converged, report.summary()


# ------------------------------------------------------------------------------- pure: tables as dicts
Items = dict[tuple[str, str], dict[str, Any]]
AVAILABILITY_P1 = ("AVAILABILITY#p1", "AVAILABILITY")


def _items(*items: dict[str, Any]) -> Items:
    return {(str(i["pk"]), str(i["sk"])): i for i in items}


def _product(product: str, on_hand: int, reserved: int, version: int) -> dict[str, Any]:
    numbers = {"on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved, "version": version}
    return {"pk": f"PRODUCT#{product}", "sk": "PRODUCT", "product_id": product} | numbers


def _availability(product: str, on_hand: int, reserved: int, version: int) -> dict[str, Any]:
    numbers = {"on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved, "version": version}
    return {"pk": f"AVAILABILITY#{product}", "sk": "AVAILABILITY", "product_id": product} | numbers


def _order_item(order: str, status: str, customer: str = "c-1", version: int = 2, **more: Any) -> dict[str, Any]:
    item = {"pk": f"ORDER#{order}", "sk": "ORDER", "order_id": order, "customer_id": customer, "status": status}
    return item | {"version": version, "lines": [{"product_id": "p1", "quantity": 1}]} | more


def _outcome(order: str, status: str, customer: str = "c-1", version: int = 2) -> dict[str, Any]:
    item = {"pk": f"ORDER#{order}", "sk": "ORDER", "order_id": order, "customer_id": customer, "status": status}
    return item | {"version": version}


def _notification(order: str, kind: str, customer: str = "c-1", **more: Any) -> dict[str, Any]:
    key = {"pk": f"CUSTOMER#{customer}", "sk": f"NOTIFICATION#{kind}#{order}"}
    return key | {"kind": kind, "order_id": order, "created_at": "2024-01-01T00:00:00Z"} | more


def _reservation(order: str, status: str, quantity: int = 1) -> dict[str, Any]:
    key = {"pk": f"RESERVATION#{order}", "sk": "RESERVATION", "order_id": order, "status": status}
    return key | {"lines": [{"product_id": "p1", "quantity": quantity}]}


def _anomaly(order: str, kind: str = "confirmed_without_stock") -> dict[str, Any]:
    return {
        "pk": "ANOMALY",
        "sk": f"{kind}#{order}#reservation",
        "kind": kind,
        "entity_id": order,
        "reason": "reinstating the reservation failed: no stock",
        "parked_at": "2024-01-01T00:00:00Z",
        "order_status": "CONFIRMED",
        "reservation_status": "FAILED",
    }


def _world() -> tuple[Items, Items, Items]:
    """A converged world: every status, every agreeing pair, a CANCELLED order with and without its confirmation."""
    orders = _items(
        _order_item("o-conf", "CONFIRMED"),
        _order_item("o-rej", "REJECTED", reason="insufficient_stock"),
        _order_item("o-rej-released", "REJECTED", customer="c-2", version=3, reason="cancelled_before_reserved"),
        _order_item("o-can-confirmed", "CANCELLED", version=3),
        _order_item("o-can-failed", "CANCELLED", customer="c-2", version=3),
    )
    inventory = _items(
        _product("p1", on_hand=5, reserved=1, version=4),
        _reservation("o-conf", "RESERVED"),
        _reservation("o-rej", "FAILED"),
        _reservation("o-rej-released", "RELEASED"),
        _reservation("o-can-confirmed", "RELEASED"),
        _reservation("o-can-failed", "FAILED"),
    )
    notifications = _items(
        _availability("p1", on_hand=5, reserved=1, version=4),
        _outcome("o-conf", "CONFIRMED"),
        _outcome("o-rej", "REJECTED"),
        _outcome("o-rej-released", "REJECTED", customer="c-2", version=3),
        _outcome("o-can-confirmed", "CANCELLED", version=3),
        _outcome("o-can-failed", "CANCELLED", customer="c-2", version=3),
        _notification("o-conf", "ORDER_CONFIRMED"),
        _notification("o-rej", "ORDER_REJECTED", reason="insufficient_stock"),
        _notification("o-rej-released", "ORDER_REJECTED", customer="c-2", reason="cancelled_before_reserved"),
        _notification("o-can-confirmed", "ORDER_CONFIRMED"),  # confirmed before it was cancelled
        {"pk": "WATCH#p1", "sk": "CUSTOMER#c-1", "customer_id": "c-1", "product_id": "p1", "order_id": "o-rej"},
        {"pk": "CUSTOMER#c-1", "sk": "NOTIFICATION#BACK_IN_STOCK#p1", "kind": "BACK_IN_STOCK", "product_id": "p1"},
    )
    return orders, inventory, notifications


def _findings(divergence: convergence.Divergence) -> set[tuple[str, str, str]]:
    return {(f.check, f.kind, f.entity_id) for f in divergence.findings}


def test_a_converged_world_has_no_finding_and_no_violation() -> None:
    # GIVEN every order status with an agreeing reservation (REJECTED with FAILED or RELEASED, CANCELLED with
    # FAILED or RELEASED, with or without its earlier confirmation), its outcome and notifications
    orders, inventory, notifications = _world()
    # WHEN compared
    divergence = convergence._compare(orders, inventory, notifications)
    invariants = convergence.check_invariants(orders, inventory, notifications)
    # THEN nothing diverges, in any projection or direction, and no invariant is broken
    assert divergence.findings == []
    assert divergence.total == 0
    assert divergence.counts == {
        "availability": 0,
        "order_reservations": 0,
        "order_notifications": 0,
        "order_shipments": 0,
    }
    assert divergence.checked == {
        "availability": 1,
        "order_reservations": 5,
        "order_notifications": 5,
        "order_shipments": 0,
    }
    assert invariants.total == 0, invariants.violations


ORDERS, INVENTORY, NOTIFICATIONS = 0, 1, 2


def _delete(table: int, key: tuple[str, str]) -> Any:
    return lambda o, i, n: (o, i, n)[table].pop(key)


def _set(table: int, *items: dict[str, Any]) -> Any:
    return lambda o, i, n: (o, i, n)[table].update(_items(*items))


def _both(*changes: Any) -> Any:
    return lambda o, i, n: [change(o, i, n) for change in changes]


DRIFT: dict[str, tuple[Any, set[tuple[str, str, str]]]] = {
    # availability <- product
    "availability missing": (_delete(NOTIFICATIONS, AVAILABILITY_P1), {("availability", "missing", "p1")}),
    "availability behind": (
        _set(NOTIFICATIONS, _availability("p1", on_hand=5, reserved=0, version=3)),
        {("availability", "behind", "p1")},
    ),
    "availability ahead": (
        _set(NOTIFICATIONS, _availability("p1", on_hand=6, reserved=1, version=5)),
        {("availability", "ahead", "p1")},
    ),
    "availability same version, different numbers": (
        _set(NOTIFICATIONS, _availability("p1", on_hand=9, reserved=1, version=4)),
        {("availability", "different", "p1")},
    ),
    "availability orphaned (no product)": (
        _set(NOTIFICATIONS, _availability("p-gone", on_hand=1, reserved=0, version=1)),
        {("availability", "orphaned", "p-gone")},
    ),
    # order outcome <- order
    "outcome missing": (_delete(NOTIFICATIONS, ("ORDER#o-conf", "ORDER")), {("order_outcome", "missing", "o-conf")}),
    "outcome of a CANCELLED order missing": (
        _delete(NOTIFICATIONS, ("ORDER#o-can-failed", "ORDER")),
        {("order_outcome", "missing", "o-can-failed")},
    ),
    "outcome behind": (
        _set(NOTIFICATIONS, _outcome("o-can-confirmed", "CONFIRMED", version=2)),
        {("order_outcome", "behind", "o-can-confirmed")},
    ),
    "outcome ahead": (
        _set(NOTIFICATIONS, _outcome("o-conf", "CANCELLED", version=3)),
        {("order_outcome", "ahead", "o-conf")},
    ),
    "outcome same version, different status": (
        _set(NOTIFICATIONS, _outcome("o-conf", "REJECTED")),
        {("order_outcome", "different", "o-conf")},
    ),
    "outcome same version, different customer": (
        _set(NOTIFICATIONS, _outcome("o-conf", "CONFIRMED", customer="c-9")),
        {("order_outcome", "different", "o-conf")},
    ),
    "outcome orphaned (no order)": (
        _set(NOTIFICATIONS, _outcome("o-gone", "CONFIRMED")),
        {("order_outcome", "orphaned", "o-gone")},
    ),
    "outcome of a PENDING order (order restored behind it)": (
        _set(ORDERS, _order_item("o-conf", "PENDING", version=1)),
        {("order_outcome", "ahead", "o-conf"), ("order_notification", "unexpected", "o-conf")}
        | {("order_reservation", "in_flight", "o-conf")},
    ),
    # order notifications <- order (unversioned: no behind / ahead)
    "confirmation missing": (
        _delete(NOTIFICATIONS, ("CUSTOMER#c-1", "NOTIFICATION#ORDER_CONFIRMED#o-conf")),
        {("order_notification", "missing", "o-conf")},
    ),
    "rejection missing": (
        _delete(NOTIFICATIONS, ("CUSTOMER#c-2", "NOTIFICATION#ORDER_REJECTED#o-rej-released")),
        {("order_notification", "missing", "o-rej-released")},
    ),
    "rejection with another reason": (
        _set(NOTIFICATIONS, _notification("o-rej", "ORDER_REJECTED", reason="something else")),
        {("order_notification", "different", "o-rej")},
    ),
    "rejection of a CONFIRMED order": (
        _set(NOTIFICATIONS, _notification("o-conf", "ORDER_REJECTED", reason="insufficient_stock")),
        {("order_notification", "unexpected", "o-conf")},
    ),
    "rejection of a CANCELLED order": (
        _set(NOTIFICATIONS, _notification("o-can-failed", "ORDER_REJECTED", customer="c-2")),
        {("order_notification", "unexpected", "o-can-failed")},
    ),
    "confirmation of a REJECTED order": (
        _set(NOTIFICATIONS, _notification("o-rej", "ORDER_CONFIRMED")),
        {("order_notification", "unexpected", "o-rej")},
    ),
    "notification orphaned (no order)": (
        _set(NOTIFICATIONS, _notification("o-gone", "ORDER_CONFIRMED")),
        {("order_notification", "orphaned", "o-gone")},
    ),
    "notification also under another customer": (
        _set(NOTIFICATIONS, _notification("o-conf", "ORDER_CONFIRMED", customer="c-2")),
        {("order_notification", "orphaned", "o-conf")},
    ),
    # order <-> reservation
    "reservation missing": (
        _delete(INVENTORY, ("RESERVATION#o-conf", "RESERVATION")),
        {("order_reservation", "missing", "o-conf")},
    ),
    "CONFIRMED order, reservation RELEASED": (
        _both(
            _set(INVENTORY, _reservation("o-conf", "RELEASED"), _product("p1", on_hand=5, reserved=0, version=5)),
            _set(NOTIFICATIONS, _availability("p1", on_hand=5, reserved=0, version=5)),
        ),
        {("order_reservation", "disagrees", "o-conf")},
    ),
    "REJECTED order, reservation RESERVED": (
        _set(INVENTORY, _reservation("o-rej", "RESERVED", quantity=0)),
        {("order_reservation", "disagrees", "o-rej")},
    ),
    "CONFIRMED order, reservation FAILED, not parked": (
        _set(INVENTORY, _reservation("o-conf", "FAILED", quantity=0)),
        {("order_reservation", "disagrees", "o-conf")},
    ),
    "PENDING order in flight": (
        _set(ORDERS, _order_item("o-new", "PENDING", version=1)),
        {("order_reservation", "in_flight", "o-new")},
    ),
    "reservation orphaned (no order)": (
        _set(INVENTORY, _reservation("o-gone", "FAILED")),
        {("order_reservation", "orphaned", "o-gone")},
    ),
}


@pytest.mark.parametrize("drift", list(DRIFT))
def test_each_projection_reports_each_direction(drift: str) -> None:
    # GIVEN a converged world, then one drift
    orders, inventory, notifications = _world()
    change, expected = DRIFT[drift]
    change(orders, inventory, notifications)
    # WHEN compared
    divergence = convergence._compare(orders, inventory, notifications)
    # THEN exactly that finding is reported, and its entity counts once in its projection
    assert _findings(divergence) == expected
    for check, _, entity in expected:
        assert entity in divergence.divergent[convergence.GROUP[check]]
        assert entity in divergence.by_check[check]
    assert divergence.total == len({(convergence.GROUP[c], e) for c, _, e in expected})
    assert divergence.parked_for_a_person == []


def test_findings_are_counted_per_projection_and_direction() -> None:
    # GIVEN availability and an outcome behind, and a notification under the wrong customer
    orders, inventory, notifications = _world()
    notifications.update(_items(_availability("p1", on_hand=5, reserved=0, version=3)))
    notifications.update(_items(_outcome("o-can-confirmed", "CONFIRMED", version=2)))
    notifications.pop(("CUSTOMER#c-1", "NOTIFICATION#ORDER_CONFIRMED#o-conf"))
    notifications.update(_items(_notification("o-conf", "ORDER_CONFIRMED", customer="c-2")))
    # WHEN compared
    divergence = convergence._compare(orders, inventory, notifications)
    # THEN the counter by kind tells the direction of each, and the order counts once in its projection
    assert {c: k for c, k in divergence.by_kind.items() if k} == {
        "availability": {"behind": 1},
        "order_outcome": {"behind": 1},
        "order_notification": {"orphaned": 1, "missing": 1},
    }
    assert divergence.divergent == {
        "availability": ["p1"],
        "order_reservations": [],
        "order_notifications": ["o-can-confirmed", "o-conf"],
        "order_shipments": [],
    }


def _parked_world(reservation_status: str, anomaly: dict[str, Any] | None) -> tuple[Items, Items, Items, Items]:
    orders, inventory, notifications = _world()
    inventory.update(_items(_reservation("o-conf", reservation_status), _product("p1", 5, 0, version=5)))
    notifications.update(_items(_availability("p1", 5, 0, version=5)))
    state = _items(anomaly) if anomaly else {}
    state |= _items({"pk": "PARKED", "sk": "message#1", "reason": "unparseable"}, _anomaly("p1", "other_kind"))
    return orders, inventory, notifications, state


def test_a_confirmed_order_without_stock_parked_for_a_person_is_parked_not_divergent() -> None:
    # GIVEN an order CONFIRMED whose reservation FAILED, and the reconciler's ANOMALY item for it
    orders, inventory, notifications, state = _parked_world("FAILED", _anomaly("o-conf"))
    # WHEN compared, and the invariants checked with the parked orders
    divergence = convergence._compare(orders, inventory, notifications, state)
    invariants = convergence.check_invariants(orders, inventory, notifications, divergence.parked_for_a_person)
    # THEN it is parked for a person, not divergent, and breaks no invariant
    assert divergence.parked_for_a_person == ["o-conf"]
    assert divergence.findings == []
    assert divergence.total == 0
    assert invariants.total == 0, invariants.violations
    # AND the report's summary counts it
    report = convergence.ConvergenceReport(divergence, invariants, convergence.Accounting(parked_for_a_person=1))
    assert report.converged
    assert report.summary()["parked_for_a_person"] == ["o-conf"]
    assert report.summary()["accounting"]["parked_for_a_person"] == 1


@pytest.mark.parametrize(
    ("reservation_status", "anomaly"),
    [
        ("FAILED", None),  # not parked
        ("FAILED", _anomaly("o-other")),  # another order parked
        ("FAILED", _anomaly("o-conf", "stock_recount_raised_on_hand")),  # parked for another reason
        ("RELEASED", _anomaly("o-conf")),  # parked, but the pair is not (CONFIRMED, FAILED)
    ],
)
def test_a_divergent_order_stays_divergent_unless_parked_as_confirmed_without_stock(
    reservation_status: str, anomaly: dict[str, Any] | None
) -> None:
    # GIVEN an order CONFIRMED whose reservation does not agree, without the matching ANOMALY item
    orders, inventory, notifications, state = _parked_world(reservation_status, anomaly)
    # WHEN compared
    divergence = convergence._compare(orders, inventory, notifications, state)
    invariants = convergence.check_invariants(orders, inventory, notifications, divergence.parked_for_a_person)
    # THEN it is divergent, not parked
    assert _findings(divergence) == {("order_reservation", "disagrees", "o-conf")}
    assert divergence.parked_for_a_person == []
    assert invariants.violations["order_disagrees_with_reservation"] == ["o-conf"]


@pytest.mark.parametrize(
    ("change", "violated"),
    [
        (_set(NOTIFICATIONS, _notification("o-can-failed", "ORDER_REJECTED", customer="c-2")), "o-can-failed"),
        (_set(NOTIFICATIONS, _notification("o-can-confirmed", "ORDER_CONFIRMED", customer="c-2")), "o-can-confirmed"),
        (_set(NOTIFICATIONS, _notification("o-conf", "ORDER_CONFIRMED", customer="c-2")), "o-conf"),
        (_delete(NOTIFICATIONS, ("CUSTOMER#c-1", "NOTIFICATION#ORDER_REJECTED#o-rej")), "o-rej"),
        (_set(NOTIFICATIONS, _notification("o-rej", "ORDER_CONFIRMED")), "o-rej"),
    ],
    ids=[
        "CANCELLED with a rejection",
        "CANCELLED confirmed twice",
        "CONFIRMED twice (two customers)",
        "REJECTED never notified",
        "REJECTED and confirmed",
    ],
)
def test_notification_not_exactly_once(change: Any, violated: str) -> None:
    # GIVEN a converged world where a CANCELLED order has one confirmation and another none, then one change
    orders, inventory, notifications = _world()
    change(orders, inventory, notifications)
    # WHEN the invariants are checked
    invariants = convergence.check_invariants(orders, inventory, notifications)
    # THEN the order breaks "notification exactly once", and only that rule
    assert invariants.violations["notification_not_exactly_once"] == [violated]
    assert invariants.total == 1


def test_rejected_or_cancelled_orders_agree_with_failed_or_released_reservations() -> None:
    # GIVEN REJECTED and CANCELLED orders, each with a FAILED or a RELEASED reservation
    orders, inventory, notifications = _world()
    # WHEN the invariants are checked, THEN none disagrees; a CANCELLED order without reservation does
    assert convergence.check_invariants(orders, inventory, notifications).total == 0
    inventory.pop(("RESERVATION#o-can-failed", "RESERVATION"))
    invariants = convergence.check_invariants(orders, inventory, notifications)
    assert invariants.violations["order_disagrees_with_reservation"] == ["o-can-failed"]


def test_a_restored_order_whose_stock_was_shipped_is_a_persons_for_every_pair() -> None:
    # GIVEN an order and its shipment both restored to PENDING while its stock had been shipped, and the
    #       reconciler's ANOMALY item for it (order <-> reservation: stock shipped for an unconfirmed order)
    orders = _items(_order_item("o-r", "PENDING"))
    inventory = _items(_product("p1", 4, 0, version=3), _reservation("o-r", "SHIPPED"))
    shipment = {"pk": "SHIPMENT#o-r", "sk": "SHIPMENT", "order_id": "o-r", "status": "PENDING", "version": 1}
    tables = {"orders": orders, "inventory": inventory, "notifications": {}, "shipping": _items(shipment)}
    state = _items(_anomaly("o-r", "stock_shipped_for_an_unconfirmed_order"))
    # WHEN compared, every pair, and the invariants checked with what is parked
    divergence = convergence._compare(orders, inventory, {}, state, tables)
    invariants = convergence.check_invariants(orders, inventory, {}, divergence.parked_for_a_person)
    # THEN no pair of it is divergent (the shipment pair too), and its PENDING status breaks no invariant
    assert [f for f in divergence.findings if f.entity_id == "o-r"] == []
    assert set(divergence.parked_for_a_person) == {"o-r"}
    assert invariants.violations["order_not_terminal"] == []

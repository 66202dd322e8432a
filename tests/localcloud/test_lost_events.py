"""A lost event is repaired like any other: for every event one service reacts to, its delivery to that one consumer
is lost, and the scheduled reconciliation passes bring the system back within two passes.

The cases are derived from the contracts (`converge.contracts`: which consumer handles which event type) and the
declared saga pairs (`converge.projections.SAGAS`: the events of each pair's sides, to each of their consumers), so
a new reaction or a new pair is covered without a new test. Convergence is judged by the independent checker
(localcloud/convergence.py): nothing divergent, no invariant broken, no event lost, nothing parked for a person.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from converge.contracts import CORRECTION_TYPES, EVENT_TYPES, SERVICES, SERVICES_BY_NAME, consumers_of
from converge.projections import SAGAS
from localcloud import convergence
from localcloud.cloud import LocalCloud
from localcloud.demo import dead_letter_queues
from localcloud.faults import FaultPlan
from localcloud.template import load_template
from tests.localcloud.helpers import admin_token, customer_token, put_item
from tests.localcloud.real import REAL_TEMPLATE

DLQS = dead_letter_queues(load_template(REAL_TEMPLATE))
SCHEDULE = 300  # the reconciler's 5-minute schedule
PASSES = 2  # a lost event is repaired within this many scheduled passes


def _reactions() -> set[tuple[str, str]]:
    """(event type, consumer) for every event a service's consumer applies from another service (not corrections:
    the reconciler's own repairs)."""
    return {
        (event_type, service.name)
        for service in SERVICES
        for event_type in service.consumes
        if event_type not in CORRECTION_TYPES and EVENT_TYPES[event_type].producer != service.name
    }


def _saga_deliveries() -> set[tuple[str, str]]:
    """(event type, consumer) for every event of either side of a declared saga pair, to each of its consumers."""
    sides = {layout for saga in SAGAS for layout in (saga.left, saga.right)}
    return {
        (event_type, consumer.name)
        for service in SERVICES
        for entity in service.entities
        if entity.layout in sides
        for event_type in entity.events
        for consumer in consumers_of(event_type)
    }


LOSSES = sorted(_reactions() | _saga_deliveries())


def _consumer_function(service: str) -> str:
    return SERVICES_BY_NAME[service].functions()["consumer"]


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    """One deployment for the module (each case has its own products and customers); the first scheduled pass has
    run, so every pass a case waits for is the incremental one the 5-minute schedule makes."""
    with LocalCloud(REAL_TEMPLATE) as deployed:
        _scheduled_pass(deployed)
        yield deployed


_cases = itertools.count()


class Shop:
    """One case's storefront: its own products and customer, driven through the HTTP API as a person would."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        case = next(_cases)
        self.plenty, self.scarce = f"lost{case}-plenty", f"lost{case}-scarce"
        self.customer = customer_token(cloud, f"lost{case}-c")
        self.admin = admin_token(cloud)

    def stock(self) -> None:
        for product, on_hand in ((self.plenty, 10), (self.scarce, 1)):
            response = self.cloud.http("PUT", f"/products/{product}/stock", body={"on_hand": on_hand}, token=self.admin)
            assert response.status == 200, response.body
        self.cloud.run_until_quiet()

    def place(self, product: str, quantity: int = 1) -> str:
        body = {"lines": [{"product_id": product, "quantity": quantity}]}
        response = self.cloud.http("POST", "/orders", body=body, token=self.customer)
        assert response.status == 201, response.body
        return str(response.json()["order_id"])

    def cancel(self, order_id: str) -> None:
        response = self.cloud.http("POST", f"/orders/{order_id}/cancel", token=self.customer)
        assert response.status in (200, 409), response.body  # 409: no longer cancellable (a lost event or two)

    def dispatch(self, order_id: str) -> None:
        response = self.cloud.http("POST", f"/shipments/{order_id}/dispatch", token=self.admin)
        assert response.status in (200, 404, 409), response.body  # 404: no shipment yet (a lost event upstream)

    def status(self, order_id: str) -> str:
        response = self.cloud.http("GET", f"/orders/{order_id}", token=self.admin)
        assert response.status == 200, response.body
        return str(response.json()["status"])

    def every_path(self) -> dict[str, str]:
        """Every way an order goes, each settled before the next: shipped, rejected, cancelled before and after its
        confirmation, and a cancellation crossing the dispatch. Stock changes all along (StockUpdated)."""
        settle = self.cloud.run_until_quiet
        shipped = self.place(self.plenty)
        settle()
        self.dispatch(shipped)
        settle()
        rejected = self.place(self.scarce, quantity=5)
        settle()
        cancelled_pending = self.place(self.plenty)
        self.cancel(cancelled_pending)
        settle()
        cancelled_confirmed = self.place(self.plenty)
        settle()
        self.cancel(cancelled_confirmed)
        settle()
        crossed = self.place(self.plenty)
        settle()
        self.cancel(crossed)
        self.dispatch(crossed)
        settle()
        return {
            "shipped": shipped,
            "rejected": rejected,
            "cancelled_pending": cancelled_pending,
            "cancelled_confirmed": cancelled_confirmed,
            "crossed": crossed,
        }


def _scheduled_pass(cloud: LocalCloud) -> None:
    """The 5-minute schedule fires the reconciler once; the pipeline settles."""
    [invocation] = [i for i in cloud.advance(SCHEDULE) if i.function == "ReconcilerFunction"]
    assert invocation.ok, invocation.error
    cloud.run_until_quiet()


def _lose(cloud: LocalCloud, event_type: str, consumer: str) -> None:
    """From now on every delivery of `event_type` to `consumer`'s inbox is lost, and nothing else."""
    cloud.faults.start(
        FaultPlan(seed=1, lost_delivery=1.0, functions=(_consumer_function(consumer),), event_types=(event_type,))
    )


def _passes_until_converged(cloud: LocalCloud) -> tuple[int, convergence.ConvergenceReport]:
    """Scheduled passes until the checker finds nothing to repair, at most PASSES; (passes run, last report)."""
    for number in range(1, PASSES + 1):
        _scheduled_pass(cloud)
        report = convergence.verify(cloud, DLQS)
        if report.converged:
            return number, report
    return PASSES + 1, report


def _item(cloud: LocalCloud, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    return cloud.table_items(table).get((pk, sk))


def _state(cloud: LocalCloud) -> convergence.Items:
    return cloud.table_items("ReconcilerStateTable")


def test_a_dispatch_lost_on_its_way_to_orders_ships_the_order_within_two_passes(cloud: LocalCloud) -> None:
    # GIVEN a confirmed order whose shipment is PENDING
    shop = Shop(cloud)
    shop.stock()
    order_id = shop.place(shop.plenty)
    cloud.run_until_quiet()
    assert shop.status(order_id) == "CONFIRMED"
    # WHEN the warehouse dispatches it and the ShipmentDispatched delivery to orders is lost (inventory's arrives)
    _lose(cloud, "ShipmentDispatched", "orders")
    shop.dispatch(order_id)
    cloud.run_until_quiet()
    cloud.faults.stop()
    # THEN the order stays CONFIRMED while its reservation and shipment moved on, and the event counts as lost
    assert cloud.faults.stats["deliveries_lost"] == 1
    assert shop.status(order_id) == "CONFIRMED"
    assert _item(cloud, "InventoryTable", f"RESERVATION#{order_id}", "RESERVATION")["status"] == "SHIPPED"  # type: ignore[index]
    assert _item(cloud, "ShipmentsTable", f"SHIPMENT#{order_id}", "SHIPMENT")["status"] == "DISPATCHED"  # type: ignore[index]
    before = convergence.verify(cloud, DLQS)
    assert before.accounting.lost == 1, before.summary()
    # AND WHEN the scheduled passes run
    passes, report = _passes_until_converged(cloud)
    # THEN within two passes the order is SHIPPED, nothing is divergent and nothing is lost
    assert passes <= PASSES, report.summary()
    assert shop.status(order_id) == "SHIPPED"
    assert report.divergence.total == 0
    assert report.accounting.lost == 0


def test_a_dispatch_lost_on_its_way_to_orders_from_a_shipment_restored_to_before_it_is_parked_within_two_passes(
    cloud: LocalCloud,
) -> None:
    # GIVEN a confirmed order whose shipment is PENDING, that image of the shipment kept (as a backup holds it)
    shop = Shop(cloud)
    shop.stock()
    order_id = shop.place(shop.plenty)
    cloud.run_until_quiet()
    before_dispatch = _item(cloud, "ShipmentsTable", f"SHIPMENT#{order_id}", "SHIPMENT")
    assert before_dispatch is not None
    assert before_dispatch["status"] == "PENDING"
    # AND its dispatch lost on its way to orders (inventory's arrives: the reservation is SHIPPED)
    _lose(cloud, "ShipmentDispatched", "orders")
    shop.dispatch(order_id)
    cloud.run_until_quiet()
    cloud.faults.stop()
    # WHEN the shipment is copied back from before its dispatch, as a restore does (its old version and updated_at)
    put_item(cloud, "ShipmentsTable", before_dispatch)
    cloud.run_until_quiet()
    # THEN nothing holds the dispatch any more: no event can move the order, and the shipment says the parcel is
    # still here while inventory says it left
    assert shop.status(order_id) == "CONFIRMED"
    assert _item(cloud, "InventoryTable", f"RESERVATION#{order_id}", "RESERVATION")["status"] == "SHIPPED"  # type: ignore[index]
    # AND WHEN the scheduled passes run, THEN within two the case is parked for a person with its reason, instead of
    # being found and deferred pass after pass: nothing divergent, the lost event accounted for
    passes, report = _passes_until_converged(cloud)
    assert passes <= PASSES, (report.summary(), report.accounting.lost_examples)
    assert report.divergence.parked_for_a_person == [order_id]
    kinds = {kind for kind, entity_id in convergence.parked_cases(_state(cloud)) if entity_id == order_id}
    assert kinds == {"stock_shipped_without_a_dispatch"}


@pytest.mark.parametrize(("event_type", "consumer"), LOSSES, ids=[f"{e}-to-{c}" for e, c in LOSSES])
def test_an_event_lost_on_its_way_to_one_consumer_is_repaired_within_two_passes(
    cloud: LocalCloud, event_type: str, consumer: str
) -> None:
    # GIVEN a stocked storefront
    shop = Shop(cloud)
    shop.stock()
    # WHEN every delivery of the event to that one consumer is lost while orders go every way an order goes
    _lose(cloud, event_type, consumer)
    orders = shop.every_path()
    cloud.faults.stop()
    # THEN the event was lost at least once
    assert cloud.faults.stats["deliveries_lost"] >= 1
    # AND WHEN the scheduled passes run, THEN within two the system has converged: nothing divergent, no invariant
    # broken, no event lost, and nothing left for a person (a lost event is always repairable)
    passes, report = _passes_until_converged(cloud)
    assert passes <= PASSES, (report.summary(), report.accounting.lost_examples)
    assert set(report.divergence.parked_for_a_person).isdisjoint(orders.values())


def test_every_declared_saga_pair_has_its_events_lost_to_each_consumer() -> None:
    # GIVEN the declared saga pairs, WHEN the cases are derived, THEN each pair's sides publish events that some case
    # loses (a pair whose events no consumer applies would be reconciled by nothing)
    for saga in SAGAS:
        published = {
            event_type
            for service in SERVICES
            for entity in service.entities
            if entity.layout in (saga.left, saga.right)
            for event_type in entity.events
        }
        assert {event_type for event_type, _ in LOSSES} & published, saga.name

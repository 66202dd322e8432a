"""The shipping dispatch under races, against a fake store (no AWS): dispatch wins once, a cancellation that lands
first is answered with the shipment's status."""

from __future__ import annotations

import pytest

from converge.authz import Caller
from converge.errors import ConcurrentUpdateError, TransitionNotAllowedError
from converge.events import OrderLine, ShipmentStatus
from shipping import domain, service

WAREHOUSE = Caller(subject="warehouse", admin=True)
AT = "2026-11-28T11:00:00+00:00"


def shipment_in(status: ShipmentStatus, version: int = 1) -> domain.Shipment:
    return domain.Shipment(
        order_id="o-1",
        customer_id="cust-1",
        lines=(OrderLine(product_id="p1", quantity=2),),
        status=status,
        version=version,
        order_version=2,
        correlation_id="c-0",
        created_at=AT,
        updated_at=AT,
    )


class FakeShipments:
    """Shipments in a dict with the table's conditional replace; `interleaved` writes land before our next write."""

    def __init__(self, *shipments: domain.Shipment) -> None:
        self.items = {s.order_id: s for s in shipments}
        self.interleaved: list[domain.Shipment] = []

    def get(self, order_id: str) -> domain.Shipment | None:
        return self.items.get(order_id)

    def create(self, shipment: domain.Shipment) -> bool:
        return self.items.setdefault(shipment.order_id, shipment) is shipment

    def replace(self, current: domain.Shipment, updated: domain.Shipment) -> domain.Shipment:
        if self.interleaved:
            other = self.interleaved.pop(0)
            self.items[other.order_id] = other
        stored = self.items.get(current.order_id)
        if stored is None or (stored.status, stored.version) != (current.status, current.version):
            raise ConcurrentUpdateError(f"shipment {current.order_id} changed since it was read")
        self.items[current.order_id] = updated
        return updated


def dispatch(shipments: FakeShipments, order_id: str) -> tuple[domain.Shipment, bool]:
    return service.dispatch(shipments, order_id, caller=WAREHOUSE, correlation_id="c-1")


def test_a_dispatch_is_written_once_and_its_repeat_is_a_replay() -> None:
    # GIVEN a pending shipment
    pending = shipment_in(ShipmentStatus.PENDING)
    shipments = FakeShipments(pending)
    # WHEN it is dispatched twice
    (first, replayed_first), (second, replayed_second) = (
        dispatch(shipments, pending.order_id),
        dispatch(shipments, pending.order_id),
    )
    # THEN the first writes DISPATCHED at version 2, the second replays it
    assert (first.status, first.version, replayed_first) == (ShipmentStatus.DISPATCHED, 2, False)
    assert (second, replayed_second) == (first, True)


def test_a_cancellation_landing_between_read_and_write_is_answered_with_the_shipments_status() -> None:
    # GIVEN a pending shipment, cancelled between the dispatch's read and its write
    pending = shipment_in(ShipmentStatus.PENDING)
    shipments = FakeShipments(pending)
    shipments.interleaved.append(shipment_in(ShipmentStatus.CANCELLED, version=2))
    # WHEN it is dispatched
    # THEN the dispatch decides again on the cancelled shipment and is refused, naming its status
    with pytest.raises(TransitionNotAllowedError) as refused:
        dispatch(shipments, pending.order_id)
    assert refused.value.http_body() == {"shipment_status": "CANCELLED"}
    assert shipments.items[pending.order_id].status is ShipmentStatus.CANCELLED


def test_a_dispatch_losing_two_races_gives_up_and_writes_nothing() -> None:
    # GIVEN a pending shipment that another writer touches before each of the dispatch's two writes
    pending = shipment_in(ShipmentStatus.PENDING)
    shipments = FakeShipments(pending)
    shipments.interleaved += [shipment_in(ShipmentStatus.PENDING, version=2), shipment_in(ShipmentStatus.PENDING, 3)]
    # WHEN it is dispatched
    # THEN it gives up (a 409), and the other writer's state stands
    with pytest.raises(ConcurrentUpdateError):
        dispatch(shipments, pending.order_id)
    assert (shipments.items[pending.order_id].status, shipments.items[pending.order_id].version) == (
        ShipmentStatus.PENDING,
        3,
    )

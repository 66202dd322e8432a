"""The orders use cases' races, against a fake store (no AWS): a replayed place, a cancel that loses a race."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from converge.authz import Caller
from converge.entities import WriteContext
from converge.errors import ConcurrentUpdateError, UnprocessableError
from converge.events import OrderStatus
from orders import domain, service

CUSTOMER = Caller(subject="cust-1", admin=False)


class FakeOrders:
    """Orders in a dict, with conditional writes like the table's; `before_write` lets a test race a writer in."""

    def __init__(self) -> None:
        self.items: dict[str, domain.Order] = {}
        self.before_write: list[Callable[[], object]] = []

    def _race(self) -> None:
        if self.before_write:
            self.before_write.pop(0)()

    def create(self, order: domain.Order) -> domain.Order | None:
        self._race()
        if order.order_id in self.items:
            return self.items[order.order_id]
        self.items[order.order_id] = order
        return None

    def get(self, order_id: str) -> domain.Order | None:
        return self.items.get(order_id)

    def replace_state(self, current: domain.Order, updated: domain.Order) -> domain.Order:
        self._race()
        stored = self.items.get(current.order_id)
        if stored is None or (stored.status, stored.version) != (current.status, current.version):
            raise ConcurrentUpdateError(f"order {current.order_id} changed since it was read")
        self.items[current.order_id] = updated
        return updated

    def record_outcome(
        self, order_id: str, target: OrderStatus, context: WriteContext, reason: str | None, shortages: Sequence[str]
    ) -> bool:
        stored = self.items.get(order_id)
        if stored is None or stored.status not in domain.STATUSES.sources_of(target):
            return False
        self.items[order_id] = domain.transition(stored, target, correlation_id=context.correlation_id, at="t")
        return True


def request(quantity: int = 2) -> domain.PlaceOrderRequest:
    return domain.PlaceOrderRequest.model_validate({"lines": [{"product_id": "p1", "quantity": quantity}]})


def place(orders: FakeOrders, body: domain.PlaceOrderRequest, key: str | None = "k-1") -> tuple[domain.Order, bool]:
    return service.place(orders, body, caller=CUSTOMER, idempotency_key=key, correlation_id="c-1")


def confirm(orders: FakeOrders, order_id: str) -> Callable[[], object]:
    return lambda: orders.record_outcome(order_id, OrderStatus.CONFIRMED, WriteContext("c-2", "t"), None, ())


def test_a_keyed_place_that_loses_the_race_to_its_twin_answers_with_the_stored_order() -> None:
    # GIVEN a keyed request whose twin (a client retry) is stored between our decision and our write
    orders = FakeOrders()
    twin, _ = place(FakeOrders(), request())
    orders.before_write.append(lambda: orders.items.setdefault(twin.order_id, twin))
    # WHEN the request is placed
    order, replayed = place(orders, request())
    # THEN it is a replay of the twin: nothing else is written
    assert replayed
    assert order == twin
    assert list(orders.items) == [twin.order_id]


def test_a_keyed_place_whose_twin_had_another_body_is_refused() -> None:
    # GIVEN a key already used with another body
    orders = FakeOrders()
    place(orders, request(quantity=1))
    # WHEN it is sent again with this body
    # THEN it is refused as unprocessable (422), and the stored order is unchanged
    with pytest.raises(domain.IdempotencyKeyReusedError) as refused:
        place(orders, request(quantity=2))
    assert isinstance(refused.value, UnprocessableError)
    assert next(iter(orders.items.values())).lines[0].quantity == 1


def test_a_cancel_that_loses_one_race_decides_again_on_fresh_state() -> None:
    # GIVEN a pending order, confirmed between the cancel's read and its write
    orders = FakeOrders()
    order, _ = place(orders, request())
    orders.before_write.append(confirm(orders, order.order_id))
    # WHEN the customer cancels
    cancelled = service.cancel(orders, order.order_id, caller=CUSTOMER, correlation_id="c-3")
    # THEN the cancel is decided again on the confirmed order: cancelled at version 3, still remembered confirmed
    assert (cancelled.status, cancelled.version, cancelled.confirmed) == (OrderStatus.CANCELLED, 3, True)
    assert orders.items[order.order_id] == cancelled


def test_a_cancel_that_loses_twice_gives_up_and_the_other_writer_wins() -> None:
    # GIVEN a pending order that another writer changes before each of the cancel's writes
    orders = FakeOrders()
    order, _ = place(orders, request())

    def bump() -> None:
        stored = orders.items[order.order_id]
        orders.items[order.order_id] = stored.model_copy(update={"version": stored.version + 1})

    orders.before_write += [bump, bump]
    # WHEN the customer cancels
    # THEN the cancel gives up (a 409) and the other writer's state stands
    with pytest.raises(ConcurrentUpdateError):
        service.cancel(orders, order.order_id, caller=CUSTOMER, correlation_id="c-3")
    assert (orders.items[order.order_id].status, orders.items[order.order_id].version) == (OrderStatus.PENDING, 3)


def test_another_customers_order_is_as_if_absent() -> None:
    # GIVEN an order of cust-1
    orders = FakeOrders()
    order, _ = place(orders, request())
    # WHEN another customer cancels it
    # THEN it is not found, and nothing changes
    with pytest.raises(domain.OrderNotFoundError, match=f"order {order.order_id} not found"):
        service.cancel(orders, order.order_id, caller=Caller(subject="cust-2", admin=False), correlation_id="c")
    assert orders.items[order.order_id] == order

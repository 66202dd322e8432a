"""Rules of the notifications read models, without AWS: last-writer-wins, back-in-stock, notification keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from converge.errors import MalformedEventError
from converge.projections import PROJECTIONS_BY_NAME, notification_key
from notifications import domain
from tests.support.events import domain_event

LINES = [{"product_id": "p-1", "quantity": 1}]


def order_event(event_type: str, *, version: int = 2, **data: Any) -> Any:
    status = {"OrderConfirmed": "CONFIRMED", "OrderRejected": "REJECTED", "OrderShipped": "SHIPPED"}[event_type]
    payload = {"order_id": "o-1", "customer_id": "c-1", "lines": LINES, "status": status, **data}
    return domain_event(event_type, payload, version=version)


def stock_event(available: int, *, version: int = 1, product_id: str = "p-1") -> Any:
    data = {"product_id": product_id, "on_hand": available + 2, "reserved": 2, "available": available}
    return domain_event("StockUpdated", data, version=version)


# ------------------------------------------------------------------ last-writer-wins
@pytest.mark.parametrize(
    ("incoming", "stored", "expected"),
    [(1, None, "NEWER"), (3, 2, "NEWER"), (2, 2, "SAME"), (1, 2, "OLDER")],
)
def test_only_a_newer_version_or_a_first_sighting_wins(incoming: int, stored: int | None, expected: str) -> None:
    # GIVEN a stored projection version (or none) WHEN a version arrives THEN it is judged by version alone
    assert domain.freshness(incoming, stored) is domain.Freshness[expected]


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30))
def test_applying_versions_in_any_order_ends_at_the_newest(versions: list[int]) -> None:
    # GIVEN any delivery order of versions, duplicates included
    stored: int | None = None
    # WHEN each is applied only if it is newer
    for version in versions:
        if domain.freshness(version, stored) is domain.Freshness.NEWER:
            stored = version
    # THEN the projection holds the newest version
    assert stored == max(versions)


# ------------------------------------------------------------------ back-in-stock transitions
@pytest.mark.parametrize(
    ("previous", "available", "expected"),
    [
        (0, 3, True),  # out of stock -> in stock
        (0, 0, False),  # still out of stock
        (2, 5, False),  # was already in stock
        (4, 0, False),  # went out of stock
        (None, 5, False),  # first sighting: nobody saw it out of stock here
    ],
)
def test_back_in_stock_is_a_transition_from_zero_to_some(previous: int | None, available: int, expected: bool) -> None:
    # GIVEN the availability before a version WHEN the version is applied THEN only 0 -> >0 is a transition
    assert domain.came_back_in_stock(previous, available) is expected


def test_stored_availability_remembers_whether_its_version_was_a_transition() -> None:
    # GIVEN the availability stored at version 4 after it had been 0
    availability = domain.Availability.from_event(stock_event(3, version=4))
    # WHEN it is wrapped with what it held before that version
    stored = domain.StoredAvailability(availability=availability, previous_available=0)
    # THEN a redelivery of version 4 can still tell it was a back-in-stock transition
    assert stored.came_back_in_stock
    assert not domain.StoredAvailability(availability=availability, previous_available=1).came_back_in_stock


def test_availability_is_the_event_state_at_the_entity_version() -> None:
    # GIVEN a StockUpdated event at version 7
    event = stock_event(5, version=7)
    # WHEN it becomes the availability projection
    availability = domain.Availability.from_event(event)
    # THEN it carries the product's state, version and time, keyed by product
    assert availability.as_dict() | {"updated_at": None} == {
        "product_id": "p-1",
        "on_hand": 7,
        "reserved": 2,
        "available": 5,
        "version": 7,
        "updated_at": None,
    }
    assert domain.parse_timestamp(availability.updated_at) == event.metadata.occurred_at
    assert availability.key == ("AVAILABILITY#p-1", "AVAILABILITY")


def test_an_order_event_does_not_feed_the_availability_projection() -> None:
    # GIVEN an order event WHEN it is taken for a stock event THEN it is refused as a routing mistake
    with pytest.raises(MalformedEventError):
        domain.Availability.from_event(order_event("OrderConfirmed"))


# ------------------------------------------------------------------ notification keys
def test_an_order_outcome_has_one_notification_keyed_by_order() -> None:
    # GIVEN the same confirmation built twice (a redelivery or a republish)
    first = domain.order_notification(order_event("OrderConfirmed", version=2))
    again = domain.order_notification(order_event("OrderConfirmed", version=2))
    # THEN both name the same item: writing it twice is writing it once
    assert first.key == again.key == ("CUSTOMER#c-1", "NOTIFICATION#ORDER_CONFIRMED#o-1")
    assert first.reason is None


def test_a_rejection_notification_carries_the_reason() -> None:
    # GIVEN a rejected order
    event = order_event("OrderRejected", reason="insufficient stock", shortages=["p-1"])
    # WHEN its notification is made
    notification = domain.order_notification(event)
    # THEN it is keyed by order and says why
    assert notification.key == ("CUSTOMER#c-1", "NOTIFICATION#ORDER_REJECTED#o-1")
    assert notification.as_dict() == {
        "id": "ORDER_REJECTED#o-1",
        "kind": "ORDER_REJECTED",
        "order_id": "o-1",
        "reason": "insufficient stock",
        "created_at": notification.created_at,
    }


def test_a_shipment_notification_is_keyed_by_order_and_says_shipped() -> None:
    # GIVEN a shipped order, delivered twice
    first = domain.order_notification(order_event("OrderShipped", version=3))
    again = domain.order_notification(order_event("OrderShipped", version=3))
    # THEN both name one ORDER_SHIPPED item of the customer, with no reason (it simply shipped)
    assert first.key == again.key == ("CUSTOMER#c-1", "NOTIFICATION#ORDER_SHIPPED#o-1")
    assert first.as_dict() == {
        "id": "ORDER_SHIPPED#o-1",
        "kind": "ORDER_SHIPPED",
        "order_id": "o-1",
        "created_at": first.created_at,
    }


def test_a_shipment_that_crossed_a_cancellation_tells_the_customer_it_came_too_late() -> None:
    # GIVEN an order shipped after its customer's cancellation crossed the dispatch
    too_late = "cancellation came too late: the parcel had already left the warehouse"
    # WHEN its notification is made
    notification = domain.order_notification(order_event("OrderShipped", version=4, reason=too_late))
    # THEN it carries the order's reason
    assert (notification.kind, notification.reason) == (domain.NotificationKind.ORDER_SHIPPED, too_late)


@pytest.mark.parametrize("reason", [None, "cancellation came too late"])
def test_a_shipped_orders_outcome_and_notification_are_what_the_reconciler_expects(reason: str | None) -> None:
    # GIVEN a shipped order as the orders table holds it, and the OrderShipped it publishes
    order = {
        "order_id": "o-1",
        "customer_id": "c-1",
        "status": "SHIPPED",
        "reason": reason,
        "version": 4,
        "updated_at": "2026-11-28T11:00:00+00:00",
    }
    event = order_event("OrderShipped", version=4, reason=reason)
    # WHEN the projections are made from the event
    outcome = domain.OrderOutcome.from_event(event)
    notification = domain.order_notification(event)
    # THEN they sit where converge.projections expects them and agree with what it expects there
    outcomes, notifications = PROJECTIONS_BY_NAME["order_outcome"], PROJECTIONS_BY_NAME["order_notification"]
    expected_outcome = outcomes.expected(order)[outcome.key]
    assert outcomes.difference(order, expected_outcome, {"pk": outcome.key[0], **outcome.as_dict()}) is None
    assert notification.key == notification_key("c-1", "ORDER_SHIPPED", "o-1")
    expected = notifications.expected(order)[notification.key]
    assert notifications.difference(order, expected, notification.attributes()) is None


def test_a_rejection_watches_each_short_product_once() -> None:
    # GIVEN a rejection listing a product twice
    event = order_event("OrderRejected", reason="short", shortages=["p-1", "p-2", "p-1"])
    # WHEN its watches are made
    watches = domain.watches_for_rejection(event)
    # THEN there is one armed watch per product for the customer
    assert [w.key for w in watches] == [("WATCH#p-1", "CUSTOMER#c-1"), ("WATCH#p-2", "CUSTOMER#c-1")]
    assert all(w.is_armed and w.order_id == "o-1" for w in watches)


def test_back_in_stock_notification_is_keyed_by_product_and_transition_version() -> None:
    # GIVEN a watch and two different back-in-stock transitions of its product
    watch = domain.watches_for_rejection(order_event("OrderRejected", reason="short", shortages=["p-1"]))[0]
    at_5 = domain.Availability.from_event(stock_event(3, version=5))
    at_9 = domain.Availability.from_event(stock_event(1, version=9))
    # WHEN notifications are made for them
    # THEN the same transition always gives the same key, and another transition another key
    assert watch.back_in_stock(at_5).key == watch.back_in_stock(at_5).key
    assert watch.back_in_stock(at_5).key == ("CUSTOMER#c-1", "NOTIFICATION#BACK_IN_STOCK#p-1#5")
    assert watch.back_in_stock(at_9).key != watch.back_in_stock(at_5).key


def test_a_spent_watch_is_not_notified_again() -> None:
    # GIVEN an armed watch and one already notified
    armed = domain.Watch(product_id="p-1", customer_id="c-1", order_id="o-1", armed_at="t")
    spent = domain.Watch(product_id="p-1", customer_id="c-2", order_id="o-2", armed_at="t", notified_version=4)
    # WHEN the watches to notify are chosen THEN only the armed one is
    assert domain.watches_to_notify([armed, spent]) == [armed]


def test_notification_sort_key_round_trips() -> None:
    # GIVEN a back-in-stock notification's sort key WHEN it is split THEN kind and subject come back
    assert domain.split_notification_sk("NOTIFICATION#BACK_IN_STOCK#p-1#5") == (
        domain.NotificationKind.BACK_IN_STOCK,
        "p-1#5",
    )


# ------------------------------------------------------------------ listing
def test_notifications_are_listed_newest_first_and_limited() -> None:
    # GIVEN notifications created at different times, stored in key order
    base = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)

    def made(subject: str, minutes: int) -> Any:
        created = domain.timestamp(base + timedelta(minutes=minutes))
        return domain.Notification("c-1", domain.NotificationKind.ORDER_CONFIRMED, subject, created, order_id=subject)

    notifications = [made("a", 5), made("b", 1), made("c", 9)]
    # WHEN the newest two are asked for
    newest = domain.newest_first(notifications, 2)
    # THEN they come newest first
    assert [n.subject for n in newest] == ["c", "a"]


def test_timestamps_have_a_fixed_width_so_they_sort_as_strings() -> None:
    # GIVEN a time on a whole second and one just after
    whole = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    later = whole + timedelta(microseconds=1)
    # THEN their stored forms sort in time order and parse back
    assert domain.timestamp(whole) < domain.timestamp(later)
    assert len(domain.timestamp(whole)) == len(domain.timestamp(later))
    assert domain.parse_timestamp(domain.timestamp(later)) == later

"""OrdersApiFunction under moto: place (idempotent by key), get and cancel, through the template's handler."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from converge import aws
from converge.envelope import event_from_item
from converge.events import ORDER_EVENT_BY_STATUS, OrderStatus
from tests.support.events import domain_event, http_event, sqs_event_of
from tests.support.stack import FunctionRunner, Stack

API = "OrdersApiFunction"
CONSUMER = "OrdersConsumerFunction"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
LINES = [{"product_id": "sku-1", "quantity": 2}, {"product_id": "sku-2", "quantity": 1}]
STORED_LINES = [{**line, "unit_price": 0} for line in LINES]  # a request without prices: an unpriced order


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


def call(functions: FunctionRunner, event: dict[str, Any]) -> Reply:
    response = functions.invoke(API, event)
    return Reply(response["statusCode"], json.loads(response["body"]), response.get("headers") or {})


def place(
    functions: FunctionRunner,
    body: Any = None,
    *,
    key: str | None = None,
    correlation_id: str | None = None,
    raw_body: str | None = None,
    caller: str = "cust-1",
) -> Reply:
    headers = {}
    if key is not None:
        headers["Idempotency-Key"] = key
    if correlation_id is not None:
        headers["X-Correlation-Id"] = correlation_id
    if body is None and raw_body is None:
        body = {"lines": LINES}
    event = http_event("POST", "/orders", body=body, raw_body=raw_body, headers=headers, caller=caller)
    return call(functions, event)


def get(functions: FunctionRunner, order_id: str, caller: str | None = "cust-1") -> Reply:
    path, params = f"/orders/{order_id}", {"order_id": order_id}
    return call(functions, http_event("GET", path, route="/orders/{order_id}", path_parameters=params, caller=caller))


def cancel(
    functions: FunctionRunner, order_id: str, correlation_id: str | None = None, caller: str = "cust-1"
) -> Reply:
    headers = {"X-Correlation-Id": correlation_id} if correlation_id else None
    return call(
        functions,
        http_event(
            "POST",
            f"/orders/{order_id}/cancel",
            route="/orders/{order_id}/cancel",
            path_parameters={"order_id": order_id},
            headers=headers,
            caller=caller,
        ),
    )


def stored(stack: Stack, order_id: str) -> dict[str, Any] | None:
    return stack.get_item("OrdersTable", f"ORDER#{order_id}", "ORDER")


def assert_publishable(item: dict[str, Any] | None, event_type: str, version: int) -> None:
    """The item is what the stream publisher turns into `event_type` at `version`."""
    assert item is not None
    event = event_from_item(item)
    assert event is not None
    assert (event.event_type, event.metadata.entity_version) == (event_type, version)
    assert event.metadata.correlation_id == item["correlation_id"]


def reservation_outcome(functions: FunctionRunner, order_id: str, event_type: str) -> None:
    """Deliver a reservation outcome to the orders inbox consumer (how orders leave PENDING)."""
    status, extra = ("RESERVED", {}) if event_type == "StockReserved" else ("FAILED", {"reason": "no stock"})
    data = {"order_id": order_id, "lines": LINES, "status": status, **extra}
    result = functions.invoke(CONSUMER, sqs_event_of(domain_event(event_type, data)))
    assert result == {"batchItemFailures": []}


# ----------------------------------------------------------------------------------------------- place
def test_place_order_stores_a_pending_order_at_version_one(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an empty orders table
    # WHEN an order is placed
    reply = place(functions, correlation_id="checkout-1")
    # THEN it is created PENDING at version 1, with its location
    assert reply.status == 201
    order_id = reply.body["order_id"]
    assert reply.headers["Location"] == f"/orders/{order_id}"
    assert (reply.body["status"], reply.body["version"], reply.body["lines"]) == ("PENDING", 1, STORED_LINES)
    # AND the stored item is an OrderPlaced at version 1 that carries the request's correlation id
    item = stored(stack, order_id)
    assert item is not None
    assert (item["status"], item["version"], item["event_type"]) == ("PENDING", 1, "OrderPlaced")
    assert (item["customer_id"], item["lines"], item["correlation_id"]) == ("cust-1", STORED_LINES, "checkout-1")
    assert item["created_at"] == item["updated_at"]
    assert_publishable(item, "OrderPlaced", 1)


def test_without_correlation_header_the_request_id_is_the_correlation_id(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a request without X-Correlation-Id
    event = http_event("POST", "/orders", body={"lines": LINES})
    # WHEN it places an order
    reply = call(functions, event)
    # THEN the API request id is stored as the correlation id
    item = stored(stack, reply.body["order_id"])
    assert item is not None
    assert item["correlation_id"] == event["requestContext"]["requestId"]


def test_without_idempotency_key_every_request_is_a_new_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no Idempotency-Key WHEN the same body is posted twice
    first, second = place(functions), place(functions)
    # THEN two orders exist
    assert (first.status, second.status) == (201, 201)
    assert first.body["order_id"] != second.body["order_id"]
    assert len(stack.scan("OrdersTable")) == 2


def test_replay_with_the_same_key_and_body_returns_the_same_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order placed with an Idempotency-Key
    first = place(functions, key="k-1")
    # WHEN the same body (keys reordered, other spacing) is sent again with the same key
    replay_body = (
        '{ "lines": [{"quantity": 2, "product_id": "sku-1"}, {"quantity": 1, "product_id": "sku-2"}],\n'
        '  "currency": "XXX"}'
    )
    replay = place(functions, key="k-1", raw_body=replay_body)
    # THEN the stored order is returned as a replay (200, Idempotent-Replayed), and nothing new is written
    assert (first.status, replay.status) == (201, 200)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert replay.body == first.body
    items = stack.scan("OrdersTable")
    assert [(i["order_id"], i["version"]) for i in items] == [(first.body["order_id"], 1)]


def test_replay_after_the_order_moved_on_returns_its_current_state(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a keyed order that has since been confirmed
    first = place(functions, key="k-2")
    reservation_outcome(functions, first.body["order_id"], "StockReserved")
    # WHEN the original request is retried
    replay = place(functions, key="k-2")
    # THEN the answer is the order as it is now, and it is not placed again
    assert (replay.status, replay.body["status"], replay.body["version"]) == (200, "CONFIRMED", 2)
    assert len(stack.scan("OrdersTable")) == 1


def test_same_key_with_a_different_body_is_unprocessable(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order placed with an Idempotency-Key
    first = place(functions, key="k-3")
    # WHEN another body is sent with the same key
    other = place(functions, key="k-3", body={"lines": [LINES[0]]})
    # THEN it is refused with 422 and the stored order is unchanged
    assert other.status == 422
    assert first.body["order_id"] in other.body["message"]
    item = stored(stack, first.body["order_id"])
    assert item is not None
    assert (item["lines"], item["version"]) == (STORED_LINES, 1)


def test_same_key_from_another_customer_is_another_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN customer 1 placed an order with key k
    first = place(functions, key="k")
    # WHEN customer 2 uses the same key
    second = place(functions, key="k", caller="cust-2")
    # THEN customer 2 gets a new order of their own
    assert (first.status, second.status) == (201, 201)
    assert first.body["order_id"] != second.body["order_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "cust-1", "lines": LINES}, "customer_id"),  # the customer is the token's, never the body's
        ({"customer_id": 7, "lines": LINES}, "customer_id"),
        ({"customer_id": "cust-1"}, "lines"),
        ({"lines": []}, "lines"),
        ({"lines": "sku-1"}, "lines"),
        ({"lines": [{"product_id": "sku-1", "quantity": 0}]}, "lines.0.quantity"),
        ({"lines": [{"product_id": "sku-1", "quantity": -3}]}, "lines.0.quantity"),
        ({"lines": [{"product_id": "sku-1", "quantity": 10**9}]}, "lines.0.quantity"),
        ({"lines": [{"product_id": "sku-1", "quantity": "2"}]}, "lines.0.quantity"),
        ({"lines": [{"product_id": "sku-1", "quantity": 1.5}]}, "lines.0.quantity"),
        ({"lines": [LINES[0], {"quantity": 1}]}, "lines.1.product_id"),
        ({"lines": [LINES[0], LINES[0]]}, "lines"),
        ({"lines": [{"product_id": f"p{i}", "quantity": 1} for i in range(51)]}, "lines"),
        ({"lines": LINES, "coupon": "FREE"}, "coupon"),
        ([LINES], "body"),
    ],
)
def test_invalid_body_is_a_400_naming_the_field(stack: Stack, functions: FunctionRunner, body: Any, field: str) -> None:
    # GIVEN a body that breaks the contract
    # WHEN it is posted
    reply = place(functions, body=body)
    # THEN the answer is 400 naming the field, and nothing is stored
    assert reply.status == 400
    assert field in [e["field"] for e in reply.body["errors"]]
    assert field in reply.body["message"]
    assert stack.scan("OrdersTable") == []


@pytest.mark.parametrize("raw_body", ["{not json", ""])
def test_non_json_body_is_a_400(stack: Stack, functions: FunctionRunner, raw_body: str) -> None:
    # GIVEN a body that is not a JSON object WHEN it is posted THEN the answer is 400 and nothing is stored
    reply = place(functions, raw_body=raw_body)
    assert reply.status == 400
    assert reply.body["errors"]
    assert stack.scan("OrdersTable") == []


def test_oversized_correlation_id_is_a_400(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a correlation id longer than an event envelope may carry (it could never be published)
    # WHEN an order is placed with it THEN the header is named in a 400 and nothing is stored
    reply = place(functions, correlation_id="c" * 129)
    assert reply.status == 400
    assert "x-correlation-id" in reply.body["message"].lower()
    assert stack.scan("OrdersTable") == []


# ----------------------------------------------------------------------------------------------- get
def test_get_returns_the_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a placed order WHEN it is fetched THEN the answer is the order
    placed = place(functions)
    reply = get(functions, placed.body["order_id"])
    assert (reply.status, reply.body) == (200, placed.body)


def test_get_of_a_missing_order_is_404(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no such order WHEN it is fetched THEN 404
    reply = get(functions, "no-such-order")
    assert reply.status == 404
    assert "no-such-order" in reply.body["message"]


def test_get_with_an_impossible_order_id_is_400(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an id no order can have WHEN it is fetched THEN 400 naming the path parameter
    reply = get(functions, "x" * 65)
    assert reply.status == 400
    assert "order_id" in reply.body["message"]


# ----------------------------------------------------------------------------------------------- cancel
def test_cancel_of_a_pending_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a pending order
    order_id = place(functions).body["order_id"]
    # WHEN it is cancelled
    reply = cancel(functions, order_id, correlation_id="support-1")
    # THEN it is CANCELLED at version 2, stored as an OrderCancelled carrying the cancel's correlation id
    assert (reply.status, reply.body["status"], reply.body["version"]) == (200, "CANCELLED", 2)
    item = stored(stack, order_id)
    assert item is not None
    assert (item["status"], item["version"], item["event_type"]) == ("CANCELLED", 2, "OrderCancelled")
    assert item["correlation_id"] == "support-1"
    assert_publishable(item, "OrderCancelled", 2)


def test_cancel_of_a_confirmed_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a confirmed order (version 2)
    order_id = place(functions).body["order_id"]
    reservation_outcome(functions, order_id, "StockReserved")
    # WHEN it is cancelled
    reply = cancel(functions, order_id)
    # THEN it is CANCELLED at version 3
    assert (reply.status, reply.body["status"], reply.body["version"]) == (200, "CANCELLED", 3)
    assert_publishable(stored(stack, order_id), "OrderCancelled", 3)


def test_cancel_of_a_rejected_order_is_409(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a rejected order
    order_id = place(functions).body["order_id"]
    reservation_outcome(functions, order_id, "StockReservationFailed")
    # WHEN it is cancelled
    reply = cancel(functions, order_id)
    # THEN 409 saying it is REJECTED, and the order is unchanged
    assert (reply.status, reply.body["order_status"]) == (409, "REJECTED")
    item = stored(stack, order_id)
    assert item is not None
    assert (item["status"], item["version"], item["event_type"]) == ("REJECTED", 2, "OrderRejected")


def shipment_dispatched(functions: FunctionRunner, order_id: str) -> None:
    """Deliver shipping's ShipmentDispatched to the orders inbox consumer (how orders become SHIPPED)."""
    data = {"order_id": order_id, "customer_id": "cust-1", "lines": LINES, "status": "DISPATCHED"}
    result = functions.invoke(CONSUMER, sqs_event_of(domain_event("ShipmentDispatched", data)))
    assert result == {"batchItemFailures": []}


def test_cancel_of_a_shipped_order_is_409(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a confirmed order whose parcel was dispatched (SHIPPED, version 3, publishing OrderShipped)
    order_id = place(functions).body["order_id"]
    reservation_outcome(functions, order_id, "StockReserved")
    shipment_dispatched(functions, order_id)
    assert_publishable(stored(stack, order_id), "OrderShipped", 3)
    # WHEN the customer cancels it
    reply = cancel(functions, order_id)
    # THEN 409 in the error shape, saying it is SHIPPED, and the order is unchanged
    assert (reply.status, reply.body["order_status"]) == (409, "SHIPPED")
    assert "SHIPPED" in reply.body["message"]
    item = stored(stack, order_id)
    assert item is not None
    assert (item["status"], item["version"], item["event_type"]) == ("SHIPPED", 3, "OrderShipped")


def test_the_order_view_says_whether_it_was_confirmed(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a placed order
    order_id = place(functions).body["order_id"]
    assert get(functions, order_id).body["confirmed"] is False
    # WHEN it is confirmed and then cancelled
    reservation_outcome(functions, order_id, "StockReserved")
    reply = cancel(functions, order_id)
    # THEN the cancelled order's view and item still say it was confirmed
    assert (reply.body["status"], reply.body["confirmed"]) == ("CANCELLED", True)
    assert get(functions, order_id).body["confirmed"] is True
    assert stored(stack, order_id)["confirmed"] is True  # type: ignore[index]


def test_cancel_twice_is_idempotent(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a cancelled order
    order_id = place(functions).body["order_id"]
    first = cancel(functions, order_id, correlation_id="first")
    # WHEN it is cancelled again
    second = cancel(functions, order_id, correlation_id="second")
    # THEN the answer is the same cancelled order, and nothing was written (no new version, no new event)
    assert (second.status, second.body) == (200, first.body)
    item = stored(stack, order_id)
    assert item is not None
    assert (item["version"], item["correlation_id"]) == (2, "first")


def test_cancel_of_a_missing_order_is_404(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no such order WHEN it is cancelled THEN 404 and nothing is created
    reply = cancel(functions, "no-such-order")
    assert reply.status == 404
    assert stack.scan("OrdersTable") == []


def _race_before_updates(stack: Stack, *writes: tuple[str, int]) -> None:
    """Make another writer set (status, version) on the order just before each of the next UpdateItem calls."""
    client = aws.dynamodb()
    pending = list(writes)

    def write_first(**_: Any) -> None:
        status, version = pending.pop(0)
        if not pending:
            client.meta.events.unregister("before-call.dynamodb.UpdateItem", write_first)
        [item] = stack.scan("OrdersTable")
        event_type = ORDER_EVENT_BY_STATUS[OrderStatus(status)]
        stack.put_item("OrdersTable", {**item, "status": status, "event_type": event_type, "version": version})

    client.meta.events.register("before-call.dynamodb.UpdateItem", write_first)


def test_cancel_racing_a_confirm_rereads_and_cancels_the_confirmed_order(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a pending order, and a confirm that lands between the cancel's read and its write
    order_id = place(functions).body["order_id"]
    _race_before_updates(stack, ("CONFIRMED", 2))
    # WHEN the order is cancelled
    reply = cancel(functions, order_id)
    # THEN the confirm is not lost: the cancel applies on top of it (version 3, not 2)
    assert (reply.status, reply.body["status"], reply.body["version"]) == (200, "CANCELLED", 3)
    assert_publishable(stored(stack, order_id), "OrderCancelled", 3)


def test_cancel_racing_a_rejection_is_409(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a pending order, and a rejection that lands between the cancel's read and its write
    order_id = place(functions).body["order_id"]
    _race_before_updates(stack, ("REJECTED", 2))
    # WHEN the order is cancelled
    reply = cancel(functions, order_id)
    # THEN the re-read sees REJECTED: 409, and the rejection stands
    assert reply.status == 409
    item = stored(stack, order_id)
    assert item is not None
    assert (item["status"], item["version"]) == ("REJECTED", 2)


def test_cancel_losing_two_races_is_409_and_writes_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a pending order that another writer changes before each of the cancel's two attempts
    order_id = place(functions).body["order_id"]
    _race_before_updates(stack, ("CONFIRMED", 2), ("CONFIRMED", 3))
    # WHEN the order is cancelled
    reply = cancel(functions, order_id)
    # THEN the cancel gives up with 409 and the other writer's state stands
    assert reply.status == 409
    item = stored(stack, order_id)
    assert item is not None
    assert (item["status"], item["version"]) == ("CONFIRMED", 3)


def test_write_based_on_a_stale_read_is_refused(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN an order read while PENDING, then confirmed by the consumer
    order_id = place(functions).body["order_id"]
    # the modules the function itself runs with: one import name per module, so the same classes
    from converge.entities import utc_now
    from converge.errors import ConcurrentUpdateError
    from orders import domain
    from orders.store import OrderStore

    store = OrderStore(stack.table("OrdersTable"))
    stale = store.get(order_id)
    assert stale is not None
    reservation_outcome(functions, order_id, "StockReserved")
    # WHEN a cancel computed from the stale read is written
    # THEN the write is refused and the confirmation stands
    with pytest.raises(ConcurrentUpdateError):
        store.replace_state(stale, domain.cancel(stale, correlation_id="c", at=utc_now()))
    item = stored(stack, order_id)
    assert item is not None
    assert (item["status"], item["version"]) == ("CONFIRMED", 2)


# ----------------------------------------------------------------------------------------------- fixtures
def fixture(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{API}.{name}.json").read_text())  # type: ignore[no-any-return]


def test_committed_fixtures_place_get_and_cancel_one_order(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the committed sam-local fixtures (place, get, cancel address the same keyed order)
    # WHEN they are invoked in order, and the place is replayed
    placed = call(functions, fixture("place-order"))
    replayed = call(functions, fixture("place-order"))
    fetched = call(functions, fixture("get-order"))
    cancelled = call(functions, fixture("cancel-order"))
    # THEN the order is placed once, found, and cancelled with the fixture's correlation id
    assert (placed.status, replayed.status, fetched.status, cancelled.status) == (201, 200, 200, 200)
    assert placed.body["order_id"] == fixture("get-order")["pathParameters"]["order_id"]
    assert cancelled.body["status"] == "CANCELLED"
    item = stored(stack, placed.body["order_id"])
    assert item is not None
    assert item["correlation_id"] == fixture("cancel-order")["headers"]["x-correlation-id"]
    assert_publishable(item, "OrderCancelled", 2)


# ----------------------------------------------------------------------------------------------- authorization
def test_another_customers_order_is_not_found_for_reading_or_cancelling(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN an order of customer 1
    placed = place(functions)
    order_id = placed.body["order_id"]
    # WHEN customer 2 reads it or cancels it
    read, cancelled = get(functions, order_id, caller="cust-2"), cancel(functions, order_id, caller="cust-2")
    # THEN both are 404, as for an order that does not exist, and the order is untouched
    assert (read.status, cancelled.status) == (404, 404)
    assert read.body == get(functions, "no-such-order", caller="cust-2").body | {
        "message": f"order {order_id} not found"
    }
    assert stored(stack, order_id)["status"] == "PENDING"  # type: ignore[index]


def test_a_request_without_the_authorizers_claims_is_401_before_its_body_is_read(functions: FunctionRunner) -> None:
    # GIVEN requests that reached the function without a verified token (sam local start-api runs no JWT
    #       authorizer; a route left without one would do the same): a valid one and one with a broken body
    for event in (
        http_event("POST", "/orders", body={"lines": LINES}, caller=None),
        http_event("POST", "/orders", raw_body="{not json", caller=None),
    ):
        # WHEN the function handles it
        reply = call(functions, event)
        # THEN it is 401 in the one error shape, naming the authorization, and nothing else is said
        assert reply.status == 401
        assert reply.body["errors"] == [
            {"field": "authorization", "message": "a valid bearer token is required", "type": "unauthorized"}
        ]

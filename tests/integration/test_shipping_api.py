"""ShippingApiFunction under moto: get a shipment, and dispatch it (idempotent; a cancelled one is a 409)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from converge import aws
from tests.integration.test_shipping_consumer import LINES, published_as, shipment
from tests.support.events import domain_event, http_event, sqs_event_of
from tests.support.stack import FunctionRunner, Stack

API = "ShippingApiFunction"
CONSUMER = "ShippingConsumerFunction"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
VIEW_FIELDS = {"order_id", "customer_id", "lines", "status", "reason", "version", "created_at", "updated_at"}


@dataclass
class Reply:
    """An answer of the API: its status, its JSON body and its headers."""

    status: int
    body: Any
    headers: dict[str, str]

    @classmethod
    def of(cls, response: dict[str, Any]) -> Reply:
        return cls(response["statusCode"], json.loads(response["body"]), response.get("headers") or {})


def call(functions: FunctionRunner, event: dict[str, Any]) -> Reply:
    return Reply.of(functions.invoke(API, event))


def get(functions: FunctionRunner, order_id: str) -> Reply:
    return call(
        functions,
        http_event(
            "GET",
            f"/shipments/{order_id}",
            route="/shipments/{order_id}",
            path_parameters={"order_id": order_id},
            admin=True,
        ),
    )


def dispatch(functions: FunctionRunner, order_id: str, correlation_id: str | None = None) -> Reply:
    headers = {"X-Correlation-Id": correlation_id} if correlation_id is not None else None
    return call(
        functions,
        http_event(
            "POST",
            f"/shipments/{order_id}/dispatch",
            route="/shipments/{order_id}/dispatch",
            path_parameters={"order_id": order_id},
            headers=headers,
            admin=True,  # the warehouse dispatches
        ),
    )


def order_event(functions: FunctionRunner, event_type: str, order_id: str, version: int) -> None:
    """Deliver an order event to the shipping inbox consumer (how shipments are made and cancelled)."""
    status = "CONFIRMED" if event_type == "OrderConfirmed" else "CANCELLED"
    data = {"order_id": order_id, "customer_id": "cust-1", "lines": LINES, "status": status, "confirmed": True}
    result = functions.invoke(CONSUMER, sqs_event_of(domain_event(event_type, data, version=version)))
    assert result == {"batchItemFailures": []}


def pending_shipment(functions: FunctionRunner, order_id: str) -> None:
    order_event(functions, "OrderConfirmed", order_id, 2)


# ----------------------------------------------------------------------------------------------- get
def test_get_returns_the_shipment_view(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a PENDING shipment
    pending_shipment(functions, "o-1")
    # WHEN it is fetched
    reply = get(functions, "o-1")
    # THEN the answer is its view: the state and its own version, not the bookkeeping (order_version, correlation)
    assert reply.status == 200
    assert set(reply.body) == VIEW_FIELDS
    assert (reply.body["order_id"], reply.body["status"], reply.body["version"]) == ("o-1", "PENDING", 1)
    assert (reply.body["customer_id"], reply.body["lines"], reply.body["reason"]) == ("cust-1", LINES, None)


def test_get_of_a_missing_shipment_is_404_in_the_error_shape(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no such shipment WHEN it is fetched THEN 404 whose message names it
    reply = get(functions, "no-such-order")
    assert reply.status == 404
    assert reply.body == {"message": "shipment no-such-order not found"}


@pytest.mark.parametrize("order_id", ["x" * 65, "bad id", "o*1"])
def test_get_with_an_impossible_order_id_is_400(stack: Stack, functions: FunctionRunner, order_id: str) -> None:
    # GIVEN an id no order can have WHEN it is fetched THEN 400 naming the path parameter
    reply = get(functions, order_id)
    assert reply.status == 400
    assert "order_id" in reply.body["message"]
    assert [e["field"] for e in reply.body["errors"]] == ["path.order_id"]


# ----------------------------------------------------------------------------------------------- dispatch
def test_dispatch_of_a_pending_shipment(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a PENDING shipment
    pending_shipment(functions, "o-2")
    # WHEN the warehouse says its parcel left
    reply = dispatch(functions, "o-2", correlation_id="scan-1")
    # THEN it is DISPATCHED at version 2, stored as a ShipmentDispatched carrying the scan's correlation id
    assert (reply.status, reply.body["status"], reply.body["version"]) == (200, "DISPATCHED", 2)
    assert "Idempotent-Replayed" not in reply.headers
    item = shipment(stack, "o-2")
    assert (item["status"], item["version"], item["event_type"]) == ("DISPATCHED", 2, "ShipmentDispatched")
    assert item["updated_at"] > item["created_at"]
    assert published_as(item) == ("ShipmentDispatched", 2, "o-2", "scan-1")
    # AND the view answered is what a GET answers
    assert get(functions, "o-2").body == reply.body


def test_dispatch_twice_is_a_replay(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a dispatched shipment
    pending_shipment(functions, "o-3")
    first = dispatch(functions, "o-3", correlation_id="first")
    # WHEN it is dispatched again
    second = dispatch(functions, "o-3", correlation_id="second")
    # THEN the answer is 200 with the same body, marked as a replay, and nothing was written
    assert (second.status, second.body) == (200, first.body)
    assert second.headers["Idempotent-Replayed"] == "true"
    item = shipment(stack, "o-3")
    assert (item["version"], item["correlation_id"]) == (2, "first")


def test_dispatch_of_a_cancelled_shipment_is_409_naming_its_status(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a shipment cancelled with its order
    pending_shipment(functions, "o-4")
    order_event(functions, "OrderCancelled", "o-4", 3)
    before = shipment(stack, "o-4")
    # WHEN the warehouse tries to dispatch it
    reply = dispatch(functions, "o-4")
    # THEN 409 saying it is CANCELLED, and the shipment is unchanged
    assert reply.status == 409
    assert reply.body["shipment_status"] == "CANCELLED"
    assert "CANCELLED" in reply.body["message"]
    assert shipment(stack, "o-4") == before


def test_dispatch_of_a_missing_shipment_is_404_and_creates_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN no such shipment WHEN it is dispatched THEN 404 and nothing is created
    reply = dispatch(functions, "no-such-order")
    assert reply.status == 404
    assert "no-such-order" in reply.body["message"]
    assert stack.scan("ShipmentsTable") == []


def test_without_correlation_header_the_request_id_is_the_correlation_id(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a PENDING shipment and a dispatch without X-Correlation-Id
    pending_shipment(functions, "o-5")
    event = http_event(
        "POST",
        "/shipments/o-5/dispatch",
        route="/shipments/{order_id}/dispatch",
        path_parameters={"order_id": "o-5"},
        admin=True,
    )
    # WHEN it is dispatched
    assert call(functions, event).status == 200
    # THEN the API request id is stored as the correlation id
    assert shipment(stack, "o-5")["correlation_id"] == event["requestContext"]["requestId"]


def test_oversized_correlation_id_is_a_400(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a correlation id longer than an event envelope may carry WHEN a dispatch carries it
    pending_shipment(functions, "o-6")
    reply = dispatch(functions, "o-6", correlation_id="c" * 129)
    # THEN the header is named in a 400 and the shipment is unchanged
    assert reply.status == 400
    assert "x-correlation-id" in reply.body["message"].lower()
    assert shipment(stack, "o-6")["status"] == "PENDING"


def _race_before_updates(stack: Stack, *writes: tuple[str, int]) -> None:
    """Make another writer set (status, version) on the shipment just before each of the next UpdateItem calls."""
    client = aws.dynamodb()
    pending = list(writes)
    event_types = {"PENDING": "ShipmentCreated", "DISPATCHED": "ShipmentDispatched", "CANCELLED": "ShipmentCancelled"}

    def write_first(**_: Any) -> None:
        status, version = pending.pop(0)
        if not pending:
            client.meta.events.unregister("before-call.dynamodb.UpdateItem", write_first)
        [item] = stack.scan("ShipmentsTable")
        stack.put_item(
            "ShipmentsTable", {**item, "status": status, "event_type": event_types[status], "version": version}
        )

    client.meta.events.register("before-call.dynamodb.UpdateItem", write_first)


def test_dispatch_racing_a_cancellation_rereads_and_is_409(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a PENDING shipment, and a cancellation that lands between the dispatch's read and its write
    pending_shipment(functions, "o-7")
    _race_before_updates(stack, ("CANCELLED", 2))
    # WHEN it is dispatched
    reply = dispatch(functions, "o-7")
    # THEN the re-read sees CANCELLED: 409, and the cancellation stands
    assert (reply.status, reply.body["shipment_status"]) == (409, "CANCELLED")
    item = shipment(stack, "o-7")
    assert (item["status"], item["version"]) == ("CANCELLED", 2)


def test_dispatch_racing_another_dispatch_is_a_replay(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a PENDING shipment, and another dispatch that lands between this dispatch's read and its write
    pending_shipment(functions, "o-8")
    _race_before_updates(stack, ("DISPATCHED", 2))
    # WHEN it is dispatched
    reply = dispatch(functions, "o-8")
    # THEN the re-read sees it dispatched: 200, a replay, version 2 (not 3)
    assert (reply.status, reply.body["status"], reply.body["version"]) == (200, "DISPATCHED", 2)
    assert reply.headers["Idempotent-Replayed"] == "true"


def test_dispatch_losing_two_races_is_409_and_writes_nothing(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a PENDING shipment that another writer changes (keeping it PENDING) before each of the two attempts
    pending_shipment(functions, "o-9")
    _race_before_updates(stack, ("PENDING", 2), ("PENDING", 3))
    # WHEN it is dispatched
    reply = dispatch(functions, "o-9")
    # THEN the dispatch gives up with 409 and the other writer's state stands
    assert reply.status == 409
    assert "changed" in reply.body["message"]
    item = shipment(stack, "o-9")
    assert (item["status"], item["version"]) == ("PENDING", 3)


def test_write_based_on_a_stale_read_is_refused(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN a shipment read while PENDING, then cancelled by the consumer
    pending_shipment(functions, "o-10")
    # the modules the function itself runs with: one import name per module, so the same classes
    from converge.entities import utc_now
    from converge.errors import ConcurrentUpdateError
    from shipping import domain
    from shipping.store import ShipmentStore

    store = ShipmentStore(stack.table("ShipmentsTable"))
    stale = store.get("o-10")
    assert stale is not None
    order_event(functions, "OrderCancelled", "o-10", 3)
    # WHEN a dispatch computed from the stale read is written
    # THEN the write is refused and the cancellation stands
    with pytest.raises(ConcurrentUpdateError):
        store.replace(stale, domain.dispatch(stale, correlation_id="c", at=utc_now()))
    assert (shipment(stack, "o-10")["status"], shipment(stack, "o-10")["version"]) == ("CANCELLED", 2)


# ----------------------------------------------------------------------------------------------- fixtures
def fixture(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{API}.{name}.json").read_text())  # type: ignore[no-any-return]


def test_committed_fixtures_get_and_dispatch_the_fixture_shipment(stack: Stack, functions: FunctionRunner) -> None:
    # GIVEN the shipment the committed OrderConfirmed consumer fixture creates
    consumed = functions.invoke(CONSUMER, json.loads((EVENTS_DIR / f"{CONSUMER}.order-confirmed.json").read_text()))
    assert consumed == {"batchItemFailures": []}
    # WHEN the committed get and dispatch fixtures are invoked, and the dispatch is replayed
    fetched = call(functions, fixture("get-shipment"))
    dispatched = call(functions, fixture("dispatch-shipment"))
    replayed = call(functions, fixture("dispatch-shipment"))
    # THEN the shipment is found PENDING, dispatched once with the fixture's correlation id, then replayed
    assert (fetched.status, fetched.body["status"]) == (200, "PENDING")
    assert fetched.body["order_id"] == fixture("get-shipment")["pathParameters"]["order_id"]
    assert (dispatched.status, dispatched.body["status"], dispatched.body["version"]) == (200, "DISPATCHED", 2)
    assert (replayed.status, replayed.body, replayed.headers["Idempotent-Replayed"]) == (200, dispatched.body, "true")
    order_id = dispatched.body["order_id"]
    correlation_id = fixture("dispatch-shipment")["headers"]["x-correlation-id"]
    assert published_as(shipment(stack, order_id)) == ("ShipmentDispatched", 2, order_id, correlation_id)

"""The storefront end to end: HTTP commands in one service become state in the others.

Runs against localcloud by default, or LocalStack / a deployed AWS stack (tests/e2e/targets.py). Customers place,
read and cancel their own orders; an admin sets stock and dispatches shipments.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.targets import Principal, Principals, Target, eventually

SWEEP = "ReconcilerSweepStateMachine"


def order_status(target: Target, customer: Principal, order_id: str, status: str) -> dict[str, Any] | None:
    reply = target.request("GET", f"/orders/{order_id}", caller=customer)
    return reply.body if reply.status == 200 and reply.body["status"] == status else None


def notification(target: Target, customer: Principal, kind: str, order_id: str) -> dict[str, Any] | None:
    reply = target.request("GET", f"/customers/{customer.subject}/notifications", caller=customer)
    assert reply.status == 200
    found = [n for n in reply.body["notifications"] if n["kind"] == kind and n.get("order_id") == order_id]
    assert len(found) <= 1, f"{kind} for {order_id} notified {len(found)} times"
    return found[0] if found else None


def product(target: Target, caller: Principal, product_id: str) -> dict[str, Any]:
    reply = target.request("GET", f"/products/{product_id}", caller=caller)
    assert reply.status == 200, reply
    return reply.body  # type: ignore[no-any-return]


def set_stock(target: Target, admin: Principal, product_id: str, on_hand: int) -> None:
    reply = target.request("PUT", f"/products/{product_id}/stock", {"on_hand": on_hand}, caller=admin)
    assert reply.status == 200, reply


def place(target: Target, customer: Principal, product_id: str, quantity: int) -> str:
    """An order placed as `customer`: the customer is the token's, never a body field."""
    lines = [{"product_id": product_id, "quantity": quantity}]
    reply = target.request("POST", "/orders", {"lines": lines}, caller=customer)
    assert reply.status == 201, reply
    assert reply.body["customer_id"] == customer.subject
    return str(reply.body["order_id"])


def refusal_type(reply: Any) -> str:
    """The type of the one error in the project's error shape."""
    assert isinstance(reply.body["message"], str), reply
    [error] = reply.body["errors"]
    return str(error["type"])


def test_placed_order_is_confirmed_reserved_and_notified(target: Target, who: Principals, unique: str) -> None:
    # GIVEN a product with 10 in stock
    sku, customer = f"sku-{unique}", who.customer
    set_stock(target, who.admin, sku, 10)
    # WHEN a customer orders 2
    order_id = place(target, customer, sku, 2)
    # THEN the order is confirmed, 2 are reserved, and the customer is told once
    eventually(target, lambda: order_status(target, customer, order_id, "CONFIRMED"), f"order {order_id} CONFIRMED")
    assert product(target, customer, sku)["reserved"] == 2
    eventually(target, lambda: notification(target, customer, "ORDER_CONFIRMED", order_id), "confirmation notified")


def test_order_beyond_stock_is_rejected_with_the_reason(target: Target, who: Principals, unique: str) -> None:
    # GIVEN a product with 1 in stock
    sku, customer = f"sku-{unique}", who.customer
    set_stock(target, who.admin, sku, 1)
    # WHEN a customer orders 5
    order_id = place(target, customer, sku, 5)
    # THEN the order is rejected naming the product, nothing is reserved, and the rejection is notified with it
    rejected = eventually(
        target, lambda: order_status(target, customer, order_id, "REJECTED"), f"order {order_id} REJECTED"
    )
    assert sku in rejected["reason"]
    assert product(target, customer, sku)["reserved"] == 0
    notice = eventually(target, lambda: notification(target, customer, "ORDER_REJECTED", order_id), "rejection")
    assert sku in notice["reason"]


def test_cancelled_order_releases_its_stock(target: Target, who: Principals, unique: str) -> None:
    # GIVEN a confirmed order of 3 out of 5
    sku, customer = f"sku-{unique}", who.customer
    set_stock(target, who.admin, sku, 5)
    order_id = place(target, customer, sku, 3)
    eventually(target, lambda: order_status(target, customer, order_id, "CONFIRMED"), "confirmed")
    # WHEN the customer cancels it
    assert target.request("POST", f"/orders/{order_id}/cancel", caller=customer).status == 200

    # THEN the 3 are released and all 5 are available again
    def released() -> dict[str, Any] | None:
        current = product(target, customer, sku)
        return current if current["reserved"] == 0 else None

    assert eventually(target, released, "reservation released")["available"] == 5


def test_availability_converges_after_a_restock(target: Target, who: Principals, unique: str) -> None:
    # GIVEN a product out of stock, as the availability read model shows
    sku = f"sku-{unique}"
    set_stock(target, who.admin, sku, 0)

    def availability(expected: int) -> dict[str, Any] | None:
        reply = target.request("GET", f"/availability/{sku}", caller=who.customer)
        return reply.body if reply.status == 200 and reply.body["available"] == expected else None

    eventually(target, lambda: availability(0), "availability 0")
    # WHEN an admin restocks it by 7
    restocked = target.request("POST", f"/products/{sku}/stock/adjustments", {"delta": 7}, caller=who.admin)
    assert restocked.status == 200, restocked
    # THEN availability shows 7 at the product's own version
    seen = eventually(target, lambda: availability(7), "availability 7")
    assert seen["version"] == product(target, who.customer, sku)["version"]


def stock_is(
    target: Target, caller: Principal, product_id: str, *, on_hand: int, reserved: int
) -> dict[str, Any] | None:
    stock = product(target, caller, product_id)
    wanted = (on_hand, reserved, on_hand - reserved)
    return stock if (stock["on_hand"], stock["reserved"], stock["available"]) == wanted else None


def shipment_status(target: Target, customer: Principal, order_id: str, status: str) -> dict[str, Any] | None:
    reply = target.request("GET", f"/shipments/{order_id}", caller=customer)
    return reply.body if reply.status == 200 and reply.body["status"] == status else None


def order_with_pending_shipment(target: Target, who: Principals, sku: str, *, on_hand: int, quantity: int) -> str:
    """`sku` stocked with `on_hand` by the admin, and the customer's order of `quantity`, confirmed: its shipment
    was created (PENDING)."""
    set_stock(target, who.admin, sku, on_hand)
    order_id = place(target, who.customer, sku, quantity)
    shipment = f"shipment of {order_id} PENDING"
    eventually(target, lambda: shipment_status(target, who.customer, order_id, "PENDING"), shipment)
    return order_id


def test_a_dispatched_shipment_ships_the_order_consumes_the_stock_and_tells_the_customer(
    target: Target, who: Principals, unique: str
) -> None:
    # GIVEN a confirmed order of 2 (of 10 in stock), whose shipment was created
    sku, customer = f"sku-{unique}", who.customer
    order_id = order_with_pending_shipment(target, who, sku, on_hand=10, quantity=2)
    # WHEN the warehouse (an admin) dispatches it
    dispatched = target.request("POST", f"/shipments/{order_id}/dispatch", caller=who.admin)
    assert (dispatched.status, dispatched.body["status"]) == (200, "DISPATCHED")
    # THEN the order ships, the stock leaves on_hand and reserved together, and the customer is told once
    eventually(target, lambda: order_status(target, customer, order_id, "SHIPPED"), f"order {order_id} SHIPPED")
    eventually(target, lambda: notification(target, customer, "ORDER_SHIPPED", order_id), "shipping notified")
    eventually(target, lambda: stock_is(target, customer, sku, on_hand=8, reserved=0), f"{sku} on_hand 8, reserved 0")
    # AND a shipped order cannot be cancelled any more
    assert target.request("POST", f"/orders/{order_id}/cancel", caller=customer).status == 409


def test_a_cancellation_that_crosses_a_dispatch_loses_to_it(target: Target, who: Principals, unique: str) -> None:
    # GIVEN a confirmed order of 3 (of 10 in stock) with a PENDING shipment
    sku, customer = f"sku-{unique}", who.customer
    order_id = order_with_pending_shipment(target, who, sku, on_hand=10, quantity=3)
    # WHEN the customer cancels and the warehouse dispatches, each accepted before either service hears of the other
    assert target.request("POST", f"/orders/{order_id}/cancel", caller=customer).status == 200
    assert target.request("POST", f"/shipments/{order_id}/dispatch", caller=who.admin).status == 200
    # THEN dispatch wins: the order ends SHIPPED, told as too late to cancel, and the stock left exactly once
    shipped = eventually(
        target, lambda: order_status(target, customer, order_id, "SHIPPED"), f"order {order_id} SHIPPED"
    )
    assert "too late" in (shipped.get("reason") or "")
    eventually(target, lambda: notification(target, customer, "ORDER_SHIPPED", order_id), "shipping notified")
    assert shipment_status(target, customer, order_id, "DISPATCHED") is not None
    eventually(target, lambda: stock_is(target, customer, sku, on_hand=7, reserved=0), f"{sku} on_hand 7, reserved 0")


# ------------------------------------------------------------------------------------------ authorization
def test_a_request_without_a_token_is_refused_and_changes_nothing(target: Target, who: Principals, unique: str) -> None:
    # GIVEN a product no one has stocked yet
    sku = f"sku-{unique}"
    # WHEN its stock is set, and an order placed, with no token at all
    refused = [
        target.request("PUT", f"/products/{sku}/stock", {"on_hand": 5}, caller=None),
        target.request("POST", "/orders", {"lines": [{"product_id": sku, "quantity": 1}]}, caller=None),
    ]
    # THEN both are 401: on localcloud and AWS from the JWT authorizer, before any function runs; on LocalStack,
    # whose community build runs no authorizer, from the function itself, which finds no claims
    for reply in refused:
        assert reply.status == 401, reply
        if target.name == "localstack":
            assert refusal_type(reply) == "unauthorized"
        else:
            assert reply.body == {"message": "Unauthorized"}
    # AND the product was not created
    assert target.request("GET", f"/products/{sku}", caller=who.admin).status == 404


def test_another_customers_order_is_not_found_to_them(target: Target, who: Principals, unique: str) -> None:
    # GIVEN a customer's confirmed order
    sku, customer, other = f"sku-{unique}", who.customer, who.other_customer
    set_stock(target, who.admin, sku, 5)
    order_id = place(target, customer, sku, 1)
    eventually(target, lambda: order_status(target, customer, order_id, "CONFIRMED"), f"order {order_id} CONFIRMED")
    # WHEN another customer reads it, cancels it, and reads its shipment and the owner's notifications
    replies = {
        "order": target.request("GET", f"/orders/{order_id}", caller=other),
        "cancel": target.request("POST", f"/orders/{order_id}/cancel", caller=other),
        "shipment": target.request("GET", f"/shipments/{order_id}", caller=other),
        "notifications": target.request("GET", f"/customers/{customer.subject}/notifications", caller=other),
    }
    # THEN each is 404 (its existence is not revealed), and the order is still the owner's, confirmed
    assert {what: reply.status for what, reply in replies.items()} == dict.fromkeys(replies, 404)
    target.settle()
    assert order_status(target, customer, order_id, "CONFIRMED") is not None


def test_a_customer_cannot_set_stock_or_dispatch(target: Target, who: Principals, unique: str) -> None:
    # GIVEN a product with 4 in stock and a customer's order of it with a PENDING shipment
    sku, customer = f"sku-{unique}", who.customer
    order_id = order_with_pending_shipment(target, who, sku, on_hand=4, quantity=1)
    # WHEN the customer sets the stock, adjusts it, and dispatches their own shipment
    replies = [
        target.request("PUT", f"/products/{sku}/stock", {"on_hand": 100}, caller=customer),
        target.request("POST", f"/products/{sku}/stock/adjustments", {"delta": 100}, caller=customer),
        target.request("POST", f"/shipments/{order_id}/dispatch", caller=customer),
    ]
    # THEN each is 403 "forbidden", and neither the stock nor the shipment moved
    for reply in replies:
        assert (reply.status, refusal_type(reply)) == (403, "forbidden"), reply
    target.settle()
    assert stock_is(target, customer, sku, on_hand=4, reserved=1) is not None
    assert shipment_status(target, customer, order_id, "PENDING") is not None


# ------------------------------------------------------------------------------------------ reconciliation
def availability_is(target: Target, caller: Principal, product_id: str, stock: dict[str, Any]) -> dict[str, Any] | None:
    """The product's availability, if it shows `stock`'s numbers at `stock`'s version."""
    reply = target.request("GET", f"/availability/{product_id}", caller=caller)
    fields = ("on_hand", "reserved", "available", "version")
    if reply.status != 200 or any(reply.body[name] != stock[name] for name in fields):
        return None
    return reply.body  # type: ignore[no-any-return]


def test_one_full_sweep_repairs_an_availability_written_wrong(target: Target, who: Principals, unique: str) -> None:
    # GIVEN a product with 6 in stock and a confirmed order of 2, its availability settled at the product's version
    sku, customer = f"sku-{unique}", who.customer
    set_stock(target, who.admin, sku, 6)
    order_id = place(target, customer, sku, 2)
    eventually(target, lambda: order_status(target, customer, order_id, "CONFIRMED"), f"order {order_id} CONFIRMED")
    stock = eventually(target, lambda: stock_is(target, customer, sku, on_hand=6, reserved=2), f"{sku} reserved 2")
    eventually(target, lambda: availability_is(target, customer, sku, stock), f"availability of {sku} as the product")
    # AND no sweep running (a new stack's first scheduled pass starts one: this scenario's must be its own)
    eventually(target, lambda: not target.running_executions(SWEEP), "no sweep running")
    # WHEN a consumer bug writes the availability wrong at that same version, straight into its table
    key = {"pk": f"AVAILABILITY#{sku}", "sk": "AVAILABILITY"}
    written = target.get_item("NotificationsTable", key)
    assert written is not None
    assert written["version"] == stock["version"], written
    target.put_item("NotificationsTable", {**written, "on_hand": 500, "available": 498})
    wrong = {**stock, "on_hand": 500, "available": 498}
    assert availability_is(target, customer, sku, wrong) is not None
    # AND the full sweep's state machine runs once, as its daily schedule starts it
    sweep = target.run_state_machine(SWEEP, {"reason": "e2e"})
    # THEN the execution succeeded, and its report (this sweep's) found the availability different and corrected it
    assert sweep.status == "SUCCEEDED", sweep
    report = sweep.output
    assert (report["status"], report["mode"], report["mode_reason"]) == ("SUCCEEDED", "full", "e2e"), report
    assert report["found"]["availability"] >= 1, report
    assert report["differences"]["different"] >= 1, report
    assert report["corrections"] >= 1, report
    # AND the availability converges to the product again
    eventually(target, lambda: availability_is(target, customer, sku, stock), f"availability of {sku} repaired")

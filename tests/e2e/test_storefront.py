"""The storefront end to end: HTTP commands in one service become state in the others.

Runs against localcloud by default, or LocalStack / a deployed AWS stack (tests/e2e/targets.py).
"""

from __future__ import annotations

from typing import Any

from tests.e2e.targets import Target, eventually


def order_status(target: Target, order_id: str, status: str) -> dict[str, Any] | None:
    reply = target.request("GET", f"/orders/{order_id}")
    return reply.body if reply.status == 200 and reply.body["status"] == status else None


def notification(target: Target, customer: str, kind: str, order_id: str) -> dict[str, Any] | None:
    reply = target.request("GET", f"/customers/{customer}/notifications")
    assert reply.status == 200
    found = [n for n in reply.body["notifications"] if n["kind"] == kind and n.get("order_id") == order_id]
    assert len(found) <= 1, f"{kind} for {order_id} notified {len(found)} times"
    return found[0] if found else None


def product(target: Target, product_id: str) -> dict[str, Any]:
    reply = target.request("GET", f"/products/{product_id}")
    assert reply.status == 200, reply
    return reply.body  # type: ignore[no-any-return]


def place(target: Target, customer: str, product_id: str, quantity: int) -> str:
    reply = target.request(
        "POST", "/orders", {"customer_id": customer, "lines": [{"product_id": product_id, "quantity": quantity}]}
    )
    assert reply.status == 201, reply
    return str(reply.body["order_id"])


def test_placed_order_is_confirmed_reserved_and_notified(target: Target, unique: str) -> None:
    # GIVEN a product with 10 in stock
    sku, customer = f"sku-{unique}", f"cust-{unique}"
    assert target.request("PUT", f"/products/{sku}/stock", {"on_hand": 10}).status == 200
    # WHEN a customer orders 2
    order_id = place(target, customer, sku, 2)
    # THEN the order is confirmed, 2 are reserved, and the customer is told once
    eventually(target, lambda: order_status(target, order_id, "CONFIRMED"), f"order {order_id} CONFIRMED")
    assert product(target, sku)["reserved"] == 2
    eventually(target, lambda: notification(target, customer, "ORDER_CONFIRMED", order_id), "confirmation notified")


def test_order_beyond_stock_is_rejected_with_the_reason(target: Target, unique: str) -> None:
    # GIVEN a product with 1 in stock
    sku, customer = f"sku-{unique}", f"cust-{unique}"
    assert target.request("PUT", f"/products/{sku}/stock", {"on_hand": 1}).status == 200
    # WHEN a customer orders 5
    order_id = place(target, customer, sku, 5)
    # THEN the order is rejected naming the product, nothing is reserved, and the rejection is notified with it
    rejected = eventually(target, lambda: order_status(target, order_id, "REJECTED"), f"order {order_id} REJECTED")
    assert sku in rejected["reason"]
    assert product(target, sku)["reserved"] == 0
    notice = eventually(target, lambda: notification(target, customer, "ORDER_REJECTED", order_id), "rejection")
    assert sku in notice["reason"]


def test_cancelled_order_releases_its_stock(target: Target, unique: str) -> None:
    # GIVEN a confirmed order of 3 out of 5
    sku, customer = f"sku-{unique}", f"cust-{unique}"
    assert target.request("PUT", f"/products/{sku}/stock", {"on_hand": 5}).status == 200
    order_id = place(target, customer, sku, 3)
    eventually(target, lambda: order_status(target, order_id, "CONFIRMED"), "confirmed")
    # WHEN the customer cancels it
    assert target.request("POST", f"/orders/{order_id}/cancel").status == 200

    # THEN the 3 are released and all 5 are available again
    def released() -> dict[str, Any] | None:
        current = product(target, sku)
        return current if current["reserved"] == 0 else None

    assert eventually(target, released, "reservation released")["available"] == 5


def test_availability_converges_after_a_restock(target: Target, unique: str) -> None:
    # GIVEN a product out of stock, as the availability read model shows
    sku = f"sku-{unique}"
    assert target.request("PUT", f"/products/{sku}/stock", {"on_hand": 0}).status == 200

    def availability(expected: int) -> dict[str, Any] | None:
        reply = target.request("GET", f"/availability/{sku}")
        return reply.body if reply.status == 200 and reply.body["available"] == expected else None

    eventually(target, lambda: availability(0), "availability 0")
    # WHEN it is restocked by 7
    assert target.request("POST", f"/products/{sku}/stock/adjustments", {"delta": 7}).status == 200
    # THEN availability shows 7 at the product's own version
    seen = eventually(target, lambda: availability(7), "availability 7")
    assert seen["version"] == product(target, sku)["version"]


def stock_is(target: Target, product_id: str, *, on_hand: int, reserved: int) -> dict[str, Any] | None:
    stock = product(target, product_id)
    wanted = (on_hand, reserved, on_hand - reserved)
    return stock if (stock["on_hand"], stock["reserved"], stock["available"]) == wanted else None


def shipment_status(target: Target, order_id: str, status: str) -> dict[str, Any] | None:
    reply = target.request("GET", f"/shipments/{order_id}")
    return reply.body if reply.status == 200 and reply.body["status"] == status else None


def test_a_dispatched_shipment_ships_the_order_consumes_the_stock_and_tells_the_customer(
    target: Target, unique: str
) -> None:
    # GIVEN a confirmed order of 2 (of 10 in stock), whose shipment was created
    sku, customer = f"sku-{unique}", f"cust-{unique}"
    assert target.request("PUT", f"/products/{sku}/stock", {"on_hand": 10}).status == 200
    order_id = place(target, customer, sku, 2)
    eventually(target, lambda: shipment_status(target, order_id, "PENDING"), f"shipment of {order_id} PENDING")
    # WHEN the warehouse dispatches it
    dispatched = target.request("POST", f"/shipments/{order_id}/dispatch")
    assert (dispatched.status, dispatched.body["status"]) == (200, "DISPATCHED")
    # THEN the order ships, the stock leaves on_hand and reserved together, and the customer is told once
    eventually(target, lambda: order_status(target, order_id, "SHIPPED"), f"order {order_id} SHIPPED")
    eventually(target, lambda: notification(target, customer, "ORDER_SHIPPED", order_id), "shipping notified")
    eventually(target, lambda: stock_is(target, sku, on_hand=8, reserved=0), f"{sku} on_hand 8, reserved 0")
    # AND a shipped order cannot be cancelled any more
    assert target.request("POST", f"/orders/{order_id}/cancel").status == 409


def test_a_cancellation_that_crosses_a_dispatch_loses_to_it(target: Target, unique: str) -> None:
    # GIVEN a confirmed order of 3 (of 10 in stock) with a PENDING shipment
    sku, customer = f"sku-{unique}", f"cust-{unique}"
    assert target.request("PUT", f"/products/{sku}/stock", {"on_hand": 10}).status == 200
    order_id = place(target, customer, sku, 3)
    eventually(target, lambda: shipment_status(target, order_id, "PENDING"), f"shipment of {order_id} PENDING")
    # WHEN the customer cancels and the warehouse dispatches, each accepted before either service hears of the other
    assert target.request("POST", f"/orders/{order_id}/cancel").status == 200
    assert target.request("POST", f"/shipments/{order_id}/dispatch").status == 200
    # THEN dispatch wins: the order ends SHIPPED, told as too late to cancel, and the stock left exactly once
    shipped = eventually(target, lambda: order_status(target, order_id, "SHIPPED"), f"order {order_id} SHIPPED")
    assert "too late" in (shipped.get("reason") or "")
    eventually(target, lambda: notification(target, customer, "ORDER_SHIPPED", order_id), "shipping notified")
    assert shipment_status(target, order_id, "DISPATCHED") is not None
    eventually(target, lambda: stock_is(target, sku, on_hand=7, reserved=0), f"{sku} on_hand 7, reserved 0")

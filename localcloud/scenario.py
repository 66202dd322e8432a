"""The storefront scenario `demo` and `chaos` both run: stock, orders, cancellations, restocks, dispatches, and
cancellations that cross a dispatch.

Operations go through the HTTP API only (what a client and the warehouse can do). A crossing cancels a confirmed
order and dispatches its shipment back to back, before either service hears of the other: both are accepted, and
the rule "dispatch wins" (docs/CONSISTENCY.md) must bring all four services to the same end whatever order the
events then arrive in.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# (method, path, body) -> (status, parsed JSON body or None)
Caller = Callable[[str, str, Any], tuple[int, Any]]


@dataclass(frozen=True)
class Mix:
    """How often each follow-up comes after a placed order (the rest: none), and the sizes of things."""

    cancel: float = 0.10
    restock: float = 0.05
    dispatch: float = 0.30  # dispatch the shipment of an order placed earlier
    cross: float = 0.03  # cancel an order placed earlier and dispatch its shipment, back to back
    stock: tuple[int, int] = (20, 80)
    restock_delta: tuple[int, int] = (5, 30)
    quantity: tuple[int, int] = (1, 4)
    customers: int = 100


@dataclass
class Scenario:
    """A seeded sequence of operations over `products` products and `orders` orders."""

    rng: random.Random
    products: int
    orders: int
    mix: Mix = field(default_factory=Mix)
    placed: list[str] = field(default_factory=list)
    responses: Counter[str] = field(default_factory=Counter)  # "<operation> <status>" -> count
    crossings: int = 0  # crossings in which both the cancellation and the dispatch were accepted

    @property
    def product_ids(self) -> list[str]:
        return [f"p-{i:04d}" for i in range(self.products)]

    def operations(self) -> list[tuple[str, Any]]:
        ops: list[tuple[str, Any]] = [("set_stock", p) for p in self.product_ids]
        for _ in range(self.orders):
            ops.append(("place_order", None))
            roll, mix = self.rng.random(), self.mix
            for name, share in (("cancel_order", mix.cancel), ("restock", mix.restock), ("cross", mix.cross)):
                if roll < share:
                    ops.append((name, None))
                    break
                roll -= share
            if self.rng.random() < mix.dispatch:
                ops.append(("dispatch", None))
        return ops

    def run(self, kind: str, argument: Any, call: Caller) -> None:
        """Run one operation through `call`, counting its responses."""
        rng, mix = self.rng, self.mix
        requests: list[tuple[str, str, str, Any]] = []  # (operation, method, path, body)
        if kind == "set_stock":
            requests.append((kind, "PUT", f"/products/{argument}/stock", {"on_hand": rng.randint(*mix.stock)}))
        elif kind == "place_order":
            chosen = rng.sample(self.product_ids, k=min(self.products, rng.randint(1, 3)))
            body = {
                "customer_id": f"c-{rng.randint(0, mix.customers - 1):03d}",
                "lines": [{"product_id": p, "quantity": rng.randint(*mix.quantity)} for p in chosen],
            }
            status, placed = call("POST", "/orders", body)
            self.responses[f"{kind} {status}"] += 1
            if status == 201 and isinstance(placed, dict):
                self.placed.append(str(placed["order_id"]))
            return
        elif kind == "restock":
            path = f"/products/{rng.choice(self.product_ids)}/stock/adjustments"
            requests.append((kind, "POST", path, {"delta": rng.randint(*mix.restock_delta)}))
        elif self.placed and kind in ("cancel_order", "dispatch", "cross"):
            order_id = rng.choice(self.placed)
            if kind in ("cancel_order", "cross"):
                operation = "cancel_order" if kind == "cancel_order" else "cross_cancel"
                requests.append((operation, "POST", f"/orders/{order_id}/cancel", None))
            if kind in ("dispatch", "cross"):
                operation = "dispatch" if kind == "dispatch" else "cross_dispatch"
                requests.append((operation, "POST", f"/shipments/{order_id}/dispatch", None))
        accepted = 0
        for operation, method, path, body in requests:
            status, _ = call(method, path, body)
            self.responses[f"{operation} {status}"] += 1
            accepted += status == 200
        if kind == "cross" and accepted == 2:
            self.crossings += 1

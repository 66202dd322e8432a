"""The storefront scenario `demo` and `chaos` both run: stock, orders, cancellations, restocks, dispatches, and
cancellations that cross a dispatch.

Operations go through the HTTP API only, each sent with the token of who may send it (the API's JWT authorizer and
the handlers check): a customer places an order, and only that customer cancels it; the warehouse, an admin, sets
stock, restocks and dispatches shipments. A crossing cancels a confirmed order and dispatches its shipment back to
back, before either service hears of the other: both are accepted, and the rule "dispatch wins"
(docs/CONSISTENCY.md) must bring all four services to the same end whatever order the events then arrive in.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud


@dataclass(frozen=True)
class Principal:
    """Who sends a request: a customer (`subject` is the customer id, the token's sub) or an admin."""

    subject: str
    admin: bool = False


WAREHOUSE = Principal("warehouse", admin=True)  # sets stock, restocks, dispatches

# (who, method, path, body) -> (status, parsed JSON body or None)
Caller = Callable[[Principal, str, str, Any], tuple[int, Any]]


class Tokens:
    """A token per principal from `issue` (`LocalCloud.token`), reused until half its lifetime has passed: one RS256
    signature per principal, not one per request."""

    def __init__(self, issue: Callable[..., str], lifetime: int = 3600) -> None:
        self.issue = issue
        self.lifetime = lifetime
        self._issued: dict[Principal, tuple[str, float]] = {}

    def __call__(self, who: Principal) -> str:
        token, renew_at = self._issued.get(who, ("", 0.0))
        if time.time() >= renew_at:
            token = self.issue(who.subject, admin=who.admin, expires_in=self.lifetime)
            self._issued[who] = token, time.time() + self.lifetime / 2
        return token


def api_caller(cloud: LocalCloud) -> Caller:
    """A Caller that sends through `cloud`'s HTTP API with the token of who calls."""
    tokens = Tokens(cloud.token)

    def call(who: Principal, method: str, path: str, body: Any) -> tuple[int, Any]:
        response = cloud.http(method, path, body=body, token=tokens(who))
        return response.status, response.json() if response.status < 300 else None

    return call


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
    customer_of: dict[str, Principal] = field(default_factory=dict)  # placed order id -> the customer who placed it
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
        requests: list[tuple[str, Principal, str, str, Any]] = []  # (operation, who, method, path, body)
        if kind == "set_stock":
            stock = {"on_hand": rng.randint(*mix.stock)}
            requests.append((kind, WAREHOUSE, "PUT", f"/products/{argument}/stock", stock))
        elif kind == "place_order":
            chosen = rng.sample(self.product_ids, k=min(self.products, rng.randint(1, 3)))
            customer = Principal(f"c-{rng.randint(0, mix.customers - 1):03d}")
            body = {"lines": [{"product_id": p, "quantity": rng.randint(*mix.quantity)} for p in chosen]}
            status, placed = call(customer, "POST", "/orders", body)
            self.responses[f"{kind} {status}"] += 1
            if status == 201 and isinstance(placed, dict):
                self.placed.append(str(placed["order_id"]))
                self.customer_of[str(placed["order_id"])] = customer
            return
        elif kind == "restock":
            path = f"/products/{rng.choice(self.product_ids)}/stock/adjustments"
            requests.append((kind, WAREHOUSE, "POST", path, {"delta": rng.randint(*mix.restock_delta)}))
        elif self.placed and kind in ("cancel_order", "dispatch", "cross"):
            order_id = rng.choice(self.placed)
            if kind in ("cancel_order", "cross"):
                operation = "cancel_order" if kind == "cancel_order" else "cross_cancel"
                owner = self.customer_of[order_id]
                requests.append((operation, owner, "POST", f"/orders/{order_id}/cancel", None))
            if kind in ("dispatch", "cross"):
                operation = "dispatch" if kind == "dispatch" else "cross_dispatch"
                requests.append((operation, WAREHOUSE, "POST", f"/shipments/{order_id}/dispatch", None))
        accepted = 0
        for operation, who, method, path, body in requests:
            status, _ = call(who, method, path, body)
            self.responses[f"{operation} {status}"] += 1
            accepted += status == 200
        if kind == "cross" and accepted == 2:
            self.crossings += 1

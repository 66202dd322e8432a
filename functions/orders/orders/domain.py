"""The rules of the orders service: the status machine (as data), placing and cancelling orders. No boto3.

Status machine: PENDING -> CONFIRMED | REJECTED; PENDING | CONFIRMED -> CANCELLED; CONFIRMED | CANCELLED ->
SHIPPED (dispatch wins). Nothing else moves, so a late or duplicate reservation outcome or dispatch can never move
an order backwards.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from converge.errors import NotFoundError, UnprocessableError
from converge.events import (
    NO_CURRENCY,
    ORDER_EVENT_BY_STATUS,
    Currency,
    Identifier,
    MinorUnits,
    OrderLine,
    OrderStatus,
    PricedOrderLine,
)
from converge.status import StatusMachine
from converge.upcast import priced_order

# order_id = uuid5(IDEMPOTENCY_NAMESPACE, "<customer_id>:<Idempotency-Key>"): a retried POST addresses the same item.
IDEMPOTENCY_NAMESPACE = uuid.UUID("3b8f2d4c-7e61-4a0f-9c25-1d6e8a4b7f30")

MAX_LINES = 50

# The status machine as data: status -> the statuses it may move to.
STATUSES = StatusMachine(
    "order",
    {
        OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED}),
        OrderStatus.CONFIRMED: frozenset({OrderStatus.CANCELLED, OrderStatus.SHIPPED}),
        OrderStatus.REJECTED: frozenset(),
        # A dispatch that crossed the cancellation wins: the parcel has left (docs/CONSISTENCY.md).
        OrderStatus.CANCELLED: frozenset({OrderStatus.SHIPPED}),
        OrderStatus.SHIPPED: frozenset(),
    },
)

# Inventory's reservation outcome (event type) -> the status it moves a PENDING order to.
RESERVATION_OUTCOMES: Mapping[str, OrderStatus] = {
    "StockReserved": OrderStatus.CONFIRMED,
    "StockReservationFailed": OrderStatus.REJECTED,
}


# The reason a shipped order keeps when its dispatch crossed (and so overrides) the customer's cancellation.
SHIPPED_AFTER_CANCELLATION = "cancellation came too late: the parcel had already left the warehouse"


class OrderNotFoundError(NotFoundError):
    """No order has this id (or none the caller may see): 404."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} not found")


class IdempotencyKeyReusedError(UnprocessableError):
    """An Idempotency-Key was sent again with a different body: 422."""


# ----------------------------------------------------------------------------------------------- requests
class RequestedLine(OrderLine):
    # Strict: "5" or 5.0 or true is not a quantity; the API says so instead of guessing.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # The price of one unit in minor units of the order's `currency` (1999 = 19.99 EUR); 0 if not priced.
    unit_price: MinorUnits = 0


class PlaceOrderRequest(BaseModel):
    """Body of POST /orders. The customer is the caller (the token's sub), never a body field: a body naming one
    is refused (extra fields are forbidden)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    lines: Annotated[list[RequestedLine], Field(min_length=1, max_length=MAX_LINES)]
    # ISO 4217 code of the lines' unit prices; "XXX" (no currency, the default) is an order without prices.
    currency: Currency = NO_CURRENCY

    @model_validator(mode="after")
    def _prices_have_a_currency(self) -> PlaceOrderRequest:
        if self.currency == NO_CURRENCY and any(line.unit_price for line in self.lines):
            raise ValueError("unit prices need a currency (an ISO 4217 code other than XXX)")
        return self

    @property
    def priced(self) -> bool:
        return self.currency != NO_CURRENCY

    @field_validator("lines")
    @classmethod
    def _one_line_per_product(cls, lines: list[RequestedLine]) -> list[RequestedLine]:
        # Inventory reserves all lines in one transaction, which cannot touch the same product twice.
        seen: set[str] = set()
        for line in lines:
            if line.product_id in seen:
                raise ValueError(f"product {line.product_id} appears in more than one line")
            seen.add(line.product_id)
        return lines

    def request_hash(self, customer_id: str) -> str:
        """SHA-256 of the canonical request (its customer and body): key order, whitespace and line order do not
        change it."""
        # An unpriced body hashes as it did before orders had prices, so a retry across that deploy still matches.
        canonical: dict[str, Any] = {
            "customer_id": customer_id,
            "lines": sorted(
                (
                    {"product_id": line.product_id, "quantity": line.quantity}
                    | ({"unit_price": line.unit_price} if self.priced else {})
                    for line in self.lines
                ),
                key=lambda line: str(line["product_id"]),
            ),
        }
        if self.priced:
            canonical["currency"] = self.currency
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


def order_id_for(customer_id: str, idempotency_key: str | None) -> str:
    """Deterministic id for a keyed request (so the put is the idempotency record), a fresh one otherwise."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{customer_id}:{idempotency_key}"))


# ----------------------------------------------------------------------------------------------- the order
class Order(BaseModel):
    """An order as stored (state plus the attributes every entity write carries)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    order_id: Identifier
    customer_id: Identifier
    currency: Currency
    lines: tuple[PricedOrderLine, ...]
    status: OrderStatus
    reason: str | None = None
    shortages: tuple[str, ...] = ()
    created_at: str
    request_hash: str | None = None
    version: Annotated[int, Field(ge=1)]
    correlation_id: str
    updated_at: str
    # Set by the CONFIRMED transition and kept afterwards: an OrderCancelled built from the item then tells
    # inventory that shipping (not the cancellation) decides about the stock (converge.events.OrderData).
    confirmed: bool = False

    @model_validator(mode="before")
    @classmethod
    def _priced(cls, data: Any) -> Any:
        # An item written before orders had prices reads as the v1 -> v2 upcast reads its event (no currency).
        return priced_order(data) if isinstance(data, dict) else data

    @property
    def event_type(self) -> str:
        return ORDER_EVENT_BY_STATUS[self.status]

    def state(self) -> dict[str, Any]:
        """The attributes of the stored item besides its key (event_type included, None values dropped)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["lines"] = [dict(line) for line in data["lines"]]
        data["shortages"] = list(data["shortages"])
        data["event_type"] = self.event_type
        if not self.confirmed:
            del data["confirmed"]  # written once true, never as false: an unconfirmed order has no such attribute
        return data

    def view(self) -> dict[str, Any]:
        """What the API returns."""
        data = self.model_dump(mode="json", exclude={"request_hash", "correlation_id"})
        data["shortages"] = list(data["shortages"])
        return data


def place_order(request: PlaceOrderRequest, *, customer_id: str, order_id: str, correlation_id: str, at: str) -> Order:
    """A new PENDING order of `customer_id` at version 1."""
    return Order(
        order_id=order_id,
        customer_id=customer_id,
        currency=request.currency,
        lines=tuple(
            PricedOrderLine(product_id=line.product_id, quantity=line.quantity, unit_price=line.unit_price)
            for line in request.lines
        ),
        status=OrderStatus.PENDING,
        created_at=at,
        request_hash=request.request_hash(customer_id),
        version=1,
        correlation_id=correlation_id,
        updated_at=at,
    )


def check_replay(existing: Order, request: PlaceOrderRequest) -> Order:
    """The stored order a replayed keyed request stands for, or IdempotencyKeyReusedError if the body differs."""
    if existing.request_hash != request.request_hash(existing.customer_id):
        raise IdempotencyKeyReusedError(
            f"Idempotency-Key already used for order {existing.order_id} with a different body"
        )
    return existing


def transition(
    order: Order,
    target: OrderStatus,
    *,
    correlation_id: str,
    at: str,
    reason: str | None = None,
    shortages: Sequence[str] = (),
) -> Order:
    """The order moved to `target` (version + 1), or TransitionNotAllowedError (converge.errors)."""
    STATUSES.check(order.order_id, order.status, target)
    return order.model_copy(
        update={
            "status": target,
            "reason": reason if reason is not None else order.reason,
            "shortages": tuple(shortages) or order.shortages,
            "version": order.version + 1,
            "correlation_id": correlation_id,
            "updated_at": at,
            "confirmed": order.confirmed or marks_confirmed(target),
        }
    )


def marks_confirmed(target: OrderStatus) -> bool:
    """Whether moving to `target` makes the order remember it was confirmed (it never forgets)."""
    return target is OrderStatus.CONFIRMED


def cancel(order: Order, *, correlation_id: str, at: str) -> Order:
    """The cancelled order; an already cancelled order is returned unchanged (cancel is idempotent)."""
    if order.status is OrderStatus.CANCELLED:
        return order
    return transition(order, OrderStatus.CANCELLED, correlation_id=correlation_id, at=at)


def ship(order: Order, *, correlation_id: str, at: str) -> Order:
    """The order as its parcel's dispatch leaves it: SHIPPED, whatever cancellation it crossed (dispatch wins).

    CONFIRMED -> SHIPPED; CANCELLED -> SHIPPED with a reason saying the cancellation came too late; an already
    SHIPPED order is returned unchanged (a duplicate dispatch); PENDING or REJECTED cannot have been dispatched
    (shipping only ships confirmed orders): TransitionNotAllowedError.
    """
    if order.status is OrderStatus.SHIPPED:
        return order
    reason = SHIPPED_AFTER_CANCELLATION if order.status is OrderStatus.CANCELLED else None
    return transition(order, OrderStatus.SHIPPED, correlation_id=correlation_id, at=at, reason=reason)

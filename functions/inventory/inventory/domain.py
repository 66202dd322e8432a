"""Inventory rules: stock levels, commands on them, and the all-or-nothing reservation of an order.

No AWS here. The store enforces the same rules with DynamoDB conditions (so concurrent writers cannot break
them); this module states them, decides outcomes from what the store reports, and is what the unit tests read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from converge.errors import ConflictError, ConvergeError, NotFoundError
from converge.events import REASON_MAX_LENGTH, RESERVATION_EVENT_BY_STATUS, OrderLine, ReservationStatus

# The event contract bounds quantities (events.Quantity); a product beyond it could not be published.
MAX_ON_HAND = 1_000_000_000
PRODUCT_EVENT = "StockUpdated"
# Releasing a reservation that does not exist yet: the tombstone's reason.
CANCELLED_BEFORE_RESERVATION = "order cancelled before it was reserved"


# ---------------------------------------------------------------- errors
# The answered ones (404, 409) are the layer's families (converge.errors); the others fail an inbox record.
class ProductNotFoundError(NotFoundError):
    def __init__(self, product_id: str) -> None:
        super().__init__(f"product {product_id} not found")
        self.product_id = product_id


class StockConflictError(ConflictError):
    """A stock command would break an invariant (on_hand < reserved, on_hand < 0 or above MAX_ON_HAND)."""


class InvariantViolationError(ConvergeError):
    """Stored state contradicts the rules (e.g. releasing more than is reserved): never applied, never dropped."""


class StockNotHeldError(InvariantViolationError):
    """A dispatch names a reservation that holds no stock (RELEASED, FAILED or absent): never applied.

    Under the arbiter rule (shipping decides for confirmed orders) this only happens after drift or a forged
    event. Consuming anyway would take the parcel's quantities off `on_hand` while `reserved` still counts
    other orders' holdings in full, so on_hand could fall below reserved (or below zero): the record fails,
    is redriven, and if it still fails it is parked in the DLQ for a person.
    """

    def __init__(self, order_id: str, status: ReservationStatus | None) -> None:
        held = "absent" if status is None else status.value
        super().__init__(f"dispatched stock was not held: reservation {order_id} is {held}")
        self.order_id = order_id
        self.status = status


class ReservationExistsError(ConvergeError):
    """The order already has a reservation (a redelivered OrderPlaced, or a cancellation's tombstone)."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} already has a reservation")
        self.order_id = order_id


class InsufficientStockError(ConvergeError):
    """Some lines of an order cannot be reserved; nothing was."""

    def __init__(self, shortages: Sequence[Shortage]) -> None:
        super().__init__("; ".join(s.describe() for s in shortages))
        self.shortages = tuple(shortages)


# ---------------------------------------------------------------- HTTP commands
class SetStock(BaseModel):
    """`PUT /products/{product_id}/stock`: the absolute on-hand quantity."""

    model_config = ConfigDict(extra="forbid")

    # strict: "5", 5.0 and true are not stock levels.
    on_hand: Annotated[int, Field(strict=True, ge=0, le=MAX_ON_HAND)]


class AdjustStock(BaseModel):
    """`POST /products/{product_id}/stock/adjustments`: a signed change of on-hand (received, shrinkage, ...)."""

    model_config = ConfigDict(extra="forbid")

    # Zero is refused (an adjustment that changes nothing); the schema says so with `not: {const: 0}`.
    delta: Annotated[int, Field(strict=True, ge=-MAX_ON_HAND, le=MAX_ON_HAND, json_schema_extra={"not": {"const": 0}})]

    @field_validator("delta")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must not be zero")
        return value


# ---------------------------------------------------------------- products
@dataclass(frozen=True)
class StockLevel:
    """A product's stock. `available` is stored (on_hand - reserved) so reserving is a single condition."""

    product_id: str
    on_hand: int
    reserved: int = 0
    version: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.reserved <= self.on_hand <= MAX_ON_HAND:
            raise InvariantViolationError(
                f"product {self.product_id}: need 0 <= reserved ({self.reserved}) <= on_hand ({self.on_hand})"
                f" <= {MAX_ON_HAND}"
            )

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def set_on_hand(self, on_hand: int) -> StockLevel:
        if on_hand < self.reserved:
            raise StockConflictError(
                f"product {self.product_id}: on_hand {on_hand} would be below reserved {self.reserved}"
            )
        return StockLevel(self.product_id, on_hand, self.reserved, self.version + 1)

    def adjust(self, delta: int) -> StockLevel:
        return self.set_on_hand(_bounded_on_hand(self.product_id, self.on_hand + delta))

    def can_reserve(self, quantity: int) -> bool:
        return self.available >= quantity

    def view(self) -> dict[str, Any]:
        """The product as the API shows it."""
        return {
            "product_id": self.product_id,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "available": self.available,
            "version": self.version,
        }


def _bounded_on_hand(product_id: str, on_hand: int) -> int:
    if on_hand < 0:
        raise StockConflictError(f"product {product_id}: on_hand would be negative ({on_hand})")
    if on_hand > MAX_ON_HAND:
        raise StockConflictError(f"product {product_id}: on_hand would exceed {MAX_ON_HAND}")
    return on_hand


def adjustment_conflict(product_id: str, delta: int, current: StockLevel) -> StockConflictError:
    """Why an adjustment the store refused conflicts with `current` (raises nothing itself)."""
    try:
        current.adjust(delta)
    except StockConflictError as exc:
        return exc
    # The condition failed against a state that has changed since: say so rather than invent a reason.
    return StockConflictError(f"product {product_id}: stock changed concurrently, retry the adjustment")


# ---------------------------------------------------------------- reservations
def merge_lines(lines: Iterable[OrderLine]) -> dict[str, int]:
    """Product id -> total quantity, in first-seen order: a transaction may touch each item only once.

    A plain mapping, not OrderLines: a merged total may exceed the contract's per-line maximum.
    """
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.product_id] = totals.get(line.product_id, 0) + line.quantity
    return totals


@dataclass(frozen=True)
class Shortage:
    """A line that cannot be reserved: the product is unknown (`available` None) or lacks stock."""

    product_id: str
    requested: int
    available: int | None

    def describe(self) -> str:
        if self.available is None:
            return f"unknown product {self.product_id}"
        return f"insufficient stock for {self.product_id} (requested {self.requested}, available {self.available})"


@dataclass(frozen=True)
class Reservation:
    """An order's reservation as stored: RESERVED (every line), FAILED (none), RELEASED or SHIPPED (consumed)."""

    order_id: str
    lines: tuple[OrderLine, ...]  # as the order has them, so the item validates as the event it publishes
    status: ReservationStatus
    reason: str | None = None
    shortages: tuple[str, ...] = field(default_factory=tuple)
    version: int = 1
    reinstate_failed: bool = False  # FAILED by a reinstatement (the reconciler parks a confirmed order then)

    @property
    def event_type(self) -> str:
        return RESERVATION_EVENT_BY_STATUS[self.status]

    @property
    def quantities(self) -> dict[str, int]:
        """What the reservation holds (or would hold) per product."""
        return merge_lines(self.lines)

    def released(self) -> Reservation:
        """The RESERVED reservation given back; anything else has nothing to release."""
        if self.status is not ReservationStatus.RESERVED:
            raise InvariantViolationError(f"reservation {self.order_id} is {self.status}, not RESERVED")
        return Reservation(self.order_id, self.lines, ReservationStatus.RELEASED, None, (), self.version + 1)

    def shipped(self) -> Reservation:
        """The RESERVED reservation consumed by its parcel's dispatch; anything else holds nothing to consume."""
        if self.status is not ReservationStatus.RESERVED:
            raise StockNotHeldError(self.order_id, self.status)
        return Reservation(self.order_id, self.lines, ReservationStatus.SHIPPED, None, (), self.version + 1)


def to_ship(order_id: str, current: Reservation | None) -> Reservation | None:
    """The reservation a dispatch consumes: `current` if RESERVED, None if already SHIPPED (a duplicate).

    StockNotHeldError if it is RELEASED, FAILED or absent (see StockNotHeldError for why that is not applied).
    """
    if current is not None and current.status is ReservationStatus.SHIPPED:
        return None
    if current is None or current.status is not ReservationStatus.RESERVED:
        raise StockNotHeldError(order_id, None if current is None else current.status)
    return current


def releases_stock(confirmed: bool) -> bool:
    """Whether an OrderCancelled releases the reservation: only for an order never confirmed.

    A confirmed order may have a shipment, and shipping is the arbiter (dispatch wins): its ShipmentCancelled
    releases the stock, its ShipmentDispatched consumes it, so stock is never both released and shipped.
    """
    return not confirmed


def summarise(parts: Sequence[str], limit: int = REASON_MAX_LENGTH) -> str:
    """Join the parts of a reason, cut to the contract's length (the shortages list still names every product)."""
    text = "; ".join(parts)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for part in parts:
        tail = f"; and {len(parts) - len(kept) - 1} more"
        if len("; ".join([*kept, part])) + len(tail) > limit:
            break
        kept.append(part)
    return "; ".join(kept) + f"; and {len(parts) - len(kept)} more"


def reserved(order_id: str, lines: Sequence[OrderLine]) -> Reservation:
    return Reservation(order_id, tuple(lines), ReservationStatus.RESERVED)


def failed(order_id: str, lines: Sequence[OrderLine], shortages: Sequence[Shortage]) -> Reservation:
    if not shortages:
        raise InvariantViolationError(f"reservation {order_id} cannot fail without a shortage")
    return Reservation(
        order_id,
        tuple(lines),
        ReservationStatus.FAILED,
        reason=summarise([s.describe() for s in shortages]),
        shortages=tuple(s.product_id for s in shortages),
    )


def tombstone(order_id: str, lines: Sequence[OrderLine]) -> Reservation:
    """Written when a cancellation overtakes its placement: a late OrderPlaced then finds it and reserves nothing."""
    return Reservation(order_id, tuple(lines), ReservationStatus.RELEASED, reason=CANCELLED_BEFORE_RESERVATION)


# ---------------------------------------------------------------- corrections (sent by the reconciler)
REJECTED_WITHOUT_RESERVATION = "order rejected without a reservation"


def reinstated(order_id: str, lines: Sequence[OrderLine], previous: Reservation | None) -> Reservation:
    """The reservation reserved again for an order that still needs it, one version above what it replaces."""
    return Reservation(order_id, tuple(lines), ReservationStatus.RESERVED, version=_next_version(previous))


def reinstatement_failed(
    order_id: str, lines: Sequence[OrderLine], previous: Reservation | None, shortages: Sequence[Shortage]
) -> Reservation:
    """What a reinstatement that lacks stock leaves: FAILED, marked, so that it is not tried again."""
    failure = failed(order_id, lines, shortages)
    return Reservation(
        order_id,
        failure.lines,
        ReservationStatus.FAILED,
        reason=summarise(["reinstatement failed", *(s.describe() for s in shortages)]),
        shortages=failure.shortages,
        version=_next_version(previous),
        reinstate_failed=True,
    )


def _next_version(previous: Reservation | None) -> int:
    return previous.version + 1 if previous is not None else 1


def as_observed(current: Reservation | None, status: ReservationStatus | None, version: int | None) -> bool:
    """The reservation is still what the reconciler saw (absent, or that status at that version)."""
    if current is None:
        return status is None
    return current.status is status and current.version == version


def recounted(level: StockLevel, counted: int) -> StockLevel:
    """The product with `reserved` set to what its RESERVED reservations hold (one version later).

    If they hold more than `on_hand` (a restored product item), on_hand is raised to cover them: the invariant
    `reserved <= on_hand` must hold, and the reconciler parks the product for a stock count by a person.
    """
    return StockLevel(level.product_id, max(level.on_hand, counted), counted, level.version + 1)


def shortages_of(lines: Sequence[OrderLine], stock: Mapping[str, StockLevel | None]) -> list[Shortage]:
    """The lines that cannot be reserved against `stock` (a product missing from it is unknown)."""
    shortages = []
    for product_id, quantity in merge_lines(lines).items():
        level = stock.get(product_id)
        if level is None:
            shortages.append(Shortage(product_id, quantity, None))
        elif not level.can_reserve(quantity):
            shortages.append(Shortage(product_id, quantity, level.available))
    return shortages

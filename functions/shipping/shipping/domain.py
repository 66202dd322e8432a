"""The rules of the shipping service: the status machine (as data) and what each order event does. No boto3.

Status machine: PENDING -> DISPATCHED | CANCELLED; DISPATCHED and CANCELLED are final. The crossing rule is
"dispatch wins": a cancellation that reaches a dispatched shipment changes nothing (the parcel had left, and
orders ships the order on ShipmentDispatched).

The consumer reads the shipment, asks this module for a `Decision` and writes it conditionally; a lost race is
decided again on fresh state, so duplicates and reordered deliveries end the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from converge.errors import MalformedEventError
from converge.events import (
    SHIPMENT_EVENT_BY_STATUS,
    DomainEvent,
    Identifier,
    OrderData,
    OrderLine,
    ShipmentStatus,
    Version,
)
from converge.status import StatusMachine

# The status machine as data: status -> the statuses it may move to.
STATUSES = StatusMachine(
    "shipment",
    {
        ShipmentStatus.PENDING: frozenset({ShipmentStatus.DISPATCHED, ShipmentStatus.CANCELLED}),
        ShipmentStatus.DISPATCHED: frozenset(),  # the parcel left: final, whatever else arrives
        ShipmentStatus.CANCELLED: frozenset(),
    },
)

# Reasons stored on a cancelled shipment.
CANCELLED_BEFORE_CREATION = "order cancelled before its shipment was created"
CANCELLED_BEFORE_DISPATCH = "order cancelled before its parcel left"

# Why an order event changed nothing (logged by the consumer).
ALREADY_EXISTS = "the shipment already exists: a duplicate or late OrderConfirmed"
NEVER_CONFIRMED = "the order was never confirmed: no shipment is ever made for it"
DISPATCH_WINS = "dispatch wins: the parcel had left"
ALREADY_CANCELLED = "the shipment is already cancelled"
OLDER_ORDER_VERSION = "the shipment already applied this or a newer order version"


# ----------------------------------------------------------------------------------------------- the shipment
class Shipment(BaseModel):
    """A shipment as stored (one per order, keyed by the order's id)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    order_id: Identifier
    customer_id: Identifier
    lines: Annotated[tuple[OrderLine, ...], Field(min_length=1)]
    status: ShipmentStatus
    reason: str | None = None
    version: Version  # the shipment's own version: 1 on creation, +1 on every write
    order_version: Version  # the highest order entity_version applied
    correlation_id: str
    created_at: str
    updated_at: str

    @property
    def event_type(self) -> str:
        return SHIPMENT_EVENT_BY_STATUS[self.status]

    def state(self) -> dict[str, Any]:
        """The attributes of the stored item besides its key (event_type included, None values dropped)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["lines"] = [dict(line) for line in data["lines"]]
        data["event_type"] = self.event_type
        return data

    def view(self) -> dict[str, Any]:
        """What the API returns."""
        return self.model_dump(mode="json", exclude={"order_version", "correlation_id"})


def transition(
    shipment: Shipment,
    target: ShipmentStatus,
    *,
    correlation_id: str,
    at: str,
    reason: str | None = None,
    order_version: int | None = None,
) -> Shipment:
    """The shipment moved to `target` (version + 1), or TransitionNotAllowedError (converge.errors)."""
    STATUSES.check(shipment.order_id, shipment.status, target)
    return shipment.model_copy(
        update={
            "status": target,
            "reason": reason if reason is not None else shipment.reason,
            "version": shipment.version + 1,
            "order_version": max(shipment.order_version, order_version or 0),
            "correlation_id": correlation_id,
            "updated_at": at,
        }
    )


def dispatch(shipment: Shipment, *, correlation_id: str, at: str) -> Shipment:
    """The dispatched shipment; an already dispatched one is returned unchanged (dispatch is idempotent).

    TransitionNotAllowedError if it was cancelled: the warehouse must not send the parcel.
    """
    if shipment.status is ShipmentStatus.DISPATCHED:
        return shipment
    return transition(shipment, ShipmentStatus.DISPATCHED, correlation_id=correlation_id, at=at)


# ----------------------------------------------------------------------------------------------- order events
class OrderChange(BaseModel):
    """An order event as the consumer hands it to the rules: the order's state, its version, and who caused it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    order: OrderData
    order_version: Version
    correlation_id: str
    at: str

    @classmethod
    def of(cls, event: DomainEvent, *, at: str) -> OrderChange:
        """The change an order event carries, or MalformedEventError if it carries no order."""
        if not isinstance(event.data, OrderData):
            raise MalformedEventError(f"{event.event_type} does not carry an order")
        metadata = event.metadata
        return cls(
            order=event.data, order_version=metadata.entity_version, correlation_id=metadata.correlation_id, at=at
        )

    def new_shipment(self, status: ShipmentStatus, reason: str | None = None) -> Shipment:
        """A shipment of this order at version 1."""
        return Shipment(
            order_id=self.order.order_id,
            customer_id=self.order.customer_id,
            lines=tuple(self.order.lines),
            status=status,
            reason=reason,
            version=1,
            order_version=self.order_version,
            correlation_id=self.correlation_id,
            created_at=self.at,
            updated_at=self.at,
        )


class Action(StrEnum):
    CREATE = "create"  # put a new shipment, if none exists
    REPLACE = "replace"  # write over the shipment read, if it is still as read
    SKIP = "skip"  # nothing to write (`why` says why)


class Decision(BaseModel):
    """What an order event does to the shipment it found: the write to make, or why there is none."""

    model_config = ConfigDict(frozen=True)

    action: Action
    shipment: Shipment | None = None  # the state to write (CREATE, REPLACE)
    why: str = ""

    @classmethod
    def skip(cls, why: str) -> Decision:
        return cls(action=Action.SKIP, why=why)


def on_order_confirmed(current: Shipment | None, change: OrderChange) -> Decision:
    """A confirmed order gets a PENDING shipment; any existing shipment (even a tombstone) stands."""
    if current is not None:
        return Decision.skip(ALREADY_EXISTS)
    return Decision(action=Action.CREATE, shipment=change.new_shipment(ShipmentStatus.PENDING))


def on_order_cancelled(current: Shipment | None, change: OrderChange) -> Decision:
    """Cancel the shipment of a confirmed order, unless its parcel left (dispatch wins).

    A PENDING shipment is cancelled by any cancellation not older than the order version it was made from: a
    shipment of an order cancelled unconfirmed, or at that same version, exists only after a restore of the
    order, and cancelling a parcel that has not left is always safe (the reconciler republishes OrderCancelled
    for exactly that pair).
    """
    if not change.order.confirmed and (current is None or current.status is not ShipmentStatus.PENDING):
        return Decision.skip(NEVER_CONFIRMED)
    if current is None:
        # The cancellation overtook the confirmation: a tombstone, so a late OrderConfirmed creates nothing
        # (and inventory releases the stock on the ShipmentCancelled it publishes).
        tombstone = change.new_shipment(ShipmentStatus.CANCELLED, CANCELLED_BEFORE_CREATION)
        return Decision(action=Action.CREATE, shipment=tombstone)
    if current.status is ShipmentStatus.DISPATCHED:
        return Decision.skip(DISPATCH_WINS)
    if current.status is ShipmentStatus.CANCELLED:
        return Decision.skip(ALREADY_CANCELLED)
    if change.order_version < current.order_version:
        return Decision.skip(OLDER_ORDER_VERSION)
    cancelled = transition(
        current,
        ShipmentStatus.CANCELLED,
        correlation_id=change.correlation_id,
        at=change.at,
        reason=CANCELLED_BEFORE_DISPATCH,
        order_version=change.order_version,
    )
    return Decision(action=Action.REPLACE, shipment=cancelled)


# The order events shipping consumes (routing is data): event type -> the rule deciding what it does.
ORDER_EVENT_RULES: Mapping[str, Callable[[Shipment | None, OrderChange], Decision]] = {
    "OrderConfirmed": on_order_confirmed,
    "OrderCancelled": on_order_cancelled,
}

"""The event contract: envelope metadata and one typed payload per event type.

Events carry state with a version: applying the newest event of an entity alone yields the right projection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

# The version of every event type's first contract; the newest of each type is converge.upcast.latest_version.
SCHEMA_VERSION = 1
# Event ids are uuid5(EVENT_ID_NAMESPACE, "<entity>:<entity_id>:<version>"): a re-published event keeps its id.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c3f2e-9a57-4d0b-8c1e-5e2f0b7c4a11")

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Quantity = Annotated[int, Field(ge=0, le=1_000_000_000)]
# strict: an entity version given as "7", 7.0 or true is not a version.
Version = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]

# The entity kinds and producing services are declared by the service contracts (converge.contracts): the
# registry entry of an event's type says which entity and producer it must name (envelope.parse_detail).
Entity = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")]
# `converge.<producer>` is the EventBridge source.
Producer = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")]


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    SHIPPED = "SHIPPED"


class ReservationStatus(StrEnum):
    RESERVED = "RESERVED"
    FAILED = "FAILED"
    RELEASED = "RELEASED"
    SHIPPED = "SHIPPED"  # the parcel left: the held stock left on_hand and reserved together


class ShipmentStatus(StrEnum):
    PENDING = "PENDING"  # created for a confirmed order, waiting for the warehouse
    DISPATCHED = "DISPATCHED"  # the parcel left the warehouse: final, whatever else arrives
    CANCELLED = "CANCELLED"  # the order was cancelled before dispatch (or before the shipment was created)


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: Identifier
    quantity: Annotated[int, Field(ge=1, le=10_000)]


def stock_lines(lines: Iterable[OrderLine]) -> tuple[OrderLine, ...]:
    """Each line's product and quantity only (what stock moves by), without what an order's line adds (a price)."""
    return tuple(OrderLine(product_id=line.product_id, quantity=line.quantity) for line in lines)


# ISO 4217 alphabetic code. "XXX" is ISO 4217's own code for "no currency": what an order priced before orders
# carried prices (schema v1) is upcast to, with every unit price 0 (docs/events.md, "Versions").
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", json_schema_extra={"x-meaning": "ISO 4217 alphabetic code"})]
NO_CURRENCY = "XXX"
# Integer minor units of the order's currency (cents for EUR, yen for JPY): exact, summable without rounding,
# a plain DynamoDB number and a JSON integer every consumer reads the same way (docs/events.md, "Prices").
MinorUnits = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=10**12,
        json_schema_extra={"x-meaning": "price of one unit in minor units of the order's currency (ISO 4217)"},
    ),
]


class PricedOrderLine(OrderLine):
    """An order's line with the price of one unit, in minor units of the order's currency."""

    unit_price: MinorUnits


class Metadata(BaseModel):
    """What every event says about itself (the `metadata` half of `detail`)."""

    model_config = ConfigDict(extra="forbid")

    event_id: Annotated[str, Field(min_length=1, max_length=64)]
    event_type: str
    schema_version: Annotated[int, Field(ge=1, le=1000)]
    entity: Entity
    entity_id: Identifier
    entity_version: Version
    correlation_id: Annotated[str, Field(min_length=1, max_length=128)]
    # With its offset: a naive timestamp is an instant nobody can place (and cannot be compared with one that is).
    occurred_at: AwareDatetime
    producer: Producer

    @field_validator("schema_version", mode="before")
    @classmethod
    def _exactly_an_integer(cls, value: object) -> object:
        # Lax mode would take True or 1.0 for 1: a producer sending those does not follow the contract. Which
        # versions a type accepts is the envelope's to say (converge.upcast: the newest and the one before).
        if type(value) is not int:
            raise ValueError("schema_version must be an integer")
        return value


REASON_MAX_LENGTH = 1000
Reason = Annotated[str, Field(max_length=REASON_MAX_LENGTH)]


class EventData(BaseModel):
    """Base of every payload; subclasses name the entity and the producer."""

    # Table items carry more attributes (keys, version, ...) than the payload: they are ignored, not errors.
    model_config = ConfigDict(extra="ignore")


class OrderDataV1(EventData):
    """An order's state as schema v1 carried it: no currency, no prices (consumers upcast it: converge.upcast)."""

    order_id: Identifier
    customer_id: Identifier
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=50)]
    status: OrderStatus
    reason: Reason | None = None
    shortages: list[Identifier] = Field(default_factory=list)
    # The order was confirmed before it was cancelled: a shipment may exist, so shipping (not OrderCancelled)
    # decides whether its stock is released (ShipmentCancelled) or leaves with the parcel (ShipmentDispatched).
    confirmed: bool = False


class OrderData(OrderDataV1):
    """An order's state (schema v2): v1 plus the order's `currency` and each line's `unit_price`."""

    currency: Currency
    lines: Annotated[list[PricedOrderLine], Field(min_length=1, max_length=50)]  # type: ignore[assignment]


class ProductData(EventData):
    """A product's stock; `available` is `on_hand - reserved`, always (a payload that says otherwise lies)."""

    product_id: Identifier
    on_hand: Quantity
    reserved: Quantity
    available: Quantity

    @model_validator(mode="after")
    def _available_is_what_is_not_reserved(self) -> Self:
        if self.available != self.on_hand - self.reserved:
            raise ValueError(f"available {self.available} is not on_hand - reserved ({self.on_hand} - {self.reserved})")
        return self


class ReservationData(EventData):
    order_id: Identifier
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=50)]
    status: ReservationStatus
    reason: Reason | None = None
    shortages: list[Identifier] = Field(default_factory=list)


# Each event type is one status of its entity (ORDER_EVENT_BY_STATUS, ...): its payload pins that status, so an
# OrderConfirmed that says REJECTED is malformed, not a second opinion.
class OrderPlaced(OrderData):
    """An order was accepted and awaits a stock reservation."""

    status: Literal[OrderStatus.PENDING]


class OrderConfirmed(OrderData):
    """Every line of the order is reserved."""

    status: Literal[OrderStatus.CONFIRMED]


class OrderRejected(OrderData):
    """The order could not be reserved; `reason` says why."""

    status: Literal[OrderStatus.REJECTED]


class OrderCancelled(OrderData):
    """The customer cancelled the order; a reservation of an order never confirmed is to be released."""

    status: Literal[OrderStatus.CANCELLED]


class OrderShipped(OrderData):
    """The order's parcel left (ShipmentDispatched), even if a cancellation crossed it (`reason` says so)."""

    status: Literal[OrderStatus.SHIPPED]


# The order events as schema v1 released them: v1's shape with each type's status pin (and its docstring).
ORDER_EVENTS_V1: dict[str, type[OrderDataV1]] = {
    model.__name__: create_model(
        f"{model.__name__}V1",
        __base__=OrderDataV1,
        __doc__=model.__doc__,
        __module__=__name__,
        status=(model.model_fields["status"].annotation, ...),
    )
    for model in (OrderPlaced, OrderConfirmed, OrderRejected, OrderCancelled, OrderShipped)
}


class StockUpdated(ProductData):
    """A product's stock changed (set, adjusted, reserved or released)."""


class StockReserved(ReservationData):
    """Every line of an order was reserved in one transaction."""

    status: Literal[ReservationStatus.RESERVED]


class StockReservationFailed(ReservationData):
    """No line was reserved because at least one product lacked stock (`shortages`)."""

    status: Literal[ReservationStatus.FAILED]


class StockReleased(ReservationData):
    """An order's reservation was released (or the order was cancelled before it was reserved)."""

    status: Literal[ReservationStatus.RELEASED]


class StockShipped(ReservationData):
    """An order's reserved stock left with its parcel: on_hand and reserved both dropped by its lines."""

    status: Literal[ReservationStatus.SHIPPED]


class ShipmentData(EventData):
    order_id: Identifier  # one shipment per order: the order's id is the shipment's
    customer_id: Identifier
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=50)]
    status: ShipmentStatus
    reason: Reason | None = None


class ShipmentCreated(ShipmentData):
    """A confirmed order's shipment waits for the warehouse (PENDING)."""

    status: Literal[ShipmentStatus.PENDING]


class ShipmentDispatched(ShipmentData):
    """The warehouse says the parcel left: the order ships, whatever cancellation crosses it."""

    status: Literal[ShipmentStatus.DISPATCHED]


class ShipmentCancelled(ShipmentData):
    """The order was cancelled before its parcel left: its stock is to be released."""

    status: Literal[ShipmentStatus.CANCELLED]


# ---------------------------------------------------------------- corrections (sent by the reconciler only)
class CorrectionData(EventData):
    """Base of the reconciler's corrections: repairs against the grain of versions (docs/CONSISTENCY.md).

    A correction says what the reconciler observed and what the source implies; the consumer applies it only
    if the stored item is still what was observed, whatever its version, so it never overwrites a newer write.
    """

    model_config = ConfigDict(extra="forbid")

    correction_id: Annotated[str, Field(min_length=1, max_length=64)]
    entity_id: Identifier  # the source entity the corrected item derives from
    reason: Reason


ProjectionAttributes = dict[str, str | int | list[str] | None]


class ProjectionCorrected(CorrectionData):
    """A projection item is ahead of, different from or without its source: overwrite it with what the source
    implies (`expected`), or delete it (`expected` null), if it still holds what was `observed` (null: absent)."""

    projection: Identifier
    pk: Annotated[str, Field(min_length=1, max_length=256)]
    sk: Annotated[str, Field(min_length=1, max_length=256)]
    observed: ProjectionAttributes | None
    expected: ProjectionAttributes | None


class ReservationAction(StrEnum):
    RELEASE = "release"  # give the stock back, keep the reservation as RELEASED
    REMOVE = "remove"  # an orphan: give back any stock it holds and delete it
    REINSTATE = "reinstate"  # reserve again for an order that still needs it (RESERVED, or FAILED if short)
    TOMBSTONE = "tombstone"  # record RELEASED so that a late OrderPlaced reserves nothing


class ReservationCorrected(CorrectionData):
    """The order <-> reservation saga disagrees: act on the reservation, if it is still as observed."""

    order_id: Identifier
    action: ReservationAction
    observed_status: ReservationStatus | None  # None: no reservation was found
    observed_version: Version | None
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=50)]
    order_status: OrderStatus | None  # None: no order was found

    @model_validator(mode="after")
    def _fits_its_action(self) -> Self:
        if self.entity_id != self.order_id:
            raise ValueError(f"entity_id {self.entity_id!r} is not the order {self.order_id!r}")
        if (self.observed_status is None) != (self.observed_version is None):
            raise ValueError("observed_status and observed_version are both given or both null")
        order_statuses, observed_statuses = RESERVATION_ACTION_NEEDS[self.action]
        if self.order_status not in order_statuses or self.observed_status not in observed_statuses:
            raise ValueError(
                f"{self.action.value} does not fit an order {_status(self.order_status)} "
                f"with a reservation {_status(self.observed_status)}"
            )
        return self


def _status(status: StrEnum | None) -> str:
    return "absent" if status is None else status.value


# What each action of a ReservationCorrected needs of the order and of the reservation it observed (None: absent);
# the reconciler's saga table (converge.projections.SAGA_RESOLUTIONS) only asks for actions that fit these.
RESERVATION_ACTION_NEEDS: dict[
    ReservationAction, tuple[frozenset[OrderStatus | None], frozenset[ReservationStatus | None]]
] = {
    # Stock held for an order that must not hold it.
    ReservationAction.RELEASE: (
        frozenset({OrderStatus.REJECTED, OrderStatus.CANCELLED}),
        frozenset({ReservationStatus.RESERVED}),
    ),
    # A reservation without an order.
    ReservationAction.REMOVE: (frozenset({None}), frozenset(ReservationStatus)),
    # An order that still needs stock its reservation does not hold.
    ReservationAction.REINSTATE: (
        frozenset({OrderStatus.PENDING, OrderStatus.CONFIRMED}),
        frozenset({None, ReservationStatus.FAILED, ReservationStatus.RELEASED}),
    ),
    # A rejected order never reserved: RELEASED keeps a late OrderPlaced from reserving.
    ReservationAction.TOMBSTONE: (frozenset({OrderStatus.REJECTED}), frozenset({None})),
}


class ReservedRecounted(CorrectionData):
    """A product's `reserved` differs from the sum of its RESERVED reservations: set it to that sum, if the
    product is still at the observed version (`on_hand` is raised to the sum if it was below)."""

    product_id: Identifier
    observed_version: Version
    reserved: Quantity

    @model_validator(mode="after")
    def _names_its_product(self) -> Self:
        if self.entity_id != self.product_id:
            raise ValueError(f"entity_id {self.entity_id!r} is not the product {self.product_id!r}")
        return self


class EventSpec(BaseModel):
    """Where an event type comes from: its payload model, entity, producer and the id field (the registry of
    them is derived from the service contracts: converge.contracts.EVENT_TYPES)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    model: type[EventData]
    entity: Entity
    producer: Producer
    id_field: str

    @property
    def source(self) -> str:
        return f"converge.{self.producer}"


ORDER_EVENT_BY_STATUS = {
    OrderStatus.PENDING: "OrderPlaced",
    OrderStatus.CONFIRMED: "OrderConfirmed",
    OrderStatus.REJECTED: "OrderRejected",
    OrderStatus.CANCELLED: "OrderCancelled",
    OrderStatus.SHIPPED: "OrderShipped",
}
RESERVATION_EVENT_BY_STATUS = {
    ReservationStatus.RESERVED: "StockReserved",
    ReservationStatus.FAILED: "StockReservationFailed",
    ReservationStatus.RELEASED: "StockReleased",
    ReservationStatus.SHIPPED: "StockShipped",
}
SHIPMENT_EVENT_BY_STATUS = {
    ShipmentStatus.PENDING: "ShipmentCreated",
    ShipmentStatus.DISPATCHED: "ShipmentDispatched",
    ShipmentStatus.CANCELLED: "ShipmentCancelled",
}


class DomainEvent(BaseModel):
    """An event as it travels in EventBridge `detail`: `{"metadata": ..., "data": ...}`."""

    model_config = ConfigDict(extra="forbid")

    metadata: Metadata
    data: EventData

    @property
    def event_type(self) -> str:
        return self.metadata.event_type

    def detail(self) -> dict[str, Any]:
        return {"metadata": self.metadata.model_dump(mode="json"), "data": self.data.model_dump(mode="json")}

    @property
    def source(self) -> str:
        return f"converge.{self.metadata.producer}"


def event_id_for(entity: str, entity_id: str, version: int) -> str:
    """Deterministic event id: the same entity version always yields the same id."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{entity}:{entity_id}:{version}"))

"""The event contract: envelope metadata and one typed payload per event type.

Events carry state with a version: applying the newest event of an entity alone yields the right projection.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class Metadata(BaseModel):
    """What every event says about itself (the `metadata` half of `detail`)."""

    model_config = ConfigDict(extra="forbid")

    event_id: Annotated[str, Field(min_length=1, max_length=64)]
    event_type: str
    schema_version: Literal[1]
    entity: Entity
    entity_id: Identifier
    entity_version: Version
    correlation_id: Annotated[str, Field(min_length=1, max_length=128)]
    occurred_at: datetime
    producer: Producer

    @field_validator("schema_version", mode="before")
    @classmethod
    def _exactly_the_integer(cls, value: object) -> object:
        # Lax mode would take True or 1.0 for 1: a producer sending those does not follow the contract.
        if type(value) is not int:
            raise ValueError("schema_version must be the integer 1")
        return value


REASON_MAX_LENGTH = 1000
Reason = Annotated[str, Field(max_length=REASON_MAX_LENGTH)]


class EventData(BaseModel):
    """Base of every payload; subclasses name the entity and the producer."""

    # Table items carry more attributes (keys, version, ...) than the payload: they are ignored, not errors.
    model_config = ConfigDict(extra="ignore")


class OrderData(EventData):
    order_id: Identifier
    customer_id: Identifier
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=50)]
    status: OrderStatus
    reason: Reason | None = None
    shortages: list[Identifier] = Field(default_factory=list)
    # The order was confirmed before it was cancelled: a shipment may exist, so shipping (not OrderCancelled)
    # decides whether its stock is released (ShipmentCancelled) or leaves with the parcel (ShipmentDispatched).
    confirmed: bool = False


class ProductData(EventData):
    product_id: Identifier
    on_hand: Quantity
    reserved: Quantity
    available: Quantity


class ReservationData(EventData):
    order_id: Identifier
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=50)]
    status: ReservationStatus
    reason: Reason | None = None
    shortages: list[Identifier] = Field(default_factory=list)


class OrderPlaced(OrderData):
    """An order was accepted and awaits a stock reservation."""


class OrderConfirmed(OrderData):
    """Every line of the order is reserved."""


class OrderRejected(OrderData):
    """The order could not be reserved; `reason` says why."""


class OrderCancelled(OrderData):
    """The customer cancelled the order; a reservation of an order never confirmed is to be released."""


class OrderShipped(OrderData):
    """The order's parcel left (ShipmentDispatched), even if a cancellation crossed it (`reason` says so)."""


class StockUpdated(ProductData):
    """A product's stock changed (set, adjusted, reserved or released)."""


class StockReserved(ReservationData):
    """Every line of an order was reserved in one transaction."""


class StockReservationFailed(ReservationData):
    """No line was reserved because at least one product lacked stock (`shortages`)."""


class StockReleased(ReservationData):
    """An order's reservation was released (or the order was cancelled before it was reserved)."""


class StockShipped(ReservationData):
    """An order's reserved stock left with its parcel: on_hand and reserved both dropped by its lines."""


class ShipmentData(EventData):
    order_id: Identifier  # one shipment per order: the order's id is the shipment's
    customer_id: Identifier
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=50)]
    status: ShipmentStatus
    reason: Reason | None = None


class ShipmentCreated(ShipmentData):
    """A confirmed order's shipment waits for the warehouse (PENDING)."""


class ShipmentDispatched(ShipmentData):
    """The warehouse says the parcel left: the order ships, whatever cancellation crosses it."""


class ShipmentCancelled(ShipmentData):
    """The order was cancelled before its parcel left: its stock is to be released."""


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


class ReservedRecounted(CorrectionData):
    """A product's `reserved` differs from the sum of its RESERVED reservations: set it to that sum, if the
    product is still at the observed version (`on_hand` is raised to the sum if it was below)."""

    product_id: Identifier
    observed_version: Version
    reserved: Quantity


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

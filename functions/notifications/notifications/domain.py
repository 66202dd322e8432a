"""Rules of the notifications read models: availability, order outcomes, notifications, back-in-stock watches.

No AWS here. Every projection is last-writer-wins by the source entity's version; every notification has a
key derived from the fact it reports, so writing it twice is writing it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from converge.errors import MalformedEventError
from converge.events import DomainEvent, OrderData, ProductData
from converge.projections import (
    AVAILABILITY,
    CUSTOMER_PREFIX,
    NOTIFICATION_SK_PREFIX,
    ORDER_OUTCOME,
    WATCH_PREFIX,
)
from converge.projections import (
    notification_key as declared_notification_key,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


class NotificationKind(StrEnum):
    ORDER_CONFIRMED = "ORDER_CONFIRMED"
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_SHIPPED = "ORDER_SHIPPED"
    BACK_IN_STOCK = "BACK_IN_STOCK"


class Freshness(IntEnum):
    """How an incoming entity version compares with the stored projection's."""

    OLDER = -1
    SAME = 0  # a duplicate delivery (or a republish) of the version already applied
    NEWER = 1


def freshness(incoming_version: int, stored_version: int | None) -> Freshness:
    """Last-writer-wins by entity version: only a strictly newer version (or a first sighting) is applied."""
    if stored_version is None or incoming_version > stored_version:
        return Freshness.NEWER
    return Freshness.SAME if incoming_version == stored_version else Freshness.OLDER


def came_back_in_stock(previous_available: int | None, available: int) -> bool:
    """A back-in-stock transition: the projection existed with nothing available and now has some.

    A first sighting (no previous projection) is not a transition: nobody can have been waiting on a product
    this service never saw out of stock.
    """
    return previous_available == 0 and available > 0


def timestamp(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601, so stored timestamps sort as strings in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _payload(event: DomainEvent, model: type[Any], projection: str) -> Any:
    if not isinstance(event.data, model):
        raise MalformedEventError(f"{event.event_type} does not carry what the {projection} projection needs")
    return event.data


# ------------------------------------------------------------------ availability
@dataclass(frozen=True)
class Availability:
    """A product's stock as last reported, at the product's entity `version`."""

    product_id: str
    on_hand: int
    reserved: int
    available: int
    version: int
    updated_at: str

    @classmethod
    def from_event(cls, event: DomainEvent) -> Availability:
        data: ProductData = _payload(event, ProductData, "availability")
        return cls(
            product_id=data.product_id,
            on_hand=data.on_hand,
            reserved=data.reserved,
            available=data.available,
            version=event.metadata.entity_version,
            updated_at=timestamp(event.metadata.occurred_at),
        )

    @classmethod
    def from_attributes(cls, attributes: dict[str, Any]) -> Availability:
        return cls(
            product_id=str(attributes["product_id"]),
            on_hand=int(attributes["on_hand"]),
            reserved=int(attributes["reserved"]),
            available=int(attributes["available"]),
            version=int(attributes["version"]),
            updated_at=str(attributes["updated_at"]),
        )

    @property
    def key(self) -> tuple[str, str]:
        return availability_key(self.product_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "available": self.available,
            "version": self.version,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class StoredAvailability:
    """The availability projection as stored after a write attempt, with what it held before that version."""

    availability: Availability
    previous_available: int | None  # None: the version was the first one this service saw

    @property
    def came_back_in_stock(self) -> bool:
        return came_back_in_stock(self.previous_available, self.availability.available)


def availability_key(product_id: str) -> tuple[str, str]:
    return AVAILABILITY.key(product_id)


# ------------------------------------------------------------------ order outcomes
@dataclass(frozen=True)
class OrderOutcome:
    """An order's status as last reported, at the order's entity `version`."""

    order_id: str
    customer_id: str
    status: str
    version: int

    @classmethod
    def from_event(cls, event: DomainEvent) -> OrderOutcome:
        data: OrderData = _payload(event, OrderData, "order outcome")
        return cls(
            order_id=data.order_id,
            customer_id=data.customer_id,
            status=data.status.value,
            version=event.metadata.entity_version,
        )

    @property
    def key(self) -> tuple[str, str]:
        return ORDER_OUTCOME.key(self.order_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "status": self.status,
            "version": self.version,
        }


# ------------------------------------------------------------------ notifications
@dataclass(frozen=True)
class Notification:
    """One message to a customer. `subject` identifies the fact it reports; with `kind` it is the item key."""

    customer_id: str
    kind: NotificationKind
    subject: str
    created_at: str
    order_id: str | None = None
    product_id: str | None = None
    reason: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return notification_key(self.customer_id, self.kind, self.subject)

    def attributes(self) -> dict[str, Any]:
        """Stored state (the key is separate); None values are left out by the store."""
        return {
            "kind": self.kind.value,
            "order_id": self.order_id,
            "product_id": self.product_id,
            "reason": self.reason,
            "created_at": self.created_at,
        }

    @classmethod
    def from_item(cls, customer_id: str, sk: str, attributes: dict[str, Any]) -> Notification:
        kind, subject = split_notification_sk(sk)
        return cls(
            customer_id=customer_id,
            kind=kind,
            subject=subject,
            created_at=str(attributes["created_at"]),
            order_id=attributes.get("order_id"),
            product_id=attributes.get("product_id"),
            reason=attributes.get("reason"),
        )

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": f"{self.kind.value}#{self.subject}", **self.attributes()}
        return {k: v for k, v in body.items() if v is not None}


def notification_key(customer_id: str, kind: NotificationKind, subject: str) -> tuple[str, str]:
    return declared_notification_key(customer_id, kind.value, subject)


def split_notification_sk(sk: str) -> tuple[NotificationKind, str]:
    kind, _, subject = sk.removeprefix(NOTIFICATION_SK_PREFIX).partition("#")
    return NotificationKind(kind), subject


def customer_pk(customer_id: str) -> str:
    return f"{CUSTOMER_PREFIX}{customer_id}"


# The notification an order event produces: kind by event type (routing is data).
ORDER_NOTIFICATION_KINDS: dict[str, NotificationKind] = {
    "OrderConfirmed": NotificationKind.ORDER_CONFIRMED,
    "OrderRejected": NotificationKind.ORDER_REJECTED,
    "OrderShipped": NotificationKind.ORDER_SHIPPED,
}
# The kinds that tell the customer the order's reason: why it was rejected, or that a cancellation came too late
# for a shipped order (None when it simply shipped). converge.projections expects the same.
KINDS_WITH_REASON = frozenset({NotificationKind.ORDER_REJECTED, NotificationKind.ORDER_SHIPPED})


def order_notification(event: DomainEvent) -> Notification:
    """The one notification an order outcome produces, keyed by order id: once per order, however delivered."""
    data: OrderData = _payload(event, OrderData, "order notification")
    try:
        kind = ORDER_NOTIFICATION_KINDS[event.event_type]
    except KeyError:
        raise MalformedEventError(f"{event.event_type} produces no order notification") from None
    return Notification(
        customer_id=data.customer_id,
        kind=kind,
        subject=data.order_id,
        created_at=timestamp(event.metadata.occurred_at),
        order_id=data.order_id,
        reason=data.reason if kind in KINDS_WITH_REASON else None,
    )


def newest_first(notifications: list[Notification], limit: int) -> list[Notification]:
    """Newest first by `created_at`; the key breaks ties so the order is stable across calls."""
    ordered = sorted(notifications, key=lambda n: (parse_timestamp(n.created_at), n.key[1]), reverse=True)
    return ordered[:limit]


# ------------------------------------------------------------------ back-in-stock watches
@dataclass(frozen=True)
class Watch:
    """A customer waiting for a product that was short for one of their orders.

    A watch is armed by a rejection and spent by the first back-in-stock transition that notifies it
    (`notified_version`); a later rejection for the same product re-arms it.
    """

    product_id: str
    customer_id: str
    order_id: str
    armed_at: str
    notified_version: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return watch_pk(self.product_id), f"{CUSTOMER_PREFIX}{self.customer_id}"

    @property
    def is_armed(self) -> bool:
        return self.notified_version is None

    def attributes(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "product_id": self.product_id,
            "order_id": self.order_id,
            "armed_at": self.armed_at,
            "notified_version": self.notified_version,
        }

    @classmethod
    def from_attributes(cls, attributes: dict[str, Any]) -> Watch:
        notified = attributes.get("notified_version")
        return cls(
            product_id=str(attributes["product_id"]),
            customer_id=str(attributes["customer_id"]),
            order_id=str(attributes["order_id"]),
            armed_at=str(attributes["armed_at"]),
            notified_version=None if notified is None else int(notified),
        )

    def back_in_stock(self, availability: Availability) -> Notification:
        """The notification of one transition: keyed by product and version, so a retry never duplicates it."""
        return Notification(
            customer_id=self.customer_id,
            kind=NotificationKind.BACK_IN_STOCK,
            subject=f"{availability.product_id}#{availability.version}",
            created_at=availability.updated_at,
            order_id=self.order_id,
            product_id=availability.product_id,
        )


def watch_pk(product_id: str) -> str:
    return f"{WATCH_PREFIX}{product_id}"


def watches_for_rejection(event: DomainEvent) -> list[Watch]:
    """One watch per product short for a rejected order (shortages are unique per product)."""
    data: OrderData = _payload(event, OrderData, "back-in-stock watch")
    armed_at = timestamp(event.metadata.occurred_at)
    products = dict.fromkeys(data.shortages)  # de-duplicated, order kept
    return [
        Watch(product_id=p, customer_id=data.customer_id, order_id=data.order_id, armed_at=armed_at) for p in products
    ]


def watches_to_notify(watches: list[Watch]) -> list[Watch]:
    """Armed watches only: a spent watch has had its notification, whichever transition sent it."""
    return [w for w in watches if w.is_armed]

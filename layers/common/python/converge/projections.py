"""Projections declared as functions of their sources, next to the event contract. No AWS here.

A projection is an item (or a set of items) in one service's table that another service's events keep equal to
a pure function of a source entity: `expected(source item or None) -> {key: attributes}`. A key left out of the
result must be absent; a key mapped to `Either(attributes)` may be absent, or present with those attributes. The
reconciler compares what is stored with what is expected, generically over `PROJECTIONS`, and the saga pair
(order <-> reservation) is declared the same way in `SAGA`; docs/CONSISTENCY.md has the same rules as tables.

The localcloud checker (localcloud/convergence.py) restates these rules on its own and never imports this module:
a mistake here is a disagreement between the two, found by the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Key = tuple[str, str]
Item = dict[str, Any]


@dataclass(frozen=True)
class Either:
    """The expectation "absent, or present with these attributes": both agree with the source."""

    attributes: Item


Expectation = Item | Either


@dataclass(frozen=True)
class EntityLayout:
    """Where the items of one entity kind live: table role, `pk = <prefix><id>`, fixed sort key."""

    table: str  # "orders" | "inventory" | "notifications" (the owning service)
    prefix: str
    sk: str

    def key(self, entity_id: str) -> Key:
        return f"{self.prefix}{entity_id}", self.sk

    def id_of(self, pk: str, sk: str) -> str | None:
        """The entity id of an item of this layout, or None if the item is something else."""
        if sk != self.sk or not pk.startswith(self.prefix):
            return None
        return pk.removeprefix(self.prefix)


ORDER = EntityLayout("orders", "ORDER#", "ORDER")
PRODUCT = EntityLayout("inventory", "PRODUCT#", "PRODUCT")
RESERVATION = EntityLayout("inventory", "RESERVATION#", "RESERVATION")
AVAILABILITY = EntityLayout("notifications", "AVAILABILITY#", "AVAILABILITY")
ORDER_OUTCOME = EntityLayout("notifications", "ORDER#", "ORDER")

NOTIFICATION_SK_PREFIX = "NOTIFICATION#"
ORDER_NOTIFICATION_KINDS = ("ORDER_CONFIRMED", "ORDER_REJECTED", "ORDER_SHIPPED")


class Difference(StrEnum):
    """How a stored projection item differs from what its source implies."""

    MISSING = "missing"  # expected, absent
    BEHIND = "behind"  # at an older version than the source
    AHEAD = "ahead"  # at a newer version than the source (a restore of the source, a forged event)
    DIFFERENT = "different"  # same version (or unversioned) but other data, or present where it must be absent
    ORPHANED = "orphaned"  # present, and its source does not exist


@dataclass(frozen=True)
class Projection:
    """One declared projection: its source, its own items, and the function that relates them."""

    name: str
    service: str  # the service whose table holds it and whose consumer applies its corrections
    source: EntityLayout
    table: str  # table role of the projection items
    expected: Callable[[Item | None], Mapping[Key, Expectation]]
    source_id_of: Callable[[str, str], str | None]  # (pk, sk) of a projection item -> source id, or None
    compared: tuple[str, ...]  # attributes compared (and observed by a correction)
    versioned: bool  # items carry the source's `version`: they can be behind or ahead
    carried_by: tuple[str, ...]  # the event types that carry the source state to the projection's service
    possible_keys: Callable[[str, Item | None], list[Key]]  # (source id, source item) -> keys an item may sit at

    def keys_to_read(self, entity_id: str, source: Item | None) -> list[Key]:
        """Every key at which an item of this projection can sit for one source entity (an incremental pass reads
        them): where the source says one must be, and where a stale or forged one would be."""
        keys = set(self.expected(source)) | set(self.possible_keys(entity_id, source))
        return sorted(keys)

    def difference(self, source: Item | None, expected: Expectation | None, actual: Item | None) -> Difference | None:
        """How `actual` (a stored item or None) differs from `expected` (None: must be absent); None if it agrees."""
        if isinstance(expected, Either):
            if actual is None:
                return None
            expected = expected.attributes
        if expected is None:
            if actual is None:
                return None
            if source is None:
                return Difference.ORPHANED
            if self.versioned and _version(actual) > _version(source):
                return Difference.AHEAD
            return Difference.DIFFERENT
        if actual is None:
            return Difference.MISSING
        if self.versioned:
            stored, wanted = _version(actual), _version(expected)
            if stored < wanted:
                return Difference.BEHIND
            if stored > wanted:
                return Difference.AHEAD
        if any(actual.get(name) != expected.get(name) for name in self.compared):
            return Difference.DIFFERENT
        return None

    def observed(self, actual: Item | None) -> Item | None:
        """What a correction records of the stored item: the compared attributes (None: absent)."""
        if actual is None:
            return None
        return {name: actual.get(name) for name in self.compared}


def _version(item: Item) -> int:
    try:
        return int(item.get("version") or 0)
    except (TypeError, ValueError):
        return 0


# ---------------------------------------------------------------- availability: notifications' copy of products
def _expected_availability(product: Item | None) -> dict[Key, Expectation]:
    if product is None:
        return {}
    return {
        AVAILABILITY.key(str(product["product_id"])): {
            "product_id": product["product_id"],
            "on_hand": product["on_hand"],
            "reserved": product["reserved"],
            "available": product["available"],
            "version": product["version"],
            "updated_at": product.get("updated_at"),
        }
    }


# ---------------------------------------------------------------- order outcomes: notifications' copy of orders
def _expected_outcome(order: Item | None) -> dict[Key, Expectation]:
    if order is None or order["status"] == "PENDING":
        return {}
    return {
        ORDER_OUTCOME.key(str(order["order_id"])): {
            "order_id": order["order_id"],
            "customer_id": order["customer_id"],
            "status": order["status"],
            "version": order["version"],
        }
    }


# ---------------------------------------------------------------- order notifications: one per outcome
def notification_key(customer_id: str, kind: str, order_id: str) -> Key:
    return f"CUSTOMER#{customer_id}", f"{NOTIFICATION_SK_PREFIX}{kind}#{order_id}"


def _order_of_notification(pk: str, sk: str) -> str | None:
    if not pk.startswith("CUSTOMER#") or not sk.startswith(NOTIFICATION_SK_PREFIX):
        return None
    kind, _, subject = sk.removeprefix(NOTIFICATION_SK_PREFIX).partition("#")
    return subject if kind in ORDER_NOTIFICATION_KINDS and subject else None


def _expected_notifications(order: Item | None) -> dict[Key, Expectation]:
    if order is None:
        return {}
    order_id, customer_id, status = str(order["order_id"]), str(order["customer_id"]), order["status"]
    confirmed = notification_key(customer_id, "ORDER_CONFIRMED", order_id)
    created_at = order.get("updated_at")
    if status == "CONFIRMED":
        return {confirmed: {"kind": "ORDER_CONFIRMED", "order_id": order_id, "reason": None, "created_at": created_at}}
    if status == "REJECTED":
        return {
            notification_key(customer_id, "ORDER_REJECTED", order_id): {
                "kind": "ORDER_REJECTED",
                "order_id": order_id,
                "reason": order.get("reason"),
                "created_at": created_at,
            }
        }
    if status == "CANCELLED":
        # It may have been confirmed before it was cancelled; if it was, the confirmation stays as it was sent.
        return {
            confirmed: Either(
                {"kind": "ORDER_CONFIRMED", "order_id": order_id, "reason": None, "created_at": created_at}
            )
        }
    if status == "SHIPPED":
        # Shipped orders were confirmed first; the confirmation may have been lost on the way (a lost delivery
        # of OrderConfirmed is overtaken by OrderShipped), so it may be absent but is never different.
        return {
            confirmed: Either(
                {"kind": "ORDER_CONFIRMED", "order_id": order_id, "reason": None, "created_at": created_at}
            ),
            notification_key(customer_id, "ORDER_SHIPPED", order_id): {
                "kind": "ORDER_SHIPPED",
                "order_id": order_id,
                "reason": order.get("reason"),
                "created_at": created_at,
            },
        }
    return {}


def _possible_notifications(order_id: str, order: Item | None) -> list[Key]:
    # Keyed by the order's customer: a notification under another customer is only found by the full sweep.
    if order is None:
        return []
    return [notification_key(str(order["customer_id"]), kind, order_id) for kind in ORDER_NOTIFICATION_KINDS]


PROJECTIONS: tuple[Projection, ...] = (
    Projection(
        name="availability",
        service="notifications",
        source=PRODUCT,
        table="notifications",
        expected=_expected_availability,
        source_id_of=AVAILABILITY.id_of,
        compared=("product_id", "on_hand", "reserved", "available", "version"),
        versioned=True,
        carried_by=("StockUpdated",),
        possible_keys=lambda product_id, _: [AVAILABILITY.key(product_id)],
    ),
    Projection(
        name="order_outcome",
        service="notifications",
        source=ORDER,
        table="notifications",
        expected=_expected_outcome,
        source_id_of=ORDER_OUTCOME.id_of,
        compared=("order_id", "customer_id", "status", "version"),
        versioned=True,
        carried_by=("OrderConfirmed", "OrderRejected", "OrderCancelled", "OrderShipped"),
        possible_keys=lambda order_id, _: [ORDER_OUTCOME.key(order_id)],
    ),
    Projection(
        name="order_notification",
        service="notifications",
        source=ORDER,
        table="notifications",
        expected=_expected_notifications,
        source_id_of=_order_of_notification,
        compared=("kind", "order_id", "reason"),
        versioned=False,
        carried_by=("OrderConfirmed", "OrderRejected", "OrderShipped"),
        possible_keys=_possible_notifications,
    ),
)
PROJECTIONS_BY_NAME: dict[str, Projection] = {p.name: p for p in PROJECTIONS}


def projections_of(service: str) -> dict[str, Projection]:
    """The projections a service owns (the only ones its consumer accepts corrections for)."""
    return {p.name: p for p in PROJECTIONS if p.service == service}


# ---------------------------------------------------------------- the saga pair: order <-> reservation
class Resolution(StrEnum):
    """What the reconciler does about one (order status, reservation status) pair."""

    AGREES = "agrees"
    REPUBLISH_ORDER = "republish_order"  # the reservation is behind the order: send the order's event again
    REPUBLISH_RESERVATION = "republish_reservation"  # the order is behind the reservation
    RELEASE = "release"  # stock held for an order that must not hold it: give it back, keep RELEASED
    REMOVE = "remove"  # a reservation without an order: give back any stock, delete it
    REINSTATE = "reinstate"  # the order still needs stock the reservation does not hold: reserve again
    TOMBSTONE = "tombstone"  # record RELEASED so that a late OrderPlaced reserves nothing
    PARK = "park"  # a confirmed order whose reinstatement failed for lack of stock: a person decides


# (order status, reservation status) -> resolution; None = the item does not exist. Why each: CONSISTENCY.md.
SAGA_RESOLUTIONS: Mapping[tuple[str | None, str | None], Resolution] = {
    (None, None): Resolution.AGREES,
    (None, "RESERVED"): Resolution.REMOVE,
    (None, "FAILED"): Resolution.REMOVE,
    (None, "RELEASED"): Resolution.REMOVE,
    ("PENDING", None): Resolution.REPUBLISH_ORDER,
    ("PENDING", "RESERVED"): Resolution.REPUBLISH_RESERVATION,
    ("PENDING", "FAILED"): Resolution.REPUBLISH_RESERVATION,
    ("PENDING", "RELEASED"): Resolution.REINSTATE,
    ("CONFIRMED", None): Resolution.REINSTATE,
    ("CONFIRMED", "RESERVED"): Resolution.AGREES,
    ("CONFIRMED", "FAILED"): Resolution.REINSTATE,  # PARK once a reinstatement has failed (see `resolve`)
    ("CONFIRMED", "RELEASED"): Resolution.REINSTATE,
    ("REJECTED", None): Resolution.TOMBSTONE,
    ("REJECTED", "RESERVED"): Resolution.RELEASE,
    ("REJECTED", "FAILED"): Resolution.AGREES,
    ("REJECTED", "RELEASED"): Resolution.AGREES,
    ("CANCELLED", None): Resolution.REPUBLISH_ORDER,
    ("CANCELLED", "RESERVED"): Resolution.REPUBLISH_ORDER,
    ("CANCELLED", "FAILED"): Resolution.AGREES,
    ("CANCELLED", "RELEASED"): Resolution.AGREES,
}
REINSTATE_FAILED = "reinstate_failed"  # set on a FAILED reservation written by a failed reinstatement


@dataclass(frozen=True)
class SagaPair:
    """Two entities of two services that a saga keeps in agreement, and what resolves each disagreement."""

    name: str
    left: EntityLayout  # the order (the customer's intent)
    right: EntityLayout  # the reservation (the stock held for it)
    resolutions: Mapping[tuple[str | None, str | None], Resolution]

    def resolve(self, order: Item | None, reservation: Item | None) -> Resolution:
        order_status = None if order is None else str(order["status"])
        reservation_status = None if reservation is None else str(reservation["status"])
        resolution = self.resolutions[(order_status, reservation_status)]
        if resolution is Resolution.REINSTATE and reservation is not None and reservation.get(REINSTATE_FAILED):
            return Resolution.PARK  # reserving again already failed for lack of stock: do not loop
        return resolution


SAGA = SagaPair("order_reservation", ORDER, RESERVATION, SAGA_RESOLUTIONS)


# ---------------------------------------------------------------- derived counters
def reserved_by_product(reservations: Iterable[Item]) -> dict[str, int]:
    """Product id -> the quantity its RESERVED reservations hold: what `reserved` must equal (its ledger)."""
    held: dict[str, int] = {}
    for reservation in reservations:
        if reservation.get("status") != "RESERVED":
            continue
        for line in reservation.get("lines") or []:
            product_id = str(line["product_id"])
            held[product_id] = held.get(product_id, 0) + int(line["quantity"])
    return held

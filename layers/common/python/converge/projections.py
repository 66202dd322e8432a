"""Projections declared as functions of their sources, next to the event contract. No AWS here.

A projection is an item (or a set of items) in one service's table that another service's events keep equal to
a pure function of a source entity: `expected(source item or None) -> {key: attributes}`. A key left out of the
result must be absent; a key mapped to `Either(attributes)` may be absent, or present with those attributes. The
reconciler compares what is stored with what is expected, generically over `PROJECTIONS`, and the saga pairs
(order <-> reservation, order <-> shipment) are declared the same way in `SAGAS`; docs/CONSISTENCY.md has the
same rules as tables.

The localcloud checker (localcloud/convergence.py) restates these rules on its own and never imports this module:
a mistake here is a disagreement between the two, found by the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

Key = tuple[str, str]
Item = dict[str, Any]
# The declared names (a finding, a report's counts and a correction event name what they are about by these).
ProjectionName = Literal["availability", "order_outcome", "order_notification"]
SagaName = Literal["order_reservation", "order_shipment"]


@dataclass(frozen=True)
class Either:
    """The expectation "absent, or present with these attributes": both agree with the source."""

    attributes: Item


Expectation = Item | Either


@dataclass(frozen=True)
class EntityLayout:
    """Where the items of one entity kind live: table role, `pk = <prefix><id>`, fixed sort key."""

    table: str  # the owning service's name (converge.contracts)
    prefix: str
    sk: str
    kind: str  # the id space: "product" or "order" (a reservation and a shipment share their order's id)

    def key(self, entity_id: str) -> Key:
        return f"{self.prefix}{entity_id}", self.sk

    def id_of(self, pk: str, sk: str) -> str | None:
        """The entity id of an item of this layout, or None if the item is something else."""
        if sk != self.sk or not pk.startswith(self.prefix):
            return None
        return pk.removeprefix(self.prefix)


ORDER = EntityLayout("orders", "ORDER#", "ORDER", "order")
PRODUCT = EntityLayout("inventory", "PRODUCT#", "PRODUCT", "product")
RESERVATION = EntityLayout("inventory", "RESERVATION#", "RESERVATION", "order")
SHIPMENT = EntityLayout("shipping", "SHIPMENT#", "SHIPMENT", "order")
AVAILABILITY = EntityLayout("notifications", "AVAILABILITY#", "AVAILABILITY", "product")
ORDER_OUTCOME = EntityLayout("notifications", "ORDER#", "ORDER", "order")

# Keys of notifications' items that are not one entity's: a customer's notifications (pk = CUSTOMER#<customer id>,
# sk = NOTIFICATION#<kind>#<subject>) and a product's back-in-stock watches (pk = WATCH#<product id>,
# sk = CUSTOMER#<customer id>).
CUSTOMER_PREFIX = "CUSTOMER#"
NOTIFICATION_SK_PREFIX = "NOTIFICATION#"
WATCH_PREFIX = "WATCH#"
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

    name: ProjectionName
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
    return f"{CUSTOMER_PREFIX}{customer_id}", f"{NOTIFICATION_SK_PREFIX}{kind}#{order_id}"


def _order_of_notification(pk: str, sk: str) -> str | None:
    if not pk.startswith(CUSTOMER_PREFIX) or not sk.startswith(NOTIFICATION_SK_PREFIX):
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


# ------------------------------------------------------- the saga pairs: order <-> reservation, order <-> shipment
class Resolution(StrEnum):
    """What the reconciler does about one (order status, other side's status) of a saga pair (`SAGAS`)."""

    AGREES = "agrees"
    REPUBLISH_ORDER = "republish_order"  # the other side is behind the order: send the order's event again
    REPUBLISH_RESERVATION = "republish_reservation"  # the order is behind the reservation
    RELEASE = "release"  # stock held for an order that must not hold it: give it back, keep RELEASED
    REMOVE = "remove"  # a reservation without an order: give back any stock, delete it
    REINSTATE = "reinstate"  # the order still needs stock the reservation does not hold: reserve again
    TOMBSTONE = "tombstone"  # record RELEASED so that a late OrderPlaced reserves nothing
    REPUBLISH_SHIPMENT = "republish_shipment"  # a side missed the shipment's news (dispatched or cancelled)
    PARK = "park"  # what no event can repair (a parcel left without held stock, ...): a person decides


# The order <-> reservation pair: (order status, reservation status) -> resolution; None = the item does not exist.
# Why each: CONSISTENCY.md.
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
    # Shipped stock left with the parcel: only the shipment's ShipmentDispatched moves either side there.
    ("CONFIRMED", "SHIPPED"): Resolution.REPUBLISH_SHIPMENT,
    ("CANCELLED", "SHIPPED"): Resolution.REPUBLISH_SHIPMENT,  # dispatch wins: orders has not heard of it
    ("SHIPPED", "RESERVED"): Resolution.REPUBLISH_SHIPMENT,  # inventory has not heard of the dispatch
    ("SHIPPED", "SHIPPED"): Resolution.AGREES,
    ("SHIPPED", None): Resolution.PARK,  # the parcel left without held stock: a person counts it
    ("SHIPPED", "FAILED"): Resolution.PARK,
    ("SHIPPED", "RELEASED"): Resolution.PARK,
    ("PENDING", "SHIPPED"): Resolution.PARK,  # stock shipped for an order never confirmed (a restored order)
    ("REJECTED", "SHIPPED"): Resolution.PARK,
    (None, "SHIPPED"): Resolution.REMOVE,  # an orphan that holds no stock: removing it gives nothing back
}
REINSTATE_FAILED = "reinstate_failed"  # set on a FAILED reservation written by a failed reinstatement


def _refine_reservation(order: Item | None, reservation: Item | None, resolution: Resolution) -> Resolution:
    if resolution is Resolution.REINSTATE and reservation is not None and reservation.get(REINSTATE_FAILED):
        return Resolution.PARK  # reserving again already failed for lack of stock: do not loop
    confirmed_cancel = order is not None and order["status"] == "CANCELLED" and bool(order.get("confirmed"))
    if resolution is Resolution.REPUBLISH_ORDER and confirmed_cancel:
        # A confirmed order's stock is shipping's to release or ship: inventory waits for the shipment's event.
        return Resolution.REPUBLISH_SHIPMENT
    return resolution


def _refine_shipment(order: Item | None, shipment: Item | None, resolution: Resolution) -> Resolution:
    if order is not None and shipment is None and order["status"] == "CANCELLED" and order.get("confirmed"):
        return Resolution.REPUBLISH_ORDER  # shipping never heard of it: OrderCancelled leaves its tombstone
    return resolution


@dataclass(frozen=True)
class SagaPair:
    """Two entities of two services that a saga keeps in agreement, and what resolves each disagreement."""

    name: SagaName
    left: EntityLayout  # the order (the customer's intent)
    right: EntityLayout  # the reservation (the stock held for it), or the shipment
    resolutions: Mapping[tuple[str | None, str | None], Resolution]
    # A resolution that depends on more than the two statuses (a mark on an item, the order's `confirmed`).
    refine: Callable[[Item | None, Item | None, Resolution], Resolution] = lambda _left, _right, found: found
    parked_kind: Callable[[str | None, str | None], str] = lambda left, right: f"{left}_{right}".lower()

    @property
    def parked_kinds(self) -> frozenset[str]:
        """Every kind this pair parks a case as (a case in a person's hands stays theirs as it changes): its PARK
        entries, and its republishes, which are parked when no repair will ever give them news to send
        (`moved_by_its_pair`)."""
        return frozenset(
            self.parked_kind(left, right)
            for (left, right), found in self.resolutions.items()
            if found is Resolution.PARK or found in REPUBLISHED_BY
        )

    def resolve(self, order: Item | None, other: Item | None) -> Resolution:
        order_status = None if order is None else str(order["status"])
        other_status = None if other is None else str(other["status"])
        return self.refine(order, other, self.resolutions[(order_status, other_status)])


def _reservation_parked_kind(order_status: str | None, reservation_status: str | None) -> str:
    if order_status in ("CONFIRMED", "CANCELLED") and reservation_status == "SHIPPED":
        return "stock_shipped_without_a_dispatch"  # shipping does not say the parcel left (a restored shipment)
    if order_status == "SHIPPED" and reservation_status == "RESERVED":
        return "shipped_without_a_dispatch_holding_stock"  # the same, and inventory never heard of the parcel
    if order_status == "CONFIRMED":
        return "confirmed_without_stock"  # a reinstatement failed for lack of stock
    if order_status == "SHIPPED":
        return "shipped_without_held_stock"
    return "stock_shipped_for_an_unconfirmed_order"


# The order <-> reservation pair (`SAGA`, the first of `SAGAS`; order <-> shipment is `SHIPMENT_SAGA`).
SAGA = SagaPair(
    "order_reservation", ORDER, RESERVATION, SAGA_RESOLUTIONS, _refine_reservation, _reservation_parked_kind
)

# The order <-> shipment pair: (order status, shipment status) -> resolution. Shipping is the arbiter of a
# confirmed order's stock: the shipment is created by OrderConfirmed, cancelled by OrderCancelled unless
# dispatched, and a dispatch wins.
SHIPMENT_RESOLUTIONS: Mapping[tuple[str | None, str | None], Resolution] = {
    (None, None): Resolution.AGREES,
    (None, "PENDING"): Resolution.PARK,  # a shipment for no order: the warehouse must not send it
    (None, "DISPATCHED"): Resolution.PARK,
    (None, "CANCELLED"): Resolution.AGREES,  # a tombstone of nothing: harmless
    ("PENDING", None): Resolution.AGREES,
    # A restored order, behind its reservation: the reservation's event confirms it again.
    ("PENDING", "PENDING"): Resolution.REPUBLISH_RESERVATION,
    ("PENDING", "DISPATCHED"): Resolution.PARK,
    ("PENDING", "CANCELLED"): Resolution.PARK,  # shipping saw its cancellation: a restored order
    ("CONFIRMED", None): Resolution.REPUBLISH_ORDER,  # shipping missed OrderConfirmed
    ("CONFIRMED", "PENDING"): Resolution.AGREES,
    ("CONFIRMED", "DISPATCHED"): Resolution.REPUBLISH_SHIPMENT,  # orders missed the dispatch
    ("CONFIRMED", "CANCELLED"): Resolution.PARK,  # cancelled for an order that is not (a restored order)
    ("REJECTED", None): Resolution.AGREES,
    ("REJECTED", "PENDING"): Resolution.PARK,
    ("REJECTED", "DISPATCHED"): Resolution.PARK,
    ("REJECTED", "CANCELLED"): Resolution.AGREES,
    ("CANCELLED", None): Resolution.AGREES,  # never confirmed; REPUBLISH_ORDER if it was (see refine)
    ("CANCELLED", "PENDING"): Resolution.REPUBLISH_ORDER,  # shipping missed OrderCancelled
    ("CANCELLED", "DISPATCHED"): Resolution.REPUBLISH_SHIPMENT,  # dispatch wins: orders missed it
    ("CANCELLED", "CANCELLED"): Resolution.AGREES,
    ("SHIPPED", None): Resolution.PARK,  # shipped, and shipping knows no parcel: a person checks
    ("SHIPPED", "PENDING"): Resolution.PARK,  # a restored shipment: the parcel left, says orders
    ("SHIPPED", "DISPATCHED"): Resolution.AGREES,
    ("SHIPPED", "CANCELLED"): Resolution.PARK,
}
SHIPMENT_SAGA = SagaPair(
    "order_shipment",
    ORDER,
    SHIPMENT,
    SHIPMENT_RESOLUTIONS,
    _refine_shipment,
    lambda order_status, shipment_status: f"order_{order_status}_shipment_{shipment_status}".lower(),
)
SAGAS: tuple[SagaPair, ...] = (SAGA, SHIPMENT_SAGA)
REPUBLISHED_BY: Mapping[Resolution, EntityLayout] = {
    Resolution.REPUBLISH_ORDER: ORDER,
    Resolution.REPUBLISH_RESERVATION: RESERVATION,
    Resolution.REPUBLISH_SHIPMENT: SHIPMENT,
}


def moved_by_its_pair(order: Item | None, layout: EntityLayout, item: Item | None) -> bool:
    """Whether a repair of the saga pair of `order` with `item` (its entity of `layout`, None: missing) is coming.

    A republish of `item` that has nothing to send (it is missing, or its event moves nothing) waits for that
    repair: shipping recreates a missing shipment, cancels a PENDING one, inventory reinstates a RELEASED
    reservation. If that pair agrees or is parked, no repair is coming and the wait would last forever, so the
    case is one no event repairs: a PENDING shipment under a SHIPPED reservation is a shipment restored to before
    its dispatch, and only a person can say whether the parcel left.
    """
    pairs = [saga for saga in SAGAS if saga.right == layout]
    if not pairs:
        return True  # not a side of any pair (the order): nothing to wait for is known here
    return any(saga.resolve(order, item) not in (Resolution.AGREES, Resolution.PARK) for saga in pairs)


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

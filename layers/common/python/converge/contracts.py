"""Service contracts: what each service owns, publishes and consumes, declared in one place. No AWS here.

Everything that lists services derives from `SERVICES`: the event registry (`EVENT_TYPES`), the bus rule each
inbox must have (`inbox_pattern`), the reconciler's tables, dead-letter queues and `NO_NEWS`
(`statuses_without_news`), localcloud's checker, demo and drift faults, the DLQ tool, the OpenAPI document and its
error table (`api_errors`), the reconcile-cost data set's tables, the sweep benchmark's tables, the template tests
(tests/unit/test_service_contracts.py names any piece of a contract the template lacks) and the catalogue in
docs/events.md. Outside its package, fixtures and tests, a new service touches five files: one `ServiceContract`
here, its event models (`converge.events`), its layouts and pairs (`converge.projections`), its resources in
template.yaml, and the reconcile-cost data set's item of its entity (tools/reconcile_cost.py, if it pairs with the
orders); docs/ARCHITECTURE.md lists the steps and tests/unit/test_adding_a_service.py keeps the count.

Template logical ids follow from the contract: `<prefix>Inbox`, `<prefix>DLQ`, `<prefix>InboxRule`,
`<prefix>ApiFunction`, `<prefix>ConsumerFunction`, `<prefix>PublisherFunction`, and the table the contract names.
The reconciler reads `<NAME>_TABLE_NAME`, `<NAME>_INBOX_URL` and `<NAME>_DLQ_URL` from its environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from converge import events as ev
from converge.errors import ConflictError, ConvergeError, NotFoundError, UnprocessableError
from converge.events import EventData, EventSpec
from converge.projections import (
    ORDER,
    PRODUCT,
    PROJECTIONS,
    RESERVATION,
    SHIPMENT,
    EntityLayout,
)


@dataclass(frozen=True)
class Entity:
    """An entity kind a service owns and publishes: its items' layout, the payload field naming it, its events."""

    name: str  # metadata.entity
    id_field: str
    events: Mapping[str, type[EventData]]  # event type -> payload model
    layout: EntityLayout | None = None  # where its items live (None: corrections, which are no table's items)


@dataclass(frozen=True)
class ServiceContract:
    """One service: its table, the entities it owns and their events, the events its consumer applies."""

    name: str  # `converge.<name>` is its EventBridge source; <NAME>_* its variables in the reconciler
    prefix: str  # the template's logical ids: <prefix>Inbox, <prefix>ApiFunction, ...
    description: str
    table: str | None = None  # the template's logical id of the table it owns (None: it has none)
    entities: tuple[Entity, ...] = ()
    consumes: Mapping[str, str] = field(default_factory=dict)  # event type -> what its consumer does with it
    api: bool = False  # it has an HTTP API function (routes: its Powertools resolver, docs/openapi.json)
    # What its routes answer besides what converge.http answers for any route (400, 401, 403, 413, 415): route
    # ("METHOD /path", as OpenAPI writes the path) -> the layer's error its handler raises (its `http_status`, a
    # service's own error being a subclass) -> when. docs/openapi.json documents each (tools/openapi.py).
    api_errors: Mapping[str, Mapping[type[ConvergeError], str]] = field(default_factory=dict)
    scheduled: bool = False  # it has a scheduled function, `<prefix>Function`
    sweeps: bool = False  # it has a state machine's worker, `<prefix>SweepFunction` (the reconciler's full sweep)

    @property
    def source(self) -> str:
        return f"converge.{self.name}"

    @property
    def publishes(self) -> dict[str, type[EventData]]:
        return {event_type: model for entity in self.entities for event_type, model in entity.events.items()}

    @property
    def layouts(self) -> tuple[EntityLayout, ...]:
        """The layouts of the entities it owns: sources the reconciler reads (changed-since index)."""
        return tuple(entity.layout for entity in self.entities if entity.layout is not None)

    @property
    def env_prefix(self) -> str:
        return self.name.upper()

    @property
    def inbox(self) -> str:
        return f"{self.prefix}Inbox"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}DLQ"

    @property
    def rule(self) -> str:
        return f"{self.prefix}InboxRule"

    @property
    def has_publisher(self) -> bool:
        """A stream publisher puts its table's entity events on the bus."""
        return self.table is not None and bool(self.layouts)

    def functions(self) -> dict[str, str]:
        """Kind ("api", "consumer", "publisher", "scheduled", "sweep") -> the template's logical id of that function."""
        kinds = {"api": self.api, "consumer": bool(self.consumes), "publisher": self.has_publisher}
        found = {kind: f"{self.prefix}{kind.capitalize()}Function" for kind, present in kinds.items() if present}
        if self.scheduled:
            found["scheduled"] = f"{self.prefix}Function"
        if self.sweeps:
            found["sweep"] = f"{self.prefix}SweepFunction"
        return found


# ---------------------------------------------------------------- the services
ORDERS = ServiceContract(
    name="orders",
    prefix="Orders",
    description="Place, read and cancel orders; an order moves with its reservation and its shipment.",
    table="OrdersTable",
    entities=(
        Entity(
            "order",
            "order_id",
            {
                "OrderPlaced": ev.OrderPlaced,
                "OrderConfirmed": ev.OrderConfirmed,
                "OrderRejected": ev.OrderRejected,
                "OrderCancelled": ev.OrderCancelled,
                "OrderShipped": ev.OrderShipped,
            },
            ORDER,
        ),
    ),
    consumes={
        "StockReserved": "PENDING → CONFIRMED",
        "StockReservationFailed": "PENDING → REJECTED with `reason`",
        "ShipmentDispatched": "CONFIRMED → SHIPPED; CANCELLED → SHIPPED with the cancellation too late (dispatch wins)",
    },
    api=True,
    api_errors={
        "POST /orders": {
            UnprocessableError: "Idempotency-Key reused with a different body (orders.domain.IdempotencyKeyReusedError)"
        },
        "GET /orders/{order_id}": {NotFoundError: "No order with this id"},
        "POST /orders/{order_id}/cancel": {
            NotFoundError: "No order with this id",
            ConflictError: "The order's status does not allow cancelling (`order_status` names it), or it changed "
            "twice meanwhile",
        },
    },
)
INVENTORY = ServiceContract(
    name="inventory",
    prefix="Inventory",
    description="Set, adjust and read stock levels; reserve, release and consume stock for orders.",
    table="InventoryTable",
    entities=(
        Entity("product", "product_id", {"StockUpdated": ev.StockUpdated}, PRODUCT),
        Entity(
            "reservation",
            "order_id",
            {
                "StockReserved": ev.StockReserved,
                "StockReservationFailed": ev.StockReservationFailed,
                "StockReleased": ev.StockReleased,
                "StockShipped": ev.StockShipped,
            },
            RESERVATION,
        ),
    ),
    consumes={
        "OrderPlaced": "reserve all lines or none",
        "OrderCancelled": "release the reservation of an order never confirmed (a tombstone if never reserved); "
        "a confirmed order's stock is left to shipping",
        "ShipmentCancelled": "release the reservation (a tombstone if never reserved)",
        "ShipmentDispatched": "the reservation is consumed: on_hand and reserved drop by its lines",
        "ReservationCorrected": "`action` = release / remove / reinstate / tombstone on one reservation, if it is "
        "still `observed_status` at `observed_version`",
        "ReservedRecounted": "a product's `reserved` set to the sum of its RESERVED reservations (on_hand raised "
        "if below), if still at `observed_version`",
    },
    api=True,
    api_errors={
        "PUT /products/{product_id}/stock": {
            ConflictError: "on_hand would be below reserved, or the stock changed concurrently"
        },
        "POST /products/{product_id}/stock/adjustments": {
            NotFoundError: "No product with this id",
            ConflictError: "on_hand would be negative, below reserved or above the maximum, or the stock changed "
            "concurrently",
        },
        "GET /products/{product_id}": {NotFoundError: "No product with this id"},
    },
)
NOTIFICATIONS = ServiceContract(
    name="notifications",
    prefix="Notifications",
    description="Availability and customer notifications: read models.",
    table="NotificationsTable",
    consumes={
        "OrderConfirmed": "order outcome + one ORDER_CONFIRMED notification",
        "OrderRejected": "order outcome + one ORDER_REJECTED notification with `reason`; back-in-stock watches "
        "for `shortages`",
        "OrderCancelled": "order outcome CANCELLED (no notification)",
        "OrderShipped": "order outcome SHIPPED + one ORDER_SHIPPED notification",
        "StockUpdated": "availability, last-writer-wins by version; back-in-stock notifications",
        "ProjectionCorrected": "overwrite (`expected`) or delete (`expected` null) one projection item, if it still "
        "holds what was `observed`",
    },
    api=True,
    api_errors={
        "GET /availability/{product_id}": {NotFoundError: "No availability known for this product"},
        "GET /customers/{customer_id}/notifications": {
            NotFoundError: "Another customer's notifications: a customer reads only their own (the 404 reveals no "
            "one's existence)"
        },
    },
)
SHIPPING = ServiceContract(
    name="shipping",
    prefix="Shipping",
    description="Shipments of confirmed orders: read one, dispatch it.",
    table="ShipmentsTable",
    entities=(
        Entity(
            "shipment",
            "order_id",
            {
                "ShipmentCreated": ev.ShipmentCreated,
                "ShipmentDispatched": ev.ShipmentDispatched,
                "ShipmentCancelled": ev.ShipmentCancelled,
            },
            SHIPMENT,
        ),
    ),
    consumes={
        "OrderConfirmed": "create the order's shipment (PENDING)",
        "OrderCancelled": "cancel the shipment of a confirmed order unless it was dispatched (a tombstone if it "
        "does not exist yet)",
    },
    api=True,
    api_errors={
        "GET /shipments/{order_id}": {NotFoundError: "No shipment for this order (yet)"},
        "POST /shipments/{order_id}/dispatch": {
            NotFoundError: "No shipment for this order (yet)",
            ConflictError: "The shipment was cancelled: its order was cancelled before the parcel left",
        },
    },
)
RECONCILER = ServiceContract(
    name="reconciler",
    prefix="Reconciler",
    description="Scheduled reconciliation: republishes lagging state, corrects what versions cannot, drains DLQs.",
    scheduled=True,
    sweeps=True,
    entities=(
        Entity(
            "correction",
            "entity_id",
            {
                "ProjectionCorrected": ev.ProjectionCorrected,
                "ReservationCorrected": ev.ReservationCorrected,
                "ReservedRecounted": ev.ReservedRecounted,
            },
        ),
    ),
)

SERVICES: tuple[ServiceContract, ...] = (ORDERS, INVENTORY, NOTIFICATIONS, SHIPPING, RECONCILER)
SERVICES_BY_NAME: dict[str, ServiceContract] = {service.name: service for service in SERVICES}


def with_tables() -> tuple[ServiceContract, ...]:
    """The services that own a table (the reconciler reads each; the checker and the demo scan each)."""
    return tuple(service for service in SERVICES if service.table is not None)


def with_inboxes() -> tuple[ServiceContract, ...]:
    """The services with a consumer: each has an inbox, a DLQ and an inbox rule."""
    return tuple(service for service in SERVICES if service.consumes)


# ---------------------------------------------------------------- the event registry, derived
def _registry(services: Iterable[ServiceContract]) -> dict[str, EventSpec]:
    registry: dict[str, EventSpec] = {}
    for service in services:
        for entity in service.entities:
            for event_type, model in entity.events.items():
                if event_type in registry:
                    raise ValueError(f"{event_type} is published by {registry[event_type].producer} and {service.name}")
                registry[event_type] = EventSpec(
                    model=model, entity=entity.name, producer=service.name, id_field=entity.id_field
                )
    return registry


# event type -> spec (model, entity, producer, id field). Routing, schema export and docs all read it.
EVENT_TYPES: dict[str, EventSpec] = _registry(SERVICES)
CORRECTION_TYPES = frozenset(RECONCILER.publishes)


def function_kinds() -> dict[str, tuple[ServiceContract, str]]:
    """The template's logical id of every function a contract declares -> (its service, its kind)."""
    return {logical_id: (service, kind) for service in SERVICES for kind, logical_id in service.functions().items()}


def consumers_of(event_type: str) -> list[ServiceContract]:
    return [service for service in SERVICES if event_type in service.consumes]


def status_of(model: type[EventData]) -> str | None:
    """The status an event type pins (its payload's `status: Literal[<Status>.X]`), or None if it pins none."""
    status = model.model_fields.get("status")
    pinned = get_args(status.annotation) if status is not None and get_origin(status.annotation) is Literal else ()
    return str(pinned[0].value) if len(pinned) == 1 else None


def statuses_without_news() -> dict[EntityLayout, tuple[str, ...]]:
    """Entity layout -> the statuses whose event no service consumes: republishing an item in one of them moves
    nothing anywhere (the reconciler's NO_NEWS). Only the layouts with such a status are listed."""
    found: dict[EntityLayout, tuple[str, ...]] = {}
    for service in SERVICES:
        for entity in service.entities:
            unheard = tuple(
                status
                for event_type, model in entity.events.items()
                if not consumers_of(event_type) and (status := status_of(model)) is not None
            )
            if entity.layout is not None and unheard:
                found[entity.layout] = unheard
    return found


# ---------------------------------------------------------------- the bus rules, derived
def inbox_pattern(service: ServiceContract) -> dict[str, Any]:
    """The EventPattern of a service's inbox rule: one branch per producer, each with only its own types, so a
    producer can never route another producer's event type into the inbox."""
    by_source: dict[str, list[str]] = {}
    for event_type in service.consumes:
        by_source.setdefault(EVENT_TYPES[event_type].source, []).append(event_type)
    branches = [{"source": [source], "detail-type": sorted(types)} for source, types in sorted(by_source.items())]
    return branches[0] if len(branches) == 1 else {"$or": branches}


def routed_pairs(pattern: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every (source, detail-type) pair an EventPattern of this project's shape matches."""
    pairs: set[tuple[str, str]] = set()
    for branch in pattern.get("$or", [pattern]):
        pairs |= {(source, detail_type) for source in branch["source"] for detail_type in branch["detail-type"]}
    return pairs


# ---------------------------------------------------------------- reading order of a full sweep
def read_order() -> list[ServiceContract]:
    """The tables in the order a full sweep reads them: a projection's table before its source's.

    Sources only move forward between two reads, so a projection read before its source can look behind (a
    republish) but not falsely ahead. Where projections run both ways between two tables, the corrections'
    second read of their sources (the reconciler's `confirmed_corrections`) is what guards them.
    """
    tables = list(with_tables())
    before: dict[str, set[str]] = {s.name: set() for s in tables}  # table -> the tables to read before it
    for projection in PROJECTIONS:
        if projection.table != projection.source.table:
            before[projection.source.table].add(projection.table)
    ordered: list[ServiceContract] = []
    remaining = list(tables)
    while remaining:
        done = {s.name for s in ordered}
        ready = [s for s in remaining if before[s.name] <= done] or remaining[:1]  # a cycle: declaration order
        ordered.append(ready[0])
        remaining.remove(ready[0])
    return ordered

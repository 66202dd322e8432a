"""Lambda entry points of the notifications service: the HTTP API over the read models and the inbox consumer.

Each inbound event type has one per-record function, safe to run again: every write is conditional (by
version, by key or by arming time), so a duplicate, a reordered delivery or a retry after a partial failure
converges on the same items. The outcome is APPLIED when any write took effect and STALE when the delivery
changed nothing (InboxConsumer counts it as EventsSkippedStale).
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.consumer import InboxConsumer, Outcome
from converge.corrections import apply_projection_correction
from converge.entry import Wiring, api_entry, consumer_entry
from converge.errors import NotFoundError
from converge.events import DomainEvent, OrderData, ProductData, ProjectionCorrected
from converge.http import current_caller, make_resolver
from converge.observability import logger
from converge.projections import projections_of
from converge.settings import TableSettings
from notifications.domain import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Availability,
    Freshness,
    OrderOutcome,
    freshness,
    newest_first,
    order_notification,
    watches_for_rejection,
    watches_to_notify,
)
from notifications.store import NotificationStore

# Path parameters follow the event contract's Identifier, so a malformed id is a 400, not a lookup.
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
ProductId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
CustomerId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]

# The composition root: the read models of the function's table.
notifications = Wiring(TableSettings, lambda config: NotificationStore(config.table_name))
app = make_resolver()


@app.get("/availability/<product_id>")
def get_availability(product_id: ProductId) -> dict[str, Any]:
    availability = notifications().get_availability(product_id)
    if availability is None:
        raise NotFoundError(f"no availability known for product {product_id}")
    return availability.as_dict()


@app.get("/customers/<customer_id>/notifications")
def list_notifications(customer_id: CustomerId, limit: Limit = DEFAULT_PAGE_SIZE) -> dict[str, Any]:
    caller = current_caller(app)
    if not (caller.admin or customer_id == caller.subject):
        # Another customer's notifications are as if that customer had none (404 names no one's existence).
        raise NotFoundError(f"customer {customer_id} not found")
    # The sort key is the idempotency key (kind + subject), not a time, so the query order is not newest
    # first: the customer's notifications are read and sorted by created_at here.
    listed = newest_first(notifications().list_notifications(customer_id), limit)
    return {"customer_id": customer_id, "notifications": [n.as_dict() for n in listed]}


# ------------------------------------------------------------------ inbox
def _outcome(*changed: bool) -> Outcome:
    return Outcome.APPLIED if any(changed) else Outcome.STALE


def _notify_watchers(store: NotificationStore, availability: Availability) -> int:
    """Notify every armed watch of the product once for this transition, then spend the watch.

    The notification is written before the watch is spent: a failure in between leaves the watch armed, and
    the retry finds the notification already there (same key) and only spends the watch.
    """
    created = 0
    for watch in watches_to_notify(store.list_watches(availability.product_id)):
        if store.add_notification(watch.back_in_stock(availability)):
            created += 1
        store.mark_watch_notified(watch, availability.version)
    logger.info(
        "product back in stock",
        extra={"product_id": availability.product_id, "version": availability.version, "notified": created},
    )
    return created


def apply_stock_updated(product: ProductData, event: DomainEvent, store: NotificationStore) -> Outcome:
    written, stored = store.write_availability(Availability.from_event(event))
    if written:
        notified = _notify_watchers(store, stored.availability) if stored.came_back_in_stock else 0
        return _outcome(written, notified > 0)
    same_version = freshness(event.metadata.entity_version, stored.availability.version) is Freshness.SAME
    if same_version and stored.came_back_in_stock:
        # A redelivery of a transition already projected: its fan-out may have failed half way; finish it.
        return _outcome(_notify_watchers(store, stored.availability) > 0)
    return Outcome.STALE


def apply_stock_redelivered(product: ProductData, event: DomainEvent, store: NotificationStore) -> Outcome:
    """A replayed or backfilled StockUpdated: the availability follows by version, and no watcher is notified.

    A replay delivers old versions in no order, into a projection that may have been dropped: a 0 -> n step
    it shows is an artifact of delivery, and fanning out on it would spend (or re-notify) watches the live
    stream already served. Order notifications need no such route: their key makes each one exactly once.
    """
    written, _ = store.write_availability(Availability.from_event(event))
    return _outcome(written)


def apply_order_notified(order: OrderData, event: DomainEvent, store: NotificationStore) -> Outcome:
    """OrderConfirmed or OrderShipped: the outcome follows the order by version, and the customer gets one
    notification of its kind."""
    projected = store.write_order_outcome(OrderOutcome.from_event(event))
    # Not gated on the projection's version check: a retry whose projection write succeeded last time must
    # still notify, and so must a confirmation overtaken by the shipment. The notification's key (kind +
    # order id) makes it exactly one.
    notified = store.add_notification(order_notification(event))
    return _outcome(projected, notified)


def apply_order_rejected(order: OrderData, event: DomainEvent, store: NotificationStore) -> Outcome:
    projected = store.write_order_outcome(OrderOutcome.from_event(event))
    armed = [store.arm_watch(watch) for watch in watches_for_rejection(event)]
    notified = store.add_notification(order_notification(event))
    return _outcome(projected, notified, *armed)


def apply_order_cancelled(order: OrderData, event: DomainEvent, store: NotificationStore) -> Outcome:
    """The order outcome follows the order to CANCELLED (no notification: the customer asked for it)."""
    return _outcome(store.write_order_outcome(OrderOutcome.from_event(event)))


def apply_correction(correction: ProjectionCorrected, event: DomainEvent, store: NotificationStore) -> Outcome:
    """The reconciler's correction of one of this service's projections (ahead, different or orphaned).

    A correction restores state; it sends nothing to customers (no back-in-stock fan-out, no new notification
    beyond the corrected item itself).
    """
    return apply_projection_correction(store.name, event, projections_of("notifications"))


consumer: InboxConsumer[NotificationStore] = InboxConsumer(
    {
        "StockUpdated": (ProductData, apply_stock_updated),
        "OrderConfirmed": (OrderData, apply_order_notified),
        "OrderShipped": (OrderData, apply_order_notified),
        "OrderRejected": (OrderData, apply_order_rejected),
        "OrderCancelled": (OrderData, apply_order_cancelled),
        "ProjectionCorrected": (ProjectionCorrected, apply_correction),
    },
    redelivery_routes={"StockUpdated": (ProductData, apply_stock_redelivered)},
)


# ------------------------------------------------------------------ entry points
@api_entry(notifications)
def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


@consumer_entry(notifications)
def consumer_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return consumer.handle(event, context, notifications())

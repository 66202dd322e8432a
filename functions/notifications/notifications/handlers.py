"""Lambda entry points of the notifications service: the HTTP API over the read models and the inbox consumer.

Each inbound event type has one per-record function, safe to run again: every write is conditional (by
version, by key or by arming time), so a duplicate, a reordered delivery or a retry after a partial failure
converges on the same items. The outcome is APPLIED when any write took effect and STALE when the delivery
changed nothing (InboxConsumer counts it as EventsSkippedStale).
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.consumer import InboxConsumer, Outcome
from converge.corrections import apply_projection_correction
from converge.events import DomainEvent
from converge.http import NotFoundError, current_caller, make_resolver
from converge.observability import logger, metrics, traced
from converge.projections import projections_of
from converge.settings import settings
from notifications import store
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

# Path parameters follow the event contract's Identifier, so a malformed id is a 400, not a lookup.
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
ProductId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
CustomerId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]

app = make_resolver()


@app.get("/availability/<product_id>")
def get_availability(product_id: ProductId) -> dict[str, Any]:
    availability = store.get_availability(settings().table_name, product_id)
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
    notifications = newest_first(store.list_notifications(settings().table_name, customer_id), limit)
    return {"customer_id": customer_id, "notifications": [n.as_dict() for n in notifications]}


# ------------------------------------------------------------------ inbox
def _outcome(*changed: bool) -> Outcome:
    return Outcome.APPLIED if any(changed) else Outcome.STALE


def _notify_watchers(table: str, availability: Availability) -> int:
    """Notify every armed watch of the product once for this transition, then spend the watch.

    The notification is written before the watch is spent: a failure in between leaves the watch armed, and
    the retry finds the notification already there (same key) and only spends the watch.
    """
    created = 0
    for watch in watches_to_notify(store.list_watches(table, availability.product_id)):
        if store.add_notification(table, watch.back_in_stock(availability)):
            created += 1
        store.mark_watch_notified(table, watch, availability.version)
    logger.info(
        "product back in stock",
        extra={"product_id": availability.product_id, "version": availability.version, "notified": created},
    )
    return created


def apply_stock_updated(event: DomainEvent) -> Outcome:
    table = settings().table_name
    written, stored = store.write_availability(table, Availability.from_event(event))
    if written:
        notified = _notify_watchers(table, stored.availability) if stored.came_back_in_stock else 0
        return _outcome(written, notified > 0)
    same_version = freshness(event.metadata.entity_version, stored.availability.version) is Freshness.SAME
    if same_version and stored.came_back_in_stock:
        # A redelivery of a transition already projected: its fan-out may have failed half way; finish it.
        return _outcome(_notify_watchers(table, stored.availability) > 0)
    return Outcome.STALE


def apply_stock_redelivered(event: DomainEvent) -> Outcome:
    """A replayed or backfilled StockUpdated: the availability follows by version, and no watcher is notified.

    A replay delivers old versions in no order, into a projection that may have been dropped: a 0 -> n step
    it shows is an artifact of delivery, and fanning out on it would spend (or re-notify) watches the live
    stream already served. Order notifications need no such route: their key makes each one exactly once.
    """
    written, _ = store.write_availability(settings().table_name, Availability.from_event(event))
    return _outcome(written)


def apply_order_notified(event: DomainEvent) -> Outcome:
    """OrderConfirmed or OrderShipped: the outcome follows the order by version, and the customer gets one
    notification of its kind."""
    table = settings().table_name
    projected = store.write_order_outcome(table, OrderOutcome.from_event(event))
    # Not gated on the projection's version check: a retry whose projection write succeeded last time must
    # still notify, and so must a confirmation overtaken by the shipment. The notification's key (kind +
    # order id) makes it exactly one.
    notified = store.add_notification(table, order_notification(event))
    return _outcome(projected, notified)


def apply_order_rejected(event: DomainEvent) -> Outcome:
    table = settings().table_name
    projected = store.write_order_outcome(table, OrderOutcome.from_event(event))
    armed = [store.arm_watch(table, watch) for watch in watches_for_rejection(event)]
    notified = store.add_notification(table, order_notification(event))
    return _outcome(projected, notified, *armed)


def apply_order_cancelled(event: DomainEvent) -> Outcome:
    """The order outcome follows the order to CANCELLED (no notification: the customer asked for it)."""
    return _outcome(store.write_order_outcome(settings().table_name, OrderOutcome.from_event(event)))


def apply_correction(event: DomainEvent) -> Outcome:
    """The reconciler's correction of one of this service's projections (ahead, different or orphaned).

    A correction restores state; it sends nothing to customers (no back-in-stock fan-out, no new notification
    beyond the corrected item itself).
    """
    return apply_projection_correction(settings().table_name, event, projections_of("notifications"))


consumer = InboxConsumer(
    {
        "StockUpdated": apply_stock_updated,
        "OrderConfirmed": apply_order_notified,
        "OrderShipped": apply_order_notified,
        "OrderRejected": apply_order_rejected,
        "OrderCancelled": apply_order_cancelled,
        "ProjectionCorrected": apply_correction,
    },
    redelivery_routes={"StockUpdated": apply_stock_redelivered},
)


# ------------------------------------------------------------------ entry points
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@traced
def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


@logger.inject_lambda_context
@metrics.log_metrics
@traced
def consumer_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return consumer.handle(event, context)

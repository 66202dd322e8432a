"""Shipping use cases: dispatching a shipment, and what an order event does to it.

Each takes the shipments store it works on (`Shipments`, built by the entry point; unit tests hand in a fake),
lets the domain decide and writes conditionally; a write that lost a race is decided again on fresh state.
"""

from __future__ import annotations

from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from converge.authz import Caller
from converge.consumer import Outcome
from converge.entities import decide_again, utc_now
from converge.errors import ConcurrentUpdateError, NotFoundError
from converge.events import DomainEvent, OrderData
from converge.observability import logger, metrics
from shipping import domain

# A write races with at most the other writer of the same shipment (the API or the consumer): deciding again on
# fresh state settles it; a record still losing after that is a batch item failure, retried by SQS.
CONSUMER_ATTEMPTS = 3
# A dispatch races with at most a cancellation or another dispatch: decide once more, then answer 409.
DISPATCH_ATTEMPTS = 2


class Shipments(Protocol):
    """What the use cases need from the shipments table (shipping.store.ShipmentStore)."""

    def get(self, order_id: str) -> domain.Shipment | None: ...

    def create(self, shipment: domain.Shipment) -> bool: ...

    def replace(self, current: domain.Shipment, updated: domain.Shipment) -> domain.Shipment: ...


def get(shipments: Shipments, order_id: str, caller: Caller) -> domain.Shipment:
    """The shipment, if the caller may see it (the order's customer, or an admin): another's is as if absent."""
    shipment = shipments.get(order_id)
    if shipment is None or not (caller.admin or shipment.customer_id == caller.subject):
        raise NotFoundError(f"shipment {order_id} not found")
    return shipment


def dispatch(
    shipments: Shipments, order_id: str, *, caller: Caller, correlation_id: str
) -> tuple[domain.Shipment, bool]:
    """The dispatched shipment, and whether it already was (nothing written). A cancellation (or another dispatch)
    landing between our read and our write is decided once more on fresh state; a second collision is a
    ConcurrentUpdateError (409)."""

    def attempt() -> tuple[domain.Shipment, bool]:
        current = get(shipments, order_id, caller)
        dispatched = domain.dispatch(current, correlation_id=correlation_id, at=utc_now())
        if dispatched is current:
            logger.info("replayed dispatch", extra={"order_id": order_id})
            return current, True
        stored = shipments.replace(current, dispatched)
        metrics.add_metric(name="ShipmentsDispatched", unit=MetricUnit.Count, value=1)
        logger.info("dispatched shipment", extra={"order_id": order_id})
        return stored, False

    def lost() -> None:
        logger.info("shipment changed while dispatching; re-reading", extra={"order_id": order_id})

    return decide_again(DISPATCH_ATTEMPTS, attempt, lost)


# ----------------------------------------------------------------------------------------------- inbox
def apply_order_event(order: OrderData, event: DomainEvent, shipments: Shipments) -> Outcome:
    """Read the shipment, let the domain decide, write conditionally; a lost race is decided again."""
    rule = domain.ORDER_EVENT_RULES[event.event_type]
    change = domain.OrderChange.of(event, at=utc_now())
    extra = {"order_id": order.order_id, "event_type": event.event_type, "order_version": change.order_version}
    for _ in range(CONSUMER_ATTEMPTS):
        current = shipments.get(order.order_id)
        decision = rule(current, change)
        if decision.shipment is None:
            logger.info("shipment not changed by order event", extra={**extra, "why": decision.why})
            return Outcome.STALE
        if _write(shipments, current, decision.shipment):
            logger.info(
                "shipment written",
                extra={**extra, "status": decision.shipment.status.value, "version": decision.shipment.version},
            )
            return Outcome.APPLIED
        logger.info("shipment changed while applying the order event; re-reading", extra=extra)
    raise ConcurrentUpdateError(f"shipment {order.order_id} kept changing while applying {event.event_type}")


def _write(shipments: Shipments, current: domain.Shipment | None, shipment: domain.Shipment) -> bool:
    """Create the shipment if none was read (CREATE), else replace the one read (REPLACE); False if the table
    is no longer as read (the condition failed)."""
    if current is None:
        return shipments.create(shipment)
    try:
        shipments.replace(current, shipment)
    except ConcurrentUpdateError:
        return False
    return True

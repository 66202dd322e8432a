"""The corrections a pass sends: a projection overwritten with what its source implies, a saga pair's resolution
carried out by the service that owns its other side, and a derived counter recounted from its ledger.

Each correction carries a deterministic id (the same observation and expectation give the same id), so a pass
that sends one again sends the same event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from converge.envelope import correction_id_for
from converge.events import (
    OrderLine,
    OrderStatus,
    ProjectionCorrected,
    ReservationAction,
    ReservationCorrected,
    ReservationStatus,
    ReservedRecounted,
)
from converge.projections import (
    SAGA,
    Difference,
    Either,
    Expectation,
    Item,
    Key,
    Projection,
    Resolution,
    SagaName,
    SagaPair,
)
from reconciler.findings import RESERVED_COUNTER, Correction, Finding, Parked, RecountSuspect
from reconciler.snapshot import version_of

SAGA_ACTIONS: Mapping[Resolution, ReservationAction] = {
    Resolution.RELEASE: ReservationAction.RELEASE,
    Resolution.REMOVE: ReservationAction.REMOVE,
    Resolution.REINSTATE: ReservationAction.REINSTATE,
    Resolution.TOMBSTONE: ReservationAction.TOMBSTONE,
}
RECOUNT_RAISED_ON_HAND = "stock_recount_raised_on_hand"


# ---------------------------------------------------------------- projections
def projection_correction(
    projection: Projection,
    finding: Finding,
    key: Key,
    wanted: Expectation | None,
    item: Item | None,
    source: Item | None,
) -> Correction:
    """Overwrite (or delete) one projection item with what its source implies, if it still holds what was read."""
    write = wanted.attributes if isinstance(wanted, Either) else wanted
    observed = projection.observed(item)
    data = ProjectionCorrected(
        correction_id=correction_id_for(projection.name, key, observed, write),
        entity_id=finding.entity_id,
        reason=finding.reason,
        projection=projection.name,
        pk=key[0],
        sk=key[1],
        observed=observed,
        expected=write,
    )
    return Correction(finding, data, version_of(source) or version_of(item))


# ---------------------------------------------------------------- the saga pairs
# (finding, resolution, left item, right item) -> the correction that carries the resolution out.
SagaCorrection = Callable[[Finding, Resolution, Item | None, Item | None], Correction]


def _lines(*items: Item | None) -> list[OrderLine]:
    for item in items:
        if item and item.get("lines"):
            # An order's lines carry a price too: a reservation moves only products and quantities.
            return [OrderLine(product_id=line["product_id"], quantity=line["quantity"]) for line in item["lines"]]
    return []


def reservation_correction(
    finding: Finding, resolution: Resolution, order: Item | None, reservation: Item | None
) -> Correction:
    """The correction a resolution of the order <-> reservation pair sends to inventory."""
    order_id = finding.entity_id
    order_status = None if order is None else str(order["status"])
    reservation_status = None if reservation is None else str(reservation["status"])
    action = SAGA_ACTIONS[resolution]
    lines = _lines(reservation, order) if action is ReservationAction.REMOVE else _lines(order, reservation)
    observed_version = version_of(reservation) or None
    data = ReservationCorrected(
        correction_id=correction_id_for(
            SAGA.name, order_id, action.value, reservation_status, observed_version, order_status, version_of(order)
        ),
        entity_id=order_id,
        reason=finding.reason,
        order_id=order_id,
        action=action,
        observed_status=None if reservation_status is None else ReservationStatus(reservation_status),
        observed_version=observed_version,
        lines=lines,
        order_status=None if order_status is None else OrderStatus(order_status),
    )
    return Correction(finding, data, version_of(order) or version_of(reservation))


# Saga pair -> how its corrections are built. A pair whose resolutions only republish or park needs none.
SAGA_CORRECTIONS: Mapping[SagaName, SagaCorrection] = {SAGA.name: reservation_correction}


def saga_correction(
    saga: SagaPair, finding: Finding, resolution: Resolution, left: Item | None, right: Item | None
) -> Correction:
    """The correction a saga pair declares for a resolution of one of its disagreements."""
    build = SAGA_CORRECTIONS.get(saga.name)
    if build is None:
        raise LookupError(f"saga pair {saga.name} declares no correction, yet resolved {resolution.value}")
    return build(finding, resolution, left, right)


# ---------------------------------------------------------------- derived counters
def recount(suspect: RecountSuspect) -> Correction:
    """The correction that sets a confirmed suspect's `reserved` to its counted ledger."""
    finding = Finding(
        RESERVED_COUNTER,
        suspect.product_id,
        Difference.DIFFERENT,
        f"reserved {suspect.reserved}, RESERVED reservations hold {suspect.counted} (version {suspect.version})",
    )
    data = ReservedRecounted(
        correction_id=correction_id_for(RESERVED_COUNTER, suspect.product_id, suspect.version, suspect.counted),
        entity_id=suspect.product_id,
        reason=finding.reason,
        product_id=suspect.product_id,
        observed_version=suspect.version,
        reserved=suspect.counted,
    )
    return Correction(finding, data, suspect.version)


def recount_needs_a_person(suspect: RecountSuspect) -> Parked | None:
    """A recount that must raise on_hand to cover the reservations (a restored product): a person counts stock."""
    if suspect.counted <= suspect.on_hand:
        return None
    finding = Finding(
        RESERVED_COUNTER,
        suspect.product_id,
        Difference.DIFFERENT,
        f"RESERVED reservations hold {suspect.counted}, more than on_hand {suspect.on_hand}: on_hand raised to "
        f"{suspect.counted}; count the stock",
    )
    return Parked(finding, RECOUNT_RAISED_ON_HAND, str(suspect.version), {"on_hand": suspect.on_hand})

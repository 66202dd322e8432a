"""InventoryTable adapter: product and reservation items, conditional writes, ClientErrors in domain terms.

Every rule that concurrent writers could break is a DynamoDB condition, evaluated by DynamoDB in the same
request as the write (no read-modify-write): `available` is stored because conditions have no arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from converge import aws
from converge.dynamo import cancellation_codes, from_item, is_conditional_check_failure, put_if_absent, to_item
from converge.entities import STAMP_SET, EntityTable, WriteContext
from converge.errors import ConcurrentUpdateError
from converge.events import OrderLine, ReservationStatus
from converge.projections import PRODUCT, REINSTATE_FAILED, RESERVATION
from inventory import domain

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

CONDITION_FAILED = "ConditionalCheckFailed"  # a cancellation reason code (the single-item error ends in Exception)
# Appended to every entity update; its values come from EntityTable.stamp_values (converge.entities).
STAMP = STAMP_SET


def _level(item: Any) -> domain.StockLevel:
    plain = from_item(item)
    return domain.StockLevel(
        product_id=str(plain["product_id"]),
        on_hand=int(plain["on_hand"]),
        reserved=int(plain["reserved"]),
        version=int(plain["version"]),
    )


# ---------------------------------------------------------------- products
# ---------------------------------------------------------------- reservations
def _reservation(plain: dict[str, Any]) -> domain.Reservation:
    return domain.Reservation(
        order_id=str(plain["order_id"]),
        lines=tuple(OrderLine.model_validate(line) for line in plain["lines"]),
        status=ReservationStatus(plain["status"]),
        reason=plain.get("reason"),
        shortages=tuple(plain.get("shortages") or ()),
        version=int(plain["version"]),
        reinstate_failed=bool(plain.get(REINSTATE_FAILED, False)),
    )


class StockChange(StrEnum):
    """How a reservation transaction changes one product's counters."""

    RESERVE = "reserve"
    RELEASE = "release"
    SHIP = "ship"


# change -> (update, condition). `available` is stored, so each change keeps it equal to on_hand - reserved.
_STOCK_CHANGES: dict[StockChange, tuple[str, str]] = {
    StockChange.RESERVE: ("reserved = reserved + :q, available = available - :q", "available >= :q"),
    # Giving back more than is reserved would mean the stored state is already wrong: refuse, do not clamp.
    StockChange.RELEASE: ("reserved = reserved - :q, available = available + :q", "reserved >= :q"),
    # The held stock leaves with the parcel: on_hand and reserved drop together, available is unchanged.
    # reserved >= :q also keeps on_hand >= :q (reserved <= on_hand), so neither can go below zero.
    StockChange.SHIP: ("on_hand = on_hand - :q, reserved = reserved - :q", "reserved >= :q"),
}


def _refused(exc: ClientError, product_ids: Sequence[str]) -> dict[str, Any]:
    """Product id -> its item as it was (None if absent), for every product update whose condition failed.

    The transaction's first item is the reservation; the product updates follow in `product_ids` order.
    """
    reasons = (exc.response.get("CancellationReasons") or [])[1:]
    return {
        product_id: reason.get("Item") or None
        for product_id, reason in zip(product_ids, reasons, strict=False)
        if reason.get("Code") == CONDITION_FAILED
    }


def _is_cancelled(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "TransactionCanceledException"


# ---------------------------------------------------------------- corrections (sent by the reconciler)
def _observed_condition(observed: domain.Reservation | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The condition "the reservation is still what the reconciler saw" (absent, or that status and version)."""
    if observed is None:
        return "attribute_not_exists(pk)", {}, {}
    return (
        "#status = :observed_status AND version = :observed_version",
        {"#status": "status"},
        to_item({":observed_status": observed.status.value, ":observed_version": observed.version}),
    )


def _with_condition(item: dict[str, Any], condition: tuple[str, dict[str, str], dict[str, Any]]) -> dict[str, Any]:
    expression, names, values = condition
    request: dict[str, Any] = {**item, "ConditionExpression": expression}
    if names:
        request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = values
    return request


class InventoryStore:
    """The products and reservations of one InventoryTable, built by the entry point from the function's settings."""

    def __init__(self, table_name: str) -> None:
        self.name = table_name
        self.products = EntityTable(table_name, PRODUCT)
        self.reservations = EntityTable(table_name, RESERVATION)

    def get_product(self, product_id: str) -> domain.StockLevel | None:
        item = aws.dynamodb().get_item(TableName=self.name, Key=self.products.key(product_id), ConsistentRead=True)
        return _level(item["Item"]) if "Item" in item else None

    def set_stock(self, product_id: str, on_hand: int, context: WriteContext) -> domain.StockLevel:
        """Set on-hand, creating the product (version 1) if missing; StockConflictError if it would go below reserved.

        One upsert: `available` is recomputed from the stored `reserved` by DynamoDB, and the condition
        `reserved <= :on_hand` is checked against the same state the update applies to.
        """
        try:
            response = aws.dynamodb().update_item(
                TableName=self.name,
                Key=self.products.key(product_id),
                UpdateExpression=(
                    "SET product_id = :product_id, on_hand = :on_hand, reserved = if_not_exists(reserved, :zero),"
                    " available = :on_hand - if_not_exists(reserved, :zero),"
                    f" version = if_not_exists(version, :zero) + :one, {STAMP}"
                ),
                ConditionExpression="attribute_not_exists(pk) OR reserved <= :on_hand",
                ExpressionAttributeValues={
                    **to_item({":product_id": product_id, ":on_hand": on_hand, ":zero": 0, ":one": 1}),
                    **self.products.stamp_values(product_id, domain.PRODUCT_EVENT, context),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_conditional_check_failure(exc):
                raise
            # The condition only fails on an existing product, returned as it was when it failed.
            old = exc.response.get("Item")
            if old:
                _level(old).set_on_hand(on_hand)  # raises the conflict this state explains
            raise domain.StockConflictError(f"product {product_id}: stock changed concurrently, retry") from exc
        return _level(response["Attributes"])

    def adjust_stock(self, product_id: str, delta: int, context: WriteContext) -> domain.StockLevel:
        """Add a signed delta to on-hand in one UpdateItem (ADD), so concurrent adjustments never lose one.

        ProductNotFoundError if the product does not exist; StockConflictError if on-hand would drop below reserved
        (or 0) or exceed the event contract's maximum.
        """
        if delta < 0:
            # on_hand + delta >= reserved  <=>  available >= -delta (which also keeps on_hand >= 0).
            condition, bound = "attribute_exists(pk) AND available >= :bound", -delta
        else:
            condition, bound = "attribute_exists(pk) AND on_hand <= :bound", domain.MAX_ON_HAND - delta
        try:
            response = aws.dynamodb().update_item(
                TableName=self.name,
                Key=self.products.key(product_id),
                UpdateExpression=f"ADD on_hand :delta, available :delta, version :one SET {STAMP}",
                ConditionExpression=condition,
                ExpressionAttributeValues={
                    **to_item({":delta": delta, ":bound": bound, ":one": 1}),
                    **self.products.stamp_values(product_id, domain.PRODUCT_EVENT, context),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_conditional_check_failure(exc):
                raise
            old = exc.response.get("Item")
            if not old:
                raise domain.ProductNotFoundError(product_id) from exc
            raise domain.adjustment_conflict(product_id, delta, _level(old)) from exc
        return _level(response["Attributes"])

    def _reservation_item(self, reservation: domain.Reservation, context: WriteContext) -> dict[str, Any]:
        state = {
            "order_id": reservation.order_id,
            "lines": [line.model_dump() for line in reservation.lines],
            "status": reservation.status.value,
            "reason": reservation.reason,
            "shortages": list(reservation.shortages),
            "version": reservation.version,
            REINSTATE_FAILED: True if reservation.reinstate_failed else None,
        }
        return self.reservations.item(reservation.order_id, state, reservation.event_type, context)

    def get_reservation(self, order_id: str) -> domain.Reservation | None:
        item = self.reservations.get(order_id)
        return _reservation(item) if item else None

    def put_new_reservation(self, reservation: domain.Reservation, context: WriteContext) -> bool:
        """Write a reservation that must not exist yet (FAILED, or a RELEASED tombstone); False if one exists."""
        return put_if_absent(self.name, self._reservation_item(reservation, context))

    def _stock_change(
        self, product_id: str, quantity: int, context: WriteContext, change: StockChange
    ) -> TransactWriteItemTypeDef:
        update, condition = _STOCK_CHANGES[change]
        return {
            "Update": {
                "TableName": self.name,
                "Key": self.products.key(product_id),
                "UpdateExpression": f"SET {update}, version = version + :one, {STAMP}",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": {
                    **to_item({":q": quantity, ":one": 1}),
                    **self.products.stamp_values(product_id, domain.PRODUCT_EVENT, context),
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def reserve(self, reservation: domain.Reservation, context: WriteContext) -> None:
        """Reserve every line and record the RESERVED reservation, or change nothing (one transaction).

        ReservationExistsError if the order already has a reservation (redelivery, or a cancellation's tombstone);
        InsufficientStockError with the shortages if some product lacks stock or does not exist.
        """
        quantities = reservation.quantities
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.name,
                    "Item": self._reservation_item(reservation, context),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            *(self._stock_change(p, q, context, StockChange.RESERVE) for p, q in quantities.items()),
        ]
        try:
            aws.dynamodb().transact_write_items(TransactItems=items)
        except ClientError as exc:
            if not _is_cancelled(exc):
                raise
            codes = cancellation_codes(exc)
            if codes and codes[0] == CONDITION_FAILED:
                raise domain.ReservationExistsError(reservation.order_id) from exc
            refused = _refused(exc, list(quantities))
            if not refused:
                raise  # cancelled for another reason (conflict, throttling): SQS retries the record
            stock = {pid: _level(item) if item else None for pid, item in refused.items()}
            refused_lines = [line for line in reservation.lines if line.product_id in refused]  # shortages_of merges
            raise domain.InsufficientStockError(domain.shortages_of(refused_lines, stock)) from exc

    def _moved_from_reserved(
        self, reservation: domain.Reservation, moved: domain.Reservation, context: WriteContext
    ) -> TransactWriteItemTypeDef:
        """The transaction item that moves a RESERVED reservation, still at the version read, to `moved`."""
        return {
            "Update": {
                "TableName": self.name,
                "Key": self.reservations.key(reservation.order_id),
                "UpdateExpression": f"SET #status = :moved, version = :next, {STAMP} REMOVE reason",
                "ConditionExpression": "#status = :reserved AND version = :expected",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    **to_item(
                        {
                            ":moved": moved.status.value,
                            ":reserved": reservation.status.value,
                            ":next": moved.version,
                            ":expected": reservation.version,
                        }
                    ),
                    **self.reservations.stamp_values(reservation.order_id, moved.event_type, context),
                },
            }
        }

    def _settle(
        self, reservation: domain.Reservation, moved: domain.Reservation, change: StockChange, context: WriteContext
    ) -> None:
        """Move a RESERVED reservation to `moved` and change each product's counters by `change`, all or nothing."""
        quantities = reservation.quantities
        items: list[TransactWriteItemTypeDef] = [
            self._moved_from_reserved(reservation, moved, context),
            *(self._stock_change(p, q, context, change) for p, q in quantities.items()),
        ]
        self._transact(items, reservation.order_id, list(quantities), releasing=True)

    def release(self, reservation: domain.Reservation, context: WriteContext) -> None:
        """Mark a RESERVED reservation RELEASED and give its quantities back, in one transaction.

        ConcurrentUpdateError if the reservation changed since it was read; InvariantViolationError if a product
        holds less reserved stock than the reservation gives back.
        """
        self._settle(reservation, reservation.released(), StockChange.RELEASE, context)

    def ship(self, reservation: domain.Reservation, context: WriteContext) -> None:
        """Mark a RESERVED reservation SHIPPED and take its quantities off on_hand and reserved, in one transaction.

        ConcurrentUpdateError if the reservation changed since it was read; InvariantViolationError if a product
        holds less reserved stock than the parcel takes.
        """
        self._settle(reservation, reservation.shipped(), StockChange.SHIP, context)

    def remove(self, reservation: domain.Reservation, context: WriteContext) -> None:
        """Delete an orphaned reservation (its order does not exist) and give back any stock it holds, in one
        transaction; ConcurrentUpdateError if it changed since it was read."""
        condition = _observed_condition(reservation)
        delete = _with_condition(
            {"TableName": self.name, "Key": self.reservations.key(reservation.order_id)}, condition
        )
        items: list[TransactWriteItemTypeDef] = [{"Delete": delete}]  # type: ignore[typeddict-item]
        if reservation.status is ReservationStatus.RESERVED:
            items += [self._stock_change(p, q, context, StockChange.RELEASE) for p, q in reservation.quantities.items()]
        self._transact(items, reservation.order_id, list(reservation.quantities), releasing=True)

    def reinstate(
        self, reinstatement: domain.Reservation, observed: domain.Reservation | None, context: WriteContext
    ) -> None:
        """Reserve every line again in place of `observed` (absent, FAILED or RELEASED), or change nothing.

        ConcurrentUpdateError if the reservation changed since it was observed; InsufficientStockError with the
        shortages if some product lacks stock.
        """
        put = _with_condition(
            {"TableName": self.name, "Item": self._reservation_item(reinstatement, context)},
            _observed_condition(observed),
        )
        quantities = reinstatement.quantities
        items: list[TransactWriteItemTypeDef] = [
            {"Put": put},  # type: ignore[typeddict-item]
            *(self._stock_change(p, q, context, StockChange.RESERVE) for p, q in quantities.items()),
        ]
        self._transact(items, reinstatement.order_id, list(quantities), releasing=False, lines=reinstatement.lines)

    def replace_reservation(
        self, reservation: domain.Reservation, observed: domain.Reservation | None, context: WriteContext
    ) -> bool:
        """Write `reservation` (no stock change) if the stored one is still `observed`; False if it changed."""
        try:
            aws.dynamodb().put_item(
                **_with_condition(
                    {"TableName": self.name, "Item": self._reservation_item(reservation, context)},
                    _observed_condition(observed),
                )
            )
        except ClientError as exc:
            if is_conditional_check_failure(exc):
                return False
            raise
        return True

    def _transact(
        self,
        items: list[TransactWriteItemTypeDef],
        order_id: str,
        product_ids: list[str],
        *,
        releasing: bool,
        lines: Sequence[OrderLine] = (),
    ) -> None:
        """Run a reservation transaction (the reservation first, then one update per product) and turn its
        cancellation into domain terms: the reservation changed, a product holds too little reserved stock
        (`releasing`: the transaction gives back or ships reserved stock), or too little available stock for `lines`."""
        try:
            aws.dynamodb().transact_write_items(TransactItems=items)
        except ClientError as exc:
            if not _is_cancelled(exc):
                raise
            codes = cancellation_codes(exc)
            if codes and codes[0] == CONDITION_FAILED:
                raise ConcurrentUpdateError(f"reservation {order_id} changed since it was read") from exc
            refused = _refused(exc, product_ids)
            if not refused:
                raise
            if releasing:
                raise domain.InvariantViolationError(
                    f"reservation {order_id}: products {sorted(refused)} hold less reserved stock"
                ) from exc
            stock = {pid: _level(item) if item else None for pid, item in refused.items()}
            raise domain.InsufficientStockError(
                domain.shortages_of([line for line in lines if line.product_id in refused], stock)
            ) from exc

    def recount(self, level: domain.StockLevel, observed_version: int, context: WriteContext) -> bool:
        """Store the recounted product if it is still at `observed_version`; False if it moved on meanwhile."""
        try:
            aws.dynamodb().update_item(
                TableName=self.name,
                Key=self.products.key(level.product_id),
                UpdateExpression=(
                    f"SET on_hand = :on_hand, reserved = :reserved, available = :available, version = :version, {STAMP}"
                ),
                ConditionExpression="version = :observed",
                ExpressionAttributeValues={
                    **to_item(
                        {
                            ":on_hand": level.on_hand,
                            ":reserved": level.reserved,
                            ":available": level.available,
                            ":version": level.version,
                            ":observed": observed_version,
                        }
                    ),
                    **self.products.stamp_values(level.product_id, domain.PRODUCT_EVENT, context),
                },
            )
        except ClientError as exc:
            if is_conditional_check_failure(exc):
                return False
            raise
        return True

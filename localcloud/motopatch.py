"""A narrow fix for moto 5.2.5's `TransactWriteItems` cost: roll back only the items a transaction touches.

moto backs up every table a transaction names with `copy.deepcopy(table)` before running it, and on a cancelled
transaction puts the copies back. The copy includes every item and the table's whole stream shard, so each
reservation costs O(table size + stream length) - most of a demo's time. This patch keeps moto's transaction code
(conditions, `CancellationReasons`, all-or-nothing) and changes only the backup:

- the tables are not copied (moto's `copy.deepcopy(table)` returns the table itself while a patched transaction
  runs, so its rollback assignment `tables[name] = backup` is a no-op);
- instead the items the transaction names are copied before it runs, and the length of each named table's stream
  shard is noted; on any exception the items are put back (or removed, if they did not exist) and the shard is cut
  back to its length, which drops the stream records of the cancelled writes, as moto's restore of the copy did.

The table object is never replaced, so stream readers keep reading the live shard (moto's rollback otherwise swaps
the table and orphans every shard iterator; localcloud's stream mapping re-opens its position each poll anyway).

Installed by LocalCloud (in-process moto and `ThreadedMotoServer` share this interpreter) for moto 5.2.x only;
another moto version keeps its own behaviour.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PATCHED_MOTO = "5.2."

_in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar("localcloud_in_transaction", default=False)
_lock = threading.Lock()
_original: Callable[..., Any] | None = None


class _CopyShim:
    """Stands in for the `copy` module inside moto.dynamodb.models: a Table is not copied during a transaction."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if _in_transaction.get() and isinstance(value, self._table_type):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


@dataclass
class _Snapshot:
    # (table, hash key, range key, item before the transaction or None)
    items: list[tuple[Any, Any, Any, Any]] = field(default_factory=list)
    shard_lengths: list[tuple[Any, int]] = field(default_factory=list)

    @classmethod
    def take(cls, backend: Any, transact_items: list[dict[str, Any]]) -> _Snapshot:
        from moto.dynamodb.exceptions import MockValidationException

        snapshot = cls()
        seen_tables: set[str] = set()
        for entry in transact_items:
            if not isinstance(entry, dict) or not entry:
                continue
            op_type, op = next(iter(entry.items()))
            table_name = op.get("TableName") if isinstance(op, dict) else None
            if not table_name or table_name not in backend.tables:
                continue  # moto reports it as a failed operation; nothing of that table is written
            table = backend.tables[table_name]
            if table_name not in seen_tables:
                seen_tables.add(table_name)
                if table.stream_shard is not None:
                    snapshot.shard_lengths.append((table.stream_shard, len(table.stream_shard.items)))
            key_attributes = op.get("Item") if op_type == "Put" else op.get("Key")
            try:
                hash_key, range_key = backend.get_keys_value(table, key_attributes or {})
            except MockValidationException:
                continue  # moto rejects the operation before writing anything
            snapshot.items.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        return snapshot

    def restore(self) -> None:
        # Reverse order: if an item is named twice (moto refuses that, but only after the first write), the
        # earliest copy is the one that wins.
        for table, hash_key, range_key, before in reversed(self.items):
            if range_key is not None:
                if before is None:
                    table.items[hash_key].pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = before
            elif before is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = before
        for shard, length in self.shard_lengths:
            del shard.items[length:]


def unix_time() -> float:
    from moto.core.utils import unix_time as moto_unix_time

    return float(moto_unix_time())


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    assert _original is not None
    snapshot = _Snapshot.take(self, transact_items)
    token = _in_transaction.set(True)
    try:
        _original(self, transact_items)
    except BaseException:
        snapshot.restore()
        raise
    finally:
        _in_transaction.reset(token)


def install() -> bool:
    """Patch moto's DynamoDB backend (idempotent); False if this moto version is not the one the patch fits."""
    global _original
    import moto
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    if not str(moto.__version__).startswith(PATCHED_MOTO):
        return False
    cache_jsonpath()
    cheap_retention_check()
    with _lock:
        if _original is None:
            _original = models.DynamoDBBackend.transact_write_items
            models.copy = _CopyShim(Table)  # type: ignore[assignment,attr-defined]
            models.DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    return True


def cache_jsonpath() -> None:
    """moto's EventBridge builds a JSONPath parser (PLY tables) for every delivery to every target
    (`EventTemplateParser.parse` -> `jsonpath_ng.ext.parse`), ~1 ms each. Parsed paths are immutable: cache them."""
    import jsonpath_ng.ext as ext

    with _lock:
        parse = getattr(ext, "parse")  # noqa: B009 - re-exported without __all__ (mypy)
        if not getattr(parse, "localcloud_cached", False):
            cached = functools.lru_cache(maxsize=256)(parse)
            cached.localcloud_cached = True  # type: ignore[attr-defined]
            setattr(ext, "parse", cached)  # noqa: B010


_original_retention: Callable[..., Any] | None = None


def _is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    # moto computes every queue attribute (three scans of the queue's messages) to read this one, once per
    # received message: receiving from a queue with a backlog becomes quadratic.
    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention_period + message.sent_timestamp / 1000 > unix_time())


def cheap_retention_check() -> None:
    """moto's SQS ReceiveMessage reads the queue's retention period through all its attributes per message."""
    global _original_retention
    from moto.sqs.models import SQSBackend

    with _lock:
        if _original_retention is None:
            _original_retention = SQSBackend.is_message_valid_based_on_retention_period
            SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
                _is_message_valid_based_on_retention_period
            )


def uninstall() -> None:
    """Put moto's own implementation back (tests compare both)."""
    global _original
    import moto.dynamodb.models as models

    with _lock:
        if _original is not None:
            models.DynamoDBBackend.transact_write_items = _original  # type: ignore[method-assign]
            models.copy = copy  # type: ignore[attr-defined,unused-ignore]
            _original = None


def installed() -> bool:
    return _original is not None

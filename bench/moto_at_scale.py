"""moto's DynamoDB at scale, for the sweep benchmark: the same answers, at a cost per page rather than per table.

moto 5 answers every Scan page and every Query by sorting all of a table's items (`Table.all_items`), and a Scan
page then walks the sorted table from its start to the page's ExclusiveStartKey. Here that was 2.4 s per page of
a 200,000-item table, and a Query of one partition cost the whole table: a sweep's time would be moto's sorting,
growing with the square of the table. Inside `indexed()`:

- a Scan of a table without index, filter or projection reads its page from a sorted list of the table's keys
  (rebuilt after any write that adds or removes an item): bisect to the ExclusiveStartKey, then the next items of
  the segment. Order, segment membership (moto's hash of the partition key), Limit, the 1 MB page limit and
  LastEvaluatedKey are moto's own;
- a Query of a table's own key reads its partition only.

Anything else (an index, a filter, numeric or binary keys) is moto's own code. moto also keeps every model object it
ever made in a class-level list (`instances_tracked`, for its reset API), so each item a Scan or a BatchGetItem copied
for its response stayed alive for good: in this process that is memory growing with every page read, which a deployed
worker never holds. Items made inside `at_scale()` are not tracked. And moto 5's generic response
serializer walks every attribute against the service model (about 7 ms per item here); the data-plane results,
already plain DynamoDB JSON, are written with `json.dumps` instead. tests/bench checks that both give the same
pages and responses. The benchmark is about the worker; this keeps the emulator's cost per page flat, as DynamoDB's is.

`served()` runs all of it as moto's server in a process of its own (`python -m bench.moto_at_scale PORT`, bound to
127.0.0.1), so that what the database keeps is not in the measuring process: a worker's tracemalloc then sees the
worker, its SDK clients and the HTTP responses it reads, as in a Lambda container.
"""

from __future__ import annotations

import base64
import bisect
import contextvars
import copy
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from moto.core import serialize
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

_INDEX = "_bench_key_index"
_PARTITION: contextvars.ContextVar[tuple[Table, Any] | None] = contextvars.ContextVar("partition", default=None)


def _string_value(key: Any) -> str | None:
    """The string of a key attribute (a DynamoType, or DynamoDB JSON), None if it is not a string."""
    value = getattr(key, "value", None) if not isinstance(key, dict) else key.get("S")
    kind = getattr(key, "type", "S") if not isinstance(key, dict) else ("S" if "S" in key else None)
    return value if kind == "S" and isinstance(value, str) else None


def _index(table: Table) -> list[tuple[str, str, Any, Any]] | None:
    """The table's keys, sorted as moto sorts them: (hash, range, hash DynamoType, range DynamoType)."""
    cached = table.__dict__.get(_INDEX)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    entries = []
    for hash_key, partition in table.items.items():
        for range_key in partition:
            h, r = _string_value(hash_key), _string_value(range_key)
            if h is None or r is None:
                return None
            entries.append((h, r, hash_key, range_key))
    entries.sort(key=lambda e: (e[0], e[1]))
    table.__dict__[_INDEX] = entries
    return entries


def _forget(table: Table) -> None:
    table.__dict__.pop(_INDEX, None)


_ORIGINAL = {name: getattr(Table, name) for name in ("scan", "query", "all_items", "put_item", "delete_item")}


def _scan(
    self: Table,
    filters: dict[str, Any],
    limit: int,
    exclusive_start_key: dict[str, Any],
    filter_expression: Any = None,
    index_name: str | None = None,
    consistent_read: bool = False,
    projection_expression: list[list[str]] | None = None,
    segments: tuple[None, None] | tuple[int, int] = (None, None),
) -> tuple[list[Any], int, dict[str, Any] | None]:
    entries = None if index_name or filters or projection_expression or not self.range_key_attr else _index(self)
    if entries is None:
        return _ORIGINAL["scan"](  # type: ignore[no-any-return]
            self,
            filters,
            limit,
            exclusive_start_key,
            filter_expression,
            index_name,
            consistent_read,
            projection_expression,
            segments=segments,
        )
    start = 0
    if exclusive_start_key:
        h = _string_value(exclusive_start_key.get(self.hash_key_attr))
        r = _string_value(exclusive_start_key.get(self.range_key_attr or ""))
        start = bisect.bisect_right(entries, (h or "", r or ""), key=lambda e: (e[0], e[1]))
    results: list[Any] = []
    size, scanned, last_key = 0, 0, None
    for position in range(start, len(entries)):
        _, _, hash_key, range_key = entries[position]
        item = self.items[hash_key][range_key]
        if not item.is_within_segment(segments):
            continue
        if len(results) == limit or size + item.size() > RESULT_SIZE_LIMIT:
            last_key = self._get_last_evaluated_key(results[-1], None)
            break
        results.append(copy.deepcopy(item))
        size += item.size()
        scanned += 1
    if filter_expression is not None:  # moto filters after the limit, as DynamoDB does
        results = [item for item in results if filter_expression.expr(item)]
    return results, scanned, last_key


def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")  # after hash_key: range comparison,
    # range values, limit, start key, scan direction, projection, index name
    if index_name or hash_key is None or not self.range_key_attr:
        return _ORIGINAL["query"](self, hash_key, *args, **kwargs)
    token = _PARTITION.set((self, hash_key))
    try:
        return _ORIGINAL["query"](self, hash_key, *args, **kwargs)
    finally:
        _PARTITION.reset(token)


def _all_items(self: Table) -> list[Any]:
    hint = _PARTITION.get()
    if hint is not None and hint[0] is self:  # a Query of the table's own key: its partition, sorted
        return sorted(self.items.get(hint[1], {}).values(), key=lambda item: item.range_key)
    return _ORIGINAL["all_items"](self)  # type: ignore[no-any-return]


def _put_item(self: Table, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    keyed = self.hash_key_attr in item_attrs and (self.range_key_attr is None or self.range_key_attr in item_attrs)
    if _INDEX in self.__dict__ and keyed:  # a new key (not a replaced item) changes the index
        partition = self.items.get(DynamoType(item_attrs[self.hash_key_attr]), {})
        if self.range_key_attr is None or DynamoType(item_attrs[self.range_key_attr]) not in partition:
            _forget(self)
    elif _INDEX in self.__dict__:
        _forget(self)  # moto rejects it; nothing to keep
    return _ORIGINAL["put_item"](self, item_attrs, *args, **kwargs)


def _delete_item(self: Table, *args: Any, **kwargs: Any) -> Any:
    _forget(self)
    return _ORIGINAL["delete_item"](self, *args, **kwargs)


# Operations whose results are items and keys (plain once moto's DynamoResult made them dicts).
_PLAIN_RESULTS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}
)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


class PlainJSONSerializer(serialize.JSONSerializer):
    """moto's JSON serializer, but a data-plane result is dumped as it is rather than walked shape by shape."""

    def _serialize_result(self, resp: serialize.ResponseDict, result: Any) -> serialize.ResponseDict:
        if self.operation_name not in _PLAIN_RESULTS or not isinstance(result, dict):
            return super()._serialize_result(resp, result)
        resp["body"] = json.dumps(result, default=_json_default)
        resp["headers"]["Content-Type"] = self._get_protocol_specific_content_type()
        return resp


def _untracked(cls: type[Item], *args: Any, **kwargs: Any) -> Item:
    return object.__new__(cls)


@contextmanager
def at_scale() -> Iterator[None]:
    """moto's Table with the index above, and its DynamoDB responses dumped plainly, for the duration of the block."""
    serializers = serialize.SERVICE_SPECIFIC_SERIALIZERS
    had = serializers.get("dynamodb")
    serializers["dynamodb"] = {**(had or {}), "json": PlainJSONSerializer}
    patches = {"scan": _scan, "query": _query, "all_items": _all_items, "put_item": _put_item}
    patches["delete_item"] = _delete_item
    for name, replacement in patches.items():
        setattr(Table, name, replacement)
    Item.__new__ = _untracked  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        for name, original in _ORIGINAL.items():
            setattr(Table, name, original)
        del Item.__new__  # BaseModel's again
        if had is None:
            serializers.pop("dynamodb", None)
        else:
            serializers["dynamodb"] = had


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(timeout_s: float = 60.0) -> Iterator[str]:
    """moto's server with `at_scale()`, in a child process on a free loopback port, for the duration of the block:
    AWS_ENDPOINT_URL points every boto3 client made meanwhile at it. Yields its URL; the process is stopped after."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.moto_at_scale", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    credentials = {k: os.environ.get(k) or "testing" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server on {url} did not start (exit {server.poll()})") from None
                time.sleep(0.2)
        with mock.patch.dict(os.environ, {"AWS_ENDPOINT_URL": url, **credentials}):
            yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.moto_at_scale PORT`: moto's server with `at_scale()` on 127.0.0.1:PORT until stopped."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit() or not 0 < int(args[0]) < 65536:
        print("usage: python -m bench.moto_at_scale PORT (a TCP port, 1-65535)", file=sys.stderr)
        return 2
    from moto import server

    with at_scale():
        server.main(["--host", "127.0.0.1", "--port", args[0]])  # until SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reconciliation read cost: an incremental pass against a full sweep, over N entities with a fraction drifted.

Runs the template's ReconcilerFunction in-process against moto (tables built from template.yaml), so the items
read are what the reconciler's Scan/Query/BatchGetItem calls report. Wall times are moto's, not DynamoDB's.

    .venv/bin/python -m tools.reconcile_cost --entities 100000 --drift 0 0.001 0.01
    .venv/bin/python -m tools.reconcile_cost --traffic 0 100 1000 10000 --entities 40000 --drift 0.001

The data set: half the entities are products (each with its availability projection), a quarter orders
(CONFIRMED, each with its notifications outcome and its customer notification) and a quarter their reservations
(order i holds one unit of product i, so every product's `reserved` equals its ledger); all written an hour ago.
After a first full pass sets the watermark, `drift` of the entities change "behind the projections' back" (a
product's stock, an order cancelled) and both passes run.

`--traffic W...`: the incremental pass under steady business writes instead, drift held fixed. After the same
seed and a watermark five minutes back, W writes spread over those five minutes (half a product's stock set, half
an order written again, each at its next version with its projection following, as the services and their
consumers leave them) and the drift land in the window; then passes run until the window is read. Each pass is
measured: items read, wall time and peak memory (tracemalloc, moto's own allocations included, so an upper bound).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

# Before boto3 is imported: never reach a real account, and let moto answer DynamoDB Streams calls.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_TRACE_DISABLED": "true",
}.items():
    os.environ.setdefault(_name, _value)

import boto3  # noqa: E402

from converge.contracts import SERVICES_BY_NAME, with_tables  # noqa: E402
from converge.dynamo import to_item  # noqa: E402
from converge.projections import ORDER, PRODUCT, PROJECTIONS, RESERVATION, SAGA, SHIPMENT, Either  # noqa: E402
from converge.reconcile_index import BUCKET_ATTRIBUTE, bucket_of  # noqa: E402
from localcloud.cli import Parser, rate, whole  # noqa: E402

if TYPE_CHECKING:
    from tests.support.stack import FunctionRunner, Stack

BATCH_WRITE_MAX = 25
RECONCILER = "ReconcilerFunction"
SAGA_NAME = SAGA.name  # the order <-> reservation pair's findings: the drift an order's cancellation makes


@dataclass
class Dataset:
    products: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)

    @property
    def entities(self) -> int:
        return len(self.products) + 2 * len(self.orders)  # an order and its reservation (its shipment shares its id)


def _write_all(table_name: str, items: Sequence[dict[str, Any]]) -> None:
    client = boto3.client("dynamodb")
    for start in range(0, len(items), BATCH_WRITE_MAX):
        requests = [{"PutRequest": {"Item": to_item(i)}} for i in items[start : start + BATCH_WRITE_MAX]]
        unprocessed: dict[str, Any] = {table_name: requests}
        while unprocessed:
            unprocessed = dict(client.batch_write_item(RequestItems=unprocessed).get("UnprocessedItems") or {})


def _by_table(items: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Source items by the template's logical id of their table: the table of the contract that owns their layout."""
    layouts = [(layout, str(service.table)) for service in with_tables() for layout in service.layouts]
    found: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        table = next(table for layout, table in layouts if layout.id_of(item["pk"], item["sk"]) is not None)
        found.setdefault(table, []).append(item)
    return found


def projected(sources: Sequence[dict[str, Any]], *, versioned_only: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The items the declared projections (converge.projections) expect of `sources`, by table: what their
    consumers leave. `versioned_only`: the projections that follow each version (an order's customer
    notification is written once, not again at its next version)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for projection in PROJECTIONS:
        if versioned_only and not projection.versioned:
            continue
        table = found.setdefault(str(SERVICES_BY_NAME[projection.table].table), [])
        for source in sources:
            if projection.source.id_of(source["pk"], source["sk"]) is None:
                continue
            for (pk, sk), expected in projection.expected(source).items():
                attributes = expected.attributes if isinstance(expected, Either) else expected
                table.append({"pk": pk, "sk": sk, **{k: v for k, v in attributes.items() if v is not None}})
    return found


def _write_tables(tables: dict[str, str], items: dict[str, list[dict[str, Any]]]) -> None:
    for table, written in items.items():
        _write_all(tables[table], written)


def _entity(pk: str, sk: str, at: str, event_type: str, version: int, **state: Any) -> dict[str, Any]:
    """A source item as the services write it: state, version, event_type, updated_at and its index bucket."""
    return {"pk": pk, "sk": sk, **state, "version": version, "event_type": event_type, "correlation_id": "seed",
            "updated_at": at, BUCKET_ATTRIBUTE: bucket_of(pk)}  # fmt: skip


def product_item(pid: str, at: str, version: int = 2, on_hand: int = 10, reserved: int = 1) -> dict[str, Any]:
    return _entity(*PRODUCT.key(pid), at, "StockUpdated", version, product_id=pid, on_hand=on_hand,
                   reserved=reserved, available=on_hand - reserved)  # fmt: skip


def product_of(oid: str) -> str:
    """The product order `oid` reserves one unit of (order i, product i)."""
    return f"p{oid[1:]}"


def order_item(oid: str, at: str, status: str = "CONFIRMED", version: int = 2) -> dict[str, Any]:
    event_type = {"CONFIRMED": "OrderConfirmed", "CANCELLED": "OrderCancelled"}[status]
    return _entity(*ORDER.key(oid), at, event_type, version, order_id=oid, customer_id=f"c{oid[-3:]}",
                   lines=[{"product_id": product_of(oid), "quantity": 1}], status=status, created_at=at,
                   confirmed=True)  # fmt: skip


def shipment_item(oid: str, at: str) -> dict[str, Any]:
    """The shipment a confirmed order has, waiting for the warehouse."""
    return _entity(*SHIPMENT.key(oid), at, "ShipmentCreated", 1, order_id=oid, customer_id=f"c{oid[-3:]}",
                   lines=[{"product_id": product_of(oid), "quantity": 1}], status="PENDING",
                   order_version=2, created_at=at)  # fmt: skip


def reservation_item(oid: str, at: str) -> dict[str, Any]:
    return _entity(*RESERVATION.key(oid), at, "StockReserved", 1, order_id=oid,
                   lines=[{"product_id": product_of(oid), "quantity": 1}], status="RESERVED")  # fmt: skip


def seed(tables: dict[str, str], entities: int, at: datetime) -> Dataset:
    """Write `entities` source entities, every projection up to date, all last written at `at`."""
    stamp = at.isoformat()
    count = entities // 4
    data = Dataset(
        products=[f"p{i:06d}" for i in range(entities - 2 * count)], orders=[f"o{i:06d}" for i in range(count)]
    )
    reserving = {product_of(o) for o in data.orders}
    products = [product_item(p, stamp, reserved=int(p in reserving)) for p in data.products]
    orders = [order_item(o, stamp) for o in data.orders]
    # Each confirmed order's other side in each saga pair (its reservation, its shipment), in agreement with it.
    partners = [item(o, stamp) for o in data.orders for item in (reservation_item, shipment_item)]
    _write_tables(tables, _by_table(products + orders + partners))
    _write_tables(tables, projected(products + orders))
    return data


def make_drift(
    tables: dict[str, str], data: Dataset, fraction: float, at: datetime, seed: int = 7
) -> set[tuple[str, str]]:
    """Change `fraction` of the entities without touching their projections (as if their events were lost).

    Returns the (projection, entity id) pairs a reconciliation pass must find: a product's availability, or
    the saga pair of an order cancelled while RESERVED (its outcome is then behind too, repaired by the same event).
    """
    count = round(fraction * data.entities)
    rng = random.Random(seed)
    chosen = rng.sample([("availability", p) for p in data.products] + [(SAGA_NAME, o) for o in data.orders], count)
    stamp = at.isoformat()
    reserving = {product_of(o) for o in data.orders}
    changed = [
        product_item(i, stamp, 3, 7, int(i in reserving))
        if kind == "availability"
        else order_item(i, stamp, "CANCELLED", 3)
        for kind, i in chosen
    ]
    _write_tables(tables, _by_table(changed))
    return set(chosen)


@contextmanager
def _quiet() -> Iterator[None]:
    """One INFO line per republished entity would dominate the measurement's time; metrics lines its output."""
    from converge.observability import logger

    level = logger.log_level
    logger.setLevel(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def set_watermark(state_table: str, watermark: datetime) -> None:
    """The state a successful pass at `watermark` leaves (what a first full sweep would write, without its cost)."""
    item = {"pk": "RECONCILER", "sk": "STATE", "watermark": watermark.isoformat(), "suspect_products": [],
            "suspect_orders": [], "full_sweep_due": False, "version": 1}  # fmt: skip
    boto3.client("dynamodb").put_item(TableName=state_table, Item=to_item(item))


@contextmanager
def seeded(entities: int, watermark: datetime) -> Iterator[tuple[Stack, FunctionRunner, Dataset]]:
    """A moto stack holding `entities` written an hour ago, every projection current, and a pass's watermark."""
    from moto import mock_aws

    from tests.support.stack import FunctionRunner, create_stack, reset_caches

    with mock_aws(), _quiet():
        reset_caches()
        stack = create_stack()
        data = seed(stack.tables, entities, datetime.now(UTC) - timedelta(hours=1))
        set_watermark(stack.tables["ReconcilerStateTable"], watermark)
        try:
            yield stack, FunctionRunner(stack), data
        finally:
            reset_caches()


def _timed(run: Any, event: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    report = run(RECONCILER, event)
    return report, time.perf_counter() - started


def measure(entities: int, drift: float) -> dict[str, Any]:
    """Items read and wall time of an incremental pass and of a full sweep, `drift` of `entities` lagging."""
    with seeded(entities, datetime.now(UTC)) as (stack, runner, data):
        expected = make_drift(stack.tables, data, drift, datetime.now(UTC))
        incremental, incremental_s = _timed(runner.invoke, {})
        full, full_s = _timed(runner.invoke, {"mode": "full"})
        stack.events_on_bus()  # drain the tap queue (republished events) before the backend goes
    expected_counts = {
        "availability": sum(1 for kind, _ in expected if kind == "availability"),
        SAGA_NAME: sum(1 for kind, _ in expected if kind == SAGA_NAME),
    }

    def found(report: dict[str, Any]) -> dict[str, int]:
        return {k: v for k, v in report["found"].items() if k in expected_counts}

    return {
        "entities": data.entities,
        "drift": drift,
        "drifted": len(expected),
        "incremental": {
            "mode": incremental["mode"],
            "items_read": incremental["items_read"],
            "items_read_by_table": incremental["items_read_by_table"],
            "requests": incremental["read_requests"],
            "seconds": round(incremental_s, 2),
            "found": incremental["found"],
            "found_all_drift": found(incremental) == expected_counts,
        },
        "full": {
            "mode": full["mode"],
            "items_read": full["items_read"],
            "items_read_by_table": full["items_read_by_table"],
            "requests": full["read_requests"],
            "seconds": round(full_s, 2),
            "found": full["found"],
            "found_all_drift": found(full) == expected_counts,
        },
        "read_ratio": incremental["items_read"] / full["items_read"] if full["items_read"] else 0.0,
    }


def markdown(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| entities | drift | drifted | incremental: items read | full sweep: items read | incremental / full "
        "| both found all drift | incremental wall (moto) | full wall (moto) |",
        "|---:|---:|---:|---:|---:|---:|:---:|---:|---:|",
    ]
    for r in results:
        both = r["incremental"]["found_all_drift"] and r["full"]["found_all_drift"]
        lines.append(
            f"| {r['entities']:,} | {r['drift']:.1%} | {r['drifted']:,} | {r['incremental']['items_read']:,} "
            f"| {r['full']['items_read']:,} | {r['read_ratio']:.3%} | {'yes' if both else 'NO'} "
            f"| {r['incremental']['seconds']:.2f} s | {r['full']['seconds']:.2f} s |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- under traffic
WINDOW = timedelta(minutes=5)  # the incremental schedule's period


def write_traffic(
    tables: dict[str, str], data: Dataset, writes: int, start: datetime, window: timedelta, avoid: set[str]
) -> int:
    """`writes` business writes spread evenly over `window` from `start`, each to a distinct entity not in `avoid`:
    half a product's stock set (StockUpdated, version 3, its availability following), half an order written again
    (version 3, its outcome following). Nothing drifts: every projection ends where its consumer would put it."""
    products = [p for p in data.products if p not in avoid]
    orders = [o for o in data.orders if o not in avoid]
    if writes > len(products) + len(orders):
        raise ValueError(f"{writes} writes need as many distinct entities; the data set has {len(products + orders)}")
    reserving = {product_of(o) for o in data.orders}
    step = window / max(writes, 1)
    sources: list[dict[str, Any]] = []
    for i in range(writes):
        stamp = (start + step * i).isoformat()
        if (i % 2 == 0 and products) or not orders:
            pid = products.pop()
            sources.append(product_item(pid, stamp, 3, 12, int(pid in reserving)))
        else:
            sources.append(order_item(orders.pop(), stamp, "CONFIRMED", 3))
    _write_tables(tables, _by_table(sources))
    _write_tables(tables, projected(sources, versioned_only=True))
    return writes


def _measured_pass(runner: FunctionRunner) -> dict[str, Any]:
    """One scheduled pass, with its wall time and its peak traced memory (a warm start: its code imported, its
    clients created before)."""
    from converge import aws
    from localcloud.loader import load_handler

    spec = runner.specs[RECONCILER]
    load_handler(spec.code_dir, spec.handler)
    for client in (aws.dynamodb, aws.events, aws.sqs, aws.stepfunctions):  # created once per warm container
        client()
    tracemalloc.start()
    started = time.perf_counter()
    report: dict[str, Any] = runner.invoke(RECONCILER, {})
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {**report, "seconds": seconds, "peak_bytes": peak}


def measure_traffic(
    entities: int, drift: float, writes: int, budget: int | None = None, max_passes: int = 20
) -> dict[str, Any]:
    """Passes over one window holding `writes` business writes and `drift` of `entities` drifted, until one leaves
    no backlog; `budget` replaces the template's INCREMENTAL_BUDGET_ITEMS."""
    now = datetime.now(UTC)
    with seeded(entities, now - WINDOW) as (stack, runner, data):
        if budget is not None:
            runner.specs[RECONCILER].environment["INCREMENTAL_BUDGET_ITEMS"] = str(budget)
        expected = make_drift(stack.tables, data, drift, now - WINDOW / 2)
        write_traffic(stack.tables, data, writes, now - WINDOW, WINDOW, {i for _, i in expected})
        passes = []
        # The entities republished: exactly the drifted ones (none of the writes), however many passes; a drifted
        # entity is republished again by the next passes, as nothing here applies the repairs.
        republished: set[str] = set()
        for _ in range(max_passes):
            passes.append(_measured_pass(runner))
            republished |= {event["detail"]["metadata"]["entity_id"] for event in stack.events_on_bus()}
            if not passes[-1].get("buckets_behind"):
                break
    first = passes[0]
    return {
        "entities": data.entities,
        "drift": drift,
        "drifted": len(expected),
        "writes": writes,
        "passes": len(passes),
        "items_read": first["items_read"],
        "items_read_total": sum(p["items_read"] for p in passes),
        "requests": first["read_requests"],
        "checked": first["checked"],
        "seconds": round(max(p["seconds"] for p in passes), 2),
        "peak_mb": round(max(p["peak_bytes"] for p in passes) / 2**20, 1),
        "backlog_seconds": first.get("backlog_seconds", 0),
        "held": max(p.get("largest_page_items", 0) for p in passes),  # 0: a pass without pages (it holds its window)
        "found_all_drift": republished == {entity for _, entity in expected},
    }


def fit(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """reads = a * writes + b * drifted + c, fitted by least squares on the windows' total items read (the drift is
    the same in every row, so b * drifted + c is the row without writes and a the slope over the others)."""
    base = next((r for r in results if r["writes"] == 0), None)
    intercept = float(base["items_read_total"]) if base else 0.0
    loaded = [r for r in results if r["writes"]]
    slope = (
        sum(r["writes"] * (r["items_read_total"] - intercept) for r in loaded) / sum(r["writes"] ** 2 for r in loaded)
        if loaded
        else 0.0
    )
    drifted = base["drifted"] if base else 0
    return {"reads_per_write": round(slope, 3), "reads_without_writes": intercept,
            "reads_per_drifted": round(intercept / drifted, 2) if drifted else 0.0}  # fmt: skip


def traffic_markdown(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| entities | drift | writes in the window | passes to read it | items read (first pass) "
        "| items read (all passes) | reads per write | read requests (first pass) | wall (moto, slowest pass) "
        "| peak memory (slowest pass) | items held at once | backlog after the first pass | found all drift |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    base = next((r["items_read_total"] for r in results if r["writes"] == 0), None)
    for r in results:
        per_write = f"{(r['items_read_total'] - base) / r['writes']:.2f}" if r["writes"] and base is not None else "-"
        lines.append(
            f"| {r['entities']:,} | {r['drift']:.1%} | {r['writes']:,} | {r['passes']} | {r['items_read']:,} "
            f"| {r['items_read_total']:,} | {per_write} | {r['requests']:,} | {r['seconds']:.2f} s "
            f"| {r['peak_mb']:.1f} MB | {r['held'] or 'the window'} | {r['backlog_seconds']:.0f} s "
            f"| {'yes' if r['found_all_drift'] else 'NO'} |"
        )
    model = fit(results)
    lines.append("")
    lines.append(
        f"Fitted: items read per window = {model['reads_per_write']} x writes + {model['reads_per_drifted']} x drifted "
        f"(the window without writes read {model['reads_without_writes']:.0f})."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="python -m tools.reconcile_cost",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--entities", type=whole(1), default=100_000, help="source entities in the dataset")
    parser.add_argument(
        "--drift", type=rate, nargs="+", default=[0.0, 0.001, 0.01], help="fractions of entities drifted, one run each"
    )
    parser.add_argument(
        "--traffic",
        type=whole(0),
        nargs="+",
        metavar="W",
        help="business writes per 5-minute window, one run each, drift held at the first --drift fraction",
    )
    parser.add_argument(
        "--budget", type=whole(1), help="with --traffic: index items a pass reads (default: the template's)"
    )
    args = parser.parse_args(argv)
    if args.traffic:
        measured = []
        for writes in args.traffic:
            started = time.perf_counter()
            measured.append(measure_traffic(args.entities, args.drift[0], writes, args.budget))
            print(f"{writes} writes: measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        print(traffic_markdown(measured))
        return 0 if all(r["found_all_drift"] for r in measured) else 1
    results = []
    for fraction in args.drift:
        started = time.perf_counter()
        results.append(measure(args.entities, fraction))
        print(f"drift {fraction:.1%}: measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(markdown(results))
    return 0 if all(r["incremental"]["found_all_drift"] and r["full"]["found_all_drift"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

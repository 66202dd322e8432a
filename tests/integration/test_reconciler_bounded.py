"""An incremental pass bounded whatever the write rate: it reads at most its budget of changed items, a page at a
time, and a window larger than the budget is finished by the next passes from where each bucket stopped."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from converge.reconcile_index import bucket_of
from tests.integration.test_reconciler_incremental import (
    RECONCILER,
    REPAIR_OF,
    SCHEDULED,
    bootstrapped,
    state,
)
from tests.support.events import sqs_event
from tests.support.stack import FunctionRunner, Stack
from tools.reconcile_cost import WINDOW, make_drift, product_item, set_watermark, write_traffic

# Who applies each repair the drift needs (as the bus would deliver it).
CONSUMERS = {
    "StockUpdated": ["NotificationsConsumerFunction"],
    "OrderCancelled": ["InventoryConsumerFunction", "NotificationsConsumerFunction", "ShippingConsumerFunction"],
}
# A neighbourhood is at most 6 items: an order, its reservation and shipment, its outcome and both notifications.
NEIGHBOURHOOD = 6


def with_budget(functions: FunctionRunner, budget: int, page: int) -> None:
    environment = functions.specs[RECONCILER].environment
    environment["INCREMENTAL_BUDGET_ITEMS"], environment["INCREMENTAL_PAGE_ITEMS"] = str(budget), str(page)


def deliver_repairs(stack: Stack, functions: FunctionRunner) -> list[tuple[str, str]]:
    """The reconciler's repairs since the last call, applied by their consumers; (projection, entity) of each."""
    repaired = []
    for event in stack.events_on_bus():
        if event["detail-type"] not in CONSUMERS:  # what a consumer published as it applied a repair
            continue
        for consumer in CONSUMERS[event["detail-type"]]:
            assert functions.invoke(consumer, sqs_event([json.dumps(event)])) == {"batchItemFailures": []}
        repaired.append((REPAIR_OF[event["detail-type"]], event["detail"]["metadata"]["entity_id"]))
    return repaired


def backlogged(stack: Stack, functions: FunctionRunner, writes: int, fraction: float) -> set[tuple[str, str]]:
    """400 entities, the last pass 15 minutes ago, and since then (settled: older than the overlap) `writes`
    business writes and `fraction` of the entities drifted. Returns the drift."""
    data = bootstrapped(stack, functions, entities=400)
    now = datetime.now(UTC)
    set_watermark(stack.tables["ReconcilerStateTable"], now - 3 * WINDOW)
    drifted = make_drift(stack.tables, data, fraction, now - 2 * WINDOW)
    write_traffic(stack.tables, data, writes, now - 3 * WINDOW, WINDOW, {i for _, i in drifted})
    return drifted


def test_a_window_larger_than_the_budget_is_finished_over_several_passes_each_drift_found_once(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN a window of 200 business writes and 10 drifted entities, and a budget of 40 changed items a pass
    drifted = backlogged(stack, functions, writes=200, fraction=0.025)
    with_budget(functions, budget=40, page=10)
    # WHEN scheduled passes run (each one's repairs applied by the consumers) until no bucket is left behind
    reports: list[dict[str, Any]] = []
    repaired: list[tuple[str, str]] = []
    while not reports or reports[-1]["buckets_behind"]:
        reports.append(functions.invoke(RECONCILER, SCHEDULED))
        repaired += deliver_repairs(stack, functions)
        assert len(reports) <= 10, reports[-1]
    # THEN it took several passes, each left the rest behind with its age, and the backlog shrank to nothing
    assert len(reports) >= 5
    assert all(r["buckets_behind"] and r["backlog_seconds"] > 0 for r in reports[:-1])
    assert reports[-1]["backlog_seconds"] == 0
    assert all(r["watermark_advanced"] for r in reports)
    # AND every drifted entity was found and repaired exactly once: no page read twice, none skipped
    assert Counter(repaired) == Counter(drifted)
    # AND the state carries no position any more: the next pass starts from its watermark
    assert state(stack)["positions"] == {}


@pytest.mark.parametrize("writes", [20, 200])
def test_what_a_pass_holds_at_once_is_one_page_whatever_the_window(
    stack: Stack, functions: FunctionRunner, writes: int
) -> None:
    # GIVEN windows of 20 and of 200 business writes, and a budget larger than either, in pages of 10
    backlogged(stack, functions, writes=writes, fraction=0.0)
    with_budget(functions, budget=1000, page=10)
    # WHEN one pass runs
    report = functions.invoke(RECONCILER, SCHEDULED)
    # THEN it compared the whole window in one pass, holding at most one page and its neighbourhood at a time
    assert (report["checked"], report["buckets_behind"]) == (writes, 0)
    assert 0 < report["largest_page_items"] <= 10 * NEIGHBOURHOOD


def test_a_write_landing_behind_where_a_pass_stopped_is_compared_by_a_later_pass(
    stack: Stack, functions: FunctionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 60 writes stamped within the overlap (the last two minutes), more than a pass's budget of 20
    data = bootstrapped(stack, functions, entities=400)
    now = datetime.now(UTC)
    set_watermark(stack.tables["ReconcilerStateTable"], now - WINDOW)
    write_traffic(stack.tables, data, 60, now - timedelta(seconds=100), timedelta(seconds=90), set())
    with_budget(functions, budget=20, page=10)
    # AND a product written while the pass reads its first page, into that page's bucket, stamped before every
    #     item of the window (a write in flight, committed late), its availability not following
    from reconciler import store

    read_page = store.changed_page
    late: list[str] = []

    def page_with_a_late_write(table: str, bucket: str, *args: Any, **kwargs: Any) -> Any:
        page = read_page(table, bucket, *args, **kwargs)
        if not late:
            late.append(next(p for p in reversed(data.products) if bucket_of(f"PRODUCT#{p}") == bucket))
            stamp = (now - timedelta(seconds=110)).isoformat()
            stack.put_item("InventoryTable", product_item(late[0], stamp, version=5, on_hand=3))
        return page

    monkeypatch.setattr(store, "changed_page", page_with_a_late_write)
    # WHEN that pass runs out of budget inside the overlap, and the next passes run (no time passing: each reads
    #      from the overlap again, the buckets it did not reach first)
    first = functions.invoke(RECONCILER, SCHEDULED)
    assert first["buckets_behind"]
    assert late
    repaired: list[tuple[str, str]] = deliver_repairs(stack, functions)
    for _ in range(8):
        if ("availability", late[0]) in repaired:
            break
        functions.invoke(RECONCILER, SCHEDULED)
        repaired += deliver_repairs(stack, functions)
    # THEN the late write was not skipped: a pass compared it and republished the product
    assert ("availability", late[0]) in repaired

"""Reconciliation rules without AWS: what lags, what is republished, what a dead letter is."""

from __future__ import annotations

from typing import Any

from localcloud.loader import load_module
from localcloud.template import function_specs

domain: Any = load_module(function_specs()["ReconcilerFunction"].code_dir, "domain")


def product(pid: str, version: int) -> dict[str, Any]:
    return {
        "pk": f"PRODUCT#{pid}",
        "sk": "PRODUCT",
        "product_id": pid,
        "version": version,
        "event_type": "StockUpdated",
    }


def order(oid: str, status: str, version: int) -> dict[str, Any]:
    return {"pk": f"ORDER#{oid}", "sk": "ORDER", "order_id": oid, "status": status, "version": version}


def reservation(oid: str, status: str) -> dict[str, Any]:
    return {"pk": f"RESERVATION#{oid}", "sk": "RESERVATION", "order_id": oid, "status": status, "version": 1}


def availability(pid: str, version: int) -> dict[str, Any]:
    return {"pk": f"AVAILABILITY#{pid}", "sk": "AVAILABILITY", "product_id": pid, "version": version}


def outcome(oid: str, version: int) -> dict[str, Any]:
    return {"pk": f"ORDER#{oid}", "sk": "ORDER", "order_id": oid, "version": version}


def find(inventory: list[Any], orders: list[Any], notifications: list[Any]) -> Any:
    return domain.find_lagging(domain.Snapshot.from_items(inventory, orders, notifications))


def test_consistent_state_needs_no_repair() -> None:
    # GIVEN every projection at its source's version
    findings = find(
        [product("p1", 3), reservation("o1", "RESERVED")],
        [order("o1", "CONFIRMED", 2)],
        [availability("p1", 3), outcome("o1", 2)],
    )
    # THEN nothing is republished and nothing is odd
    assert findings.repairs == []
    assert findings.anomalies == []


def test_availability_behind_or_missing_republishes_the_product() -> None:
    # GIVEN one availability behind its product and one product never seen by notifications
    findings = find([product("p1", 3), product("p2", 1)], [], [availability("p1", 2)])
    # THEN both products are republished as their current state
    assert {(r.projection.value, r.entity_id) for r in findings.repairs} == {
        ("availability", "p1"),
        ("availability", "p2"),
    }
    assert {r.source_item["version"] for r in findings.repairs} == {3, 1}


def test_pending_order_without_reservation_republishes_the_order() -> None:
    findings = find([], [order("o1", "PENDING", 1)], [])
    assert [(r.projection.value, r.source_item["pk"]) for r in findings.repairs] == [("reservations", "ORDER#o1")]


def test_pending_order_with_an_outcome_republishes_the_reservation() -> None:
    findings = find([reservation("o1", "FAILED")], [order("o1", "PENDING", 1)], [])
    assert [(r.projection.value, r.source_item["pk"]) for r in findings.repairs] == [
        ("order_outcomes", "RESERVATION#o1")
    ]


def test_cancelled_order_still_reserved_republishes_the_cancellation() -> None:
    findings = find([reservation("o1", "RESERVED")], [order("o1", "CANCELLED", 3)], [])
    assert [(r.projection.value, r.source_item["status"]) for r in findings.repairs] == [("reservations", "CANCELLED")]


def test_confirmed_order_not_notified_republishes_the_order() -> None:
    findings = find([reservation("o1", "RESERVED")], [order("o1", "CONFIRMED", 2)], [outcome("o1", 1)])
    assert [(r.projection.value, r.entity_id) for r in findings.repairs] == [("notifications", "o1")]


def test_contradictions_are_anomalies_not_repairs() -> None:
    findings = find([reservation("o1", "FAILED")], [order("o1", "CONFIRMED", 2)], [outcome("o1", 2)])
    assert findings.repairs == []
    assert [a.entity_id for a in findings.anomalies] == ["o1"]


def test_dead_letters_are_judged_by_shape_and_history() -> None:
    stream_failure = {"requestContext": {"condition": "RetryAttemptsExhausted"}, "DDBStreamBatchInfo": {}}
    assert domain.judge_dead_letter(stream_failure, None, 0).kind.value == "stream_batch"
    assert domain.judge_dead_letter(None, "body is not JSON", 0).kind.value == "poison"
    assert domain.judge_dead_letter({"detail": {}}, None, 0).kind.value == "event"
    assert domain.judge_dead_letter({"detail": {}}, None, domain.MAX_REDRIVES).kind.value == "poison"

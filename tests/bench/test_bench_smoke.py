"""Smoke test of the benchmarks: the code runs at tiny sizes and produces every table (never asserts a time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import coldstart, cost
from bench.__main__ import main
from bench.publisher_cpu import InMemoryBus, publish, stream_event
from localcloud.template import function_specs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    # WHEN the whole benchmark runs at the smoke-test sizes
    assert main(["--tiny", "--out", str(out / "BENCHMARKS.md"), "--json", str(out / "bench.json")]) == 0
    return (out / "BENCHMARKS.md").read_text(), json.loads((out / "bench.json").read_text())


@pytest.mark.slow
def test_report_has_every_section_and_the_machine(tiny_run: tuple[str, dict[str, Any]]) -> None:
    markdown, _ = tiny_run
    # THEN the report states how and where it ran, and has every section's table
    for heading in (
        "## Goals",
        "## 1. Cold init",
        "## 2. Publisher CPU per stream record",
        "## 3. AWS requests per business operation",
        "### Consumer path",
        "## 4. Dollars per million operations",
        "## 5. localcloud pipeline: throughput, lag, memory",
        "## 6. Reconciliation read cost",
        "## 7. The full sweep at any size",
    ):
        assert heading in markdown
    assert "python -m bench --tiny" in markdown
    assert "CPUs (`nproc`)" in markdown


@pytest.mark.slow
def test_figures_are_ratios_and_counts(tiny_run: tuple[str, dict[str, Any]]) -> None:
    _, results = tiny_run
    # THEN cold init is a ratio per measured function, the publisher a ratio, requests and cost per operation
    assert {row["function"] for row in results["coldstart"]["functions"]} == {
        "OrdersApiFunction",
        "OrdersPublisherFunction",
    }
    assert all(row["ratio"] > 0 for row in results["coldstart"]["functions"])
    assert results["publisher"]["ratio"] > 0
    assert set(results["requests"]["converge"]["phases"]) == {"place_order", "cancel_order", "restock"}
    place = results["requests"]["converge"]["phases"]["place_order"]
    assert place["consumer_path"]["OrdersConsumerFunction"]["events_applied"] > 0
    assert set(results["cost"]["operations"]["place_order"]["converge"]["usd_per_million"]) >= {"total"}
    assert results["pipeline"]["sizes"][0]["events_published"] > 0
    assert results["pipeline"]["profile"]["top_frames"]


@pytest.mark.slow
def test_sweep_reports_memory_throughput_and_invocations_per_configuration(
    tiny_run: tuple[str, dict[str, Any]],
) -> None:
    _, results = tiny_run
    sweep = results["sweep"]
    # THEN each size ran with each segment count, every sweep finished and repaired nothing (no drift was seeded)
    assert {(r["entities"], r["segments"]) for r in sweep["rows"]} == {
        (n, s) for n in sweep["sizes"] for s in sweep["segments"]
    }
    for row in sweep["rows"]:
        assert row["status"] == "SUCCEEDED"
        assert row["repairs"] == 0
        assert row["checked"] > 0
        assert row["worker_invocations"] >= row["segments"] * 2  # a compare and a counters worker per segment
        assert row["peak_mb_max"] > 0
        assert row["items_per_s"] > 0
        assert row["bare_scan"]["items"] == row["items"]
    # AND the memory ratio, larger size over smaller, is computed for each segment count
    assert [m["segments"] for m in sweep["memory"]] == sweep["segments"]
    assert all(m["peak_ratio"] > 0 and m["size_factor"] >= 10 for m in sweep["memory"])


@pytest.mark.slow
def test_baseline_pipeline_sends_one_put_events_call_per_record(tiny_run: tuple[str, dict[str, Any]]) -> None:
    _, results = tiny_run
    # THEN the baseline publisher made as many PutEvents calls as it published entries
    for phase in results["requests"]["baseline"]["phases"].values():
        for actor, calls in phase["requests"].items():
            if "eventbridge:PutEvents" in calls:
                entries = phase["items"].get(f"{actor}|eventbridge:PutEvents", calls["eventbridge:PutEvents"])
                assert entries == calls["eventbridge:PutEvents"]


def test_every_template_function_has_a_cold_start_program() -> None:
    # GIVEN the template's functions WHEN the cold-start targets are built THEN none is missing
    assert {t.name for t in coldstart.targets()} == set(function_specs())


@pytest.mark.parametrize("reason_bytes", [0, 30_000, 100_000])
def test_publisher_batches_respect_put_events_limits(reason_bytes: int) -> None:
    # GIVEN 100 stream records of small or large items WHEN the publisher sends them to an in-memory bus
    bus = InMemoryBus()
    published = publish(stream_event(100, reason_bytes=reason_bytes), bus)
    # THEN every record is published and no call exceeds 10 entries or 256 KB
    assert published == 100
    assert not bus.over_limit
    assert bus.calls >= 10


def test_transaction_items_cost_two_write_units_each() -> None:
    # GIVEN one operation that made one 3-item transaction and one PutItem
    phase: dict[str, Any] = {
        "units": 1,
        "functions": {"F": {"invocations": 1, "billed_ms": 10, "memory_mb": 1024, "records": 0}},
        "consumer_path": {},
        "raw": {
            "requests": {"F|dynamodb|TransactWriteItems": 1, "F|dynamodb|PutItem": 1},
            "items": {"F|dynamodb|TransactWriteItems": 3, "F|dynamodb|PutItem": 1},
            "received": {},
            "empty_receives": {},
        },
    }
    # WHEN its billing units are derived
    units = cost.units(phase)
    # THEN 3 x 2 + 1 write units, and 10 ms at 1 GB is 0.01 GB-s
    assert units["dynamodb_wru"] == 7
    assert units["lambda_gb_seconds"] == pytest.approx(0.01)


def test_prices_name_their_source() -> None:
    prices = cost.load_prices()
    assert prices["region"] == "us-east-1"
    assert all(p["source"].startswith("http") for p in prices["prices"].values())
    assert Path(cost.PRICES_PATH).name == "prices.json"

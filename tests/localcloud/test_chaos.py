"""A small chaos run through the CLI: faults injected, then convergence proven and reported (the `make chaos` path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcloud.__main__ import DRIFT_FLAGS, main
from localcloud.faults import DRIFT_STATS
from tests.localcloud.helpers import refused


def test_a_small_chaos_run_converges_within_two_passes_and_loses_nothing(tmp_path: Path) -> None:
    # GIVEN the chaos fault mix (with more poison than the default, so that some is surely injected)
    markdown, report_json = tmp_path / "RELIABILITY.md", tmp_path / "chaos.json"
    argv = [
        "chaos",
        "--orders", "120",
        "--products", "12",
        "--seed", "3",
        "--faults", "chaos",
        "--fault-seed", "3",
        "--poison-rate", "0.05",
        "--out", str(markdown),
        "--json", str(report_json),
        "--quiet",
    ]  # fmt: skip
    # WHEN the chaos command runs
    exit_code = main(argv)
    # THEN it succeeds: faults were injected, the flow alone left divergence, reconciliation removed it
    report = json.loads(report_json.read_text())
    assert exit_code == 0, report
    injected = report["injected"]
    for fault in ("handler_exception", "deliveries_lost", "deliveries_duplicated", "dynamodb_throttled_attempts"):
        assert injected.get(fault, 0) > 0, fault
    passes = report["passes"]
    assert 1 <= len(passes) <= 2
    assert passes[-1]["divergent"] == 0
    # AND every request was sent with the token of who may send it (orders by their customer, stock and dispatches
    # by the warehouse's admin)
    assert refused(report["operations"]) == {}
    assert report["operations"]["place_order 201"] == 120
    # AND every event is accounted for, every injected poison message parked
    assert report["events_lost"] == 0
    assert report["poison_injected"] > 0
    assert report["poison_parked"] == report["poison_injected"]
    accounting = report["final"]["accounting"]
    assert accounting["processed"] + accounting["parked"] + accounting["lost_superseded"] == accounting["deliveries"]
    # AND the Markdown report names the command and the figures
    text = markdown.read_text()
    assert "python -m localcloud chaos --orders 120" in text
    assert "| events lost | 0 | 0 |" in text


@pytest.mark.slow
def test_a_chaos_run_with_drift_faults_starts_with_the_full_sweep_and_converges(tmp_path: Path) -> None:
    # GIVEN the chaos mix plus every drift fault, at rates that surely strike in a small run
    markdown, report_json = tmp_path / "RELIABILITY.md", tmp_path / "chaos.json"
    rates = [argument for flag in DRIFT_FLAGS for argument in ("--" + flag.replace("_", "-"), "0.05")]
    argv = [
        "chaos",
        "--orders", "120",
        "--products", "12",
        "--seed", "5",
        "--faults", "chaos",
        "--fault-seed", "5",
        "--drift",
        *rates,
        "--out", str(markdown),
        "--json", str(report_json),
        "--quiet",
    ]  # fmt: skip
    # WHEN the chaos command runs (no --pass-mode: drift faults make it the operator's)
    exit_code = main(argv)
    # THEN every drift kind was injected and counted in the report
    report = json.loads(report_json.read_text())
    for counter in DRIFT_STATS.values():
        assert report["injected"].get(counter, 0) > 0, counter
    assert report["drift_examples"]
    # AND the passes ran in operator mode: the full sweep first, then the scheduled pass
    assert report["pass_mode"] == "operator"
    passes = report["passes"]
    assert passes[0]["mode"] == "full"
    assert all(p["mode"] != "full" for p in passes[1:])
    # AND the sweep pass 1 started is reported by its own figures (what it recounted, and could not confirm)
    assert passes[0]["sweep"]["status"] == "SUCCEEDED"
    assert passes[0]["sweep"]["corrections_unconfirmed"] == 0
    assert passes[0]["sweep"]["projection"] is None
    # AND a later pass starts at most a counters sweep, which checks again what the full sweep recounted
    assert all(p["sweep"] is None or p["sweep"]["projection"] == "reserved" for p in passes[1:])
    text = markdown.read_text()
    assert "`--pass-mode operator`: pass 1 is the full sweep" in text
    assert "| forged_events_injected |" in text
    assert "Pass 1's full sweep: {'status': 'SUCCEEDED'" in text
    # AND the run converged within two passes and lost nothing (the reconciler's corrections at work)
    assert exit_code == 0, (report["passes"], report["divergent_examples"], report["lost_examples"])
    assert 1 <= len(passes) <= 2
    assert passes[-1]["divergent"] == 0
    assert report["events_lost"] == 0

"""`python -m tools.reconcile status`: a person sees whether the reconciler is working, and what it is working on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from reconciler import store
from reconciler.passes import ReconcilerState
from reconciler.snapshot import Scope
from tests.support.stack import FunctionRunner, Stack
from tools.reconcile import main

SCHEDULED = json.loads(
    (Path(__file__).resolve().parents[2] / "events" / "ReconcilerFunction.scheduled.json").read_text()
)


@pytest.fixture
def deployed(stack: Stack) -> str:
    """A stack named converge whose output names the test's state table, as a deployed stack's does."""
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"ReconcilerStateTableName": {"Value": stack.table("ReconcilerStateTable")}},
    }
    boto3.client("cloudformation").create_stack(StackName="converge", TemplateBody=json.dumps(template))
    return "converge"


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--stack", "converge", "status", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_after_two_passes_status_shows_the_last_pass_and_the_watermark_and_no_sweep(
    deployed: str, functions: FunctionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stack whose reconciler ran its first pass (a full sweep) and then an incremental one
    functions.invoke("ReconcilerFunction", SCHEDULED)
    functions.invoke("ReconcilerFunction", SCHEDULED)
    capsys.readouterr()
    # WHEN a person asks for the status, as text and as JSON
    code, out, err = status(capsys)
    json_code, json_out, _ = status(capsys, "--json")
    # THEN each fact is on its own line: the incremental pass just finished, the watermark is its start
    assert (code, err) == (0, "")
    facts = dict(line.split(": ", 1) for line in out.splitlines())
    assert facts["last pass"].endswith(" s ago)")
    assert facts["watermark"].endswith(" s ago)")
    assert facts["sweep"] == "none"
    assert facts["suspects"] == "0 products, 0 orders"
    assert (facts["parked anomalies"], facts["parked poison letters"]) == ("0", "0")
    # AND the JSON says the same for a machine
    report = json.loads(json_out)
    assert json_code == 0
    assert 0 <= report["last_pass"]["age_seconds"] < 60
    assert report["watermark"]["at"] <= report["last_pass"]["at"]
    assert report["sweep"] is None


def test_status_shows_a_running_sweep_by_segment_the_suspects_and_the_parked_cases(
    deployed: str, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a state with suspects, a running sweep with two segments (one done, one stuck for an hour), a parked
    # anomaly and a parked poison letter, as the reconciler writes them
    table = stack.table("ReconcilerStateTable")
    now = datetime.now(UTC)
    suspects = Scope(frozenset({"p1", "p2", "p3"}), frozenset({"o1"}))
    state = ReconcilerState(now - timedelta(minutes=6), suspects, version=4, last_pass_at=now - timedelta(minutes=5))
    store.save_state(table, state, expected_version=0)
    stack.put_item("ReconcilerStateTable", sweep_header(now))
    stack.put_item("ReconcilerStateTable", segment("orders", 0, done=True, progress_at=now - timedelta(minutes=50)))
    stack.put_item("ReconcilerStateTable", segment("orders", 1, done=False, progress_at=now - timedelta(hours=1)))
    store.park_anomaly(table, "confirmed_without_stock", "o9", "v2", "CONFIRMED but FAILED", now.isoformat(), {})
    letter = store.DeadLetter("https://sqs.us-east-1.amazonaws.com/1/test-OrdersDLQ", "m-1", "r", "not json", 3)
    store.park(table, letter, "Expecting value: line 1 column 1", now.isoformat())
    # WHEN a person asks for the status, listing two ids at most
    code, out, err = status(capsys, "--limit", "2")
    # THEN the sweep's progress is there by segment, the suspects counted and listed, and the parked cases
    assert (code, err) == (0, "")
    lines = out.splitlines()
    facts = dict(line.split(": ", 1) for line in lines)
    assert facts["last pass"].endswith("(300 s ago)") or facts["last pass"].endswith("(301 s ago)")
    assert facts["sweep"].startswith("s-7 RUNNING (restore)")
    assert facts["sweep segments"] == "1 of 2 done, 4000 items read"
    assert facts["sweep last advanced"] in ("3000 s ago", "3001 s ago")
    segments = [line for line in lines if line.startswith("segment ")]
    assert segments[0].startswith("segment orders#0 of 2: done, 3000 items in 3 pages, 1 invocations")
    assert segments[1].startswith("segment orders#1 of 2: running, 1000 items in 1 pages, 2 invocations")
    assert facts["suspects"] == "3 products, 1 orders"
    assert facts["suspect products"] == "p1, p2 (and 1 more)"
    assert facts["suspect orders"] == "o1"
    assert facts["anomaly"].startswith("confirmed_without_stock o9, parked ")
    assert facts["poison letter"].startswith("test-OrdersDLQ m-1, parked ")
    assert facts["poison letter"].endswith("Expecting value: line 1 column 1")


def test_status_shows_the_counters_a_finished_sweep_left(
    deployed: str, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a sweep that finished with two counters it could not confirm (their products busy through every re-tally)
    now = datetime.now(UTC)
    finished = {**sweep_header(now), "status": "SUCCEEDED", "finished_at": now.isoformat(), "counters_left": 2}
    stack.put_item("ReconcilerStateTable", finished)
    # WHEN a person asks for the status
    code, out, err = status(capsys)
    # THEN it says how many counters are left, and what recounts them
    assert (code, err) == (0, "")
    facts = dict(line.split(": ", 1) for line in out.splitlines())
    assert facts["sweep"].startswith("s-7 SUCCEEDED (restore)")
    assert facts["sweep counters left"] == "2 (the next pass starts a counters sweep)"


def sweep_header(now: datetime) -> dict[str, Any]:
    return {
        "pk": "SWEEP",
        "sk": "CURRENT",
        "sweep_id": "s-7",
        "status": "RUNNING",
        "reason": "restore",
        "started_at": (now - timedelta(hours=2)).isoformat(),
        "progress_at": (now - timedelta(minutes=50)).isoformat(),
        "segments_total": 2,
        "segments_done": 1,
        "items_read": 4000,
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:sweep:s-7",
    }


def segment(table: str, n: int, *, done: bool, progress_at: datetime) -> dict[str, Any]:
    return {
        "pk": "SWEEP#s-7",
        "sk": f"SEGMENT#{table}#{n}",
        "table": table,
        "segment": n,
        "total_segments": 2,
        "done": done,
        "items_read": 3000 if done else 1000,
        "pages": 3 if done else 1,
        "invocations": 1 if done else 2,
        "progress_at": progress_at.isoformat(),
    }


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["status"], "--stack"),  # no stack named, no --local
        (["--stack", "converge", "status", "--limit", "-1"], "--limit"),
        (["--stack", "converge", "status", "--limit", "many"], "invalid int value"),
        (["--stack", "converge", "health"], "invalid choice"),
        (["--stack", "converge"], "required"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_code_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the tool is given a command line it cannot use
    code = main(argv)
    out, err = capsys.readouterr()
    # THEN it says why in one line, prints nothing else, and exits 2
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert says in err


def test_a_stack_that_does_not_exist_is_one_line_and_exit_code_2(
    aws_backend: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--stack", "nowhere", "status"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert "nowhere" in err

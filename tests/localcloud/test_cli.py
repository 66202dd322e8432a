"""The command line: `invoke` prints what `sam local invoke` prints; `demo` converges and writes its report."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from localcloud.__main__ import main
from localcloud.demo import DemoReport, summary
from localcloud.template import ROOT
from tests.localcloud.helpers import FRESH_SHELL, refused
from tests.localcloud.real import EVENTS_DIR

API_FIXTURES = sorted(p for p in EVENTS_DIR.glob("*.json") if "routeKey" in json.loads(p.read_text()))


def test_the_invoke_command_prints_the_response_and_the_logs(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an API fixture
    path = next((p for p in API_FIXTURES if "place" in p.name), API_FIXTURES[0])
    # WHEN `python -m localcloud invoke <Function> --event <file>` runs
    code = main(["invoke", path.name.split(".")[0], "--event", str(path)])
    # THEN it exits 0, prints the response JSON on stdout and the function's log lines on stderr
    out, err = capsys.readouterr()
    assert code == 0
    assert "statusCode" in json.loads(out)
    assert "REPORT RequestId" in err
    assert any(line.startswith("{") and ('"level"' in line or '"_aws"' in line) for line in err.splitlines())


@pytest.mark.parametrize(("content", "says"), [(None, "cannot read the event file"), ("{not json", "is not JSON")])
def test_the_invoke_command_refuses_a_missing_or_invalid_event_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, says: str
) -> None:
    # GIVEN an event file that does not exist, or is not JSON
    path = tmp_path / "event.json"
    if content is not None:
        path.write_text(content)
    # WHEN invoke runs with it
    code = main(["invoke", "OrdersApiFunction", "--event", str(path)])
    # THEN it exits 2 with one line naming the problem, and no traceback
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert says in err
    assert "Traceback" not in err


def test_the_invoke_command_fails_when_the_function_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an event the reconciler refuses (it asks for a mode that does not exist)
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"mode": "sideways"}))
    # WHEN invoke runs it
    code = main(["invoke", "ReconcilerFunction", "--event", str(path)])
    # THEN it exits 1 and prints Lambda's error payload, as sam local invoke does
    out = capsys.readouterr().out
    assert code == 1
    assert json.loads(out)["errorType"] == "InvalidInvocation"


def test_the_demo_converges_and_writes_its_report_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a small scenario
    # WHEN `python -m localcloud demo` runs it
    code = main(["demo", "--products", "5", "--orders", "30", "--seed", "3", "--out", str(tmp_path)])
    # THEN no entity diverges, and the report and a non-empty chart are written
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "demo-report.json").read_text())
    assert code == 0, out
    assert report["total_divergent"] == 0
    assert report["divergent"] == {
        "availability": 0,
        "order_reservations": 0,
        "order_notifications": 0,
        "order_shipments": 0,
    }
    assert report["operations"]["place_order"] == 30
    # AND every request was sent with the token of who may send it
    assert refused(report["responses"]) == {}
    assert report["responses"]["place_order 201"] == 30
    assert report["events"]["published"] > 0
    assert report["events"]["applied"] > 0
    assert report["reconciler_runs"] == 1
    assert len(report["reconciler_passes_at"]) == 1  # each pass is marked on the chart
    assert report["faults_stopped_at"] is None  # no faults in this run: no "faults stop" mark
    assert "next:" in out
    assert "make serve" in out
    png = (tmp_path / "convergence.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert len(png) > 10_000


def test_a_demo_with_faults_marks_when_they_stop(tmp_path: Path) -> None:
    # GIVEN a small scenario with lost deliveries WHEN the demo runs it
    code = main(["demo", "--products", "4", "--orders", "20", "--out", str(tmp_path), "--lost-delivery", "0.2"])
    report = json.loads((tmp_path / "demo-report.json").read_text())
    # THEN it converges, and the moment faults stopped comes after the start and before the first pass
    assert code == 0
    assert 0 < report["faults_stopped_at"] <= report["reconciler_passes_at"][0]


def test_every_option_of_every_command_explains_itself() -> None:
    # GIVEN the command line of localcloud and its subcommands
    import argparse

    from localcloud.__main__ import parser

    root = parser()
    (commands,) = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    # THEN every option has a description, and its default is shown where it has one
    for name, command in commands.choices.items():
        text = "".join(command.format_help().split())  # the help is wrapped anywhere, even inside a path
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)
                if action.default not in (None, False, True):
                    assert f"(default:{action.default})" in text, (name, action.dest)


def test_the_demo_summary_says_what_a_dispatch_404_and_a_dead_letter_are() -> None:
    # GIVEN a demo report with dispatches that found no shipment and a message left in a DLQ
    report = DemoReport(products=10, orders=80, seed=7)
    report.responses = {"dispatch 200": 10, "dispatch 404": 19, "cross_dispatch 404": 1, "place_order 201": 80}
    report.dead_letter_queues = {"OrdersDLQ": 0, "ShippingDLQ": 1}
    # WHEN the summary is printed
    lines = summary(report).splitlines()
    # THEN one line counts the dispatches answered 404 and says why they found no shipment
    (dispatch,) = [line for line in lines if line.strip().startswith("dispatch 404")]
    assert dispatch.split()[2] == "20"
    assert "no shipment" in dispatch
    assert "OrderConfirmed" in dispatch
    assert "rejected for lack of stock" in dispatch
    assert "cancelled before it was confirmed" in dispatch
    # AND the line after the DLQ depths says how a message gets there and that the reconciler judges and parks it
    depths = next(n for n, line in enumerate(lines) if line.strip().startswith("DLQ depths"))
    assert "'ShippingDLQ': 1" in lines[depths]
    why = lines[depths + 1]
    assert "received 5 times" in why
    assert "the reconciler judges each" in why
    assert "parks poison" in why


def test_the_demo_summary_has_no_dispatch_404_line_when_every_dispatch_found_its_shipment() -> None:
    # GIVEN a demo report whose dispatches all succeeded
    report = DemoReport(products=1, orders=1, seed=1, responses={"dispatch 200": 1})
    # WHEN the summary is printed
    text = summary(report)
    # THEN it explains no 404 that did not happen
    assert "dispatch 404" not in text


def test_the_invoke_command_reads_the_event_from_stdin_with_event_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the place-order fixture on stdin
    path = EVENTS_DIR / "OrdersApiFunction.place-order.json"
    monkeypatch.setattr("sys.stdin", io.StringIO(path.read_text()))
    # WHEN `python -m localcloud invoke OrdersApiFunction --event -` runs
    code = main(["invoke", "OrdersApiFunction", "--event", "-"])
    # THEN the function got that event: the order is placed
    assert code == 0
    assert json.loads(capsys.readouterr().out)["statusCode"] == 201


@pytest.mark.parametrize(
    ("argv", "stdin", "env_vars", "says"),
    [
        (["--parameter-overrides", "Nope=1"], "{}", None, "the template declares no parameter 'Nope'"),
        (["--parameter-overrides", "LogLevel=LOUD"], "{}", None, "LogLevel='LOUD' is not one of its AllowedValues"),
        (["--parameter-overrides", "InboxMaximumConcurrency=1"], "{}", None, "below its MinValue 2"),
        (["--parameter-overrides", "SweepSegments=many"], "{}", None, "SweepSegments='many' is not a number"),
        ([], "{}", {"NoSuchFunction": {"A": "1"}}, "names NoSuchFunction, not a function of the template"),
        ([], "{not json", None, "the event on stdin is not JSON"),
    ],
)
def test_the_invoke_command_refuses_what_the_template_or_sam_would_refuse_in_one_line_before_deploying(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    env_vars: dict[str, Any] | None,
    says: str,
) -> None:
    # GIVEN an override the template cannot take, an env-vars file naming no function of it, or stdin not JSON
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    if env_vars is not None:
        (tmp_path / "env.json").write_text(json.dumps(env_vars))
        argv = [*argv, "--env-vars", str(tmp_path / "env.json")]
    # WHEN invoke runs with it
    code = main(["invoke", "OrdersApiFunction", "--event", "-", *argv])
    # THEN it exits 2 with one line naming the problem, and deployed nothing (a deployment would log a line first)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("python -m localcloud invoke: ")
    assert says in err


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ('{"OrdersApiFunction": "TABLE_NAME=x"}', "OrdersApiFunction: Input should be a valid dictionary"),
        ('{"Parameters": {"LIST": [1, 2]}}', "Parameters.LIST"),
        ("[1]", "Input should be a valid dictionary"),
        ("{nope", "is not JSON"),
    ],
)
def test_the_invoke_command_refuses_an_env_vars_file_not_in_sams_format_when_parsing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, says: str
) -> None:
    # GIVEN an env-vars file that is not {"FunctionLogicalId": {"VAR": value}, "Parameters": {"VAR": value}}
    path = tmp_path / "env.json"
    path.write_text(document)
    # WHEN invoke parses its command line
    with pytest.raises(SystemExit) as exited:
        main(["invoke", "OrdersApiFunction", "--event", "-", "--env-vars", str(path)])
    # THEN it exits 2 with one line naming the file and where it is wrong
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert len(err.splitlines()) == 1, err
    assert f"argument --env-vars/-n: {path} is not" in err
    assert says in err


@pytest.mark.slow
@pytest.mark.parametrize(("log_level", "levels_logged"), [("INFO", {"INFO"}), ("ERROR", set())])
def test_make_invoke_takes_the_event_on_stdin_env_vars_and_parameter_overrides_as_sam_local_invoke_does(
    tmp_path: Path, log_level: str, levels_logged: set[str]
) -> None:
    # GIVEN an env-vars file whose function entry wins over its "Parameters", and names a variable the template
    # does not give the function
    env_vars = tmp_path / "env.json"
    env_vars.write_text(
        json.dumps(
            {
                "Parameters": {"POWERTOOLS_SERVICE_NAME": "every-function"},
                "OrdersApiFunction": {"POWERTOOLS_SERVICE_NAME": "orders-local", "NOT_IN_THE_TEMPLATE": "x"},
            }
        )
    )
    event = (EVENTS_DIR / "OrdersApiFunction.place-order.json").read_text()
    # WHEN `make invoke` runs in a fresh shell with the event on stdin, the file and a LogLevel parameter override
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "invoke",
            "FUNCTION=OrdersApiFunction",
            "EVENT=-",
            f"ENV_VARS={env_vars}",
            f"PARAMETER_OVERRIDES=LogLevel={log_level} JwtAudience='an audience'",
        ],
        cwd=ROOT,
        input=event,
        env=FRESH_SHELL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # THEN the order is placed from the event read on stdin
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout[done.stdout.index("\n{") :])
    assert response["statusCode"] == 201
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    # AND the function ran with the function entry's POWERTOOLS_SERVICE_NAME (its metrics carry it)
    metrics = [line for line in lines if "_aws" in line]
    assert metrics
    assert {line["service"] for line in metrics} == {"orders-local"}
    # AND the LogLevel parameter reached the function's POWERTOOLS_LOG_LEVEL: it logged what that level lets through
    assert {line["level"] for line in lines if "level" in line} == levels_logged
    # AND the variable the template does not give the function was ignored, in one line that says so
    assert "NOT_IN_THE_TEMPLATE not in OrdersApiFunction's environment in the template: ignored" in done.stderr

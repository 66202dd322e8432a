"""Every command line of the project (localcloud, bench, tools) checks its flags when it parses them, answers bad
input in one line with exit code 2, and writes tracked docs only when asked to."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.__main__ import main as bench_main
from localcloud.__main__ import fault_plan, parser
from localcloud.__main__ import main as localcloud_main
from localcloud.faults import FaultPlan
from localcloud.template import ROOT
from tools.dlq import COMMANDS as DLQ_COMMANDS
from tools.dlq import main as dlq_main
from tools.dlq import parser as dlq_parser
from tools.rebuild import main as rebuild_main
from tools.reconcile_cost import main as reconcile_cost_main
from tools.target import local_default

Main = Callable[[list[str]], int]

BAD_INPUT: list[tuple[Main, list[str], str]] = [
    (localcloud_main, ["chaos", "--orders", "-5"], "--orders: must be 1 or more, not -5"),
    (localcloud_main, ["chaos", "--handler-exception", "2"], "--handler-exception: must be a fraction from 0 to 1"),
    (localcloud_main, ["demo", "--lost-delivery", "-0.1"], "--lost-delivery: must be a fraction from 0 to 1"),
    (localcloud_main, ["chaos", "--source-rollback", "nan"], "--source-rollback: must be a fraction from 0 to 1"),
    (localcloud_main, ["demo", "--products", "ten"], "--products: must be a whole number, not 'ten'"),
    (localcloud_main, ["rebuild", "--orders", "0"], "--orders: must be 1 or more, not 0"),
    (localcloud_main, ["demo", "--max-delay-polls", "0"], "--max-delay-polls: must be 1 or more, not 0"),
    (localcloud_main, ["serve", "--port", "70000"], "--port: must be a port from 0 to 65535, not 70000"),
    (localcloud_main, ["token", "--admin", "--expires-in", "0"], "--expires-in: must be 1 or more, not 0"),
    (localcloud_main, ["chaos", "--out", "x.md", "--update-docs"], "not allowed with argument --out"),
    (localcloud_main, ["sideways"], "invalid choice: 'sideways'"),
    (
        localcloud_main,
        ["invoke", "OrdersApiFunction", "-e", "-", "--parameter-overrides", "LogLevel"],
        "--parameter-overrides: 'LogLevel' is neither Key=Value nor ParameterKey=Key,ParameterValue=Value",
    ),
    (
        localcloud_main,
        ["invoke", "OrdersApiFunction", "-e", "-", "--parameter-overrides", "JwtAudience='a"],
        "--parameter-overrides: No closing quotation",
    ),
    (
        localcloud_main,
        ["invoke", "OrdersApiFunction", "-e", "-", "--env-vars", "no/such/env.json"],
        "--env-vars/-n: cannot read no/such/env.json: No such file or directory",
    ),
    (bench_main, ["--sweep-pages", "0"], "--sweep-pages: must be 1 or more, not 0"),
    (bench_main, ["--only", "coldstart,nope"], "unknown sections nope"),
    (bench_main, ["--quick", "--update-docs"], "only a full run may"),
    (bench_main, ["--quick", "--tiny"], "not allowed with argument --quick"),
    (dlq_main, ["--stack", "s", "show", "OrdersDLQ", "--limit", "-1"], "--limit: must be 1 or more, not -1"),
    (dlq_main, ["--stack", "s", "show", "NoSuchDLQ"], "argument queue: invalid choice: 'NoSuchDLQ'"),
    (dlq_main, ["--local", "park", "NoSuchDLQ", "id", "--reason", "r"], "argument queue: invalid choice: 'NoSuchDLQ'"),
    (dlq_main, ["--stack", "s", "park", "OrdersDLQ", "id"], "the following arguments are required: --reason"),
    (reconcile_cost_main, ["--drift", "2"], "--drift: must be a fraction from 0 to 1, not 2"),
    (reconcile_cost_main, ["--entities", "-1"], "--entities: must be 1 or more, not -1"),
    (rebuild_main, ["nothing"], "invalid choice: 'nothing'"),
]


@pytest.mark.parametrize(
    ("main", "argv", "says"), BAD_INPUT, ids=[f"{m.__module__} {' '.join(a)}" for m, a, _ in BAD_INPUT]
)
def test_bad_input_is_refused_at_parse_time_in_one_line_with_exit_code_2(
    capsys: pytest.CaptureFixture[str], main: Main, argv: list[str], says: str
) -> None:
    # GIVEN a command line with a flag out of its range, or flags that exclude each other
    # WHEN the command parses it
    with pytest.raises(SystemExit) as exited:
        main(argv)
    # THEN it exits 2 before doing anything, with one line on stderr that names the flag and the problem
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert says in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["list"], "say which stack: --stack NAME, or --local [URL] for localcloud"),
        (["--stack", "s", "park", "OrdersDLQ", "id", "--reason", " "], "park: --reason must say why, not be empty"),
        (["--local", "localhost:5000", "list"], "--local: 'localhost:5000' is not a URL (http://HOST:PORT)"),
    ],
)
def test_dlq_input_refused_after_parsing_is_one_line_with_exit_code_2_before_any_aws_call(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    # GIVEN a tools.dlq command line that parses but cannot be used: no stack named, or an empty reason to park
    # WHEN the tool runs it
    code = dlq_main(argv)
    # THEN it exits 2 with that one line on stderr, printing nothing else
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.splitlines() == [f"tools.dlq: {says}"]


@pytest.mark.parametrize(
    ("argv", "local", "command"),
    [
        (["--local", "list"], "http://127.0.0.1:5000", "list"),
        (["--local", "http://127.0.0.1:5001", "show", "OrdersDLQ"], "http://127.0.0.1:5001", "show"),
        (["--stack", "converge", "list"], None, "list"),
    ],
)
def test_dlq_local_without_a_url_is_the_default_server_not_the_command(
    argv: list[str], local: str | None, command: str
) -> None:
    # GIVEN `--local` followed by a command, or by a URL, or a named stack
    # WHEN tools.dlq parses the command line
    args = dlq_parser().parse_args(local_default(argv, DLQ_COMMANDS))
    # THEN a bare --local is localcloud's default server, and the command is still the command
    assert (args.local, args.command) == (local, command)


def test_rebuild_without_a_region_or_credentials_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a shell with no AWS region, credentials or configuration
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # WHEN `python -m tools.rebuild availability` runs
    code = rebuild_main(["availability"])
    # THEN it exits 2 with one line naming the stack and what is missing, not a traceback
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "cannot read stack 'converge'" in err
    assert "region" in err


def test_serve_on_a_port_in_use_says_so_in_one_line_before_deploying(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a port something else listens on
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        # WHEN `serve` is asked to listen there
        code = localcloud_main(["serve", "--port", str(port)])
    # THEN it exits 2 with one line, and deployed nothing (a deployment logs "deployed ..." first)
    err = capsys.readouterr().err
    assert code == 2
    said = f"python -m localcloud serve: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert err.splitlines() == [said]


@pytest.mark.parametrize(("command", "mix"), [("chaos", "chaos"), ("rebuild", "chaos"), ("demo", "none")])
def test_each_commands_help_states_the_fault_mix_it_starts_from(command: str, mix: str) -> None:
    # GIVEN a command with fault flags, run without --faults
    args = parser().parse_args([command])
    # WHEN its help is read and its fault plan built
    (commands,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    text = " ".join(commands.choices[command].format_help().split())
    plan = fault_plan(args)
    # THEN the help says the mix it starts from, and that is the plan it runs
    assert f"this command starts from {'the chaos mix' if mix == 'chaos' else 'no faults'}" in text
    assert re.search(rf"--faults {{none,chaos}} start from no faults or the chaos mix \(default: {mix}\)", text)
    assert plan == (FaultPlan.chaos(0) if mix == "chaos" else None)


def test_chaos_writes_under_out_unless_asked_to_update_the_docs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the JSON report of an earlier run, in a checkout's copy
    monkeypatch.chdir(tmp_path)
    earlier = tmp_path / "chaos.json"
    earlier.write_text(json.dumps({"orders": 3, "products": 1, "seed": 7, "pass_mode": "scheduled", "plan": {}}))
    # WHEN chaos renders it with no output flag, then with --update-docs
    localcloud_main(["chaos", "--render-from", str(earlier)])
    first = capsys.readouterr().out
    assert not (tmp_path / "docs").exists()
    localcloud_main(["chaos", "--render-from", str(earlier), "--update-docs"])
    second = capsys.readouterr().out
    # THEN the first wrote out/RELIABILITY.md and said so; only the second wrote the tracked docs/RELIABILITY.md
    assert first.splitlines() == ["chaos: wrote out/RELIABILITY.md"]
    assert (tmp_path / "out" / "RELIABILITY.md").is_file()
    assert second.splitlines() == ["chaos: wrote docs/RELIABILITY.md"]
    assert (tmp_path / "docs" / "RELIABILITY.md").is_file()


def _recipe(target: str) -> str:
    makefile = (ROOT / "Makefile").read_text()
    found = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert found, target
    return found.group(1)


def test_only_the_make_targets_that_regenerate_tracked_reports_update_the_docs() -> None:
    # GIVEN the Makefile's recipes for the full benchmark, the quick one and the chaos run
    bench, quick, chaos = _recipe("bench"), _recipe("bench-quick"), _recipe("chaos")
    # THEN the full benchmark and the chaos run pass --update-docs; the quick benchmark never names the docs
    assert "-m bench --update-docs" in bench
    assert "-m localcloud chaos" in chaos
    assert "--update-docs" in chaos
    assert "--update-docs" not in quick
    assert "docs/" not in quick

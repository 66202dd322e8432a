"""README.md's command blocks run as written, in a fresh shell (no venv activated, only PATH), from the repository's
root. A command that cannot run inside a test is in NOT_RUN with the reason; every other command is in RUN with what
it must do. A command in neither (a new block, a changed line) fails the test until it is classified.

`make demo` runs as written, the default scenario (80 orders): about a minute here, bounded by DEMO_LIMIT.
`make serve` runs as written on its documented port 3000, is called with a token made as the README says, then
stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Callable

import pytest

from localcloud.template import ROOT
from tests.localcloud.helpers import FRESH_SHELL, bash_blocks, commands, fenced_blocks

README = ROOT / "README.md"
DEMO_LIMIT = 240  # seconds: the demo takes about one here; a hung run fails instead of holding the suite
RUN_LIMIT = 120  # seconds, for any other command
SERVED = "http://127.0.0.1:3000"

# The commands no test runs, each with why; what covers them instead, where something does.
NOT_RUN = {
    "make test": "the whole suite, this test included (30+ minutes): it would run itself",
    "sam build": "needs SAM CLI on PATH and a python3.13; make template-check runs the same build with .tools/sam",
    "sam deploy --guided": "deploys to an AWS account, asking questions",
    "sam deploy --config-env dev": "deploys to an AWS account",
    "ops/localstack/deploy.sh": "needs LocalStack on 127.0.0.1:4566; make test-localstack starts one and runs it",
    "make sam-local": "needs Docker and takes minutes; make sam-local is its own check",
}

PLACE_ORDER = "make invoke FUNCTION=OrdersApiFunction EVENT=events/OrdersApiFunction.place-order.json"
PLACE_ORDER_FROM_STDIN = (
    'make invoke FUNCTION=OrdersApiFunction EVENT=- PARAMETER_OVERRIDES="LogLevel=ERROR" '
    "< events/OrdersApiFunction.place-order.json"
)


def in_fresh_shell(command: str, limit: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -eu\ncd {ROOT}\n{command}"],
        env=FRESH_SHELL,
        capture_output=True,
        text=True,
        timeout=limit,
    )


def response_of(stdout: str) -> dict[str, object]:
    """The response `make invoke` printed: the JSON document after make's echo of its recipe."""
    return json.loads(stdout[stdout.index("\n{") :])  # type: ignore[no-any-return]


def check_demo(command: str) -> None:
    done = in_fresh_shell(command, DEMO_LIMIT)
    # THEN the demo converged, and its summary explains the dispatch 404s and the DLQ depths it shows
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^  divergent .* -> 0 in total$", done.stdout, re.MULTILINE), done.stdout
    assert "dispatches that found no shipment" in done.stdout
    assert "the reconciler judges each" in done.stdout


def check_place_order(command: str) -> None:
    done = in_fresh_shell(command, RUN_LIMIT)
    # THEN the function placed the order, and logged as it does at the template's LogLevel (INFO)
    assert done.returncode == 0, done.stderr
    assert response_of(done.stdout)["statusCode"] == 201
    assert '"level":"INFO"' in done.stderr


def check_place_order_from_stdin(command: str) -> None:
    done = in_fresh_shell(command, RUN_LIMIT)
    # THEN the function placed the order read from stdin, and logged nothing at the overridden LogLevel ERROR
    assert done.returncode == 0, done.stderr
    assert response_of(done.stdout)["statusCode"] == 201
    assert '"level":"' not in done.stderr


def check_serve(command: str) -> None:
    server = subprocess.Popen(
        ["bash", "-c", f"cd {ROOT}\nexec {command}"],
        env=FRESH_SHELL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    said: list[str] = []
    try:
        assert server.stderr is not None
        for line in server.stderr:
            said.append(line)
            if f"HTTP API on {SERVED}" in line:
                break
        else:
            pytest.fail("make serve stopped before serving: " + "".join(said))
        # serve logs every request on stderr: keep reading it, or a full pipe would stop the server
        rest = threading.Thread(target=lambda: said.extend(server.stderr or []), daemon=True)
        rest.start()
        # THEN it answers a customer whose token is made as the README says
        token = in_fresh_shell(".venv/bin/python -m localcloud token --customer c-001", RUN_LIMIT)
        assert token.returncode == 0, token.stderr
        request = urllib.request.Request(
            f"{SERVED}/customers/c-001/notifications", headers={"authorization": f"Bearer {token.stdout.strip()}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
            assert isinstance(json.loads(answer.read()), dict)
    finally:
        # AND Ctrl-C stops it (make and the server both get SIGINT, as from a terminal)
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    rest.join(timeout=10)
    assert any("localcloud: stopped" in line for line in said), "".join(said)


# The commands the test runs, each with what it must do.
RUN: dict[str, Callable[[str], None]] = {
    "make demo": check_demo,
    PLACE_ORDER: check_place_order,
    PLACE_ORDER_FROM_STDIN: check_place_order_from_stdin,
    "make serve": check_serve,
}


def readme_commands() -> list[str]:
    return [command for block in bash_blocks(README) for command in commands(block)]


def test_every_command_of_the_readme_is_run_or_excluded_with_its_reason() -> None:
    # GIVEN README.md's fenced blocks
    blocks = fenced_blocks(README)
    # THEN the blocks that are not bash are the diagrams (box drawing), no commands in another shell's dialect
    others = [(language, text) for language, text in blocks if language != "bash"]
    assert others
    assert all(language == "" and "──" in text for language, text in others), others
    # AND every command of the bash blocks is either run by this test or excluded with a reason, and no
    # classification names a command the README no longer has
    found = readme_commands()
    assert [command for command in found if command not in RUN and command not in NOT_RUN] == []
    assert sorted({*RUN, *NOT_RUN}) == sorted(set(found))
    assert not set(RUN) & set(NOT_RUN)
    assert all(reason.strip() for reason in NOT_RUN.values())


@pytest.mark.slow
@pytest.mark.parametrize("command", list(RUN))
def test_the_readme_command_runs_as_written_in_a_fresh_shell(command: str) -> None:
    # GIVEN a command of README.md, and a shell with nothing but PATH (no venv activated), at the repository's root
    assert command in readme_commands()
    # WHEN it runs as written
    RUN[command](command)

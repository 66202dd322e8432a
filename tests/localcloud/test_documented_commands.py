"""docs/api.md's command blocks run as written, in a fresh shell (no venv activated, only PATH), against
`python -m localcloud serve`: the tokens from `.venv/bin/python -m localcloud token`, then every curl of the
routes, in document order. Two things are replaced, and only these: the base URL (serve listens on a free port) and
the `<order_id>` placeholder (the id the documented POST /orders answered in its Location header)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from localcloud.template import ROOT
from tests.localcloud.helpers import FRESH_SHELL, bash_blocks, commands

API_DOC = ROOT / "docs" / "api.md"
BASE = "http://127.0.0.1:3000"
MARK = ">>> command "


def script(all_commands: list[str], base: str) -> str:
    lines = ["set -eu", f"cd {ROOT}"]
    for number, command in enumerate(all_commands):
        command = command.replace(BASE, base).replace("<order_id>", "$ORDER_ID")
        if re.match(r"^[A-Z_]+=\$\(", command):  # an assignment (TOKEN=..., ADMIN=...): its value is checked below
            lines += [command, f'echo "{MARK}{number}"; echo "${command.split("=")[0]}"']
            continue
        lines += [f'echo "{MARK}{number}"', f"OUT=$({command})", 'echo "$OUT"']
        if "-si -X POST" in command and "/orders " in command:
            lines.append("ORDER_ID=$(echo \"$OUT\" | sed -n 's|^[Ll]ocation: /orders/||p' | tr -d '\\r')")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_every_command_of_the_api_doc_runs_as_written_in_a_fresh_shell(served_api: str) -> None:
    # GIVEN the bash blocks of docs/api.md, in order, and a shell with nothing but PATH (no venv activated)
    all_commands = [command for block in bash_blocks(API_DOC) for command in commands(block)]
    assert any(c.startswith("TOKEN=$(.venv/bin/python -m localcloud token") for c in all_commands)
    # WHEN they run one after the other against the served API
    done = subprocess.run(
        ["bash", "-c", script(all_commands, served_api)], env=FRESH_SHELL, capture_output=True, text=True, timeout=300
    )
    # THEN every command succeeded
    assert done.returncode == 0, done.stderr
    outputs = {
        int(number): text.strip()
        for number, text in re.findall(rf"^{MARK}(\d+)\n(.*?)(?=^{MARK}|\Z)", done.stdout, re.MULTILINE | re.DOTALL)
    }
    assert sorted(outputs) == list(range(len(all_commands)))
    for number, command in enumerate(all_commands):
        output = outputs[number]
        if command.startswith(("TOKEN=", "ADMIN=")):
            # AND the token commands printed a JWT (three base64url parts), not a ModuleNotFoundError
            assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", output), (command, output, done.stderr)
            continue
        # AND every curl got a JSON answer from the API (after the headers where -i asks for them)
        body = re.split(r"\r?\n\r?\n", output)[-1] if "-si" in command else output
        assert isinstance(json.loads(body), dict), (command, output)
    # AND where the document shows the answer, the API gave that answer
    documented = re.search(r"^# (\{\"product_id\":\"p-1\",\"on_hand\":5.*\})$", API_DOC.read_text(), re.MULTILINE)
    assert documented
    first_put = next(n for n, c in enumerate(all_commands) if "-X PUT" in c)
    assert json.loads(outputs[first_put]) == json.loads(documented.group(1))

"""`python -m localcloud serve` as a process: it answers on the port it prints and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from localcloud.template import ROOT
from tests.localcloud.helpers import FIXTURE_TEMPLATE, request


@pytest.mark.slow
def test_the_serve_command_answers_and_stops_cleanly_on_sigterm() -> None:
    # GIVEN `python -m localcloud serve` on a free port, with the fixture template
    process = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "--template", str(FIXTURE_TEMPLATE), "serve", "--port", "0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            found = re.search(r"HTTP API on http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port is not None
        # WHEN a request is sent, then SIGTERM
        status, body = request(f"http://127.0.0.1:{port}/things/served")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    # THEN it answered through the route and exited 0
    assert (status, body["pathParameters"]) == (200, {"thing_id": "served"})
    assert code == 0

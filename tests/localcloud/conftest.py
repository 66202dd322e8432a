"""Fixtures of the localcloud tests: a LocalCloud deployed from the small fixture template."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from localcloud.cloud import LocalCloud
from localcloud.template import ROOT
from tests.localcloud.helpers import FIXTURE_TEMPLATE


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(FIXTURE_TEMPLATE) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def served_api() -> Iterator[str]:
    """`python -m localcloud serve` of template.yaml on a free port, as a process: its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "serve", "--port", "0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "common" / "python")])},
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"HTTP API on (http://127\.0\.0\.1:\d+)", line)
            if found:
                # serve logs every request on stderr: keep reading it, or a full pipe would stop the server
                threading.Thread(target=process.stderr.read, daemon=True).start()
                yield found.group(1)
                break
        else:
            pytest.fail("serve printed no address")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

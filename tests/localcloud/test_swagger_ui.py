"""Swagger UI under `python -m localcloud serve`, rendered by headless Chromium as a person's browser would show it.

Chromium (Debian's `chromium`; `make browser` installs it, `make test` depends on it) runs as root here, hence
`--no-sandbox`; its host resolver maps every name but 127.0.0.1 to nothing, so it only reaches the served page.
The screenshot is kept as out/swagger-ui.png for a person to look at.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from localcloud.template import ROOT

WINDOW = (1280, 2400)
# Swagger UI's colours of the method badges: pixels of these mean the operations were drawn, not just the page.
METHOD_COLOURS = {"get": (0x61, 0xAF, 0xFE), "post": (0x49, 0xCC, 0x90), "put": (0xFC, 0xA1, 0x30)}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
OFFLINE = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-pings",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=15000",
]


def documented_routes() -> set[tuple[str, str]]:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    return {(method, path) for path, item in document["paths"].items() for method in item if method in METHODS}


def stop_group(process: subprocess.Popen[str]) -> None:
    """Stop a process started in a session of its own, and every child it left (Chromium's renderers)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # the group is gone: nothing was left behind
        os.killpg(process.pid, signal.SIGKILL)


def chromium(url: str, profile: Path, *options: str) -> str:
    """Run headless Chromium on `url` with its own profile; its stdout. Stopped by PID with its children."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: `make browser` installs it (apt-get install chromium)"
    process = subprocess.Popen(
        [binary, *OFFLINE, f"--user-data-dir={profile}", *options, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=120)
    finally:
        stop_group(process)
    assert process.returncode == 0, f"chromium exited {process.returncode}"
    return out


@pytest.fixture(scope="module")
def served_docs() -> Iterator[str]:
    """`python -m localcloud serve` (template.yaml) on a free loopback port: the URL of its /docs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            found = re.search(r"HTTP API on http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port is not None, "localcloud serve did not say where it listens"
        yield f"http://127.0.0.1:{port}/docs"
    finally:
        stop_group(process)


@pytest.mark.slow
def test_swagger_ui_renders_every_documented_route(served_docs: str, tmp_path: Path) -> None:
    # WHEN headless Chromium loads /docs and lets its scripts run, then dumps the DOM
    dom = chromium(served_docs, tmp_path / "profile", "--dump-dom")
    # THEN Swagger UI drew one operation block per route of docs/openapi.json, and no other
    rendered = set(re.findall(r'<div class="opblock opblock-(\w+)[^"]*" id="[^"]*".*?data-path="([^"]*)"', dom, re.S))
    assert rendered == documented_routes()
    assert "Converge HTTP API" in dom


@pytest.mark.slow
def test_swagger_ui_screenshot_shows_the_operations(served_docs: str, tmp_path: Path) -> None:
    # WHEN headless Chromium takes a screenshot of /docs at a fixed window size
    shot = tmp_path / "swagger-ui.png"
    chromium(
        served_docs,
        tmp_path / "profile",
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--hide-scrollbars",
    )
    # THEN it is a PNG of the window, with the variety of a rendered page and the method badges' colours in it
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000
    with Image.open(shot) as image:
        assert image.size == WINDOW
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    counts = {rgb: count for count, rgb in colours}
    assert len(counts) > 500, f"only {len(counts)} colours: a blank or error page"
    for method, rgb in METHOD_COLOURS.items():
        assert counts.get(rgb, 0) > 1000, f"no {method.upper()} badge drawn"
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    shutil.copyfile(shot, out / "swagger-ui.png")

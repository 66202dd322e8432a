"""Paths the tests on the real template.yaml share."""

from __future__ import annotations

from pathlib import Path

from localcloud.template import ROOT, TEMPLATE_PATH

EVENTS_DIR = ROOT / "events"
REAL_TEMPLATE: Path = TEMPLATE_PATH

"""What the tests on the real template.yaml need: whether the services exist yet, and a deployed LocalCloud."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcloud.template import ROOT, TEMPLATE_PATH, function_specs

MISSING_CODE = sorted(
    {
        str(spec.code_dir.relative_to(ROOT))
        for spec in function_specs().values()
        if not (spec.code_dir / "handlers.py").exists()
    }
)


def skip_while_services_are_missing() -> pytest.MarkDecorator:
    """Skip only while a function directory of template.yaml is not in the tree yet."""
    return pytest.mark.skipif(bool(MISSING_CODE), reason=f"function code not written yet: {', '.join(MISSING_CODE)}")


EVENTS_DIR = ROOT / "events"
REAL_TEMPLATE: Path = TEMPLATE_PATH

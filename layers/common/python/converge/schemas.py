"""Export one JSON Schema per event type: `python -m converge.schemas events/schemas`.

The committed files are checked against the models in CI (tests/unit/test_event_contract.py), so the
published contract cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from converge.envelope import detail_json_schema
from converge.events import EVENT_TYPES


def render_all() -> dict[str, str]:
    """File name -> JSON text, for every event type."""
    return {
        f"{event_type}.json": json.dumps(detail_json_schema(event_type), indent=2, sort_keys=True) + "\n"
        for event_type in sorted(EVENT_TYPES)
    }


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "events/schemas")
    out.mkdir(parents=True, exist_ok=True)
    rendered = render_all()
    for stale in {p.name for p in out.glob("*.json")} - set(rendered):
        (out / stale).unlink()
    for name, text in rendered.items():
        (out / name).write_text(text)
    print(f"wrote {len(rendered)} schemas to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Reconciliation read cost, measured by tools/reconcile_cost.py (`measure(entities, drift) -> dict`).

That tool belongs to the convergence work (it shares the reconciler's mechanism); the benchmark only calls it
at the sizes of the run and puts its rows in the doc. Until it exists the section says so.
"""

from __future__ import annotations

import importlib
from typing import Any

DRIFTS = (0.0, 0.001, 0.01)


def measure(entities: int) -> dict[str, Any]:
    try:
        tool = importlib.import_module("tools.reconcile_cost")
    except ModuleNotFoundError as exc:
        return {"available": False, "reason": f"tools/reconcile_cost.py is not in the tree yet ({exc.name})"}
    rows = [tool.measure(entities, drift) for drift in DRIFTS]
    return {"available": True, "entities": entities, "rows": rows}

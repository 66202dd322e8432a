"""localcloud's modules import one another without a cycle, counting type-only and deferred imports: what a module
needs from the cloud is a Protocol in localcloud/ports.py, not an import of localcloud/cloud.py."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def import_graph(root: Path, package: str = "localcloud") -> dict[str, set[str]]:
    """Each module of `package` under `root`, with the modules of the package it imports anywhere in its text."""
    modules: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        # a package's own __init__ is not a dependency of its modules
        graph[name] = {m for m in imported if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph`, [] when it has none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return []


def test_localcloud_has_no_import_cycle() -> None:
    # GIVEN every import statement of localcloud's modules, module level, TYPE_CHECKING and in functions
    graph = import_graph(ROOT)
    # THEN the server and the archive reach the cloud only through its ports, and no module imports itself round
    assert "localcloud.cloud" in graph
    assert "localcloud.ports" in graph
    assert "localcloud.cloud" not in graph["localcloud.httpapi"] | graph["localcloud.archive"]
    assert cycle_in(graph) == []


def test_a_type_only_import_back_is_a_cycle(tmp_path: Path) -> None:
    # GIVEN two modules of a package, the second importing the first back only for its types
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cloud.py").write_text("from pkg.httpapi import ApiServer\n")
    (package / "httpapi.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.cloud import LocalCloud\n"
    )
    # WHEN its graph is read THEN the cycle is found
    assert sorted(set(cycle_in(import_graph(tmp_path, "pkg")))) == ["pkg.cloud", "pkg.httpapi"]


@pytest.mark.parametrize("module", ["localcloud.httpapi", "localcloud.archive"])
def test_the_ports_are_what_the_server_and_archive_import(module: str) -> None:
    # THEN the modules that once imported the cloud import its ports instead
    assert "localcloud.ports" in import_graph(ROOT)[module]

"""Adding a service is derived (issue 24): outside its own folder (`functions/<name>/`), `events/` and `tests/`, a
new service touches the code and configuration files of `TOUCHED` and nothing else. Every other place that lists
services reads the contracts (`converge.contracts.SERVICES`); `DERIVED` names each such place and checks it.
docs/ARCHITECTURE.md ("Adding a service") and converge/contracts.py's docstring state the count of `TOUCHED`.

Prose docs (README.md, docs/*.md) are not counted; the generated ones (docs/openapi.json, docs/asyncapi.yaml,
docs/events.md's catalogue, docs/deploy.md's tables, events/schemas) are written by make and drift-tested.
"""

from __future__ import annotations

import ast
import glob
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from converge.contracts import SERVICES, SERVICES_BY_NAME, ServiceContract, statuses_without_news, with_tables
from converge.projections import PROJECTIONS, RESERVATION, SAGAS, SHIPMENT

ROOT = Path(__file__).resolve().parents[2]

# What a new service touches outside functions/<name>/, events/ and tests/: its declarations and its resources.
TOUCHED = {
    "layers/common/python/converge/events.py": "its payload models (each event type pins one status)",
    "layers/common/python/converge/projections.py": "its entity layouts, and its projections and saga pairs if any",
    "layers/common/python/converge/contracts.py": "its ServiceContract, in SERVICES",
    "template.yaml": "its resources (tests/unit/test_service_contracts.py names each one missing)",
    "tools/reconcile_cost.py": "the data set's item of its entity, if that entity is a saga side of the orders",
}
# Files that spell services for another reason than listing them, so a new service does not touch them.
NOT_LISTS = {
    "localcloud/convergence.py": "the checker restates the first three services' rules on purpose (an independent "
    "second opinion); other services' tables and pairs come from the contracts (`tables`, `SAGAS`)",
}
EXCLUDED = ("functions/", "events/", "tests/")  # the new service's own folder, its fixtures, the tests
NUMBERS = {"four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11}


def _names_of(service: ServiceContract) -> set[str]:
    """How code spells a service: its name, source, folder and the template's logical ids its contract implies."""
    names = {service.name, service.source, f"functions/{service.name}", service.inbox, service.dlq, service.rule}
    return names | set(service.functions().values()) | ({service.table} if service.table else set())


SPELLINGS = {spelling: service.name for service in SERVICES for spelling in _names_of(service)}


def _literal_lists(tree: ast.AST) -> list[tuple[int, set[str]]]:
    """(line, the services named) of every literal list, tuple, set or dict (its keys) naming two or more."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            elements = list(node.elts)
        elif isinstance(node, ast.Dict):
            elements = [key for key in node.keys if key is not None]
        else:
            continue
        strings = [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        named = {SPELLINGS[string] for string in strings if string in SPELLINGS}
        if len(named) >= 2:
            found.append((node.lineno, named))
    return found


def _python_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [path for path in listed.stdout.split() if not path.startswith(EXCLUDED)]


def _hand_lists() -> dict[str, list[tuple[int, set[str]]]]:
    """Every Python file outside functions/, events/ and tests/ that spells services as a literal list."""
    found = {}
    for path in _python_files():
        if lists := _literal_lists(ast.parse((ROOT / path).read_text(), path)):
            found[path] = lists
    return found


def _documented_count(text: str, where: str) -> int:
    match = re.search(r"touches (\w+) (?:code and configuration )?files", " ".join(text.split()))
    assert match, f"{where} does not say how many files a new service touches"
    word = match.group(1)
    return int(word) if word.isdigit() else NUMBERS[word]


def test_no_file_but_the_touched_ones_lists_services_by_hand() -> None:
    # GIVEN every Python file outside a service's folder, events/ and tests/
    # WHEN the literal lists, tuples, sets and dict keys in them are read
    hand_lists = _hand_lists()
    # THEN only the files a new service touches name two services or more in one (the rest read the contracts)
    unexpected = {path: lists for path, lists in hand_lists.items() if path not in TOUCHED and path not in NOT_LISTS}
    assert not unexpected, f"services listed by hand (derive them from converge.contracts.SERVICES): {unexpected}"


def test_the_configuration_names_no_service() -> None:
    # GIVEN pyproject.toml and the Makefile
    pyproject = (ROOT / "pyproject.toml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    # WHEN they are searched for a service's folder or package name in a list
    config = tomllib.loads(pyproject)["tool"]
    # THEN ruff, mypy and pytest find every CodeUri by a glob (or from the packages make typecheck names)
    assert "functions/*" in config["ruff"]["src"]
    assert "known-first-party" not in config["ruff"].get("lint", {}).get("isort", {})
    assert "functions" not in config["mypy"]["mypy_path"]
    assert "$(wildcard functions/*/*/__init__.py)" in makefile
    assert "functions/*" in config["pytest"]["ini_options"]["pythonpath"]
    for service in SERVICES:
        assert f"functions/{service.name}" not in pyproject + makefile, service.name
        assert f'"{service.name}"' not in pyproject, service.name
    # AND the globs match every service's package (each CodeUri holds one package of its name)
    packages = {Path(p).parent.name for p in glob.glob(str(ROOT / "functions" / "*" / "*" / "__init__.py"))}
    assert {s.name for s in SERVICES if s.functions()} - {"reconciler"} <= packages


def test_what_lists_services_derives_from_the_contracts() -> None:
    """Each place that lists services, and how it follows the contracts (DERIVED, in docs/ARCHITECTURE.md too)."""
    from localcloud.convergence import DECLARED_PAIRS
    from localcloud.faults.drift import SOURCE_TABLES
    from reconciler.compare import NO_NEWS
    from tools import openapi, reconcile_cost

    # GIVEN the contracts' tables and layouts
    tables = {str(s.table): s for s in with_tables()}
    # THEN the reconciler's NO_NEWS is the statuses whose event no contract consumes
    assert NO_NEWS == statuses_without_news() == {SHIPMENT: ("PENDING",), RESERVATION: ("RELEASED", "SHIPPED")}
    # AND the OpenAPI document has a tag per service with an API, and the errors each contract declares
    assert [tag for tag, _, _ in openapi.SERVICES] == [s.name for s in SERVICES if s.api]
    errors = openapi.errors()
    for service in SERVICES:
        for route, declared in service.api_errors.items():
            method, path = route.split(" ", 1)
            assert {int(e.http_status or 0) for e in declared} <= set(errors[(method.lower(), path)]), route
    # AND the reconcile-cost data set writes each item to its contract's table, and the projections as declared
    for table, service in tables.items():
        for layout in service.layouts:
            assert reconcile_cost._by_table([{"pk": layout.key("x1")[0], "sk": layout.sk}]) == {
                table: [{"pk": layout.key("x1")[0], "sk": layout.sk}]
            }
    assert set(reconcile_cost.projected([])) == {str(SERVICES_BY_NAME[p.table].table) for p in PROJECTIONS}
    # AND localcloud's drift faults roll back every contract's sources, its checker checks every declared pair
    assert {table: s.layouts for table, s in tables.items() if s.layouts} == SOURCE_TABLES
    assert [saga.name for saga in (SAGAS[0], *DECLARED_PAIRS)] == [saga.name for saga in SAGAS]
    # AND the sam-local driver and localcloud's scenario name no service (the scan above): the driver's inboxes
    # come from the contracts (`with_inboxes`), the scenario drives the HTTP API's routes
    assert "with_inboxes" in (ROOT / "ops" / "samlocal" / "drive.py").read_text()


@pytest.mark.parametrize(
    ("path", "section"),
    [("docs/ARCHITECTURE.md", "## Adding a service"), ("layers/common/python/converge/contracts.py", '"""')],
)
def test_the_documented_count_is_the_count(path: str, section: str) -> None:
    # GIVEN the place that tells a developer how to add a service
    text = (ROOT / path).read_text()
    start = text.index(section)
    end = text.find("\n## ", start + len(section)) if section.startswith("#") else text.index('"""', start + 3)
    told = text[start : end if end != -1 else len(text)]
    # WHEN it says how many files outside the service's folder, events/ and tests/ a new service touches
    count = _documented_count(told, path)
    # THEN that is the count of TOUCHED, and the docs name each of them
    assert count == len(TOUCHED)
    if path.endswith(".md"):
        for touched in TOUCHED:
            assert Path(touched).name in told, f"{path} does not name {touched}"

"""Every events/<FunctionLogicalId>.<case>.json runs through `localcloud invoke`, the Docker-free `sam local invoke`.

The fixtures run in one deployed stack, writes before reads, so that a fixture that reads an entity (GET an order)
finds the one another fixture created (the order placed with the same Idempotency-Key).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.__main__ import invoke_file
from localcloud.cloud import LocalCloud
from tests.localcloud.real import EVENTS_DIR, REAL_TEMPLATE

READS = ("get-", "list-")
LATER_WRITES = ("cancel", "adjust", "dispatch")


def _phase(path: Path) -> tuple[int, str]:
    function, case = path.name.split(".")[:2]
    if case.startswith(READS):
        return (3, path.name)
    if case.startswith(LATER_WRITES):
        return (4, path.name)
    return (1 if function.endswith("ApiFunction") else 2, path.name)


FIXTURES = sorted(EVENTS_DIR.glob("*.json"), key=_phase)


@pytest.fixture(scope="module")
def deployed() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as cloud:
        yield cloud


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_event_fixture_runs_through_localcloud_invoke(deployed: LocalCloud, path: Path) -> None:
    # GIVEN the fixture for <FunctionLogicalId>.<case>
    function = path.name.split(".")[0]
    expect_failures = any(word in path.name for word in ("bad", "poison"))
    # WHEN it is invoked the way `localcloud invoke` does (the pipeline is not pumped: each fixture is one event)
    invocation = invoke_file(deployed, function, path)
    # THEN the function ran without error and answered sanely for its event source
    assert invocation.ok, invocation.error
    event = json.loads(path.read_text())
    response = invocation.response
    if "routeKey" in event:
        assert 200 <= response["statusCode"] < 300, response
    elif "Records" in event:
        failures = (response or {}).get("batchItemFailures", [])
        assert bool(failures) == expect_failures, response

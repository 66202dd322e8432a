"""The service kit in the layer (no AWS): status machines, the error families' HTTP answers, settings and wiring."""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import pytest

from converge.entry import Wiring, api_entry
from converge.errors import (
    ConcurrentUpdateError,
    NotFoundError,
    SettingsError,
    TransitionNotAllowedError,
    UnprocessableError,
)
from converge.http import make_resolver
from converge.settings import TableSettings, load_settings, settings
from converge.status import StatusMachine
from localcloud.context import LambdaContext
from tests.support.events import http_event


class Light(StrEnum):
    RED = "RED"
    GREEN = "GREEN"
    OFF = "OFF"


LIGHTS = StatusMachine(
    "light",
    {Light.RED: frozenset({Light.GREEN, Light.OFF}), Light.GREEN: frozenset({Light.RED}), Light.OFF: frozenset()},
)


# What Lambda passes (localcloud's stand-in has the same attributes).
CONTEXT: Any = LambdaContext(function_name="Fn", timeout_seconds=3)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    settings.cache_clear()
    yield monkeypatch
    settings.cache_clear()


def test_a_status_machine_allows_only_its_declared_moves() -> None:
    # GIVEN a machine declared as data
    # WHEN every pair is asked
    allowed = {(a, b) for a in Light for b in Light if LIGHTS.allows(a, b)}
    # THEN exactly the declared moves are allowed, and sources_of reads the table backwards
    assert allowed == {(Light.RED, Light.GREEN), (Light.RED, Light.OFF), (Light.GREEN, Light.RED)}
    assert LIGHTS.sources_of(Light.RED) == {Light.GREEN}


def test_a_refused_move_names_the_entity_and_its_status() -> None:
    # GIVEN a light that is off
    # WHEN it is asked to turn green
    with pytest.raises(TransitionNotAllowedError) as refused:
        LIGHTS.check("l-1", Light.OFF, Light.GREEN)
    # THEN the error is a 409 whose body names the light's status
    assert str(refused.value) == "light l-1 is OFF and cannot become GREEN"
    assert refused.value.http_status == 409
    assert refused.value.http_body() == {"light_status": "OFF"}


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (NotFoundError("thing t-1 not found"), 404, {"message": "thing t-1 not found"}),
        (ConcurrentUpdateError("thing t-1 changed"), 409, {"message": "thing t-1 changed"}),
        (
            TransitionNotAllowedError("light", "l-1", Light.OFF, Light.RED),
            409,
            {
                "message": "light l-1 is OFF and cannot become RED",
                "light_status": "OFF",
            },
        ),
        (UnprocessableError("key reused"), 422, {"message": "key reused"}),
    ],
)
def test_the_resolver_answers_every_error_family_in_one_shape(error: Exception, status: int, body: Any) -> None:
    # GIVEN a resolver whose route raises a layer error, and no handler registered by the route's service
    app = make_resolver()

    @app.get("/things")
    def things() -> dict[str, Any]:
        raise error

    # WHEN it is called
    response = app.resolve(http_event("GET", "/things"), CONTEXT)
    # THEN the answer is the error's status, with its message (and what else it carries) in the project's shape
    assert (response["statusCode"], json.loads(response["body"])) == (status, body)


def test_a_missing_table_name_fails_with_one_line_naming_the_variable(environment: pytest.MonkeyPatch) -> None:
    # GIVEN a function environment without TABLE_NAME
    environment.setenv("POWERTOOLS_SERVICE_NAME", "orders")
    environment.delenv("TABLE_NAME", raising=False)
    # WHEN the function's settings are loaded
    with pytest.raises(SettingsError) as failed:
        load_settings(TableSettings)
    # THEN the message is one line naming what is missing
    assert str(failed.value) == "TableSettings of 'orders' is invalid: TABLE_NAME: must be set"


def test_an_entry_point_fails_its_first_invocation_on_missing_settings(environment: pytest.MonkeyPatch) -> None:
    # GIVEN an API entry point whose wiring needs a table, and no TABLE_NAME
    environment.delenv("TABLE_NAME", raising=False)
    built: list[str] = []
    wiring = Wiring(TableSettings, lambda config: built.append(config.table_name))

    @api_entry(wiring)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200}

    # WHEN it is invoked
    # THEN it fails before the handler runs, naming the variable, and nothing was built
    with pytest.raises(SettingsError, match="TABLE_NAME: must be set"):
        handler(http_event("GET", "/"), CONTEXT)
    assert built == []


def test_wiring_builds_once_per_settings(environment: pytest.MonkeyPatch) -> None:
    # GIVEN a wiring over a table name
    environment.setenv("TABLE_NAME", "t-1")
    wiring = Wiring(TableSettings, lambda config: [config.table_name])
    # WHEN it is asked twice, then again after the settings are read anew with another table
    first, second = wiring(), wiring()
    environment.setenv("TABLE_NAME", "t-2")
    settings.cache_clear()
    third = wiring()
    # THEN the first two are the same dependencies, the third is built from the new settings
    assert first is second
    assert third == ["t-2"]

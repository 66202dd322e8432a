"""Settings read from the function's environment (set by template.yaml), validated once per container."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from converge.errors import SettingsError
from converge.upcast import parse_emit_versions

# A setting -> the environment variable template.yaml sets it with (what a SettingsError names).
ENVIRONMENT = {
    "service": "POWERTOOLS_SERVICE_NAME",
    "table_name": "TABLE_NAME",
    "event_bus_name": "EVENT_BUS_NAME",
    "put_events_max_attempts": "PUT_EVENTS_MAX_ATTEMPTS",
    "emit_schema_versions": "EMIT_SCHEMA_VERSIONS",
}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str = Field(min_length=1)
    table_name: str = ""
    event_bus_name: str = ""
    put_events_max_attempts: int = Field(default=3, ge=1, le=10)
    # Event type -> the schema version a producer emits instead of the newest (a rollout's pin, docs/events.md).
    emit_schema_versions: dict[str, int] = Field(default_factory=dict)


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The function's settings; cached, so the environment is read once per container."""
    env = os.environ
    return Settings(
        service=env.get("POWERTOOLS_SERVICE_NAME", "converge"),
        table_name=env.get("TABLE_NAME", ""),
        event_bus_name=env.get("EVENT_BUS_NAME", ""),
        put_events_max_attempts=int(env.get("PUT_EVENTS_MAX_ATTEMPTS", "3")),
        emit_schema_versions=parse_emit_versions(env.get("EMIT_SCHEMA_VERSIONS", "")),
    )


class FunctionSettings(BaseModel):
    """What one function needs from its environment; a function's own model adds (and requires) its settings."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    service: str = Field(min_length=1)


class TableSettings(FunctionSettings):
    """A service function that owns a table (its API or its inbox consumer)."""

    table_name: str = Field(min_length=1)


class PublisherSettings(FunctionSettings):
    """A stream publisher: the bus it sends to, how hard it tries, and any pinned schema versions."""

    event_bus_name: str = Field(min_length=1)
    put_events_max_attempts: int
    emit_schema_versions: dict[str, int]


SettingsT = TypeVar("SettingsT", bound=FunctionSettings)


def load_settings(model: type[SettingsT]) -> SettingsT:
    """The function's settings as `model` requires them; SettingsError (one line naming the variables) if not."""
    try:
        return model.model_validate(settings().model_dump())
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENVIRONMENT.get(str(error['loc'][0]), error['loc'][0]) if error['loc'] else 'settings'}: "
            + ("must be set" if error["type"] == "string_too_short" else str(error["msg"]))
            for error in exc.errors()
        )
        raise SettingsError(f"{model.__name__} of {settings().service!r} is invalid: {problems}") from None

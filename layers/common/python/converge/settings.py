"""Settings read from the function's environment (set by template.yaml), validated once per container."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from converge.upcast import parse_emit_versions


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

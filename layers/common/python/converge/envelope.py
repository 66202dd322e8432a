"""Building and parsing the event envelope.

Producers build events from the table items they write (the item's `event_type` says which event a write is);
consumers parse EventBridge events delivered through SQS back into typed `DomainEvent`s.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError, create_model

from converge.contracts import EVENT_TYPES
from converge.errors import MalformedEventError, UnknownEventError
from converge.events import (
    EVENT_ID_NAMESPACE,
    CorrectionData,
    DomainEvent,
    EventData,
    EventSpec,
    Metadata,
    event_id_for,
)
from converge.upcast import PREVIOUS, accepted_versions, latest_version, model_for

# Attributes every entity item carries besides its state (see docs/events.md, "Items").
ITEM_EVENT_TYPE = "event_type"
ITEM_VERSION = "version"
ITEM_CORRELATION_ID = "correlation_id"
ITEM_UPDATED_AT = "updated_at"


def _reason(exc: ValidationError, within: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in (within, *err["loc"]) if p != "") or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def spec_for(event_type: str) -> EventSpec:
    """The registry entry of an event type, or UnknownEventError."""
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventError(f"unknown event type {event_type!r}") from None


def _payload_of_item(spec: EventSpec, event_type: str, item: dict[str, Any]) -> EventData:
    """The newest payload of an item; an item written before the newest version (by an older deployment of its
    service) is read as the version before and upcast, as a consumer would upcast its event."""
    try:
        return spec.model.model_validate(item)
    except ValidationError as newest_error:
        previous = PREVIOUS.get(event_type)
        if previous is None:
            raise
        try:
            previous.model.model_validate(item)
            return spec.model.model_validate(previous.upcast(item))
        except ValidationError:
            raise newest_error from None  # neither: reported with the newest version's reasons


def event_from_item(item: dict[str, Any], *, emit_versions: Mapping[str, int] | None = None) -> DomainEvent | None:
    """The domain event a table item's current state represents, or None if the item is not an entity.

    Used by the stream publisher (item = the record's NewImage) and by the reconciler (item = current state),
    so both produce the same event, with the same deterministic id, for the same entity version. The event is
    of its type's newest schema version unless `emit_versions` pins the type to the one before (a producer's
    `EMIT_SCHEMA_VERSIONS` during a rollout): then its payload is the newest one downcast.
    """
    event_type = item.get(ITEM_EVENT_TYPE)
    if not event_type:
        return None
    event_type = str(event_type)
    spec = spec_for(event_type)
    version = (emit_versions or {}).get(event_type, latest_version(event_type))
    try:
        data = _payload_of_item(spec, event_type, item)
        if version != latest_version(event_type):
            previous = PREVIOUS[event_type]
            data = previous.model.model_validate(previous.downcast(data.model_dump(mode="json")))
        entity_id = str(item[spec.id_field])
        entity_version = int(item[ITEM_VERSION])
        metadata = Metadata(
            event_id=event_id_for(spec.entity, entity_id, entity_version),
            event_type=event_type,
            schema_version=version,
            entity=spec.entity,
            entity_id=entity_id,
            entity_version=entity_version,
            correlation_id=str(item.get(ITEM_CORRELATION_ID) or f"{spec.entity}:{entity_id}"),
            occurred_at=item.get(ITEM_UPDATED_AT) or datetime.now(UTC),
            producer=spec.producer,
        )
    except ValidationError as exc:
        raise MalformedEventError(f"item of {event_type} is not a valid event: {_reason(exc)}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEventError(f"item of {event_type} lacks {exc}") from exc
    return DomainEvent(metadata=metadata, data=data)


def parse_detail(detail_type: str, detail: Any) -> DomainEvent:
    """Validate an EventBridge `detail` against the contract of `detail_type`, upcast to its newest version.

    A consumer accepts the newest schema version of a type and the one before (converge.upcast): the older one
    is validated against its own model, then upcast and validated as the newest, so routes see one shape."""
    spec = spec_for(detail_type)
    if not isinstance(detail, dict):
        raise MalformedEventError("detail is not a JSON object")
    try:
        metadata = Metadata.model_validate(detail.get("metadata"))
    except ValidationError as exc:
        raise MalformedEventError(f"{detail_type}: {_reason(exc, 'metadata')}") from exc
    accepted = accepted_versions(detail_type)
    if metadata.schema_version not in accepted:
        raise MalformedEventError(
            f"{detail_type}: schema_version {metadata.schema_version} is not accepted here "
            f"(accepted: {', '.join(map(str, accepted))})"
        )
    newest = latest_version(detail_type)
    try:
        data = model_for(detail_type, metadata.schema_version, spec.model).model_validate(detail.get("data"))
        if metadata.schema_version != newest:
            data = spec.model.model_validate(PREVIOUS[detail_type].upcast(data.model_dump(mode="json")))
            metadata = metadata.model_copy(update={"schema_version": newest})
    except ValidationError as exc:
        raise MalformedEventError(f"{detail_type}: {_reason(exc, 'data')}") from exc
    if metadata.event_type != detail_type:
        raise MalformedEventError(
            f"metadata.event_type {metadata.event_type!r} differs from detail-type {detail_type!r}"
        )
    if metadata.entity != spec.entity or metadata.entity_id != getattr(data, spec.id_field):
        raise MalformedEventError(f"{detail_type}: metadata.entity/entity_id do not name the payload's entity")
    if metadata.producer != spec.producer:
        raise MalformedEventError(f"{detail_type} is produced by {spec.producer}, not {metadata.producer}")
    return DomainEvent(metadata=metadata, data=data)


def parse_eventbridge_json(body: str) -> DomainEvent:
    """Parse an SQS message body holding a whole EventBridge event (what a rule's SQS target delivers)."""
    try:
        event = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise MalformedEventError(f"body is not JSON: {exc}") from exc
    if not isinstance(event, dict) or "detail-type" not in event or "detail" not in event:
        raise MalformedEventError("body is not an EventBridge event (no detail-type/detail)")
    detail_type = str(event["detail-type"])
    source = event.get("source")
    # Provenance: a type comes from one source (the bus rules and the producers' IAM conditions say which).
    if source != spec_for(detail_type).source:
        raise MalformedEventError(f"{detail_type} comes from {spec_for(detail_type).source}, not {source!r}")
    return parse_detail(detail_type, event["detail"])


def correction_id_for(*parts: object) -> str:
    """Deterministic id of a correction: the same observation and the same expectation give the same id."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "correction:" + json.dumps(parts, sort_keys=True, default=str)))


def correction_event(data: CorrectionData, *, version: int | None, correlation_id: str) -> DomainEvent:
    """The reconciler's event for one correction (its id is the correction's id: a resend is the same event)."""
    event_type = type(data).__name__
    spec = spec_for(event_type)
    metadata = Metadata(
        event_id=data.correction_id,
        event_type=event_type,
        schema_version=latest_version(event_type),
        entity=spec.entity,
        entity_id=data.entity_id,
        entity_version=max(int(version or 1), 1),
        correlation_id=correlation_id,
        occurred_at=datetime.now(UTC),
        producer=spec.producer,
    )
    return DomainEvent(metadata=metadata, data=data)


def detail_json_schema(event_type: str, version: int | None = None) -> dict[str, Any]:
    """JSON Schema of the `detail` of one event type at one schema version (the newest by default), generated
    from the models: what events/schemas/<type>/v<version>.json releases."""
    spec = spec_for(event_type)
    version = latest_version(event_type) if version is None else version
    model = model_for(event_type, version, spec.model)
    detail_model = create_model(event_type, metadata=(Metadata, ...), data=(model, ...))
    schema = detail_model.model_json_schema()
    # One schema per type and version: pin metadata's event_type, entity, producer and schema_version to them.
    pinned = {
        "event_type": {"const": event_type},
        "schema_version": {"const": version},
        "entity": {"const": spec.entity},
        "producer": {"const": spec.producer},
    }
    schema["properties"]["metadata"] = {"allOf": [schema["properties"]["metadata"], {"properties": pinned}]}
    schema["$id"] = f"https://converge.example/schemas/{event_type}/v{version}.json"
    schema["description"] = (spec.model.__doc__ or "").strip()
    schema["x-source"] = spec.source
    schema["x-entity"] = spec.entity
    schema["x-schema-version"] = version
    return schema

"""The event contract: committed JSON Schemas match the models, and real events validate against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from converge.envelope import parse_detail
from converge.errors import MalformedEventError
from converge.events import EVENT_TYPES
from converge.schemas import render_all
from tests.support.events import domain_event, eventbridge_event

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "events" / "schemas"

EXAMPLES: dict[str, dict[str, Any]] = {
    "order": {"order_id": "o-1", "customer_id": "c-1", "lines": [{"product_id": "p-1", "quantity": 2}]},
    "product": {"product_id": "p-1", "on_hand": 5, "reserved": 2, "available": 3},
    "reservation": {"order_id": "o-1", "lines": [{"product_id": "p-1", "quantity": 2}]},
}
STATUS = {
    "OrderPlaced": "PENDING", "OrderConfirmed": "CONFIRMED", "OrderRejected": "REJECTED",
    "OrderCancelled": "CANCELLED", "StockReserved": "RESERVED", "StockReservationFailed": "FAILED",
    "StockReleased": "RELEASED",
}  # fmt: skip


def schema(event_type: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{event_type}.json").read_text())  # type: ignore[no-any-return]


def example_detail(event_type: str) -> dict[str, Any]:
    data = dict(EXAMPLES[EVENT_TYPES[event_type].entity])
    if event_type in STATUS:
        data["status"] = STATUS[event_type]
    return domain_event(event_type, data, version=3).detail()


def test_committed_schemas_match_the_models() -> None:
    # GIVEN the schemas generated from the models now
    rendered = render_all()
    # THEN the committed files are exactly those (run `make schemas` after changing a model)
    committed = {p.name: p.read_text() for p in SCHEMAS.glob("*.json")}
    assert committed == rendered


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_events_built_by_the_layer_validate_against_their_schema(event_type: str) -> None:
    # GIVEN an event built the way the publisher builds it
    detail = example_detail(event_type)
    # THEN it validates against its own schema and not against another type's
    jsonschema.validate(detail, schema(event_type))
    other = next(t for t in sorted(EVENT_TYPES) if t != event_type)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(detail, schema(other))


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_schema_rejects_a_detail_without_metadata_or_with_another_schema_version(event_type: str) -> None:
    detail = example_detail(event_type)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"data": detail["data"]}, schema(event_type))
    detail["metadata"]["schema_version"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(detail, schema(event_type))


def sqs_fixture_bodies() -> list[tuple[str, dict[str, Any]]]:
    bodies = []
    for path in sorted((ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text())
        for record in event.get("Records", []) if isinstance(event, dict) else []:
            if record.get("eventSource") != "aws:sqs":
                continue
            try:
                body = json.loads(record["body"])
            except ValueError:
                continue  # a deliberately malformed record of a "bad input" fixture
            if isinstance(body, dict) and body.get("detail-type") in EVENT_TYPES:
                bodies.append((f"{path.name}:{record['messageId']}", body))
    return bodies


@pytest.mark.parametrize(("where", "body"), sqs_fixture_bodies())
def test_fixture_events_follow_the_contract(where: str, body: dict[str, Any]) -> None:
    # GIVEN an EventBridge event in a committed sam-local-invoke fixture
    # THEN its detail validates against the schema of its detail-type and its source is the producer's
    jsonschema.validate(body["detail"], schema(body["detail-type"]))
    assert body["source"] == EVENT_TYPES[body["detail-type"]].source


def test_docs_list_every_event_type() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    missing = [t for t in EVENT_TYPES if f"`{t}`" not in text]
    assert missing == []


def test_eventbridge_event_builder_round_trips() -> None:
    event = domain_event("OrderPlaced", {**EXAMPLES["order"], "status": "PENDING"})
    assert eventbridge_event(event)["detail"] == event.detail()


@pytest.mark.parametrize("version", [True, 1.0, "1", 2])
def test_schema_version_must_be_exactly_the_integer_one(version: Any) -> None:
    # GIVEN a valid event whose schema_version is something that merely compares equal to 1 (or is another)
    detail = example_detail("OrderPlaced")
    detail["metadata"]["schema_version"] = version
    # THEN consumers reject it
    with pytest.raises(MalformedEventError):
        parse_detail("OrderPlaced", detail)


def test_reason_longer_than_the_contract_is_rejected() -> None:
    detail = example_detail("OrderRejected")
    detail["data"]["reason"] = "x" * 1001
    with pytest.raises(MalformedEventError):
        parse_detail("OrderRejected", detail)

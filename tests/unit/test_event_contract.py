"""The event contract: committed JSON Schemas match the models, and real events validate against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from converge.contracts import EVENT_TYPES
from converge.envelope import correction_event, parse_detail, parse_eventbridge_json
from converge.errors import MalformedEventError
from converge.events import (
    ORDER_EVENT_BY_STATUS,
    RESERVATION_EVENT_BY_STATUS,
    SHIPMENT_EVENT_BY_STATUS,
    CorrectionData,
    OrderLine,
    ProjectionCorrected,
    ReservationAction,
    ReservationCorrected,
    ReservedRecounted,
)
from converge.schemas import render_all, with_catalogue
from tests.support.events import domain_event, eventbridge_event

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "events" / "schemas"

EXAMPLES: dict[str, dict[str, Any]] = {
    "order": {"order_id": "o-1", "customer_id": "c-1", "lines": [{"product_id": "p-1", "quantity": 2}]},
    "product": {"product_id": "p-1", "on_hand": 5, "reserved": 2, "available": 3},
    "reservation": {"order_id": "o-1", "lines": [{"product_id": "p-1", "quantity": 2}]},
    "shipment": {"order_id": "o-1", "customer_id": "c-1", "lines": [{"product_id": "p-1", "quantity": 2}]},
}
# event type -> the status its entity has (each entity's events are one per status)
STATUS = {
    event_type: status.value
    for by_status in (ORDER_EVENT_BY_STATUS, RESERVATION_EVENT_BY_STATUS, SHIPMENT_EVENT_BY_STATUS)
    for status, event_type in by_status.items()
}


LINES = [OrderLine(product_id="p-1", quantity=2)]
CORRECTIONS: dict[str, CorrectionData] = {
    "ProjectionCorrected": ProjectionCorrected(
        correction_id="c-1", entity_id="p-1", reason="availability ahead", projection="availability",
        pk="AVAILABILITY#p-1", sk="AVAILABILITY", observed={"version": 9, "on_hand": 1}, expected={"version": 3},
    ),
    "ReservationCorrected": ReservationCorrected(
        correction_id="c-2", entity_id="o-1", reason="orphaned", order_id="o-1", action=ReservationAction.REMOVE,
        observed_status="RESERVED", observed_version=1, lines=LINES, order_status=None,
    ),
    "ReservedRecounted": ReservedRecounted(
        correction_id="c-3", entity_id="p-1", reason="reserved 4, held 2", product_id="p-1", observed_version=7,
        reserved=2,
    ),
}  # fmt: skip


def schema(event_type: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{event_type}.json").read_text())  # type: ignore[no-any-return]


def example_detail(event_type: str) -> dict[str, Any]:
    if event_type in CORRECTIONS:
        return correction_event(CORRECTIONS[event_type], version=3, correlation_id="corr-test").detail()
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


def test_the_catalogue_in_docs_is_what_the_contracts_give() -> None:
    # GIVEN docs/events.md WHEN its catalogue is rendered again from the service contracts
    text = (ROOT / "docs" / "events.md").read_text()
    # THEN nothing changes (run `make schemas` after changing a contract), and every event type is listed
    assert with_catalogue(text) == text, "docs/events.md is stale: run `make schemas`"
    assert [t for t in EVENT_TYPES if f"| `{t}` |" not in text] == []


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


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_an_event_from_another_source_than_its_producer_is_rejected(event_type: str) -> None:
    # GIVEN a valid event of a type, as the bus delivers it, but put with another service's source
    body = {"detail-type": event_type, "detail": example_detail(event_type), "source": "converge.orders"}
    if EVENT_TYPES[event_type].source == "converge.orders":
        body["source"] = "converge.inventory"
    # THEN consumers refuse it (provenance: type and source must agree), naming the expected source
    with pytest.raises(MalformedEventError, match=EVENT_TYPES[event_type].source):
        parse_eventbridge_json(json.dumps(body))
    # AND with the right source it parses
    body["source"] = EVENT_TYPES[event_type].source
    assert parse_eventbridge_json(json.dumps(body)).event_type == event_type


def test_an_event_whose_metadata_names_another_producer_is_rejected() -> None:
    # GIVEN a StockUpdated whose metadata says the orders service produced it
    detail = example_detail("StockUpdated")
    detail["metadata"]["producer"] = "orders"
    # THEN it is refused
    with pytest.raises(MalformedEventError, match="produced by inventory"):
        parse_detail("StockUpdated", detail)


@pytest.mark.parametrize("version", ["7", 7.0, True, 10**40, 0])
def test_entity_version_must_be_a_positive_integer_within_64_bits(version: Any) -> None:
    detail = example_detail("StockUpdated")
    detail["metadata"]["entity_version"] = version
    with pytest.raises(MalformedEventError):
        parse_detail("StockUpdated", detail)

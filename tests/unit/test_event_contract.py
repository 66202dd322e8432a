"""The event contract: committed JSON Schemas match the models, real events validate against them, and the models
refuse what no producer can mean (a naive timestamp, stock that does not add up, a status of another event)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from converge.contracts import EVENT_TYPES
from converge.envelope import correction_event, event_from_item, parse_detail, parse_eventbridge_json
from converge.errors import MalformedEventError
from converge.events import (
    ORDER_EVENT_BY_STATUS,
    ORDER_EVENTS_V1,
    RESERVATION_ACTION_NEEDS,
    RESERVATION_EVENT_BY_STATUS,
    SHIPMENT_EVENT_BY_STATUS,
    CorrectionData,
    OrderLine,
    OrderStatus,
    ProjectionCorrected,
    ReservationAction,
    ReservationCorrected,
    ReservationStatus,
    ReservedRecounted,
)
from converge.projections import SAGA_RESOLUTIONS, Resolution
from converge.schemas import render_all, with_catalogue
from converge.upcast import accepted_versions, latest_version, parse_emit_versions
from tests.support.events import domain_event, eventbridge_event

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "events" / "schemas"

EXAMPLES: dict[str, dict[str, Any]] = {
    "order": {
        "order_id": "o-1",
        "customer_id": "c-1",
        "currency": "EUR",
        "lines": [{"product_id": "p-1", "quantity": 2, "unit_price": 1999}],
    },
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


def schema(event_type: str, version: int | None = None) -> dict[str, Any]:
    version = latest_version(event_type) if version is None else version
    return json.loads((SCHEMAS / event_type / f"v{version}.json").read_text())  # type: ignore[no-any-return]


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
    # THEN the committed files of every version the code accepts are exactly those (run `make schemas`)
    committed = {p.relative_to(SCHEMAS).as_posix(): p.read_text() for p in SCHEMAS.glob("*/v*.json")}
    assert {name: committed.get(name) for name in rendered} == rendered
    # AND nothing is left in the flat layout of before versions
    assert list(SCHEMAS.glob("*.json")) == []


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
    detail["metadata"]["schema_version"] = latest_version(event_type) + 1
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
    # THEN its detail validates against the schema of its detail-type and version, and its source is the producer's
    detail_type, version = body["detail-type"], body["detail"]["metadata"]["schema_version"]
    assert version in accepted_versions(detail_type)
    jsonschema.validate(body["detail"], schema(detail_type, version))
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
def test_schema_version_must_be_exactly_an_accepted_integer(version: Any) -> None:
    # GIVEN a valid event of a type with one version, whose schema_version merely compares equal to 1 (or is 2)
    detail = example_detail("StockUpdated")
    detail["metadata"]["schema_version"] = version
    # THEN consumers reject it
    with pytest.raises(MalformedEventError):
        parse_detail("StockUpdated", detail)


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


# ------------------------------------------------------------------ what no producer can mean (malformed)
@pytest.mark.parametrize("occurred_at", ["2026-12-02T10:00:00", "2026-12-02 10:00:00.123456"])
def test_a_naive_occurred_at_is_malformed(occurred_at: str) -> None:
    # GIVEN a valid event whose occurred_at has no offset (an instant nobody can place)
    detail = example_detail("OrderPlaced")
    detail["metadata"]["occurred_at"] = occurred_at
    # THEN consumers refuse it as malformed, naming the field
    with pytest.raises(MalformedEventError, match=r"metadata\.occurred_at"):
        parse_detail("OrderPlaced", detail)
    # AND with an offset the same instant is an event
    detail["metadata"]["occurred_at"] = occurred_at + "+00:00"
    assert parse_detail("OrderPlaced", detail).metadata.occurred_at.utcoffset() is not None


def test_a_producer_does_not_publish_an_item_with_a_naive_timestamp() -> None:
    # GIVEN a product item whose updated_at has no offset
    item = {**EXAMPLES["product"], "event_type": "StockUpdated", "version": 2, "updated_at": "2026-12-02T10:00:00"}
    # THEN the publisher's translation reports it instead of sending an event consumers would refuse
    with pytest.raises(MalformedEventError, match="occurred_at"):
        event_from_item(item)


@pytest.mark.parametrize(("on_hand", "reserved", "available"), [(5, 2, 5), (5, 2, 2), (5, 5, 1), (2, 3, 0)])
def test_stock_whose_available_is_not_on_hand_minus_reserved_is_malformed(
    on_hand: int, reserved: int, available: int
) -> None:
    # GIVEN a StockUpdated whose figures contradict each other
    detail = example_detail("StockUpdated")
    detail["data"].update(on_hand=on_hand, reserved=reserved, available=available)
    # THEN it is refused: availability would otherwise show a number the source never had
    with pytest.raises(MalformedEventError, match="data"):
        parse_detail("StockUpdated", detail)


@pytest.mark.parametrize("event_type", sorted(STATUS))
def test_each_event_type_carries_only_its_own_status(event_type: str) -> None:
    # GIVEN every status of the entity that is not this event type's
    detail = example_detail(event_type)
    others = [
        s for t, s in STATUS.items() if t != event_type and EVENT_TYPES[t].entity == EVENT_TYPES[event_type].entity
    ]
    assert others
    for status in others:
        detail["data"]["status"] = status
        # THEN an event of this type that says so is malformed (an OrderConfirmed that says REJECTED is a lie)
        with pytest.raises(MalformedEventError, match=r"data\.status"):
            parse_detail(event_type, detail)
    # AND its own status parses, as every committed schema pins it
    detail["data"]["status"] = STATUS[event_type]
    assert parse_detail(event_type, detail).data.status == STATUS[event_type]  # type: ignore[attr-defined]
    status_schema = schema(event_type)["$defs"][event_type]["properties"]["status"]
    assert status_schema["const"] == STATUS[event_type]


def reservation_corrected(**changes: Any) -> dict[str, Any]:
    fields = CORRECTIONS["ReservationCorrected"].model_dump(mode="json")
    return {**fields, **changes}


@pytest.mark.parametrize(
    "changes",
    [
        {"action": "release", "order_status": "CONFIRMED", "observed_status": "RESERVED"},  # a confirmed order's stock
        {"action": "release", "order_status": "REJECTED", "observed_status": "RELEASED", "observed_version": 2},
        {"action": "remove", "order_status": "PENDING"},  # the order exists: not an orphan
        {"action": "reinstate", "order_status": "REJECTED", "observed_status": None, "observed_version": None},
        {"action": "reinstate", "order_status": "CONFIRMED", "observed_status": "RESERVED"},  # it holds the stock
        {"action": "tombstone", "order_status": "REJECTED", "observed_status": "RESERVED"},
        {"observed_status": None},  # a version observed of no reservation
        {"entity_id": "o-2"},  # names another order than it acts on
    ],
)
def test_a_reservation_correction_that_does_not_fit_its_action_is_malformed(changes: dict[str, Any]) -> None:
    # GIVEN a ReservationCorrected whose action does not fit what it says it observed
    detail = example_detail("ReservationCorrected")
    detail["data"] = reservation_corrected(**changes)
    # THEN inventory refuses it instead of acting on it
    with pytest.raises(MalformedEventError, match="ReservationCorrected"):
        parse_detail("ReservationCorrected", detail)


def test_every_action_the_saga_table_asks_for_fits_its_correction() -> None:
    # GIVEN each (order status, reservation status) pair the reconciler repairs with a correction
    actions = {Resolution.RELEASE, Resolution.REMOVE, Resolution.REINSTATE, Resolution.TOMBSTONE}
    for (order_status, reservation_status), resolution in SAGA_RESOLUTIONS.items():
        if resolution not in actions:
            continue
        needs_order, needs_reservation = RESERVATION_ACTION_NEEDS[ReservationAction(resolution.value)]
        # THEN the correction it sends is one the model accepts
        assert (None if order_status is None else OrderStatus(order_status)) in needs_order, resolution
        assert (None if reservation_status is None else ReservationStatus(reservation_status)) in needs_reservation


def test_a_recount_that_names_another_product_is_malformed() -> None:
    detail = example_detail("ReservedRecounted")
    detail["data"]["entity_id"] = "p-2"
    with pytest.raises(MalformedEventError, match="entity_id"):
        parse_detail("ReservedRecounted", detail)


# ------------------------------------------------------------------ versions: the newest and the one before
ORDER_TYPES = sorted(ORDER_EVENT_BY_STATUS.values())


def v1_order_detail(event_type: str) -> dict[str, Any]:
    """An order event as an orders service still on schema v1 sends it (no currency, no prices)."""
    item = {**EXAMPLES["order"], "status": STATUS[event_type], "event_type": event_type, "version": 3}
    item["updated_at"] = "2026-12-02T10:00:00+00:00"
    event = event_from_item(item, emit_versions={event_type: 1})
    assert event is not None
    return event.detail()


@pytest.mark.parametrize("event_type", ORDER_TYPES)
def test_a_producer_pinned_to_v1_emits_what_the_v1_contract_says(event_type: str) -> None:
    # GIVEN a priced order item WHEN a producer pinned to v1 publishes it
    detail = v1_order_detail(event_type)
    # THEN the event is v1: no currency, no unit prices, valid against the released v1 and not against v2
    assert detail["metadata"]["schema_version"] == 1
    assert "currency" not in detail["data"]
    assert detail["data"]["lines"] == [{"product_id": "p-1", "quantity": 2}]
    jsonschema.validate(detail, schema(event_type, 1))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(detail, schema(event_type, 2))


@pytest.mark.parametrize("event_type", ORDER_TYPES)
def test_a_consumer_upcasts_v1_to_v2_with_the_documented_default(event_type: str) -> None:
    # GIVEN an order event of schema v1
    detail = v1_order_detail(event_type)
    # WHEN a consumer on v2 parses it
    event = parse_detail(event_type, detail)
    # THEN it sees v2: no currency (ISO 4217 "XXX") and every unit price 0, the rest unchanged
    assert event.metadata.schema_version == 2
    data = event.data.model_dump(mode="json")
    assert data["currency"] == "XXX"
    assert data["lines"] == [{"product_id": "p-1", "quantity": 2, "unit_price": 0}]
    assert (data["order_id"], data["customer_id"], data["status"]) == ("o-1", "c-1", STATUS[event_type])


def test_a_v2_event_keeps_its_currency_and_prices() -> None:
    event = parse_detail("OrderPlaced", example_detail("OrderPlaced"))
    assert event.metadata.schema_version == 2
    assert event.data.model_dump(mode="json")["currency"] == "EUR"
    assert event.data.model_dump(mode="json")["lines"][0]["unit_price"] == 1999


@pytest.mark.parametrize(
    ("where", "value"),
    [("currency", "eur"), ("currency", "EURO"), ("unit_price", -1), ("unit_price", "19.99"), ("unit_price", 19.99)],
)
def test_a_v2_order_with_a_malformed_price_is_refused(where: str, value: Any) -> None:
    detail = example_detail("OrderPlaced")
    if where == "currency":
        detail["data"]["currency"] = value
    else:
        detail["data"]["lines"][0]["unit_price"] = value
    with pytest.raises(MalformedEventError):
        parse_detail("OrderPlaced", detail)


def test_a_v1_event_carrying_v2_fields_is_not_a_v1_event() -> None:
    # GIVEN a v2 payload labelled schema_version 1 (its lines have prices, which v1's lines forbid)
    detail = example_detail("OrderPlaced")
    detail["metadata"]["schema_version"] = 1
    # THEN it is refused rather than read as either
    with pytest.raises(MalformedEventError, match="unit_price"):
        parse_detail("OrderPlaced", detail)


def test_an_item_written_before_prices_is_published_as_v2_with_the_default() -> None:
    # GIVEN an order item written by an orders service from before v2 (no currency, lines without prices)
    item = {
        "order_id": "o-1", "customer_id": "c-1", "lines": [{"product_id": "p-1", "quantity": 2}],
        "status": "PENDING", "event_type": "OrderPlaced", "version": 1, "updated_at": "2026-12-02T10:00:00+00:00",
    }  # fmt: skip
    # WHEN the (new) publisher publishes it
    event = event_from_item(item)
    assert event is not None
    # THEN it is a v2 event with the same default a consumer's upcast gives
    assert event.metadata.schema_version == 2
    assert event.data.model_dump(mode="json")["currency"] == "XXX"


def test_a_pin_two_versions_back_or_to_a_version_that_does_not_exist_is_refused() -> None:
    assert parse_emit_versions("OrderPlaced=1, OrderConfirmed=2") == {"OrderPlaced": 1, "OrderConfirmed": 2}
    for text in ("OrderPlaced=3", "StockUpdated=2", "OrderPlaced", "OrderPlaced=x"):
        with pytest.raises(ValueError, match="EMIT_SCHEMA_VERSIONS"):
            parse_emit_versions(text)


def test_the_v1_models_still_refuse_what_v1_refused() -> None:
    with pytest.raises(ValidationError):
        ORDER_EVENTS_V1["OrderPlaced"].model_validate(
            {**EXAMPLES["order"], "status": "PENDING"}
        )  # priced lines are not v1's

"""The events' AsyncAPI document: committed = generated, every event and route in it, payloads that hold real events,
and valid for the AsyncAPI parser itself (tools/asyncapi-check, when node and the parser are installed)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT7, DRAFT202012

from converge.contracts import EVENT_TYPES
from converge.envelope import correction_event
from converge.events import CorrectionData
from localcloud.template import load_template, resources_of_type
from tests.support.events import domain_event, eventbridge_event
from tools import asyncapi

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
VALIDATOR = ROOT / "tools" / "asyncapi-check" / "validate.mjs"
PARSER = ROOT / "tools" / "asyncapi-check" / "node_modules" / "@asyncapi" / "parser"
DOCUMENT_URI = "urn:converge:asyncapi"

LINES = [{"product_id": "p-1", "quantity": 2}]
# One entity state per event type, as its producer writes it (the item becomes the event through event_from_item).
STATES: dict[str, dict[str, Any]] = {
    "order": {"order_id": "o-1", "customer_id": "c-1", "lines": LINES},
    "product": {"product_id": "p-1", "on_hand": 5, "reserved": 2, "available": 3},
    "reservation": {"order_id": "o-1", "lines": LINES},
    "shipment": {"order_id": "o-1", "customer_id": "c-1", "lines": LINES},
}
STATUSES = {
    "OrderPlaced": "PENDING",
    "OrderConfirmed": "CONFIRMED",
    "OrderRejected": "REJECTED",
    "OrderCancelled": "CANCELLED",
    "OrderShipped": "SHIPPED",
    "StockReserved": "RESERVED",
    "StockReservationFailed": "FAILED",
    "StockReleased": "RELEASED",
    "StockShipped": "SHIPPED",
    "ShipmentCreated": "PENDING",
    "ShipmentDispatched": "DISPATCHED",
    "ShipmentCancelled": "CANCELLED",
}
CORRECTIONS: dict[str, dict[str, Any]] = {
    "ProjectionCorrected": {
        "projection": "availability",
        "pk": "PRODUCT#p-1",
        "sk": "AVAILABILITY",
        "observed": {"available": 4, "tags": ["x"]},
        "expected": None,
    },
    "ReservationCorrected": {
        "order_id": "o-1",
        "action": "release",
        "observed_status": "RESERVED",
        "observed_version": 3,
        "lines": LINES,
        "order_status": "CANCELLED",
    },
    "ReservedRecounted": {"entity_id": "p-1", "product_id": "p-1", "observed_version": 7, "reserved": 0},
}


def committed() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT.read_text())  # type: ignore[no-any-return]


def example_event(event_type: str) -> dict[str, Any]:
    """The whole EventBridge event a rule's SQS target delivers for one valid event of `event_type`."""
    spec = EVENT_TYPES[event_type]
    if spec.entity == "correction":  # the reconciler builds these from what it observed, not from an item
        correction = spec.model.model_validate(
            {"correction_id": "corr-1", "entity_id": "o-1", "reason": "test", **CORRECTIONS[event_type]}
        )
        assert isinstance(correction, CorrectionData)
        return eventbridge_event(correction_event(correction, version=3, correlation_id="corr-test"))
    data = {**STATES[spec.entity]}
    if event_type in STATUSES:
        data["status"] = STATUSES[event_type]
    return eventbridge_event(domain_event(event_type, data, version=3))


def validators(document: dict[str, Any], pointer: str) -> list[jsonschema.protocols.Validator]:
    """Validators of the schema at `pointer` in `document`, its `$ref`s resolved inside the document, in the
    dialect pydantic wrote (2020-12) and in AsyncAPI's default one (draft-07): both must agree."""
    found = []
    for cls, dialect in ((jsonschema.Draft202012Validator, DRAFT202012), (jsonschema.Draft7Validator, DRAFT7)):
        registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, dialect.create_resource(document))
        found.append(cls({"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=registry))
    return found


def routed_pairs() -> set[tuple[str, str, str]]:
    """(inbox queue, source, detail-type) of every branch of every inbox rule in template.yaml."""
    template = load_template()
    queues = resources_of_type(template, "AWS::SQS::Queue")
    pairs = set()
    for rule in resources_of_type(template, "AWS::Events::Rule").values():
        pattern = rule["Properties"]["EventPattern"]
        for target in rule["Properties"]["Targets"]:
            queue = target["Arn"]["Fn::GetAtt"][0]
            if queue not in queues:
                continue
            for branch in pattern.get("$or", [pattern]):
                pairs |= {(queue, s, t) for s in branch["source"] for t in branch["detail-type"]}
    return pairs


def message_ref(ref: dict[str, str], document: dict[str, Any]) -> dict[str, Any]:
    """The message a channel's `messages` entry refers to (`#/components/messages/X`)."""
    node: Any = document
    for part in ref["$ref"].removeprefix("#/").split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]


def test_committed_document_is_what_the_code_generates() -> None:
    # GIVEN the committed document WHEN the generator runs on today's contract and template THEN nothing differs
    assert DOCUMENT.read_text() == asyncapi.render(), "docs/asyncapi.yaml is stale: run `make asyncapi`"


def test_check_mode_names_the_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a stale copy of the document
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(asyncapi.render().replace("title: Converge events", "title: old"))
    # WHEN --check compares it THEN it fails naming the changed line and the command to run
    assert asyncapi.main([str(stale), "--check"]) == 1
    captured = capsys.readouterr()
    assert "-  title: old" in captured.out
    assert "+  title: Converge events" in captured.out
    assert "run `make asyncapi`" in captured.err
    assert asyncapi.main([str(DOCUMENT), "--check"]) == 0


def test_every_event_type_is_a_message_naming_its_producer_and_consumers() -> None:
    document = committed()
    assert document["asyncapi"] == "3.0.0"
    messages = document["components"]["messages"]
    assert set(messages) == set(EVENT_TYPES)
    consumers: dict[str, set[str]] = {t: set() for t in EVENT_TYPES}
    for operation in document["operations"].values():
        if operation["action"] == "receive":
            for ref in operation["messages"]:
                consumers[ref["$ref"].rsplit("/", 1)[-1]].add(operation["x-consumer"])
    for event_type, spec in EVENT_TYPES.items():
        message = messages[event_type]
        assert message["x-producer"] == spec.producer
        assert message["x-source"] == spec.source
        assert message["headers"]["properties"]["source"]["const"] == spec.source
        assert message["headers"]["properties"]["detail-type"]["const"] == event_type
        assert set(message["x-consumers"]) == consumers[event_type]
        # its producer sends it to the bus
        sends = [
            op
            for op in document["operations"].values()
            if op["action"] == "send" and {"$ref": f"#/channels/bus/messages/{event_type}"} in op["messages"]
        ]
        assert [op["x-producer"] for op in sends] == [spec.producer]
    assert set(document["channels"]["bus"]["messages"]) == set(EVENT_TYPES)


def test_every_routed_source_and_type_is_a_receive_operation_on_its_inbox() -> None:
    # GIVEN what each inbox rule of template.yaml routes, branch by branch
    pairs = routed_pairs()
    assert pairs, "no inbox rules found in template.yaml"
    document = committed()
    # WHEN the document's receive operations are read back into (inbox, source, type)
    documented = set()
    for operation in document["operations"].values():
        if operation["action"] != "receive":
            continue
        channel_ref = operation["channel"]["$ref"]
        queue = channel_ref.removeprefix("#/channels/")
        channel = document["channels"][queue]
        for ref in operation["messages"]:
            assert ref["$ref"].startswith(channel_ref + "/messages/"), "a message not of the operation's channel"
            message = message_ref(channel["messages"][ref["$ref"].rsplit("/", 1)[-1]], document)
            assert message["x-source"] == operation["x-source"]
            documented.add((queue, operation["x-source"], message["name"]))
    # THEN they are exactly the routes: nothing missing, nothing invented
    assert documented == pairs


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_payload_holds_a_real_event_and_refuses_another_type(event_type: str) -> None:
    # GIVEN a real event of the type, as an inbox receives it
    event = example_event(event_type)
    document = committed()
    pointer = f"/components/messages/{event_type}"
    # WHEN its envelope and detail are validated against the message's headers and payload
    for validator_of_payload, validator_of_headers in zip(
        validators(document, pointer + "/payload"), validators(document, pointer + "/headers"), strict=True
    ):
        # THEN both hold it
        validator_of_payload.validate(event["detail"])
        validator_of_headers.validate({"source": event["source"], "detail-type": event["detail-type"]})
        # AND the same detail named as another type, or missing its data, does not validate
        other = copy.deepcopy(event["detail"])
        other["metadata"]["event_type"] = "OrderPlaced" if event_type != "OrderPlaced" else "OrderConfirmed"
        assert not validator_of_payload.is_valid(other)
        assert not validator_of_payload.is_valid({"metadata": event["detail"]["metadata"]})


def test_every_ref_resolves_inside_the_document() -> None:
    document = committed()
    text = json.dumps(document)
    assert "#/$defs/" not in text
    for schema in document["components"]["schemas"].values():
        assert "$id" not in schema


def _run_validator(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not PARSER.is_dir():
        pytest.skip("node or @asyncapi/parser missing: `make asyncapi-check` installs them (make test runs it)")
    return subprocess.run([node, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=120, check=False)


def test_the_asyncapi_parser_accepts_the_document() -> None:
    # WHEN the AsyncAPI parser reads the committed document
    result = _run_validator(DOCUMENT)
    # THEN it reports no diagnostic but the accepted note that 3.1.0 exists
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid AsyncAPI 3.0.0" in result.stdout
    assert f"{len(EVENT_TYPES)} messages" in result.stdout


def test_the_asyncapi_parser_reports_a_broken_document(tmp_path: Path) -> None:
    # GIVEN the document with a receive operation listing a message its channel does not carry, and a dangling $ref
    document = committed()
    operation = next(op for op in document["operations"].values() if op["action"] == "receive")
    operation["messages"].append({"$ref": "#/channels/bus/messages/OrderPlaced"})
    first = next(iter(document["components"]["messages"].values()))
    first["payload"]["properties"]["data"] = {"$ref": "#/components/schemas/Missing"}
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(document))
    # WHEN the parser reads it THEN it fails, naming each fault
    result = _run_validator(broken)
    assert result.returncode == 1
    assert "Operation message does not belong to the specified channel" in result.stdout
    assert "'#/components/schemas/Missing' does not exist" in result.stdout

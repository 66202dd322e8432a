"""The template and the service contracts (converge.contracts) agree: every piece a contract implies is in
template.yaml, and the template has nothing no contract declares. A gap is named, e.g.
"shipping: ShipmentsTable is not in the template"."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from converge.contracts import (
    EVENT_TYPES,
    SERVICES,
    ServiceContract,
    consumers_of,
    function_kinds,
    inbox_pattern,
    routed_pairs,
    with_inboxes,
    with_tables,
)
from converge.projections import PROJECTIONS
from localcloud.template import load_template

HANDLERS = {"api": "{name}.handlers.api_handler", "consumer": "{name}.handlers.consumer_handler"}


def _get_att(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(function: dict[str, Any], resources: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """A function's inline statements: its SAM `Policies`, or those of the role it declares (`Role: !GetAtt`)."""
    for policy in function["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            yield from _as_list(policy["Statement"])
    role = function["Properties"].get("Role", {})
    if resources is not None and isinstance(role, dict) and "Fn::GetAtt" in role:
        for policy in resources[role["Fn::GetAtt"][0]]["Properties"].get("Policies", []):
            yield from _as_list(policy["PolicyDocument"]["Statement"])


def _granted(function: dict[str, Any], action: str, resources: dict[str, Any]) -> list[Any]:
    """Every resource a function's inline statements (or its declared role's) allow `action` on."""
    statements = _statements(function, resources)
    return [r for s in statements if action in _as_list(s["Action"]) for r in _as_list(s["Resource"])]


def _table_gaps(service: ServiceContract, resources: dict[str, Any]) -> Iterator[str]:
    table = resources.get(str(service.table))
    if table is None or table.get("Type") != "AWS::DynamoDB::Table":
        yield f"{service.table} is not in the template"
        return
    props = table["Properties"]
    if props.get("StreamSpecification", {}).get("StreamViewType") != "NEW_AND_OLD_IMAGES":
        yield f"{service.table} has no NEW_AND_OLD_IMAGES stream"
    if not props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        yield f"{service.table} has no point-in-time recovery"
    if not props.get("SSESpecification", {}).get("SSEEnabled"):
        yield f"{service.table} is not encrypted with KMS"
    indexes = {index["IndexName"] for index in props.get("GlobalSecondaryIndexes", [])}
    if service.layouts and "changed-since" not in indexes:
        yield f"{service.table} holds sources but has no changed-since index"


def _inbox_gaps(service: ServiceContract, resources: dict[str, Any]) -> Iterator[str]:
    for queue in (service.inbox, service.dlq):
        if resources.get(queue, {}).get("Type") != "AWS::SQS::Queue":
            yield f"{queue} is not in the template"
    redrive = resources.get(service.inbox, {}).get("Properties", {}).get("RedrivePolicy", {})
    if redrive.get("deadLetterTargetArn") != _get_att(service.dlq, "Arn"):
        yield f"{service.inbox} does not redrive to {service.dlq}"
    rule = resources.get(service.rule)
    if rule is None:
        yield f"{service.rule} is not in the template"
    else:
        wanted, routed = routed_pairs(inbox_pattern(service)), routed_pairs(rule["Properties"]["EventPattern"])
        for source, detail_type in sorted(wanted - routed):
            yield f"{service.rule} does not route {detail_type} from {source}"
        for source, detail_type in sorted(routed - wanted):
            yield f"{service.rule} routes {detail_type} from {source}, which the contract does not consume"
        targets = [t["Arn"] for t in rule["Properties"]["Targets"]]
        if targets != [_get_att(service.inbox, "Arn")]:
            yield f"{service.rule} does not target {service.inbox} alone"
    policy = resources.get("InboxQueuePolicy", {}).get("Properties", {})
    if {"Ref": service.inbox} not in policy.get("Queues", []):
        yield f"InboxQueuePolicy does not cover {service.inbox}"
    allowed = [
        s
        for s in policy.get("PolicyDocument", {}).get("Statement", [])
        if s.get("Resource") == _get_att(service.inbox, "Arn")
        and s.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn") == _get_att(service.rule, "Arn")
    ]
    if not allowed:
        yield f"InboxQueuePolicy does not let {service.rule} send to {service.inbox}"
    denied = [
        s
        for s in policy.get("PolicyDocument", {}).get("Statement", [])
        if s.get("Effect") == "Deny"
        and s.get("Principal") == "*"
        and s.get("Resource") == _get_att(service.inbox, "Arn")
        and s.get("Condition", {}).get("ArnNotEquals", {}).get("aws:SourceArn") == _get_att(service.rule, "Arn")
        and _get_att("ReconcilerFunctionRole", "Arn") in _as_list(s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
    ]
    if not denied:
        yield f"InboxQueuePolicy does not deny senders to {service.inbox} other than {service.rule} and the reconciler"


def _function_gaps(service: ServiceContract, resources: dict[str, Any]) -> Iterator[str]:
    for kind, logical_id in service.functions().items():
        function = resources.get(logical_id)
        if function is None:
            yield f"{logical_id} is not in the template"
            continue
        props = function["Properties"]
        events = {e["Type"]: e["Properties"] for e in props.get("Events", {}).values()}
        variables = props.get("Environment", {}).get("Variables", {})
        if kind in HANDLERS:
            if props.get("Handler") != HANDLERS[kind].format(name=service.name):
                yield f"{logical_id}'s Handler is not {HANDLERS[kind].format(name=service.name)}"
            if variables.get("TABLE_NAME") != {"Ref": service.table}:
                yield f"{logical_id} does not get TABLE_NAME from {service.table}"
            if variables.get("POWERTOOLS_SERVICE_NAME") != service.name:
                yield f"{logical_id}'s POWERTOOLS_SERVICE_NAME is not {service.name}"
        if kind == "api" and "HttpApi" not in events:
            yield f"{logical_id} has no HttpApi route"
        if kind == "consumer" and events.get("SQS", {}).get("Queue") != _get_att(service.inbox, "Arn"):
            yield f"{logical_id} is not fed by {service.inbox}"
        if kind == "publisher":
            stream = events.get("DynamoDB", {})
            if stream.get("Stream") != _get_att(str(service.table), "StreamArn"):
                yield f"{logical_id} does not read {service.table}'s stream"
            on_failure = stream.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            if on_failure != _get_att(service.dlq, "Arn"):
                yield f"{logical_id}'s stream failures do not go to {service.dlq}"
            conditions = [
                _as_list(s.get("Condition", {}).get("StringEquals", {}).get("events:source"))
                for s in _statements(function, resources)
                if "events:PutEvents" in _as_list(s["Action"])
            ]
            if conditions != [[service.source]]:
                yield f"{logical_id} may not PutEvents with source {service.source} (and no other)"


def _reconciler_gaps(service: ServiceContract, resources: dict[str, Any]) -> Iterator[str]:
    reconciler = resources["ReconcilerFunction"]
    variables = reconciler["Properties"]["Environment"]["Variables"]
    prefix = service.env_prefix
    wanted = {f"{prefix}_TABLE_NAME": {"Ref": service.table}}
    if service.consumes:
        wanted |= {f"{prefix}_DLQ_URL": {"Ref": service.dlq}, f"{prefix}_INBOX_URL": {"Ref": service.inbox}}
    for variable, value in wanted.items():
        if variables.get(variable) != value:
            yield f"ReconcilerFunction's environment lacks {variable}: {value}"
    table_arn = _get_att(str(service.table), "Arn")
    if table_arn not in _granted(reconciler, "dynamodb:BatchGetItem", resources):
        yield f"ReconcilerFunction may not dynamodb:BatchGetItem {service.table}"
    sweep = resources["ReconcilerSweepFunction"]
    sweep_variables = sweep["Properties"]["Environment"]["Variables"]
    if sweep_variables.get(f"{prefix}_TABLE_NAME") != {"Ref": service.table}:
        yield f"ReconcilerSweepFunction's environment lacks {prefix}_TABLE_NAME"
    for action in ("dynamodb:Scan", "dynamodb:BatchGetItem"):
        if table_arn not in _granted(sweep, action, resources):
            yield f"ReconcilerSweepFunction may not {action} {service.table}"
    if service.layouts and {"Fn::Sub": f"${{{service.table}.Arn}}/index/changed-since"} not in _granted(
        reconciler, "dynamodb:Query", resources
    ):
        yield f"ReconcilerFunction may not Query {service.table}'s changed-since index"
    if service.consumes:
        if _get_att(service.dlq, "Arn") not in _granted(reconciler, "sqs:ReceiveMessage", resources):
            yield f"ReconcilerFunction may not drain {service.dlq}"
        if _get_att(service.inbox, "Arn") not in _granted(reconciler, "sqs:SendMessage", resources):
            yield f"ReconcilerFunction may not redrive into {service.inbox}"
    if service.has_publisher:
        sources = [
            source
            for s in _statements(reconciler, resources)
            if "events:PutEvents" in _as_list(s["Action"])
            for source in _as_list(s["Condition"]["StringEquals"]["events:source"])
        ]
        if service.source not in sources:
            yield f"ReconcilerFunction may not republish with source {service.source}"


def _operations_gaps(service: ServiceContract, template: dict[str, Any]) -> Iterator[str]:
    resources, outputs = template["Resources"], template.get("Outputs", {})
    alarms = []
    if service.consumes:
        alarms += [f"{service.prefix}DLQUnjudgedAlarm", f"{service.prefix}ConsumerErrorsAlarm"]
    if service.has_publisher:
        alarms.append(f"{service.prefix}PublisherIteratorAgeAlarm")
    for alarm in alarms:
        if resources.get(alarm, {}).get("Type") != "AWS::CloudWatch::Alarm":
            yield f"{alarm} is not in the template"
    wanted = [f"{service.table}Name"]
    if service.consumes:
        wanted += [f"{service.dlq}Url", f"{service.inbox}Url"]
    for output in wanted:
        if output not in outputs:
            yield f"output {output} is missing (tools.dlq and the e2e suite read it)"


def gaps(template: dict[str, Any], service: ServiceContract) -> list[str]:
    """Every piece of `service`'s contract the template lacks, one line each."""
    resources = template["Resources"]
    found: list[str] = []
    if service.table is not None:
        found += _table_gaps(service, resources)
        found += _reconciler_gaps(service, resources)
        found += _operations_gaps(service, template)
    if service.consumes:
        found += _inbox_gaps(service, resources)
    found += _function_gaps(service, resources)
    return [f"{service.name}: {gap}" for gap in found]


def strays(template: dict[str, Any]) -> list[str]:
    """What the template declares and no contract does: functions, tables and inbox rules."""
    resources = template["Resources"]
    declared_functions = set(function_kinds())
    declared_tables = {s.table for s in with_tables()} | {"ReconcilerStateTable"}
    declared_rules = {s.rule for s in with_inboxes()}
    found = []
    for name, resource in resources.items():
        kind = resource["Type"]
        if kind == "AWS::Serverless::Function" and name not in declared_functions:
            found.append(f"{name} is a function no service contract declares")
        if kind == "AWS::DynamoDB::Table" and name not in declared_tables:
            found.append(f"{name} is a table no service contract owns")
        if kind == "AWS::Events::Rule" and name not in declared_rules:
            found.append(f"{name} is an inbox rule no service contract consumes through")
    return found


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_the_template_has_every_piece_of_each_contract(template: dict[str, Any], service: ServiceContract) -> None:
    # GIVEN a service contract WHEN the template is compared with it THEN nothing it implies is missing
    assert gaps(template, service) == []


def test_the_template_declares_nothing_no_contract_declares(template: dict[str, Any]) -> None:
    # GIVEN the template WHEN its functions, tables and rules are matched to the contracts THEN each has an owner
    assert strays(template) == []


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        ("ShipmentsTable", "shipping: ShipmentsTable is not in the template"),
        ("ShippingInbox", "shipping: ShippingInbox is not in the template"),
        ("ShippingInboxRule", "shipping: ShippingInboxRule is not in the template"),
        ("ShippingConsumerFunction", "shipping: ShippingConsumerFunction is not in the template"),
        ("ShippingDLQUnjudgedAlarm", "shipping: ShippingDLQUnjudgedAlarm is not in the template"),
    ],
)
def test_removing_a_services_resource_names_the_gap(template: dict[str, Any], removed: str, named: str) -> None:
    # GIVEN the template without one of shipping's resources
    broken = copy.deepcopy(template)
    del broken["Resources"][removed]
    # WHEN it is compared with the shipping contract THEN the gap is named
    assert named in gaps(broken, next(s for s in SERVICES if s.name == "shipping"))


def test_a_variable_the_reconciler_lacks_is_named(template: dict[str, Any]) -> None:
    # GIVEN the reconciler without shipping's DLQ url (its DLQ would never be drained)
    broken = copy.deepcopy(template)
    del broken["Resources"]["ReconcilerFunction"]["Properties"]["Environment"]["Variables"]["SHIPPING_DLQ_URL"]
    # WHEN compared THEN the missing variable is named
    gaps_found = gaps(broken, next(s for s in SERVICES if s.name == "shipping"))
    assert "shipping: ReconcilerFunction's environment lacks SHIPPING_DLQ_URL: {'Ref': 'ShippingDLQ'}" in gaps_found


def test_an_event_type_the_rule_does_not_route_is_named(template: dict[str, Any]) -> None:
    # GIVEN the orders inbox rule without its shipping branch
    broken = copy.deepcopy(template)
    pattern = broken["Resources"]["OrdersInboxRule"]["Properties"]["EventPattern"]
    pattern["$or"] = [b for b in pattern["$or"] if b["source"] != ["converge.shipping"]]
    # WHEN compared THEN the unrouted type is named with its source
    orders = next(s for s in SERVICES if s.name == "orders")
    assert "orders: OrdersInboxRule does not route ShipmentDispatched from converge.shipping" in gaps(broken, orders)


def test_every_consumed_type_is_published_and_every_projection_is_owned() -> None:
    # GIVEN the contracts THEN every type a consumer applies is in the registry (published by some service) ...
    for service in SERVICES:
        for event_type in service.consumes:
            assert event_type in EVENT_TYPES, (service.name, event_type)
    # ... every projection belongs to a service whose table holds it, and its carrying events reach that service
    owners = {s.name for s in with_tables()}
    for projection in PROJECTIONS:
        assert projection.service in owners, projection.name
        for event_type in projection.carried_by:
            assert projection.service in {s.name for s in consumers_of(event_type)}, (projection.name, event_type)

"""IAM in the translated template (what CloudFormation really gets): one role per function, no wildcards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from converge.contracts import CORRECTION_TYPES, EVENT_TYPES, SERVICES, with_inboxes, with_tables
from localcloud.deploy import load_and_translate
from localcloud.template import TEMPLATE_PATH, function_specs

# The only managed policies SAM may attach, each for a reason a reviewer can check:
ALLOWED_MANAGED = {
    # logs:CreateLogGroup/CreateLogStream/PutLogEvents for the function's own logs.
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    # Attached by SAM to every function with a Tracing setting; X-Ray's Put* actions have no resource-level scope.
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    # Attached by SAM for a DynamoDB stream event source (GetRecords, GetShardIterator, DescribeStream, ListStreams).
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole",
    # Attached by SAM for an SQS event source (ReceiveMessage, DeleteMessage, GetQueueAttributes).
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
}


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    _, translated = load_and_translate(TEMPLATE_PATH)
    return translated.template["Resources"]  # type: ignore[no-any-return]


def statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in role["Properties"].get("Policies", []):
        statement = policy["PolicyDocument"]["Statement"]
        yield from statement if isinstance(statement, list) else [statement]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def roles(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}


def test_every_function_has_a_role_of_its_own(resources: dict[str, Any]) -> None:
    role_of = {
        name: r["Properties"]["Role"]["Fn::GetAtt"][0]
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function"
    }
    assert set(role_of) == set(function_specs())
    assert len(set(role_of.values())) == len(role_of)


def test_no_action_has_a_wildcard(resources: dict[str, Any]) -> None:
    offending = [
        (name, action)
        for name, role in roles(resources).items()
        for statement in statements(role)
        for action in as_list(statement["Action"])
        if "*" in action
    ]
    assert offending == []


def test_no_statement_grants_every_resource(resources: dict[str, Any]) -> None:
    offending = [
        (name, statement["Action"])
        for name, role in roles(resources).items()
        for statement in statements(role)
        if any(r == "*" for r in as_list(statement.get("Resource", "*")))
    ]
    assert offending == []


def test_only_reviewed_managed_policies_are_attached(resources: dict[str, Any]) -> None:
    attached = {arn for role in roles(resources).values() for arn in role["Properties"].get("ManagedPolicyArns", [])}
    assert attached <= ALLOWED_MANAGED


def test_put_events_is_limited_to_the_bus_and_the_callers_own_sources(resources: dict[str, Any]) -> None:
    # GIVEN every statement that allows events:PutEvents
    grants = [
        (name, statement)
        for name, role in roles(resources).items()
        for statement in statements(role)
        if "events:PutEvents" in as_list(statement["Action"])
    ]
    # THEN each names the bus and an events:source condition, and each publisher may only use its own source
    publishers = {f"{s.functions()['publisher']}Role": s.source for s in SERVICES if s.has_publisher}
    assert {name for name, _ in grants} == {*publishers, "ReconcilerFunctionRole"}
    sources = {}
    for name, statement in grants:
        assert statement["Resource"] == {"Fn::GetAtt": ["Bus", "Arn"]}, name
        sources[name] = set(as_list(statement["Condition"]["StringEquals"]["events:source"]))
    for role, source in publishers.items():
        assert sources[role] == {source}, role
    # AND only the reconciler may send corrections (the source every correction type is declared with)
    correction_sources = {EVENT_TYPES[t].source for t in CORRECTION_TYPES}
    assert correction_sources == {"converge.reconciler"}
    assert [n for n, s in sources.items() if s & correction_sources] == ["ReconcilerFunctionRole"]


def test_each_inbox_rule_routes_every_source_with_its_own_event_types_only(resources: dict[str, Any]) -> None:
    # GIVEN the inbox rules' patterns
    for rule in (s.rule for s in with_inboxes()):
        pattern = resources[rule]["Properties"]["EventPattern"]
        branches = pattern.get("$or", [pattern])
        # THEN each branch names one source and only event types declared with that source
        for branch in branches:
            (source,) = branch["source"]
            assert branch["detail-type"], rule
            for event_type in branch["detail-type"]:
                assert EVENT_TYPES[event_type].source == source, (rule, event_type, source)


def test_api_and_consumer_functions_touch_only_their_own_table(resources: dict[str, Any]) -> None:
    for service in with_tables():
        for kind in ("api", "consumer"):
            if kind not in service.functions():
                continue
            role = resources[f"{service.functions()[kind]}Role"]
            for statement in statements(role):
                if any(a.startswith("dynamodb:") for a in as_list(statement["Action"])):
                    assert statement["Resource"] == {"Fn::GetAtt": [service.table, "Arn"]}, (service.name, kind)

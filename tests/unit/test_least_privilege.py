"""IAM in the translated template (what CloudFormation really gets): one role per function, no wildcards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from converge.contracts import CORRECTION_TYPES, EVENT_TYPES, SERVICES, with_inboxes, with_tables
from localcloud.deploy import load_and_translate
from localcloud.template import TEMPLATE_PATH, function_specs

# The managed policies a role may have, each for a reason a reviewer can check:
# logs:CreateLogGroup/CreateLogStream/PutLogEvents for the function's logs (SAM's default for every function).
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
# Attached by SAM to every function with a Tracing setting; X-Ray's Put* actions have no resource-level scope.
XRAY = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
ALLOWED_MANAGED = {BASIC_EXECUTION, XRAY}


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


def strings(value: Any) -> Iterator[str]:
    """Every string inside a policy value, intrinsics included (a Sub's template, a Join's parts)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def managed_policies(role: dict[str, Any]) -> dict[str, str | None]:
    """Each managed policy ARN of a role (partition resolved to aws) -> the condition it is attached under."""
    found: dict[str, str | None] = {}
    for arn in role["Properties"].get("ManagedPolicyArns", []):
        condition = None
        if isinstance(arn, dict) and "Fn::If" in arn:
            condition, arn, otherwise = arn["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}, arn
        if isinstance(arn, dict) and "Fn::Sub" in arn:
            arn = arn["Fn::Sub"].replace("${AWS::Partition}", "aws")
        assert isinstance(arn, str), arn
        found[arn] = condition
    return found


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


def test_no_statement_has_a_wildcard_in_its_actions_or_resources(resources: dict[str, Any]) -> None:
    # GIVEN every inline statement of every role in the translated template
    found = [(name, statement) for name, role in roles(resources).items() for statement in statements(role)]
    assert len(found) > len(roles(resources))
    for name, statement in found:
        # THEN it allows named actions on named resources: no "*" anywhere in either, no NotAction/NotResource
        assert statement["Effect"] == "Allow", name
        assert not {"NotAction", "NotResource"} & set(statement), name
        assert [s for s in strings(statement["Action"]) if "*" in s] == [], name
        assert [s for s in strings(statement["Resource"]) if "*" in s] == [], (name, statement["Action"])


def test_roles_have_no_managed_policy_but_basic_execution_and_x_ray(resources: dict[str, Any]) -> None:
    # GIVEN the managed policies of every role, consumers and publishers included (their roles are declared in the
    #       template: SAM's would attach AWSLambdaSQSQueueExecutionRole or AWSLambdaDynamoDBExecutionRole, which
    #       read every queue or every stream of the account)
    attached = {name: managed_policies(role) for name, role in roles(resources).items()}
    consumers = {f"{s.functions()['consumer']}Role" for s in with_inboxes()}
    publishers = {f"{s.functions()['publisher']}Role" for s in SERVICES if s.has_publisher}
    assert consumers | publishers <= set(attached)
    for name, policies in attached.items():
        # THEN each has the basic execution policy, unconditionally
        assert policies.get(BASIC_EXECUTION, "missing") is None, name
        # AND nothing but it and X-Ray
        assert set(policies) <= ALLOWED_MANAGED, (name, set(policies) - ALLOWED_MANAGED)
    for name in consumers | publishers | {"ReconcilerFunctionRole"}:
        # AND a declared role has X-Ray only when tracing is on
        assert attached[name] == {BASIC_EXECUTION: None, XRAY: "IsTracingEnabled"}, name


def test_each_consumer_reads_its_own_inbox_only(resources: dict[str, Any]) -> None:
    for service in with_inboxes():
        # GIVEN a consumer's role and every SQS action it allows
        role = resources[f"{service.functions()['consumer']}Role"]
        sqs = [s for s in statements(role) if any(a.startswith("sqs:") for a in as_list(s["Action"]))]
        # THEN it may receive, delete and read the attributes of its own inbox, and touch no other queue
        assert [(sorted(as_list(s["Action"])), s["Resource"]) for s in sqs] == [
            (
                ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
                {"Fn::GetAtt": [service.inbox, "Arn"]},
            )
        ], service.name


def test_each_publisher_reads_its_own_stream_and_fails_into_its_own_dlq_only(resources: dict[str, Any]) -> None:
    for service in (s for s in SERVICES if s.has_publisher):
        # GIVEN a publisher's role and every DynamoDB and SQS action it allows
        role = resources[f"{service.functions()['publisher']}Role"]
        granted = [
            (sorted(as_list(s["Action"])), s["Resource"])
            for s in statements(role)
            if any(a.startswith(("dynamodb:", "sqs:")) for a in as_list(s["Action"]))
        ]
        # THEN it reads its own table's stream (not every stream of the account, as SAM's managed policy would)
        # and sends its stream failures to its own DLQ, and nothing else
        assert granted == [
            (
                ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
                {"Fn::GetAtt": [str(service.table), "StreamArn"]},
            ),
            (["sqs:SendMessage"], {"Fn::GetAtt": [service.dlq, "Arn"]}),
        ], service.name


def test_put_events_is_limited_to_the_bus_and_the_callers_own_sources(resources: dict[str, Any]) -> None:
    # GIVEN every statement that allows events:PutEvents
    grants = [
        (name, statement)
        for name, role in roles(resources).items()
        for statement in statements(role)
        if "events:PutEvents" in as_list(statement["Action"])
    ]
    # THEN each names the bus and conditions on one events:source and that source's own event types
    publishers = {f"{s.functions()['publisher']}Role": s.source for s in SERVICES if s.has_publisher}
    assert {name for name, _ in grants} == {*publishers, "ReconcilerFunctionRole"}
    sources: dict[str, set[str]] = {}
    for name, statement in grants:
        assert statement["Resource"] == {"Fn::GetAtt": ["Bus", "Arn"]}, name
        condition = statement["Condition"]
        assert set(condition) == {"StringEquals"}, name
        (source,) = as_list(condition["StringEquals"]["events:source"])
        types = set(as_list(condition["StringEquals"]["events:detail-type"]))
        assert types == {t for t, spec in EVENT_TYPES.items() if spec.source == source}, (name, source)
        sources.setdefault(name, set()).add(source)
    # AND each publisher may only use its own source
    for role, source in publishers.items():
        assert sources[role] == {source}, role
    # AND the reconciler republishes with the publishers' sources and sends corrections with its own
    assert sources["ReconcilerFunctionRole"] == {*publishers.values(), "converge.reconciler"}
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

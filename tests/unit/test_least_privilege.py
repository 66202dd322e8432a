"""IAM in the translated template (what CloudFormation really gets): one role per function, no wildcards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from converge.contracts import CORRECTION_TYPES, EVENT_TYPES, SERVICES, with_inboxes, with_tables
from localcloud.deploy import load_and_translate
from localcloud.template import TEMPLATE_PATH, function_specs

# The condition under which the template grants X-Ray (TracingEnabled=true; the default is false).
TRACING = "IsTracingEnabled"


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


def resolve(value: Any, conditions: dict[str, bool]) -> Any:
    """`value` with every Fn::If on one of `conditions` taken (AWS::NoValue dropped); other intrinsics kept."""
    if isinstance(value, dict):
        if "Fn::If" in value and value["Fn::If"][0] in conditions:
            condition, yes, no = value["Fn::If"]
            return resolve(yes if conditions[condition] else no, conditions)
        return {k: resolve(v, conditions) for k, v in value.items()}
    if isinstance(value, list):
        taken = [resolve(v, conditions) for v in value]
        return [v for v in taken if v != {"Ref": "AWS::NoValue"}]
    return value


def deployed(resources: dict[str, Any], tracing: bool) -> dict[str, Any]:
    """The resources CloudFormation creates with TracingEnabled as given."""
    conditions = {TRACING: tracing}
    return {name: resolve(r, conditions) for name, r in resources.items() if r.get("Condition") != TRACING or tracing}


def policy_statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, statement) of every identity policy: roles' inline policies and customer-managed policies."""
    for name, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            for statement in statements(resource):
                yield name, statement
        elif resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            statement = resource["Properties"]["PolicyDocument"]["Statement"]
            for one in statement if isinstance(statement, list) else [statement]:
                yield name, one


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


@pytest.mark.parametrize("tracing", [False, True], ids=["tracing off", "tracing on"])
def test_no_role_has_a_managed_policy_or_a_wildcard(resources: dict[str, Any], tracing: bool) -> None:
    # GIVEN every identity policy CloudFormation creates from the translated template, tracing off or on
    created = deployed(resources, tracing)
    found = list(policy_statements(created))
    assert len(found) > len(roles(created))
    # THEN no role has an AWS managed policy (whose statements this test could not see)
    for name, role in roles(created).items():
        assert role["Properties"].get("ManagedPolicyArns", []) == [], name
    wildcards = []
    for name, statement in found:
        # AND each statement allows named actions: no "*" in any, no NotAction/NotResource
        assert statement["Effect"] == "Allow", name
        assert not {"NotAction", "NotResource"} & set(statement), name
        assert [s for s in strings(statement["Action"]) if "*" in s] == [], name
        if [s for s in strings(statement["Resource"]) if "*" in s]:
            wildcards.append((name, sorted(as_list(statement["Action"]))))
    # AND the only resources with a wildcard are the sweep's executions (a Distributed Map's children are named by
    #     its map run, the others by whoever started them: only their prefix is known); with tracing on, X-Ray's
    #     two trace actions too (X-Ray offers no resource-level permission for them), in the one policy granted
    #     under the tracing condition
    expected = [
        ("ReconcilerSweepStateMachineRole", ["states:DescribeExecution", "states:StopExecution"]),
        ("ReconcilerSweepFunctionRole", ["states:DescribeExecution"]),  # has the execution that began a sweep ended?
    ]
    if tracing:
        expected.append(("TracingWritePolicy", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]))
    assert sorted(wildcards) == sorted(expected)


def test_x_ray_is_granted_to_every_function_only_when_tracing_is_on(resources: dict[str, Any]) -> None:
    # GIVEN the X-Ray policy
    policy = resources["TracingWritePolicy"]
    # THEN it exists only under the tracing condition, and is attached to every function's role
    assert policy["Condition"] == TRACING
    functions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    assert {ref["Ref"] for ref in policy["Properties"]["Roles"]} == {
        f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions
    }


def test_each_function_writes_its_own_log_group_only(resources: dict[str, Any]) -> None:
    for name, function in ((n, r) for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"):
        # GIVEN a function, the log group it logs to and its role's logs statements
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert resources[group]["Type"] == "AWS::Logs::LogGroup", name
        assert "RetentionInDays" in resources[group]["Properties"], name
        role = resources[function["Properties"]["Role"]["Fn::GetAtt"][0]]
        logs = [s for s in statements(role) if any(a.startswith("logs:") for a in as_list(s["Action"]))]
        # THEN it may create streams in and write to that group, and nothing else of CloudWatch Logs
        assert [(sorted(as_list(s["Action"])), s["Resource"]) for s in logs] == [
            (["logs:CreateLogStream", "logs:PutLogEvents"], {"Fn::GetAtt": [group, "Arn"]})
        ], name


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
    reconcilers = {"ReconcilerFunctionRole", "ReconcilerSweepFunctionRole"}
    assert {name for name, _ in grants} == {*publishers, *reconcilers}
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
    for reconciler in reconcilers:
        assert sources[reconciler] == {*publishers.values(), "converge.reconciler"}
    # AND only the reconciler may send corrections (the source every correction type is declared with)
    correction_sources = {EVENT_TYPES[t].source for t in CORRECTION_TYPES}
    assert correction_sources == {"converge.reconciler"}
    assert sorted(n for n, s in sources.items() if s & correction_sources) == sorted(reconcilers)


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

"""The resource policies of the translated template, read as IAM evaluates their Deny statements: who may put an
event on the bus, who may send to the delivery DLQ, which queues may dead-letter into each DLQ, and who may create
grants on the alarm key, whatever identity policies elsewhere in the account allow.

The evaluator below handles only what these statements use (one Deny, the Arn(Not)Equals[IfExists] operators
and Null on a request's keys); it is a reading aid for the cases, not an IAM implementation."""

from __future__ import annotations

from typing import Any

import pytest

from converge.contracts import with_inboxes
from localcloud.deploy import load_and_translate
from localcloud.template import TEMPLATE_PATH


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    _, translated = load_and_translate(TEMPLATE_PATH)
    return translated.template["Resources"]  # type: ignore[no-any-return]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def matches(operator: str, key: str, values: list[Any], request: dict[str, Any]) -> bool:
    """One condition of a statement against `request` (key -> value; a missing key is absent)."""
    if operator == "Null":  # "true": the key must be absent; "false": present
        return (key not in request) == (str(values[0]).lower() == "true")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if key not in request:
        # IAM: a negated operator on a missing key is true; ...IfExists on a missing key is true
        return if_exists or base.startswith("ArnNot")
    found = request[key] in values
    return not found if base == "ArnNotEquals" else found


def denied(statement: dict[str, Any], action: str, resource: Any, request: dict[str, Any]) -> bool:
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    if action not in as_list(statement["Action"]) or statement["Resource"] != resource:
        return False
    return all(
        matches(operator, key, as_list(values), request)
        for operator, conditions in statement.get("Condition", {}).items()
        for key, values in conditions.items()
    )


def role(name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [name, "Arn"]}


def put_events_roles(resources: dict[str, Any]) -> set[str]:
    """The roles whose identity policies allow events:PutEvents."""
    found = set()
    for name, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                if "events:PutEvents" in as_list(statement["Action"]):
                    found.add(name)
    return found


def test_only_the_roles_granted_put_events_may_put_on_the_bus(resources: dict[str, Any]) -> None:
    # GIVEN the bus's policy and the roles the template grants events:PutEvents (publishers, reconciler)
    (policy,) = [r for r in resources.values() if r["Type"] == "AWS::Events::EventBusPolicy"]
    statement, bus = policy["Properties"]["Statement"], {"Fn::GetAtt": ["Bus", "Arn"]}
    assert policy["Properties"]["EventBusName"] == {"Ref": "Bus"}
    producers = put_events_roles(resources)
    assert producers == {"OrdersPublisherFunctionRole", "InventoryPublisherFunctionRole",
                         "ShippingPublisherFunctionRole", "ReconcilerFunctionRole",
                         "ReconcilerSweepFunctionRole"}  # fmt: skip
    # WHEN a producer, another role of the account (say an admin with events:PutEvents on *), or EventBridge's own
    #      delivery (a replay: no principal ARN) puts an event
    # THEN only the other role is denied
    for name in producers:
        assert not denied(statement, "events:PutEvents", bus, {"aws:PrincipalArn": role(name)}), name
    assert denied(statement, "events:PutEvents", bus, {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/Admin"})
    assert denied(statement, "events:PutEvents", bus, {"aws:PrincipalArn": role("OrdersApiFunctionRole")})
    assert not denied(statement, "events:PutEvents", bus, {})


def test_only_the_inbox_rules_may_send_to_the_delivery_dlq(resources: dict[str, Any]) -> None:
    # GIVEN the queue policy's Deny on the delivery DLQ and the rules that dead-letter there
    dlq = {"Fn::GetAtt": ["DeliveryDLQ", "Arn"]}
    (policy,) = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and {"Ref": "DeliveryDLQ"} in r["Properties"]["Queues"]
    ]
    (statement,) = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny" and s["Resource"] == dlq
    ]
    rules = [
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::Events::Rule"
        and any(t.get("DeadLetterConfig", {}).get("Arn") == dlq for t in r["Properties"].get("Targets", []))
    ]
    assert sorted(rules) == sorted(s.rule for s in with_inboxes())
    # WHEN EventBridge dead-letters for one of those rules THEN it is not denied
    for rule in rules:
        assert not denied(statement, "sqs:SendMessage", dlq, {"aws:SourceArn": role(rule)}), rule
    # AND any role sending straight in (a forged "undeliverable event", which the reconciler would redrive) is
    denied_sender = {"aws:PrincipalArn": role("ReconcilerFunctionRole")}
    assert denied(statement, "sqs:SendMessage", dlq, denied_sender)
    assert denied(statement, "sqs:SendMessage", dlq, {"aws:SourceArn": "arn:aws:events:us-east-1:1:rule/other"})


PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::StackName": "s"}


def sub(value: Any) -> str:
    """An `Fn::Sub` of pseudo parameters only, resolved as CloudFormation would in stack `s`."""
    text = str(value["Fn::Sub"])
    for name, resolved in PSEUDO.items():
        text = text.replace(f"${{{name}}}", resolved)
    assert "${" not in text, text
    return text


def may_dead_letter_into(dlq: dict[str, Any], source_arn: str) -> bool:
    """SQS's RedriveAllowPolicy: whether a queue with ARN `source_arn` may name this queue as its DLQ."""
    policy = dlq["Properties"].get("RedriveAllowPolicy", {"redrivePermission": "allowAll"})
    if policy["redrivePermission"] == "byQueue":
        return source_arn in [sub(arn) for arn in policy["sourceQueueArns"]]
    return bool(policy["redrivePermission"] == "allowAll")


def test_each_dlq_takes_dead_letters_from_the_queues_that_name_it_and_no_other(resources: dict[str, Any]) -> None:
    # GIVEN every queue of the template, and the queues each DLQ is named by in a RedrivePolicy
    queues = {name: r for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    arns = {name: sub(q["Properties"]["QueueName"]) for name, q in queues.items() if "QueueName" in q["Properties"]}
    arns = {name: f"arn:aws:sqs:us-east-1:123456789012:{queue}" for name, queue in arns.items()}
    sources: dict[str, set[str]] = {}
    for name, queue in queues.items():
        if "RedrivePolicy" in queue["Properties"]:
            (target, _) = queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"]
            sources.setdefault(target, set()).add(name)
    assert sources == {s.dlq: {s.inbox} for s in with_inboxes()}
    # WHEN each DLQ's RedriveAllowPolicy is asked about every queue of the stack and one from outside it
    dlqs = {name: q for name, q in queues.items() if name.endswith("DLQ")}
    assert set(dlqs) == set(sources) | {"DeliveryDLQ", "ReconcilerScheduleDLQ", "AlarmEmailDLQ"}
    for dlq_name, dlq in dlqs.items():
        allowed = {name for name, arn in arns.items() if may_dead_letter_into(dlq, arn)}
        # THEN exactly the queues that name it may (none for those EventBridge or SNS dead-letter into)
        assert allowed == sources.get(dlq_name, set()), dlq_name
        assert not may_dead_letter_into(dlq, "arn:aws:sqs:us-east-1:123456789012:someone-elses-queue"), dlq_name


def test_the_alarm_key_grants_only_for_aws_resources(resources: dict[str, Any]) -> None:
    # GIVEN the alarm topic key's policy
    statements = resources["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    # WHEN the statements that allow kms:CreateGrant are read
    grants = [s for s in statements if s["Effect"] == "Allow" and "kms:CreateGrant" in as_list(s["Action"])]
    # THEN there is one, for the account, and only when the grant is for an AWS service acting on its behalf
    (grant,) = grants
    assert grant["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": True}}


def test_only_the_alarm_topic_may_dead_letter_into_the_alarm_email_dlq(resources: dict[str, Any]) -> None:
    # GIVEN the alarm email subscription and its DLQ, created only when AlarmEmail is given
    subscription = resources["AlarmEmailSubscription"]
    dlq = {"Fn::GetAtt": ["AlarmEmailDLQ", "Arn"]}
    assert subscription["Properties"]["RedrivePolicy"] == {"deadLetterTargetArn": dlq}
    assert resources["AlarmEmailDLQ"]["Condition"] == subscription["Condition"]
    # WHEN the DLQ's queue policy is read
    (policy,) = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and r["Properties"]["Queues"] == [{"Ref": "AlarmEmailDLQ"}]
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    # THEN SNS may send to it for the alarm topic only
    assert (statement["Effect"], statement["Action"]) == ("Allow", "sqs:SendMessage")
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Resource"] == dlq
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "AlarmTopic"}}}
    # AND it is encrypted with the topic's key, whose policy lets SNS of this account encrypt and decrypt with it
    assert resources["AlarmEmailDLQ"]["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key_statements = resources["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    (sns,) = [s for s in key_statements if s["Principal"] == {"Service": "sns.amazonaws.com"}]
    assert set(sns["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert sns["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}

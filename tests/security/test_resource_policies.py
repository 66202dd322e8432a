"""The resource policies of the translated template, read as IAM evaluates their Deny statements: who may put an
event on the bus, and who may send to the delivery DLQ, whatever identity policies elsewhere in the account allow.

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
                         "ShippingPublisherFunctionRole", "ReconcilerFunctionRole"}  # fmt: skip
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

"""A moto stack for handler tests: tables built from template.yaml's own properties, the bus, a tap queue.

Table schemas are read from the template (never re-declared here), so a test cannot pass against a table
that differs from the deployed one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from converge import aws
from converge.dynamo import from_item, to_item
from converge.settings import settings
from localcloud.context import LambdaContext
from localcloud.loader import load_handler
from localcloud.stepfunctions import definition_of
from localcloud.template import FunctionSpec, function_specs, load_template, resources_of_type

STACK_NAME = "converge-test"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
TABLE_PROPERTIES = ("AttributeDefinitions", "KeySchema", "BillingMode", "StreamSpecification", "GlobalSecondaryIndexes")


@dataclass
class Stack:
    """Physical names of what a test stack holds, and helpers to look at it."""

    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> queue url
    bus_name: str = "converge-test-bus"
    tap_queue_url: str = ""
    template: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)  # overrides of the template's defaults, as at deploy

    # ----------------------------------------------------------- lookups
    def resolve(self, value: Any) -> Any:
        """Resolve the intrinsics a function environment uses (Ref/GetAtt/If) against this stack."""
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            ref = value["Ref"]
            if ref in self.tables:
                return self.tables[ref]
            if ref in self.queues:
                return self.queues[ref]
            if ref in self.parameters:
                return self.parameters[ref]
            return self.template.get("Parameters", {}).get(ref, {}).get("Default", ref)
        if "Fn::GetAtt" in value:
            target, attribute = value["Fn::GetAtt"]
            if (target, attribute) == ("Bus", "Name"):
                return self.bus_name
            raise KeyError(f"unresolved GetAtt {target}.{attribute}")
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            pseudo = {"AWS::StackName": STACK_NAME, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID}
            pseudo["AWS::Partition"] = "aws"
            return re.sub(r"\$\{([^}]+)\}", lambda m: pseudo[m.group(1)], value["Fn::Sub"])
        if "Fn::If" in value:
            condition, _when_true, when_false = value["Fn::If"]
            if condition == "IsTracingEnabled":
                return self.resolve(when_false)
            raise KeyError(f"unresolved condition {condition}")
        raise KeyError(f"unresolved intrinsic {value}")

    def environment(self, spec: FunctionSpec) -> dict[str, str]:
        return {k: str(self.resolve(v)) for k, v in spec.environment.items()}

    def table(self, logical_id: str) -> str:
        return self.tables[logical_id]

    def get_item(self, logical_id: str, pk: str, sk: str) -> dict[str, Any] | None:
        response = boto3.client("dynamodb").get_item(
            TableName=self.tables[logical_id], Key=to_item({"pk": pk, "sk": sk})
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def scan(self, logical_id: str) -> list[dict[str, Any]]:
        client = boto3.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=self.tables[logical_id]):
            items.extend(from_item(i) for i in page["Items"])
        return items

    def put_item(self, logical_id: str, item: dict[str, Any]) -> None:
        boto3.client("dynamodb").put_item(TableName=self.tables[logical_id], Item=to_item(item))

    def events_on_bus(self) -> list[dict[str, Any]]:
        """Every event the bus delivered to the tap queue since the last call (whole EventBridge events)."""
        sqs = boto3.client("sqs")
        events: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.tap_queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.tap_queue_url, ReceiptHandle=message["ReceiptHandle"])


def create_stack() -> Stack:
    """Create, in the current moto backend, the template's tables and queues plus the bus and a tap."""
    template = load_template()
    stack = Stack(template=template)
    dynamodb = boto3.client("dynamodb")
    for logical_id, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        props = {k: v for k, v in resource["Properties"].items() if k in TABLE_PROPERTIES}
        if "StreamSpecification" in props:
            props["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        name = f"test-{logical_id}"
        dynamodb.create_table(TableName=name, **props)
        stack.tables[logical_id] = name
    sqs = boto3.client("sqs")
    for logical_id in resources_of_type(template, "AWS::SQS::Queue"):
        stack.queues[logical_id] = sqs.create_queue(QueueName=f"test-{logical_id}")["QueueUrl"]
    # The sweep's state machine, so that a pass can start it; moto records the execution without running it here
    # (the localcloud tests run it on moto's interpreter; handler tests play its steps with FunctionRunner.sweep).
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::StateMachine").items():
        props = resource["Properties"]
        boto3.client("stepfunctions").create_state_machine(
            name=stack.resolve(props["Name"]),
            definition=definition_of({**props, "DefinitionSubstitutions": {}}),
            roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{logical_id}",
        )
    events = boto3.client("events")
    events.create_event_bus(Name=stack.bus_name)
    stack.tap_queue_url = sqs.create_queue(QueueName="test-bus-tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=stack.tap_queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="tap", EventBusName=stack.bus_name, EventPattern=json.dumps({"source": [{"prefix": "converge."}]})
    )
    events.put_targets(Rule="tap", EventBusName=stack.bus_name, Targets=[{"Id": "tap", "Arn": tap_arn}])
    return stack


class FunctionRunner:
    """Invokes the template's functions in-process with the environment the template gives them."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.specs = function_specs(stack.template)

    @contextmanager
    def _environment(self, spec: FunctionSpec) -> Iterator[None]:
        env = self.stack.environment(spec)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        settings.cache_clear()
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            settings.cache_clear()

    def invoke(self, logical_id: str, event: dict[str, Any], context: LambdaContext | None = None) -> Any:
        """One invocation; `context` (default: the template's timeout from now) says how much time it has."""
        spec = self.specs[logical_id]
        with self._environment(spec):
            handler = load_handler(spec.code_dir, spec.handler)
            return handler(event, context or LambdaContext(function_name=logical_id, timeout_seconds=spec.timeout))

    def sweep(self, **request: Any) -> dict[str, Any]:
        """The full sweep, its tasks invoked in the order ReconcilerSweepStateMachine runs them: start, every
        segment until done, every counter segment until done, confirm (and its re-tallies), finish. Returns the
        sweep's report."""
        sweep = "ReconcilerSweepFunction"
        started = self.invoke(sweep, {"action": "start", "request": {"reason": "test", **request}})
        for phase in ("segments", "counters"):
            for task in started[phase]:
                while not self.invoke(sweep, task)["done"]:
                    pass
        confirm = {"action": "confirm", "sweep_id": started["sweep_id"]}
        while (confirmed := self.invoke(sweep, confirm))["more"]:
            for task in confirmed["retally"]:
                while not self.invoke(sweep, task)["done"]:
                    pass
        report: dict[str, Any] = self.invoke(sweep, {"action": "finish", "sweep_id": started["sweep_id"]})
        return report


def reset_caches() -> None:
    aws.reset_clients()
    settings.cache_clear()


def lambda_stream_event(stack: Stack, logical_id: str) -> dict[str, Any]:
    """Every record in the table's stream so far, shaped as Lambda's DynamoDB event source delivers them."""
    table = boto3.client("dynamodb").describe_table(TableName=stack.tables[logical_id])["Table"]
    stream_arn = table["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams")
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]:
            shaped: dict[str, Any] = {**record, "eventSourceARN": stream_arn}
            dynamodb: dict[str, Any] = dict(record["dynamodb"])
            dynamodb["ApproximateCreationDateTime"] = int(record["dynamodb"]["ApproximateCreationDateTime"].timestamp())
            shaped["dynamodb"] = dynamodb
            records.append(shaped)
    return {"Records": records}

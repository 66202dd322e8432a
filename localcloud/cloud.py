"""LocalCloud: template.yaml deployed into moto, functions run in-process, Lambda's pollers emulated.

    with LocalCloud() as cloud:                       # in-process moto (mock_aws)
        cloud.http("PUT", "/products/p1/stock", body=...)
        cloud.run_until_quiet()                       # streams -> publisher -> bus -> inboxes -> consumers
        cloud.advance(300)                            # fires the schedules that came due

`LocalCloud(endpoint="http://127.0.0.1:5000")` deploys into a moto server instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from localcloud import auth, convergence, deploy, destinations, faults, motopatch
from localcloud.archive import ArchiveEmulator
from localcloud.clock import Clock, iso
from localcloud.deploy import Translated
from localcloud.faults import FaultInjector, FaultPlan
from localcloud.httpapi import (
    JSON_TYPE,
    HttpResponse,
    Route,
    find_route,
    not_found,
    routes_from_template,
    to_http_response,
    v2_event,
)
from localcloud.ledger import Ledger
from localcloud.runtime import Function, Invocation, Runtime
from localcloud.schedules import Schedule, ScheduleTarget
from localcloud.sqs import SqsMapping, SqsMappingConfig, lambda_record
from localcloud.stepfunctions import STATE_MACHINE_TYPE, Execution, StateMachines
from localcloud.streams import StreamMapping, StreamMappingConfig
from localcloud.template import TEMPLATE_PATH, load_template

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "localcloud",
    "AWS_SECRET_ACCESS_KEY": "localcloud",
    "AWS_SESSION_TOKEN": "localcloud",
    "AWS_DEFAULT_REGION": deploy.REGION,
    # botocore >= 1.44 routes DynamoDB Streams by account id; moto answers 404 unless this is off.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}

# The HTTP API's JWT authorizer trusts localcloud's own issuer (localcloud/auth.py) unless the caller's `parameters`
# say otherwise, so no Cognito user pool is created. The sweep's re-tallies do not wait: deliveries here stand still
# while `run_until_quiet` waits for an execution, so a Wait (which moto's interpreter sleeps) would settle nothing.
DEFAULT_PARAMETERS = {"JwtIssuer": auth.LOCAL_ISSUER, "JwtAudience": auth.LOCAL_AUDIENCE, "SweepRetallyWaitSeconds": 0}


class DeployError(RuntimeError):
    """The stack could not be created in moto."""


class Clients:
    """boto3 clients for localcloud's own calls (never shared with the functions'), created on first use.

    One botocore session serves every LocalCloud of the process: it caches the service models, which otherwise
    take most of a deploy's time to load.
    """

    _session: boto3.session.Session | None = None

    def __init__(self, endpoint: str | None) -> None:
        self._endpoint = endpoint
        self._clients: dict[str, Any] = {}

    @classmethod
    def session(cls) -> boto3.session.Session:
        if cls._session is None:
            cls._session = boto3.session.Session(region_name=deploy.REGION)
        return cls._session

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        service = "lambda" if name == "lambda_" else name
        if service not in self._clients:
            config = Config(account_id_endpoint_mode="disabled", retries={"max_attempts": 1})
            self._clients[service] = self.session().client(  # type: ignore[call-overload]
                service, endpoint_url=self._endpoint, config=config
            )
        return self._clients[service]


@dataclass
class AsyncConfig:
    """A function's asynchronous invocation settings (AWS::Lambda::EventInvokeConfig; Lambda's defaults)."""

    maximum_retry_attempts: int = 2
    on_failure: str | None = None
    on_success: str | None = None


@dataclass
class AsyncTarget:
    """A pattern rule's Lambda target: the rule delivers to a shadow queue, drained into async invokes."""

    rule: str
    function: str
    queue_url: str
    input: str | None = None


@dataclass
class PumpReport:
    rounds: int = 0
    moved: int = 0
    seconds: float = 0.0


@dataclass
class Deployment:
    stack_name: str
    outputs: dict[str, str] = field(default_factory=dict)
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> physical id
    types: dict[str, str] = field(default_factory=dict)  # logical id -> resource type


class LocalCloud:
    def __init__(
        self,
        template_path: Path = TEMPLATE_PATH,
        *,
        endpoint: str | None = None,
        stack_name: str = "converge",
        parameters: dict[str, Any] | None = None,
        echo_logs: bool = False,
        verbose: bool = False,
        patch_moto: bool = True,
        faults: FaultPlan | None = None,
        execute_state_machines: bool = True,
    ) -> None:
        self.template_path = Path(template_path).resolve()
        self.endpoint = endpoint
        self.stack_name = stack_name
        self.parameters = dict(parameters or {})  # the deployed ones also have DEFAULT_PARAMETERS the template declares
        self.echo_logs = echo_logs
        self.verbose = verbose
        # moto's TransactWriteItems copies whole tables for its rollback (localcloud/motopatch.py).
        self.patch_moto = patch_moto
        # Fault injection (localcloud/faults.py): started after the deploy if a plan is given; cloud.faults.stop()
        # ends it, cloud.faults.start(plan) (re)starts it.
        self.faults = FaultInjector(faults)
        self._faults_from_start = faults is not None
        # False: state machines are created and executions started, but none runs (each stays RUNNING), as with
        # `sam local`, which has no Step Functions. A moto server of another process never runs them either: its
        # interpreter is switched on, and its Lambda tasks routed, in that process only (executes_state_machines).
        self._execute_state_machines = execute_state_machines
        self.clock = Clock()
        self._mock: Any = None
        self._server: Any = None
        self._saved_env: dict[str, str | None] = {}
        self.clients: Clients
        self.runtime: Runtime
        self.state_machines: StateMachines | None = None
        self.executions: list[Execution] = []  # state machine executions run, in order
        self.deployment = Deployment(stack_name)
        self.stream_mappings: dict[str, StreamMapping] = {}
        self.sqs_mappings: dict[str, SqsMapping] = {}
        self.schedules: dict[str, Schedule] = {}
        self.async_configs: dict[str, AsyncConfig] = {}
        self.async_targets: list[AsyncTarget] = []
        self.routes: list[Route] = []
        self.route_auth: dict[str, auth.RouteAuth] = {}  # route key -> its JWT authorizer, as deployed
        self.skipped: dict[str, str] = {}  # logical id -> type moto could not create and localcloud does not emulate
        self.api_id = "localapi"
        self.pump_lock = threading.RLock()
        self.log_sink: Callable[[str], None] = lambda line: print(line, file=sys.stderr)
        # The bus archive's replays (localcloud/archive.py): moto records, localcloud replays.
        self.archive = ArchiveEmulator(self)

    # ------------------------------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalCloud:
        if self.endpoint == "server":
            # A moto server of our own on a free port (moto[server]); stopped with this LocalCloud.
            from moto.server import ThreadedMotoServer

            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            host, port = self._server.get_host_and_port()
            self.endpoint = f"http://{host}:{port}"
        env = dict(FAKE_CREDENTIALS)
        if self.endpoint:
            env["AWS_ENDPOINT_URL"] = self.endpoint
        for key, value in env.items():
            # Credentials already set (tests set fake ones) are kept; an endpoint is always localcloud's.
            if key == "AWS_ENDPOINT_URL" or key not in os.environ:
                self._saved_env[key] = os.environ.get(key)
                os.environ[key] = value
        os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
        if self.patch_moto:
            motopatch.install()
        if not self.endpoint:
            from moto import mock_aws

            self._mock = mock_aws()
            self._mock.start()
        # Before the layer's clients are re-created: the fault hooks are registered on every new botocore session.
        faults.register(self.faults)
        _reset_layer_clients()
        self.clients = Clients(self.endpoint)
        try:
            self.deploy()
        except BaseException:
            self.stop()
            raise
        if self._faults_from_start:
            self.faults.start()
        return self

    def stop(self) -> None:
        if self.state_machines is not None:
            try:
                self.state_machines.close()
            finally:  # whatever closing met, the cloud stops: a mock left running would leak into the next one
                self.state_machines.uninstall()
                self.state_machines = None
        self.faults.stop()
        faults.unregister(self.faults)
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        _reset_layer_clients()

    def log(self, line: str) -> None:
        if self.verbose:
            self.log_sink(f"localcloud: {line}")

    # ------------------------------------------------------------------------------------------------ deploy
    def deploy(self) -> None:
        """Translate the template, create it in moto, and set up what localcloud creates or emulates itself."""
        sam_template = load_template(self.template_path)
        declared = sam_template.get("Parameters") or {}
        parameters = {k: v for k, v in DEFAULT_PARAMETERS.items() if k in declared} | self.parameters
        translated = deploy.translate(sam_template, self.template_path.parent, parameters)
        resources = translated.template["Resources"]
        self.clients.s3.create_bucket(Bucket=deploy.CODE_BUCKET)
        for key, directory in translated.code_dirs.items():
            self.clients.s3.put_object(Bucket=deploy.CODE_BUCKET, Key=key, Body=deploy.zip_dir(directory))
        physical: dict[str, str] = {}
        supported = deploy.moto_cfn_types()
        for logical_id, resource in resources.items():
            if resource["Type"] == "AWS::CloudWatch::Alarm":
                physical[logical_id] = f"{self.stack_name}-{logical_id}"
            elif resource["Type"] not in supported and resource["Type"] not in deploy.EMULATED_TYPES:
                physical.setdefault(logical_id, f"{self.stack_name}-{logical_id}")
            if resource["Type"] == STATE_MACHINE_TYPE:
                # Created after the stack (localcloud.stepfunctions); its ARN follows from its name, so the stack's
                # Refs to it (rule targets, roles, alarms) resolve now.
                physical[logical_id] = self._state_machine_arn(logical_id, resource.get("Properties", {}))
            if resource["Type"] == "AWS::ApiGatewayV2::Api":
                api = self.clients.apigatewayv2.create_api(Name=f"{self.stack_name}-{logical_id}", ProtocolType="HTTP")
                physical[logical_id] = api["ApiId"]
                self.api_id = api["ApiId"]
        plan = deploy.plan(translated.template, physical, supported)
        self.clients.cloudformation.create_stack(
            StackName=self.stack_name,
            TemplateBody=json.dumps(plan.cfn_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = self.clients.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise DeployError(f"{stack['StackStatus']}: {stack.get('StackStatusReason', '')}")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.deployment.outputs = {k: v for k, v in outputs.items() if not k.startswith("Localcloud")}
        for row in self.clients.cloudformation.describe_stack_resources(StackName=self.stack_name)["StackResources"]:
            if "LogicalResourceId" not in row:  # moto's models without one (IAM::ManagedPolicy): nothing to route
                continue
            self.deployment.types[row["LogicalResourceId"]] = row.get("ResourceType", "")
            if row.get("PhysicalResourceId"):
                self.deployment.physical[row["LogicalResourceId"]] = row["PhysicalResourceId"]
        self.deployment.physical.update(physical)
        buses = [k for k, v in self.deployment.types.items() if v == "AWS::Events::EventBus"]
        self.deployment.physical.update(deploy.names_of(buses, outputs, plan))

        self.runtime = Runtime(self._functions(translated), self._base_environment(), echo_logs=self.echo_logs)
        self.state_machines = StateMachines(self.clients, self.runtime)
        if self.executes_state_machines:
            self.state_machines.install()
        self.runtime.faults = self.faults
        self.faults.published_listeners.append(self.runtime.ledger.on_published)
        self.routes = routes_from_template(sam_template)
        for resource in plan.kept.values():
            if resource["Type"] == "AWS::ApiGatewayV2::Api" and "Body" in resource.get("Properties", {}):
                body = deploy.resolve(resource["Properties"]["Body"], outputs, plan)
                self.route_auth.update(auth.route_auth_from_openapi(body))
        for logical_id, resource in plan.kept.items():
            kind = resource["Type"]
            if not deploy.created(resource, outputs):
                self.log(f"{logical_id}: its condition {resource['Condition']} is false; not created")
            elif kind == "AWS::SQS::QueuePolicy":
                props = deploy.resolve(resource["Properties"], outputs, plan)
                for url in props["Queues"]:
                    self.clients.sqs.set_queue_attributes(
                        QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
                    )
            elif kind == "AWS::CloudWatch::Alarm":
                props = deploy.resolve(resource["Properties"], outputs, plan)
                name = props.pop("AlarmName", physical[logical_id])
                # A Ref to a Number parameter resolves to a string; CloudFormation converts it to the property's type.
                for key, kind in (("Threshold", float), ("Period", int), ("EvaluationPeriods", int)):
                    if isinstance(props.get(key), str):
                        props[key] = kind(props[key])
                self.clients.cloudwatch.put_metric_alarm(AlarmName=name, **props)
            elif kind == STATE_MACHINE_TYPE:
                props = deploy.resolve(resource["Properties"], outputs, plan)
                self.state_machines.create(logical_id, props, physical[logical_id])
            elif kind == "AWS::Lambda::EventSourceMapping":
                self._add_mapping(logical_id, deploy.resolve(resource["Properties"], outputs, plan))
            elif kind not in deploy.EMULATED_TYPES and kind not in deploy.CREATED_BY_API:
                self.skipped[logical_id] = kind
                self.log(f"{logical_id}: {kind} is not supported by moto's CloudFormation; not created")
            elif kind == "AWS::Lambda::EventInvokeConfig":
                props = deploy.resolve(resource["Properties"], outputs, plan)
                function = self.runtime.by_arn(str(props["FunctionName"])).logical_id
                config = props.get("DestinationConfig", {})
                self.async_configs[function] = AsyncConfig(
                    maximum_retry_attempts=int(props.get("MaximumRetryAttempts", 2)),
                    on_failure=config.get("OnFailure", {}).get("Destination"),
                    on_success=config.get("OnSuccess", {}).get("Destination"),
                )
        for rule, targets in plan.schedule_targets.items():
            props = resources[rule]["Properties"]
            self.schedules[rule] = Schedule(
                rule=rule,
                arn=deploy.rule_arn(rule, outputs, plan),
                expression=str(props["ScheduleExpression"]),
                targets=[self._schedule_target(t) for t in deploy.resolve(targets, outputs, plan)],
                created=self.clock.now(),
                enabled=str(props.get("State", "ENABLED")) == "ENABLED",
            )
        for rule, targets in plan.function_targets.items():
            self._add_async_targets(rule, deploy.rule_arn(rule, outputs, plan), deploy.resolve(targets, outputs, plan))
        self.log(
            f"deployed {self.stack_name}: {len(self.runtime.functions)} functions, {len(self.stream_mappings)} stream "
            f"and {len(self.sqs_mappings)} SQS mappings, {len(self.schedules)} schedules, {len(self.routes)} routes"
        )

    def _functions(self, translated: Translated) -> dict[str, Function]:
        resources = translated.template["Resources"]
        functions = {}
        for logical_id, resource in resources.items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            props = resource["Properties"]
            key = props.get("Code", {}).get("S3Key")
            if key not in translated.code_dirs:
                continue  # inline or remote code: nothing to run locally
            name = self.deployment.physical[logical_id]
            config = self.clients.lambda_.get_function_configuration(FunctionName=name)
            layer_dirs = []
            for layer in props.get("Layers", []):
                layer_id = layer.get("Ref") if isinstance(layer, dict) else None
                layer_key = resources.get(layer_id, {}).get("Properties", {}).get("Content", {}).get("S3Key")
                if layer_key in translated.code_dirs:
                    layer_dirs.append(translated.code_dirs[layer_key] / "python")
            functions[logical_id] = Function(
                logical_id=logical_id,
                name=name,
                arn=config["FunctionArn"],
                code_dir=translated.code_dirs[key],
                handler=str(props["Handler"]),
                timeout=int(config.get("Timeout", props.get("Timeout", 3))),
                memory=int(config.get("MemorySize", props.get("MemorySize", 128))),
                # Lambda's environment is strings; moto keeps a Number parameter's Ref as the int it resolved.
                environment={k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()},
                layer_dirs=tuple(layer_dirs),
            )
        return functions

    def _base_environment(self) -> dict[str, str]:
        env = {
            "AWS_REGION": deploy.REGION,
            "AWS_DEFAULT_REGION": deploy.REGION,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }
        if self.endpoint:
            env["AWS_ENDPOINT_URL"] = self.endpoint
        return env

    def _add_mapping(self, logical_id: str, props: dict[str, Any]) -> None:
        function = self.runtime.by_arn(str(props["FunctionName"])).logical_id
        source = str(props["EventSourceArn"])
        if source.startswith("arn:aws:dynamodb:") and "/stream/" in source:
            config = StreamMappingConfig.from_properties(logical_id, function, props)
            self.stream_mappings[logical_id] = StreamMapping(config, self.clients, self.runtime, self.clock)
        elif source.startswith("arn:aws:sqs:"):
            sqs_config = SqsMappingConfig.from_properties(logical_id, function, props)
            mapping = SqsMapping(sqs_config, self.clients, self.runtime, self.clock)
            timeout = self.runtime.functions[function].timeout
            if timeout > mapping.visibility_timeout():
                # Lambda refuses such a mapping (CreateEventSourceMapping validates it); so does localcloud.
                raise DeployError(
                    f"{logical_id}: {function} Timeout {timeout}s exceeds the queue's visibility timeout "
                    f"{mapping.visibility_timeout()}s"
                )
            self.sqs_mappings[logical_id] = mapping
        else:
            raise NotImplementedError(f"{logical_id}: localcloud emulates DynamoDB stream and SQS mappings only")

    def _state_machine_arn(self, logical_id: str, properties: dict[str, Any]) -> str:
        name = properties.get("StateMachineName", properties.get("Name", f"{self.stack_name}-{logical_id}"))
        if isinstance(name, dict) and set(name) == {"Fn::Sub"}:
            name = str(name["Fn::Sub"]).replace("${AWS::StackName}", self.stack_name)
        if not isinstance(name, str) or "${" in name:
            raise DeployError(f"{logical_id}: localcloud resolves a state machine name with ${{AWS::StackName}} only")
        return f"arn:aws:states:{deploy.REGION}:{deploy.ACCOUNT_ID}:stateMachine:{name}"

    def _schedule_target(self, target: dict[str, Any]) -> ScheduleTarget:
        if "InputPath" in target or "InputTransformer" in target:
            raise NotImplementedError("localcloud supports a schedule target's Input, not InputPath/InputTransformer")
        arn = str(target["Arn"])
        if ":states:" in arn:
            logical_id = next(k for k, v in self.deployment.physical.items() if v == arn)
            return ScheduleTarget(
                logical_id, str(target.get("Id", logical_id)), target.get("Input"), state_machine=True
            )
        function = self.runtime.by_arn(str(target["Arn"])).logical_id
        return ScheduleTarget(function=function, target_id=str(target.get("Id", function)), input=target.get("Input"))

    def _add_async_targets(self, rule: str, rule_arn: str, targets: list[dict[str, Any]]) -> None:
        path = rule_arn.split(":rule/", 1)[1].split("/")
        bus, name = (path[0], path[1]) if len(path) == 2 else ("default", path[0])
        for target in targets:
            function = self.runtime.by_arn(str(target["Arn"])).logical_id
            url = self.clients.sqs.create_queue(QueueName=f"localcloud-{rule}-{target.get('Id', function)}"[:80])[
                "QueueUrl"
            ]
            arn = self.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            self.clients.events.put_targets(
                Rule=name, EventBusName=bus, Targets=[{"Id": f"localcloud-{target.get('Id', function)}", "Arn": arn}]
            )
            self.async_targets.append(AsyncTarget(rule, function, url, target.get("Input")))

    @property
    def ledger(self) -> Ledger:
        """What happened to every event put on the bus by a function (localcloud/ledger.py)."""
        return self.runtime.ledger

    # ------------------------------------------------------------------------------------------------ lookups
    def physical(self, logical_id: str) -> str:
        return self.deployment.physical[logical_id]

    def queue_url(self, logical_id: str) -> str:
        return self.physical(logical_id)

    def table_name(self, logical_id: str) -> str:
        return self.physical(logical_id)

    def bus_name(self, logical_id: str = "Bus") -> str:
        return self.physical(logical_id)

    def queue_depth(self, logical_id: str) -> int:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=self.queue_url(logical_id),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def queues_of_type(self) -> list[str]:
        return [k for k, v in self.deployment.types.items() if v == "AWS::SQS::Queue"]

    def function(self, logical_id: str) -> Function:
        """The deployed function `logical_id`: its name, ARN, handler, timeout and environment as they are now."""
        return self.runtime.functions[logical_id]

    def alarms(self, *logical_ids: str) -> list[dict[str, Any]]:
        """The CloudWatch alarms of the template's `logical_ids`, as DescribeAlarms returns them (MetricAlarms)."""
        names = [self.physical(logical_id) for logical_id in logical_ids]
        return list(self.clients.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"])

    def set_environment(self, logical_id: str, **variables: str) -> None:
        """Change a function's environment, as `aws lambda update-function-configuration` does (the next
        invocations see it)."""
        function = self.runtime.functions[logical_id]
        self.runtime.functions[logical_id] = dataclasses.replace(
            function, environment={**function.environment, **variables}
        )

    # ------------------------------------------------------------------------------------------------ tables
    # By the table's logical id; keys and items in DynamoDB JSON ({"pk": {"S": "..."}}), as DynamoDB's API has them.
    def get_item(self, table: str, key: dict[str, Any], *, consistent: bool = False) -> dict[str, Any] | None:
        """The item of `table` at `key`, or None; `consistent`: a strongly consistent read."""
        found = self.clients.dynamodb.get_item(TableName=self.table_name(table), Key=key, ConsistentRead=consistent)
        return dict(found["Item"]) if "Item" in found else None

    def put_item(self, table: str, item: dict[str, Any]) -> None:
        """Write `item` straight into `table`, bypassing every service (as a restore, a bug or a person would)."""
        self.clients.dynamodb.put_item(TableName=self.table_name(table), Item=item)

    def delete_item(self, table: str, key: dict[str, Any]) -> None:
        """Delete the item of `table` at `key`, behind every service's back."""
        self.clients.dynamodb.delete_item(TableName=self.table_name(table), Key=key)

    def scan_items(self, table: str) -> list[dict[str, Any]]:
        """Every item of `table` (a Scan, all its pages), in the order DynamoDB returns them."""
        pages = self.clients.dynamodb.get_paginator("scan").paginate(TableName=self.table_name(table))
        return [item for page in pages for item in page["Items"]]

    def query_items(self, table: str, key_condition: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        """The items of `table` a Query finds (all its pages): `key_condition` with its `values`."""
        pages = self.clients.dynamodb.get_paginator("query").paginate(
            TableName=self.table_name(table), KeyConditionExpression=key_condition, ExpressionAttributeValues=values
        )
        return [item for page in pages for item in page["Items"]]

    # ------------------------------------------------------------------------------------------------ checking
    # The independent checker (localcloud/convergence.py) on this cloud's tables: plain values, by (pk, sk).
    def table_items(self, table: str) -> convergence.Items:
        """Every item of `table` as the checker reads it (consistent, plain values), by (pk, sk)."""
        return convergence.scan(self.clients.dynamodb, self.table_name(table))

    def service_items(self) -> dict[str, convergence.Items]:
        """Every service's table as the checker reads it, by service name (orders, inventory, notifications, ...)."""
        tables = convergence.service_tables(self)
        return {service: convergence.scan(self.clients.dynamodb, table) for service, table in tables.items()}

    def check_convergence(self, state_table: str | None = None) -> convergence.Divergence:
        """Every projection compared with its source of truth, now; with the reconciler's `state_table` (logical
        id), the orders it parked for a person count as parked, not divergent."""
        state = self.table_name(state_table) if state_table is not None else None
        return convergence.check(self.clients.dynamodb, convergence.service_tables(self), state)

    # ------------------------------------------------------------------------------------------------ queues, bus
    def send_message(self, queue: str, body: str) -> str:
        """SendMessage of `body` to `queue` (logical id), as a producer or a rule's delivery would; its message id."""
        sent = self.clients.sqs.send_message(QueueUrl=self.queue_url(queue), MessageBody=body)
        return str(sent["MessageId"])

    def receive_messages(self, queue: str, max_messages: int = 10) -> list[dict[str, Any]]:
        """One ReceiveMessage of `queue`: its messages (Body, ReceiptHandle, ...), in flight until deleted."""
        received = self.clients.sqs.receive_message(QueueUrl=self.queue_url(queue), MaxNumberOfMessages=max_messages)
        return list(received.get("Messages", []))

    def delete_message(self, queue: str, receipt_handle: str) -> None:
        """DeleteMessage: the message of `queue` received with `receipt_handle` is done."""
        self.clients.sqs.delete_message(QueueUrl=self.queue_url(queue), ReceiptHandle=receipt_handle)

    def put_events(self, *entries: dict[str, Any]) -> dict[str, Any]:
        """PutEvents of `entries` (each names its EventBusName), as a producer puts them; the response
        (FailedEntryCount, Entries)."""
        return dict(self.clients.events.put_events(Entries=list(entries)))

    def rules(self, bus: str = "Bus") -> list[dict[str, Any]]:
        """The rules of the bus `bus` (logical id), as ListRules returns them."""
        return list(self.clients.events.list_rules(EventBusName=self.bus_name(bus))["Rules"])

    # ------------------------------------------------------------------------------------------------ invoking
    def invoke(self, logical_id: str, event: Any) -> Invocation:
        """A synchronous (RequestResponse) invocation."""
        return self.runtime.invoke(logical_id, event)

    def invoke_async(self, logical_id: str, event: Any) -> Invocation:
        """An asynchronous (Event) invocation: retried on function error, then sent to its OnFailure destination."""
        config = self.async_configs.get(logical_id, AsyncConfig())
        attempts = 0
        while True:
            invocation = self.runtime.invoke(logical_id, event, source="async")
            attempts += 1
            if invocation.ok or attempts > config.maximum_retry_attempts:
                break
        destination = config.on_success if invocation.ok else config.on_failure
        if destination:
            function = self.runtime.functions[logical_id]
            record = {
                "version": "1.0",
                "timestamp": iso(self.clock.now(), millis=True),
                "requestContext": {
                    "requestId": invocation.request_id,
                    "functionArn": f"{function.arn}:$LATEST",
                    "condition": "Success" if invocation.ok else "RetriesExhausted",
                    "approximateInvokeCount": attempts,
                },
                "requestPayload": event,
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"}
                | ({} if invocation.ok else {"functionError": "Unhandled"}),
                "responsePayload": invocation.response if invocation.ok else invocation.error.payload(),  # type: ignore[union-attr]
            }
            destinations.send(self.clients, destination, record)
        return invocation

    def http(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw_query: str = "",
        token: str | None = None,
    ) -> HttpResponse:
        """Send a request through the HTTP API's routes (as API Gateway would) and return the HTTP response.

        `token` is sent as `authorization: Bearer <token>`. A route under a JWT authorizer refuses a request without
        a valid one with a 401 `{"message":"Unauthorized"}` and does not invoke its function.
        """
        found = find_route(self.routes, method, path)
        if found is None:
            return not_found(method, path)
        route, params = found
        headers = {**(headers or {}), **({"authorization": f"Bearer {token}"} if token is not None else {})}
        authorizer: dict[str, Any] | None = None
        route_auth = self.route_auth.get(route.route_key)
        if route_auth is not None:
            try:
                authorizer = auth.authorize(route_auth, headers)
            except auth.Unauthorized as refused:
                self.log(f"{route.route_key}: 401 Unauthorized ({refused.reason})")
                return HttpResponse(401, dict(JSON_TYPE), json.dumps(auth.UNAUTHORIZED).encode())
        if body is None or isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = json.dumps(body).encode()
        # Bytes are sent as they came (the HTTP server's requests: API Gateway adds no content-type of its own);
        # a body this method encoded, or a str, says it is JSON, unless the caller named a content-type in any case.
        all_headers = dict(headers)
        if raw and not isinstance(body, bytes) and not any(name.lower() == "content-type" for name in headers):
            all_headers["content-type"] = "application/json"
        event = v2_event(route, params, method, path, raw_query, all_headers, raw, self.api_id)
        if authorizer is not None:
            event["requestContext"]["authorizer"] = authorizer
        invocation = self.runtime.invoke(route.function, event)
        return to_http_response(invocation.response, invocation.error is not None)

    # ------------------------------------------------------------------------------------------------ observing
    def invocations(self, function: str | None = None, *, since: int = 0) -> list[Invocation]:
        """The invocations the runtime kept, in order: of `function` only, if given; from position `since` of the
        whole history on (a `len(cloud.invocations())` taken earlier: what ran since then)."""
        return [i for i in self.runtime.history[since:] if function is None or i.function == function]

    def invocation_count(self, function: str) -> int:
        """How many times `function` was invoked (counted whether or not the history is kept)."""
        return self.runtime.invocations[function]

    def metric(self, name: str) -> float:
        """The sum of the values the functions emitted for the EMF metric `name` (0 if none did)."""
        return self.runtime.metrics.get(name, 0.0)

    @contextmanager
    def listening(self, listener: Callable[[Invocation], None]) -> Iterator[None]:
        """`listener` is called with every invocation that ends while the block runs, before its caller sees it
        (what the listener changes in it, the caller gets)."""
        self.runtime.listeners.append(listener)
        try:
            yield
        finally:
            self.runtime.listeners.remove(listener)

    def token(self, subject: str, *, admin: bool = False, **claims: Any) -> str:
        """A token from localcloud's issuer for `subject` (an admin's with `admin`); keyword arguments go to
        localcloud.auth.issue (expires_in, audience, issuer, extra_claims)."""
        return auth.issue(subject, admin=admin, **claims)

    # ------------------------------------------------------------------------------------------------ pumping
    def _drain_async_targets(self) -> int:
        moved = 0
        for target in self.async_targets:
            messages = self.clients.sqs.receive_message(QueueUrl=target.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            for message in messages:
                event = json.loads(target.input) if target.input is not None else json.loads(message["Body"])
                self.invoke_async(target.function, event)
                self.clients.sqs.delete_message(QueueUrl=target.queue_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
        return moved

    def pump(self) -> int:
        """One poll of every mapping (one batch per shard or queue); how many of them moved something."""
        # The runtime's lock too: moto's in-process backends are not built for concurrent calls, and `serve`
        # answers HTTP requests from other threads while this pumps.
        with self.pump_lock, self.runtime.lock:
            moved = 0
            for stream in self.stream_mappings.values():
                moved += stream.step()
            for queue in self.sqs_mappings.values():
                moved += queue.step()
            moved += self._drain_async_targets()
            if self._mock is not None:
                self.archive.record()
                moved += self.archive.step()
            return moved

    def run_until_quiet(self, max_rounds: int = 100_000) -> PumpReport:
        """Pump until a whole round moves nothing (failed SQS messages wait for their visibility timeout) and no
        state machine execution runs (one that a function started, e.g. a sweep, is waited for, then pumped after)."""
        report = PumpReport()
        started = time.monotonic()
        while report.rounds < max_rounds:
            moved = self.pump()
            report.rounds += 1
            report.moved += moved
            if not moved:
                running = self.running_executions() if self.executes_state_machines else []
                if not running:
                    break
                for arn in running:
                    assert self.state_machines is not None
                    self.executions.append(self.state_machines.wait(arn))
        report.seconds = time.monotonic() - started
        return report

    @property
    def executes_state_machines(self) -> bool:
        """Whether executions run here: on moto's interpreter in this process (mock_aws or the "server" thread)."""
        return self._execute_state_machines and (self._mock is not None or self._server is not None)

    def running_executions(self, logical_id: str | None = None) -> list[str]:
        """The ARNs of the executions still running, of the state machine `logical_id`, or of every one of the
        stack."""
        if self.state_machines is None:
            return []
        arns = [self.physical(logical_id)] if logical_id is not None else list(self.state_machines.arns.values())
        running = []
        for arn in arns:
            listed = self.clients.stepfunctions.list_executions(stateMachineArn=arn, statusFilter="RUNNING")
            running += [e["executionArn"] for e in listed.get("executions", [])]
        return running

    def describe_execution(self, execution_arn: str) -> dict[str, Any]:
        """A state machine execution as DescribeExecution returns it (status, stateMachineArn, input, output...)."""
        return dict(self.clients.stepfunctions.describe_execution(executionArn=execution_arn))

    def stop_execution(self, execution_arn: str) -> None:
        """StopExecution, as an operator stops one: the execution ends ABORTED."""
        self.clients.stepfunctions.stop_execution(executionArn=execution_arn)

    def advance(self, seconds: float) -> list[Invocation]:
        """Move localcloud's clock: fire the schedules that came due and release SQS messages whose visibility
        timeout passed. Returns the scheduled invocations."""
        self.clock.advance(seconds)
        return self.tick()

    def tick(self) -> list[Invocation]:
        """Fire what is due on localcloud's clock (`serve` calls this with wall time passing)."""
        with self.pump_lock, self.runtime.lock:
            fired: list[tuple[float, Schedule]] = []
            for schedule in self.schedules.values():
                fired.extend((moment, schedule) for moment in schedule.due(self.clock.now()))
            invocations = []
            executions: list[tuple[str, Any]] = []
            for moment, schedule in sorted(fired, key=lambda pair: pair[0]):
                for target in schedule.targets:
                    event = schedule.event(moment, target, deploy.ACCOUNT_ID, deploy.REGION)
                    self.log(f"schedule {schedule.rule} fired {target.function}")
                    if target.state_machine:
                        # EventBridge starts an execution with the target's Input (or the event) as its input.
                        executions.append((target.function, json.loads(target.input) if target.input else event))
                    else:
                        invocations.append(self.invoke_async(target.function, event))
            for queue in self.sqs_mappings.values():
                queue.release_due()
        # Outside the locks: the execution's tasks invoke functions from the interpreter's threads.
        for state_machine, payload in executions:
            if self.executes_state_machines:
                self.run_state_machine(state_machine, payload)
            elif self.state_machines is not None:
                self.state_machines.start(state_machine, payload)
        return invocations

    def run_state_machine(self, logical_id: str, payload: Any = None) -> Execution:
        """Start an execution of a template's state machine and wait for its end (localcloud.stepfunctions)."""
        if self.state_machines is None:
            raise DeployError("not deployed")
        if not self.executes_state_machines:
            raise DeployError("this LocalCloud runs no state machine (execute_state_machines, or a moto server's)")
        execution = self.state_machines.run(logical_id, payload if payload is not None else {})
        self.log(f"state machine {logical_id}: {execution.status}")
        self.executions.append(execution)
        return execution

    def sweep(self, **request: Any) -> dict[str, Any]:
        """The reconciler's full sweep, as its schedule or an operator starts it; returns the sweep's report.

        `request`: the execution input (`reason`, or `projection` for a backfill). Raises if the execution failed.
        """
        execution = self.run_state_machine("ReconcilerSweepStateMachine", {"reason": "localcloud", **request})
        if not execution.ok:
            raise RuntimeError(f"sweep {execution.status}: {execution.error}: {execution.cause}")
        return dict(execution.output)

    def sqs_event_from_queue(self, logical_id: str, max_messages: int = 10) -> dict[str, Any]:
        """Receive messages of a queue as the Lambda SQS event (for inspection/tests); they stay in flight."""
        url = self.queue_url(logical_id)
        arn = self.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        messages = self.clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=max_messages, AttributeNames=["All"]
        ).get("Messages", [])
        return {"Records": [lambda_record(m, arn) for m in messages]}


def _reset_layer_clients() -> None:
    """The layer caches its boto3 clients; a new backend or endpoint needs new ones."""
    aws_module = sys.modules.get("converge.aws")
    if aws_module is not None:
        aws_module.reset_clients()

"""Where the end-to-end scenarios run, chosen by environment:

- default: localcloud (the template deployed in-process on moto, pipeline pumped between checks);
- `CONVERGE_E2E_TARGET=localstack`: a stack deployed to LocalStack (`LOCALSTACK_ENDPOINT`, default
  http://127.0.0.1:4566; stack `converge-local` or `AWS_SAM_STACK_NAME`; `make test-localstack`). LocalStack's
  community build has no API Gateway v2 (the HttpApi deploys as a placeholder), so a request becomes the payload 2.0
  event API Gateway would send, routed by the template's HttpApi events, and goes to the function by lambda.invoke;
- `AWS_SAM_STACK_NAME=<stack>` (or `CONVERGE_E2E_TARGET=aws`): a deployed AWS stack; names come from its outputs.

Scenarios about the reconciler also start the stack's state machines (`run_state_machine`, waited for) and read or
write a table item directly (`get_item`, `put_item`: drift as a bug or a person would leave it); on LocalStack and
AWS through the stack's resources by logical id, on localcloud through its moto clients and interpreter.

Every request is made as a principal (a customer, an admin, or nobody), as each target authenticates:
- localcloud: a token from localcloud's issuer (`cloud.token`), verified by its JWT authorizer emulation;
- LocalStack: no token (its community build runs no JWT authorizer); the event carries the claims in
  `requestContext.authorizer.jwt` as API Gateway's authorizer renders them (strings; a list as "[admin]");
- AWS: `authorization: Bearer` with tokens from the stack's user pool (or the JwtIssuer it was deployed with), in
  CONVERGE_E2E_CUSTOMER_TOKEN, CONVERGE_E2E_OTHER_CUSTOMER_TOKEN (a second customer) and CONVERGE_E2E_ADMIN_TOKEN
  (a member of the admin group); docs/deploy.md says how to get them. A customer there is the token's `sub`.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from localcloud.stepfunctions import Execution

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


@dataclass(frozen=True)
class Principal:
    """Who a request is made as: a customer (`subject` is the customer id) or an admin."""

    subject: str
    admin: bool = False
    token: str | None = None  # a deployed stack's: a token its issuer signed for this subject


@dataclass(frozen=True)
class Principals:
    customer: Principal
    other_customer: Principal
    admin: Principal


class Target(Protocol):
    name: str
    timeout: float

    def principals(self, unique: str) -> Principals:
        """A scenario's customer, a second customer and an admin (`unique` keeps them apart where ids are free)."""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        caller: Principal | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """`caller` None: a request with no token at all."""

    def settle(self) -> None:
        """Let the pipeline move (localcloud pumps; a real stack moves by itself)."""

    def run_state_machine(self, logical_id: str, payload: Any) -> Execution:
        """One execution of the stack's state machine `logical_id` with `payload` as its input, waited for."""

    def running_executions(self, logical_id: str) -> list[str]:
        """The ARNs of the executions of state machine `logical_id` that are running now."""

    def get_item(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """An item of the stack's table `table` (logical id), read straight from it."""

    def put_item(self, table: str, item: dict[str, Any]) -> None:
        """Write an item straight into the stack's table `table`, bypassing every service (as a bug or a person)."""


class LocalcloudTarget:
    name = "localcloud"
    timeout = 30.0

    def __init__(self) -> None:
        from localcloud.cloud import LocalCloud

        self.cloud = LocalCloud().start()

    def principals(self, unique: str) -> Principals:
        return _named_principals(unique)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        caller: Principal | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        token = self.cloud.token(caller.subject, admin=caller.admin) if caller is not None else None
        response = self.cloud.http(method, path, body=body, headers=headers, token=token)
        return Reply(response.status, response.json())

    def settle(self) -> None:
        self.cloud.run_until_quiet()

    def run_state_machine(self, logical_id: str, payload: Any) -> Execution:
        return self.cloud.run_state_machine(logical_id, payload)

    def running_executions(self, logical_id: str) -> list[str]:
        return self.cloud.running_executions(logical_id)

    def get_item(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return _plain(self.cloud.get_item(table, _typed(key), consistent=True))

    def put_item(self, table: str, item: dict[str, Any]) -> None:
        self.cloud.put_item(table, _typed(item))

    def close(self) -> None:
        self.cloud.stop()


class StackReached:
    """A target deployed as a stack: its state machines and tables reached through the stack's clients."""

    stack: DeployedStack

    def run_state_machine(self, logical_id: str, payload: Any) -> Execution:
        return self.stack.run_state_machine(logical_id, payload)

    def running_executions(self, logical_id: str) -> list[str]:
        return _running(self.stack.stepfunctions, self.stack.physical[logical_id])

    def get_item(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return _get_item(self.stack.dynamodb, self.stack.physical[table], key)

    def put_item(self, table: str, item: dict[str, Any]) -> None:
        _put_item(self.stack.dynamodb, self.stack.physical[table], item)


class HttpTarget(StackReached):
    """A deployed stack reached over HTTP (AWS, or LocalStack's gateway)."""

    timeout = 120.0

    def __init__(self, name: str, base_url: str, tokens: Principals, stack: DeployedStack) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.stack = stack

    def principals(self, unique: str) -> Principals:
        return self.tokens  # the issuer's users are fixed: scenarios keep apart by their products and orders

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        caller: Principal | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        data = json.dumps(body).encode() if body is not None else None
        sent = {"content-type": "application/json", **(headers or {})}
        if caller is not None:
            sent["authorization"] = f"Bearer {caller.token}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as error:
            return Reply(error.code, json.loads(error.read() or b"null"))

    def settle(self) -> None:
        time.sleep(1.0)

    def close(self) -> None:
        pass


class LocalstackTarget(StackReached):
    """The stack deployed to LocalStack, its HTTP API played by invoking the API functions directly.

    The routing, the event and the reading of the response are localcloud's (the same rules as API Gateway HTTP
    APIs); the functions are the deployed ones, found by their logical ids in the stack's resources.
    """

    name = "localstack"
    # Each hop (stream, bus, queue) is polled; a first call of a function is a cold start of a host process.
    timeout = 120.0

    def __init__(self, endpoint: str, stack_name: str) -> None:
        import localstack_client.session
        from botocore.config import Config

        from localcloud.httpapi import routes_from_template
        from localcloud.template import load_template

        session = localstack_client.session.Session(localstack_host=urlsplit(endpoint).netloc)
        self.stack = DeployedStack(stack_name, session.client)
        stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
        # The issuer and audience the stack was deployed for (samconfig.toml's localstack overrides), as the claims
        # of a token it accepts would carry them.
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        self.issuer, self.audience = parameters.get("JwtIssuer", ""), parameters.get("JwtAudience", "")
        self.functions = self.stack.of_type("AWS::Lambda::Function")
        self.routes = routes_from_template(load_template())
        # No retries: a retried invocation of POST /orders would place a second order.
        self.lambda_ = session.client("lambda", config=Config(read_timeout=90, retries={"total_max_attempts": 1}))

    def principals(self, unique: str) -> Principals:
        return _named_principals(unique)

    def authorizer(self, caller: Principal) -> dict[str, Any]:
        """`requestContext.authorizer` as the stack's JWT authorizer would pass it on for `caller`."""
        from tests.support.events import jwt_authorizer_context

        jwt = jwt_authorizer_context(caller.subject, admin=caller.admin)
        jwt["claims"].update({k: v for k, v in (("iss", self.issuer), ("aud", self.audience)) if v})
        return {"jwt": jwt}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        caller: Principal | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        from localcloud.httpapi import find_route, not_found, to_http_response, v2_event

        found = find_route(self.routes, method, path)
        if found is None:
            response = not_found()
        else:
            route, params = found
            data = json.dumps(body).encode() if body is not None else None
            all_headers = {"content-type": "application/json", **(headers or {})} if data else dict(headers or {})
            event = v2_event(route, params, method, path, "", all_headers, data, api_id="localstack")
            if caller is not None:
                event["requestContext"]["authorizer"] = self.authorizer(caller)
            result = self.lambda_.invoke(
                FunctionName=self.functions[route.function],
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
            response = to_http_response(json.loads(result["Payload"].read() or b"null"), "FunctionError" in result)
        return Reply(response.status, response.json())

    def settle(self) -> None:
        time.sleep(1.0)

    def close(self) -> None:
        pass


class DeployedStack:
    """A deployed stack's resources by logical id, reached with `client` (a boto3 or localstack-client factory)."""

    # A full sweep is many invocations (a start, a worker per segment and table, a finish), not one request.
    execution_timeout = 600.0

    def __init__(self, stack_name: str, client: Callable[..., Any]) -> None:
        pages = client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack_name)
        resources = [r for page in pages for r in page["StackResourceSummaries"]]
        self.physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
        self.types = {r["LogicalResourceId"]: r["ResourceType"] for r in resources}
        self.stepfunctions = client("stepfunctions")
        self.dynamodb = client("dynamodb")

    def of_type(self, resource_type: str) -> dict[str, str]:
        return {logical: self.physical[logical] for logical, kind in self.types.items() if kind == resource_type}

    def run_state_machine(self, logical_id: str, payload: Any) -> Execution:
        """Start an execution (named afresh, as EventBridge names them) and poll it until it ends."""
        from localcloud.stepfunctions import Execution

        started = time.monotonic()
        arn = self.stepfunctions.start_execution(
            stateMachineArn=self.physical[logical_id], name=f"e2e-{uuid.uuid4().hex}", input=json.dumps(payload)
        )["executionArn"]
        while (described := self.stepfunctions.describe_execution(executionArn=arn))["status"] == "RUNNING":
            if time.monotonic() - started > self.execution_timeout:
                raise AssertionError(f"{arn} still RUNNING after {self.execution_timeout:.0f} s")
            time.sleep(1.0)
        output = json.loads(described["output"]) if described.get("output") else None
        return Execution(arn, described["status"], output, described.get("error"), described.get("cause"))


def _running(stepfunctions: Any, state_machine_arn: str) -> list[str]:
    pages = stepfunctions.get_paginator("list_executions").paginate(
        stateMachineArn=state_machine_arn, statusFilter="RUNNING"
    )
    return [e["executionArn"] for page in pages for e in page["executions"]]


def _get_item(dynamodb: Any, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
    return _plain(dynamodb.get_item(TableName=table_name, Key=_typed(key), ConsistentRead=True).get("Item"))


def _put_item(dynamodb: Any, table_name: str, item: dict[str, Any]) -> None:
    dynamodb.put_item(TableName=table_name, Item=_typed(item))


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values as DynamoDB JSON (boto3's TypeSerializer)."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in values.items()}


def _plain(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """A DynamoDB JSON item as plain values (boto3's TypeDeserializer: numbers are Decimals); None stays None."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()} if item else None


def _named_principals(unique: str) -> Principals:
    return Principals(
        customer=Principal(f"cust-{unique}"),
        other_customer=Principal(f"other-{unique}"),
        admin=Principal(f"admin-{unique}", admin=True),
    )


def _subject_of(token: str) -> str:
    """A JWT's `sub`, read without verifying it (the API's authorizer verifies; this only names the customer)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


def _tokens_from_environment() -> Principals:
    def principal(variable: str, *, admin: bool = False) -> Principal:
        token = os.environ.get(variable)
        if not token:
            raise RuntimeError(f"the AWS e2e target needs {variable} (a token from the stack's issuer, docs/deploy.md)")
        return Principal(_subject_of(token), admin=admin, token=token)

    return Principals(
        customer=principal("CONVERGE_E2E_CUSTOMER_TOKEN"),
        other_customer=principal("CONVERGE_E2E_OTHER_CUSTOMER_TOKEN"),
        admin=principal("CONVERGE_E2E_ADMIN_TOKEN", admin=True),
    )


def _stack_outputs(stack_name: str, **client_kwargs: Any) -> dict[str, str]:
    import boto3

    stack = boto3.client("cloudformation", **client_kwargs).describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def open_target() -> LocalcloudTarget | HttpTarget | LocalstackTarget:
    kind = os.environ.get("CONVERGE_E2E_TARGET") or ("aws" if os.environ.get("AWS_SAM_STACK_NAME") else "localcloud")
    if kind == "localcloud":
        return LocalcloudTarget()
    if kind == "aws":
        import boto3

        stack_name = os.environ["AWS_SAM_STACK_NAME"]
        outputs = _stack_outputs(stack_name)
        return HttpTarget("aws", outputs["ApiUrl"], _tokens_from_environment(), DeployedStack(stack_name, boto3.client))
    if kind == "localstack":
        return LocalstackTarget(
            os.environ.get("LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566"),
            os.environ.get("AWS_SAM_STACK_NAME", "converge-local"),
        )
    raise ValueError(f"unknown CONVERGE_E2E_TARGET {kind!r}")


def eventually(target: Target, check: Callable[[], T | None], what: str) -> T:
    """Settle and re-check until `check` returns something truthy, or fail after the target's timeout."""
    deadline = time.monotonic() + target.timeout
    while True:
        target.settle()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{target.name}: not within {target.timeout:.0f}s: {what}")

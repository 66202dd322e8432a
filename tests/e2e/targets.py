"""Where the end-to-end scenarios run, chosen by environment:

- default: localcloud (the template deployed in-process on moto, pipeline pumped between checks);
- `CONVERGE_E2E_TARGET=localstack`: a stack deployed to LocalStack (`LOCALSTACK_ENDPOINT`, default
  http://127.0.0.1:4566; stack `converge-local` or `AWS_SAM_STACK_NAME`; `make test-localstack`). LocalStack's
  community build has no API Gateway v2 (the HttpApi deploys as a placeholder), so a request becomes the payload 2.0
  event API Gateway would send, routed by the template's HttpApi events, and goes to the function by lambda.invoke;
- `AWS_SAM_STACK_NAME=<stack>` (or `CONVERGE_E2E_TARGET=aws`): a deployed AWS stack; names come from its outputs.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


class Target(Protocol):
    name: str
    timeout: float

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply: ...

    def settle(self) -> None:
        """Let the pipeline move (localcloud pumps; a real stack moves by itself)."""


class LocalcloudTarget:
    name = "localcloud"
    timeout = 30.0

    def __init__(self) -> None:
        from localcloud.cloud import LocalCloud

        self.cloud = LocalCloud().start()

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        response = self.cloud.http(method, path, body=body, headers=headers)
        return Reply(response.status, response.json())

    def settle(self) -> None:
        self.cloud.run_until_quiet()

    def close(self) -> None:
        self.cloud.stop()


class HttpTarget:
    """A deployed stack reached over HTTP (AWS, or LocalStack's gateway)."""

    timeout = 120.0

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as error:
            return Reply(error.code, json.loads(error.read() or b"null"))

    def settle(self) -> None:
        time.sleep(1.0)

    def close(self) -> None:
        pass


class LocalstackTarget:
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
        resources = session.client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
        self.functions = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in resources
            if r["ResourceType"] == "AWS::Lambda::Function"
        }
        self.routes = routes_from_template(load_template())
        # No retries: a retried invocation of POST /orders would place a second order.
        self.lambda_ = session.client("lambda", config=Config(read_timeout=90, retries={"total_max_attempts": 1}))

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        from localcloud.httpapi import find_route, not_found, to_http_response, v2_event

        found = find_route(self.routes, method, path)
        if found is None:
            response = not_found()
        else:
            route, params = found
            data = json.dumps(body).encode() if body is not None else None
            all_headers = {"content-type": "application/json", **(headers or {})} if data else dict(headers or {})
            event = v2_event(route, params, method, path, "", all_headers, data, api_id="localstack")
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


def _stack_outputs(stack_name: str, **client_kwargs: Any) -> dict[str, str]:
    import boto3

    stack = boto3.client("cloudformation", **client_kwargs).describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def open_target() -> LocalcloudTarget | HttpTarget | LocalstackTarget:
    kind = os.environ.get("CONVERGE_E2E_TARGET") or ("aws" if os.environ.get("AWS_SAM_STACK_NAME") else "localcloud")
    if kind == "localcloud":
        return LocalcloudTarget()
    if kind == "aws":
        outputs = _stack_outputs(os.environ["AWS_SAM_STACK_NAME"])
        return HttpTarget("aws", outputs["ApiUrl"])
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

"""`make sam-local`'s driver: the functions run by the real `sam local` in Docker, against a moto server.

ops/samlocal/run.sh starts the engine, ensures the base image and runs `sam build`; then this:

1. starts a moto server on the Docker bridge's address (containers reach it there; nothing listens on 0.0.0.0) and
   deploys template.yaml into it with localcloud (`LocalCloud(endpoint=...)`);
2. writes the --env-vars file from that deployment (ops/samlocal/env_vars.py, which works on any stack): each
   function's environment as the stack resolved it (table, queue and bus names) and AWS_ENDPOINT_URL, which the
   template ops/samlocal/local_template.py writes declares (sam local drops undeclared variables);
3. runs every events/*.json through `sam local invoke`, in the order tests/localcloud/test_event_fixtures.py uses
   (writes before the reads that need them: the fixtures seed each other), and asserts each response against the
   fixture's expectation and against the same fixture run in-process by localcloud (the reference): status code and
   body of API fixtures, batchItemFailures of consumers and publishers, the pass report of the reconciler;
4. starts `sam local start-api` and `sam local start-lambda`. start-api does not run the HTTP API's JWT authorizer
   (SAM CLI 1.170 emulates Lambda authorizers only, and logs "Authorizer 'JwtAuthorizer' for route '...' was not
   found, skipping" for every route) and passes no claims: every request, with a valid bearer token or none,
   reaches the function, which answers 401 in the project's error shape; both are asserted. The story (stock, an
   order, reads, a dispatch) is then driven through `sam local invoke` with events made from the route's fixture in
   events/, which carries the claims API Gateway's authorizer would pass on (a customer's, or an admin's for stock
   and dispatch). Between its steps localcloud's event source mappings (stream -> publisher, inbox -> consumer) run
   against the same moto server with every function invoked through start-lambda, i.e. in its container: the order
   CONFIRMED, availability and the product's reservation updated, then SHIPPED;
5. stops what it started (start-api, start-lambda, moto server), also on failure or a signal.

    python ops/samlocal/drive.py --bridge 172.31.240.1 --sam .tools/sam/bin/sam --build-dir .tools/samlocal/build
    python ops/samlocal/drive.py reference OUT.json      # (internal) the fixtures through in-process localcloud
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "layers" / "common" / "python"))

from env_vars import env_vars_from_stack  # noqa: E402
from env_vars import write as write_env_vars  # noqa: E402
from local_template import LOCAL_TEMPLATE, write_local_template  # noqa: E402

from converge.contracts import with_inboxes  # noqa: E402
from localcloud.template import TEMPLATE_PATH  # noqa: E402

EVENTS = ROOT / "events"
STATE = ROOT / ".tools" / "samlocal"
ENV_VARS = STATE / "env-vars.json"  # the path samconfig.toml's [samlocal.*] sections name
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
# Values that differ between two runs of the same fixture (wall clock; a sweep's id, made of its start time and a
# random part; the ARN of the execution a pass started, named the same way), compared as present (or as absent, null,
# in both), not by value.
VOLATILE_KEYS = {"watermark", "window_from", "time", "timestamp", "sweep_id", "sweep_started"}
VOLATILE_SUFFIXES = ("_at", "_seconds", "_ms")
# The reconciler's overlap in both runs. An incremental pass compares the entities written since its watermark less
# the overlap (the template's 120 s); sam local's cold invokes (5-20 s each here) spread the fixtures' writes over
# minutes where the reference's take milliseconds, so the two passes would compare different entities. An hour
# covers every write of either run, and the reports compare exactly.
OVERLAP = "WATERMARK_OVERLAP_SECONDS"
RUN_WIDE_OVERLAP = "3600"


def widen_overlap(environments: dict[str, dict[str, str]]) -> None:
    """Every function environment that has the reconciler's overlap gets RUN_WIDE_OVERLAP."""
    for environment in environments.values():
        if OVERLAP in environment:
            environment[OVERLAP] = RUN_WIDE_OVERLAP


def fixtures() -> list[Path]:
    """Every fixture, ordered as tests/localcloud/test_event_fixtures.py runs them (writes, consumers, reads, ...)."""
    from tests.localcloud.test_event_fixtures import _phase

    return sorted(EVENTS.glob("*.json"), key=_phase)


def expects_failures(path: Path) -> bool:
    """test_event_fixtures' rule: only a fixture named bad/poison expects batchItemFailures."""
    return any(word in path.name for word in ("bad", "poison"))


# ------------------------------------------------------------------------------------------------ reference
def reference(out: Path) -> int:
    """The fixtures through in-process localcloud (no Docker), in the same order: what sam local must answer."""
    from localcloud.__main__ import invoke_file
    from localcloud.cloud import LocalCloud

    results: dict[str, Any] = {}
    # As under sam local, which has no Step Functions: an execution a fixture starts (the full sweep) stays RUNNING,
    # and the fixtures after it see the state it would have left untouched.
    with LocalCloud(TEMPLATE_PATH, execute_state_machines=False) as cloud:
        widen_overlap({name: function.environment for name, function in cloud.runtime.functions.items()})
        for path in fixtures():
            invocation = invoke_file(cloud, path.name.split(".")[0], path)
            results[path.name] = invocation.response if invocation.ok else invocation.error.payload()
    out.write_text(json.dumps(results, indent=1, default=str))
    return 0


# ------------------------------------------------------------------------------------------------ processes
class Children:
    """Processes this driver started, each in a session of its own; stopped by PID (its process group) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, process, log))
        return process

    def stop_all(self) -> None:
        for name, process, log in reversed(self.started):
            if process.poll() is None:
                started, used = time.monotonic(), "?"
                # SIGINT first: sam local stops its warm containers on an interrupt.
                for sig, grace in ((signal.SIGINT, 20), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                    try:
                        os.killpg(process.pid, sig)
                    except ProcessLookupError:
                        break
                    used = sig.name
                    try:
                        process.wait(grace)
                        break
                    except subprocess.TimeoutExpired:
                        continue
                print(f"   stopped {name} (pid {process.pid}, {used}, {time.monotonic() - started:.1f} s)")
            log.close()
        self.started = []


def sam_containers() -> set[str]:
    """The ids of the containers sam local runs functions in (its label), running or not."""
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", "label=sam.cli.container.type=lambda"],
        capture_output=True,
        text=True,
        check=False,
    )
    return set(listed.stdout.split())


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}) before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout:.0f} s")


# ------------------------------------------------------------------------------------------------ checks
def volatile(key: str, value: Any) -> bool:
    return value is not None and (key in VOLATILE_KEYS or key.endswith(VOLATILE_SUFFIXES))


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<volatile>" if volatile(k, v) else normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def body_of(response: Any) -> Any:
    body = response.get("body") if isinstance(response, dict) else None
    try:
        return json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return body


def check_fixture(path: Path, got: Any, expected: Any) -> list[str]:
    """What is wrong with sam local's response to fixture `path` (`expected`: in-process localcloud's)."""
    event = json.loads(path.read_text())
    if isinstance(got, dict) and "errorType" in got:
        return [f"function error {got.get('errorType')}: {got.get('errorMessage')}"]
    problems = []
    if "routeKey" in event:
        status = got.get("statusCode") if isinstance(got, dict) else None
        if not isinstance(status, int) or not 200 <= status < 300:
            problems.append(f"statusCode {status}, expected 2xx")
        if status != (expected or {}).get("statusCode"):
            problems.append(f"statusCode {status}, localcloud answered {(expected or {}).get('statusCode')}")
        if normalise(body_of(got)) != normalise(body_of(expected)):
            problems.append(
                f"body differs from localcloud's:\n     sam local  {body_of(got)}\n     localcloud {body_of(expected)}"
            )
    elif "Records" in event:
        failures = (got or {}).get("batchItemFailures", [])
        if bool(failures) != expects_failures(path):
            problems.append(f"batchItemFailures {failures}, expected {'some' if expects_failures(path) else 'none'}")
        if failures != (expected or {}).get("batchItemFailures", []):
            problems.append(f"batchItemFailures {failures}, localcloud answered {expected}")
    elif "action" in event:  # a task of the sweep's state machine (ReconcilerSweepFunction)
        if normalise(got) != normalise(expected):
            problems.append(f"answer differs from localcloud's:\n     sam local  {got}\n     localcloud {expected}")
    else:
        if not isinstance(got, dict) or "mode" not in got:
            problems.append(f"no pass report: {got}")
        elif normalise(got) != normalise(expected):
            diff = {k: (got.get(k), (expected or {}).get(k)) for k in set(got) | set(expected or {})}
            diff = {k: v for k, v in diff.items() if normalise({k: v[0]}) != normalise({k: v[1]})}
            problems.append(f"pass report differs from localcloud's (sam local, localcloud): {diff}")
    return problems


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class Run:
    args: argparse.Namespace
    children: Children
    timings: list[tuple[str, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def timed(self, name: str, started: float) -> None:
        self.timings.append((name, time.monotonic() - started))

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"   FAIL {message}")

    def sam(self, *argv: str) -> list[str]:
        return [self.args.sam, *argv, "--config-file", str(ROOT / "samconfig.toml"), "--config-env", "samlocal"]


def sam_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(CREDENTIALS)
    env["SAM_CLI_TELEMETRY"] = "0"
    # sam local asks STS for the account id (a real AWS call, ~9 s of retries without a route): moto answers it.
    env["AWS_ENDPOINT_URL_STS"] = endpoint
    return env


def check_env_vars(cloud: Any, env_vars: dict[str, Any]) -> None:
    """The file env_vars.py wrote from the stack holds what localcloud resolved for each function, and no more."""
    functions = {k: dict(f.environment) for k, f in cloud.runtime.functions.items()}
    if {k: v for k, v in env_vars.items() if k != "Parameters"} != functions:
        raise RuntimeError(f"env-vars from the stack differ from localcloud's function environments: {functions}")


@dataclass
class Invoked:
    """One `sam local invoke`: the response on its stdout's last line (None if not JSON), and how it went."""

    got: Any
    returncode: int
    stderr: str
    seconds: float


def sam_invoke(run: Run, env: dict[str, str], function: str, path: Path) -> Invoked:
    """`sam local invoke FUNCTION --event PATH`, its stderr and stdout kept in the logs as invoke.<stem>.*"""
    logs = run.children.logs
    started = time.monotonic()
    done = subprocess.run(
        run.sam("local", "invoke", function, "--event", str(path)),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    seconds = time.monotonic() - started
    (logs / f"invoke.{path.stem}.log").write_text(done.stderr)
    (logs / f"invoke.{path.stem}.out").write_text(done.stdout)
    try:
        got = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    except ValueError:
        got = None
    return Invoked(got, done.returncode, done.stderr, seconds)


def invoke_fixtures(run: Run, env: dict[str, str], expected: dict[str, Any]) -> dict[str, Any]:
    """Every fixture through `sam local invoke`, checked; sam local's answers by fixture name."""
    started_all = time.monotonic()
    answered: dict[str, Any] = {}
    for path in fixtures():
        function = path.name.split(".")[0]
        invoked = sam_invoke(run, env, function, path.relative_to(ROOT))
        got, seconds = invoked.got, invoked.seconds
        answered[path.name] = got
        problems = [f"sam local invoke exited {invoked.returncode}"] if invoked.returncode else []
        problems += ["no JSON response on stdout"] if got is None else check_fixture(path, got, expected[path.name])
        summary = (
            f"{got.get('statusCode')}"
            if isinstance(got, dict) and "statusCode" in got
            else f"batchItemFailures={got.get('batchItemFailures')}"
            if isinstance(got, dict) and "batchItemFailures" in got
            else f"mode={got.get('mode')} checked={got.get('checked')}"
            if isinstance(got, dict) and "mode" in got
            else f"segments={len(got.get('segments', []))} counters={len(got.get('counters', []))}"
            if isinstance(got, dict) and "sweep_id" in got
            else str(got)[:80]
        )
        print(f"   {'ok  ' if not problems else 'FAIL'} {path.name:60} {seconds:5.1f} s  {summary}")
        for problem in problems:
            run.fail(f"{path.name}: {problem}")
        if problems:
            print("     " + "\n     ".join(invoked.stderr.strip().splitlines()[-15:]))
    run.timed(f"sam local invoke x{len(fixtures())}", started_all)
    return answered


def check_started_sweeps(run: Run, cloud: Any, answered: dict[str, Any]) -> None:
    """An execution a fixture's pass started (`sweep_started`) is one of the stack's sweep state machine on the moto
    server, still RUNNING: sam local has no Step Functions, so nothing runs it (the sweep's tasks are fixtures of
    ReconcilerSweepFunction of their own)."""
    state_machine = cloud.physical("ReconcilerSweepStateMachine")
    for name, got in answered.items():
        arn = got.get("sweep_started") if isinstance(got, dict) else None
        if arn is None:
            continue
        described = cloud.clients.stepfunctions.describe_execution(executionArn=arn)
        ok = (described["stateMachineArn"], described["status"]) == (state_machine, "RUNNING")
        print(f"   {'ok  ' if ok else 'FAIL'} {name}: started {arn.rsplit(':', 1)[-1]}, {described['status']} on moto")
        if not ok:
            run.fail(f"{name}: sweep_started {arn} is {described['status']} of {described['stateMachineArn']}")


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")


class Story:
    """HTTP API requests made as API Gateway would pass them on after its JWT authorizer, run by `sam local invoke`.

    Each request is the fixture of its route (events/<Function>.<case>.json) with the path, path parameters and body
    replaced: the claims stay the fixture's (a customer's, or an admin's on the admin routes).
    """

    def __init__(self, run: Run, env: dict[str, str]) -> None:
        self.run, self.env = run, env
        self.dir = run.children.logs / "story"
        self.dir.mkdir(exist_ok=True)
        self.fixtures: dict[str, Path] = {}
        for path in sorted(EVENTS.glob("*.json")):
            route = json.loads(path.read_text()).get("routeKey")
            if isinstance(route, str):
                self.fixtures.setdefault(route, path)
        self.count = 0

    def claims(self, route: str) -> dict[str, Any]:
        event = json.loads(self.fixtures[route].read_text())
        return dict(event["requestContext"]["authorizer"]["jwt"]["claims"])

    def call(
        self,
        route: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        fixture = self.fixtures[route]
        event = json.loads(fixture.read_text())
        path = route.split(" ", 1)[1]
        for name, value in (params or {}).items():
            path = path.replace("{" + name + "}", value)
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["requestId"] = f"samlocal-story-{self.count}"
        event["pathParameters"] = params
        event["body"] = json.dumps(body) if body is not None else None
        event["headers"] = {
            k: v for k, v in event["headers"].items() if k not in ("content-length", "idempotency-key")
        } | {k.lower(): v for k, v in (headers or {}).items()}
        self.count += 1
        written = self.dir / f"{self.count:02d}.{fixture.stem}.json"
        written.write_text(json.dumps(event, indent=1))
        invoked = sam_invoke(self.run, self.env, fixture.name.split(".")[0], written)
        got = invoked.got if isinstance(invoked.got, dict) else {}
        if invoked.returncode or "statusCode" not in got:
            tail = "\n     ".join(invoked.stderr.strip().splitlines()[-10:])
            print(f"     sam local invoke exited {invoked.returncode}, answered {invoked.got}:\n     {tail}")
        return int(got.get("statusCode", 0)), body_of(got)


def skipped_authorizer_routes(log: Path) -> set[str]:
    """The routes whose JWT authorizer start-api said it skipped when it read the template."""
    said = re.compile(r"Authorizer 'JwtAuthorizer' for route '([^']+)' was not found, skipping")
    return {found.group(1) for found in said.finditer(log.read_text(errors="replace"))}


def through_start_lambda(cloud: Any, endpoint: str) -> Counter[str]:
    """Every invocation of the cloud's event source mappings goes to `sam local start-lambda` (the containers)."""
    import boto3
    from botocore.config import Config

    from localcloud.runtime import FunctionError, Invocation

    client = boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(read_timeout=300, retries={"max_attempts": 1}, account_id_endpoint_mode="disabled"),
    )
    counts: Counter[str] = Counter()

    def invoke(logical_id: str, event: Any, *, source: str = "sync") -> Invocation:
        started = time.monotonic()
        answer = client.invoke(FunctionName=logical_id, Payload=json.dumps(event, default=str).encode())
        payload = json.loads(answer["Payload"].read() or b"null")
        request_id = answer["ResponseMetadata"].get("RequestId", "")
        invocation = Invocation(function=logical_id, request_id=request_id, event=event)
        invocation.duration_ms = (time.monotonic() - started) * 1000
        # start-lambda sets X-Amz-Function-Error only for a payload of exactly errorMessage/errorType[/stackTrace/
        # cause] (samcli/local/services/base_local_service.py); awslambdaric's error payload also has requestId,
        # so an error arrives as a 200 without it: an error payload is an error here either way.
        is_error = isinstance(payload, dict) and {"errorType", "errorMessage"} <= set(payload)
        if answer.get("FunctionError") or is_error:
            error = payload if isinstance(payload, dict) else {}
            invocation.error = FunctionError(
                str(error.get("errorType", "Unhandled")),
                str(error.get("errorMessage", payload)),
                error.get("stackTrace", []),
            )
            counts[f"{logical_id} (error)"] += 1
        else:
            invocation.response = payload
            failures = (payload or {}).get("batchItemFailures") if isinstance(payload, dict) else None
            if failures:
                counts[f"{logical_id} (batchItemFailures)"] += 1
        counts[logical_id] += 1
        cloud.runtime.invocations[logical_id] += 1
        return invocation

    cloud.runtime.invoke = invoke
    return counts


def drive_api(run: Run, cloud: Any, env: dict[str, str]) -> None:
    api_port, lambda_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    started = time.monotonic()
    start_api = run.children.start("start-api", run.sam("local", "start-api", "--port", str(api_port)), env)
    start_lambda = run.children.start("start-lambda", run.sam("local", "start-lambda", "--port", str(lambda_port)), env)
    wait_for_port("127.0.0.1", api_port, start_api, "sam local start-api")
    wait_for_port("127.0.0.1", lambda_port, start_lambda, "sam local start-lambda")
    run.timed("start-api + start-lambda up", started)
    api = Api(f"http://127.0.0.1:{api_port}")
    # The fixtures are cases, not one causal history (a shipment dispatched for an order inventory never
    # reserved): their records are pumped first, and what consumers refused of them is reported, not the story's.
    started = time.monotonic()
    counts = through_start_lambda(cloud, f"http://127.0.0.1:{lambda_port}")
    report = cloud.run_until_quiet(max_rounds=400)
    left_by_fixtures = {q: cloud.queue_depth(q) for q in cloud.queues_of_type()}
    run.timed("pumps of the fixtures' records", started)
    invoked = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
    print(f"   fixtures' records: {report.rounds} rounds, {report.moved} moved: {invoked}")
    print(f"   left by the fixtures (refused with a reason, bound for their DLQ): {left_by_fixtures}")
    counts.clear()

    def expect(label: str, status: int, want: int, ok: bool = True) -> None:
        print(f"   {'ok  ' if status == want and ok else 'FAIL'} {label:70} -> {status}")
        if status != want or not ok:
            run.fail(f"{label}: {status}, expected {want}")

    # start-api and the JWT authorizer: nothing verifies the token, nothing passes claims, the function refuses.
    from localcloud import auth

    started = time.monotonic()
    skipped = skipped_authorizer_routes(run.children.logs / "start-api.log")
    paths = {route.split(" ", 1)[1] for route in cloud.route_auth}
    expect(f"start-api skipped the JWT authorizer of {len(skipped)} of {len(paths)} paths", len(skipped), len(paths))
    token = auth.issue("cust-samlocal")
    for label, method, path, headers in (
        ("start-api GET /products/sku-1, no token", "GET", "/products/sku-1", {}),
        (
            "start-api GET /products/sku-1, a valid bearer token",
            "GET",
            "/products/sku-1",
            {"authorization": f"Bearer {token}"},
        ),
        ("start-api POST /orders, a valid bearer token", "POST", "/orders", {"authorization": f"Bearer {token}"}),
    ):
        body: Any
        status, body = api.call(method, path, {"lines": []} if method == "POST" else None, headers)
        errors = body.get("errors") if isinstance(body, dict) else None
        functions_own = isinstance(errors, list) and [e.get("type") for e in errors] == ["unauthorized"]
        expect(f"{label}: the function's own 401 (no claims)", status, 401, functions_own)
    run.timed("start-api requests without claims (401)", started)

    # The story, through sam local invoke with the fixtures' claims.
    story = Story(run, env)
    customer = story.claims("POST /orders")["sub"]
    started = time.monotonic()
    product = "sku-samlocal-1"
    status, body = story.call("PUT /products/{product_id}/stock", {"product_id": product}, {"on_hand": 10})
    expect(f"PUT /products/{product}/stock on_hand=10 (admin)", status, 200, (body or {}).get("on_hand") == 10)
    order = {"lines": [{"product_id": product, "quantity": 3}]}
    status, body = story.call("POST /orders", None, order, {"Idempotency-Key": "samlocal-order-1"})
    placed = isinstance(body, dict) and body.get("status") == "PENDING" and body.get("customer_id") == customer
    order_id = (body or {}).get("order_id", "?") if isinstance(body, dict) else "?"
    expect(f"POST /orders (3 x {product}) as {customer}", status, 201, placed)
    status, body = story.call("GET /orders/{order_id}", {"order_id": order_id})
    expect(f"GET /orders/{order_id} PENDING", status, 200, (body or {}).get("status") == "PENDING")
    status, body = story.call("GET /availability/{product_id}", {"product_id": product})
    expect(f"GET /availability/{product} (nothing projected yet)", status, 404)
    run.timed("story invokes (placed)", started)

    started = time.monotonic()
    report = cloud.run_until_quiet(max_rounds=400)
    run.timed("pumps via start-lambda", started)
    invoked = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
    print(f"   pumped {report.rounds} rounds, {report.moved} moved: {invoked}")
    depths = {q: cloud.queue_depth(q) for q in cloud.queues_of_type()}
    print(f"   queue depths after: {depths}")

    started = time.monotonic()
    status, body = story.call("GET /orders/{order_id}", {"order_id": order_id})
    expect(f"GET /orders/{order_id} CONFIRMED", status, 200, (body or {}).get("status") == "CONFIRMED")
    status, body = story.call("GET /availability/{product_id}", {"product_id": product})
    expect(f"GET /availability/{product} available=7", status, 200, (body or {}).get("available") == 7)
    status, body = story.call("GET /products/{product_id}", {"product_id": product})
    expect(f"GET /products/{product} reserved=3", status, 200, (body or {}).get("reserved") == 3)
    status, body = story.call("GET /customers/{customer_id}/notifications", {"customer_id": customer})
    listed = (body or {}).get("notifications", []) if isinstance(body, dict) else []
    confirmed = [n for n in listed if n.get("order_id") == order_id and n.get("kind") == "ORDER_CONFIRMED"]
    expect(f"GET /customers/{customer}/notifications (order confirmed)", status, 200, len(confirmed) == 1)
    status, body = story.call("GET /shipments/{order_id}", {"order_id": order_id})
    expect(f"GET /shipments/{order_id} PENDING", status, 200, (body or {}).get("status") == "PENDING")
    run.timed("story invokes (converged)", started)

    started = time.monotonic()
    status, body = story.call("POST /shipments/{order_id}/dispatch", {"order_id": order_id})
    expect(f"POST /shipments/{order_id}/dispatch (admin)", status, 200, (body or {}).get("status") == "DISPATCHED")
    report = cloud.run_until_quiet(max_rounds=400)
    status, body = story.call("GET /orders/{order_id}", {"order_id": order_id})
    expect(f"GET /orders/{order_id} SHIPPED", status, 200, (body or {}).get("status") == "SHIPPED")
    status, body = story.call("GET /products/{product_id}", {"product_id": product})
    shipped = (body or {}).get("on_hand") == 7 and (body or {}).get("reserved") == 0
    expect(f"GET /products/{product} on_hand=7 reserved=0", status, 200, shipped)
    run.timed("dispatch, pumps, story invokes (shipped)", started)
    depths = {q: cloud.queue_depth(q) for q in cloud.queues_of_type()}
    for name in (service.inbox for service in with_inboxes()):
        if depths.get(name, 0) > left_by_fixtures.get(name, 0):
            run.fail(
                f"{name} holds {depths[name] - left_by_fixtures.get(name, 0)} message(s) of the story after the pumps"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bridge", required=True, help="Docker bridge address the moto server listens on")
    parser.add_argument("--endpoint-host", help="the moto server's host as containers see it (default: --bridge)")
    parser.add_argument("--sam", default=str(ROOT / ".tools" / "sam" / "bin" / "sam"))
    parser.add_argument("--build-dir", type=Path, default=STATE / "build")
    args = parser.parse_args(argv)
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()
    run = Run(args, Children(logs))

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    # Started in the background by run.sh, this process may inherit SIGINT ignored, and so would sam local, which
    # stops its warm containers on SIGINT only: a handler here means SIG_DFL in every child.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    containers_before = sam_containers()
    cloud = None
    os.environ.update(CREDENTIALS)
    try:
        started = time.monotonic()
        reference_out = STATE / "reference.json"
        reference_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        reference_run = run.children.start(
            "reference", [sys.executable, __file__, "reference", str(reference_out)], reference_env
        )

        write_local_template(args.build_dir)
        port = free_port(args.bridge)
        moto = run.children.start("moto", [sys.executable, "-m", "moto.server", "-H", args.bridge, "-p", str(port)])
        wait_for_port(args.bridge, port, moto, "moto server", timeout=60)
        endpoint = f"http://{args.endpoint_host or args.bridge}:{port}"
        print(f"== sam-local: moto server on {args.bridge}:{port} (pid {moto.pid}); containers use {endpoint}")

        from localcloud.cloud import LocalCloud

        cloud = LocalCloud(TEMPLATE_PATH, endpoint=f"http://{args.bridge}:{port}").start()
        env_vars = env_vars_from_stack(cloud.stack_name, f"http://{args.bridge}:{port}", endpoint)
        check_env_vars(cloud, env_vars)
        widen_overlap(env_vars)
        write_env_vars(ENV_VARS, env_vars)
        print(
            f"   deployed {cloud.stack_name}: {len(cloud.runtime.functions)} functions; "
            f"env-vars {ENV_VARS.relative_to(ROOT)}"
        )
        if reference_run.wait(300) != 0:
            raise RuntimeError(f"the in-process reference run failed: {logs / 'reference.log'}")
        expected = json.loads(reference_out.read_text())
        run.timed("deploy to moto + localcloud reference", started)

        env = sam_env(f"http://{args.bridge}:{port}")
        print(f"== sam-local: sam local invoke, every fixture ({len(expected)}), template {LOCAL_TEMPLATE}")
        answered = invoke_fixtures(run, env, expected)
        check_started_sweeps(run, cloud, answered)
        print("== sam-local: sam local start-api + start-lambda, localcloud's pumps")
        drive_api(run, cloud, env)
    except KeyboardInterrupt as exc:
        run.fail(f"interrupted ({exc})")
    # Whatever went wrong is reported as a failed run, and what was started is still stopped.
    except Exception as exc:  # noqa: BLE001
        run.fail(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        # Nothing interrupts the clean-up (run.sh sends SIGTERM after an interrupt, and waits for it).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("== sam-local: stopping what the driver started")
        stopping = time.monotonic()
        run.children.stop_all()
        left = sorted(sam_containers() - containers_before)
        if left:
            # A sam local stopped the hard way leaves its warm containers: only the ones of this run are removed.
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
            print(f"   removed {len(left)} container(s) sam local left behind")
        run.timed("stop (start-api, start-lambda, moto)", stopping)
        if cloud is not None:
            cloud.stop()
    print("== sam-local: driver timings")
    for name, seconds in run.timings:
        print(f"   {name:40} {seconds:6.1f} s")
    if run.failures:
        print(f"== sam-local: {len(run.failures)} FAILED")
        for failure in run.failures:
            print(f"   {failure.splitlines()[0]}")
        return 1
    print("== sam-local: every fixture and request answered as expected")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "reference":
        sys.exit(reference(Path(sys.argv[2])))
    sys.exit(main())

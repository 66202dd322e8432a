"""Step Functions state machines of the template, executed by moto's own ASL interpreter.

moto 5.2 ships an interpreter of the Amazon States Language (`moto/stepfunctions/parser`, from LocalStack) that runs
executions when `default_user_config["stepfunctions"]["execute_state_machine"]` is on: Task, Choice, Map (inline and
DISTRIBUTED, with ItemsPath, ItemSelector, MaxConcurrency, ToleratedFailurePercentage), Retry and Catch, intrinsic
functions. Two things are localcloud's:

- moto's CloudFormation reads only `DefinitionString`; SAM emits `Definition` with `DefinitionSubstitutions`, so the
  state machine is created here through the API, with the substitutions applied as CloudFormation applies them.
- The interpreter's Lambda tasks call Lambda's Invoke, which in moto needs Docker: they are routed to localcloud's
  in-process functions (`Runtime.invoke`, source "states"), with Lambda's answer for a function error
  (`FunctionError: Unhandled` and the error payload) so Retry and Catch see what they would on AWS.
- A Distributed Map's child execution that fails (its retries spent) is counted by moto's map run and its result set
  to null, but the Map run succeeds whatever the count. AWS fails the Map run with
  `States.ExceedToleratedFailureThreshold` once the failed items exceed `ToleratedFailureCount` and
  `ToleratedFailurePercentage` (both 0 unless declared: one failed item fails it); `_fail_beyond_tolerance` does so.
- StopExecution ends an execution ABORTED on AWS, whatever its tasks in flight do next. moto marks the program
  stopped, but a task still running in a Map iteration then fails (its frame's stack left half evaluated) and
  moto's `set_error` overwrites the stop: the execution ends FAILED, now and then. `_stop_is_final` keeps a stopped
  program stopped.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from localcloud.runtime import Runtime

STATE_MACHINE_TYPE = "AWS::StepFunctions::StateMachine"
_SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


class ExecutionTimeout(RuntimeError):
    """An execution still running after the wait localcloud allows it."""


@dataclass(frozen=True)
class Execution:
    """A finished execution: its status, output (parsed JSON) or error and cause."""

    arn: str
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED"


def definition_of(properties: dict[str, Any]) -> str:
    """The definition JSON with `${Name}` replaced by its DefinitionSubstitutions value (properties resolved)."""
    definition = properties.get("DefinitionString") or json.dumps(properties["Definition"])
    substitutions = {k: str(v) for k, v in (properties.get("DefinitionSubstitutions") or {}).items()}

    def substitute(match: re.Match[str]) -> str:
        return substitutions.get(match.group(1), match.group(0))

    # A number substituted into a quoted position ("MaxConcurrency": "${N}") becomes a number, as in CloudFormation's
    # resolved definition the value is written where the placeholder stood; quoted placeholders of numbers are
    # unquoted first.
    for name, value in substitutions.items():
        if value.isdigit():
            definition = definition.replace(f'"${{{name}}}"', value)
    return _SUBSTITUTION.sub(substitute, definition)


def _distributed_iteration() -> Any:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component,
    )

    return distributed_iteration_component.DistributedIterationComponent


def _fail_beyond_tolerance(map_run: Callable[..., None]) -> Callable[..., None]:
    """moto's `_map_run`, then the Map run's failure threshold as AWS applies it."""
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    def run(self: Any, env: Any, eval_input: Any) -> None:
        map_run(self, env, eval_input)
        record = eval_input.map_run_record
        failed = record.item_counter.failed.get() + record.item_counter.timed_out.get()
        total = max(1, record.item_counter.total.get())
        if failed <= record.tolerated_failure_count or 100.0 * failed / total <= record.tolerated_failure_percentage:
            return
        error = StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold)
        cause = f"The specified tolerated failure threshold was exceeded: {failed} of {total} items failed"
        raise FailureEventException(
            failure_event=FailureEvent(
                env=env,
                error_name=error,
                event_type=HistoryEventType.MapRunFailed,
                event_details=EventDetails(  # type: ignore[typeddict-item]  # moto builds it with one key too
                    mapRunFailedEventDetails=MapRunFailedEventDetails(error=error.error_name, cause=cause)
                ),
            )
        )

    run.__wrapped__ = map_run  # type: ignore[attr-defined]
    return run


def _environment() -> Any:
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    return Environment


def _stop_is_final(set_error: Callable[..., None]) -> Callable[..., None]:
    """moto's `Environment.set_error`, except on a program already stopped: it stays stopped (ABORTED)."""
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    def set_error_unless_stopped(self: Any, error: Any) -> None:
        with self._state_mutex:  # moto's own lock of the program state (re-entrant)
            if not isinstance(self._program_state, ProgramStopped):
                set_error(self, error)
                return
            self.program_state_event.set()
            self.program_state_event.clear()

    set_error_unless_stopped.__wrapped__ = set_error  # type: ignore[attr-defined]
    return set_error_unless_stopped


def _moto_parts() -> tuple[dict[str, Any], Any]:
    """moto's user config (where the interpreter is switched on) and the module whose Lambda client is routed."""
    from moto.core.config import default_user_config
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    return cast(dict[str, Any], default_user_config), lambda_eval_utils


class _LambdaRouter:
    """What moto's interpreter gets for a "lambda" client: Invoke runs the function in-process."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.closed = False  # the cloud stopped: a task of an execution still winding down runs nothing

    def invoke(self, **parameters: Any) -> dict[str, Any]:
        if self.closed:
            raise RuntimeError("localcloud stopped: its functions run no more tasks")
        function = self._runtime.by_arn(str(parameters["FunctionName"]))
        payload = parameters.get("Payload") or "{}"
        event = json.loads(payload) if isinstance(payload, str | bytes) else payload
        invocation = self._runtime.invoke(function.logical_id, event, source="states")
        response: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
        if invocation.ok:
            body = invocation.response
        else:
            response["FunctionError"] = "Unhandled"
            body = invocation.error.payload() if invocation.error else {"errorType": "Unknown"}
        response["Payload"] = io.BytesIO(json.dumps(body, default=str).encode())
        return response


class StateMachines:
    """Turns moto's interpreter on, routes its Lambda tasks to `runtime`, and runs executions to their end."""

    def __init__(self, clients: Any, runtime: Runtime) -> None:
        self._clients = clients
        self._runtime = runtime
        self._saved: dict[str, Any] | None = None
        self._saved_client: Callable[..., Any] | None = None
        self._router: _LambdaRouter | None = None
        self.arns: dict[str, str] = {}  # logical id -> state machine ARN

    def install(self) -> None:
        config, lambda_eval_utils = _moto_parts()
        self._saved = dict(config.get("stepfunctions", {}))
        config["stepfunctions"] = {**self._saved, "execute_state_machine": True}
        self._saved_client = lambda_eval_utils.boto_client_for
        original, router = self._saved_client, _LambdaRouter(self._runtime)
        self._router = router

        def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            return router if service == "lambda" else original(region, service, state_credentials)

        lambda_eval_utils.boto_client_for = client_for
        component = _distributed_iteration()
        if not hasattr(component._map_run, "__wrapped__"):
            component._map_run = _fail_beyond_tolerance(component._map_run)
        environment = _environment()
        if not hasattr(environment.set_error, "__wrapped__"):
            environment.set_error = _stop_is_final(environment.set_error)

    def close(self) -> None:
        """No execution outlives its cloud: later tasks run nothing, running executions are stopped, and a task
        in flight is waited for (it holds the runtime's lock). An execution a pass started in the background (a
        first pass next to full tables starts a sweep) would otherwise go on invoking functions, and swapping
        `sys.stdout`, under whatever runs next in this process."""
        if self._router is not None:
            self._router.closed = True
        for arn in self.arns.values():
            try:
                listed = self._clients.stepfunctions.list_executions(stateMachineArn=arn, statusFilter="RUNNING")
            except Exception:  # noqa: BLE001 - the backend may be gone already; nothing then runs
                continue
            for execution in listed.get("executions", []):
                try:
                    self._clients.stepfunctions.stop_execution(executionArn=execution["executionArn"])
                except Exception:  # noqa: BLE001 - moto cannot stop an execution whose worker has not begun (no
                    continue  # environment yet): its first task finds the router closed, and it fails there
        with self._runtime.lock:
            pass

    def uninstall(self) -> None:
        config, lambda_eval_utils = _moto_parts()
        if self._saved is not None:
            config["stepfunctions"] = self._saved
            self._saved = None
        if self._saved_client is not None:
            lambda_eval_utils.boto_client_for = self._saved_client
            self._saved_client = None
        component = _distributed_iteration()
        if hasattr(component._map_run, "__wrapped__"):
            component._map_run = component._map_run.__wrapped__
        environment = _environment()
        if hasattr(environment.set_error, "__wrapped__"):
            environment.set_error = environment.set_error.__wrapped__

    def create(self, logical_id: str, properties: dict[str, Any], arn: str) -> str:
        """Create a state machine from its resolved properties, under the ARN the stack already uses for it."""
        name = str(properties.get("StateMachineName") or arn.rsplit(":", 1)[-1])
        created = self._clients.stepfunctions.create_state_machine(
            name=name,
            definition=definition_of(properties),
            roleArn=str(properties["RoleArn"]),
            type=str(properties.get("StateMachineType", "STANDARD")),
        )
        self.arns[logical_id] = created["stateMachineArn"]
        return str(created["stateMachineArn"])

    def start(self, logical_id_or_arn: str, payload: Any) -> str:
        arn = self.arns.get(logical_id_or_arn, logical_id_or_arn)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        name = f"localcloud-{uuid.uuid4().hex}"  # as EventBridge and the console do, a fresh name per execution
        started = self._clients.stepfunctions.start_execution(stateMachineArn=arn, name=name, input=text)
        return str(started["executionArn"])

    def wait(self, execution_arn: str, timeout_seconds: float = 600.0) -> Execution:
        """Wait for an execution to end (its tasks run on the interpreter's threads; the caller holds no lock)."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            described = self._clients.stepfunctions.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                output = described.get("output")
                return Execution(
                    arn=execution_arn,
                    status=described["status"],
                    output=json.loads(output) if output else None,
                    error=described.get("error"),
                    cause=described.get("cause"),
                )
            if time.monotonic() > deadline:
                raise ExecutionTimeout(f"{execution_arn} still running after {timeout_seconds:.0f} s")
            time.sleep(0.02)

    def run(self, logical_id_or_arn: str, payload: Any, timeout_seconds: float = 600.0) -> Execution:
        return self.wait(self.start(logical_id_or_arn, payload), timeout_seconds)

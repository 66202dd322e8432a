"""The runtime inside a host execution environment: what awslambdaric is in AWS's image, for HostRuntimeExecutor.

Runs on the function's interpreter with only the function's code and layers on sys.path (no LocalStack). Protocol,
JSON lines: after importing the handler, one reply {"ready": true} or {"init_error": {...}}; then per request
{"invoke-id", "invoked-function-arn", "payload", "trace-id", "deadline_ms", ...} on stdin, one reply
{"ok": bool, "payload": "<JSON>"} on the pipe $LAMBDA_HOST_REPLY_FD. stdout and stderr are the function's log.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

Handler = Callable[[Any, "Context"], Any]


def error_payload(error: BaseException, request_id: str = "") -> dict[str, Any]:
    """The error document AWS returns for an unhandled exception."""
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def marshal_error(error: Exception, request_id: str) -> dict[str, Any]:
    """What AWS returns when the handler's result is not JSON."""
    return {
        "errorMessage": f"Unable to marshal response: {error}",
        "errorType": "Runtime.MarshalError",
        "requestId": request_id,
        "stackTrace": [],
    }


class Context:
    """The subset of the Lambda context object that handlers and Powertools read."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn: str = request["invoked-function-arn"]
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id: str = request["invoke-id"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = float(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def reply(pipe: TextIO, message: dict[str, Any]) -> None:
    pipe.write(json.dumps(message) + "\n")
    pipe.flush()


def load_handler() -> Handler:
    module_name, _, function_name = os.environ["_HANDLER"].replace("/", ".").rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), function_name)
    return handler


def serve(handler: Handler, pipe: TextIO) -> None:
    for line in sys.stdin:
        request = json.loads(line)
        request_id = request["invoke-id"]
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace-id") or ""
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        started = time.monotonic()
        try:
            result = handler(json.loads(request["payload"]), Context(request))
        # The runtime boundary: whatever the handler raises becomes the invocation's error, as on AWS.
        except Exception as error:  # noqa: BLE001
            traceback.print_exc()
            response = {"ok": False, "payload": json.dumps(error_payload(error, request_id))}
        else:
            try:
                response = {"ok": True, "payload": json.dumps(result)}
            except (TypeError, ValueError) as error:
                response = {"ok": False, "payload": json.dumps(marshal_error(error, request_id))}
        sys.stderr.flush()
        print(f"END RequestId: {request_id}", flush=True)
        elapsed_ms = (time.monotonic() - started) * 1000
        print(f"REPORT RequestId: {request_id}\tDuration: {elapsed_ms:.2f} ms", flush=True)
        reply(pipe, response)


def main() -> None:
    pipe = os.fdopen(int(os.environ.pop("LAMBDA_HOST_REPLY_FD")), "w", buffering=1)
    try:
        handler = load_handler()
    # An import error is the function's init error (Runtime.ImportModuleError on AWS), not the runtime's.
    except Exception as error:  # noqa: BLE001
        traceback.print_exc()
        reply(pipe, {"init_error": error_payload(error)})
        return
    reply(pipe, {"ready": True})
    serve(handler, pipe)


if __name__ == "__main__":
    main()

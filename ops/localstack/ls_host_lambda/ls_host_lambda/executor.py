"""A LocalStack RuntimeExecutor that runs each execution environment as a host Python process.

LocalStack's community build runs Lambda code only in Docker, through a Go init binary it downloads from GitHub.
This executor needs neither: an environment is one `pythonX.Y bootstrap.py` process that imports the handler once
and then serves invocations as JSON lines (requests on its stdin, replies on a pipe of their own, so everything the
handler prints is its log, kept in $LAMBDA_HOST_LOG_DIR/<function>-<environment>.log).

- Interpreter for runtime `pythonX.Y`: $LAMBDA_HOST_PYTHON_X_Y, else `pythonX.Y` on PATH. Other runtimes are refused.
- sys.path as on AWS: the unzipped code, then each layer's `python/lib/pythonX.Y/site-packages` and `python`
  (LocalStack's community build does not mount layers itself).
- A timed-out or crashed process is replaced by a fresh one at the next invocation (a cold start, as on AWS).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

LOG = logging.getLogger(__name__)
BOOTSTRAP = str(Path(__file__).with_name("bootstrap.py"))
# Generous next to AWS's 10 s: importing Powertools and Pydantic on a busy 2-core machine takes a few seconds.
INIT_TIMEOUT_S = 60.0
STOP_GRACE_S = 3.0


def python_for(runtime: str | None) -> str:
    """The host interpreter that plays the part of the AWS runtime image."""
    if not runtime or not runtime.startswith("python"):
        raise LambdaRuntimeException(f"the host executor runs only python runtimes, not {runtime}")
    version = runtime.removeprefix("python")
    found = os.environ.get("LAMBDA_HOST_PYTHON_" + version.replace(".", "_")) or shutil.which(f"python{version}")
    if not found:
        variable = "LAMBDA_HOST_PYTHON_" + version.replace(".", "_")
        raise LambdaRuntimeException(f"no interpreter for {runtime}: set {variable}")
    return found


def log_dir() -> Path:
    return Path(os.environ.get("LAMBDA_HOST_LOG_DIR") or Path(tempfile.gettempdir()) / "ls-host-lambda")


class ProcessGone(Exception):
    """The environment's process exited (the handler called os._exit, the interpreter crashed, ...)."""


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


# Without LocalStack installed (mypy in the project's venv) its classes are Any.
class HostRuntimeExecutor(RuntimeExecutor):  # type: ignore[misc]
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.proc: subprocess.Popen[bytes] | None = None
        self.replies: int | None = None  # read end of the reply pipe
        self.env: dict[str, str] = {}
        self.log_path = log_dir() / f"{function_version.id.function_name}-{id}.log"
        self.log_offset = 0
        self.lock = threading.Lock()

    # ------------------------------------------------------------------------------------------------ lifecycle
    def start(self, env_vars: dict[str, str]) -> None:
        cfg = self.function_version.config
        if cfg.code is None:
            raise LambdaRuntimeException("the host executor runs zip packages, not container images")
        code_dir = str(cfg.code.get_unzipped_code_location())
        version = str(cfg.runtime).removeprefix("python")
        paths = [code_dir]
        for layer in cfg.layers or []:
            if layer.code:
                root = Path(layer.code.get_unzipped_code_location()) / "python"
                paths += [str(root / "lib" / f"python{version}" / "site-packages"), str(root)]
        name = self.function_version.id.function_name
        self.env = {str(k): str(v) for k, v in env_vars.items()}
        self.env.update(
            PYTHONPATH=os.pathsep.join(paths),
            PYTHONUNBUFFERED="1",
            LAMBDA_TASK_ROOT=code_dir,
            PATH=os.environ.get("PATH", "/usr/bin:/bin"),
            HOME=os.environ.get("HOME", "/tmp"),
            AWS_LAMBDA_FUNCTION_NAME=name,
            AWS_LAMBDA_FUNCTION_VERSION=self.function_version.id.qualifier,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(cfg.memory_size),
            AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{name}",
            AWS_LAMBDA_LOG_STREAM_NAME=self.id,
        )
        self._spawn()

    def _spawn(self) -> None:
        python = python_for(self.function_version.config.runtime)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        read_end, write_end = os.pipe()
        with open(self.log_path, "ab") as log:
            # -P: the bootstrap's own directory stays off sys.path (its modules must not shadow the function's);
            # a session of its own: a Ctrl-C meant for LocalStack's terminal does not reach the functions.
            self.proc = subprocess.Popen(
                [python, "-s", "-P", BOOTSTRAP],
                cwd=self.env["LAMBDA_TASK_ROOT"],
                env={**self.env, "LAMBDA_HOST_REPLY_FD": str(write_end)},
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
                start_new_session=True,
            )
        os.close(write_end)
        self.replies = read_end
        try:
            ready = self._read_reply(INIT_TIMEOUT_S)
        except ProcessGone:
            ready = {"init_error": f"exit status {self._exit_status()}"}
        if ready is None or "init_error" in ready:
            detail = ready["init_error"] if ready else f"no reply within {INIT_TIMEOUT_S:.0f} s"
            self._terminate()
            raise LambdaRuntimeException(f"init failed: {detail}; log: {self.get_logs()[-2000:]}")
        LOG.debug("host executor %s ready: pid %s, %s", self.id, self.proc.pid, python)

    def _exit_status(self) -> int | None:
        """The exit status of a process whose reply pipe closed (it is exiting), None if it is still running."""
        assert self.proc is not None
        try:
            return self.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            return None

    def _terminate(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.proc.stdin is not None:
                # a write cut short by a dead process leaves bytes that close() would try to flush
                with contextlib.suppress(BrokenPipeError):
                    self.proc.stdin.close()
            self.proc = None
        if self.replies is not None:
            os.close(self.replies)
            self.replies = None

    def stop(self) -> None:
        with self.lock:
            self._terminate()

    # ------------------------------------------------------------------------------------------------ addresses
    # The process runs on this host, so it reaches LocalStack on loopback.
    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    # ------------------------------------------------------------------------------------------------ invoke
    def _read_reply(self, timeout: float) -> dict[str, Any] | None:
        """One JSON line from the reply pipe; None on timeout; ProcessGone when the process has exited."""
        assert self.replies is not None
        buffer = b""
        deadline = time.monotonic() + timeout
        while not buffer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.replies], [], [], left)[0]:
                return None
            chunk = os.read(self.replies, 65536)
            if not chunk:
                raise ProcessGone
            buffer += chunk
        reply: dict[str, Any] = json.loads(buffer)
        return reply

    def _send(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError as gone:
            raise ProcessGone from gone
        return self._read_reply(timeout)

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        timeout = float(self.function_version.config.timeout)
        request_id = payload["invoke-id"]
        body: bytes | None = None
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._terminate()
                self._spawn()
            assert self.proc is not None
            try:
                reply = self._send({**payload, "deadline_ms": (time.time() + timeout) * 1000}, timeout + 1)
                if reply is None:
                    body = error_body("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
            except ProcessGone:
                reply = None
                body = error_body("Runtime.ExitError", f"Runtime exited with error: exit status {self._exit_status()}")
            if reply is None:
                # like AWS: the sandbox is reset and the next invocation starts cold
                self._terminate()
        logs = self._new_logs()
        if reply is None:
            return InvocationResult(request_id, body, is_error=True, logs=logs)
        return InvocationResult(request_id, str(reply["payload"]).encode(), is_error=not reply["ok"], logs=logs)

    # ------------------------------------------------------------------------------------------------ logs
    def _new_logs(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_offset)
                data = log.read()
                self.log_offset = log.tell()
        except OSError:
            return ""
        return data.decode(errors="replace")

    def get_logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------------------------------------ versions
    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        # Unzipping is all there is to prepare: no image to pull, no init binary to download.
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()
        for layer in function_version.config.layers or []:
            if layer.code:
                layer.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing to clean: LocalStack removes the unzipped code itself."""

    @classmethod
    def validate_environment(cls) -> bool:
        return True

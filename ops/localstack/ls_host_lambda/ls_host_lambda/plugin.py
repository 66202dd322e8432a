"""The plux plugin LocalStack finds through the `localstack.lambda.runtime_executor` entry point."""

from __future__ import annotations

from typing import Any

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


# Without LocalStack installed (mypy in the project's venv) its classes are Any.
class HostRuntimeExecutorPlugin(RuntimeExecutorPlugin):  # type: ignore[misc]
    name = "host"

    def load(self, *args: Any, **kwargs: Any) -> type:
        # imported here, like LocalStack's own docker plugin: loading the plugin list must stay cheap
        from ls_host_lambda.executor import HostRuntimeExecutor

        return HostRuntimeExecutor

"""Logger, metrics and (only when tracing is on) the X-Ray tracer.

Creating Powertools' Tracer imports aws_xray_sdk (300-470 ms of cold start) even when tracing is disabled,
so it is imported only when POWERTOOLS_TRACE_DISABLED is false.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

F = TypeVar("F", bound=Callable[..., Any])

METRICS_NAMESPACE = "Converge"

# Read-only API calls add no metric; Powertools would print a UserWarning on every such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "converge"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE))


def tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").strip().lower() in {"0", "false", "no"}


def traced(handler: F) -> F:
    """Wrap a Lambda handler with Tracer.capture_lambda_handler when tracing is on; otherwise return it."""
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(handler)  # type: ignore[return-value]

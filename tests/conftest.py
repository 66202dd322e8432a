"""Test-wide setup: fake AWS credentials, moto-friendly settings, every CodeUri on sys.path."""

from __future__ import annotations

import glob
import os
import sys

import pytest

# Set before boto3/botocore are imported anywhere, so no test can reach a real account.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # botocore >= 1.44 routes DynamoDB Streams by account id; moto answers 404 unless this is off.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Converge",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_PROFILE", None)

pytest_plugins = ["tests.support.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    """pyproject's `pythonpath` names every CodeUri by a glob (`functions/*`), which pytest puts on sys.path as it
    is (a path that matches nothing): the folders it matches go there too, as Lambda's /var/task."""
    for entry in config.getini("pythonpath"):
        if any(c in str(entry) for c in "*?["):
            sys.path[:0] = sorted(glob.glob(str(entry)))

"""pytest fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from tests.support.stack import FunctionRunner, Stack, create_stack, reset_caches


@pytest.fixture
def aws_backend() -> Iterator[None]:
    """A fresh, empty moto backend for one test."""
    with mock_aws():
        reset_caches()
        yield
    reset_caches()


@pytest.fixture
def stack(aws_backend: None) -> Stack:
    return create_stack()


@pytest.fixture
def functions(stack: Stack) -> FunctionRunner:
    return FunctionRunner(stack)

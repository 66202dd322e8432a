"""One deployed target per e2e module (see targets.py for how it is chosen)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.targets import HttpTarget, LocalcloudTarget, LocalstackTarget, Principals, open_target


@pytest.fixture(scope="module")
def target() -> Iterator[LocalcloudTarget | HttpTarget | LocalstackTarget]:
    opened = open_target()
    yield opened
    opened.close()


@pytest.fixture
def unique() -> str:
    """A suffix that keeps each scenario's products, customers and orders apart on a shared stack."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def who(target: LocalcloudTarget | HttpTarget | LocalstackTarget, unique: str) -> Principals:
    """The scenario's customer, a second customer and an admin, as the target authenticates them."""
    return target.principals(unique)

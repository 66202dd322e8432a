"""Fixtures of the localcloud tests: a LocalCloud deployed from the small fixture template."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.cloud import LocalCloud
from tests.localcloud.helpers import FIXTURE_TEMPLATE


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(FIXTURE_TEMPLATE) as deployed:
        yield deployed

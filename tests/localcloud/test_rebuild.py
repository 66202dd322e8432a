"""tools.rebuild on localcloud: a projection dropped and rebuilt from each source, checked at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.cloud import LocalCloud
from localcloud.rebuild import target
from tests.localcloud.real import REAL_TEMPLATE
from tests.localcloud.test_archive_replay import notification_items
from tests.localcloud.test_bootstrap_shipping import storefront
from tools.rebuild import RebuildError, rebuild


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as deployed:
        yield deployed


@pytest.mark.parametrize("source", ["archive", "snapshot"])
@pytest.mark.parametrize("projection", ["availability", "order_outcome"])
def test_a_projection_is_rebuilt_from_either_source_and_converges(
    cloud: LocalCloud, projection: str, source: str
) -> None:
    # GIVEN a storefront history
    storefront(cloud)
    notified = notification_items(cloud)
    # WHEN the projection is dropped and rebuilt
    report = rebuild(target(cloud), projection, source, progress=False)
    # THEN its items were dropped and written again, it converged, and no customer was notified again
    assert report.dropped > 0
    assert report.written == report.dropped
    assert report.events_replayed > 0
    assert report.divergent == 0
    assert notification_items(cloud) == notified


def test_customer_notifications_are_not_rebuildable(cloud: LocalCloud) -> None:
    with pytest.raises(RebuildError, match="not rebuildable"):
        rebuild(target(cloud), "order_notification", "snapshot", progress=False)

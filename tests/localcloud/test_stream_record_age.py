"""Record age on localcloud's clock: records written after the clock was advanced are young, not expired."""

from __future__ import annotations

from localcloud.cloud import LocalCloud
from tests.localcloud.helpers import batches, drain, put_records


def test_records_written_after_the_clock_moved_hours_ahead_are_delivered(cloud: LocalCloud) -> None:
    # GIVEN localcloud's clock two hours ahead of the wall clock (MaximumRecordAgeInSeconds is 120)
    cloud.advance(7200)
    # WHEN records are written now and pumped
    put_records(cloud, "PartialTable", ["ok", "ok"])
    cloud.run_until_quiet()
    # THEN they are delivered: their age counts from when they were written on the same clock
    assert batches(cloud, "PartialStreamFunction") == [["k0", "k1"]]
    assert drain(cloud, "FailuresQueue") == []


def test_records_written_before_the_clock_moved_age_with_it(cloud: LocalCloud) -> None:
    # GIVEN a clock already ahead, and records written on it
    cloud.advance(3600)
    put_records(cloud, "PartialTable", ["ok"])
    # WHEN the clock then passes the maximum age before the mapping polls
    cloud.advance(121)
    cloud.run_until_quiet()
    # THEN the records expired
    assert batches(cloud, "PartialStreamFunction") == []
    [failure] = drain(cloud, "FailuresQueue")
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"

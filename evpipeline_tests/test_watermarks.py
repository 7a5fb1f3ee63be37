"""Watermark rules, as pure logic: where the next delta starts for each clock, and that it never goes back.

The sync suites show the rules at work over HTTP; these pin each branch with literal times, so a
rule can not change without a test naming which one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from evpipeline.watermarks import Clock, WatermarkRule


def at(minute: int) -> datetime:
    return datetime(2026, 11, 1, 12, minute, tzinfo=UTC)


def test_since_is_none_for_a_first_run_or_a_full_pull_else_the_stored_value_minus_the_overlap() -> None:
    rule = WatermarkRule(Clock.SERVER, overlap=timedelta(seconds=90))
    assert rule.since(None) is None
    assert rule.since(at(30), full=True) is None
    assert rule.since(at(30)) == datetime(2026, 11, 1, 12, 28, 30, tzinfo=UTC)
    assert rule.since(at(30), overlap_seconds=600) == at(20)  # a run's own overlap replaces the rule's
    assert rule.since(at(30), overlap_seconds=0) == at(30)  # zero is a value, not "unset"


def test_a_tracker_starts_from_the_stored_watermark_and_keeps_it_when_nothing_moved() -> None:
    for clock in (Clock.SERVER, Clock.RECORDS, Clock.OBSERVED):
        assert WatermarkRule(clock).tracker(at(5)).value() == at(5), clock
        assert WatermarkRule(clock).tracker().value() is None, clock


def test_server_clock_takes_the_first_pages_time_not_a_later_one() -> None:
    mark = WatermarkRule(Clock.SERVER).tracker(at(1))
    mark.page(at(10))
    mark.page(at(12))
    mark.seen(pd.Series([pd.Timestamp(at(50))]))  # record stamps do not move a server clock
    assert mark.value() == at(10)


def test_records_clock_takes_the_newest_record_capped_at_the_first_pages_time() -> None:
    below = WatermarkRule(Clock.RECORDS).tracker()
    below.page(at(20))
    below.seen(pd.Series([pd.Timestamp(at(3)), pd.Timestamp(at(7))]))
    assert below.value() == at(7)

    ahead = WatermarkRule(Clock.RECORDS).tracker()  # a record stamped after the server answered
    ahead.page(at(20))
    ahead.seen(pd.Series([pd.Timestamp(at(25))]))
    assert ahead.value() == at(20)

    no_page_time = WatermarkRule(Clock.RECORDS).tracker()
    no_page_time.seen(at(9))
    assert no_page_time.value() == at(9)

    no_records = WatermarkRule(Clock.RECORDS).tracker(at(2))
    no_records.page(at(20))
    assert no_records.value() == at(2)  # an empty delta keeps the stored watermark


def test_observed_clock_takes_the_newest_observation_across_batches_ignoring_empty_and_missing() -> None:
    mark = WatermarkRule(Clock.OBSERVED).tracker()
    mark.seen(pd.Series([pd.Timestamp(at(4)), pd.NaT, pd.Timestamp(at(8))]))
    mark.seen(pd.Series([], dtype="datetime64[ns, UTC]"))
    mark.seen(pd.Series([pd.NaT]))
    mark.seen(None)
    mark.seen(at(6))  # a single stamp, older than what was seen
    assert mark.value() == at(8)
    mark.seen(at(9))
    assert mark.value() == at(9)


def test_local_clock_takes_when_the_pull_started() -> None:
    before = datetime.now(UTC)
    mark = WatermarkRule(Clock.LOCAL).tracker(datetime(2020, 1, 1, tzinfo=UTC))
    after = datetime.now(UTC)
    assert before <= mark.value() <= after  # type: ignore[operator]  # value() is set: LOCAL always has a start


@pytest.mark.parametrize("clock", [Clock.SERVER, Clock.RECORDS, Clock.OBSERVED])
def test_a_watermark_never_goes_back_behind_the_stored_one(clock: Clock) -> None:
    mark = WatermarkRule(clock).tracker(at(30))
    mark.page(at(10))  # a provider clock that jumped back
    mark.seen(at(5))
    assert mark.value() == at(30)

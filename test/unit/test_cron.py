# SPDX-License-Identifier: GPL-3.0-or-later
"""The cron dialect: parsing, next runs, DST, checked against an independent oracle."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.cron import CronSchedule
from test.cron_oracle import OracleCron

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc


def runs(expression: str, since: datetime, zone, count: int) -> list[str]:
    schedule = CronSchedule.parse(expression)
    result = []
    for _ in range(count):
        since = schedule.next_after(since, zone)
        result.append(since.isoformat())
    return result


@pytest.mark.parametrize("expression, expected", [
    ("* */2 * * *", ["2026-07-01T02:00:00+08:00", "2026-07-01T04:00:00+08:00"]),
    ("*/20 * * * *", ["2026-07-01T00:20:00+08:00", "2026-07-01T00:40:00+08:00"]),
    ("10 0,6,13,20 * * *", ["2026-07-01T00:10:00+08:00", "2026-07-01T06:10:00+08:00"]),
    ("0-20/10 3 * * *", ["2026-07-01T03:00:00+08:00", "2026-07-01T03:10:00+08:00"]),
    ("0 0 * jan mon", ["2027-01-04T00:00:00+08:00", "2027-01-11T00:00:00+08:00"]),
    ("0 12 * * 7", ["2026-07-05T12:00:00+08:00", "2026-07-12T12:00:00+08:00"]),
    ("0 12 * * 0", ["2026-07-05T12:00:00+08:00", "2026-07-12T12:00:00+08:00"]),
    ("@daily", ["2026-07-02T00:00:00+08:00", "2026-07-03T00:00:00+08:00"]),
    ("@hourly", ["2026-07-01T01:00:00+08:00", "2026-07-01T02:00:00+08:00"]),
    ("@weekly", ["2026-07-05T00:00:00+08:00", "2026-07-12T00:00:00+08:00"]),
    ("@monthly", ["2026-08-01T00:00:00+08:00", "2026-09-01T00:00:00+08:00"]),
    ("@yearly", ["2027-01-01T00:00:00+08:00", "2028-01-01T00:00:00+08:00"]),
    # Both day fields restricted: either matches (1st of month, or any Friday).
    ("0 6 1 * fri", ["2026-07-01T06:00:00+08:00", "2026-07-03T06:00:00+08:00"]),
    ("0 0 L * *", ["2026-07-31T00:00:00+08:00", "2026-08-31T00:00:00+08:00"]),
    ("0 0 * * 5#2", ["2026-07-10T00:00:00+08:00", "2026-08-14T00:00:00+08:00"]),
    ("0 0 29 2 *", ["2028-02-29T00:00:00+08:00", "2032-02-29T00:00:00+08:00"]),
])
def test_next_runs(expression, expected):
    since = datetime(2026, 7, 1, 0, 0, 30, tzinfo=SHANGHAI)
    assert runs(expression, since, SHANGHAI, 2) == expected


def test_next_run_is_strictly_after_since():
    since = datetime(2026, 7, 1, 6, 10, tzinfo=SHANGHAI)
    assert runs("10 6 * * *", since, SHANGHAI, 1) == ["2026-07-02T06:10:00+08:00"]


def test_minute_star_with_hour_star_runs_every_minute():
    since = datetime(2026, 7, 1, 6, 10, tzinfo=SHANGHAI)
    assert runs("* * * * *", since, SHANGHAI, 2) == [
        "2026-07-01T06:11:00+08:00", "2026-07-01T06:12:00+08:00"]


class TestDaylightSaving:
    def test_summer_offset_is_correct(self):
        since = datetime(2026, 7, 1, 12, tzinfo=UTC)
        assert runs("0 3 * * *", since, BERLIN, 1) == ["2026-07-02T03:00:00+02:00"]
        assert runs("0 3 * * *", since, NEW_YORK, 1) == ["2026-07-02T03:00:00-04:00"]

    def test_gap_time_runs_at_first_instant_after_gap(self):
        since = datetime(2026, 3, 7, 12, tzinfo=NEW_YORK)
        assert runs("30 2 * * *", since, NEW_YORK, 2) == [
            "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
        since = datetime(2026, 3, 28, 12, tzinfo=BERLIN)
        assert runs("15 2 * * *", since, BERLIN, 1) == ["2026-03-29T03:00:00+02:00"]

    def test_fixed_hour_runs_once_on_fall_back_day(self):
        since = datetime(2026, 10, 31, 12, tzinfo=NEW_YORK)
        assert runs("30 1 * * *", since, NEW_YORK, 2) == [
            "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        # Asked from inside the repeated hour, it does not run again that day.
        inside_second = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)  # 01:10 EST
        assert runs("30 1 * * *", inside_second, NEW_YORK, 1) == ["2026-11-02T01:30:00-05:00"]

    def test_hour_star_runs_through_both_repeated_hours(self):
        since = datetime(2026, 11, 1, 0, 10, tzinfo=NEW_YORK)
        assert runs("*/30 * * * *", since, NEW_YORK, 6) == [
            "2026-11-01T00:30:00-04:00", "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"]
        since = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
        assert runs("0 * * * *", since, BERLIN, 3) == [
            "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00"]


ZONES = [SHANGHAI, BERLIN, NEW_YORK]
ORACLE_EXPRESSIONS = [
    "30 2 * * *", "30 1 * * *", "0 2 * * *", "0 3 * * *", "*/15 * * * *", "0 * * * *",
    "* */2 * * *", "10 0,6,13,20 * * *", "45 1-3 * * *", "*/20 2 * * *", "5 * * * *",
    "0 3 * * 0", "0 12 1,15 * 3", "* 2 * * *", "59 1 * * *", "0-30/10 1,2 * * *",
]
SINCES = [
    datetime(2026, 1, 15, 9, 17, tzinfo=UTC),   # winter
    datetime(2026, 7, 15, 22, 3, tzinfo=UTC),   # summer
    datetime(2026, 3, 7, 23, 0, tzinfo=UTC),    # before New York springs forward
    datetime(2026, 3, 8, 6, 45, tzinfo=UTC),    # just before New York's gap
    datetime(2026, 3, 29, 0, 20, tzinfo=UTC),   # just before Berlin's gap
    datetime(2026, 10, 25, 0, 10, tzinfo=UTC),  # inside Berlin's first 02:xx
    datetime(2026, 10, 25, 1, 10, tzinfo=UTC),  # inside Berlin's repeated 02:xx
    datetime(2026, 11, 1, 5, 20, tzinfo=UTC),   # inside New York's first 01:xx
    datetime(2026, 11, 1, 6, 20, tzinfo=UTC),   # inside New York's repeated 01:xx
]


@pytest.mark.parametrize("zone", ZONES, ids=str)
@pytest.mark.parametrize("expression", ORACLE_EXPRESSIONS)
def test_matches_independent_oracle(expression, zone):
    schedule = CronSchedule.parse(expression)
    oracle = OracleCron(expression)
    for since in SINCES:
        moment = since
        for _ in range(4):  # follow a chain of runs across the transitions
            expected = oracle.next_after(moment, zone)
            got = schedule.next_after(moment, zone)
            assert got == expected and got.utcoffset() == expected.utcoffset(), (
                f"{expression} in {zone} after {moment.isoformat()}: "
                f"{got.isoformat()} != {expected.isoformat()}")
            moment = got


@pytest.mark.parametrize("text, fragment", [
    ("bad", "has 1 fields, not 5"),
    ("1 2 3 4 5 6", "has 6 fields"),
    ("60 * * * *", "is not a cron expression"),
    ("* 24 * * *", "is not a cron expression"),
    ("0 0 0 * *", "is not a cron expression"),
    ("0 0 * 13 *", "is not a cron expression"),
    ("*/0 * * * *", "is not a cron expression"),
    ("0 0 * * 8", "is not a cron expression"),
    ("@reboot", "unknown macro"),
    ("0 0 15W * *", "W (nearest weekday) is not supported"),
    ("0 0 31 2 *", "never matches"),
    ("", "has 0 fields"),
])
def test_bad_expressions_are_refused_with_help(text, fragment):
    with pytest.raises(ValueError) as caught:
        CronSchedule.parse(text)
    assert fragment in str(caught.value)
    assert "minute 0-59" in str(caught.value)


def test_naive_since_is_refused():
    with pytest.raises(ValueError):
        CronSchedule.parse("* * * * *").next_after(datetime(2026, 1, 1), UTC)


# --- properties -----------------------------------------------------------------------------

def _field_text(low: int, high: int):
    value = st.integers(low, high)
    single = value.map(str)
    step = st.integers(1, max(1, (high - low) // 2)).map(lambda n: f"*/{n}")
    span = st.tuples(value, value).map(sorted).map(lambda pair: f"{pair[0]}-{pair[1]}")
    stepped_span = st.tuples(value, value, st.integers(1, 5)).map(
        lambda t: f"{min(t[0], t[1])}-{max(t[0], t[1])}/{t[2]}")
    listed = st.lists(value, min_size=2, max_size=4, unique=True).map(
        lambda values: ",".join(map(str, values)))
    return st.one_of(st.just("*"), single, step, span, stepped_span, listed)


EXPRESSIONS = st.tuples(
    _field_text(0, 59), _field_text(0, 23), _field_text(1, 28), _field_text(1, 12),
    _field_text(0, 7),
).map(" ".join)
TRANSITIONS = [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
               datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)]
INSTANTS = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2080, 1, 1),
                 timezones=st.just(UTC)),
    st.builds(lambda at, seconds: at + timedelta(seconds=seconds),
              st.sampled_from(TRANSITIONS), st.integers(-6 * 3600, 6 * 3600)),
)


@settings(max_examples=300, deadline=None)
@given(expression=EXPRESSIONS, since=INSTANTS, zone=st.sampled_from(ZONES))
def test_next_run_is_after_since_and_matches(expression, since, zone):
    schedule = CronSchedule.parse(expression)
    oracle = OracleCron(expression)
    result = schedule.next_after(since, zone)
    assert result > since
    assert result.second == 0 and result.microsecond == 0
    assert oracle.runs_at(result.astimezone(UTC), zone), (expression, since, result)


@settings(max_examples=200, deadline=None)
@given(expression=EXPRESSIONS, since=INSTANTS)
def test_no_earlier_match_in_utc(expression, since):
    """Without DST the answer is the first matching minute; check the minute before it too."""
    schedule = CronSchedule.parse(expression)
    result = schedule.next_after(since, UTC)
    oracle = OracleCron(expression)
    if result - since <= timedelta(days=2):
        probe = since.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while probe < result:
            assert not oracle.runs_at(probe, UTC)
            probe += timedelta(minutes=1)


def test_the_last_answer_is_reused_only_for_the_same_question():
    """Tasks sharing an expression share its schedule: the same (after, zone) is answered
    from the last answer, and any other question is computed again."""
    from mirror.zoneoffsets import ZoneOffsets, offsets_for

    schedule = CronSchedule.parse("0 */6 * * *")
    assert CronSchedule.parse("0  */6 * * *") is schedule
    berlin, utc = offsets_for(ZoneInfo("Europe/Berlin")), offsets_for(timezone.utc)
    after = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc).timestamp()  # Berlin's DST day
    for offsets, later in [(berlin, 0), (berlin, 0), (utc, 0), (berlin, 6 * 3600),
                           (berlin, 6 * 3600 - 0.5), (utc, 6 * 3600), (berlin, 0),
                           (ZoneOffsets(ZoneInfo("Europe/Berlin")), 0)]:
        fresh = CronSchedule._parse_uncached("0 */6 * * *")
        assert schedule.next_instant(after + later, offsets) == fresh.next_instant(
            after + later, offsets)
    assert schedule == CronSchedule._parse_uncached("0 */6 * * *")  # the memo is not compared
    assert len({schedule, CronSchedule._parse_uncached("0 */6 * * *")}) == 1

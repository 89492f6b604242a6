"""When flow timers fall due (engine/runtime/flows/recurrence.py): a date's midnight in the
organisation's time zone, anniversaries (29 February on the 28th in common years), and the
first anniversary a yearly timer is set for — never one in the past."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from engine.runtime.flows.recurrence import anniversary, next_yearly, start_of, yearly_due

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_date_counts_from_its_midnight_in_the_zone_a_datetime_from_its_instant() -> None:
    assert start_of(date(2026, 12, 7), SHANGHAI) == datetime(2026, 12, 6, 16, 0, tzinfo=UTC)
    moment = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    assert start_of(moment, SHANGHAI) is moment


def test_the_29th_of_february_falls_on_the_28th_in_common_years() -> None:
    leap = date(1996, 2, 29)
    assert [anniversary(leap, y) for y in (2027, 2028, 2100)] == [
        date(2027, 2, 28), date(2028, 2, 29), date(2100, 2, 28)]
    assert yearly_due(leap, 2027, -timedelta(days=3), UTC) == datetime(2027, 2, 25, tzinfo=UTC)


def test_the_first_anniversary_is_today_or_later() -> None:
    now = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai, 4 December
    three_before = -timedelta(days=3)
    # due 3 December: passed, next year's
    assert next_yearly(date(1980, 12, 6), three_before, SHANGHAI, now) == (
        2027, datetime(2027, 12, 3, tzinfo=SHANGHAI))
    # due today (its midnight passed an hour ago): still this year's, it fires at once
    assert next_yearly(date(1980, 12, 7), three_before, SHANGHAI, now) == (
        2026, datetime(2026, 12, 4, tzinfo=SHANGHAI))
    # an anniversary early in January, three days before: due late December
    assert next_yearly(date(1975, 1, 2), three_before, SHANGHAI, now) == (
        2027, datetime(2026, 12, 30, tzinfo=SHANGHAI))
    # after a long offset, last year's anniversary may still be ahead
    assert next_yearly(date(1990, 11, 1), timedelta(days=40), SHANGHAI, now) == (
        2026, datetime(2026, 12, 11, tzinfo=SHANGHAI))
    # never before the date itself, and after the year that just fired
    assert next_yearly(date(2028, 3, 1), timedelta(0), SHANGHAI, now)[0] == 2028
    assert next_yearly(date(1980, 12, 7), three_before, SHANGHAI, now, after=2026)[0] == 2027
    assert next_yearly(date(9999, 1, 1), timedelta(0), UTC,
                       datetime(9999, 6, 1, tzinfo=UTC)) is None


@given(value=st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
       days=st.integers(min_value=-400, max_value=400),
       now=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31),
                        timezones=st.just(UTC)),
       after=st.one_of(st.none(), st.integers(min_value=1900, max_value=2100)))
def test_the_next_anniversary_is_the_first_due_today_or_later(
        value: date, days: int, now: datetime, after: int | None) -> None:
    offset = timedelta(days=days)
    found = next_yearly(value, offset, SHANGHAI, now, after=after)
    assert found is not None
    year, due = found
    today = start_of(now.astimezone(SHANGHAI).date(), SHANGHAI)
    first = max(value.year, after + 1 if after is not None else value.year)
    assert year >= first and due >= today
    assert due == yearly_due(value, year, offset, SHANGHAI)
    if year > first:  # the one before it was due before today
        assert yearly_due(value, year - 1, offset, SHANGHAI) < today

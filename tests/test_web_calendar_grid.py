"""The calendar's days (engine/web/pages/calendar_grid.py): whole weeks from the reader's
first weekday, local midnights across daylight saving, moves that keep the wall-clock time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from engine.web.pages.calendar_grid import first_weekday, grid, moved_datetime, week_start

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_first_weekday_comes_from_babel() -> None:
    assert first_weekday("en") == 6  # en → en_Latn_US: Sunday
    assert first_weekday("zh-CN") == 0  # Monday


@pytest.mark.parametrize(("anchor", "first", "begin", "end", "weeks"), [
    (date(2026, 2, 10), 6, date(2026, 2, 1), date(2026, 2, 28), 4),  # Feb 2026: Sun-Sat
    (date(2026, 2, 10), 0, date(2026, 1, 26), date(2026, 3, 1), 5),
    (date(2024, 2, 29), 0, date(2024, 1, 29), date(2024, 3, 3), 5),  # a leap February
    (date(2026, 8, 31), 6, date(2026, 7, 26), date(2026, 9, 5), 6),  # Aug 2026: six weeks
])
def test_a_month_is_whole_weeks(anchor: date, first: int, begin: date, end: date,
                                weeks: int) -> None:
    g = grid("month", anchor, first, SHANGHAI)
    assert (g.first_day, g.last_day, len(g.weeks)) == (begin, end, weeks)
    assert all(len(w) == 7 and w[0].weekday() == first for w in g.weeks)
    assert g.in_month(anchor) and not g.in_month(date(2000, 1, 1))


def test_previous_and_next_cross_the_year() -> None:
    january = grid("month", date(2026, 1, 31), 0, SHANGHAI)
    assert january.previous() == date(2025, 12, 1) and january.next() == date(2026, 2, 1)
    december = grid("month", date(2025, 12, 15), 0, SHANGHAI)
    assert december.next() == date(2026, 1, 1)
    week = grid("week", date(2025, 12, 31), 0, SHANGHAI)
    assert week.days[0] == date(2025, 12, 29) and week.days[-1] == date(2026, 1, 4)
    assert week.next() == date(2026, 1, 7) and week.previous() == date(2025, 12, 24)
    assert week_start(date(2026, 3, 15), 6) == date(2026, 3, 15)  # a Sunday starts its week


def test_days_begin_at_local_midnight_across_daylight_saving() -> None:
    # Berlin goes from UTC+1 to UTC+2 on 2026-03-29: the week's ends differ in offset
    g = grid("week", date(2026, 3, 29), 0, BERLIN)
    assert g.start == datetime(2026, 3, 23, tzinfo=BERLIN)
    assert g.start.astimezone(UTC) == datetime(2026, 3, 22, 23, tzinfo=UTC)
    assert g.end.astimezone(UTC) == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert g.local(datetime(2026, 3, 29, 21, 59, tzinfo=UTC)).date() == date(2026, 3, 29)


def test_a_move_keeps_the_wall_clock_time() -> None:
    # 09:30 in Berlin on Friday 27 March (08:30 UTC) moved past the change: still 09:30
    before = datetime(2026, 3, 27, 8, 30, tzinfo=UTC)
    assert moved_datetime(before, date(2026, 3, 30), None, BERLIN) == \
        datetime(2026, 3, 30, 7, 30, tzinfo=UTC)
    # dropped on the 14:00 row: 14:30 local, minutes kept
    assert moved_datetime(before, date(2026, 3, 30), 14, BERLIN) == \
        datetime(2026, 3, 30, 12, 30, tzinfo=UTC)
    # a record without a time gets the day's midnight (or the hour)
    assert moved_datetime(None, date(2026, 3, 5), None, SHANGHAI) == \
        datetime(2026, 3, 4, 16, tzinfo=UTC)
    # 23:30 in Shanghai is the previous day in UTC: the day is the local one
    late = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    assert moved_datetime(late, date(2026, 3, 5), None, SHANGHAI) == \
        datetime(2026, 3, 5, 15, 30, tzinfo=UTC)

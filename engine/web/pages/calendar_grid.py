"""The days a calendar shows: a month of whole weeks or one week, in the organisation's
time zone (settings.yaml `time_zone`), starting on the viewer's first day of the week.

A grid knows its days, the instants where they begin and end (local midnights, as aware
datetimes: what the records query compares a datetime field with), the day and hour at
which a stored value is drawn, and the value a record gets when dropped on another day.

>>> from zoneinfo import ZoneInfo
>>> g = grid("month", date(2026, 3, 18), 0, ZoneInfo("Asia/Shanghai"))
>>> g.days[0], g.days[-1], len(g.weeks)
(datetime.date(2026, 2, 23), datetime.date(2026, 4, 5), 6)
>>> g.start.isoformat(), g.end.isoformat()
('2026-02-23T00:00:00+08:00', '2026-04-06T00:00:00+08:00')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

from babel.core import Locale, get_global

from engine.web.i18n import babel_locale

View = Literal["month", "week"]
VIEWS: tuple[View, ...] = ("month", "week")
DAYS_PER_WEEK = 7


@cache
def first_weekday(language: str) -> int:
    """The day a week starts on for readers of `language` (0 Monday … 6 Sunday), from
    Babel's CLDR week data; a language without a territory takes its likely one (en: US).

    >>> first_weekday("en"), first_weekday("zh-CN")
    (6, 0)
    """
    locale = babel_locale(language)
    if locale.territory is None:
        likely = get_global("likely_subtags").get(locale.language)
        if likely:
            locale = Locale.parse(likely)
    return int(locale.first_week_day)


def week_start(day: date, first: int) -> date:
    """The first day of the week holding `day`, weeks starting on weekday `first`.

    >>> week_start(date(2026, 3, 18), 0), week_start(date(2026, 3, 18), 6)
    (datetime.date(2026, 3, 16), datetime.date(2026, 3, 15))
    """
    return day - timedelta(days=(day.weekday() - first) % DAYS_PER_WEEK)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """Where `day` begins in `zone`, as an aware datetime in UTC."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Grid:
    view: View
    anchor: date
    """The day the grid was asked for (its month, or its week)."""
    days: tuple[date, ...]
    zone: ZoneInfo

    @property
    def weeks(self) -> tuple[tuple[date, ...], ...]:
        return tuple(self.days[i:i + DAYS_PER_WEEK]
                     for i in range(0, len(self.days), DAYS_PER_WEEK))

    @property
    def first_day(self) -> date:
        return self.days[0]

    @property
    def last_day(self) -> date:
        return self.days[-1]

    @property
    def start(self) -> datetime:
        """The first instant shown (midnight of the first day, local), inclusive."""
        return local_midnight(self.first_day, self.zone).astimezone(self.zone)

    @property
    def end(self) -> datetime:
        """The instant after the last day shown (the next local midnight), exclusive."""
        return local_midnight(self.last_day + timedelta(days=1), self.zone) \
            .astimezone(self.zone)

    def previous(self) -> date:
        """The anchor of the grid before this one (the month or the week before)."""
        if self.view == "week":
            return self.anchor - timedelta(days=DAYS_PER_WEEK)
        return (self.anchor.replace(day=1) - timedelta(days=1)).replace(day=1)

    def next(self) -> date:
        if self.view == "week":
            return self.anchor + timedelta(days=DAYS_PER_WEEK)
        return (self.anchor.replace(day=28) + timedelta(days=4)).replace(day=1)

    def in_month(self, day: date) -> bool:
        """Whether `day` belongs to the month shown (a month view also shows the edges of
        the weeks around it); every day of a week view does."""
        return self.view == "week" or (day.year, day.month) == \
            (self.anchor.year, self.anchor.month)

    def local(self, value: datetime) -> datetime:
        """A stored (UTC) instant as the wall-clock time of the grid's zone."""
        return value.astimezone(self.zone)


def grid(view: View, anchor: date, first: int, zone: ZoneInfo) -> Grid:
    """The days of the month (whole weeks, so 4 to 6 of them) or of the week holding
    `anchor`, weeks starting on weekday `first`.

    >>> g = grid("week", date(2026, 3, 18), 6, ZoneInfo("UTC"))
    >>> g.days[0], g.days[-1]
    (datetime.date(2026, 3, 15), datetime.date(2026, 3, 21))
    """
    if view == "week":
        begin = week_start(anchor, first)
        count = DAYS_PER_WEEK
    else:
        month_first = anchor.replace(day=1)
        begin = week_start(month_first, first)
        last = (month_first + timedelta(days=31)).replace(day=1) - timedelta(days=1)
        end = week_start(last, first) + timedelta(days=DAYS_PER_WEEK)
        count = (end - begin).days
    return Grid(view, anchor, tuple(begin + timedelta(days=i) for i in range(count)), zone)


def moved_datetime(value: datetime | None, day: date, hour: int | None,
                   zone: ZoneInfo) -> datetime:
    """A datetime dropped on `day` (and on `hour`, in a week view): the same wall-clock
    time on that day in `zone`, at `hour` with its minutes kept when one is given; stored
    in UTC. A record without a time gets midnight (or the hour).

    >>> sh = ZoneInfo("Asia/Shanghai")
    >>> moved_datetime(datetime(2026, 3, 2, 15, 30, tzinfo=UTC), date(2026, 3, 5), None, sh)
    datetime.datetime(2026, 3, 5, 15, 30, tzinfo=datetime.timezone.utc)
    >>> moved_datetime(datetime(2026, 3, 2, 15, 30, tzinfo=UTC), date(2026, 3, 5), 9, sh)
    datetime.datetime(2026, 3, 5, 1, 30, tzinfo=datetime.timezone.utc)
    """
    wall = value.astimezone(zone).time().replace(tzinfo=None) if value is not None else time()
    if hour is not None:
        wall = wall.replace(hour=hour)
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)

"""When a flow's timer falls due (docs/flows.md#timers): a while after (or before) a date or
datetime of the record — a date counts from its midnight in the organisation's time zone —
and, for `every: year`, at each anniversary of a date.

An anniversary of 29 February falls on 28 February in the years without one. The first
anniversary a yearly timer is set for is the first one, in the date's own year or later,
whose due moment (the anniversary's midnight plus the offset) is today or later: never one in
the past.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

LAST_YEAR = 9999
"""No anniversary is set beyond the years a date holds."""


def start_of(value: date | datetime, zone: tzinfo) -> datetime:
    """The moment a timer counts from: a datetime's instant, a date's midnight in `zone`."""
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0), tzinfo=zone)


def anniversary(value: date, year: int) -> date:
    """`value`'s day and month in `year` (29 February: the 28th in a common year).

    >>> anniversary(date(2000, 2, 29), 2027), anniversary(date(2000, 2, 29), 2028)
    (datetime.date(2027, 2, 28), datetime.date(2028, 2, 29))
    """
    try:
        return value.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def yearly_due(value: date, year: int, offset: timedelta, zone: tzinfo) -> datetime:
    """When the timer of `value`'s anniversary in `year` falls due."""
    return start_of(anniversary(value, year), zone) + offset


def next_yearly(value: date, offset: timedelta, zone: tzinfo, now: datetime, *,
                after: int | None = None) -> tuple[int, datetime] | None:
    """The year and due moment of the first anniversary of `value` — in its own year or
    later, and after the year `after` (the one that just fired) — due today or later (today
    as `now` is in `zone`); None when there is none before the year 10000.

    >>> from datetime import UTC
    >>> now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    >>> next_yearly(date(1980, 12, 6), -timedelta(days=3), UTC, now)[0]  # due 12-03: passed
    2027
    >>> next_yearly(date(1980, 12, 7), -timedelta(days=3), UTC, now)
    (2026, datetime.datetime(2026, 12, 4, 0, 0, tzinfo=datetime.timezone.utc))
    """
    today = start_of(now.astimezone(zone).date(), zone)
    try:
        earliest = (today - offset).year - 1
    except OverflowError:
        earliest = value.year
    year = max(value.year, earliest, (after + 1) if after is not None else value.year)
    while year <= LAST_YEAR:
        try:
            due = yearly_due(value, year, offset, zone)
        except OverflowError:
            return None
        if due >= today:
            return year, due
        year += 1
    return None

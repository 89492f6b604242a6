"""The fiscal calendar of reports: settings.yaml `fiscal_year_start` (a month, 1-12).

A fiscal year is named by the calendar year it starts in: with `fiscal_year_start: 4`,
FY2026 runs from 1 April 2026 to 31 March 2027, and its first quarter `FY2026-Q1` is April
to June 2026. With 1 (the default) the fiscal year is the calendar year and the names stay
`2026` and `2026-Q1`.

The same calendar serves three places, which must agree to the day: the quarter and year
buckets of a report's groups (in SQL, `bucket_sql`), the period presets of its parameters
(`preset_range`), and the date range a bucketed group key drills down to (`key_range`).

>>> fiscal_year(date(2027, 3, 31), 4), fiscal_year(date(2026, 4, 1), 4)
(2026, 2026)
>>> bucket_name("quarter", date(2026, 12, 31), 4), bucket_name("quarter", date(2026, 1, 2), 1)
('FY2026-Q3', '2026-Q1')
>>> key_range("quarter", "FY2026-Q4", 4)
(datetime.date(2027, 1, 1), datetime.date(2027, 4, 1))
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Integer, String, case, cast, extract, func, literal, literal_column
from sqlalchemy.sql.elements import ColumnElement

from engine.metadata.report_params import PRESETS

__all__ = ["PRESETS", "bucket_name", "bucket_sql", "key_range", "preset_range"]

DateRange = tuple[date | None, date | None]
"""(first day, last day), both included; None: open on that side."""


def fiscal_year(d: date, start: int) -> int:
    """The fiscal year of `d`: the calendar year its fiscal year starts in."""
    return d.year if d.month >= start else d.year - 1


def fiscal_quarter(d: date, start: int) -> int:
    """1-4: the quarter of `d` within its fiscal year."""
    return (d.month - start) % 12 // 3 + 1


def _month_start(year: int, month: int) -> date:
    """The first day of a month counted from January of `year` (month 13 is next January)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return date(year, month, 1)


def quarter_range(year: int, quarter: int, start: int) -> tuple[date, date]:
    """[first day, first day after) of fiscal quarter `quarter` of fiscal year `year`."""
    first = start + 3 * (quarter - 1)
    return _month_start(year, first), _month_start(year, first + 3)


def year_range(year: int, start: int) -> tuple[date, date]:
    """[first day, first day after) of fiscal year `year`."""
    return _month_start(year, start), _month_start(year, start + 12)


def bucket_name(bucket: str, d: date, start: int) -> str:
    """The key of `d`'s quarter or year bucket, as the report's SQL writes it."""
    prefix = "FY" if start != 1 else ""
    year = fiscal_year(d, start)
    if bucket == "year":
        return f"{prefix}{year}"
    return f"{prefix}{year}-Q{fiscal_quarter(d, start)}"


def _last(first_after: date) -> date:
    return first_after - timedelta(days=1)


def preset_range(preset: str, today: date, start: int) -> DateRange:
    """The days of a period preset on `today`; (None, None) for `all`."""
    if preset == "all":
        return None, None
    if preset.endswith("_days"):
        days = int(preset.split("_")[1])
        if preset.startswith("next"):
            return today, today + timedelta(days=days - 1)
        return today - timedelta(days=days - 1), today
    year = fiscal_year(today, start)
    if preset == "year_to_date":
        return year_range(year, start)[0], today
    which, unit = preset.split("_")
    step = {"last": -1, "this": 0, "next": 1}[which]
    if unit == "month":
        first = _month_start(today.year, today.month + step)
        return first, _last(_month_start(first.year, first.month + 1))
    if unit == "quarter":
        n = (year * 4 + fiscal_quarter(today, start) - 1) + step
        lo, hi = quarter_range(n // 4, n % 4 + 1, start)
        return lo, _last(hi)
    lo, hi = year_range(year + step, start)
    return lo, _last(hi)


_KEY = {
    "day": re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
    "week": re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
    "month": re.compile(r"^(\d{4})-(\d{2})$"),
    "quarter": re.compile(r"^(?:FY)?(\d{4})-Q([1-4])$"),
    "year": re.compile(r"^(?:FY)?(\d{4})$"),
}


def key_range(bucket: str, key: str, start: int) -> tuple[date, date] | None:
    """[first day, first day after) of a bucket's key (`2026-03`, `FY2026-Q1`); None for a
    key that is not one of the bucket's."""
    m = _KEY[bucket].match(key)
    if m is None:
        return None
    n = [int(g) for g in m.groups()]
    try:
        if bucket in ("day", "week"):
            first = date(n[0], n[1], n[2])
            return first, first + timedelta(days=1 if bucket == "day" else 7)
        if bucket == "month":
            return _month_start(n[0], n[1]), _month_start(n[0], n[1] + 1)
    except ValueError:
        return None
    if bucket == "quarter":
        return quarter_range(n[0], n[1], start)
    return year_range(n[0], start)


def bucket_sql(x: ColumnElement[Any], bucket: str, start: int, pg: bool
               ) -> ColumnElement[Any]:
    """The quarter or year bucket of a date (a datetime already in UTC) in a fiscal year
    starting in month `start` (not 1): `FY2026-Q1`, `FY2026`. Integer arithmetic on the
    month and the year, the same on both databases (no date shifting, which could cross a
    month's end)."""
    if pg:
        month = cast(extract("month", x), Integer)
        year = cast(extract("year", x), Integer)
    else:
        month = cast(func.strftime(literal_column("'%m'"), x), Integer)
        year = cast(func.strftime(literal_column("'%Y'"), x), Integer)
    first = literal(start, Integer)
    fy = year - case((month < first, 1), else_=0)
    name = literal_column("'FY'").op("||")(cast(fy, String))
    if bucket == "year":
        return name
    quarter = (month - first + 12) % 12 // 3 + 1  # whole numbers on both databases
    return name.op("||")(literal_column("'-Q'")).op("||")(cast(quarter, String))

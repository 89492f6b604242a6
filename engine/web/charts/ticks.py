"""Axis ticks: round numbers (1, 2, 2.5 or 5 times a power of ten) and calendar dates.

>>> nice_ticks(0, 937)
[0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]
>>> nice_ticks(-30, 70)
[-40.0, -20.0, 0.0, 20.0, 40.0, 60.0, 80.0]
>>> nice_ticks(0, 0)
[0.0, 1.0]
"""

from __future__ import annotations

import math
from datetime import date, timedelta

_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)


def nice_step(span: float, count: int = 5) -> float:
    """A round step cutting `span` into about `count` parts."""
    raw = span / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    return next(s * power for s in _STEPS if s * power >= raw - 1e-12 * power)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round ticks from at or below `lo` to at or above `hi` (an empty span: 0 to 1 or
    around the one value), the first and last being the axis's ends."""
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo <= 0:
        if lo == 0:
            return [0.0, 1.0]
        lo, hi = (min(lo, 0.0), max(hi, 0.0))
    step = nice_step(hi - lo, count)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) + 0.0 for i in range(first, last + 1)]


def date_ticks(lo: date, hi: date, count: int = 6) -> list[date]:
    """Calendar ticks between `lo` and `hi` (included): days, Mondays, first days of months,
    of quarters or of years, whichever gives about `count` or fewer.

    >>> date_ticks(date(2026, 1, 10), date(2026, 5, 2))
    [datetime.date(2026, 2, 1), datetime.date(2026, 3, 1), datetime.date(2026, 4, 1), \
datetime.date(2026, 5, 1)]
    """
    days = (hi - lo).days
    if days <= count * 2:
        step = max(1, math.ceil(days / count)) if days else 1
        return [lo + timedelta(days=d) for d in range(0, days + 1, step)]
    if days <= count * 7 * 2:
        weeks = max(1, math.ceil(days / 7 / count))
        first = lo + timedelta(days=(7 - lo.weekday()) % 7)
        return [first + timedelta(weeks=w) for w in range(0, days // 7 + 1, weeks)
                if first + timedelta(weeks=w) <= hi]
    for months in (1, 2, 3, 6, 12, 24, 60, 120):
        ticks = _month_starts(lo, hi, months)
        if len(ticks) <= count:
            return ticks
    return [lo, hi]


def _month_starts(lo: date, hi: date, months: int) -> list[date]:
    index = lo.year * 12 + lo.month - 1
    if lo.day != 1:
        index += 1
    index = math.ceil(index / months) * months
    out: list[date] = []
    while True:
        day = date(index // 12, index % 12 + 1, 1)
        if day > hi:
            return out
        out.append(day)
        index += months

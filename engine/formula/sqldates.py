"""SQL for the date, time and multichoice functions, on SQLite and PostgreSQL.

SQLite keeps dates as 'YYYY-MM-DD' text and datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'
(UTC) text, so its date functions work on text; PostgreSQL has native types and is asked
for UTC explicitly. Results outside the years 1-9999 are NULL, as in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING

from sqlalchemy import (
    Date,
    Float,
    and_,
    case,
    cast,
    extract,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from engine.formula.ast import TCall
from engine.formula.pycompile import MAX_OFFSET_SECONDS
from engine.formula.sqlterms import (
    Expr,
    any_null,
    cmp,
    integer,
    joined,
    k,
    minus,
    over,
    plus,
    times,
    whole_seconds,
)
from engine.formula.types import FType

if TYPE_CHECKING:
    from engine.formula.sqlcompile import SqlCompiler

Builder = Callable[["SqlCompiler", TCall, list[Expr]], Expr]

FIRST_DAY = "0001-01-01"
LAST_DAY_NUMBER = 3652058
"""Days from 0001-01-01 to 9999-12-31."""
FIRST_EPOCH, LAST_EPOCH = -62135596800, 253402300799.999999


def _day_number(c: SqlCompiler, d: Expr) -> Expr:
    """Days since 0001-01-01."""
    if c.sqlite:
        return integer(minus(func.julianday(d), k(1721425.5)))
    return minus(d, cast(k(FIRST_DAY), Date()))


def date_add(c: SqlCompiler, d: Expr, n: Expr) -> Expr:
    days = c.whole(n)
    target = plus(_day_number(c, d), days)
    in_range = and_(target >= k(0), target <= k(LAST_DAY_NUMBER))
    moved = func.date(plus(func.julianday(d), days)) if c.sqlite else plus(d, days)
    return case((in_range, moved), else_=c.value(FType.DATE, None))


def datetime_add(c: SqlCompiler, x: Expr, n: Expr, n_scale: int | None) -> Expr:
    limit = MAX_OFFSET_SECONDS
    if c.sqlite:
        # whole seconds, rounded half away from zero (SQLite rounds to whole numbers
        # exactly); a whole number of days is whole seconds already
        product = times(n, k(86400))
        seconds = integer(product if n_scale == 0 else c.round(product, 0))
        moved = joined(func.strftime(k("%Y-%m-%d %H:%M:%S"), whole_seconds(x),
                                     func.printf(k("%+d seconds"), seconds)),
                       func.substr(x, k(20)))
        return case((and_(func.abs(seconds) <= k(limit), moved >= k(FIRST_DAY)), moved),
                    else_=c.value(FType.DATETIME, None))
    seconds = c.round(times(c.num(n), k(86400)), 0)
    clamped = case((seconds > k(limit), k(limit)), (seconds < k(-limit), k(-limit)),
                   else_=seconds)
    target = plus(extract("epoch", x), seconds)
    moved = plus(x, func.make_interval(0, 0, 0, 0, 0, 0, cast(clamped, Float())))
    return case((and_(target >= k(FIRST_EPOCH), target <= k(LAST_EPOCH)), moved),
                else_=c.value(FType.DATETIME, None))


def days_between(c: SqlCompiler, later: Expr, earlier: Expr) -> Expr:
    if c.sqlite:
        return integer(minus(func.julianday(later), func.julianday(earlier)))
    return minus(later, earlier)


def _date(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    y, m, d = (c.whole(x) for x in a)
    ranges = and_(y >= k(1), y <= k(9999), m >= k(1), m <= k(12), d >= k(1), d <= k(31))
    if c.sqlite:
        text = func.printf(k("%04d-%02d-%02d"), y, m, d)
        return case((and_(ranges, cmp(func.date(text, k("+0 days")), "=", text)), text),
                    else_=c.value(FType.DATE, None))
    first = func.make_date(func.least(func.greatest(y, k(1)), k(9999)),
                           func.least(func.greatest(m, k(1)), k(12)), k(1))
    next_month = cast(plus(first, literal_column("INTERVAL '1 month'")), Date())
    month_days = minus(next_month, first)
    return case((and_(ranges, d <= month_days), func.make_date(y, m, d)),
                else_=c.value(FType.DATE, None))


def _utc(c: SqlCompiler, node: TCall, x: Expr) -> Expr:
    """On PostgreSQL, a timestamptz argument seen in UTC."""
    if not c.sqlite and node.args[0].type is FType.DATETIME:
        return func.timezone(k("UTC"), x)
    return x


def _part(sqlite_format: str, pg_field: str, offset: int = 0) -> Builder:
    def build(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
        if c.sqlite:
            value = integer(func.strftime(k(sqlite_format), whole_seconds(a[0])))
        else:
            value = integer(extract(pg_field, _utc(c, node, a[0])))
        return plus(value, k(offset)) if offset else value
    return build


def _datevalue(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return func.substr(a[0], k(1), k(10)) if c.sqlite else cast(_utc(c, node, a[0]), Date())


def _addmonths(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    d, n = a[0], c.whole(a[1])
    blank = c.value(FType.DATE, None)
    if c.sqlite:
        first = func.date(d, k("start of month"), func.printf(k("%+d months"), n))
        last = func.date(first, k("+1 month"), k("-1 day"))
        day = integer(func.strftime(k("%d"), d))
        same_day = func.date(first, func.printf(k("+%d days"), minus(day, k(1))))
        moved: Expr = func.min(same_day, last)
        return case((and_(func.abs(n) <= k(120000), moved >= k(FIRST_DAY)), moved),
                    else_=blank)
    months = plus(times(integer(extract("year", d)), k(12)),
                  plus(minus(integer(extract("month", d)), k(1)), n))
    moved = cast(plus(d, func.make_interval(0, n)), Date())
    return case((and_(months >= k(12), months <= k(9999 * 12 + 11)), moved), else_=blank)


def _adddays(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    if node.type is FType.DATE:
        return date_add(c, a[0], a[1])
    return datetime_add(c, a[0], a[1], c.scale(node.args[1]))


def _days(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return days_between(c, a[0], a[1])


def _hours_since(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    now = c.clock.now().astimezone(UTC).replace(microsecond=0)
    x = a[0]
    if c.sqlite:
        now_s = integer(func.strftime(k("%s"), c.value(FType.TEXT, f"{now:%Y-%m-%d %H:%M:%S}")))
        seconds = minus(now_s, integer(func.strftime(k("%s"), whole_seconds(x))))
        return case((x.is_(None), c.value(FType.NUMBER, None)),
                    (seconds >= k(0), over(seconds, k(3600))),
                    else_=-over(plus(-seconds, k(3599)), k(3600)))
    now_utc = func.timezone(k("UTC"), c.value(FType.DATETIME, now))
    elapsed = minus(func.date_trunc(k("second"), now_utc),
                    func.date_trunc(k("second"), func.timezone(k("UTC"), x)))
    return func.floor(over(extract("epoch", elapsed), k(3600)))


def _minutes(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    later, earlier = a
    if c.sqlite:
        seconds = minus(integer(func.strftime(k("%s"), whole_seconds(later))),
                        integer(func.strftime(k("%s"), whole_seconds(earlier))))
        # SQLite's integer division truncates toward zero; MINUTES rounds down.
        return case((any_null(later, earlier), c.value(FType.NUMBER, None)),
                    (seconds >= k(0), over(seconds, k(60))),
                    else_=-over(plus(-seconds, k(59)), k(60)))
    elapsed = minus(func.date_trunc(k("second"), func.timezone(k("UTC"), later)),
                    func.date_trunc(k("second"), func.timezone(k("UTC"), earlier)))
    return func.floor(over(extract("epoch", elapsed), k(60)))


def _today(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return c.value(FType.DATE, c.clock.today())


def _now(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return c.now_param()


# ---- multichoice -----------------------------------------------------------------------


def _includes(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    options, option = a
    if c.sqlite:
        each = func.json_each(options).table_valued("value")
        found: Expr = select(k(1)).select_from(each).where(cmp(each.c.value, "=", option)).exists()
        blank = or_(options.is_(None), cmp(func.json_type(options), "=", k("null")))
    else:
        as_jsonb = cast(options, JSONB)
        found = cmp(as_jsonb, "@>", func.jsonb_build_array(option))
        blank = or_(options.is_(None), cmp(func.jsonb_typeof(as_jsonb), "=", k("null")))
    return case((or_(blank, option.is_(None)), c.value(FType.BOOLEAN, None)), else_=found)


DATE_BUILDERS: dict[str, Builder] = {
    "TODAY": _today, "NOW": _now, "DATE": _date, "DATEVALUE": _datevalue,
    "YEAR": _part("%Y", "year"), "MONTH": _part("%m", "month"), "DAY": _part("%d", "day"),
    "WEEKDAY": _part("%w", "dow", offset=1), "ADDMONTHS": _addmonths, "ADDDAYS": _adddays,
    "DAYS": _days, "HOURS_SINCE": _hours_since, "MINUTES": _minutes, "INCLUDES": _includes,
}

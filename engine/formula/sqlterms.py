"""Building blocks of the SQL the formula compiler writes: inlined constants and
operators that carry SQL's precedence (op() without it would drop needed parentheses).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, Numeric, cast, func, literal_column, or_
from sqlalchemy.sql.elements import ColumnElement

Expr = ColumnElement[Any]

SNAP_LIMIT = 15
"""SQLite rounds results back to their decimal places only up to this many."""
WIDE = Numeric(1000, 20)
"""PostgreSQL divides, roots and powers at 20 decimals before rounding to 10."""


def k(value: int | float | str) -> Expr:
    """A constant the compiler writes itself, inlined (never text from a formula)."""
    if isinstance(value, str):
        assert "'" not in value
        return literal_column(f"'{value}'")
    return literal_column(repr(value) if value >= 0 else f"({value!r})")


def sqlite_datetime(x: datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite: naive UTC with microseconds."""
    x = x.astimezone(UTC) if x.tzinfo else x
    return f"{x.year:04d}-{x:%m-%d %H:%M:%S}.{x.microsecond:06d}"


def cmp(a: Expr, op: str, b: Expr) -> Expr:
    return a.op(op, precedence=5, is_comparison=True)(b)


def plus(a: Expr, b: Expr) -> Expr:
    return a.op("+", precedence=7)(b)


def minus(a: Expr, b: Expr) -> Expr:
    return a.op("-", precedence=7)(b)


def times(a: Expr, b: Expr) -> Expr:
    return a.op("*", precedence=8)(b)


def over(a: Expr, b: Expr) -> Expr:
    return a.op("/", precedence=8)(b)


def joined(a: Expr, b: Expr) -> Expr:
    return a.op("||", precedence=6)(b)


def any_null(*xs: Expr) -> Expr:
    return or_(*(x.is_(None) for x in xs))


def integer(x: Expr) -> Expr:
    return cast(x, Integer())


def whole_seconds(x: Expr) -> Expr:
    """A SQLite datetime text without its fraction: SQLite's own date functions round
    to milliseconds, which can carry .9995 seconds into the next second (or year)."""
    return func.substr(x, k(1), k(19))

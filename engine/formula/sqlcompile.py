"""Typed tree to a SQLAlchemy expression for SQLite or PostgreSQL.

The caller supplies a column (or any expression) per field path; the result gives the
same values as the Python compilation on every record, so lists, filters, sorts and
reports on formulas run inside the database. Where the databases differ the SQL says
so explicitly: NULLIF for division by zero, guards instead of errors for impossible
dates, COLLATE "C" for text order, ASCII-only UPPER/LOWER.

SQLite has no decimal type: numbers are REAL or INTEGER, and every sum, difference and
product is rounded back to the decimal places it can have ("snapping"), which keeps
results on exact decimals up to 15 significant digits.

Constants the compiler writes itself are inlined; values from the formula and the
clock are bound parameters (cast to their type on PostgreSQL).

Builders often write an operand more than once (a guard, then the value), and nested
they would multiply it: `2^2^2^2^2^2^2^2^2` once wrote megabytes. An operand of more than
SHARE_ABOVE terms that a builder writes twice is computed once instead, in a one-row
derived table the builder's SQL reads by name (`(SELECT … v.a0 … FROM (SELECT <operand>
AS a0) AS v)`), and the SQL written so far is measured after every node: past
MAX_SQL_TERMS terms or MAX_SQL_PARAMETERS parameters the formula is refused with a
FormulaError at that node, before any SQL text is written (sqlsize.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    Numeric,
    Text,
    case,
    cast,
    false,
    func,
    literal,
    null,
    select,
    true,
    type_coerce,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

from engine.formula.ast import TCall, TField, TLiteral, TNode
from engine.formula.errors import FormulaError
from engine.formula.functions import case_positions
from engine.formula.pycompile import PLACES
from engine.formula.sqlfunctions import BUILDERS
from engine.formula.sqlsize import MAX_SQL_PARAMETERS, MAX_SQL_TERMS, SHARE_ABOVE, SqlSize
from engine.formula.sqlterms import SNAP_LIMIT, WIDE, Expr, k, over, sqlite_datetime, times
from engine.formula.types import Clock, FType, Path
from engine.messages import msg

Columns = Callable[[Path], Expr]
DIALECTS = ("sqlite", "postgresql")


class SqlCompiler:
    """Builds one expression; `expr(node)` for any node of the typed tree."""

    def __init__(self, columns: Columns, dialect: str, clock: Clock) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"formulas compile to {' and '.join(DIALECTS)}, not {dialect!r}")
        self.columns = columns
        self.sqlite = dialect == "sqlite"
        self.clock = clock
        self.size = SqlSize()

    def expr(self, node: TNode) -> Expr:
        if isinstance(node, TLiteral):
            return self.value(node.type, node.value)
        if isinstance(node, TField):
            built = self.columns(node.path)  # a computed field's own formula, maybe
        else:
            args = [self.expr(a) for a in node.args]
            built = BUILDERS[node.name](self, node, args)
            repeated = [i for i, n in enumerate(self.size.uses(built, args))
                        if n > 1 and self.size.of(args[i])[0] > SHARE_ABOVE
                        and not self.size.has_query(args[i])]
            if repeated:
                built = self.shared(node, args, repeated)
        self.charge(built, node)
        return built

    def shared(self, node: TCall, args: list[Expr], repeated: list[int]) -> Expr:
        """The node's SQL reading the `repeated` arguments once, from a one-row derived
        table, instead of writing each of them at every use.

        An argument holding a query of its own (a field read through a reference, which
        correlates to the row's table) is not moved: inside the derived table it would
        no longer see that table. It is copied, within the bound on size."""
        inner = select(*(args[i].label(f"a{i}") for i in repeated)).correlate_except(None)
        once = inner.subquery()
        named = list(args)
        for i in repeated:
            named[i] = once.c[f"a{i}"]
        outer = select(BUILDERS[node.name](self, node, named)).correlate_except(once)
        scalar = outer.scalar_subquery()
        self.size.own(inner)
        self.size.own(scalar.element)  # scalar_subquery() writes a copy of `outer`
        return scalar

    def charge(self, built: Expr, node: TNode) -> None:
        """Refuse SQL past the bounds on terms and parameters, at the node that passes."""
        terms, params = self.size.of(built)
        if terms > MAX_SQL_TERMS:
            raise FormulaError(
                msg("the formula's SQL has more than %(limit)s terms (the limit); simplify "
                    "it or split it into formula fields",
                    limit=format(MAX_SQL_TERMS, ",")), node.line, node.col)
        if params > MAX_SQL_PARAMETERS:
            raise FormulaError(
                msg("the formula's SQL has more than %(limit)s parameters (the limit); "
                    "simplify it or split it into formula fields",
                    limit=format(MAX_SQL_PARAMETERS, ",")), node.line, node.col)

    # ---- values ------------------------------------------------------------------------

    def value(self, t: FType, v: object) -> Expr:
        """A bound parameter of formula type `t` (a typed NULL for None)."""
        if v is None:
            return null() if self.sqlite or t is FType.BLANK else cast(null(), _SQL_TYPE[t])
        if t is FType.BOOLEAN:
            return true() if v else false()
        if t is FType.NUMBER:
            assert isinstance(v, Decimal)
            if not self.sqlite:
                return cast(literal(v, Numeric()), Numeric())
            if v == v.to_integral_value() and abs(v) < 2**63:
                return literal(int(v), Integer())
            return literal(float(v), Float())
        if t is FType.DATE:
            assert isinstance(v, date)
            if self.sqlite:
                return literal(v.isoformat(), Text())
            return cast(literal(v, Date()), Date())
        if t is FType.DATETIME:
            assert isinstance(v, datetime)
            if self.sqlite:
                return literal(sqlite_datetime(v), Text())
            return cast(literal(v, DateTime(timezone=True)), DateTime(timezone=True))
        return literal(v, Text()) if self.sqlite else cast(literal(v, Text()), Text())

    def num(self, x: Expr, wide: bool = False) -> Expr:
        """x as NUMERIC on PostgreSQL (bigint columns divide as integers otherwise)."""
        return x if self.sqlite else cast(x, WIDE if wide else Numeric())

    def snap(self, x: Expr, scale: int | None) -> Expr:
        """On SQLite, x rounded back to the `scale` decimal places it can have."""
        if self.sqlite and scale is not None and 0 < scale <= SNAP_LIMIT:
            return self.round(x, scale)
        return x

    def round(self, x: Expr, places: int) -> Expr:
        """x rounded half away from zero to `places` (>= 0) decimals.

        SQLite's round() prints the float with up to 26 digits and parses it back, which
        goes wrong beyond about 16 significant digits; a number that large has no
        reliable decimals to round anyway, so it is left as it is.
        """
        if not self.sqlite:
            return func.round(self.num(x), k(places))
        if places == 0:
            return func.round(x)  # SQLite rounds to whole numbers exactly
        limit = float(10 ** (SNAP_LIMIT - places))
        return case((func.abs(x) < k(limit), func.round(x, k(places))), else_=x)

    def whole(self, x: Expr, limit: int = 1_000_000_000) -> Expr:
        """x truncated toward zero and clamped to ±limit, as an INTEGER."""
        trunc = cast(x, Integer()) if self.sqlite else cast(func.trunc(self.num(x)), Integer())
        return case((x > k(limit), k(limit)), (x < k(-limit), k(-limit)), else_=trunc)

    def floor(self, x: Expr) -> Expr:
        if not self.sqlite:
            return func.floor(self.num(x))
        i = cast(x, Integer())
        return i - cast(x < i, Integer())

    def ceiling(self, x: Expr) -> Expr:
        if not self.sqlite:
            return func.ceil(self.num(x))
        i = cast(x, Integer())
        return i + cast(x > i, Integer())

    def divide(self, a: Expr, b: Expr, nonzero: bool = False) -> Expr:
        """a / b rounded to 10 places; BLANK when b is 0 (`nonzero`: b is a literal that
        is not, so no guard is written)."""
        divisor = b if nonzero else func.nullif(b, k(0))
        if self.sqlite:
            # Not self.round(): its guard would compute the quotient (often a formula of
            # its own) twice per row. round(q * 1e10) / 1e10 reads it once, is exact where
            # round(q, 10) is (|q| < 1e5) and beyond that stays within the last digit.
            unit = k(float(10**PLACES))
            return over(func.round(times(over(cast(a, Float()), divisor), unit)), unit)
        return self.round(over(self.num(a, wide=True), divisor), PLACES)

    def now_param(self) -> Expr:
        return self.value(FType.DATETIME, self.clock.now())

    # ---- scale: the decimal places a number can have (for SQLite snapping) -------------

    def scale(self, node: TNode) -> int | None:
        if isinstance(node, TLiteral):
            if isinstance(node.value, Decimal):
                exponent = node.value.as_tuple().exponent
                return max(0, -exponent) if isinstance(exponent, int) else None
            return 0
        if isinstance(node, TField):
            return node.scale
        name, args = node.name, node.args
        if name in _WHOLE or node.type is not FType.NUMBER:
            return 0
        if name in ("/", "^", "POWER", "SQRT", "VALUE"):
            return PLACES
        if name == "*":
            return _add(self.scale(args[0]), self.scale(args[1]))
        if name == "ROUND":
            return self._round_scale(node)
        if name == "IF":
            picked: tuple[TNode, ...] = args[1:]
        elif name == "CASE":
            picked = tuple(args[i] for i in case_positions(len(args))[1])
        elif name == "-" and args[0].type is FType.DATE:
            return 0
        elif name in ("+", "-", "NEG", "ABS", "MIN", "MAX", "MOD", "BLANKVALUE"):
            picked = args
        else:
            return None
        return _max(self.scale(a) for a in picked)

    def _round_scale(self, node: TCall) -> int | None:
        inner = self.scale(node.args[0])
        places = node.args[1] if len(node.args) > 1 else None
        if places is None:
            return 0
        if isinstance(places, TLiteral) and isinstance(places.value, Decimal):
            n = max(0, int(places.value))
            return n if inner is None else min(inner, n)
        return inner


_WHOLE = frozenset({"CEILING", "FLOOR", "LEN", "FIND", "YEAR", "MONTH", "DAY", "WEEKDAY",
                    "DAYS", "HOURS_SINCE", "MINUTES"})


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _max(scales: Any) -> int | None:
    found = 0
    for s in scales:
        if s is None:
            return None
        found = max(found, s)
    return found


_SQL_TYPE: dict[FType, TypeEngine[Any]] = {
    FType.NUMBER: Numeric(), FType.TEXT: Text(), FType.BOOLEAN: Boolean(),
    FType.DATE: Date(), FType.DATETIME: DateTime(timezone=True), FType.REFERENCE: Integer(),
    FType.MULTICHOICE: Text(),
}


# ---- result types: read back the same Python values evaluate() gives -------------------


class _Result(TypeDecorator[Any]):
    """Raw driver values in, formula values out; binds (for comparisons) the reverse."""

    impl = NullType
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return NullType()

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        if isinstance(value, Decimal):
            return float(value)
        if isinstance(value, datetime):
            return sqlite_datetime(value)
        if isinstance(value, date):
            return value.isoformat()
        return value


class NumberResult(_Result):
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            return Decimal(repr(value)) if value == value and abs(value) != float("inf") \
                else None
        return Decimal(value)


class BooleanResult(_Result):
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> bool | None:
        return None if value is None else bool(value)


class DateResult(_Result):
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> date | None:
        if isinstance(value, str):
            return date.fromisoformat(value)
        return value  # type: ignore[no-any-return]


class DateTimeResult(_Result):
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class OptionsResult(_Result):
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> tuple[str, ...] | None:
        if isinstance(value, str):
            value = json.loads(value)
        return None if value is None else tuple(value)


class PlainResult(_Result):
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return value


RESULT_TYPES: dict[FType, type[_Result]] = {
    FType.NUMBER: NumberResult, FType.BOOLEAN: BooleanResult, FType.DATE: DateResult,
    FType.DATETIME: DateTimeResult, FType.MULTICHOICE: OptionsResult,
    FType.TEXT: PlainResult, FType.REFERENCE: PlainResult, FType.BLANK: PlainResult,
}


def compile_sql(node: TNode, columns: Columns, dialect: str, clock: Clock) -> Expr:
    """The expression of a typed tree, typed so results read back as formula values."""
    built = SqlCompiler(columns, dialect, clock).expr(node)
    return type_coerce(built, RESULT_TYPES[node.type]())


def condition(expr: Expr) -> Expr:
    """A boolean formula expression as a WHERE condition: BLANK counts as false."""
    return func.coalesce(expr, false())

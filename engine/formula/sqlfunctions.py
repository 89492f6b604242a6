"""SQL for each operator and the number, logic and text functions, on SQLite and
PostgreSQL (dates, times and multichoice are in sqldates.py).

Every builder takes the compiler, the typed call and its arguments' expressions. Each
mirrors the Python closure of the same name in pycompile.py; where SQL would raise
(negative substr counts, numeric casts of text) a CASE returns NULL first, and values
PostgreSQL might fold at plan time are clamped so no constant branch can raise either.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Float,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    not_,
    or_,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from engine.formula.ast import TCall
from engine.formula.pycompile import PLACES
from engine.formula.sqldates import DATE_BUILDERS, date_add, datetime_add, days_between
from engine.formula.sqlterms import (
    SNAP_LIMIT,
    WIDE,
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

_LOWER = "abcdefghijklmnopqrstuvwxyz"


# ---- arithmetic ------------------------------------------------------------------------


def _plus(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    lt = node.args[0].type
    if node.type is FType.NUMBER:
        scale = c.scale(node)
        return c.snap(plus(a[0], a[1]), scale)
    i = 1 if lt is FType.NUMBER else 0  # the date's side
    when, n = a[i], a[1 - i]
    if node.type is FType.DATE:
        return date_add(c, when, n)
    return datetime_add(c, when, n, c.scale(node.args[1 - i]))


def _minus(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    lt, rt = node.args[0].type, node.args[1].type
    if lt is FType.NUMBER:
        return c.snap(minus(a[0], a[1]), c.scale(node))
    if rt is FType.DATE:
        return days_between(c, a[0], a[1])
    n = -a[1]
    if lt is FType.DATE:
        return date_add(c, a[0], n)
    return datetime_add(c, a[0], n, c.scale(node.args[1]))


def _times(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return c.snap(times(a[0], a[1]), c.scale(node))


def _divide(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return c.divide(a[0], a[1], _nonzero_literal(node.args[1]))


def _nonzero_literal(node: Any) -> bool:
    value = getattr(node, "value", None)
    return isinstance(value, Decimal) and value != 0


def _power(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    x, y = a
    exponent, base_scale = _literal_int(node.args[1]), c.scale(node.args[0])
    if (c.sqlite and exponent is not None and 0 <= exponent <= 8 and base_scale is not None
            and exponent * base_scale <= SNAP_LIMIT):
        return _small_power(c, x, exponent, base_scale)
    whole_y = integer(y) if c.sqlite else func.trunc(c.num(y))
    impossible = or_(func.abs(y) > k(1000), and_(cmp(x, "=", k(0)), y < k(0)),
                     and_(x < k(0), cmp(y, "<>", whole_y)))
    value: Expr
    if c.sqlite:
        value = case((and_(cmp(x, "=", k(0)), cmp(y, "=", k(0))), k(1)),
                     else_=c.round(func.pow(x, y), PLACES))
    else:
        value = c.round(func.power(c.num(x, wide=True), c.num(y)), PLACES)
    return case((impossible, c.value(FType.NUMBER, None)), else_=value)


def _small_power(c: SqlCompiler, x: Expr, exponent: int, scale: int) -> Expr:
    """x^n on SQLite as exact snapped products rather than pow()'s binary result."""
    if exponent == 0:
        return case((x.is_(None), c.value(FType.NUMBER, None)), else_=k(1))
    product = x
    for i in range(2, exponent + 1):
        product = c.snap(times(product, x), scale * i)
    return c.round(product, PLACES) if scale * exponent > PLACES else product


def _sqrt(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    (x,) = a
    root = c.round(func.sqrt(c.num(x, wide=True)), PLACES)
    return case((x < k(0), c.value(FType.NUMBER, None)), else_=root)


def _round(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    x = a[0]
    given = 0 if len(node.args) == 1 else _literal_int(node.args[1])
    if given is None:  # places computed per record
        n = c.whole(a[1], 100)
        if not c.sqlite:
            return func.round(c.num(x), n)
        fits = func.abs(x) < func.pow(k(10.0), minus(k(SNAP_LIMIT), n))  # see c.round
        return case((n.is_(None), c.value(FType.NUMBER, None)),
                    (n < k(0), _round_tens(x, func.pow(k(10.0), -n))),
                    (fits, func.round(x, n)), else_=x)
    places = max(-100, min(100, given))
    inner = c.scale(node.args[0])
    if inner is not None and inner <= places:
        return x  # nothing to round
    if places >= 0:
        return c.round(x, places)
    if not c.sqlite:
        return func.round(c.num(x), k(places))
    return _round_tens(x, k(float(10 ** -places)))


def _round_tens(x: Expr, unit: Expr) -> Expr:
    """SQLite's round() ignores negative places: round x / 100 and scale back."""
    return times(func.round(over(x, unit)), unit)


def _literal_int(node: Any) -> int | None:
    """The value of a whole-number literal argument, else None."""
    value = getattr(node, "value", None)
    if not isinstance(value, Decimal) or value != value.to_integral_value():
        return None
    return int(value)


def _mod(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    x, y = a
    quotient = c.divide(x, y, _nonzero_literal(node.args[1]))
    return c.snap(minus(x, times(y, c.floor(quotient))), c.scale(node))


def _minmax(sqlite_name: str, pg_name: str) -> Builder:
    def build(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
        if len(a) == 1:
            return a[0]
        if c.sqlite:  # scalar min()/max() are NULL when any argument is
            result: Expr = getattr(func, sqlite_name)(*a)
            return result
        return case((any_null(*a), c.value(node.type, None)),
                    else_=getattr(func, pg_name)(*a))
    return build


# ---- comparisons and logic -------------------------------------------------------------


def _compare(op: str) -> Builder:
    def build(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
        x, y = a
        if not c.sqlite and op not in ("=", "<>") and node.args[0].type is FType.TEXT:
            x = x.collate("C")  # order by code point, as Python does
        return cmp(x, op, y)
    return build


def _truthy(x: Expr) -> Expr:
    return func.coalesce(x, false())


def _and(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return and_(*(_truthy(x) for x in a))


def _or(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return or_(*(_truthy(x) for x in a))


def _not(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return not_(a[0])


def _if(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    otherwise = a[2] if len(a) > 2 else c.value(node.type, None)
    return case((a[0], a[1]), else_=otherwise)


def _case(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    key, rest = a[0], a[1:]
    whens = [(rest[i], rest[i + 1]) for i in range(0, len(rest) - 1, 2)]
    otherwise = rest[-1] if len(rest) % 2 else c.value(node.type, None)
    # CASE key WHEN …: the database reads the key once, not once per arm as `key = x` would
    return case(*whens, value=key, else_=otherwise)


def _blank_test(c: SqlCompiler, t: FType, x: Expr) -> Expr:
    if t is FType.TEXT:
        return or_(x.is_(None), cmp(x, "=", k("")))
    if t is FType.MULTICHOICE:
        as_jsonb = cast(x, JSONB)
        kind, length = ((func.json_type(x), func.json_array_length(x)) if c.sqlite else
                        (func.jsonb_typeof(as_jsonb), func.jsonb_array_length(as_jsonb)))
        return case((x.is_(None), true()), (cmp(kind, "=", k("null")), true()),
                    (cmp(kind, "=", k("array")), cmp(length, "=", k(0))), else_=false())
    return x.is_(None)


def _isblank(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return _blank_test(c, node.args[0].type, a[0])


def _blankvalue(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    x, default = a
    if node.args[0].type is FType.TEXT:
        return case((_blank_test(c, FType.TEXT, x), default), else_=x)
    return func.coalesce(x, default)


# ---- text ------------------------------------------------------------------------------


def _concat(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return joined(func.coalesce(a[0], k("")), func.coalesce(a[1], k("")))


def _len(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return func.length(a[0]) if c.sqlite else func.char_length(a[0])


def _left(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    n = c.whole(a[1])
    return case((n < k(0), c.value(FType.TEXT, None)), else_=func.substr(a[0], k(1), n))


def _right(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    s, n = a[0], c.whole(a[1])
    if c.sqlite:
        tail = func.substr(s, func.max(plus(minus(func.length(s), n), k(1)), k(1)))
    else:
        tail = func.right(s, n)
    return case((n < k(0), c.value(FType.TEXT, None)), else_=tail)


def _mid(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    start, count = c.whole(a[1]), c.whole(a[2])
    return case((or_(start < k(1), count < k(0)), c.value(FType.TEXT, None)),
                else_=func.substr(a[0], start, count))


def _case_map(sqlite_name: str, source: str, target: str) -> Builder:
    def build(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
        if c.sqlite:  # SQLite's upper() and lower() change ASCII letters only
            result: Expr = getattr(func, sqlite_name)(a[0])
            return result
        return func.translate(a[0], k(source), k(target))
    return build


def _trim(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return func.trim(a[0], k(" ")) if c.sqlite else func.btrim(a[0], k(" "))


def _position(c: SqlCompiler, text: Expr, search: Expr) -> Expr:
    return func.instr(text, search) if c.sqlite else func.strpos(text, search)


def _contains(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return _position(c, a[0], a[1]) > k(0)


def _begins(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    return cmp(func.substr(a[0], k(1), func.length(a[1])), "=", a[1])


def _substitute(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    s, old, new = a
    return case((new.is_(None), c.value(FType.TEXT, None)), (cmp(old, "=", k("")), s),
                else_=func.replace(s, old, new))


def _find(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    search, text = a[0], a[1]
    if len(a) == 2:
        return _position(c, text, search)
    start = c.whole(a[2])
    length = func.length(text) if c.sqlite else func.char_length(text)
    found = _position(c, func.substr(text, start), search)
    return case((any_null(search, text, start), c.value(FType.NUMBER, None)),
                (start < k(1), c.value(FType.NUMBER, None)),
                (start > plus(length, k(1)), k(0)),
                (found > k(0), minus(plus(found, start), k(1))), else_=k(0))


def _text(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    x, t = a[0], node.args[0].type
    if t is FType.NUMBER:
        return _number_text(c, node, x)
    if t is FType.BOOLEAN:
        return case((x, k("TRUE")), (not_(x), k("FALSE")), else_=c.value(FType.TEXT, None))
    if t is FType.DATE:
        return x if c.sqlite else func.to_char(x, k("YYYY-MM-DD"))
    if t is FType.DATETIME:
        if c.sqlite:
            return whole_seconds(x)
        return func.to_char(func.timezone(k("UTC"), x), k("YYYY-MM-DD HH24:MI:SS"))
    return x


def _number_text(c: SqlCompiler, node: TCall, x: Expr) -> Expr:
    """At most 10 decimals, no trailing zeros, "0" for zero (never "-0")."""
    printed: Expr
    if c.sqlite:
        known = c.scale(node.args[0])
        places = PLACES if known is None else min(known, PLACES)
        rounded = c.round(x, places)
        printed = func.printf(k(f"%.{places}f"), rounded)
        if places:  # printf always writes the point then: strip zeros, then the point
            printed = func.rtrim(func.rtrim(printed, k("0")), k("."))
    else:
        rounded = func.round(c.num(x), k(PLACES))
        printed = func.regexp_replace(cast(rounded, Text()), k(r"\.?0+$"), k(""))
    return case((x.is_(None), c.value(FType.TEXT, None)), (cmp(rounded, "=", k(0)), k("0")),
                else_=printed)


def _value(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
    t = func.trim(a[0], k(" ")) if c.sqlite else func.btrim(a[0], k(" "))
    if not c.sqlite:
        ok = cmp(t, "~", k(r"^[+-]?[0-9]+(\.[0-9]+)?$"))
        return case((ok, func.round(cast(t, WIDE), k(PLACES))),
                    else_=c.value(FType.NUMBER, None))
    u = case((func.substr(t, k(1), k(1)).in_([k("+"), k("-")]), func.substr(t, k(2))), else_=t)
    dots = minus(func.length(u), func.length(func.replace(u, k("."), k(""))))
    valid = and_(cmp(u, "<>", k("")), not_(cmp(u, "GLOB", k("*[^0-9.]*"))),
                 cmp(u, "GLOB", k("[0-9]*")), cmp(u, "GLOB", k("*[0-9]")), dots <= k(1))
    return case((valid, c.round(cast(t, Float()), PLACES)),
                else_=c.value(FType.NUMBER, None))


def _simple(name_sqlite: str, name_pg: str | None = None) -> Builder:
    def build(c: SqlCompiler, node: TCall, a: list[Expr]) -> Expr:
        name = name_sqlite if c.sqlite or name_pg is None else name_pg
        result: Expr = getattr(func, name)(*(a if c.sqlite else [c.num(x) for x in a]))
        return result
    return build


BUILDERS: dict[str, Builder] = {
    "+": _plus, "-": _minus, "*": _times, "/": _divide, "^": _power, "POWER": _power,
    "NEG": lambda c, node, a: -a[0], "&": _concat,
    "=": _compare("="), "<>": _compare("<>"), "<": _compare("<"), "<=": _compare("<="),
    ">": _compare(">"), ">=": _compare(">="),
    "NOT": _not, "AND": _and, "OR": _or, "IF": _if, "CASE": _case,
    "ISBLANK": _isblank, "BLANKVALUE": _blankvalue,
    "ROUND": _round, "ABS": _simple("abs"), "MIN": _minmax("min", "least"),
    "MAX": _minmax("max", "greatest"), "MOD": _mod,
    "CEILING": lambda c, node, a: c.ceiling(a[0]), "FLOOR": lambda c, node, a: c.floor(a[0]),
    "SQRT": _sqrt,
    "LEN": _len, "LEFT": _left, "RIGHT": _right, "MID": _mid,
    "UPPER": _case_map("upper", _LOWER, _LOWER.upper()),
    "LOWER": _case_map("lower", _LOWER.upper(), _LOWER), "TRIM": _trim,
    "CONTAINS": _contains, "BEGINS": _begins, "SUBSTITUTE": _substitute, "TEXT": _text,
    "VALUE": _value, "FIND": _find,
    **DATE_BUILDERS,
}

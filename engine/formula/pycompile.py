"""Typed tree to a Python callable, built once from closures.

Each node becomes one closure chosen by its name and argument types at compile time;
evaluating runs those closures and nothing else (no tree walk, no eval). Numbers are
Decimals in a 60-digit context, so 0.1 + 0.2 == 0.3.

>>> from engine.formula.context import EntityScope, MappingContext
>>> from engine.formula.checker import check_source
>>> fn = compile_python(check_source("ROUND(2.5, 0) + 0.1 + 0.2", EntityScope({}, "x")))
>>> fn(MappingContext({}))
Decimal('3.3')
"""

from __future__ import annotations

import calendar
import operator
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any

from engine.formula.ast import TCall, TField, TLiteral, TNode
from engine.formula.types import EvalContext, FType, Value

Fn = Callable[[EvalContext], Any]
Builder = Callable[[TCall, list[Fn]], Fn]

CTX = Context(prec=60, rounding=ROUND_HALF_UP, Emax=999_999_999, Emin=-999_999_999,
              traps=[InvalidOperation, DivisionByZero, Overflow])
"""Where every number operation happens: 60 significant digits, ties away from zero."""
PLACES = 10
"""Division, POWER, SQRT and VALUE round their result to this many decimal places."""
MAX_OFFSET_SECONDS = 400_000_000_000
"""Date and time offsets beyond this (about 12,700 years) are always out of range."""
_NUMBER_TEXT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ZERO = Decimal(0)
_ONE = Decimal(1)


def compile_python(node: TNode) -> Fn:
    """A callable that evaluates the typed tree against an EvalContext."""
    if isinstance(node, TLiteral):
        value = node.value
        return lambda ctx: value
    if isinstance(node, TField):
        return _read(node.path, _CONVERT[node.type])
    if node.name in ("ISCHANGED", "PRIORVALUE"):
        return _prior(node)
    args = [compile_python(a) for a in node.args]
    return _BUILDERS[node.name](node, args)


# ---- values coming in ------------------------------------------------------------------


def to_number(v: object) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, Decimal):
        return v if v.is_finite() else None
    if isinstance(v, int) and not isinstance(v, bool):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v)) if v == v and abs(v) != float("inf") else None
    raise TypeError(f"a number field holds {type(v).__name__} {v!r}")


def to_datetime(v: object) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    raise TypeError(f"a datetime field holds {type(v).__name__} {v!r}")


def _to_date(v: object) -> date | None:
    if v is None or (isinstance(v, date) and not isinstance(v, datetime)):
        return v
    if isinstance(v, datetime):
        return to_datetime(v).date()  # type: ignore[union-attr]
    raise TypeError(f"a date field holds {type(v).__name__} {v!r}")


def _checked(kind: type | tuple[type, ...], what: str) -> Callable[[object], Any]:
    def convert(v: object) -> object:
        if v is None or isinstance(v, kind):
            return v
        raise TypeError(f"{what} field holds {type(v).__name__} {v!r}")
    return convert


def _to_options(v: object) -> tuple[str, ...] | None:
    if v is None:
        return None
    if isinstance(v, list | tuple):
        return tuple(str(o) for o in v)
    raise TypeError(f"a multichoice field holds {type(v).__name__} {v!r}")


def _to_id(v: object) -> int | None:
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    raise TypeError(f"a reference field holds {type(v).__name__} {v!r}")


_CONVERT: dict[FType, Callable[[object], Any]] = {
    FType.NUMBER: to_number,
    FType.TEXT: _checked(str, "a text"),
    FType.BOOLEAN: _checked(bool, "a boolean"),
    FType.DATE: _to_date,
    FType.DATETIME: to_datetime,
    FType.MULTICHOICE: _to_options,
    FType.REFERENCE: _to_id,
    FType.BLANK: lambda v: None,
}


def _read(path: tuple[str, ...], convert: Callable[[object], Any]) -> Fn:
    if convert is to_number:
        def read_number(ctx: EvalContext) -> Any:
            v = ctx.get(path)
            return v if type(v) is Decimal and v.is_finite() else to_number(v)
        return read_number
    return lambda ctx: convert(ctx.get(path))


def _prior(node: TCall) -> Fn:
    arg = node.args[0]
    assert isinstance(arg, TField)
    path = arg.path
    if node.name == "ISCHANGED":
        return lambda ctx: bool(ctx.changed(path))
    convert = _CONVERT[arg.type]
    return lambda ctx: convert(ctx.prior(path))


# ---- shapes of closures ----------------------------------------------------------------


def _strict(op: Callable[..., Any], fns: Sequence[Fn]) -> Fn:
    """op(*values), or BLANK as soon as one argument is BLANK."""
    if len(fns) == 1:
        (fa,) = fns

        def strict1(ctx: EvalContext) -> Any:
            a = fa(ctx)
            return None if a is None else op(a)
        return strict1
    if len(fns) == 2:
        fa, fb = fns

        def strict2(ctx: EvalContext) -> Any:
            a = fa(ctx)
            if a is None:
                return None
            b = fb(ctx)
            return None if b is None else op(a, b)
        return strict2

    def strict_n(ctx: EvalContext) -> Any:
        values = []
        for f in fns:
            v = f(ctx)
            if v is None:
                return None
            values.append(v)
        return op(*values)
    return strict_n


def _safe(op: Callable[..., Any]) -> Callable[..., Any]:
    """op, with an arithmetic failure (overflow, invalid) giving BLANK."""
    def safe(*args: Any) -> Any:
        try:
            return op(*args)
        except (ArithmeticError, ValueError):
            return None
    return safe


def _simple(op: Callable[..., Any]) -> Builder:
    return lambda node, fns: _strict(op, fns)


# ---- numbers ---------------------------------------------------------------------------


def round_places(x: Decimal, places: int) -> Decimal:
    """x rounded half away from zero to `places` decimals (negative: tens, hundreds)."""
    exponent = x.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent >= -places:
        return x
    try:
        rounded = x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=CTX)
        return rounded if places >= 0 else rounded.quantize(_ONE, context=CTX)  # 150, not 1.5E+2
    except InvalidOperation:  # more digits than the context holds: nothing to round
        return x


def whole(n: Decimal, limit: int = 1_000_000_000) -> int:
    """n truncated toward zero and clamped to ±limit (text positions, day counts)."""
    return max(-limit, min(limit, int(n)))


def divide(a: Decimal, b: Decimal) -> Decimal | None:
    if not b:
        return None
    return round_places(CTX.divide(a, b), PLACES)


def power(a: Decimal, b: Decimal) -> Decimal | None:
    if abs(b) > 1000 or (not a and b < 0):
        return None
    if not a and not b:
        return Decimal(1)
    if a < 0 and b != b.to_integral_value():
        return None
    return round_places(CTX.power(a, b), PLACES)


def modulo(a: Decimal, b: Decimal) -> Decimal | None:
    q = divide(a, b)
    if q is None:
        return None
    return CTX.subtract(a, CTX.multiply(b, q.to_integral_value(rounding=ROUND_FLOOR)))


def _sqrt(a: Decimal) -> Decimal | None:
    return None if a < 0 else round_places(CTX.sqrt(a), PLACES)


def _round(x: Decimal, n: Decimal = _ZERO) -> Decimal:
    return round_places(x, whole(n, 100))


def number_text(x: Decimal) -> str:
    """TEXT(number): at most 10 decimals, no trailing zeros, never an exponent."""
    q = round_places(x, PLACES)
    if not q:
        return "0"
    return format(q.normalize(CTX), "f")


def _value(s: str) -> Decimal | None:
    t = s.strip(" ")
    return round_places(Decimal(t), PLACES) if _NUMBER_TEXT.fullmatch(t) else None


# ---- text ------------------------------------------------------------------------------


def _left(s: str, n: Decimal) -> str | None:
    k = whole(n)
    return None if k < 0 else s[:k]


def _right(s: str, n: Decimal) -> str | None:
    k = whole(n)
    return None if k < 0 else (s[-k:] if k else "")


def _mid(s: str, start: Decimal, count: Decimal) -> str | None:
    i, k = whole(start), whole(count)
    return None if i < 1 or k < 0 else s[i - 1:i - 1 + k]


def _find(search: str, s: str, start: Decimal = Decimal(1)) -> Decimal | None:
    i = whole(start)
    return None if i < 1 else Decimal(s.find(search, i - 1) + 1)


def _substitute(s: str, old: str, new: str) -> str:
    return s.replace(old, new) if old else s


def _text(node: TCall, fns: list[Fn]) -> Fn:
    t = node.args[0].type
    if t is FType.NUMBER:
        return _strict(number_text, fns)
    if t is FType.BOOLEAN:
        return _strict(lambda b: "TRUE" if b else "FALSE", fns)
    if t is FType.DATE:
        return _strict(date.isoformat, fns)
    if t is FType.DATETIME:
        return _strict(lambda x: f"{x.year:04d}-{x:%m-%d %H:%M:%S}", fns)
    return fns[0]


def _concat(node: TCall, fns: list[Fn]) -> Fn:
    fa, fb = fns
    return lambda ctx: (fa(ctx) or "") + (fb(ctx) or "")


# ---- dates -----------------------------------------------------------------------------


def add_days(d: date, n: Decimal) -> date | None:
    try:
        return d + timedelta(days=whole(n))
    except OverflowError:
        return None


def add_seconds_of_days(x: datetime, n: Decimal) -> datetime | None:
    """x plus n days, the offset cut to whole seconds."""
    seconds = int(CTX.multiply(n, 86400))
    if abs(seconds) > MAX_OFFSET_SECONDS:
        return None
    try:
        return x + timedelta(seconds=seconds)
    except OverflowError:
        return None


def add_months(d: date, n: Decimal) -> date | None:
    """n months later, clamped to the end of a shorter month."""
    k = whole(n)
    if abs(k) > 120_000:
        return None
    year, month0 = divmod(d.year * 12 + d.month - 1 + k, 12)
    if not 1 <= year <= 9999:
        return None
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(d.day, last))


def _make_date(y: Decimal, m: Decimal, d: Decimal) -> date | None:
    try:
        return date(whole(y), whole(m), whole(d))
    except ValueError:
        return None


def _hours_since(ctx: EvalContext, x: datetime) -> Decimal:
    now = to_datetime(ctx.clock.now())
    assert now is not None
    seconds = (now.replace(microsecond=0) - x.replace(microsecond=0)) // timedelta(seconds=1)
    return Decimal(seconds // 3600)


def _plus(node: TCall, fns: list[Fn]) -> Fn:
    a = node.args[0].type
    if node.type is FType.NUMBER:
        return _strict(_safe(CTX.add), fns)
    if a is FType.NUMBER:  # number + date: put the date first
        fns = [fns[1], fns[0]]
    return _strict(add_days if node.type is FType.DATE else add_seconds_of_days, fns)


def _minus(node: TCall, fns: list[Fn]) -> Fn:
    a, b = (x.type for x in node.args)
    if a is FType.NUMBER:
        return _strict(_safe(CTX.subtract), fns)
    if b is FType.DATE:
        return _strict(lambda x, y: Decimal((x - y).days), fns)
    step = add_days if a is FType.DATE else add_seconds_of_days
    return _strict(lambda x, n: step(x, CTX.minus(n)), fns)


def _add_days_fn(node: TCall, fns: list[Fn]) -> Fn:
    return _strict(add_days if node.type is FType.DATE else add_seconds_of_days, fns)


def _part(getter: Callable[[date], int]) -> Builder:
    return _simple(lambda x: Decimal(getter(x)))


def _today(node: TCall, fns: list[Fn]) -> Fn:
    return lambda ctx: ctx.clock.today()


def _now(node: TCall, fns: list[Fn]) -> Fn:
    return lambda ctx: to_datetime(ctx.clock.now())


def _hours(node: TCall, fns: list[Fn]) -> Fn:
    (fa,) = fns

    def hours_since(ctx: EvalContext) -> Any:
        x = fa(ctx)
        return None if x is None else _hours_since(ctx, x)
    return hours_since


# ---- logic -----------------------------------------------------------------------------


def _and(node: TCall, fns: list[Fn]) -> Fn:
    if len(fns) == 2:
        fa, fb = fns
        return lambda ctx: fa(ctx) is True and fb(ctx) is True
    return lambda ctx: all(f(ctx) is True for f in fns)


def _or(node: TCall, fns: list[Fn]) -> Fn:
    if len(fns) == 2:
        fa, fb = fns
        return lambda ctx: fa(ctx) is True or fb(ctx) is True
    return lambda ctx: any(f(ctx) is True for f in fns)


def _if(node: TCall, fns: list[Fn]) -> Fn:
    fc, fa = fns[0], fns[1]
    fb: Fn = fns[2] if len(fns) > 2 else (lambda ctx: None)
    return lambda ctx: fa(ctx) if fc(ctx) is True else fb(ctx)


def _case(node: TCall, fns: list[Fn]) -> Fn:
    fk, rest = fns[0], fns[1:]
    pairs = [(rest[i], rest[i + 1]) for i in range(0, len(rest) - 1, 2)]
    otherwise: Fn = rest[-1] if len(rest) % 2 else (lambda ctx: None)

    def case(ctx: EvalContext) -> Any:
        key = fk(ctx)
        if key is not None:
            for fm, fr in pairs:
                m = fm(ctx)
                if m is not None and m == key:
                    return fr(ctx)
        return otherwise(ctx)
    return case


def is_blank_value(v: Value) -> bool:
    """ISBLANK: None, "" and an empty multichoice are blank."""
    return v is None or v == "" or v == ()


def _isblank(node: TCall, fns: list[Fn]) -> Fn:
    (fa,) = fns
    return lambda ctx: is_blank_value(fa(ctx))


def _blankvalue(node: TCall, fns: list[Fn]) -> Fn:
    fa, fd = fns

    def blankvalue(ctx: EvalContext) -> Any:
        v = fa(ctx)
        return fd(ctx) if is_blank_value(v) else v
    return blankvalue


def _includes(options: tuple[str, ...], option: str) -> bool:
    return option in options


_BUILDERS: dict[str, Builder] = {
    "+": _plus, "-": _minus,
    "*": _simple(_safe(CTX.multiply)), "/": _simple(_safe(divide)),
    "^": _simple(_safe(power)), "NEG": _simple(CTX.minus), "&": _concat,
    "=": _simple(operator.eq), "<>": _simple(operator.ne), "<": _simple(operator.lt),
    "<=": _simple(operator.le), ">": _simple(operator.gt), ">=": _simple(operator.ge),
    "NOT": _simple(operator.not_), "AND": _and, "OR": _or,
    "IF": _if, "CASE": _case, "ISBLANK": _isblank, "BLANKVALUE": _blankvalue,
    "ROUND": _simple(_round), "ABS": _simple(CTX.abs),
    "MIN": _simple(lambda *v: min(v)), "MAX": _simple(lambda *v: max(v)),
    "MOD": _simple(_safe(modulo)), "POWER": _simple(_safe(power)),
    "CEILING": _simple(lambda x: x.to_integral_value(rounding=ROUND_CEILING)),
    "FLOOR": _simple(lambda x: x.to_integral_value(rounding=ROUND_FLOOR)),
    "SQRT": _simple(_safe(_sqrt)),
    "LEN": _simple(lambda s: Decimal(len(s))), "LEFT": _simple(_left),
    "RIGHT": _simple(_right), "MID": _simple(_mid),
    "UPPER": _simple(lambda s: s.translate(_UPPER)),
    "LOWER": _simple(lambda s: s.translate(_LOWER)),
    "TRIM": _simple(lambda s: s.strip(" ")), "CONTAINS": _simple(operator.contains),
    "BEGINS": _simple(str.startswith), "SUBSTITUTE": _simple(_substitute),
    "TEXT": _text, "VALUE": _simple(_value), "FIND": _simple(_find),
    "TODAY": _today, "NOW": _now, "DATE": _simple(_make_date),
    "DATEVALUE": _simple(datetime.date), "YEAR": _part(lambda d: d.year),
    "MONTH": _part(lambda d: d.month), "DAY": _part(lambda d: d.day),
    "WEEKDAY": _part(lambda d: d.isoweekday() % 7 + 1),
    "ADDMONTHS": _simple(add_months), "ADDDAYS": _add_days_fn,
    "DAYS": _simple(lambda a, b: Decimal((a - b).days)), "HOURS_SINCE": _hours,
    "INCLUDES": _simple(_includes),
    "ISNEW": lambda node, fns: lambda ctx: bool(ctx.is_new),
}
IMPLEMENTED = frozenset(_BUILDERS) | {"ISCHANGED", "PRIORVALUE", "BLANK"}
"""Every name the Python compiler knows (a test holds it against the registry)."""

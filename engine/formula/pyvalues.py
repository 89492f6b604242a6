"""The values formulas compute with in Python, and the helpers the compiled closures call.

Numbers are Decimals in a 60-digit context (`CTX`), so 0.1 + 0.2 == 0.3; field values come
in through the converters (`to_number`, ...), which accept what an EvalContext may hold.

>>> number_text(Decimal("2.50")), add_months(date(2024, 1, 31), Decimal(1))
('2.5', datetime.date(2024, 2, 29))
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import (
    ROUND_FLOOR,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any

from engine.formula.types import Clock, FType, Value

CTX = Context(prec=60, rounding=ROUND_HALF_UP, Emax=999_999_999, Emin=-999_999_999,
              traps=[InvalidOperation, DivisionByZero, Overflow])
"""Where every number operation happens: 60 significant digits, ties away from zero."""
PLACES = 10
"""Division, POWER, SQRT and VALUE round their result to this many decimal places."""
MAX_OFFSET_SECONDS = 400_000_000_000
"""Date and time offsets beyond this (about 12,700 years) are always out of range."""
_NUMBER_TEXT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_UNIT_OF_PLACES = Decimal(1).scaleb(-PLACES)
_ZERO = Decimal(0)
_ONE = Decimal(1)


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


def to_date(v: object) -> date | None:
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


CONVERT: dict[FType, Callable[[object], Any]] = {
    FType.NUMBER: to_number,
    FType.TEXT: _checked(str, "a text"),
    FType.BOOLEAN: _checked(bool, "a boolean"),
    FType.DATE: to_date,
    FType.DATETIME: to_datetime,
    FType.MULTICHOICE: _to_options,
    FType.REFERENCE: _to_id,
    FType.BLANK: lambda v: None,
}


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


def sqrt(a: Decimal) -> Decimal | None:
    return None if a < 0 else round_places(CTX.sqrt(a), PLACES)


def round_to(x: Decimal, n: Decimal = _ZERO) -> Decimal:
    return round_places(x, whole(n, 100))


def number_text(x: Decimal) -> str:
    """TEXT(number): at most 10 decimals, no trailing zeros, never an exponent."""
    if x:  # the usual case first: printed as it is when that needs no rounding
        printed = format(x.normalize(CTX), "f")
        dot = printed.find(".")
        if dot < 0 or len(printed) - dot - 1 <= PLACES:
            return printed
    try:  # round_places(x, PLACES) without its exponent test: normalize drops the zeros
        q = x.quantize(_UNIT_OF_PLACES, ROUND_HALF_UP, CTX)
    except InvalidOperation:  # more digits than the context holds: nothing to round
        q = x
    if not q:
        return "0"
    return format(q.normalize(CTX), "f")


def number_value(s: str) -> Decimal | None:
    t = s.strip(" ")
    return round_places(Decimal(t), PLACES) if _NUMBER_TEXT.fullmatch(t) else None


# ---- text ------------------------------------------------------------------------------


def left(s: str, n: Decimal) -> str | None:
    k = whole(n)
    return None if k < 0 else s[:k]


def right(s: str, n: Decimal) -> str | None:
    k = whole(n)
    return None if k < 0 else (s[-k:] if k else "")


def mid(s: str, start: Decimal, count: Decimal) -> str | None:
    i, k = whole(start), whole(count)
    return None if i < 1 or k < 0 else s[i - 1:i - 1 + k]


def find(search: str, s: str, start: Decimal = Decimal(1)) -> Decimal | None:
    i = whole(start)
    return None if i < 1 else Decimal(s.find(search, i - 1) + 1)


def substitute(s: str, old: str, new: str) -> str:
    return s.replace(old, new) if old else s



# ---- dates -----------------------------------------------------------------------------


def add_days(d: date, n: Decimal) -> date | None:
    try:
        return d + timedelta(days=whole(n))
    except OverflowError:
        return None


def add_seconds_of_days(x: datetime, n: Decimal) -> datetime | None:
    """x plus n days, the offset rounded to whole seconds, half away from zero (so that
    `10 / 1440` of a day, 0.0069444444 as a quotient, is 600 seconds)."""
    product = CTX.multiply(n, 86400)
    if abs(product) > MAX_OFFSET_SECONDS:
        return None
    seconds = int(product.quantize(Decimal(1), ROUND_HALF_UP, CTX))
    try:
        return x + timedelta(seconds=seconds)
    except OverflowError:
        return None


def add_months(d: date, n: Decimal) -> date | None:
    """n months later, clamped to the end of a shorter month."""
    return add_whole_months(d, whole(n))


def add_whole_months(d: date, k: int) -> date | None:
    if abs(k) > 120_000:
        return None
    year, month0 = divmod(d.year * 12 + d.month - 1 + k, 12)
    if not 1 <= year <= 9999:
        return None
    day = d.day
    if day > 28:  # the month may be shorter
        day = min(day, calendar.monthrange(year, month0 + 1)[1])
    return date(year, month0 + 1, day)


def make_date(y: Decimal, m: Decimal, d: Decimal) -> date | None:
    try:
        return date(whole(y), whole(m), whole(d))
    except ValueError:
        return None


def hours_since(clock: Clock, x: datetime) -> Decimal:
    now = to_datetime(clock.now())
    assert now is not None
    seconds = (now.replace(microsecond=0) - x.replace(microsecond=0)) // timedelta(seconds=1)
    return Decimal(seconds // 3600)


def minutes_between(later: datetime, earlier: datetime) -> Decimal:
    """MINUTES: the whole minutes from `earlier` to `later`, of whole seconds, rounded down."""
    seconds = (later.replace(microsecond=0) - earlier.replace(microsecond=0)) \
        // timedelta(seconds=1)
    return Decimal(seconds // 60)


# ---- logic -----------------------------------------------------------------------------


def is_blank_value(v: Value) -> bool:
    """ISBLANK: None, "" and an empty multichoice are blank."""
    return v is None or v == "" or v == ()



def includes(options: tuple[str, ...], option: str) -> bool:
    return option in options

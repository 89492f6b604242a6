"""Dates, times and numbers as people type them (in China and elsewhere), read exactly.

The field coercers (engine/runtime/values.py) read these after their own strict forms, so a
form, the API and an import accept the same text (docs/import.md#value-formats):

- dates: `2026-12-05`, `2026/12/5`, `2026.12.5`, `2026年12月5日`, `20261205`, `5 Dec 2026`,
  `Dec 5, 2026`, and day and month before the year (`5/12/2026`, `12/5/2026`, with `/`, `.`
  or `-`): a part above 12 is the day; when both are 12 or less, settings.yaml `date_order`
  decides (`dmy`, the default, reads 5/12/2026 as 5 December; `mdy` as 12 May). A year
  is always written with four digits.
- times after a date: `14:30`, `14:30:05`, `2:30 PM`, `下午2:30`, `14时30分`, with an
  optional `Z` or `+08:00`.
- numbers: `1,234.50`, `1 234,50` and `1.234,50` (a space, `'` or `.` between thousands
  makes the comma the decimal mark), `(1,200)` (negative), `12万` (120,000), `1.5亿`;
  full-width digits and marks (`\uff11\uff12`, `\uffe5`) read as their plain forms. A lone comma is
  a thousands separator only when the groups say so: `1,5` is refused, not guessed.
- money also takes a currency mark before or after the number, when it names the
  install's currency (settings.yaml `currency`): `¥`, `￥`, `元`, `RMB`, `人民币` for CNY,
  `$`, `US$` for USD… or the currency's ISO code. Another currency's mark is refused:
  amounts are not converted.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from babel.numbers import list_currencies

_MONTHS = {name: i + 1 for i, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
    ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
    ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
    ("dec", "december"))) for name in names}

_SEP = r"\s*[-/.]\s*"
_YMD = re.compile(rf"^(\d{{4}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})$")
_YMD_ZH = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_XXY = re.compile(rf"^(\d{{1,2}}){_SEP}(\d{{1,2}}){_SEP}(\d{{4}})$")
_D_MON_Y = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?[\s\-/]+([a-z]{3,9})\.?,?[\s\-/]+(\d{4})$")
_MON_D_Y = re.compile(r"^([a-z]{3,9})\.?[\s\-]+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$")

_TIME = re.compile(
    r"^(?P<date>.+?)(?:[T\s]+|(?=上午|下午))"
    r"(?P<ampm1>上午|下午|am|pm)?\s*"
    r"(?P<h>\d{1,2})\s*[:时點点]\s*(?P<m>\d{2})"
    r"(?:\s*[:分]\s*(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?\s*秒?|\s*分)?"
    r"\s*(?P<ampm2>am|pm|a\.m\.|p\.m\.|上午|下午)?"
    r"\s*(?P<tz>z|utc|gmt|[+-]\d{2}(?::?\d{2})?)?$")


MAX_DATE_TEXT = 64
"""The longest text read as a date or a date and time: no spelling comes near it, and the
patterns are never tried on long text (where backtracking would cost)."""


def plain(text: str) -> str:
    """NFKC (full-width digits, letters and marks to their plain forms), trimmed,
    lower-cased.

    >>> plain(" \uff12\uff10\uff12\uff16\uff0f12/5 ")
    '2026/12/5'
    """
    return unicodedata.normalize("NFKC", text).strip().lower()


def parse_date_text(text: str, *, day_first: bool = True) -> date:
    """A date typed in any of the module's forms; ValueError when it is none of them or
    not a real date.

    >>> parse_date_text("2026年12月5日"), parse_date_text("5/12/2026")
    (datetime.date(2026, 12, 5), datetime.date(2026, 12, 5))
    >>> parse_date_text("5/12/2026", day_first=False), parse_date_text("12/31/2026")
    (datetime.date(2026, 5, 12), datetime.date(2026, 12, 31))
    """
    t = plain(text)
    if len(t) > MAX_DATE_TEXT:
        raise ValueError("too long for a date")
    if m := _YMD.match(t) or _YMD_ZH.match(t) or _COMPACT.match(t):
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if m := _XXY.match(t):
        a, b, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if a > 12 or (b <= 12 and day_first):
            return date(year, b, a)
        return date(year, a, b)
    if m := _D_MON_Y.match(t):
        return date(int(m.group(3)), _month(m.group(2)), int(m.group(1)))
    if m := _MON_D_Y.match(t):
        return date(int(m.group(3)), _month(m.group(1)), int(m.group(2)))
    raise ValueError(text)


def _month(name: str) -> int:
    if name not in _MONTHS:
        raise ValueError(name)
    return _MONTHS[name]


def parse_datetime_text(text: str, *, day_first: bool = True) -> datetime:
    """A date and time typed in any of the module's forms: naive unless it names an
    offset (the caller decides the zone of a naive one); a date alone is its midnight.

    >>> parse_datetime_text("2026/12/5 14:30")
    datetime.datetime(2026, 12, 5, 14, 30)
    >>> parse_datetime_text("2026年12月5日 下午2:30"), parse_datetime_text("12/25/2026 2:30 PM")
    (datetime.datetime(2026, 12, 5, 14, 30), datetime.datetime(2026, 12, 25, 14, 30))
    """
    t = plain(text)
    if len(t) > MAX_DATE_TEXT:
        raise ValueError("too long for a date and time")
    m = _TIME.match(t)
    if m is None:
        return datetime.combine(parse_date_text(t, day_first=day_first), datetime.min.time())
    day = parse_date_text(m.group("date"), day_first=day_first)
    hour, minute = int(m.group("h")), int(m.group("m"))
    second = int(m.group("s") or 0)
    micro = int((m.group("f") or "0").ljust(6, "0"))
    ampm = (m.group("ampm1") or m.group("ampm2") or "").replace(".", "")
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError(text)
        hour = hour % 12 + 12 if ampm in ("pm", "下午") else hour % 12
    result = datetime(day.year, day.month, day.day, hour, minute, second, micro)
    zone = m.group("tz")
    if zone:
        result = result.replace(tzinfo=_offset(zone))
    return result


def _offset(text: str) -> timezone:
    if text in ("z", "utc", "gmt"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(text)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


# -- numbers ---------------------------------------------------------------------------------

# A currency mark → the ISO codes it may stand for.
CURRENCY_MARKS: dict[str, frozenset[str]] = {
    "¥": frozenset({"CNY", "JPY"}), "元": frozenset({"CNY"}), "人民币": frozenset({"CNY"}),
    "rmb": frozenset({"CNY"}), "円": frozenset({"JPY"}),
    "$": frozenset({"USD", "HKD", "SGD", "AUD", "CAD", "NZD", "TWD", "MXN"}),
    "us$": frozenset({"USD"}), "hk$": frozenset({"HKD"}), "nt$": frozenset({"TWD"}),
    "s$": frozenset({"SGD"}), "a$": frozenset({"AUD"}), "c$": frozenset({"CAD"}),
    "€": frozenset({"EUR"}), "£": frozenset({"GBP"}), "₩": frozenset({"KRW"}),
    "₹": frozenset({"INR"}), "美元": frozenset({"USD"}), "欧元": frozenset({"EUR"}),
    "港元": frozenset({"HKD"}), "港币": frozenset({"HKD"}), "日元": frozenset({"JPY"}),
}
_MARKS = sorted(CURRENCY_MARKS, key=len, reverse=True)
_ISO_CODES = frozenset(list_currencies())
_MARK_RE = "|".join(re.escape(m) for m in _MARKS) + r"|[a-z]{3}"
_LEADING_MARK = re.compile(rf"^([+-]?)\s*({_MARK_RE})\s*(?=[\d.+(-])")
_TRAILING_MARK = re.compile(rf"(?<=[\d.)万亿])\s*({_MARK_RE})$")
_MULTIPLIERS = {"万": Decimal(10_000), "亿": Decimal(100_000_000)}
_GROUPED = {
    ",": re.compile(r"^[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?$"),
    ".": re.compile(r"^[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]*)?$"),
    " ": re.compile(r"^[0-9]{1,3}(?: [0-9]{3})+(?:[.,][0-9]*)?$"),
    "'": re.compile(r"^[0-9]{1,3}(?:'[0-9]{3})+(?:[.,][0-9]*)?$"),
}


class CurrencyMismatch(ValueError):
    """An amount written in another currency than the install's."""

    def __init__(self, mark: str) -> None:
        super().__init__(mark)
        self.mark = mark


def parse_number_text(text: str, *, currency: str | None = None) -> Decimal:
    """A number as typed (see the module's doc); `currency`: the install's currency code,
    when a currency mark may be given (money). InvalidOperation when it is no number,
    CurrencyMismatch when its mark names another currency.

    >>> parse_number_text("1 234,50"), parse_number_text("(1,200)"), parse_number_text("12万")
    (Decimal('1234.50'), Decimal('-1200'), Decimal('120000'))
    >>> parse_number_text("¥1,234.50", currency="CNY"), parse_number_text("RMB 12,000",
    ...                                                                  currency="CNY")
    (Decimal('1234.50'), Decimal('12000'))
    """
    t = plain(text)
    negative = False
    if t.startswith("(") and t.endswith(")"):
        negative, t = True, t[1:-1].strip()
    if currency is not None:
        t = _without_mark(t, currency)
    sign = ""
    if t and t[0] in "+-":
        sign, t = t[0], t[1:].strip()
        if currency is not None:
            t = _without_mark(t, currency)
    multiplier = None
    if t and t[-1] in _MULTIPLIERS:
        multiplier, t = _MULTIPLIERS[t[-1]], t[:-1].strip()
    number = Decimal(sign + _ungrouped(t))
    if multiplier is not None:
        number *= multiplier
    return -number if negative else number


def _without_mark(t: str, currency: str) -> str:
    m = _LEADING_MARK.match(t)
    if m and _is_mark(m.group(2)):
        _check_mark(m.group(2), currency)
        return (m.group(1) + t[m.end():]).strip()
    m = _TRAILING_MARK.search(t)
    if m and _is_mark(m.group(1)):
        _check_mark(m.group(1), currency)
        return t[:m.start()].strip()
    return t


def _is_mark(mark: str) -> bool:
    """A currency symbol or word above, or an ISO 4217 code (`12abc` is no amount in a
    currency "ABC", just not a number)."""
    return mark in CURRENCY_MARKS or mark.upper() in _ISO_CODES


def _check_mark(mark: str, currency: str) -> None:
    codes = CURRENCY_MARKS.get(mark, frozenset({mark.upper()}))
    if currency.upper() not in codes:
        raise CurrencyMismatch(mark)


def _ungrouped(t: str) -> str:
    """The number without its thousands separators, with "." as its decimal mark."""
    if re.fullmatch(r"[0-9.eE+-]*", t) and t.count(".") <= 1:
        return t  # plain, or an exponent: Decimal reads it (NaN and such are refused later)
    for group, pattern in _GROUPED.items():
        if pattern.match(t):
            body = t.replace(group, "")
            return body.replace(",", ".") if group != "," else body
    if "." not in t and "," not in t and t.isascii() and not t.isdigit():
        return t  # "NaN", "Infinity": Decimal decides
    raise InvalidOperation(t)

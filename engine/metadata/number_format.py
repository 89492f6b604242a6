"""The format of an autonumber field: `format: "QT-{YYYY}-{0000}"`.

A format is literal text with tokens in braces: the creation date's `{YYYY}` `{YY}` `{MM}`
`{DD}` and exactly one counter, a run of zeros whose count is the padding (`{0000}`: 0001;
a number wider than the padding keeps all its digits: 10000). The counter starts again
from 1 in every period of the finest date token the format holds (`{YYYY}`: every year,
`{YYYY}{MM}`: every month, none: never). The engine assigns the numbers as records are
created (engine/runtime/records/autonumber.py), with the creation date in UTC (as
TODAY() reads it); nobody writes them.

>>> f = parse_format("QT-{YYYY}-{0000}")
>>> f.period, f.period_key(date(2026, 3, 31)), f.render(7, date(2026, 3, 31))
('year', '2026', 'QT-2026-0007')
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

DATE_TOKENS: dict[str, int] = {"YYYY": 4, "YY": 2, "MM": 2, "DD": 2}
"""The date tokens and how many characters each writes."""
_PERIOD_OF = {"YYYY": "year", "YY": "year", "MM": "month", "DD": "day"}
PERIODS = ("never", "year", "month", "day")
"""How often a counter starts again, coarsest first."""
_NEEDS = {"month": ("year", "{MM} needs a year ({YYYY} or {YY})"),
          "day": ("month", "{DD} needs a month ({MM})")}
_COUNTER = re.compile(r"^0+$")
# Control, format, surrogate and unassigned characters, line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
# The widest number a counter holds (a 64-bit column's largest has 19 digits).
_COUNTER_DIGITS = 19
MAX_PADDING = 18
TOKENS_HELP = "tokens are {YYYY} {YY} {MM} {DD} and one counter of zeros such as {0000}"


class FormatProblem(ValueError):
    """A format that cannot number records: what is wrong, at which character (0-based)."""

    def __init__(self, message: str, at: int) -> None:
        super().__init__(message)
        self.message = message
        self.at = at


@dataclass(frozen=True)
class Part:
    """Literal text (`token` None) or a token: a date token's name, or "counter"."""

    text: str
    token: str | None = None


@dataclass(frozen=True)
class NumberFormat:
    """A parsed autonumber format."""

    source: str
    parts: tuple[Part, ...]
    width: int
    """The counter's padding: how many digits a small number is written with."""
    period: str
    """never, year, month or day: how often the counter starts again from 1."""

    def period_key(self, day: date) -> str:
        """The counter a record created on `day` takes its number from.

        >>> parse_format("INV-{YYYY}{MM}-{0000}").period_key(date(2026, 3, 9))
        '2026-03'
        >>> parse_format("C{000}").period_key(date(2026, 3, 9))
        ''
        """
        if self.period == "never":
            return ""
        if self.period == "year":
            return f"{day.year:04d}"
        if self.period == "month":
            return f"{day.year:04d}-{day.month:02d}"
        return day.isoformat()

    def render(self, number: int, day: date) -> str:
        """The number `number` of a record created on `day`, written in this format.

        >>> parse_format("{YY}{MM}{DD}-{00}").render(123, date(2026, 3, 9))
        '260309-123'
        """
        out: list[str] = []
        for p in self.parts:
            if p.token is None:
                out.append(p.text)
            elif p.token == "counter":
                out.append(f"{number:0{self.width}d}")
            else:
                out.append(_date_text(p.token, day))
        return "".join(out)

    @property
    def longest(self) -> int:
        """The most characters a number can have."""
        fixed = sum(len(p.text) if p.token is None else DATE_TOKENS.get(p.token, 0)
                    for p in self.parts)
        return fixed + max(self.width, _COUNTER_DIGITS)


def _date_text(token: str, day: date) -> str:
    if token == "YYYY":
        return f"{day.year:04d}"
    if token == "YY":
        return f"{day.year % 100:02d}"
    if token == "MM":
        return f"{day.month:02d}"
    return f"{day.day:02d}"


def parse_format(source: str) -> NumberFormat:
    """The format `source` as parts; FormatProblem names what is wrong and where.

    >>> parse_format("QT-{Q}-{0000}")
    Traceback (most recent call last):
    ...
    engine.metadata.number_format.FormatProblem: unknown token {Q} at character 4; tokens are \
{YYYY} {YY} {MM} {DD} and one counter of zeros such as {0000}
    """
    if source == "":
        raise FormatProblem(f"is empty; write literal text and tokens, e.g. "
                            f"\"QT-{{YYYY}}-{{0000}}\" ({TOKENS_HELP})", 0)
    parts: list[Part] = []
    counter_at: int | None = None
    periods: dict[str, int] = {}  # period → where its first token is
    i = 0
    literal = ""
    while i < len(source):
        ch = source[i]
        if ch == "}":
            raise FormatProblem(f"'}}' at character {i + 1} closes no '{{'", i)
        if unicodedata.category(ch) in _UNPRINTABLE:
            raise FormatProblem(f"character {i + 1} ({ch!r}) is not printable; a format "
                                "holds text people can read", i)
        if ch != "{":
            literal += ch
            i += 1
            continue
        end = source.find("}", i)
        if end < 0:
            raise FormatProblem(f"'{{' at character {i + 1} is never closed with '}}'", i)
        name = source[i + 1:end]
        shown = source[i:end + 1]
        if literal:
            parts.append(Part(literal))
            literal = ""
        if _COUNTER.match(name):
            if counter_at is not None:
                raise FormatProblem(f"a second counter {shown} at character {i + 1}; a format "
                                    f"has exactly one (the first is at character "
                                    f"{counter_at + 1})", i)
            if len(name) > MAX_PADDING:
                raise FormatProblem(f"the counter {shown} at character {i + 1} pads to "
                                    f"{len(name)} digits; at most {MAX_PADDING}", i)
            counter_at = i
            parts.append(Part(shown, "counter"))
        elif name in DATE_TOKENS:
            periods.setdefault(_PERIOD_OF[name], i)
            parts.append(Part(shown, name))
        else:
            raise FormatProblem(f"unknown token {shown} at character {i + 1}; "
                                f"{TOKENS_HELP}", i)
        i = end + 1
    if literal:
        parts.append(Part(literal))
    if counter_at is None:
        raise FormatProblem(f"has no counter; add one such as {{0000}} ({TOKENS_HELP})",
                            len(source))
    for period, (coarser, why) in _NEEDS.items():
        if period in periods and coarser not in periods:
            at = periods[period]
            raise FormatProblem(f"{why} at character {at + 1}: without it, numbers would "
                                f"repeat every {coarser}", at)
    finest = max((p for p in periods), key=PERIODS.index, default="never")
    width = len(next(p.text for p in parts if p.token == "counter")) - 2
    return NumberFormat(source, tuple(parts), width, finest)

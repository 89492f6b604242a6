"""An import's cells to stored values: one converter per mapped column, compiled once.

`generic_converter(f, rules, zone)` is the rule: a cell's text read the way a form reads it
(the field type's coercer, engine/runtime/values.py, with the text forms of
engine/runtime/value_text.py), plus what only an import reads — a choice by its name or
its label in either language, several choices between commas, and a date and time typed
without an offset as a wall time in the organisation's zone. Blank text is None; text
that does not fit raises ValueProblem.

`column_converter(f, rules, zone)` is the same function, made for millions of cells: the
common shape of each type (a plain ISO date or date and time, a plain or comma-grouped
decimal number, ASCII text) is read directly, and for the types whose cells repeat
(choices, booleans, dates) each distinct text is read once and remembered. Anything
else — and any text the direct reading would refuse — goes to the generic converter, so
values and messages are the generic ones (tests/test_imports_converters.py checks that
both agree on arbitrary text).

References (reference, user, department) are not converted here: an import resolves them
set-wise per batch (engine/runtime/imports/keys.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from engine.messages import msg
from engine.metadata.model import Field
from engine.runtime.value_text import parse_datetime_text
from engine.runtime.values import InputRules, ValueProblem, coercer_for
from engine.types import DECIMAL_SHAPES, TEXT_DEFAULT_MAX, FieldType, text_shape_problem

Converter = Callable[[str], Any]
"""A cell's text to its field's stored value (None for blank text); raises ValueProblem."""

_SHOWN_OPTIONS = 8
MEMO_SIZE = 4096
"""The most distinct texts a column's converter remembers (choices, booleans, dates)."""

_LIST_SEP_RE = re.compile("[,;、\uff0c\uff1b\n]")  # full-width comma and semicolon too
_OPTION_KEY_RE = re.compile(r"[\s_\-]+")


def option_key(text: str) -> str:
    """An option's name or label as compared: full-width plain, case folded, spaces and
    underscores dropped."""
    plain = unicodedata.normalize("NFKC", text).casefold()
    return _OPTION_KEY_RE.sub("", plain)


class Options:
    """A choice field's options by name or label in any language."""

    def __init__(self, f: Field) -> None:
        self.field = f
        self.index: dict[str, str] = {}
        for option in f.options:
            self.index.setdefault(option_key(option), option)
        for option, label in f.option_labels:
            for _locale, text in label.texts:
                self.index.setdefault(option_key(text), option)
        for option in f.options:  # "Closed won" for closed_won, when it has no label
            self.index.setdefault(option_key(f.option_label(option)), option)

    def find(self, text: str) -> str | None:
        return self.index.get(option_key(text))

    def shown(self) -> str:
        f = self.field
        texts = []
        for option in f.options[:_SHOWN_OPTIONS]:
            labels = dict(f.option_labels).get(option)
            zh = labels.get("zh") if labels is not None else None
            texts.append(f"{option} ({zh})" if zh and zh != option else option)
        more = "…" if len(f.options) > _SHOWN_OPTIONS else ""
        return ", ".join(texts) + more


def _blank(text: str) -> bool:
    return not text or text.isspace()


# -- the rule --------------------------------------------------------------------------------

def generic_converter(f: Field, rules: InputRules, zone: tzinfo) -> Converter:
    """The cell converter of `f` as the rule states it (see the module's doc)."""
    coerce = coercer_for(f, rules)
    if f.type is FieldType.CHOICE:
        options = Options(f)

        def choice(text: str) -> Any:
            if _blank(text):
                return None
            found = options.find(text)
            if found is None:
                raise ValueProblem(msg("is not an option; the options: %(options)s",
                                       options=options.shown()))
            return found

        return choice
    if f.type is FieldType.MULTICHOICE:
        many = Options(f)

        def multichoice(text: str) -> Any:
            if _blank(text):
                return None
            chosen: list[str] = []
            unknown: list[str] = []
            for part in _LIST_SEP_RE.split(text):
                if part.strip():
                    found = many.find(part)
                    (chosen if found else unknown).append(found or part.strip())
            if unknown:
                raise ValueProblem(msg("%(unknown)s not among the options: %(options)s",
                                       unknown=", ".join(unknown), options=many.shown()))
            return coerce(chosen)

        return multichoice
    if f.type is FieldType.DATETIME:
        def moment(text: str) -> Any:
            if _blank(text):
                return None
            return coerce(_wall_time(text, rules, zone))

        return moment

    def other(text: str) -> Any:
        return None if _blank(text) else coerce(text)

    return other


def _wall_time(text: str, rules: InputRules, zone: tzinfo) -> Any:
    """A datetime typed without an offset is a wall time in the organisation's zone."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parse_datetime_text(text, day_first=rules.day_first)
        except (ValueError, OverflowError):
            return text  # the coercer says what is wrong with it
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


# -- the same, fast ----------------------------------------------------------------------------

def column_converter(f: Field, rules: InputRules, zone: tzinfo) -> Converter:
    """The cell converter of `f`: `generic_converter`'s values and messages, with the
    common shapes read directly (see the module's doc)."""
    generic = generic_converter(f, rules, zone)
    make = _FAST.get(f.type)
    return generic if make is None else make(f, generic, zone)


def _remembered(generic: Converter, copy: bool = False) -> Converter:
    """`generic`, each distinct text read once (its value or its problem kept); `copy`:
    the values are lists, each caller gets its own."""
    memo: dict[str, tuple[Any, str | None]] = {}

    def convert(text: str) -> Any:
        hit = memo.get(text)
        if hit is None:
            try:
                hit = (generic(text), None)
            except ValueProblem as e:
                hit = (None, e.message)
            if len(memo) < MEMO_SIZE:
                memo[text] = hit
        value, problem = hit
        if problem is not None:
            raise ValueProblem(problem)
        return list(value) if copy and value is not None else value

    return convert


def _fast_choice(_f: Field, generic: Converter, _zone: tzinfo) -> Converter:
    return _remembered(generic)


def _fast_multichoice(_f: Field, generic: Converter, _zone: tzinfo) -> Converter:
    return _remembered(generic, copy=True)


def _fast_text(f: Field, generic: Converter, _zone: tzinfo) -> Converter:
    limit = f.max_length or TEXT_DEFAULT_MAX.get(f.type, 255)
    strip = f.type is not FieldType.TEXTAREA
    shaped = f.type in (FieldType.EMAIL, FieldType.PHONE, FieldType.URL)
    ftype = f.type

    def convert(text: str) -> Any:
        # ASCII text is its own NFC form; blank, NUL, too long or a bad shape: the rule's
        if text.isascii() and "\x00" not in text:
            stripped = text.strip()
            value = stripped if strip else text
            if stripped and len(value) <= limit and (
                    not shaped or text_shape_problem(ftype, value) is None):
                return value
        return generic(text)

    return convert


# -?digits, or digits grouped by commas in threes, with an optional fraction (group 1)
_NUMBER_RE = re.compile(r"-?(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.([0-9]+))?")
_INTEGER_RE = re.compile(r"-?[0-9]{1,18}")


def _fast_decimal(f: Field, generic: Converter, _zone: tzinfo) -> Converter:
    precision, scale = DECIMAL_SHAPES[f.type]
    limit = Decimal(10) ** (precision - scale)
    quantum = Decimal(1).scaleb(-scale)
    low, high = f.min, f.max
    match = _NUMBER_RE.fullmatch

    def convert(text: str) -> Any:
        m = match(text)
        if m is not None:
            places = len(m.group(1) or "")
            d = Decimal(text.replace(",", "") if "," in text else text)
            # as many places as the field keeps: already its stored form; fewer: padded
            if places <= scale and d.copy_abs() < limit:
                value = d if places == scale else d.quantize(quantum)
                if (low is None or value >= low) and (high is None or value <= high):
                    return value.copy_abs() if value.is_zero() else value
        return generic(text)  # another shape, more places, or a problem: the rule reads it

    return convert


def _fast_integer(f: Field, generic: Converter, _zone: tzinfo) -> Converter:
    low, high = f.min, f.max
    match = _INTEGER_RE.fullmatch

    def convert(text: str) -> Any:
        if match(text):
            value = int(text)
            if (low is None or value >= low) and (high is None or value <= high):
                return value
        return generic(text)

    return convert


def _fast_date(_f: Field, generic: Converter, _zone: tzinfo) -> Converter:
    iso = date.fromisoformat

    def direct(text: str) -> Any:
        try:
            return iso(text)
        except ValueError:
            return generic(text)

    return _remembered(direct)


def _fast_datetime(_f: Field, generic: Converter, zone: tzinfo) -> Converter:
    iso = datetime.fromisoformat

    def direct(text: str) -> Any:
        try:
            parsed = iso(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            value = parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            return generic(text)
        return value if 1900 <= value.year <= 9999 else generic(text)

    return _remembered(direct)


def _fast_boolean(_f: Field, generic: Converter, _zone: tzinfo) -> Converter:
    return _remembered(generic)


_FAST: dict[FieldType, Callable[[Field, Converter, tzinfo], Converter]] = {
    FieldType.TEXT: _fast_text,
    FieldType.TEXTAREA: _fast_text,
    FieldType.EMAIL: _fast_text,
    FieldType.PHONE: _fast_text,
    FieldType.URL: _fast_text,
    FieldType.INTEGER: _fast_integer,
    FieldType.DECIMAL: _fast_decimal,
    FieldType.MONEY: _fast_decimal,
    FieldType.PERCENT: _fast_decimal,
    FieldType.BOOLEAN: _fast_boolean,
    FieldType.DATE: _fast_date,
    FieldType.DATETIME: _fast_datetime,
    FieldType.CHOICE: _fast_choice,
    FieldType.MULTICHOICE: _fast_multichoice,
}

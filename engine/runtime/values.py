"""Field values: coerce input (JSON, form strings, CSV cells) to the stored type, and back.

Coercion is one function per field type, chosen once per field, so bulk paths pay no
dispatch per value. Every failure is a ValueProblem with a message for the user.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.fieldtypes import Regarding, json_date, json_datetime, json_decimal, json_regarding
from engine.messages import msg
from engine.metadata.model import Field
from engine.runtime.value_text import (
    CurrencyMismatch,
    parse_date_text,
    parse_datetime_text,
    parse_number_text,
)
from engine.types import DECIMAL_SHAPES, TEXT_DEFAULT_MAX, FieldType, text_shape_problem


class ValueProblem(ValueError):
    """A value that does not fit its field; `message` (a Message) is shown to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


Coercer = Callable[[Any], Any]


@dataclass(frozen=True)
class InputRules:
    """The install's reading of typed text (settings.yaml): which of day and month comes
    first in 5/12/2026, and the currency whose marks an amount may carry."""

    day_first: bool = True
    currency: str = "CNY"


DEFAULT_RULES = InputRules()

_TRUE = frozenset({"true", "1", "yes", "y", "on", "t", "是", "对", "真", "√", "✓", "✔"})
_FALSE = frozenset({"false", "0", "no", "n", "off", "f", "否", "错", "假", "\u00d7", "✗", "✘"})
# Between a multichoice's options: a comma, a semicolon or the Chinese enumeration comma.
_LIST_SEP_RE = re.compile("[,;、\uff0c\uff1b]")  # the full-width comma and semicolon too


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "") or value == []


def coercer_for(f: Field, rules: InputRules = DEFAULT_RULES) -> Coercer:
    """The function that turns any accepted input for `f` into its stored value (blank → None);
    `rules`: how the install reads ambiguous dates and currency marks."""
    make = COERCERS[f.type]
    inner = make(f, rules)

    def coerce(value: Any) -> Any:
        if is_blank(value):
            return None
        return inner(value)

    return coerce


def _text(f: Field, _rules: InputRules) -> Coercer:
    limit = f.max_length or TEXT_DEFAULT_MAX.get(f.type, 255)

    def coerce(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise ValueProblem(msg("must be text"))
        try:
            text = str(value)
        except ValueError:  # an int with more digits than Python will print
            raise ValueProblem(msg("must be at most %(limit)s characters", limit=limit)) from None
        if f.type is not FieldType.TEXTAREA:
            text = text.strip()
        # One spelling per text: "Café" typed with a combining accent is stored as the
        # precomposed "Café", so unique values, filters and sorts see one value.
        text = unicodedata.normalize("NFC", text)
        if "\x00" in text:
            raise ValueProblem(msg("must not contain NUL characters"))
        if len(text) > limit:
            raise ValueProblem(msg("must be at most %(limit)s characters (got %(got)s)",
                                   limit=limit, got=len(text)))
        problem = text_shape_problem(f.type, text)
        if problem:
            raise ValueProblem(problem)
        return text

    return coerce


def _parse_number(value: Any, currency: str | None = None) -> Decimal:
    """A JSON number, Decimal or form/CSV string as a Decimal (text as people type it:
    engine/runtime/value_text.py); raises InvalidOperation, or CurrencyMismatch for money
    in another currency.

    >>> _parse_number(" 1,234.50 "), _parse_number("12万")
    (Decimal('1234.50'), Decimal('120000'))
    """
    if isinstance(value, (int, Decimal)):
        return Decimal(value)  # no detour through str: huge ints stay cheap
    if isinstance(value, float):
        return Decimal(str(value))  # the shortest repr, so 19.99 stays 19.99
    return parse_number_text(str(value), currency=currency)


def _bounds(f: Field, value: Decimal | int) -> None:
    if f.min is not None and value < f.min:
        raise ValueProblem(msg("must be at least %(min)s", min=f.min))
    if f.max is not None and value > f.max:
        raise ValueProblem(msg("must be at most %(max)s", max=f.max))


def _integer(f: Field, _rules: InputRules) -> Coercer:
    def coerce(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueProblem(msg("must be a whole number"))
        if isinstance(value, int):
            result = value
        elif isinstance(value, (float, Decimal, str)):
            try:
                d = _parse_number(value)
            except InvalidOperation:
                raise ValueProblem(msg("must be a whole number")) from None
            if not d.is_finite() or d != d.to_integral_value():
                raise ValueProblem(msg("must be a whole number"))
            if d.adjusted() >= 19:  # checked before int(): int(Decimal("1e999999999")) hangs
                raise ValueProblem(msg("is too large"))
            result = int(d)
        else:
            raise ValueProblem(msg("must be a whole number"))
        if not -(2**63) < result < 2**63:
            raise ValueProblem(msg("is too large"))
        _bounds(f, result)
        return result

    return coerce


def _decimal(f: Field, rules: InputRules) -> Coercer:
    precision, scale = DECIMAL_SHAPES[f.type]
    limit = Decimal(10) ** (precision - scale)
    quantum = Decimal(1).scaleb(-scale)
    currency = rules.currency if f.type is FieldType.MONEY else None

    def coerce(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
            raise ValueProblem(msg("must be a number"))
        if isinstance(value, str) and f.type is FieldType.PERCENT:
            value = unicodedata.normalize("NFKC", value).strip().removesuffix("%")
        try:
            d = _parse_number(value, currency)
        except CurrencyMismatch as e:
            raise ValueProblem(msg("is written in another currency (%(mark)s); amounts here "
                                   "are in %(currency)s and are not converted",
                                   mark=e.mark, currency=rules.currency)) from None
        except InvalidOperation:
            raise ValueProblem(msg("must be a number")) from None
        if not d.is_finite():
            raise ValueProblem(msg("must be a finite number"))
        if d.copy_abs() >= limit:  # copy_abs, not abs(): abs() rounds and can overflow
            raise ValueProblem(msg("must be less than %(limit)s in size", limit=format(limit, ",")))
        if d != d.quantize(quantum):
            raise ValueProblem(msg("must have at most %(scale)s decimal places", scale=scale))
        d = d.quantize(quantum)
        if d.is_zero():
            d = d.copy_abs()  # "-0" is stored and shown as 0.00, not -0.00
        _bounds(f, d)
        return d

    return coerce


def _boolean(_f: Field, _rules: InputRules) -> Coercer:
    def coerce(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        raise ValueProblem(msg("must be true or false"))

    return coerce


def _date(_f: Field, rules: InputRules) -> Coercer:
    def coerce(value: Any) -> date:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
            try:  # as typed in China and elsewhere: 2025/3/31, 2025年3月31日, 31/3/2025
                return parse_date_text(value, day_first=rules.day_first)
            except ValueError:
                pass
        raise ValueProblem(msg("must be a date like 2025-03-31"))

    return coerce


def _datetime(_f: Field, rules: InputRules) -> Coercer:
    def coerce(value: Any) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, str):
            text = value.strip()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                parsed = _typed_datetime(value, rules)
        else:
            raise ValueProblem(msg("must be a date and time like 2025-03-31T14:30:00Z"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is in the year 10000 in UTC
            raise ValueProblem(msg("must be between the years 1900 and 9999")) from None
        if not 1900 <= parsed.year <= 9999:
            raise ValueProblem(msg("must be between the years 1900 and 9999"))
        return parsed

    return coerce


def _typed_datetime(value: str, rules: InputRules) -> datetime:
    try:  # as typed in China and elsewhere: 2025/3/31 14:30, 2025年3月31日 下午2:30
        return parse_datetime_text(value, day_first=rules.day_first)
    except (ValueError, OverflowError):
        raise ValueProblem(
            msg("must be a date and time like 2025-03-31T14:30:00Z")) from None


def _choice(f: Field, _rules: InputRules) -> Coercer:
    options = frozenset(f.options)
    shown = ", ".join(f.options)

    def coerce(value: Any) -> str:
        if not isinstance(value, str) or value.strip() not in options:
            raise ValueProblem(msg("must be one of: %(options)s", options=shown))
        return value.strip()

    return coerce


def _multichoice(f: Field, _rules: InputRules) -> Coercer:
    options = f.options
    shown = ", ".join(options)

    def coerce(value: Any) -> list[str] | None:
        items = _LIST_SEP_RE.split(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ValueProblem(msg("must be a list of options from: %(options)s", options=shown))
        chosen = {i.strip() for i in items if i.strip()}
        unknown = sorted(chosen - set(options))
        if unknown:
            raise ValueProblem(msg("%(unknown)s not among the options: %(options)s",
                                   unknown=", ".join(unknown), options=shown))
        # Stored in option order, so equal choices compare equal; nothing chosen is blank.
        return [o for o in options if o in chosen] or None

    return coerce


def _link(_f: Field, _rules: InputRules) -> Coercer:
    def coerce(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueProblem(msg("must be a record id"))
        if isinstance(value, dict) and "id" in value:
            value = value["id"]
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip())  # isascii: "²".isdigit() is True, int("²") fails
        if not isinstance(value, int) or value <= 0 or value >= 2**63:
            raise ValueProblem(msg("must be a record id"))
        return value

    return coerce


_REGARDING_RE = re.compile(r"^([a-z][a-z0-9_]{0,62}):([0-9]{1,19})$")


def _regarding(f: Field, _rules: InputRules) -> Coercer:
    """{"entity": "account", "id": 12} (JSON) or "account:12" (a form, a CSV cell, a filter)
    to a Regarding; the entity must be one the field may point to (whether that record
    exists, and may be read, is checked with the other links)."""
    def coerce(value: Any) -> Regarding:
        if isinstance(value, dict) and set(value) <= {"entity", "id", "title"}:
            entity, rid = value.get("entity"), value.get("id")
            if isinstance(rid, str) and rid.strip().isascii() and rid.strip().isdigit():
                rid = int(rid.strip())
        elif isinstance(value, str) and (m := _REGARDING_RE.match(value.strip())):
            entity, rid = m.group(1), int(m.group(2))
        else:
            raise ValueProblem(msg('must name a record: {"entity": "account", "id": 12}'))
        if not isinstance(entity, str) or not _REGARDING_RE.match(f"{entity}:1") \
                or isinstance(rid, bool) or not isinstance(rid, int) or not 0 < rid < 2**63:
            raise ValueProblem(msg('must name a record: {"entity": "account", "id": 12}'))
        if f.targets and entity not in f.targets:
            raise ValueProblem(msg("cannot point to %(entity)s (it may point to %(allowed)s)",
                                   entity=entity, allowed=", ".join(f.targets)))
        return Regarding.of(entity, rid)

    return coerce


# The coercer maker of each field type (engine/fieldtypes.py declares the rest of a type).
COERCERS: dict[FieldType, Callable[[Field, InputRules], Coercer]] = {
    FieldType.TEXT: _text,
    FieldType.TEXTAREA: _text,
    FieldType.EMAIL: _text,
    FieldType.PHONE: _text,
    FieldType.URL: _text,
    FieldType.AUTONUMBER: _text,  # read by list filters; no write reaches the field
    FieldType.INTEGER: _integer,
    FieldType.DECIMAL: _decimal,
    FieldType.MONEY: _decimal,
    FieldType.PERCENT: _decimal,
    FieldType.BOOLEAN: _boolean,
    FieldType.FILE: _link,  # an attachment's id; which ones a record may hold: check_links
    FieldType.DATE: _date,
    FieldType.DATETIME: _datetime,
    FieldType.CHOICE: _choice,
    FieldType.MULTICHOICE: _multichoice,
    FieldType.REFERENCE: _link,
    FieldType.USER: _link,
    FieldType.DEPARTMENT: _link,
    FieldType.REGARDING: _regarding,
}


# Types whose values are their own JSON form (exact types: a subclass, such as Regarding of
# str, takes the checks below).
_AS_IS: frozenset[type] = frozenset({type(None), str, int, bool, float, list, dict})


def to_json(value: Any) -> Any:
    """A stored value as JSON: Decimal as a string (exact), dates and times in ISO 8601;
    the JSON forms of engine/fieldtypes.py, chosen by the value for callers without a field."""
    kind = type(value)
    if kind in _AS_IS:  # most values of a record: one look-up (a page of 1,000 has ~40,000)
        return value
    if kind is Decimal:
        return str(value)
    if isinstance(value, Regarding):
        return json_regarding(value)
    if isinstance(value, Decimal):
        return json_decimal(value)
    if isinstance(value, datetime):
        return json_datetime(value)
    if isinstance(value, date):
        return json_date(value)
    return value


def record_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """`to_json` of each value of a record (the API's answer), the values that are their own
    JSON form kept without a call."""
    return {k: v if type(v) in _AS_IS else to_json(v) for k, v in record.items()}

"""The form widget of each field type, and the text its input holds.

The contract between a form and the records service: for every field type, the text
`input_text` writes for a stored value is read back by the type's coercer
(engine/runtime/values.py) as that same value, in every language the UI offers. The input
text is written in the coercer's one syntax, not in the viewer's locale: numbers with ","
between thousands and "." before decimals ("1,234.5"; money always with 2 decimals; no
currency sign or percent sign), dates in ISO 8601, datetimes to the second (what a
`datetime-local` input with step 1 holds), booleans "true"/"false", options by name.
tests/test_fieldtypes.py checks it for generated values of every type and language.

A datetime's input holds its wall time in the organisation's time zone (settings.yaml
`time_zone`), with no offset: `input_text(f, value, zone)` writes it, and `posted_text`
turns the posted wall time back into an instant (ISO 8601 with the zone's offset) before
the coercer reads it — the coercer itself, shared with the JSON API, reads a text without
an offset as UTC. A wall time the zone skips (the hour clocks go forward) is read with
the offset before the change; one it has twice (the hour they go back) as the first, unless
it is the wall time of the value the form was showing, which is kept (`posted_text`'s
`shown`): saving a form unchanged never moves a datetime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Literal

from engine.metadata.model import Field
from engine.types import FieldType

InputText = Callable[[Any], "str | list[str]"]
"""A stored value (not None) as its input holds it."""


@dataclass(frozen=True)
class Input:
    kind: str
    """The widget ui_templates/form_fields.html draws: text, email, tel, url, textarea,
    integer, decimal, money, percent, date, datetime, select, checks, checkbox, picker,
    regarding."""
    text: InputText
    posted: Literal["first", "last", "all"] = "first"
    """Which of the values a form posts under the field's name it means: a checkbox comes
    after a hidden "false" (the last wins); checks send every option chosen."""


def grouped(value: Decimal | int, places: int | None = None) -> str:
    """A number as the coercer reads it back: "," between thousands, "." before decimals,
    `places` decimals, or as many as it has (trailing zeros dropped) when None.

    >>> grouped(Decimal("1234567.2345")), grouped(Decimal("12.5000")), grouped(5, 2)
    ('1,234,567.2345', '12.5', '5.00')
    """
    number = Decimal(value)
    if places is not None:
        return f"{number.quantize(Decimal(1).scaleb(-places)):,f}"
    text = f"{number:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _plain(value: Any) -> str:
    return str(value)


def _decimal(value: Any) -> str:
    return grouped(value)


def _money(value: Any) -> str:
    return grouped(value, 2)


def _boolean(value: Any) -> str:
    return "true" if value else "false"


def _date(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def wall_time(value: datetime, zone: tzinfo) -> str:
    """An instant (aware, or naive meaning UTC) as a `datetime-local` input holds it: its
    wall time in `zone`, to the second. An instant whose wall time is past the year 9999
    there keeps its UTC text with a Z (the coercer reads it back; a browser shows none).

    >>> from zoneinfo import ZoneInfo
    >>> wall_time(datetime(2026, 3, 31, 1, 0, tzinfo=UTC), ZoneInfo("Asia/Shanghai"))
    '2026-03-31T09:00:00'
    """
    at = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return at.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S")
    except OverflowError:
        return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def posted_text(text: str, zone: tzinfo, shown: datetime | None = None) -> str:
    """The text a datetime input posted, as the coercer should read it: a wall time with no
    offset is in `zone` and gets its offset there; anything else (a text with an offset,
    one that does not parse) is left for the coercer to read or refuse. `shown`: the value
    the form showed, kept when the text is its wall time (which may be ambiguous).

    >>> from zoneinfo import ZoneInfo
    >>> posted_text("2026-03-31T09:00", ZoneInfo("Asia/Shanghai"))
    '2026-03-31T09:00:00+08:00'
    >>> posted_text("2026-10-25T02:30:00", ZoneInfo("Europe/Berlin"))  # twice: the first
    '2026-10-25T02:30:00+02:00'
    >>> posted_text("2026-10-25T02:30:00", ZoneInfo("Europe/Berlin"),
    ...             datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # the second, as shown
    '2026-10-25T01:30:00+00:00'
    """
    if shown is not None and text.strip() == wall_time(shown, zone):
        return shown.isoformat()
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    if parsed.tzinfo is not None:
        return text
    return parsed.replace(tzinfo=zone).isoformat()


def _datetime(value: Any) -> str:
    return wall_time(value, UTC) if isinstance(value, datetime) else str(value)


def _options(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


# The widget of each field type (engine/fieldtypes.py declares the rest of a type).
INPUTS: dict[FieldType, Input] = {
    FieldType.TEXT: Input("text", _plain),
    FieldType.EMAIL: Input("email", _plain),
    FieldType.PHONE: Input("tel", _plain),
    FieldType.URL: Input("url", _plain),
    FieldType.AUTONUMBER: Input("text", _plain),  # shown read-only: the engine assigns it
    FieldType.TEXTAREA: Input("textarea", _plain),
    FieldType.INTEGER: Input("integer", _plain),
    FieldType.DECIMAL: Input("decimal", _decimal),
    FieldType.MONEY: Input("money", _money),
    FieldType.PERCENT: Input("percent", _decimal),
    FieldType.DATE: Input("date", _date),
    FieldType.DATETIME: Input("datetime", _datetime),
    FieldType.CHOICE: Input("select", _plain),
    FieldType.MULTICHOICE: Input("checks", _options, "all"),
    FieldType.BOOLEAN: Input("checkbox", _boolean, "last"),
    # the attachment kept (a hidden id) and a link to upload another: pages/attachments.py
    FieldType.FILE: Input("file", _plain),
    FieldType.REFERENCE: Input("picker", _plain),
    FieldType.USER: Input("picker", _plain),
    FieldType.DEPARTMENT: Input("picker", _plain),
    # "account:12": an entity select and that entity's picker (ui_templates/form_fields.html)
    FieldType.REGARDING: Input("regarding", _plain),
}


def input_text(f: Field, value: Any, zone: tzinfo = UTC) -> str | list[str]:
    """A stored value of `f` as its input holds it; blank is "" (no option for checks).
    A datetime is its wall time in `zone` (the organisation's time zone)."""
    if value is None:
        return [] if INPUTS[f.type].posted == "all" else ""
    if f.type is FieldType.DATETIME and isinstance(value, datetime):
        return wall_time(value, zone)
    return INPUTS[f.type].text(value)

"""The form widget of each field type, and the text its input holds.

The contract between a form and the records service: for every field type, the text
`input_text` writes for a stored value is read back by the type's coercer
(engine/runtime/values.py) as that same value, in every language the UI offers. The input
text is written in the coercer's one syntax, not in the viewer's locale: numbers with ","
between thousands and "." before decimals ("1,234.5"; money always with 2 decimals; no
currency sign or percent sign), dates in ISO 8601, datetimes in UTC to the second (what a
`datetime-local` input with step 1 holds), booleans "true"/"false", options by name.
tests/test_fieldtypes.py checks it for generated values of every type and language.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
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


def _datetime(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return str(value)


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


def input_text(f: Field, value: Any) -> str | list[str]:
    """A stored value of `f` as its input holds it; blank is "" (no option for checks)."""
    if value is None:
        return [] if INPUTS[f.type].posted == "all" else ""
    return INPUTS[f.type].text(value)

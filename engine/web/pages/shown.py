"""How a page shows a value of each field type, in the viewer's language.

`SHOWN[t]` names the way: one of `FORMATTED` (the formatter of that name in
engine.web.i18n.formatters writes it the locale's way: "¥1,234.50", "2025年3月31日"), or
bool (Yes/No), choice and choices (the options' labels), link (the linked record's title),
url and email (text that links), text or multiline. A list cell (pages/table.py) and a
record page or read-only widget (pages/fields.py Display.show) both read it.
"""

from __future__ import annotations

from engine.types import FieldType

FORMATTED = frozenset({"number", "money", "percent", "date", "datetime"})
NUMBERS = frozenset({"number", "money", "percent"})
"""The ways of showing that align a value right, as numbers are."""

# How each field type is shown (engine/fieldtypes.py declares the rest of a type).
SHOWN: dict[FieldType, str] = {
    FieldType.TEXT: "text",
    FieldType.TEXTAREA: "multiline",
    FieldType.EMAIL: "email",
    FieldType.PHONE: "text",
    FieldType.URL: "url",
    FieldType.AUTONUMBER: "text",
    FieldType.INTEGER: "number",
    FieldType.DECIMAL: "number",
    FieldType.MONEY: "money",
    FieldType.PERCENT: "percent",
    FieldType.BOOLEAN: "bool",
    FieldType.FILE: "file",  # the attachment's name, linking to its download
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime",
    FieldType.CHOICE: "choice",
    FieldType.MULTICHOICE: "choices",
    FieldType.REFERENCE: "link",
    FieldType.USER: "link",
    FieldType.DEPARTMENT: "link",
    FieldType.REGARDING: "link",
}

"""One home per field type: what a field of each type is, declared once.

`FIELD_TYPES[t]` is the entry of type `t`: the configuration options it takes, the formula
type it reads as, its JSON form, the list filter operators it offers, its OpenAPI schema,
its decimal shape or text limits. The parts that need libraries of higher layers are
registered per type in their layer, keyed by the same FieldType, and
tests/test_fieldtypes.py fails when a type lacks any of them:

- engine/runtime/values.py `COERCERS`: input (JSON, form text, CSV cells) to the stored value;
- engine/runtime/schema/tables.py `COLUMN_TYPES`: the SQLAlchemy column type;
- engine/web/pages/inputs.py `INPUTS`: the form widget and the text its input holds, which
  the coercer reads back to the same value in every language the UI offers;
- engine/web/pages/shown.py `SHOWN`: how a page displays a value, per language.

A new type is one entry here plus one in each of those tables, and their tests.

Rollup fields (a Field whose `rollup` is set) have no entry of their own: a rollup is
stored, coerced, filtered and shown as its RESULT type (count: integer; sum, min, max: the
type of the field aggregated; avg: decimal, or money for money), so it uses that type's
entry; only who may write it differs (Field.derived).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from engine.messages import N_, msg


class FieldType(StrEnum):
    TEXT = "text"
    TEXTAREA = "textarea"
    INTEGER = "integer"
    DECIMAL = "decimal"
    MONEY = "money"
    PERCENT = "percent"
    BOOLEAN = "boolean"
    FILE = "file"
    DATE = "date"
    DATETIME = "datetime"
    CHOICE = "choice"
    MULTICHOICE = "multichoice"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    REFERENCE = "reference"
    USER = "user"
    DEPARTMENT = "department"
    AUTONUMBER = "autonumber"
    REGARDING = "regarding"


OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "contains", "in", "blank")
"""Every list filter operator (`?amount__gte=1000`), in the order they are described."""
COMPARISONS = frozenset({"gt", "gte", "lt", "lte"})


class FieldFacts(Protocol):
    """What a type's OpenAPI schema reads of a field (engine.metadata.model.Field has it)."""

    @property
    def options(self) -> tuple[str, ...]: ...

    @property
    def target(self) -> str | None: ...

    @property
    def max_length(self) -> int | None: ...

    @property
    def min(self) -> Decimal | None: ...

    @property
    def max(self) -> Decimal | None: ...


JsonForm = Callable[[Any], Any]
Schema = Callable[[FieldFacts], dict[str, Any]]


# -- JSON forms ---------------------------------------------------------------------------

def json_plain(value: Any) -> Any:
    """Text, whole numbers, booleans, record ids and option lists are JSON as they are."""
    return value


def json_decimal(value: Any) -> Any:
    """An exact decimal as a string: "1234.50" (a JSON number would be read as a float)."""
    return str(value) if isinstance(value, Decimal) else value


def json_date(value: Any) -> Any:
    """A date in ISO 8601: "2025-03-31"."""
    return value.isoformat() if isinstance(value, date) else value


def json_datetime(value: Any) -> Any:
    """An instant in ISO 8601 UTC: "2025-03-31T14:30:00Z"."""
    if isinstance(value, datetime):
        if value.tzinfo is not UTC:  # read back from the database: already UTC
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    return value


class Regarding(str):
    """The value of a regarding field: the record it concerns, of any entity it may point to.

    It reads as the text "entity:id" (so formulas compare it alike in Python and in SQL,
    where it is the two columns joined), and is JSON as {"entity": ..., "id": ...}.

    >>> r = Regarding.of("account", 12)
    >>> r, r.entity, r.id
    ('account:12', 'account', 12)
    """

    __slots__ = ()

    @classmethod
    def of(cls, entity: str, record_id: int) -> Regarding:
        return cls(f"{entity}:{record_id}")

    @property
    def entity(self) -> str:
        return self.partition(":")[0]

    @property
    def id(self) -> int:
        return int(self.partition(":")[2])


def json_regarding(value: Any) -> Any:
    """A regarding value as {"entity": "account", "id": 12}."""
    if isinstance(value, Regarding):
        return {"entity": value.entity, "id": value.id}
    return value


# -- OpenAPI schemas ----------------------------------------------------------------------

DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"


def _text_schema(extra: Mapping[str, Any]) -> Schema:
    def schema(f: FieldFacts) -> dict[str, Any]:
        s = {"type": "string", **extra}
        if f.max_length:
            s["maxLength"] = f.max_length
        return s

    return schema


def _integer_schema(f: FieldFacts) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "integer"}
    if f.min is not None:
        s["minimum"] = int(f.min)
    if f.max is not None:
        s["maximum"] = int(f.max)
    return s


def _decimal_schema(scale: int) -> Schema:
    def schema(_f: FieldFacts) -> dict[str, Any]:
        return {"type": "string", "pattern": DECIMAL_PATTERN, "format": "decimal",
                "description": f"exact decimal with {scale} places; numbers are accepted on "
                               "input"}

    return schema


def _fixed_schema(s: Mapping[str, Any]) -> Schema:
    return lambda _f: dict(s)


def _choice_schema(f: FieldFacts) -> dict[str, Any]:
    return {"type": "string", "enum": list(f.options)}


def _multichoice_schema(f: FieldFacts) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": list(f.options)},
            "uniqueItems": True}


def _link_schema(user: bool) -> Schema:
    def schema(f: FieldFacts) -> dict[str, Any]:
        target = "user" if user else f.target
        return {"type": "integer", "minimum": 1, "description": f"id of a {target}"}

    return schema


def _regarding_schema(_f: FieldFacts) -> dict[str, Any]:
    return {"type": "object", "required": ["entity", "id"],
            "properties": {"entity": {"type": "string", "description": "the entity's name"},
                           "id": {"type": "integer", "minimum": 1},
                           "title": {"type": ["string", "null"], "readOnly": True}},
            "description": "the record it concerns; read back with its title (null when "
                           "the reader may not read that record)"}


# -- the entries --------------------------------------------------------------------------

@dataclass(frozen=True)
class TypeSpec:
    """Everything declarative about one field type."""

    type: FieldType
    kind: str
    """number, text, link or its own name (boolean, date, datetime, choice, multichoice)."""
    options: frozenset[str]
    """Configuration keys the type takes beyond the common ones (type, label, required...)."""
    formula: str
    """The formula type its values read as (an engine.formula.FType value)."""
    json: JsonForm
    """A stored value as JSON."""
    operators: tuple[str, ...]
    """The list filter operators it takes, in OPERATORS order."""
    openapi: Schema
    """Its OpenAPI schema (without title, description of the field or nullability)."""
    sortable: bool = True
    unique: bool = True
    """May the configuration mark it unique."""
    computable: bool = True
    """May a formula compute it."""
    decimal: tuple[int, int] | None = None
    """(precision, scale) of an exact decimal type."""
    text_max: int | None = None
    """The most characters a value holds when the field sets no max_length."""
    max_length_limit: int | None = None
    """The largest max_length the configuration may declare (None: no limit checked)."""
    shape: tuple[re.Pattern[str], str] | None = None
    """The pattern a text value must match, with how to describe it to a user."""

    @property
    def scale(self) -> int | None:
        """Decimal places a number holds: 0 for integer, 2 for money; None for non-numbers."""
        if self.type is FieldType.INTEGER:
            return 0
        return self.decimal[1] if self.decimal else None


_ORDERED_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "blank")
_TEXT_OPS = OPERATORS
_EQUALITY_OPS = ("eq", "ne", "in", "blank")
_TEXT_KEYS = frozenset({"max_length", "search"})
_BOUNDS = frozenset({"min", "max"})


def _text(t: FieldType, text_max: int, limit: int | None, *,
          shape: tuple[re.Pattern[str], str] | None = None,
          schema: Mapping[str, Any] | None = None, ordered: bool = True,
          unique: bool = True) -> TypeSpec:
    ops = _TEXT_OPS if ordered else tuple(o for o in OPERATORS if o not in COMPARISONS)
    return TypeSpec(t, "text", _TEXT_KEYS, "text", json_plain, ops,
                    _text_schema(schema or {}), unique=unique, text_max=text_max,
                    max_length_limit=limit, shape=shape)


def _number(t: FieldType, decimal: tuple[int, int] | None) -> TypeSpec:
    return TypeSpec(t, "number", _BOUNDS, "number",
                    json_plain if decimal is None else json_decimal, _ORDERED_OPS,
                    _integer_schema if decimal is None else _decimal_schema(decimal[1]),
                    decimal=decimal)


def _link(t: FieldType, options: frozenset[str] = frozenset()) -> TypeSpec:
    return TypeSpec(t, "link", options, "reference", json_plain, _EQUALITY_OPS,
                    _link_schema(t is FieldType.USER), computable=False)


_EMAIL_RE = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_PHONE_RE = re.compile(r"^\+?[0-9 ()./-]{3,40}$")
_URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)

FIELD_TYPES: Mapping[FieldType, TypeSpec] = {spec.type: spec for spec in (
    _text(FieldType.TEXT, 255, 1000),
    _text(FieldType.TEXTAREA, 100_000, None, ordered=False, unique=False),
    _text(FieldType.EMAIL, 254, 254, schema={"format": "email"}, shape=(
        _EMAIL_RE, N_("must be an email address like name@example.com"))),
    _text(FieldType.PHONE, 40, 40, shape=(
        _PHONE_RE, N_("must be a phone number (digits, spaces, + ( ) - . /)"))),
    _text(FieldType.URL, 2048, 2048, schema={"format": "uri"}, shape=(
        _URL_RE, N_("must be a web address starting with http:// or https://"))),
    _number(FieldType.INTEGER, None),
    _number(FieldType.DECIMAL, (15, 4)),
    _number(FieldType.MONEY, (15, 2)),
    _number(FieldType.PERCENT, (9, 4)),
    TypeSpec(FieldType.BOOLEAN, "boolean", frozenset(), "boolean", json_plain, _EQUALITY_OPS,
             _fixed_schema({"type": "boolean"}), unique=False),
    # An attachment of the record (engine/runtime/files/attachments.py), by its id: set by
    # uploading a file for the field; lists ask only whether it is blank.
    TypeSpec(FieldType.FILE, "file", frozenset(), "reference", json_plain, ("blank",),
             _fixed_schema({"type": "integer", "minimum": 1,
                            "description": "id of an attachment of the record "
                                           "(GET .../attachments/{id} downloads it)"}),
             sortable=False, unique=False, computable=False),
    TypeSpec(FieldType.DATE, "date", frozenset({"calendar"}), "date", json_date, _ORDERED_OPS,
             _fixed_schema({"type": "string", "format": "date"})),
    TypeSpec(FieldType.DATETIME, "datetime", frozenset({"calendar"}), "datetime",
             json_datetime, _ORDERED_OPS,
             _fixed_schema({"type": "string", "format": "date-time"})),
    TypeSpec(FieldType.CHOICE, "choice",
             frozenset({"options", "option_labels", "board", "closed"}), "text", json_plain,
             _ORDERED_OPS, _choice_schema),
    TypeSpec(FieldType.MULTICHOICE, "multichoice", frozenset({"options", "option_labels"}),
             "multichoice", json_plain, ("eq", "ne", "blank"), _multichoice_schema,
             sortable=False, unique=False, computable=False),
    _link(FieldType.REFERENCE, frozenset({"to"})),
    _link(FieldType.USER),
    _link(FieldType.DEPARTMENT),
    # Assigned by the engine as records are created (engine/metadata/number_format.py):
    # text to filter, sort and search on; its options are the format and search.
    TypeSpec(FieldType.AUTONUMBER, "text", frozenset({"format", "search"}), "text",
             json_plain, _TEXT_OPS, _text_schema({"readOnly": True}), text_max=100),
    TypeSpec(FieldType.REGARDING, "regarding", frozenset({"to"}), "text", json_regarding,
             ("eq", "ne", "blank"), _regarding_schema, sortable=False, unique=False,
             computable=False),
)}


def spec_of(t: FieldType) -> TypeSpec:
    """The entry of field type `t`."""
    return FIELD_TYPES[t]


def of_kind(kind: str) -> frozenset[FieldType]:
    """The field types of one kind: of_kind("number") is integer, decimal, money, percent."""
    return frozenset(t for t, spec in FIELD_TYPES.items() if spec.kind == kind)


def text_shape_problem(ftype: FieldType, text: str) -> str | None:
    """Why `text` does not have the shape `ftype` needs (email, phone, url), or None."""
    shape = FIELD_TYPES[ftype].shape
    if shape is None:
        return None
    if not shape[0].match(text) or (
            ftype is FieldType.PHONE and sum(c.isdigit() for c in text) < 3):
        return msg(shape[1])
    return None

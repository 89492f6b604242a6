"""The types of the formula language and the protocols a caller implements.

A formula knows nothing of entities, records or databases. The caller describes
fields through a `Scope` (for checking), supplies values through an `EvalContext`
(for Python evaluation) and columns through a callable (for SQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from engine.fieldtypes import FIELD_TYPES, FieldType
from engine.messages import N_, Message, msg

Path = tuple[str, ...]
"""A field path: ("amount",) or ("account", "owner", "name")."""

Value = Decimal | str | bool | date | datetime | tuple[str, ...] | int | None
"""A formula value: Decimal numbers, str, bool, date, aware UTC datetime, a tuple of
options (multichoice), an int id (reference) or None (BLANK)."""


class FType(StrEnum):
    NUMBER = "number"
    TEXT = "text"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    MULTICHOICE = "multichoice"
    REFERENCE = "reference"
    BLANK = "blank"
    """The type of BLANK() alone; it fits wherever any other type is expected."""


_ARTICLE = {FType.NUMBER: N_("a number"), FType.TEXT: N_("text"),
            FType.BOOLEAN: N_("a boolean"), FType.DATE: N_("a date"),
            FType.DATETIME: N_("a datetime"), FType.MULTICHOICE: N_("a multichoice field"),
            FType.REFERENCE: N_("a reference"), FType.BLANK: "BLANK()"}
_PLURAL = {FType.NUMBER: N_("numbers"), FType.TEXT: N_("texts"), FType.BOOLEAN: N_("booleans"),
           FType.DATE: N_("dates"), FType.DATETIME: N_("datetimes"),
           FType.MULTICHOICE: N_("multichoice fields"), FType.REFERENCE: N_("references"),
           FType.BLANK: "BLANK()"}


def described(t: FType) -> Message:
    """`t` as a message says it: 'a number', 'text', 'a date'."""
    return msg(_ARTICLE[t])


def plural(t: FType) -> Message:
    """'numbers', 'texts', 'multichoice fields'."""
    return msg(_PLURAL[t])


def ftype_of(field_type: FieldType) -> FType:
    """The formula type of a field type: choice fields are text, money is a number.

    >>> ftype_of(FieldType.MONEY), ftype_of(FieldType.CHOICE)
    (<FType.NUMBER: 'number'>, <FType.TEXT: 'text'>)
    """
    return FType(FIELD_TYPES[field_type].formula)


def scale_of(field_type: FieldType) -> int | None:
    """Decimal places a stored number field holds: 0 for integer, 2 for money."""
    return FIELD_TYPES[field_type].scale


class Scope(Protocol):
    """What the checker needs to know about the fields a formula can read."""

    def field_type(self, path: Path) -> FType | None:
        """The type of the field at `path`, or None when there is no such field.

        Every prefix of a longer path is asked first and must be a REFERENCE.
        """

    def field_names(self, prefix: Path) -> Sequence[str]:
        """The field names readable after `prefix` (() for the entity's own fields),
        used for "did you mean" suggestions."""

    def number_scale(self, path: Path) -> int | None:
        """How many decimal places the number field at `path` holds when read from the
        database (0 integer, 2 money, 4 decimal or percent); None when unknown.

        Only SQLite uses it, to keep its binary floating point results on exact
        decimals. Return None for a computed field unless its values are rounded to
        that scale in Python as well as in SQL.
        """


class Clock(Protocol):
    """Where TODAY() and NOW() come from; inject a fixed one in tests."""

    def today(self) -> date: ...

    def now(self) -> datetime:
        """An aware datetime (any zone; formulas work in UTC)."""


class EvalContext(Protocol):
    """A record as a compiled formula reads it in Python.

    `get` returns the value at a path (the caller follows references); numbers may be
    Decimal or int, multichoice values a list or tuple of str, references an int id.
    `prior`, `changed` and `is_new` serve ISCHANGED, PRIORVALUE and ISNEW.

    Optionally, a context has an attribute `direct_values`: a dict the compiled formula
    may read instead of calling `get`, or None. Walking it must give what `get` gives:
    `direct_values[name]` (missing: None) is the value of that field, a dict stands for
    a referenced record holding its fields (`get` gives its "id" at the end of a path),
    and a None on the way makes the whole path None. Formulas read it only where the
    value already has its plain type (str, Decimal, date, ...) and call `get` otherwise,
    so a context whose fields need work (computed fields, lookups) must leave it None.
    """

    @property
    def clock(self) -> Clock: ...

    @property
    def is_new(self) -> bool: ...

    def get(self, path: Path) -> object: ...

    def prior(self, path: Path) -> object: ...

    def changed(self, path: Path) -> bool: ...

"""Unique values: when two values are the same, and how a clash is told to the writer.

Text is stored in Unicode NFC (engine/runtime/values.py), so `Café` typed with a combining
accent and `Café` typed precomposed are one value. A record's name (a unique text field
that is its entity's `title`) is also case-insensitive: `ACME` is taken when `Acme` is.
Both databases compare names lower-cased (`fold`) — PostgreSQL with its own `lower()`, SQLite
with the `crm_fold` function engine/runtime/db.py registers (SQLite's `lower()` folds ASCII
only) — and Python folds the same way (`unique_key`) for values within one import.

A clash names the value, never the record that holds it: that record may be one the writer
cannot see. Only when they can see it and it is in the recycle bin does the message say so
(they may restore it).

On PostgreSQL the check takes a transaction-scoped advisory lock on the value first, so two
writers of `Acme` and `ACME` at once do not both find the name free (the unique index only
catches the exact same spelling); SQLite runs one write transaction at a time anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, func, literal, select

from engine.messages import msg
from engine.metadata.model import Entity, Field
from engine.runtime.db import FOLD_FUNCTION
from engine.runtime.records.locks import hold
from engine.runtime.values import to_json
from engine.types import FieldType


def fold(text: str) -> str:
    """A name as unique values compare it: `fold("Acme GmbH") == fold("ACME gmbh")`.

    Lower case as PostgreSQL's lower() gives it, with the Greek final sigma (U+03C2) folded
    to sigma (U+03C3): Python lowers a final capital sigma to the final form, PostgreSQL
    does not, so "ΣΊΣΥΦΟΣ" and "Σίσυφος" fold alike on both.
    """
    return text.lower().replace(_FINAL_SIGMA, _SIGMA)


_FINAL_SIGMA, _SIGMA = "\u03c2", "\u03c3"


def case_insensitive(entity: Entity, f: Field) -> bool:
    """Whether `f`'s unique values ignore case: the entity's name (its text title)."""
    return f.name == entity.title and f.type is FieldType.TEXT


def unique_key(entity: Entity, f: Field, value: Any) -> Any:
    """`value` as unique values of `f` compare it, in Python."""
    return fold(value) if isinstance(value, str) and case_insensitive(entity, f) else value


def unique_column(entity: Entity, f: Field, column: ColumnElement[Any],
                  dialect: str) -> ColumnElement[Any]:
    """`column` (or a value) as unique values of `f` compare it, in SQL."""
    if not case_insensitive(entity, f):
        return column
    if dialect == "postgresql":
        return func.replace(func.lower(column), _FINAL_SIGMA, _SIGMA)
    folded: ColumnElement[Any] = getattr(func, FOLD_FUNCTION)(column)
    return folded


def check_unique(conn: Connection, entity: Entity, table: Table, values: Mapping[str, Any],
                 errors: dict[str, str], readable: Callable[[], ColumnElement[bool] | None],
                 self_id: int | None = None) -> None:
    """Report in `errors` every unique value of `values` another record already holds.
    `readable()`: the writer's read condition on `table` (None: every record)."""
    dialect = conn.dialect.name
    for f in entity.fields:
        value = values.get(f.name)
        if not f.unique or value is None or f.name in errors:
            continue
        hold(conn, "unique", table.name, f.name, str(to_json(unique_key(entity, f, value))))
        column = unique_column(entity, f, table.c[f.name], dialect)
        stmt = select(table.c.id, table.c.deleted_at).where(
            column == unique_column(entity, f, _bound(table, f, value), dialect))
        if self_id is not None:
            stmt = stmt.where(table.c.id != self_id)
        other = conn.execute(stmt.limit(1)).first()
        if other is None:
            continue
        errors[f.name] = msg("%(value)s is already used", value=to_json(value))
        if other.deleted_at is not None:
            condition = readable()
            if condition is None or conn.execute(select(table.c.id).where(
                    table.c.id == other.id, condition)).first() is not None:
                errors[f.name] = msg("%(value)s is already used (by a record in the recycle "
                                     "bin)", value=to_json(value))


def _bound(table: Table, f: Field, value: Any) -> ColumnElement[Any]:
    return literal(value, table.c[f.name].type)

"""Move a column's values to a new type in Python, with the same coercion as record input."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    Numeric,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.types import TypeEngine

from engine.metadata.model import Field
from engine.runtime.schema.tables import USER_TABLE
from engine.runtime.schema.types import ExactDecimal
from engine.runtime.values import Coercer, ValueProblem, coercer_for, to_json
from engine.types import FieldType

BATCH = 5000


def _source(table: str, column: str, stored_type: TypeEngine[Any] | None = None,
            *extra: Column[Any]) -> Table:
    """The table with the column read through its live type (the same Python values on
    every database: a date is a date on SQLite too, a JSON list a list)."""
    if isinstance(stored_type, Numeric) and not isinstance(stored_type, Integer):
        # SQLite keeps NUMERIC as REAL: read it the way the engine's own decimals are read
        exact = stored_type.precision is not None and stored_type.scale is not None
        stored_type = ExactDecimal(stored_type.precision or 0, stored_type.scale or 0) \
            if exact else None
    source = Column(column, stored_type) if stored_type is not None else Column(column)
    return Table(table, MetaData(), Column("id", BigInteger, primary_key=True), source, *extra)


def _as_input(value: Any) -> Any:
    """A stored value as a client would send it (a date as "2025-03-31")."""
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # engine timestamps are stored in UTC
    return to_json(value)


def converted(conn: Connection, table: str, column: str, field: Field,
              narrow_to: int | None, stored_type: TypeEngine[Any] | None = None,
              ) -> Iterator[tuple[int, Any, Any, bool]]:
    """Yield (id, stored value, new value, lost) for every non-empty value of `table.column`.

    Each value goes through the new field's coercer as it is, or else in its JSON form (a
    date becomes a timestamp that way). With `narrow_to`, text is cut to that many
    characters first. A value that becomes a link to a record that does not exist is lost.
    """
    t = _source(table, column, stored_type)
    coerce = coercer_for(field)
    # yield_per on the statement: Connection.execution_options() would change the connection
    # itself, and a later DDL statement would then run through a server-side cursor.
    result = conn.execute(
        select(t.c.id, t.c[column]).where(t.c[column].is_not(None)).order_by(t.c.id)
        .execution_options(yield_per=BATCH))
    target = USER_TABLE if field.type is FieldType.USER else field.target
    for chunk in result.partitions(BATCH):
        out: list[tuple[int, Any, Any, bool]] = []
        for rid, stored in chunk:
            value = stored[:narrow_to] if narrow_to is not None and isinstance(stored, str) \
                else stored
            try:
                out.append((rid, stored, _coerce(coerce, value), False))
            except ValueProblem:
                out.append((rid, stored, None, True))
        if target:
            out = _drop_dangling(conn, target, out)
        yield from out


def _coerce(coerce: Coercer, value: Any) -> Any:
    try:
        return coerce(value)
    except ValueProblem:
        as_input = _as_input(value)
        if as_input is value:
            raise
        return coerce(as_input)


def _drop_dangling(conn: Connection, target: str,
                   rows: list[tuple[int, Any, Any, bool]]) -> list[tuple[int, Any, Any, bool]]:
    """Mark as lost the converted links whose record does not exist in `target`."""
    wanted = {new for _rid, _stored, new, lost in rows if not lost}
    t = Table(target, MetaData(), Column("id", BigInteger, primary_key=True))
    found = set(conn.execute(select(t.c.id).where(t.c.id.in_(wanted))).scalars()) \
        if wanted else set()
    return [(rid, stored, None, True) if not lost and new not in found
            else (rid, stored, new, lost) for rid, stored, new, lost in rows]


@dataclass(frozen=True)
class Loss:
    """What a conversion would do to the non-empty values of a column."""

    total: int  # non-empty values
    lost: int  # values that would become blank
    examples: tuple[Any, ...]  # the first few lost values, as stored

    def describe(self) -> str:
        """E.g. "1 of 2 non-empty values cannot be converted and would become blank, e.g. 'abc'"."""
        text = (f"{self.lost} of {self.total} non-empty values cannot be converted and would "
                f"become blank")
        if self.examples:
            text += ", e.g. " + ", ".join(repr(v) for v in self.examples)
        return text


def count_lost(conn: Connection, table: str, column: str, field: Field,
               narrow_to: int | None, stored_type: TypeEngine[Any] | None = None,
               examples: int = 3) -> Loss:
    """Count the values of `table.column` that would not survive the conversion to `field`."""
    total = lost = 0
    shown: list[Any] = []
    for _rid, stored, _new, was_lost in converted(conn, table, column, field, narrow_to,
                                                  stored_type):
        total += 1
        if was_lost:
            lost += 1
            if len(shown) < examples:
                shown.append(stored)
    return Loss(total, lost, tuple(shown))


def copy_converted(conn: Connection, table: str, column: str, target: str,
                   target_type: TypeEngine[Any], field: Field, narrow_to: int | None,
                   stored_type: TypeEngine[Any] | None = None) -> int:
    """Fill `table.target` with the converted values of `table.column`; return how many."""
    rows = [{"b_id": rid, "b_value": value}
            for rid, _stored, value, lost
            in converted(conn, table, column, field, narrow_to, stored_type) if not lost]
    t = _source(table, column, None, Column(target, target_type))
    stmt = update(t).where(t.c.id == bindparam("b_id")).values({target: bindparam("b_value")})
    for start in range(0, len(rows), BATCH):
        conn.execute(stmt, rows[start : start + BATCH])
    return len(rows)

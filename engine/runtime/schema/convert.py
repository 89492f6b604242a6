"""Move a column's values to a new type in Python, with the same coercion as record input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, MetaData, Table, bindparam, select, update
from sqlalchemy.types import TypeEngine

from engine.metadata.model import Field
from engine.runtime.values import ValueProblem, coercer_for

BATCH = 5000


def _source(table: str, column: str, *extra: Column[Any]) -> Table:
    return Table(table, MetaData(), Column("id", BigInteger, primary_key=True), Column(column),
                 *extra)


def converted(conn: Connection, table: str, column: str, field: Field,
              narrow_to: int | None) -> Iterator[tuple[int, Any, bool]]:
    """Yield (id, new value, lost) for every non-empty value of `table.column`."""
    t = _source(table, column)
    coerce = coercer_for(field)
    result = conn.execution_options(yield_per=BATCH).execute(
        select(t.c.id, t.c[column]).where(t.c[column].is_not(None)))
    for rid, value in result:
        if narrow_to is not None and isinstance(value, str):
            value = value[:narrow_to]
        try:
            yield rid, coerce(value), False
        except ValueProblem:
            yield rid, None, True


def count_lost(conn: Connection, table: str, column: str, field: Field,
               narrow_to: int | None) -> tuple[int, int]:
    """(values that convert, values that would become blank)."""
    kept = lost = 0
    for _rid, _value, was_lost in converted(conn, table, column, field, narrow_to):
        lost += was_lost
        kept += not was_lost
    return kept, lost


def copy_converted(conn: Connection, table: str, column: str, target: str,
                   target_type: TypeEngine[Any], field: Field, narrow_to: int | None) -> int:
    """Fill `table.target` with the converted values of `table.column`; return how many."""
    values = list(converted(conn, table, column, field, narrow_to))
    t = _source(table, column, Column(target, target_type))
    stmt = update(t).where(t.c.id == bindparam("b_id")).values({target: bindparam("b_value")})
    rows = [{"b_id": rid, "b_value": value} for rid, value, lost in values if not lost]
    for start in range(0, len(rows), BATCH):
        conn.execute(stmt, rows[start : start + BATCH])
    return len(rows)

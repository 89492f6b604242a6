"""Set-wise inserts of rows already checked, straight through the database driver.

Bulk writes (imports, bulk create, the audit and change-log rows of a large unit of work)
insert thousands of rows of the same shape. Through a SQLAlchemy `insert()` each row's
parameters are built and processed one by one (or, with RETURNING on SQLite, sent as
multi-row VALUES), which costs more than the database's own work. Here the statement is
written once per table and column list, each value goes through its column type's bind
processing exactly as an `insert()` would take it (so what is stored is the same), values
shared by every row are processed once, and the rows go to the driver in one call:
`executemany` of the table's SQLAlchemy-compiled INSERT (bound parameters) on SQLite,
COPY on PostgreSQL. Still inside the caller's transaction, with the same table and column
objects (names come from the metadata, quoted by the dialect: never from input).

Ids: a table's new ids are handed out before the insert (`new_ids`), so the rows carry
them and no RETURNING is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Null, Table, func, insert, select
from sqlalchemy.exc import DBAPIError

Processor = Callable[[Any], Any] | None


def insert_rows(conn: Connection, table: Table, names: Sequence[str],
                rows: Sequence[Sequence[Any]],
                constants: Mapping[str, Any] | None = None) -> None:
    """Insert `rows` (values in the order of `names`) into `table`, each row with the
    `constants` (the same value in every row) after its own values."""
    if not rows:
        return
    fixed = dict(constants or {})
    shape = _shape(conn.dialect, table, tuple(names), tuple(fixed))
    tail = tuple(_bind(p, fixed[n]) for n, p in zip(
        fixed, shape.processors[len(names):], strict=True))
    converted = _convert(rows, shape.processors[:len(names)], tail)
    if conn.dialect.name == "postgresql":
        driver: Any = conn.connection.driver_connection
        dbapi_error = conn.dialect.loaded_dbapi.Error
        try:
            with driver.cursor() as cur, cur.copy(shape.copy_sql) as copy:
                for row in converted:
                    copy.write_row(row)
        except dbapi_error as exc:  # as SQLAlchemy raises it (IntegrityError, …)
            raise DBAPIError.instance(shape.copy_sql, None, exc, dbapi_error) from exc
    else:
        if shape.order is not None:
            converted = list(map(shape.order, converted))
        conn.exec_driver_sql(shape.insert_sql, converted)


def insert_mappings(conn: Connection, table: Table, names: Sequence[str],
                    rows: Sequence[Mapping[str, Any]],
                    constants: Mapping[str, Any] | None = None) -> None:
    """`insert_rows` of rows given as mappings holding (at least) `names`."""
    if rows:
        values_of = itemgetter(*names) if len(names) > 1 else lambda r: (r[names[0]],)
        insert_rows(conn, table, names, [values_of(r) for r in rows], constants)


def new_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """`count` new ids for `table`, ascending, that no other writer can take: on
    PostgreSQL from the table's sequence; on SQLite (one write transaction at a time, the
    caller's) the ids the database would give — one above the highest, as an INTEGER
    PRIMARY KEY without AUTOINCREMENT does."""
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        sequence = conn.execute(
            select(func.pg_get_serial_sequence(table.name, "id"))).scalar_one()
        # one row holding them all: a row per id through a Result costs ~2 µs each
        taken = conn.execute(select(func.array_agg(func.nextval(sequence)))
                             .select_from(func.generate_series(1, count))).scalar_one()
        return sorted(taken)
    top = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    return list(range(top + 1, top + 1 + count))


class _Shape:
    """A table's insert statement for a column list (built by SQLAlchemy, names quoted by
    the dialect), each column's bind processing, and where each value goes in the
    statement's own column order."""

    def __init__(self, dialect: Dialect, table: Table, columns: tuple[str, ...]) -> None:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
        self.insert_sql = str(compiled)
        placed = list(compiled.positiontup or columns)
        # the given values in the statement's order (None: they are in it already)
        self.order: Callable[[Sequence[Any]], tuple[Any, ...]] | None = (
            None if placed == list(columns)
            else itemgetter(*[columns.index(n) for n in placed]))
        preparer = dialect.identifier_preparer
        listed = ", ".join(preparer.quote(n) for n in columns)
        self.copy_sql = f"COPY {preparer.format_table(table)} ({listed}) FROM STDIN"
        self.processors: list[Processor] = [
            table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in columns]


@lru_cache(maxsize=256)
def _shape(dialect: Dialect, table: Table, names: tuple[str, ...],
           fixed: tuple[str, ...]) -> _Shape:
    return _Shape(dialect, table, names + fixed)


def _bind(processor: Processor, value: Any) -> Any:
    if value is None or isinstance(value, Null):
        return None
    return value if processor is None else processor(value)


def _convert(rows: Sequence[Sequence[Any]], processors: Sequence[Processor],
             tail: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Each row's values as the driver takes them, the shared tail appended. Columns
    without bind processing are passed as they are; a `null()` (SQL NULL where None would
    be written as JSON 'null') is taken in the columns that have it, JSON ones. A value
    that is the same object as the one above it in its column (a unit's one timestamp on
    every audit row) is processed once."""
    work = [(i, p) for i, p in enumerate(processors) if p is not None]
    if not work:
        return [(*row, *tail) for row in rows]
    last_in: list[Any] = [None] * len(processors)
    last_out: list[Any] = [None] * len(processors)
    out: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(row)
        for i, p in work:
            v = values[i]
            if v is None:
                continue
            if v is last_in[i]:
                values[i] = last_out[i]
                continue
            done = None if isinstance(v, Null) else p(v)
            last_in[i], last_out[i] = v, done
            values[i] = done
        out.append((*values, *tail))
    return out

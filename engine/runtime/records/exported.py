"""What an export of a list writes: its columns and its rows, within the export scope.

The rows are the one secure query's for the `export` action (secure.exported: a role
without export on the entity is refused; own / department / all scope the rows as for
`read`), with the list's conditions, filter and sort and no paging; the columns are the
fields the actor may read. Links (reference, user, department) read as their records'
names, choices as their labels. The writer is engine/runtime/export.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select

from engine.fieldtypes import FieldType
from engine.messages import msg
from engine.metadata.model import Entity
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest
from engine.runtime.export import MAX_ROWS, Column
from engine.runtime.records import secure
from engine.runtime.records.names import USERS, name_column
from engine.runtime.records.query import ListQuery, order_by

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

SKIPPED = frozenset({FieldType.FILE, FieldType.REGARDING})
"""Field types an export leaves out (an attachment, a link to any entity)."""
NAME = "__name_"


class TooManyRows(BadRequest):
    """An export over the bound on rows: a 4xx naming the bound."""

    status = 413
    code = "too_many_rows"


@dataclass(frozen=True)
class ListExport:
    columns: list[Column]
    rows: Iterator[dict[str, Any]]


def export_columns(entity: Entity, hidden: frozenset[str], locale: str) -> list[Column]:
    """The id, then every field the reader may see (but files and regarding links), with
    headers in `locale` and choice labels."""
    cols = [Column("id", "ID", FieldType.INTEGER)]
    for f in entity.fields:
        if f.name in hidden or f.type in SKIPPED:
            continue
        options = {o: f.option_label(o, locale) for o in f.options} if f.options else {}
        kind = f.type
        if link_target(f.type, f.target) is not None:
            kind = FieldType.TEXT  # the linked record's name
        cols.append(Column(f.name, f.label.get(locale), kind, options))
    return cols


def link_target(kind: FieldType, target: str | None) -> str | None:
    if kind is FieldType.USER:
        return USERS
    if kind in (FieldType.REFERENCE, FieldType.DEPARTMENT):
        return target or ("department" if kind is FieldType.DEPARTMENT else None)
    return None


def export_list(records: Records, actor: Actor, entity: str, query: ListQuery, *,
                locale: str = "en", limit: int = MAX_ROWS) -> ListExport:
    """The columns and rows of the list `query` (its conditions, filter and sort; not its
    page) that `actor` may export. Forbidden without the export scope; TooManyRows when
    more than `limit` rows match. The rows are read as they are written, one connection
    held open until the iterator ends."""
    seen = secure.exported(records, actor, entity)
    e = seen.entity
    hidden = seen.hidden
    where = [*seen.where, *seen.conditions(query.conditions)]
    if query.filter is not None:
        where.append(seen.condition(query.filter))
    count = records.engine.connect()
    try:
        total = count.execute(select(func.count()).select_from(seen.table)
                              .where(*where)).scalar_one()
    finally:
        count.close()
    if total > limit:
        raise TooManyRows(msg("the export has %(count)s rows, more than the %(limit)s an "
                              "export may write; narrow its filter", count=total,
                              limit=limit))
    columns = export_columns(e, hidden, locale)
    links: dict[str, str] = {}
    for f in e.fields:
        target = link_target(f.type, f.target)
        if target is not None and f.name not in hidden and f.name in seen.table.c:
            links[f.name] = target
    stmt: Select[Any] = seen.select(*seen.record_columns()).where(*where[len(seen.where):])
    for key, target in links.items():
        name = name_column(records, actor, target, seen.table.c[key])
        if name is not None:
            stmt = stmt.add_columns(name.label(NAME + key))
    stmt = stmt.order_by(*order_by(seen.columns, query.sort, records.nulls_small))
    write = records.row_writer(actor, seen.compiled)
    return ListExport(columns, _rows(records, stmt, write, links))


def _rows(records: Records, stmt: Select[Any], write: Any,
          links: dict[str, str]) -> Iterator[dict[str, Any]]:
    # yield_per on the statement alone: set on the connection it would stream the
    # transaction's own first statement too (the time limit's set_config, engine/runtime/db.py)
    with records.engine.connect() as conn, \
            conn.execute(stmt, execution_options={"yield_per": 1000}) as result:
        for row in result.mappings():
            out: dict[str, Any] = write(row)
            for key in links:
                if out.get(key) is not None:
                    name = row.get(NAME + key)
                    out[key] = name if name else f"#{out[key]}"
            yield out

"""Set-wise checks for bulk create: one query per link field and unique field per batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, select

from engine.metadata.model import Entity
from engine.runtime.records.unique import unique_column, unique_key
from engine.runtime.schema.tables import USER_TABLE
from engine.runtime.values import to_json

Batch = list[tuple[int, dict[str, Any]]]
Readable = Callable[[Table], ColumnElement[bool] | None]


def live_target(target: Table) -> ColumnElement[bool]:
    """Rows a link may point at: active users, or records not in the recycle bin."""
    return target.c.active if target.name == USER_TABLE else target.c.deleted_at.is_(None)

_CHUNK = 500


def drop_unlinked_and_taken(conn: Connection, entity: Entity, table: Table,
                            links: dict[str, Table], batch: Batch,
                            errors: list[tuple[int, dict[str, str]]],
                            readable: Readable) -> Batch:
    """The rows of `batch` whose links point to live records the importer may read
    (`readable(target)`: a condition, or None for all) and whose unique values are free; the
    others are reported in `errors` by their row index."""
    bad: dict[int, dict[str, str]] = {}
    for name, target in links.items():
        wanted = sorted({v[name] for _, v in batch if v.get(name) is not None})
        if not wanted:
            continue
        live = live_target(target)
        allowed = readable(target)
        if allowed is not None:
            live = and_(live, allowed)
        found: set[Any] = set()
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            found |= set(conn.execute(select(target.c.id).where(
                and_(target.c.id.in_(chunk), live))).scalars())
        for i, v in batch:
            if v.get(name) is not None and v[name] not in found:
                bad.setdefault(i, {})[name] = (
                    f"no {target.name.removeprefix('crm_')} with id {v[name]}")
    for f in entity.fields:
        if not f.unique:
            continue
        # Compared as unique values compare (a name ignores case: records/unique.py).
        values = list({unique_key(entity, f, v[f.name]) for _, v in batch
                       if v.get(f.name) is not None})
        column = unique_column(entity, f, table.c[f.name], conn.dialect.name)
        taken: set[Any] = set()
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            taken |= set(conn.execute(select(column).where(column.in_(chunk))).scalars())
        for i, v in batch:
            if v.get(f.name) is not None and unique_key(entity, f, v[f.name]) in taken:
                bad.setdefault(i, {})[f.name] = f"{to_json(v[f.name])!s} is already used"
    errors.extend(sorted(bad.items()))
    return [(i, v) for i, v in batch if i not in bad]

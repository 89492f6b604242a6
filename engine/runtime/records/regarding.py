"""Regarding fields at run time: the record one points at must exist and be readable by the
writer, its title is shown only to readers who may read it, and a record some regarding
field points at is not purged.

A regarding value names a record of any entity its field allows (`to:`), stored in two
columns (engine/runtime/schema/regarding.py). Writing one is checked like a reference: the
target must be live and readable by the writer, and a record that does not exist and one the
writer may not read get the same message, so the check never tells which. Reading one gives
its title only when the reader may read the target (`titles`); otherwise the title is null.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from engine.fieldtypes import Regarding
from engine.messages import msg
from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import Conflict
from engine.runtime.records import secure
from engine.runtime.schema.regarding import points_at
from engine.types import TEXT_TYPES, FieldType

if TYPE_CHECKING:
    from engine.runtime.records.service import Compiled, Records

BATCH = 500


def regarding_fields(entity: Entity) -> tuple[Field, ...]:
    return tuple(f for f in entity.stored_fields if f.type is FieldType.REGARDING)


def may_read_entity(records: Records, actor: Actor, entity: str) -> bool:
    return records.model.has_entity(entity) and \
        records.policy.scope(actor, entity, "read") is not Scope.NONE


def check_regarding(records: Records, conn: Connection, actor: Actor, c: Compiled,
                    values: Mapping[str, Any], errors: dict[str, str],
                    self_id: int | None = None) -> None:
    """Each regarding value of `values` must name a live record `actor` may read; the same
    message for one that does not exist and one the writer may not see."""
    for name in sorted(c.regarding):
        value = values.get(name)
        if value is None or name in errors:
            continue
        target = Regarding(value)
        if self_id is not None and target.entity == c.entity.name and target.id == self_id:
            errors[name] = msg("cannot point to the record itself")
        elif not _readable(records, conn, actor, target):
            errors[name] = msg("no %(entity)s with id %(id)s", entity=target.entity,
                               id=target.id)


def _readable(records: Records, conn: Connection, actor: Actor, target: Regarding) -> bool:
    if not may_read_entity(records, actor, target.entity):
        return False
    seen = secure.rows(records, actor, target.entity)
    t = seen.table
    return conn.execute(seen.select(t.c.id).where(t.c.id == target.id)).first() is not None


def titles(records: Records, actor: Actor, conn: Connection,
           values: Iterable[Any]) -> dict[Regarding, str | None]:
    """Regarding value → the target's title as `actor` may read it: None for a record they
    may not read (or that is gone), '#id' when its title is hidden from them or blank."""
    wanted: dict[str, set[int]] = {}
    for v in values:
        if isinstance(v, Regarding):
            wanted.setdefault(v.entity, set()).add(v.id)
    out: dict[Regarding, str | None] = {}
    for entity_name, ids in wanted.items():
        found = _titles_of(records, actor, conn, entity_name, sorted(ids))
        out.update({Regarding.of(entity_name, i): found.get(i) for i in ids})
    return out


def _titles_of(records: Records, actor: Actor, conn: Connection, entity_name: str,
               ids: list[int]) -> dict[int, str]:
    if not may_read_entity(records, actor, entity_name):
        return {}
    entity = records.model.entity(entity_name)
    seen = secure.rows(records, actor, entity_name)
    t = seen.table
    title = entity.field(entity.title) if entity.has_field(entity.title) else None
    shown = title is not None and title.name not in seen.hidden and (
        title.type in TEXT_TYPES or title.type is FieldType.CHOICE) and (
        not title.computed or (title.compiled is not None and title.compiled.sql_capable))
    columns = [t.c.id] + ([seen.column(title.name).label("title")]
                          if shown and title is not None else [])
    out: dict[int, str] = {}
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        for row in conn.execute(seen.select(*columns).where(t.c.id.in_(chunk))).mappings():
            text = row.get("title")
            out[int(row["id"])] = str(text) if text not in (None, "") else f"#{row['id']}"
    return out


def with_titles(record: Mapping[str, Any], entity: Entity,
                found: Mapping[Regarding, str | None]) -> dict[str, Any]:
    """`record` with each regarding value as JSON with its title (null: not readable)."""
    out = dict(record)
    for f in regarding_fields(entity):
        v = out.get(f.name)
        if isinstance(v, Regarding):
            out[f.name] = {"entity": v.entity, "id": v.id, "title": found.get(v)}
    return out


def refuse_regarded(records: Records, conn: Connection, entity: str, record_id: int) -> None:
    """409 when a regarding field of any record (in the recycle bin too) points at the
    record, as purging a record a reference points at is refused: clear those first."""
    for other in records.model.entities:
        t = records.schema.table(other.name)
        for f in regarding_fields(other):
            if f.targets and entity not in f.targets:
                continue
            if conn.execute(select(t.c.id).where(points_at(t, f.name, entity, record_id))
                            .limit(1)).first() is not None:
                raise Conflict(msg("%(entity)s %(id)s is still referenced by other records; "
                                   "clear those links first", entity=entity, id=record_id))


def titled(records: Records, actor: Actor, entity: str,
           rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` of `entity` with their regarding values as {"entity", "id", "title"}, each
    title read as `actor` may read it (null for a record they may not read)."""
    fields = regarding_fields(records.compiled(entity).entity)
    if not fields or not rows:
        return rows
    with records.reading() as conn:
        found = titles(records, actor, conn, (r.get(f.name) for r in rows for f in fields))
    e = records.compiled(entity).entity
    return [with_titles(r, e, found) for r in rows]

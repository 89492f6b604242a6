"""Column mappings saved from the import page (crm_import_mapping), offered again for files
like the one they were made for.

A saved mapping belongs to one entity and one author, who may share it with everyone who
may create records of that entity. It keeps the headers of the file it was made for:
`best_saved_mapping` offers the visible mapping whose headers best match a new file's
(compared as engine/runtime/imports/mapping.py `header_key` does; at least half in common),
the reader's own before a shared one, the newest first. A shared mapping shown to another
user leaves out the fields hidden from them: it never reveals a field they may not see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, or_, select, update

from engine.messages import msg
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.db import WRITE
from engine.runtime.errors import Forbidden, Invalid, NotFound
from engine.runtime.imports.mapping import ColumnMap, header_key
from engine.runtime.schema.tables import IMPORT_MAPPING_TABLE

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

MAX_SAVED = 100
"""Mappings one author may keep per entity."""
MAX_NAME = 100
MIN_MATCH = 0.5
"""The least share of headers in common for a saved mapping to be offered for a file."""


@dataclass(frozen=True)
class SavedMapping:
    id: int
    entity: str
    owner_id: int
    name: str
    shared: bool
    headers: tuple[str, ...]
    mapping: ColumnMap
    updated_at: datetime


def save_mapping(records: Records, actor: Actor, entity: str, name: str, mapping: ColumnMap,
                 headers: Sequence[str], *, shared: bool = False) -> SavedMapping:
    """Save `mapping` under `name` for `actor` (replacing their own of that name). Invalid
    for a blank or long name, a field `entity` does not have, or too many saved."""
    ent = records.model.entity(entity)
    if actor.user_id is None:
        raise Forbidden(msg("only a user saves mappings"))
    records.policy.require(actor, ent, "create")
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise Invalid(msg("a mapping needs a name of 1 to %(limit)s characters", limit=MAX_NAME),
                      {"name": msg("a mapping needs a name of 1 to %(limit)s characters",
                                   limit=MAX_NAME)})
    unknown = [f for f in mapping.columns.values() if f is not None and not ent.has_field(f)]
    if mapping.key is not None and not ent.has_field(mapping.key):
        unknown.append(mapping.key)
    if unknown:
        raise Invalid(msg("%(entity)s has no field %(field)s", entity=ent.label,
                          field=", ".join(unknown)))
    t = _table(records)
    now = records.clock()
    values = {"shared": shared, "headers": list(headers),
              "columns": dict(mapping.columns), "key": mapping.key, "updated_at": now}
    mine = (t.c.owner_id == actor.user_id) & (t.c.entity == entity)
    with records.engine.execution_options(**WRITE).begin() as conn:
        old = conn.execute(select(t.c.id).where(mine, t.c.name == name)).scalar()
        if old is not None:
            conn.execute(update(t).where(t.c.id == old).values(**values))
            saved_id = int(old)
        else:
            count = conn.execute(select(func.count()).select_from(t).where(mine)).scalar() or 0
            if count >= MAX_SAVED:
                raise Invalid(msg("you have %(count)s saved mappings for this entity; delete "
                                  "one first", count=MAX_SAVED))
            saved_id = int(conn.execute(insert(t).values(
                entity=entity, owner_id=actor.user_id, name=name, created_at=now,
                **values).returning(t.c.id)).scalar_one())
    return get_mapping(records, actor, saved_id)


def saved_mappings(records: Records, actor: Actor, entity: str) -> list[SavedMapping]:
    """The mappings of `entity` that `actor` sees: their own, and the shared ones when they
    may create records of it; their own first, then by name."""
    ent = records.model.entity(entity)
    t = _table(records)
    mine = t.c.owner_id == actor.user_id if actor.user_id is not None else t.c.id < 0
    shared = t.c.shared.is_(True) if _may_import(records, actor, entity) else t.c.id < 0
    stmt = select(t).where(t.c.entity == ent.name, or_(mine, shared))
    with records.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    found = [_saved(records, actor, row) for row in rows]
    return sorted(found, key=lambda s: (s.owner_id != actor.user_id, s.name.casefold(), s.id))


def get_mapping(records: Records, actor: Actor, mapping_id: int) -> SavedMapping:
    """One saved mapping `actor` sees; NotFound for one they do not."""
    t = _table(records)
    with records.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == mapping_id)).first()
    if row is None or not (row.owner_id == actor.user_id or (
            row.shared and _may_import(records, actor, str(row.entity)))):
        raise NotFound(msg("no saved mapping %(id)s", id=mapping_id))
    return _saved(records, actor, row)


def delete_mapping(records: Records, actor: Actor, mapping_id: int) -> None:
    """Delete a saved mapping: its author, or an administrator a shared one."""
    saved = get_mapping(records, actor, mapping_id)
    if saved.owner_id != actor.user_id and not (saved.shared
                                                and records.policy.is_admin(actor)):
        raise Forbidden(msg("only its author or an administrator deletes a saved mapping"))
    t = _table(records)
    with records.engine.execution_options(**WRITE).begin() as conn:
        conn.execute(delete(t).where(t.c.id == mapping_id))


def match_share(saved_headers: Sequence[str], headers: Sequence[str]) -> float:
    """The share of headers two files have in common (of all the headers either has).

    >>> match_share(["客户名称", "城市"], ["*客户名称", "城市", "电话"])
    0.6666666666666666
    """
    a = {header_key(h) for h in saved_headers}
    b = {header_key(h) for h in headers}
    return len(a & b) / len(a | b) if a | b else 0.0


def best_saved_mapping(records: Records, actor: Actor, entity: str,
                       headers: Sequence[str]) -> SavedMapping | None:
    """The visible saved mapping made for headers most like `headers` (at least MIN_MATCH in
    common), the actor's own before a shared one at an equal match, the newest first."""
    best: tuple[float, bool, datetime, int] | None = None
    chosen = None
    for saved in saved_mappings(records, actor, entity):
        share = match_share(saved.headers, headers)
        if share < MIN_MATCH:
            continue
        rank = (share, saved.owner_id == actor.user_id, saved.updated_at, saved.id)
        if best is None or rank > best:
            best, chosen = rank, saved
    return chosen


def _may_import(records: Records, actor: Actor, entity: str) -> bool:
    return records.policy.scope(actor, entity, "create") is not Scope.NONE


def _table(records: Records) -> Any:
    return records.schema.table(IMPORT_MAPPING_TABLE)


def _saved(records: Records, actor: Actor, row: Any) -> SavedMapping:
    r = row._mapping
    entity = str(r["entity"])
    columns: dict[str, str | None] = dict(r["columns"] or {})
    key = r["key"]
    if records.model.has_entity(entity) and r["owner_id"] != actor.user_id:
        hidden = records.policy.mask(actor, records.model.entity(entity)).hidden
        columns = {c: (None if f in hidden else f) for c, f in columns.items()}
        key = None if key in hidden else key
    return SavedMapping(id=int(r["id"]), entity=entity, owner_id=int(r["owner_id"]),
                        name=str(r["name"]), shared=bool(r["shared"]),
                        headers=tuple(r["headers"] or ()),
                        mapping=ColumnMap(columns, entity, key), updated_at=r["updated_at"])

"""A record's timeline: what happened to it and around it, newest first, a page at a time.

The timeline of a record (the *subject*) holds

- records that concern it: those of an entity with a regarding field (activities, notes)
  whose regarding field points at it, or whose reference field does (`activity.account`);
- its changes, from the audit: one item per write (create, update, delete, restore,
  assign...) with who, when and which fields;
- the files attached to it (when the engine keeps attachments, `crm_attachment`);
- the same for its children one level down: the records whose reference field points at
  the subject (an account's opportunities and contacts), so an account's timeline shows
  its opportunities' activities and changes too.

Every item passes through the one secure query (engine/runtime/records/secure.py): a record
the viewer may not read is never an item, nor are the changes and files of a child they may
not read, and a field hidden from them is never named in a change (a change of hidden fields
alone is not an item). Items are ordered by (time, source, id), newest first; a page is at
most `limit` items and `before` (the cursor of the last item shown) asks for the next.

>>> page = timeline(records, actor, "account", 12)  # doctest: +SKIP
>>> [(i.kind, i.entity, i.record_id) for i in page.items][:2]  # doctest: +SKIP
[('record', 'note', 5), ('change', 'account', 12)]
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    func,
    literal,
    not_,
    or_,
    select,
)

from engine.messages import msg
from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest
from engine.runtime.records import secure
from engine.runtime.records.opened import open_record
from engine.runtime.schema.regarding import entity_column, id_column, points_at
from engine.runtime.values import to_json
from engine.types import TEXT_TYPES, FieldType

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

PAGE = 30
"""Items per page unless the caller asks for fewer."""
MAX_PAGE = 100
ATTACHMENTS = "crm_attachment"
CHANGE = "change"
ATTACHED = "attachment"
"""The audit action of a file added to or taken off a record."""
FILE = "file"
RECORD = "record"


@dataclass(frozen=True)
class TimelineItem:
    """One thing that happened. `kind`: record (a record that concerns the subject or a
    child: `entity`, `record_id`, `title`), change (a write of the subject or a child:
    `action`, `fields`) or file (`title` is the file's name, `file_id` its attachment)."""

    kind: str
    at: datetime
    source: str
    key: int
    entity: str
    record_id: int
    user: str | None = None
    title: str | None = None
    action: str | None = None
    fields: tuple[str, ...] = ()
    file_id: int | None = None
    about: str | None = None
    """For a change or file of a child, or a record concerning one: "entity:id" of the
    child; None when it is the subject's own."""

    @property
    def cursor(self) -> str:
        return encode_cursor(self.at, self.source, self.key)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "at": to_json(self.at),
                               "entity": self.entity, "id": self.record_id,
                               "user": self.user}
        if self.kind == CHANGE:
            out.update(action=self.action, fields=list(self.fields))
        else:
            out["title"] = self.title
        if self.file_id is not None:
            out["file_id"] = self.file_id
        if self.about is not None:
            entity, _, rid = self.about.partition(":")
            out["about"] = {"entity": entity, "id": int(rid)}
        return out


@dataclass(frozen=True)
class TimelinePage:
    items: list[TimelineItem]
    next_cursor: str | None
    """The `before` of the next page; None on the last."""


# -- the cursor ---------------------------------------------------------------------------

def encode_cursor(at: datetime, source: str, key: int) -> str:
    """The position after an item, as an opaque URL-safe text."""
    raw = json.dumps([to_json(at), source, key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str, int]:
    """(time, source, id) of a cursor; 400 for one this module did not write."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        at, source, key = json.loads(raw)
        when = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
        if not isinstance(source, str) or isinstance(key, bool) or not isinstance(key, int) \
                or when.tzinfo is None:
            raise ValueError(text)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(msg("invalid timeline cursor"),
                         {"before": msg("not a cursor this timeline gave")}) from None
    return when, source, key


def _before(at: ColumnElement[Any], key: ColumnElement[Any], source: str,
            cursor: tuple[datetime, str, int] | None) -> list[ColumnElement[bool]]:
    """Rows of `source` that come after `cursor` in newest-first order."""
    if cursor is None:
        return []
    c_at, c_source, c_key = cursor
    if source < c_source:
        return [at <= c_at]
    if source > c_source:
        return [at < c_at]
    return [or_(at < c_at, and_(at == c_at, key < c_key))]


# -- who is around the subject ------------------------------------------------------------

@dataclass(frozen=True)
class _Scope:
    """The subject and, per child entity, the select of its children's ids the viewer may
    read."""

    entity: str
    record_id: int
    children: tuple[tuple[str, Select[Any]], ...]

    def points(self, t: Any, f: Field) -> list[_Point]:
        """How field `f` of table `t` points at the subject or one of its children."""
        out: list[_Point] = []
        if f.type is FieldType.REGARDING:
            entity, rid = t.c[entity_column(f.name)], t.c[id_column(f.name)]
            if _may_point(f, self.entity):
                out.append(_Point(None, points_at(t, f.name, self.entity, self.record_id),
                                  rid))
            for child, ids in self.children:
                if _may_point(f, child):
                    out.append(_Point(child, and_(entity == child, rid.in_(ids)), rid))
        elif f.type is FieldType.REFERENCE and not f.computed:
            if f.to == self.entity:
                out.append(_Point(None, t.c[f.name] == self.record_id, t.c[f.name]))
            for child, ids in self.children:
                if f.to == child:
                    out.append(_Point(child, t.c[f.name].in_(ids), t.c[f.name]))
        return out


@dataclass(frozen=True)
class _Point:
    """A condition that a row points at the subject (`child` None) or at a child of entity
    `child`, whose id is `value`."""

    child: str | None
    condition: ColumnElement[bool]
    value: ColumnElement[Any]


def _may_point(f: Field, entity: str) -> bool:
    return not f.targets or entity in f.targets


def timeline_entities(records: Records) -> tuple[Entity, ...]:
    """Entities whose records are timeline items: those with a regarding field."""
    return tuple(e for e in records.model.entities
                 if any(f.type is FieldType.REGARDING for f in e.fields))


def _readable(records: Records, actor: Actor, entity: str) -> bool:
    return records.policy.scope(actor, entity, "read") is not Scope.NONE


def _scope(records: Records, actor: Actor, entity: str, record_id: int) -> _Scope:
    items = {e.name for e in timeline_entities(records)}
    children: list[tuple[str, Select[Any]]] = []
    for e in records.model.entities:
        if e.name in items or not _readable(records, actor, e.name):
            continue
        vias = [f for f in e.stored_fields
                if f.type is FieldType.REFERENCE and f.to == entity and f.rollup is None]
        if not vias:
            continue
        seen = secure.rows(records, actor, e.name)
        t = seen.table
        ids = seen.select(t.c.id).where(or_(*[t.c[f.name] == record_id for f in vias]))
        children.append((e.name, ids))
    return _Scope(entity, record_id, tuple(children))


# -- the sources --------------------------------------------------------------------------

def _record_items(records: Records, actor: Actor, conn: Connection, scope: _Scope,
                  cursor: tuple[datetime, str, int] | None, limit: int) -> list[TimelineItem]:
    out: list[TimelineItem] = []
    users = records.users
    for e in timeline_entities(records):
        if not _readable(records, actor, e.name):
            continue
        seen = secure.rows(records, actor, e.name)
        t = seen.table
        points = [p for f in e.stored_fields if f.name not in seen.hidden
                  for p in scope.points(t, f)]
        if not points:
            continue
        source = f"{RECORD}:{e.name}"
        columns = [t.c.id, t.c.created_at, users.c.display_name, users.c.name,
                   _title_column(seen, e).label("title")]
        for i, p in enumerate(points):
            columns += [p.condition.label(f"p{i}"), p.value.label(f"v{i}")]
        stmt = (seen.select(*columns)
                .select_from(t.outerjoin(users, users.c.id == t.c.created_by))
                .where(or_(*[p.condition for p in points]),
                       *_before(t.c.created_at, t.c.id, source, cursor))
                .order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit + 1))
        for row in conn.execute(stmt).mappings():
            hits = [(p, row[f"v{i}"]) for i, p in enumerate(points) if row[f"p{i}"]]
            near = None if any(p.child is None for p, _ in hits) \
                else next((f"{p.child}:{v}" for p, v in hits), None)
            title = row["title"]
            out.append(TimelineItem(
                RECORD, row["created_at"], source, int(row["id"]), e.name, int(row["id"]),
                user=row["display_name"] or row["name"],
                title=str(title) if title not in (None, "") else f"#{row['id']}",
                about=near))
    return out


def _title_column(seen: secure.SecureRows, e: Entity) -> ColumnElement[Any]:
    """The title the viewer may read: a text title field they see, else NULL (#id)."""
    if e.has_field(e.title):
        f = e.field(e.title)
        if f.name not in seen.hidden and (f.type in TEXT_TYPES or f.type is FieldType.CHOICE) \
                and (not f.computed or (f.compiled is not None and f.compiled.sql_capable)):
            return seen.column(f.name)
        return literal(None)
    return seen.table.c.id


def _audited(records: Records, actor: Actor, entity: str) -> frozenset[str]:
    return records.audited_fields(actor, records.compiled(entity))


def _change_items(records: Records, actor: Actor, conn: Connection, scope: _Scope,
                  cursor: tuple[datetime, str, int] | None, limit: int) -> list[TimelineItem]:
    audit, users = records.audit, records.users
    whose: list[ColumnElement[bool]] = [and_(
        audit.c.entity == scope.entity, audit.c.record_id == scope.record_id,
        or_(audit.c.field.is_(None),
            audit.c.field.in_(sorted(_audited(records, actor, scope.entity)))))]
    for child, ids in scope.children:
        whose.append(and_(audit.c.entity == child, audit.c.record_id.in_(ids),
                          or_(audit.c.field.is_(None),
                              audit.c.field.in_(sorted(_audited(records, actor, child))))))
    # Rows of a record purged for good belong to it, not to a record given its id since.
    purged = select(func.max(audit.c.id)).where(
        audit.c.entity == scope.entity, audit.c.record_id == scope.record_id,
        audit.c.action == "purge").scalar_subquery()
    # A file added is its own item (the file, with its link); only its removal is a change.
    added_file = and_(audit.c.action == ATTACHED, audit.c.old_value.is_(None))
    key = func.max(audit.c.id)
    group = (audit.c.entity, audit.c.record_id, audit.c.at, audit.c.user_id, audit.c.action)
    stmt = (select(*group, key.label("key"), users.c.display_name, users.c.name)
            .select_from(audit.outerjoin(users, users.c.id == audit.c.user_id))
            .where(or_(*whose), audit.c.action != "purge", not_(added_file),
                   audit.c.id > func.coalesce(purged, 0))
            .group_by(*group, users.c.display_name, users.c.name)
            .order_by(audit.c.at.desc(), key.desc()).limit(limit + 1))
    if cursor is not None:
        stmt = stmt.having(*_before(audit.c.at, key, CHANGE, cursor))
    events = list(conn.execute(stmt).mappings())
    fields = _changed_fields(records, actor, conn, events)
    out: list[TimelineItem] = []
    for ev in events:
        names = fields.get(int(ev["key"]), ())
        if ev["action"] == "update" and not names:
            continue  # only fields hidden from the viewer changed
        subject = ev["entity"] == scope.entity and ev["record_id"] == scope.record_id
        out.append(TimelineItem(
            CHANGE, ev["at"], CHANGE, int(ev["key"]), ev["entity"], int(ev["record_id"]),
            user=ev["display_name"] or ev["name"], action=ev["action"], fields=names,
            about=None if subject else f"{ev['entity']}:{ev['record_id']}"))
    return out


def _changed_fields(records: Records, actor: Actor, conn: Connection,
                    events: Sequence[Any]) -> dict[int, tuple[str, ...]]:
    """Per event (its key), the fields it wrote that the viewer may see, in the entity's
    order; a create's are the fields it was created with."""
    if not events:
        return {}
    audit = records.audit
    conds = [and_(audit.c.entity == ev["entity"], audit.c.record_id == ev["record_id"],
                  audit.c.at == ev["at"], audit.c.action == ev["action"]) for ev in events]
    rows = conn.execute(select(audit.c.entity, audit.c.record_id, audit.c.at,
                               audit.c.action, audit.c.field, audit.c.new_value)
                        .where(or_(*conds))).mappings().all()
    by_event = {(ev["entity"], ev["record_id"], ev["at"], ev["action"]): int(ev["key"])
                for ev in events}
    found: dict[int, set[str]] = {}
    for r in rows:
        k = by_event.get((r["entity"], r["record_id"], r["at"], r["action"]))
        if k is None:
            continue
        names = found.setdefault(k, set())
        if r["field"] is not None:
            names.add(r["field"])
        elif r["action"] == "create" and r["new_value"]:
            first = json.loads(r["new_value"])
            if isinstance(first, dict):
                names.update(first)
    out: dict[int, tuple[str, ...]] = {}
    for ev in events:
        k = int(ev["key"])
        visible = _audited(records, actor, ev["entity"])
        order = {n: i for i, n in enumerate(
            records.compiled(ev["entity"]).entity.field_names)}
        out[k] = tuple(sorted((n for n in found.get(k, ()) if n in visible),
                              key=lambda n: (order.get(n, len(order)), n)))
    return out


def _file_items(records: Records, actor: Actor, conn: Connection, scope: _Scope,
                cursor: tuple[datetime, str, int] | None, limit: int) -> list[TimelineItem]:
    """Files attached to the subject and its children, when the engine keeps attachments;
    a file field's attachment only when the viewer may see that field."""
    if ATTACHMENTS not in records.schema.metadata.tables:
        return []
    a = records.schema.table(ATTACHMENTS)
    users = records.users

    def visible(entity: str) -> ColumnElement[bool]:
        shown = sorted(_audited(records, actor, entity))
        return or_(a.c.field.is_(None), a.c.field.in_(shown))

    whose = [and_(a.c.entity == scope.entity, a.c.record_id == scope.record_id,
                  visible(scope.entity))]
    whose += [and_(a.c.entity == child, a.c.record_id.in_(ids), visible(child))
              for child, ids in scope.children]
    stmt = (select(a.c.id, a.c.entity, a.c.record_id, a.c.file_name, a.c.created_at,
                   users.c.display_name, users.c.name)
            .select_from(a.outerjoin(users, users.c.id == a.c.created_by))
            .where(or_(*whose), *_before(a.c.created_at, a.c.id, FILE, cursor))
            .order_by(a.c.created_at.desc(), a.c.id.desc()).limit(limit + 1))
    out = []
    for row in conn.execute(stmt).mappings():
        subject = row["entity"] == scope.entity and row["record_id"] == scope.record_id
        out.append(TimelineItem(
            FILE, row["created_at"], FILE, int(row["id"]), row["entity"],
            int(row["record_id"]), user=row["display_name"] or row["name"],
            title=row["file_name"], file_id=int(row["id"]),
            about=None if subject else f"{row['entity']}:{row['record_id']}"))
    return out


_SOURCES = (_record_items, _change_items, _file_items)


def timeline(records: Records, actor: Actor, entity: str, record_id: int, *,
             before: str | None = None, limit: int = PAGE) -> TimelinePage:
    """One page of the timeline of record `record_id` of `entity` as `actor` may see it.
    NotFound when they may not read the record (or it is not there)."""
    limit = max(1, min(limit, MAX_PAGE))
    cursor = decode_cursor(before) if before else None
    with open_record(records, actor, entity, record_id) as opened:
        conn = opened.conn
        scope = _scope(records, actor, entity, record_id)
        found: list[TimelineItem] = []
        for source in _SOURCES:
            found += source(records, actor, conn, scope, cursor, limit)
    found.sort(key=lambda i: (i.at, i.source, i.key), reverse=True)
    page = found[:limit]
    more = len(found) > limit
    return TimelinePage(page, page[-1].cursor if more and page else None)


def items_json(items: Iterable[TimelineItem]) -> list[dict[str, Any]]:
    return [i.as_json() for i in items]


"""Field values as pages show them: formatted for the viewer's language, links titled.

A reference shows the title of the record it points to, as a link, only when the viewer
may read that record (otherwise just `#id`, so a page never leaks a title); a user shows
their display name. Titles and names are fetched in batches, one query per target. Choice
options read as their YAML `option_labels` in the viewer's language (Field.option_label).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, or_, select

from engine.fieldtypes import Regarding
from engine.messages import msg
from engine.metadata import Model
from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import NotFound
from engine.runtime.files.attachments import attachment_names
from engine.runtime.records import Records, secure
from engine.runtime.records.computed import field_value
from engine.runtime.records.query import parse_list_params
from engine.types import FieldType
from engine.web.i18n import N_, formatters, translations
from engine.web.pages.shown import FORMATTED, NUMBERS, SHOWN

BATCH = 100  # the most ids one `id__in` list filter takes
YES, NO = N_("Yes"), N_("No")


def entity_of(model: Model, name: str) -> Entity:
    """The entity a page address names, or 404."""
    if not model.has_entity(name):
        raise NotFound(msg("no entity %(name)s", name=repr(name)))
    return model.entity(name)


def link_target(f: Field) -> str | None:
    """What a link field points to: an entity name, "user" for a user field, else None."""
    return "user" if f.type is FieldType.USER else f.target


@dataclass(frozen=True)
class Shown:
    """A value ready for a page: its text, a link when it has one, a CSS class hint."""

    text: str
    href: str | None = None
    css: str = ""


class Display:
    """Formats values of one page for one viewer; call `load` with the rows first, so
    titles and user names come in a few queries rather than one per value."""

    def __init__(self, model: Model, records: Records, actor: Actor, language: str) -> None:
        self.model = model
        self.records = records
        self.actor = actor
        self.language = language
        self.fmt = formatters(language, model.settings.currency, model.settings.time_zone)
        self.gettext = translations()[language].gettext
        self.titles: dict[str, dict[int, str]] = {}
        self.users: dict[int, str] = {}
        self.files: dict[int, str] = {}
        """Attachment id → file name, for file fields (`load_rows` reads them)."""

    def load(self, links: Iterable[tuple[str, Any]], conn: Connection | None = None) -> None:
        """Fetch the titles (or user names) of (target, id) pairs not fetched yet, through
        `conn` when given (else a connection of their own)."""
        wanted: dict[str, set[int]] = {}
        for target, value in links:
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                known = self.users if target == "user" else self.titles.get(target, {})
                if value not in known:
                    wanted.setdefault(target, set()).add(value)
        for target, ids in wanted.items():
            if target == "user":
                self.users.update(user_names(self.records, ids, conn))
            else:
                self.titles.setdefault(target, {}).update(
                    titles(self.model, self.records, self.actor, target, ids, conn))

    def load_rows(self, entity: Entity, rows: Iterable[Mapping[str, Any]],
                  names: Iterable[str] | None = None, conn: Connection | None = None) -> None:
        """`load` every link value of `rows` (only fields `names`, when given)."""
        fields = [entity.field(n) for n in names if entity.has_field(n)] if names is not None \
            else list(entity.fields)
        linked = [(f.name, t) for f in fields if (t := link_target(f)) is not None]
        pairs = [(t, row.get(n)) for row in rows for n, t in linked]
        regarding = [f.name for f in fields if f.type is FieldType.REGARDING]
        pairs += [(v.entity, v.id) for row in rows for n in regarding
                  if isinstance(v := row.get(n), Regarding) and self.model.has_entity(v.entity)]
        self.load(pairs, conn)
        files = [f.name for f in fields if f.type is FieldType.FILE]
        if files:  # the rows were read by the viewer: their files' names are theirs to see
            wanted = {row.get(n) for row in rows for n in files} - self.files.keys()
            self.files.update(attachment_names(self.records, wanted, conn))

    def title(self, target: str, record_id: int) -> Shown:
        if target == "user":
            return Shown(self.users.get(record_id, f"#{record_id}"))
        found = self.titles.get(target, {}).get(record_id)
        if found is None:
            return Shown(f"#{record_id}")
        return Shown(found, f"/e/{target}/{record_id}")

    def regarding(self, value: Regarding) -> Shown:
        """A regarding value: the target's title as a link when the viewer may read it
        (`load` it first), else its entity and `#id` (no title leaks)."""
        if self.model.has_entity(value.entity) and value.id in self.titles.get(value.entity, {}):
            return self.title(value.entity, value.id)
        kind = self.model.entity(value.entity).label.get(self.language) \
            if self.model.has_entity(value.entity) else value.entity
        return Shown(f"{kind} #{value.id}")

    def show(self, f: Field, value: Any) -> Shown:
        """`value` of field `f` as the viewer reads it ('' for blank)."""
        if value is None or value == "" or value == []:
            return Shown("")
        way = SHOWN[f.type]  # engine/web/pages/shown.py
        if way in FORMATTED:
            return Shown(self.fmt[way](value), css="num" if way in NUMBERS else "")
        if way == "bool":
            return Shown(self.gettext(YES if value else NO))
        if way == "choice":
            return Shown(f.option_label(str(value), self.language))
        if way == "choices":
            items = value if isinstance(value, list) else [value]
            return Shown(", ".join(f.option_label(str(v), self.language) for v in items))
        if isinstance(value, Regarding):
            return self.regarding(value)
        target = link_target(f)
        if way == "link" and target is not None and isinstance(value, int):
            return self.title(target, value)
        if way == "file" and isinstance(value, int):
            return Shown(self.files.get(value, f"#{value}"), f"/files/{value}")
        if way == "url":
            return Shown(str(value), str(value))
        if way == "email":
            return Shown(str(value), f"mailto:{value}")
        return Shown(str(value), css="multiline" if way == "multiline" else "")


def titles(model: Model, records: Records, actor: Actor, target: str,
           ids: Iterable[int], conn: Connection | None = None) -> dict[int, str]:
    """id → title of the `target` records among `ids` that `actor` may read.

    One query per BATCH ids of the id and the title alone, under the same conditions as
    any list of `target` (the policy's read predicate, not in the recycle bin): a record
    the actor may not read is left out, so its title never reaches a page. A title field
    hidden from the actor reads `#id`, as the record's own page shows it. `conn`: a
    connection to read through (one is opened when None).
    """
    if not model.has_entity(target):
        return {}
    entity = model.entity(target)
    policy = records.policy
    if policy.scope(actor, entity.name, "read") is Scope.NONE:
        return {}  # the viewer may not read that entity at all
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    title_field = entity.field(entity.title) if entity.has_field(entity.title) else None
    seen = secure.rows(records, actor, target)
    hidden = title_field is not None and title_field.name in seen.hidden
    if title_field is not None and not hidden and title_field.computed and (
            title_field.compiled is None or not title_field.compiled.sql_capable):
        return _titles_by_list(records, actor, entity, wanted)  # only Python computes it
    table = seen.table
    columns: list[ColumnElement[Any]] = [table.c.id]
    if title_field is None:
        columns.append(table.c[entity.title].label("title"))  # "id": no text field to show
    elif not hidden:
        columns.append(seen.column(title_field.name).label("title"))
    out: dict[int, str] = {}
    with records.reading(conn) as c:
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start:start + BATCH]
            for row in c.execute(seen.select(*columns).where(table.c.id.in_(chunk))):
                value = row.title if len(columns) > 1 else None
                if title_field is not None and title_field.computed:
                    value = field_value(title_field, value)
                out[int(row.id)] = str(value) if value not in (None, "") else f"#{row.id}"
    return out


def _titles_by_list(records: Records, actor: Actor, entity: Entity,
                    wanted: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start:start + BATCH]
        params = {"id__in": ",".join(map(str, chunk)), "page_size": str(len(chunk))}
        page = records.list_records(actor, entity.name, parse_list_params(entity, params))
        for row in page.items:
            title = row.get(entity.title)
            out[int(row["id"])] = str(title) if title not in (None, "") else f"#{row['id']}"
    return out


def user_names(records: Records, ids: Iterable[int],
               conn: Connection | None = None) -> dict[int, str]:
    """id → display name (or user name) of users; who a user is is not a secret."""
    u = records.users
    wanted = sorted(set(ids))
    out: dict[int, str] = {}
    if not wanted:
        return out
    with records.reading(conn) as c:
        for start in range(0, len(wanted), BATCH):
            rows = c.execute(select(u.c.id, u.c.name, u.c.display_name)
                                .where(u.c.id.in_(wanted[start:start + BATCH])))
            out.update({r.id: r.display_name or r.name for r in rows})
    return out


def find_users(records: Records, text: str, limit: int,
               allowed: ColumnElement[bool] | None = None) -> list[tuple[int, str]]:
    """Active users whose name or display name contains `text` (any case), by name;
    `allowed`, a condition on the user table, narrows them (an assign scope)."""
    pattern = like_pattern(text) if text else None
    if text and pattern is None:
        return []
    u = records.users
    stmt = select(u.c.id, u.c.name, u.c.display_name).where(u.c.active.is_(True))
    if allowed is not None:
        stmt = stmt.where(allowed)
    if pattern is not None:
        stmt = stmt.where(or_(func.lower(u.c.name).like(pattern, escape="\\"),
                              func.lower(u.c.display_name).like(pattern, escape="\\")))
    with records.reading() as conn:
        rows = conn.execute(stmt.order_by(u.c.name).limit(limit)).all()
    return [(r.id, r.display_name or r.name) for r in rows]


def like_pattern(text: str) -> str | None:
    """`%text%` for a lower-case LIKE with `\\` as escape; None for text no name holds."""
    if "\x00" in text:  # PostgreSQL refuses NUL in a query
        return None
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%") \
        .replace("_", "\\_") + "%"


def active_user(records: Records, user_id: int) -> str | None:
    """The display name of an active user, or None."""
    u = records.users
    with records.reading() as conn:
        row = conn.execute(select(u.c.name, u.c.display_name).where(
            u.c.id == user_id, u.c.active.is_(True))).first()
    return None if row is None else str(row.display_name or row.name)

"""Records as table rows: the columns a viewer may see, and each value ready to show.

Columns come from the entity's form (`list:`), less the fields hidden from the viewer.
Link values (references, departments, users) are shown by name, read under the access
policy's read predicate, so a record the viewer may not read shows as its number only:
with the rows themselves when the list asked for them (`links_of`, Page.names, see
engine/runtime/records/names.py), else in one query per target, not one per row
(engine/web/pages/fields.py).
Values are formatted here, once, for the viewer's language (Cell.text), so the template
only places them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection

from engine.fieldtypes import Regarding
from engine.metadata.labels import Label
from engine.metadata.model import Entity, Field
from engine.runtime.access import Actor
from engine.runtime.records import Records
from engine.runtime.records.names import USERS
from engine.runtime.records.query import Page
from engine.types import NUMERIC_TYPES, FieldType
from engine.web.i18n import N_, formatters
from engine.web.pages.fields import titles, user_names
from engine.web.pages.shown import FORMATTED, NUMBERS, SHOWN

ENGINE_LIST_COLUMNS: dict[str, tuple[str, FieldType, str]] = {
    "owner": ("owner_id", FieldType.USER, N_("Owner")),
    "department": ("department_id", FieldType.DEPARTMENT, N_("Department")),
    "created_at": ("created_at", FieldType.DATETIME, N_("Created on")),
    "updated_at": ("updated_at", FieldType.DATETIME, N_("Last changed")),
}
"""List column name → (record key, type, title msgid) of the engine columns a list shows."""
# The cell kinds of ui_templates/list_cell.html a type's way of showing it (pages/shown.py)
# keeps; the other ways are text in a list.
_CELLS = FORMATTED | {"bool"}


@dataclass(frozen=True)
class Column:
    name: str
    """The list column's name: a field, or owner/department/created_at/updated_at."""
    key: str
    """Where a record holds the value (owner → owner_id)."""
    type: FieldType
    label: Label | None
    msgid: str
    """The title as a catalog msgid, for engine columns (label is None)."""
    sortable: bool
    field: Field | None

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    @property
    def target(self) -> str | None:
        if self.type is FieldType.DEPARTMENT:
            return "department"
        return self.field.target if self.field is not None else None


class Cell(NamedTuple):  # a tuple: a page makes hundreds, and a tuple is made fastest
    kind: str
    """How the template shows `value`: text, number, money, percent, date, datetime, bool."""
    value: Any
    href: str | None = None
    text: str = ""
    """`value` formatted for the viewer's language ('' when blank or a yes/no)."""
    css: str = ""
    """The cell's class: num (a number column), bool (a yes/no), else ''."""


class Row(NamedTuple):
    id: int
    version: int
    title: str
    href: str
    cells: tuple[Cell, ...]
    record: Mapping[str, Any]


def visible_columns(records: Records, actor: Actor, entity: Entity) -> list[Column]:
    """The entity's list columns without the fields hidden from the actor."""
    hidden = records.policy.mask(actor, entity).hidden
    out: list[Column] = []
    for name in records.model.form(entity.name).list_columns:
        if name in ENGINE_LIST_COLUMNS:
            key, ftype, msgid = ENGINE_LIST_COLUMNS[name]
            if key == "department_id" and not records.model.has_entity("department"):
                continue
            out.append(Column(name, key, ftype, None, msgid, True, None))
        elif entity.has_field(name) and name not in hidden:
            f = entity.field(name)
            sql_ok = not f.computed or (f.compiled is not None and f.compiled.sql_capable)
            out.append(Column(name, name, f.type, f.label, "",
                              sql_ok and f.type not in (FieldType.MULTICHOICE,
                                                        FieldType.REGARDING), f))
    return out


def title_of(entity: Entity, record: Mapping[str, Any]) -> str:
    value = record.get(entity.title)
    return str(value) if value not in (None, "") else f"#{record['id']}"


def build_rows(records: Records, actor: Actor, entity: Entity, columns: Sequence[Column],
               items: Sequence[Mapping[str, Any]], language: str,
               conn: Connection | None = None, page: Page | None = None) -> list[Row]:
    """`items` as rows of `columns`; link names are read through `conn` when given, but
    for the links whose names `page` (the list `items` came from) already holds."""
    named = page.named if page is not None else frozenset()
    names = link_names(records, actor, [c for c in columns if c.key not in named], items,
                       conn)
    if page is not None:
        names.update(page.names)
    settings = records.model.settings
    fmt = formatters(language, settings.currency, settings.time_zone)
    makers = [(c.key, cell_maker(c, names, language, fmt)) for c in columns]
    prefix = f"/e/{entity.name}/"
    out: list[Row] = []
    for record in items:
        rid = int(record["id"])
        cells = tuple(make(record.get(key)) for key, make in makers)
        out.append(Row(rid, int(record.get("version") or 0), title_of(entity, record),
                       f"{prefix}{rid}", cells, record))
    return out


def cell_maker(column: Column, names: Mapping[tuple[str, int], str], language: str,
               fmt: Mapping[str, Callable[..., str]]) -> Callable[[Any], Cell]:
    """value → the Cell that shows it in `column`: the column's type is looked at once
    here, not once per value (a list page shows hundreds of cells)."""
    blank = Cell("blank", None, css="num" if column.numeric else "")
    show = _shower(column, names, language, fmt)

    def make(value: Any) -> Cell:
        if value is None or value == "" or value == []:
            return blank
        return show(value)

    return make


def _shower(column: Column, names: Mapping[tuple[str, int], str], language: str,
            fmt: Mapping[str, Callable[..., str]]) -> Callable[[Any], Cell]:
    t, f = column.type, column.field
    if t is FieldType.CHOICE and f is not None:
        choice = f
        return lambda value: _text(choice.option_label(str(value), language))
    if t is FieldType.MULTICHOICE and f is not None:
        many = f
        return lambda value: _text(", ".join(many.option_label(str(v), language)
                                             for v in value))
    if t is FieldType.USER:
        return lambda value: _text(names.get((USERS, int(value)), f"#{value}"))
    if t is FieldType.REGARDING:
        def regarding(value: Any) -> Cell:
            r = Regarding(value)
            name = names.get((r.entity, r.id))
            if name is None:  # not readable by the viewer: no title, no link
                return _text(f"{r.entity} #{r.id}")
            return Cell("text", name, f"/e/{r.entity}/{r.id}", name)
        return regarding
    target = column.target
    if target is not None:
        def link(value: Any) -> Cell:
            name = names.get((target, int(value)))
            if name is None:  # not readable by the viewer: its number only, no link
                return _text(f"#{value}")
            return Cell("text", name, f"/e/{target}/{int(value)}", name)
        return link
    kind = SHOWN[t] if SHOWN[t] in _CELLS else "text"
    if kind == "bool":
        return lambda value: Cell(kind, value, css="bool")
    css = "num" if kind in NUMBERS or column.numeric else ""
    write = fmt.get(kind, str)
    return lambda value: Cell(kind, value, text=write(value), css=css)


def _text(value: str) -> Cell:
    return Cell("text", value, text=value)


def links_of(columns: Iterable[Column]) -> dict[str, str]:
    """Link key → target (an entity, or crm_user) of the link columns among `columns`:
    what `Records.list_records(links=…)` names in the list's own query."""
    out: dict[str, str] = {}
    for c in columns:
        kind = USERS if c.type is FieldType.USER else c.target
        if kind is not None:
            out[c.key] = kind
    return out


def link_names(records: Records, actor: Actor, columns: Iterable[Column],
               items: Sequence[Mapping[str, Any]],
               conn: Connection | None = None) -> dict[tuple[str, int], str]:
    """(target, id) → the name to show, for every link value of `items`: one query per
    target entity (and one for users), whatever the number of rows, on one connection."""
    wanted: dict[str, set[int]] = {}
    for key, kind in links_of(columns).items():
        for record in items:
            value = record.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                wanted.setdefault(kind, set()).add(value)
    for c in columns:  # a regarding value names its entity
        if c.type is FieldType.REGARDING:
            for record in items:
                if isinstance(v := record.get(c.key), Regarding) \
                        and records.model.has_entity(v.entity):
                    wanted.setdefault(v.entity, set()).add(v.id)
    names: dict[tuple[str, int], str] = {}
    if not wanted:
        return names
    with records.reading(conn) as db:
        for kind, ids in wanted.items():
            found = user_names(records, ids, db) if kind == USERS \
                else titles(records.model, records, actor, kind, ids, db)
            names.update(((kind, int(i)), str(n)) for i, n in found.items())
    return names

"""Records as table rows: the columns a viewer may see, and each value ready to show.

Columns come from the entity's form (`list:`), less the fields hidden from the viewer.
Link values (references, departments, users) are shown by name: the names of one page are
read in one query per target (not one per row), under the access policy's read predicate,
so a record the viewer may not read shows as its number only (engine/web/pages/fields.py).
Values are formatted here, once, for the viewer's language (Cell.text), so the template
only places them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from engine.metadata.labels import Label
from engine.metadata.model import Entity, Field
from engine.runtime.access import Actor
from engine.runtime.records import Records
from engine.types import FieldType
from engine.web.i18n import N_, formatters
from engine.web.pages.fields import connected, titles, user_names

ENGINE_LIST_COLUMNS: dict[str, tuple[str, FieldType, str]] = {
    "owner": ("owner_id", FieldType.USER, N_("Owner")),
    "department": ("department_id", FieldType.DEPARTMENT, N_("Department")),
    "created_at": ("created_at", FieldType.DATETIME, N_("Created on")),
    "updated_at": ("updated_at", FieldType.DATETIME, N_("Last changed")),
}
"""List column name → (record key, type, title msgid) of the engine columns a list shows."""
_KINDS: dict[FieldType, str] = {
    FieldType.INTEGER: "number", FieldType.DECIMAL: "number", FieldType.MONEY: "money",
    FieldType.PERCENT: "percent", FieldType.DATE: "date", FieldType.DATETIME: "datetime",
    FieldType.BOOLEAN: "bool",
}
_NUMBER_KINDS = frozenset({"number", "money", "percent"})
_NUMERIC = frozenset({FieldType.INTEGER, FieldType.DECIMAL, FieldType.MONEY, FieldType.PERCENT})
USERS = "crm_user"


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
        return self.type in _NUMERIC

    @property
    def target(self) -> str | None:
        if self.type is FieldType.DEPARTMENT:
            return "department"
        return self.field.target if self.field is not None else None


@dataclass(frozen=True)
class Cell:
    kind: str
    """How the template shows `value`: text, number, money, percent, date, datetime, bool."""
    value: Any
    href: str | None = None
    text: str = ""
    """`value` formatted for the viewer's language ('' when blank or a yes/no)."""
    css: str = ""
    """The cell's class: num (a number column), bool (a yes/no), else ''."""


@dataclass(frozen=True)
class Row:
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
                              sql_ok and f.type is not FieldType.MULTICHOICE, f))
    return out


def title_of(entity: Entity, record: Mapping[str, Any]) -> str:
    value = record.get(entity.title)
    return str(value) if value not in (None, "") else f"#{record['id']}"


def build_rows(records: Records, actor: Actor, entity: Entity, columns: Sequence[Column],
               items: Sequence[Mapping[str, Any]], language: str,
               conn: Connection | None = None) -> list[Row]:
    """`items` as rows of `columns`; link names are read through `conn` when given."""
    names = link_names(records, actor, columns, items, conn)
    fmt = formatters(language, records.model.settings.currency)
    out: list[Row] = []
    for record in items:
        rid = int(record["id"])
        href = f"/e/{entity.name}/{rid}"
        cells = tuple(_cell(c, record.get(c.key), names, language, fmt) for c in columns)
        out.append(Row(rid, int(record.get("version") or 0), title_of(entity, record), href,
                       cells, record))
    return out


def _cell(column: Column, value: Any, names: Mapping[tuple[str, int], str],
          language: str, fmt: Mapping[str, Callable[..., str]]) -> Cell:
    num = "num" if column.numeric else ""
    if value is None or value == "" or value == []:
        return Cell("blank", None, css=num)
    t = column.type
    f = column.field
    if t is FieldType.CHOICE and f is not None:
        return _text(f.option_label(str(value), language))
    if t is FieldType.MULTICHOICE and f is not None:
        return _text(", ".join(f.option_label(str(v), language) for v in value))
    if t is FieldType.USER:
        return _text(names.get((USERS, int(value)), f"#{value}"))
    target = column.target
    if target is not None:
        name = names.get((target, int(value)))
        if name is None:  # not readable by the viewer: its number only, no link
            return _text(f"#{value}")
        return Cell("text", name, f"/e/{target}/{int(value)}", name)
    kind = _KINDS.get(t, "text")
    if kind == "bool":
        return Cell(kind, value, css="bool")
    return Cell(kind, value, text=fmt[kind](value) if kind in fmt else str(value),
                css="num" if kind in _NUMBER_KINDS else num)


def _text(value: str) -> Cell:
    return Cell("text", value, text=value)


def link_names(records: Records, actor: Actor, columns: Iterable[Column],
               items: Sequence[Mapping[str, Any]],
               conn: Connection | None = None) -> dict[tuple[str, int], str]:
    """(target, id) → the name to show, for every link value of `items`: one query per
    target entity (and one for users), whatever the number of rows, on one connection."""
    wanted: dict[str, set[int]] = {}
    for c in columns:
        kind = USERS if c.type is FieldType.USER else c.target
        if kind is None:
            continue
        for record in items:
            value = record.get(c.key)
            if isinstance(value, int) and not isinstance(value, bool):
                wanted.setdefault(kind, set()).add(value)
    names: dict[tuple[str, int], str] = {}
    if not wanted:
        return names
    with connected(records, conn) as db:
        for kind, ids in wanted.items():
            found = user_names(records, ids, db) if kind == USERS \
                else titles(records.model, records, actor, kind, ids, db)
            names.update(((kind, int(i)), str(n)) for i, n in found.items())
    return names

"""Audit rows: who changed which field of which record, when, from what to what."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, func, select

from engine.runtime.values import to_json

# the columns of an audit row, in the order audit_rows' dicts hold them
AUDIT_COLUMNS = ("at", "user_id", "entity", "record_id", "action", "field", "old_value",
                 "new_value")


# json.dumps(…, ensure_ascii=False) makes an encoder per call; a million creates share one
_encode = json.JSONEncoder(ensure_ascii=False).encode


def dump_value(value: Any) -> str | None:
    return None if value is None else _encode(to_json(value))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any],
                  fields: Iterable[str]) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for each of `fields` whose value differs."""
    return [(f, old.get(f), new.get(f)) for f in fields if old.get(f) != new.get(f)]


def audit_rows(*, at: datetime, user_id: int | None, entity: str, record_id: int,
               action: str, changes: Iterable[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    """The audit rows of one record's change, in the one shape every write path shares:
    a create is one row without a field whose new value holds the record's first values
    (a record's first values are not changes of one field at a time, and an import of a
    million records writes a million rows, not ten million); any other change is one row
    per changed field (field, old, new), or one row without a field when no field changed
    (delete, restore)."""
    base = {"at": at, "user_id": user_id, "entity": entity, "record_id": record_id,
            "action": action}
    if action == "create":
        first = {f: to_json(n) for f, _, n in changes if n is not None}
        return [{**base, "field": None, "old_value": None, "new_value": _encode(first)}]
    rows = [{**base, "field": f, "old_value": dump_value(o), "new_value": dump_value(n)}
            for f, o, n in changes]
    return rows or [{**base, "field": None, "old_value": None, "new_value": None}]


def read_history(conn: Connection, audit: Table, users: Table, entity: str, record_id: int,
                 visible: frozenset[str]) -> list[dict[str, Any]]:
    """The audit rows of one record, oldest first, showing only `visible` fields.

    A create's row is read as one entry per field it set. Fields hidden from the reader, and
    fields archived since (removed from config), never appear; rows of actions without a
    field (delete, restore) always do. Rows up to the last
    `purge` of this id belong to a record deleted for good (SQLite may reuse its id), not to
    the one that has the id now.
    """
    out = []
    rows = conn.execute(_history_of(audit, users), {"entity": entity, "record_id": record_id})
    for r in rows.mappings():
        if r["field"] is not None and r["field"] not in visible:
            continue
        new = _load(r["new_value"])
        entry = {"id": r["id"], "at": to_json(r["at"]), "user_id": r["user_id"],
                 "user": r["user_name"], "action": r["action"]}
        if r["field"] is None and isinstance(new, dict):
            out += [{**entry, "field": k, "old": None, "new": v}
                    for k, v in new.items() if k in visible]
            continue
        out.append({**entry, "field": r["field"], "old": _load(r["old_value"]), "new": new})
    return out


@cache
def _history_of(audit: Table, users: Table) -> Select[Any]:
    """The audit rows of one record (:entity, :record_id) after its last purge, with the
    name of who made each; built once (its SQL is then cached by SQLAlchemy)."""
    this = (audit.c.entity == bindparam("entity"), audit.c.record_id == bindparam("record_id"))
    purged = select(func.coalesce(func.max(audit.c.id), 0)).where(
        *this, audit.c.action == "purge").scalar_subquery()
    return (select(audit, users.c.name.label("user_name"))
            .select_from(audit.outerjoin(users, users.c.id == audit.c.user_id))
            .where(*this, audit.c.id > purged)
            .order_by(audit.c.id))

"""Departments: seed the tree of config/org.yaml, and read the tree back (paths, parents)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Table, delete, func, select

from engine.messages import by_field, msg
from engine.metadata.model import OrgUnit
from engine.runtime.access import SYSTEM
from engine.runtime.errors import Invalid, RecordError

if TYPE_CHECKING:
    from engine.runtime.records import Records

DEPARTMENT = "department"


def seed_org(records: Records) -> int:
    """Create the departments of config/org.yaml when there are none yet; returns how many
    were created (0 when the database already has departments or config has no org.yaml)."""
    model = records.model
    if not model.org or not model.has_entity(DEPARTMENT):
        return 0
    table = records.schema.table(DEPARTMENT)
    with records.engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(table)).scalar_one():
            return 0
    entity = model.entity(DEPARTMENT)
    created: list[int] = []

    def create(units: tuple[OrgUnit, ...], parent: int | None) -> None:
        for unit in units:
            data: dict[str, object] = {"name": unit.name}
            for key, value in (("code", unit.code), ("kind", unit.kind), ("parent", parent)):
                if value is not None and entity.has_field(key):
                    data[key] = value
            try:
                row = records.create(SYSTEM, DEPARTMENT, data)
            except RecordError as exc:
                raise Invalid(msg("%(where)s: department '%(name)s' cannot be created: %(why)s",
                                  where=str(unit.loc), name=unit.name,
                                  why=by_field(exc.fields) if exc.fields else exc.message),
                              exc.fields) from None
            created.append(row["id"])
            create(unit.children, row["id"])

    try:
        create(model.org, None)
    except RecordError:
        _undo(records, table, created)  # all or nothing: a later migrate seeds the whole tree
        raise
    return len(created)


def _undo(records: Records, table: Table, ids: list[int]) -> None:
    """Remove departments a failed seed created (children first), with their audit rows."""
    audit = records.audit
    with records.writer.begin() as conn:
        for rid in reversed(ids):
            conn.execute(delete(table).where(table.c.id == rid))
        conn.execute(delete(audit).where(audit.c.entity == DEPARTMENT,
                                         audit.c.record_id.in_(ids)))


def department_path(conn: Connection, records: Records, department_id: int | None,
                    ) -> list[tuple[int, str]]:
    """(id, name) from the top of the tree down to `department_id`; [] for none.

    Stops at a repeated department, so a cycle of parents cannot loop forever.
    """
    if department_id is None or not records.model.has_entity(DEPARTMENT):
        return []
    t = records.schema.table(DEPARTMENT)
    path: list[tuple[int, str]] = []
    seen: set[int] = set()
    current: int | None = department_id
    while current is not None and current not in seen:
        seen.add(current)
        row = conn.execute(select(t.c.name, t.c.parent).where(t.c.id == current)).first()
        if row is None:
            break
        path.append((current, row.name))
        current = row.parent
    return list(reversed(path))

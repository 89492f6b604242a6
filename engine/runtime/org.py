"""Departments: seed the tree of config/org.yaml, and read the tree back (paths, parents)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select

from engine.metadata.model import OrgUnit
from engine.runtime.access import SYSTEM

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
    created = 0

    def create(units: tuple[OrgUnit, ...], parent: int | None) -> None:
        nonlocal created
        for unit in units:
            data: dict[str, object] = {"name": unit.name}
            for key, value in (("code", unit.code), ("kind", unit.kind), ("parent", parent)):
                if value is not None and entity.has_field(key):
                    data[key] = value
            row = records.create(SYSTEM, DEPARTMENT, data)
            created += 1
            create(unit.children, row["id"])

    create(model.org, None)
    return created


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

"""Departments: seed the tree of config/org.yaml, read the tree back (paths, parents), and
refuse to delete a department that still has users, departments or records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select

from engine.messages import by_field, msg
from engine.metadata.model import OrgUnit
from engine.runtime.access import SYSTEM
from engine.runtime.errors import Conflict, Invalid, RecordError
from engine.runtime.schema.tables import USER_TABLE

if TYPE_CHECKING:
    from engine.runtime.records import Records
    from engine.runtime.records.unit import UnitOfWork

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

    def create(work: UnitOfWork, units: tuple[OrgUnit, ...], parent: int | None) -> None:
        for unit in units:
            data: dict[str, object] = {"name": unit.name}
            for key, value in (("code", unit.code), ("kind", unit.kind), ("parent", parent)):
                if value is not None and entity.has_field(key):
                    data[key] = value
            try:
                row = records.create(SYSTEM, DEPARTMENT, data, unit=work)
            except RecordError as exc:
                raise Invalid(msg("%(where)s: department '%(name)s' cannot be created: %(why)s",
                                  where=str(unit.loc), name=unit.name,
                                  why=by_field(exc.fields) if exc.fields else exc.message),
                              exc.fields) from None
            created.append(row["id"])
            create(work, unit.children, row["id"])

    # all or nothing, in one unit of work: a later migrate seeds the whole tree
    with records.unit(SYSTEM) as work:
        create(work, model.org, None)
    return len(created)


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


def refuse_department_in_use(conn: Connection, records: Records, department_id: int) -> None:
    """409 when the department still has users, live departments under it, or live records
    of any kind in it (its own record aside): deleting it would leave them in a department
    that is gone. Called inside the deleting transaction, after the department is locked."""
    if not records.model.has_entity(DEPARTMENT):
        return
    users = records.schema.table(USER_TABLE)
    user_count = conn.execute(select(func.count()).select_from(users).where(
        users.c.department_id == department_id, users.c.active.is_(True))).scalar_one()
    d = records.schema.table(DEPARTMENT)
    children = 0
    if records.model.entity(DEPARTMENT).has_field("parent"):
        children = conn.execute(select(func.count()).select_from(d).where(
            d.c.parent == department_id, d.c.deleted_at.is_(None))).scalar_one()
    in_it: dict[str, int] = {}
    for entity in records.model.entities:
        t = records.schema.table(entity.name)
        count = conn.execute(select(func.count()).select_from(t).where(
            t.c.department_id == department_id, t.c.deleted_at.is_(None),
            t.c.id != department_id if entity.name == DEPARTMENT else t.c.id.is_not(None))
        ).scalar_one()
        if count:
            in_it[entity.name] = int(count)
    if not (user_count or children or in_it):
        return
    fields: dict[str, str] = {}
    if user_count:
        fields["users"] = msg("active users are in this department")
    if children:
        fields["departments"] = msg("departments are under this one")
    if in_it:
        fields["records"] = msg("records are in this department")
    raise Conflict(msg("the department still has %(users)s active user(s), %(departments)s "
                       "department(s) under it and %(records)s record(s)%(entities)s; move "
                       "them to another department first",
                       users=user_count, departments=children, records=sum(in_it.values()),
                       entities="".join(f"; {e}: {n}" for e, n in in_it.items())), fields)

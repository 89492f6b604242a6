"""Assignment: hand a record to a user or a department, with the children that follow it,
and transfer everything a departing user owns. Owner and department change only here.

Both are audited like field changes (`owner_id`, `department_id`) under the action "assign".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, or_, select, update

from engine.messages import msg
from engine.metadata.model import Entity
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.access.assignable import out_of_scope, readable_with
from engine.runtime.errors import BadRequest, Forbidden, Invalid, NotFound, stale_version
from engine.runtime.records import secure
from engine.runtime.users import end_sign_ins, lock_for_deactivation

if TYPE_CHECKING:
    from engine.runtime.records.service import Compiled, Records
    from engine.runtime.records.unit import UnitOfWork

ENGINE_OWNER = ("owner_id", "department_id")


@dataclass(frozen=True)
class Target:
    """Who a record goes to: a user (and their department, unless one is named) or a
    department with no owner (its manager assigns it on)."""

    owner_id: int | None
    department_id: int | None


def resolve_target(conn: Connection, records: Records, owner: int | None,
                   department: int | None) -> Target:
    """Check that the user is active and the department is a live record; 422 otherwise."""
    errors: dict[str, str] = {}
    if owner is None and department is None:
        raise Invalid(msg("say who the record goes to"),
                      {"owner": msg("give a user id, or a department id")})
    dept_of_owner: int | None = None
    if owner is not None:
        u = records.users
        row = conn.execute(select(u.c.department_id).where(
            u.c.id == owner, u.c.active.is_(True))).first()
        if row is None:
            errors["owner"] = msg("no active user with id %(id)s", id=owner)
        else:
            dept_of_owner = row[0]
    if department is not None:
        if not records.model.has_entity("department"):
            errors["department"] = msg("there is no department entity in config")
        else:
            d = records.schema.table("department")
            if conn.execute(select(d.c.id).where(d.c.id == department,
                                                 d.c.deleted_at.is_(None))).first() is None:
                errors["department"] = msg("no department with id %(id)s", id=department)
    if errors:
        raise Invalid(msg("the assignment is not valid"), errors)
    return Target(owner, department if department is not None else dept_of_owner)


def assign(records: Records, actor: Actor, entity: str, record_id: int, *,
           owner: int | None, department: int | None,
           version: int | None = None, unit: UnitOfWork | None = None) -> dict[str, Any]:
    """Give one record (and its configured children) to `owner` and/or `department`.

    Returns {"record": the record as the actor sees it, "cascaded": {entity: count},
    "visible": whether the actor still sees it (if not, "record" holds only its id, version,
    owner and department)}.
    """
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    with records.unit(actor, unit) as work:
        conn = work.conn
        old = records.fetch(conn, actor, c, record_id, lock=True)
        records.allowed(conn, actor, c, record_id, "assign")
        if version is not None and old["version"] != version:
            raise stale_version(entity, record_id, old["version"], version)
        target = resolve_target(conn, records, owner, department)
        _check_scope(conn, records, actor, c.entity, owner, department, old)
        moved = _move(work, c.table, entity, [record_id], target)
        cascaded: dict[str, int] = {}
        if moved:
            for cascade in c.entity.cascade_assign:
                child = records.compiled(cascade.entity)
                ids = _children(conn, records, actor, c.entity, child, record_id,
                                old["owner_id"], cascade.compiled)
                if ids:
                    cascaded[cascade.entity] = _move(work, child.table, cascade.entity, ids,
                                                     target)
        work.settle()
        row = records.fetch(conn, SYSTEM, c, record_id, reader=actor)
        visible = readable_with(conn, records.policy, actor, c.entity, record_id,
                                row["owner_id"], row["department_id"])
    # Handed out of the actor's sight: the answer names the record, never its fields.
    out = records.row_out(actor, c, row) if visible else {
        k: row[k] for k in ("id", "version", "owner_id", "department_id")}
    return {"record": out, "cascaded": cascaded, "visible": visible}


def assign_outcome(records: Records, actor: Actor, entity: str, record_id: int, *,
                   owner: int | None, department: int | None) -> bool:
    """What assigning would do, without doing it: raises what `assign` would raise about
    the record and the target; returns whether the actor would still see the record."""
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    with records.engine.connect() as conn:
        old = records.fetch(conn, actor, c, record_id)
        records.allowed(conn, actor, c, record_id, "assign")
        target = resolve_target(conn, records, owner, department)
        _check_scope(conn, records, actor, c.entity, owner, department, old)
        return readable_with(conn, records.policy, actor, c.entity, record_id,
                             target.owner_id, target.department_id)


def _check_scope(conn: Connection, records: Records, actor: Actor, entity: Entity,
                 owner: int | None, department: int | None, old: dict[str, Any]) -> None:
    """422 when the target is outside the departments the actor may assign to."""
    problems = out_of_scope(conn, records.policy, actor, entity, owner=owner,
                            department=department, current_owner=old["owner_id"],
                            current_department=old["department_id"])
    if problems:
        raise Invalid(msg("you may not assign this record there"), dict(problems))


def _children(conn: Connection, records: Records, actor: Actor, parent: Entity,
              child: Compiled, parent_id: int, old_owner: int | None,
              when: Any) -> list[int]:
    """Live children pointing to the parent, owned by the parent's old owner, that satisfy
    `when` and that the actor may assign."""
    t = child.table
    links = [t.c[f.name] == parent_id for f in child.entity.stored_fields
             if f.target == parent.name]
    where = [*secure.rows(records, actor, child.entity.name, "assign").where, or_(*links),
             t.c.owner_id.is_(None) if old_owner is None else t.c.owner_id == old_owner]
    if when is not None:  # the rule's condition reads as the engine: every record
        where.append(secure.rows(records, SYSTEM, child.entity.name).condition(when))
    return [r[0] for r in conn.execute(select(t.c.id).where(*where).order_by(t.c.id))]


def _move(work: UnitOfWork, table: Table, entity: str, ids: Sequence[int],
          target: Target) -> int:
    """Set owner and department of `ids`, a change of each record that changed; returns
    how many records changed."""
    conn = work.conn
    rows = conn.execute(select(table.c.id, table.c.version, table.c.owner_id,
                               table.c.department_id).where(table.c.id.in_(ids))).all()
    new = {"owner_id": target.owner_id, "department_id": target.department_id}
    changed = 0
    for row in rows:
        changes = [(col, getattr(row, col), new[col]) for col in ENGINE_OWNER
                   if getattr(row, col) != new[col]]
        if not changes:
            continue
        changed += 1
        engine_after = {"version": row.version + 1, "updated_at": work.now,
                        "updated_by": work.actor.user_id}
        conn.execute(update(table).where(table.c.id == row.id).values(
            **new, **engine_after))
        before = dict(row._mapping)
        work.change(entity, row.id, "assign", before=before,
                    after={**before, **new, **engine_after}, changes=changes)
    return changed


def transfer_owned(records: Records, actor: Actor, from_user: int, to_user: int, *,
                   deactivate: bool = False) -> dict[str, int]:
    """Give everything `from_user` owns (recycle bin included) to `to_user`, in one
    transaction, and optionally deactivate `from_user` (tokens revoked) in the same one.

    Returns {entity: records moved}. Only administrators may do this.
    """
    if not records.policy.is_admin(actor):
        raise Forbidden(msg("only an administrator may transfer a user's records"))
    if from_user == to_user:
        raise BadRequest(msg("a user cannot transfer records to themselves"),
                         {"to": msg("choose another user")})
    moved: dict[str, int] = {}
    with records.unit(actor) as work:
        conn, now = work.conn, work.now
        u = records.users
        # Both users' rows stay locked to the end, so a concurrent transfer, deactivation or
        # reactivation of either waits for this one instead of acting on what it replaces.
        if deactivate:
            lock_for_deactivation(conn, u, records.model.roles, from_user, actor.user_id,
                                  also=(to_user,))
        else:
            conn.execute(select(u.c.id).where(u.c.id.in_([from_user, to_user]))
                         .order_by(u.c.id).with_for_update())
        if conn.execute(select(u.c.id).where(u.c.id == from_user)).first() is None:
            raise NotFound(msg("no user with id %(id)s", id=from_user))
        target = resolve_target(conn, records, to_user, None)
        for e in records.model.entities:
            t = records.compiled(e.name).table
            ids = [r[0] for r in conn.execute(
                select(t.c.id).where(t.c.owner_id == from_user).order_by(t.c.id))]
            if ids:
                moved[e.name] = _move(work, t, e.name, ids, target)
        if deactivate:
            conn.execute(update(u).where(u.c.id == from_user).values(active=False))
            end_sign_ins(conn, None, records.schema.table("crm_token"), from_user, now)
            work.change("crm_user", from_user, "deactivate")
    return moved

"""Record teams: users who share a record with its owner (a presales engineer on an
opportunity). A member with `read` sees the record; with `edit` they may also update it
where their role's scope is `own`. Adding and removing members is audited under "team".
Only users the actor may name join (engine/runtime/access/reachable.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.access.reachable import may_reach
from engine.runtime.errors import Invalid, NotFound

if TYPE_CHECKING:
    from engine.runtime.records.service import Records
    from engine.runtime.records.unit import UnitOfWork

TEAM_ACCESS = ("read", "edit")


def team_of(records: Records, actor: Actor, entity: str,
            record_id: int) -> list[dict[str, Any]]:
    """The members of a record the actor can see, in the order they were added."""
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    with records.engine.connect() as conn:
        records.fetch(conn, actor, c, record_id)
        return members(conn, records, entity, record_id)


def members(conn: Connection, records: Records, entity: str,
            record_id: int) -> list[dict[str, Any]]:
    """The members of a record, in the order they were added; the caller has checked that
    the actor sees the record (who shares it is part of it)."""
    t, u = records.policy.team, records.users
    stmt = records.statement(("team",), lambda: (
        select(t.c.user_id, u.c.name, u.c.display_name, t.c.access, t.c.added_at)
        .select_from(t.join(u, u.c.id == t.c.user_id))
        .where(t.c.entity == bindparam("entity"), t.c.record_id == bindparam("record_id"))
        .order_by(t.c.id)))
    rows = conn.execute(stmt, {"entity": entity, "record_id": record_id})
    return [{"user_id": r.user_id, "user": r.name, "display_name": r.display_name,
             "access": r.access, "added_at": r.added_at} for r in rows]


def set_member(records: Records, actor: Actor, entity: str, record_id: int, user_id: int,
               access: str, unit: UnitOfWork | None = None) -> list[dict[str, Any]]:
    """Add a member, or change their access; the actor must be allowed to update the record."""
    if access not in TEAM_ACCESS:
        raise Invalid(msg("team access is read or edit"),
                      {"access": msg("must be read or edit")})
    t, u = records.policy.team, records.users
    with records.unit(actor, unit) as work:
        conn, now = work.conn, work.now
        _lock_for_update(conn, records, actor, entity, record_id)
        user = conn.execute(select(u.c.name).where(u.c.id == user_id,
                                                   u.c.active.is_(True))).first()
        # a user the actor may not name answers as one that does not exist
        if user is None or not may_reach(conn, records.policy, actor, u, user_id):
            raise Invalid(msg("team member is not valid"),
                          {"user": msg("no active user with id %(id)s", id=user_id)})
        key = (t.c.entity == entity, t.c.record_id == record_id, t.c.user_id == user_id)
        current = conn.execute(select(t.c.access).where(*key)).scalar()
        if current == access:
            pass
        elif current is None:
            conn.execute(insert(t).values(entity=entity, record_id=record_id, user_id=user_id,
                                          access=access, added_at=now,
                                          added_by=actor.user_id))
        else:
            conn.execute(update(t).where(*key).values(access=access))
        if current != access:
            work.change(entity, record_id, "team",
                        changes=[("team", _member(user.name, current),
                                  _member(user.name, access))])
        if unit is not None:
            return members(conn, records, entity, record_id)
    return team_of(records, actor, entity, record_id)


def remove_member(records: Records, actor: Actor, entity: str, record_id: int,
                  user_id: int, unit: UnitOfWork | None = None) -> list[dict[str, Any]]:
    t, u = records.policy.team, records.users
    with records.unit(actor, unit) as work:
        conn = work.conn
        _lock_for_update(conn, records, actor, entity, record_id)
        key = (t.c.entity == entity, t.c.record_id == record_id, t.c.user_id == user_id)
        current = conn.execute(select(t.c.access).where(*key)).scalar()
        if current is None:
            raise NotFound(msg("user %(user)s is not on the team of %(entity)s %(id)s",
                               user=user_id, entity=entity, id=record_id))
        name = conn.execute(select(u.c.name).where(u.c.id == user_id)).scalar()
        conn.execute(delete(t).where(*key))
        work.change(entity, record_id, "team", changes=[("team", _member(name, current), None)])
        if unit is not None:
            return members(conn, records, entity, record_id)
    return team_of(records, actor, entity, record_id)


def _lock_for_update(conn: Connection, records: Records, actor: Actor, entity: str,
                     record_id: int) -> None:
    """Lock the record; 404 unless the actor sees it, 403 unless they may update it (the
    team is part of the record: changing it is an update)."""
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    records.fetch(conn, actor, c, record_id, lock=True)
    records.allowed(conn, actor, c, record_id, "update")


def _member(name: str | None, access: str | None) -> dict[str, Any] | None:
    return None if access is None else {"user": name, "access": access}

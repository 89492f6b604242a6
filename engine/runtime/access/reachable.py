"""Whom an actor may name: a team member to share a record with, a user in a user field. User
pickers offer only these users and the team accepts only them, so a picker is no directory
of every user (an outside dealer never lists internal staff).

An actor reaches themselves, the users of their own department, and the users of every
department they may read: the `read` scope of the `department` entity in config/roles.yaml,
the same rule that decides which departments they see in lists and pickers.

- administrators, and `department: {read: all}`: every user;
- no read on departments (the shipped `partner`): myself and my department's users;
- a config without a department entity: every user (there is nothing to narrow by).

Whom a record may be assigned to is narrower and its own rule
(engine/runtime/access/assignable.py).

    partner in PARTNERS (no department read) -> the users of PARTNERS
    sales_rep in BJ (department: {read: all}) -> every user
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, FromClause, false, or_, select

from engine.runtime.access.actor import Actor
from engine.runtime.access.policy import AccessPolicy


def reachable_users(policy: AccessPolicy, actor: Actor,
                    users: FromClause) -> ColumnElement[bool] | None:
    """Users (rows of `users`, the user table) the actor may name, as a condition; None for
    every user."""
    d = policy.departments
    if d is None or policy.is_admin(actor):
        return None
    if actor.user_id is None:
        return false()
    readable = policy.read_filter(actor, policy.model.entity("department"), d)
    if readable is None:
        return None
    reach: list[ColumnElement[bool]] = [
        users.c.id == actor.user_id,
        users.c.department_id.in_(select(d.c.id).where(readable, d.c.deleted_at.is_(None)))]
    if actor.department_id is not None:
        reach.append(users.c.department_id == actor.department_id)
    return or_(*reach)


def may_reach(conn: Connection, policy: AccessPolicy, actor: Actor, users: FromClause,
              user_id: int) -> bool:
    """Whether the actor may name user `user_id`."""
    allowed = reachable_users(policy, actor, users)
    if allowed is None:
        return True
    return conn.execute(select(users.c.id).where(users.c.id == user_id, allowed)
                        ).first() is not None

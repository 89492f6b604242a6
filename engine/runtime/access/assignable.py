"""Where an actor may hand records over to: the `assign` scope read as departments.

The scope that lets a user assign a record (config/roles.yaml, action `assign`) also bounds
whom it may go to, so a regional manager cannot give a customer to another region:

- all: any user, any department;
- department_tree: myself, users of my department or one under it, and those departments;
- department: myself, users of my department, and my department;
- own: myself only (and my own department);
- none: nobody.

A user without a department reaches only themselves (unless the scope is all). A part of the
target that stays as it is (the same owner, the same department) is not checked: handing a
record back to where it already is changes nothing.
"""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    cast,
    false,
    literal,
    null,
    or_,
    select,
)

from engine.messages import Message, msg
from engine.metadata.model import Entity
from engine.metadata.roles import Scope
from engine.runtime.access.actor import Actor
from engine.runtime.access.policy import AccessPolicy
from engine.runtime.schema.tables import USER_TABLE

OUTSIDE_USER = msg("this user is not in a department you may assign records to")
OUTSIDE_DEPARTMENT = msg("this department is outside the departments you may assign records to")


def department_condition(policy: AccessPolicy, actor: Actor, entity: Entity,
                         column: ColumnElement[int]) -> ColumnElement[bool] | None:
    """Departments (by `column`, a department id) the actor may assign `entity` records to;
    None for every department."""
    scope = policy.scope(actor, entity.name, "assign")
    if scope is Scope.ALL:
        return None
    if scope is Scope.NONE or actor.department_id is None:
        return false()
    if scope is Scope.DEPARTMENT_TREE and policy.departments is not None:
        return column.in_(policy.subtree(actor.department_id))
    return column == actor.department_id


def user_condition(policy: AccessPolicy, actor: Actor, entity: Entity,
                   users: FromClause) -> ColumnElement[bool] | None:
    """Users (rows of `users`, the user table) the actor may assign `entity` records to;
    None for every user."""
    scope = policy.scope(actor, entity.name, "assign")
    departments = department_condition(policy, actor, entity, users.c.department_id)
    if departments is None:
        return None
    if scope is Scope.NONE or actor.user_id is None:
        return false()
    me = users.c.id == actor.user_id
    return me if scope is Scope.OWN else or_(me, departments)


def out_of_scope(conn: Connection, policy: AccessPolicy, actor: Actor, entity: Entity, *,
                 owner: int | None, department: int | None, current_owner: int | None,
                 current_department: int | None) -> dict[str, Message]:
    """Problems with giving a record of `entity` to `owner` and/or `department` (the one named,
    not the one that follows the owner), keyed "owner" and "department"; {} when it may go."""
    problems: dict[str, Message] = {}
    users = policy.schema.table(USER_TABLE)
    if owner is not None and owner != current_owner:
        allowed = user_condition(policy, actor, entity, users)
        if allowed is not None and conn.execute(
                select(users.c.id).where(users.c.id == owner, allowed)).first() is None:
            problems["owner"] = OUTSIDE_USER
    d = policy.departments
    if department is not None and department != current_department and d is not None:
        allowed = department_condition(policy, actor, entity, d.c.id)
        if allowed is not None and conn.execute(
                select(d.c.id).where(d.c.id == department, allowed)).first() is None:
            problems["department"] = OUTSIDE_DEPARTMENT
    return problems


def readable_with(conn: Connection, policy: AccessPolicy, actor: Actor, entity: Entity,
                  record_id: int, owner: int | None, department: int | None) -> bool:
    """Whether the actor could read the record were it owned by `owner` and booked in
    `department`: the read policy itself, run on those values (team membership included)."""
    row = select(_integer(record_id).label("id"), _integer(owner).label("owner_id"),
                 _integer(department).label("department_id")).subquery()
    allowed = policy.read_filter(actor, entity, row)
    if allowed is None:
        return True
    return conn.execute(select(row.c.id).where(allowed)).first() is not None


def _integer(value: int | None) -> ColumnElement[int]:
    # typed, so PostgreSQL knows what a bare parameter in a select list is
    return cast(null() if value is None else literal(value), Integer)

"""Why can (or can't) a user see or change a record, and each of its fields?

The verdicts come from the same SQL predicates that enforce access (one query per action on
the record); the reasons name the role, the scope and the fact that decides it: ownership,
team membership, or the department path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from engine.messages import msg
from engine.metadata.model import Entity
from engine.metadata.roles import ACTIONS, FieldRule, Scope
from engine.runtime.access.actor import SYSTEM, Actor
from engine.runtime.errors import Forbidden, NotFound
from engine.runtime.org import department_path

if TYPE_CHECKING:
    from engine.runtime.records import Records

_WORDS = {Scope.OWN: "records they own or share as a team member",
          Scope.DEPARTMENT: "records of their department",
          Scope.DEPARTMENT_TREE: "records of their department and the ones under it",
          Scope.ALL: "every record"}


def explain_access(records: Records, asker: Actor, subject: Actor, entity: str,
                   record_id: int) -> dict[str, Any]:
    """The verdict and its reason for every action and every field of one record.

    Administrators may ask about anyone; others only about themselves.
    """
    policy = records.policy
    if asker != SYSTEM and asker.user_id != subject.user_id and not policy.is_admin(asker):
        raise Forbidden(msg("only an administrator may explain another user's access"))
    c = records.compiled(entity)
    # Someone explaining their own access learns nothing of a record they cannot read.
    reader = SYSTEM if policy.is_admin(asker) else asker
    if reader is asker:
        policy.require(asker, c.entity, "read")
    with records.engine.connect() as conn:
        try:
            row = records.fetch(conn, reader, c, record_id)
            deleted = False
        except NotFound:
            try:
                row = records.fetch(conn, reader, c, record_id, deleted=True)
            except NotFound:
                raise NotFound(msg("no %(entity)s %(id)s", entity=entity, id=record_id)) from None
            deleted = True
        facts = _Facts(conn, records, subject, c.entity, row)
        actions = {a: _action(conn, records, subject, c.entity, c.table, row["id"], a, facts)
                   for a in ACTIONS}
    if not actions["read"]["allowed"]:
        # Records looks the record up as read first: a wider scope for another action does
        # not reach a record the subject cannot see (it is a 404 to them).
        for a, verdict in actions.items():
            if a not in ("create", "read") and verdict["allowed"]:
                actions[a] = {**verdict, "allowed": False,
                              "reason": f"{verdict['reason']}, but they cannot read the record"}
    return {
        "user": {"id": subject.user_id, "name": subject.name, "roles": list(subject.roles),
                 "department": facts.path_text(facts.user_path)},
        "entity": entity,
        "record_id": record_id,
        "record": {"owner_id": row["owner_id"],
                   "department": facts.path_text(facts.record_path),
                   "team": facts.team, "in_recycle_bin": deleted},
        "actions": actions,
        "fields": _fields(records, subject, c.entity),
    }


class _Facts:
    """What the reasons talk about: owner, team, and both department paths."""

    def __init__(self, conn: Connection, records: Records, subject: Actor, entity: Entity,
                 row: dict[str, Any]) -> None:
        t = records.policy.team
        self.owner = row["owner_id"] is not None and row["owner_id"] == subject.user_id
        self.team = [{"user_id": r.user_id, "access": r.access} for r in conn.execute(
            select(t.c.user_id, t.c.access).where(t.c.entity == entity.name,
                                                  t.c.record_id == row["id"])
            .order_by(t.c.id))]
        self.my_team_access = next((m["access"] for m in self.team
                                    if m["user_id"] == subject.user_id), None)
        self.user_path = department_path(conn, records, subject.department_id)
        self.record_path = department_path(conn, records, row["department_id"])

    @staticmethod
    def path_text(path: list[tuple[int, str]]) -> str | None:
        return " / ".join(name for _, name in path) if path else None

    def why_in(self, scope: Scope, action: str) -> str:
        """The fact that puts the record inside `scope`."""
        if self.owner:
            return "they own the record"
        if self.my_team_access is not None and (action != "update"
                                                or self.my_team_access == "edit"):
            return f"they are on the record's team with {self.my_team_access} access"
        mine = self.path_text(self.user_path)
        theirs = self.path_text(self.record_path)
        if self.user_path and self.record_path and self.user_path[-1] == self.record_path[-1]:
            return f"the record belongs to their department {mine}"
        return f"the record's department {theirs} is under their department {mine}"

    def why_out(self, scope: Scope, action: str) -> str:
        parts = ["they do not own the record"]
        if self.my_team_access is None:
            parts.append("are not on its team")
        elif action == "update":
            parts.append(f"are on its team with {self.my_team_access} access only")
        else:
            parts.append(f"team access does not count for {action}")
        if scope in (Scope.DEPARTMENT, Scope.DEPARTMENT_TREE):
            theirs = self.path_text(self.record_path) or "no department"
            mine = self.path_text(self.user_path) or "no department"
            where = "is not" if scope is Scope.DEPARTMENT else "is not in or under"
            parts.append(f"the record's department ({theirs}) {where} theirs ({mine})")
        return ", ".join(parts)


def _action(conn: Connection, records: Records, subject: Actor, entity: Entity, table: Any,
            record_id: int, action: str, facts: _Facts) -> dict[str, Any]:
    policy = records.policy
    scope = policy.scope(subject, entity.name, action)
    roles = [r.name for r in policy.deciding_roles(subject, entity.name, action)]
    if scope is Scope.NONE:
        held = ", ".join(subject.roles) or "none"
        return {"allowed": False, "scope": scope.value, "roles": [],
                "reason": f"no role of {subject.name} grants {action} on {entity.name} "
                          f"(roles: {held})"}
    words = _WORDS[scope]
    if scope is Scope.OWN and action in ("create", "delete", "assign"):
        words = "records they own"
    granted = f"role {' and '.join(roles)} grants {action} on {words}"
    if action == "create":
        return {"allowed": True, "scope": scope.value, "roles": roles, "reason": granted}
    cond = policy.scope_filter(scope, subject, entity, table, action)
    inside = cond is None or conn.execute(
        select(table.c.id).where(table.c.id == record_id, cond)).first() is not None
    if scope is Scope.ALL:
        reason = granted
    elif inside:
        reason = f"{granted}, and {facts.why_in(scope, action)}"
    else:
        reason = f"{granted} only, and {facts.why_out(scope, action)}"
    return {"allowed": inside, "scope": scope.value, "roles": roles, "reason": reason}


def _fields(records: Records, subject: Actor, entity: Entity) -> dict[str, Any]:
    policy = records.policy
    mask = policy.mask(subject, entity)
    roles = policy.roles_of(subject)
    out: dict[str, Any] = {}
    for f in entity.fields:
        rules = {r.name: r.field_rule(entity.name, f.name) for r in roles}
        if f.name in mask.hidden:
            by = [n for n, rule in rules.items() if rule is FieldRule.HIDDEN]
            reason = (f"hidden by role {' and '.join(by)}" if by else
                      "computed from a field hidden from them: its value would reveal it")
            out[f.name] = {"read": "hidden", "write": "hidden", "reason": reason}
        elif f.computed:
            out[f.name] = {"read": "visible", "write": "computed",
                           "reason": "a formula field: visible, never written"}
        elif f.name in mask.readonly:
            by = [n for n, rule in rules.items() if rule is not None]
            out[f.name] = {"read": "visible", "write": "readonly",
                           "reason": f"read-only in role {' and '.join(by)}"}
        else:
            out[f.name] = {"read": "visible", "write": "writable",
                           "reason": "no role rule limits it"}
    return out

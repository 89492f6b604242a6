"""Why can (or can't) a user see or change a record, and each of its fields?

The policy side of the explanation: the verdicts come from the same SQL predicates that
enforce access (one query per action on the record); the reasons name the role, the scope and
the fact that decides it: ownership, team membership, or the department path.

What only records knows (the record as the asker may read it, whether it is in the recycle
bin, the department paths) comes in as plain values, `RecordFacts`: access does not import
records (engine.runtime.records.access_explain reads them and calls `explain_record`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, FromClause, select

from engine.messages import msg
from engine.metadata.model import Entity
from engine.metadata.roles import ACTIONS, FieldRule, Scope
from engine.runtime.access.actor import SYSTEM, Actor
from engine.runtime.access.policy import AccessPolicy
from engine.runtime.errors import Forbidden

_WORDS = {Scope.OWN: "records they own or share as a team member",
          Scope.DEPARTMENT: "records of their department",
          Scope.DEPARTMENT_TREE: "records of their department and the ones under it",
          Scope.ALL: "every record"}

Path = list[tuple[int, str]]
"""A department path: (id, name) from the top of the tree down; [] for no department."""


@dataclass(frozen=True)
class RecordFacts:
    """The record and the subject as records read them, for the reasons to talk about."""

    record_id: int
    owner_id: int | None
    in_recycle_bin: bool
    user_path: Path
    """The subject's department path."""
    record_path: Path
    """The record's department path."""


def explaining_reader(policy: AccessPolicy, asker: Actor, subject: Actor) -> Actor:
    """Who reads the record for the explanation: the system for an administrator, otherwise
    the asker (who then learns nothing of a record they cannot read).

    Administrators may ask about anyone; others only about themselves (Forbidden).
    """
    if asker != SYSTEM and asker.user_id != subject.user_id and not policy.is_admin(asker):
        raise Forbidden(msg("only an administrator may explain another user's access"))
    return SYSTEM if policy.is_admin(asker) else asker


def explain_record(conn: Connection, policy: AccessPolicy, subject: Actor, entity: Entity,
                   table: FromClause, facts: RecordFacts) -> dict[str, Any]:
    """The verdict and its reason for every action and every field of one record of `table`
    (the table of `entity`)."""
    reasons = _Reasons(conn, policy, subject, entity, facts)
    actions = {a: _action(conn, policy, subject, entity, table, facts.record_id, a, reasons)
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
                 "department": _path_text(facts.user_path)},
        "entity": entity.name,
        "record_id": facts.record_id,
        "record": {"owner_id": facts.owner_id,
                   "department": _path_text(facts.record_path),
                   "team": reasons.team, "in_recycle_bin": facts.in_recycle_bin},
        "actions": actions,
        "fields": _fields(policy, subject, entity),
    }


def _path_text(path: Path) -> str | None:
    return " / ".join(name for _, name in path) if path else None


class _Reasons:
    """What the reasons talk about: owner, team (the policy's team table), and both
    department paths."""

    def __init__(self, conn: Connection, policy: AccessPolicy, subject: Actor, entity: Entity,
                 facts: RecordFacts) -> None:
        t = policy.team
        self.facts = facts
        self.owner = facts.owner_id is not None and facts.owner_id == subject.user_id
        self.team = [{"user_id": r.user_id, "access": r.access} for r in conn.execute(
            select(t.c.user_id, t.c.access).where(t.c.entity == entity.name,
                                                  t.c.record_id == facts.record_id)
            .order_by(t.c.id))]
        self.my_team_access = next((m["access"] for m in self.team
                                    if m["user_id"] == subject.user_id), None)

    def why_in(self, scope: Scope, action: str) -> str:
        """The fact that puts the record inside `scope`."""
        if self.owner:
            return "they own the record"
        if self.my_team_access is not None and (action != "update"
                                                or self.my_team_access == "edit"):
            return f"they are on the record's team with {self.my_team_access} access"
        user_path, record_path = self.facts.user_path, self.facts.record_path
        mine = _path_text(user_path)
        theirs = _path_text(record_path)
        if user_path and record_path and user_path[-1] == record_path[-1]:
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
            theirs = _path_text(self.facts.record_path) or "no department"
            mine = _path_text(self.facts.user_path) or "no department"
            where = "is not" if scope is Scope.DEPARTMENT else "is not in or under"
            parts.append(f"the record's department ({theirs}) {where} theirs ({mine})")
        return ", ".join(parts)


def _action(conn: Connection, policy: AccessPolicy, subject: Actor, entity: Entity,
            table: FromClause, record_id: int, action: str,
            reasons: _Reasons) -> dict[str, Any]:
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
        reason = f"{granted}, and {reasons.why_in(scope, action)}"
    else:
        reason = f"{granted} only, and {reasons.why_out(scope, action)}"
    return {"allowed": inside, "scope": scope.value, "roles": roles, "reason": reason}


def _fields(policy: AccessPolicy, subject: Actor, entity: Entity) -> dict[str, Any]:
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
        elif f.rollup is not None:
            out[f.name] = {"read": "visible", "write": "computed",
                           "reason": "a rollup the engine keeps: visible, never written"}
        elif f.name in mask.readonly:
            by = [n for n, rule in rules.items() if rule is not None]
            out[f.name] = {"read": "visible", "write": "readonly",
                           "reason": f"read-only in role {' and '.join(by)}"}
        else:
            out[f.name] = {"read": "visible", "write": "writable",
                           "reason": "no role rule limits it"}
    return out

"""The flow actions that hand a record to people: `assign` (assignment rules: the first rule
whose `when` holds and whose pool has an active user picks the owner, by round robin or by
fewest open records) and `team` (add a team member). docs/flows.md#assignment-rules.

```yaml
- assign:
    rules:
      - when: 'industry = "aviation"'
        to: {users: [li.na, wang.wei]}
        by: round_robin
      - to: {department: East region, roles: [sales_rep]}
        by: least_open
      - to: {territory: {field: industry, map: {energy: North region}}}
    open_when: 'NOT(OR(status = "converted", status = "disqualified"))'
    otherwise: owner_manager
- team: {member: owner_manager, access: read}
```

User names cannot be checked when the configuration loads (users live in the database);
department names are checked against config/org.yaml when it exists, roles against
roles.yaml, fields and options against the flow's entity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from engine.formula import CompiledFormula, FType
from engine.metadata.errors import did_you_mean
from engine.metadata.model import Entity, Field, OrgUnit
from engine.metadata.yamlio import PathPart
from engine.types import FieldType

BY = ("round_robin", "least_open")
OTHERWISE = ("keep", "owner_manager")
TEAM_ACCESS = ("read", "edit")


@dataclass(frozen=True)
class Pool:
    """Whom a rule picks among: named users, the active users of a department (and the
    departments under it), or of the department a field of the record maps to; `roles`
    narrows any of them to users holding one of those roles."""

    users: tuple[str, ...] = ()
    department: str | None = None
    territory_field: str | None = None
    territory_map: tuple[tuple[str, str], ...] | None = None
    """value of the field → department name; None: the field is a department field."""
    roles: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.users:
            text = "users " + ", ".join(self.users)
        elif self.department is not None:
            text = f"department {self.department}"
        else:
            text = f"territory of {self.territory_field}"
        return text + (f" with role {' or '.join(self.roles)}" if self.roles else "")


@dataclass(frozen=True)
class AssignRule:
    when: CompiledFormula | None
    pool: Pool
    by: str
    key: str
    """The rule's round robin counter (unique per flow, action and rule)."""


@dataclass(frozen=True)
class AssignAction:
    """Give the record to the user the first matching rule picks; nobody: `otherwise`."""

    rules: tuple[AssignRule, ...]
    otherwise: str
    open_when: CompiledFormula | None
    """Which records of the entity count as open for `least_open` (None: every live one)."""
    kind: str = "assign"


@dataclass(frozen=True)
class TeamAction:
    """Add team members to the record: the owner's manager, the user of a user field, or
    named users, with `access` read or edit."""

    member: str | None
    """`owner_manager`, a user field of the record, or None (only `users`)."""
    users: tuple[str, ...]
    access: str
    kind: str = "team"


def counter_key(flow: str, path: list[PathPart], rule: int) -> str:
    """The round robin counter's name (at most 63 characters, crm_autonumber.field).

    >>> counter_key("leads", ["triggers", 0, "actions", 1], 2)
    'leads:triggers.0.actions.1.2'
    """
    key = f"{flow}:{'.'.join(str(p) for p in path)}.{rule}"
    return key if len(key) <= 63 else "h:" + hashlib.sha256(key.encode()).hexdigest()[:40]


def org_names(units: Collection[OrgUnit]) -> frozenset[str]:
    """Every department name of config/org.yaml."""
    out: set[str] = set()
    todo = list(units)
    while todo:
        unit = todo.pop()
        out.add(unit.name)
        todo.extend(unit.children)
    return frozenset(out)


ErrorFn = Callable[..., None]
CompileFn = Callable[[list[PathPart], str, FType | None], CompiledFormula | None]
FieldFn = Callable[..., Field | None]


class PeopleChecker:
    """Checks of `assign` and `team` bodies; `error`, `compile` and `own_field` are the flow
    checker's (they report at file:line:col)."""

    def __init__(self, flow: str, entity: Entity, error: ErrorFn, compile: CompileFn,
                 own_field: FieldFn, departments: frozenset[str] | None,
                 roles: frozenset[str] | None, count: Callable[[], int]) -> None:
        self.flow = flow
        self._count = count
        """How many errors the flow has so far (a rule with new ones is dropped)."""
        self.entity = entity
        self.error = error
        self.compile = compile
        self.own_field = own_field
        self.departments = departments
        self.roles = roles

    def assign(self, path: list[PathPart], body: dict[str, Any]) -> AssignAction | None:
        ok = True
        rules: list[AssignRule] = []
        for i, spec in enumerate(body["rules"]):
            rule = self._rule([*path, "rules", i], spec, counter_key(self.flow, path, i))
            if rule is None:
                ok = False
            else:
                rules.append(rule)
        open_when = None
        if "open_when" in body:
            open_when = self.compile([*path, "open_when"], body["open_when"], FType.BOOLEAN)
            ok = ok and open_when is not None
            if open_when is not None and open_when.sql_problem is not None:
                self.error([*path, "open_when"], "cannot run in SQL "
                           f"({open_when.sql_problem.message}); open records are counted "
                           "in SQL")
                ok = False
            if open_when is not None and not any(r.get("by") == "least_open"
                                                 for r in body["rules"]):
                self.error([*path, "open_when"], "open_when is read only by a least_open rule")
                ok = False
        if not ok:
            return None
        return AssignAction(tuple(rules), body.get("otherwise", "keep"), open_when)

    def _rule(self, path: list[PathPart], spec: dict[str, Any], key: str) -> AssignRule | None:
        before = self._count()
        when = self.compile([*path, "when"], spec["when"], FType.BOOLEAN) \
            if "when" in spec else None
        to = spec["to"]
        roles = tuple(to.get("roles", ()))
        for j, role in enumerate(roles):
            if self.roles is not None and role not in self.roles:
                self.error([*path, "to", "roles", j],
                           f"no role {role!r}{did_you_mean(role, self.roles)}")
        pool: Pool
        if "users" in to:
            pool = Pool(users=tuple(to["users"]), roles=roles)
        elif "department" in to:
            self._department([*path, "to", "department"], to["department"])
            pool = Pool(department=to["department"], roles=roles)
        else:
            territory = to["territory"]
            f = self.own_field([*path, "to", "territory", "field"], territory["field"])
            mapping = territory.get("map")
            if f is not None:
                if f.type is FieldType.DEPARTMENT and mapping is None:
                    pass
                elif mapping is None:
                    self.error([*path, "to", "territory"], f"{f.name} is a {f.type.value} "
                               "field: map its values to departments (map:), or name a "
                               "department field")
                elif f.type not in (FieldType.CHOICE, FieldType.TEXT):
                    self.error([*path, "to", "territory", "field"],
                               f"{f.name} is a {f.type.value} field; a territory maps a "
                               "choice or text field (or reads a department field)")
                else:
                    for value, dept in mapping.items():
                        if f.type is FieldType.CHOICE and value not in f.options:
                            self.error([*path, "to", "territory", "map", value],
                                       f"{value!r} is not an option of {f.name}"
                                       f"{did_you_mean(value, f.options)}", key=True)
                        self._department([*path, "to", "territory", "map", value], dept)
            pool = Pool(territory_field=territory["field"], roles=roles,
                        territory_map=None if mapping is None else tuple(mapping.items()))
        if self._count() > before:
            return None
        return AssignRule(when, pool, spec.get("by", "round_robin"), key)

    def _department(self, path: list[PathPart], name: str) -> None:
        if self.departments is not None and name not in self.departments:
            self.error(path, f"no department {name!r} in config/org.yaml"
                             f"{did_you_mean(name, self.departments)}")

    def team(self, path: list[PathPart], body: dict[str, Any]) -> TeamAction | None:
        member = body.get("member")
        if member is not None and member != "owner_manager":
            f = self.own_field([*path, "member"], member)
            if f is None:
                return None
            if f.type is not FieldType.USER:
                self.error([*path, "member"], f"{member} is not a user field; a team member "
                                              "is 'owner_manager' or a user field")
                return None
        if member is None and not body.get("users"):
            self.error(path, "say who joins the team: member or users")
            return None
        return TeamAction(member, tuple(body.get("users", ())), body.get("access", "read"))


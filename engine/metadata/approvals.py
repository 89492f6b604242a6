"""`approvals:` of a flow file: who must approve a record before it moves on (docs/flows.md).

```yaml
approvals:
  - name: discount
    label: {en: Quote approval, zh: 报价审批}
    field: status               # the flow entity's choice field the approval rides on
    submit: in_review           # entering this option submits the record for approval
    approved: approved          # where the record goes once every step approved
    rejected: previous          # where a rejected record goes: `previous` (the option it
                                # was submitted from, the default) or an option
    lock: [pending]             # the record cannot be edited while pending (default);
                                # add `approved` to keep it locked after approval too
    steps:                      # in order; a step whose `when` is false is passed over
      - name: sales_manager
        when: 'discount_percent > 15'
        approvers: [{role: sales_manager}]   # user | role | manager | department_manager
        mode: any               # any: one approval settles the step; all: every approver
        escalate_after: 2d      # a pending task goes to the approver's own manager
```

Approvers are resolved when a step starts: `{user: name}` that user; `{role: r}` the active
users holding role r; `{manager: owner}` (or a user field) the manager of that user's
department — of the department above when the user manages their own; `{department_manager:
Name}` the manager of the department of config/org.yaml with that name. Roles and (with an
org.yaml) department names are checked when the configuration loads, so every step can
resolve to somebody; a step that finds no active user at run time goes to the
administrators with a notice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from engine.formula import CompiledFormula, FType
from engine.metadata.errors import SourceLoc, did_you_mean
from engine.metadata.labels import Label
from engine.metadata.model import Entity, Field, OrgUnit
from engine.metadata.roles import Roles
from engine.metadata.yamlio import PathPart
from engine.types import FieldType

APPROVER_KINDS = ("user", "role", "manager", "department_manager")
LOCKS = ("pending", "approved")


@dataclass(frozen=True)
class Approver:
    """One source of approvers: kind (APPROVER_KINDS) and its value (a user name, a role,
    `owner` or a user field, a department name)."""

    kind: str
    value: str

    def described(self) -> str:
        return f"{self.kind} {self.value}"


@dataclass(frozen=True)
class Step:
    name: str
    label: Label
    approvers: tuple[Approver, ...]
    mode: str
    when: CompiledFormula | None
    escalate_after: timedelta | None
    loc: SourceLoc


@dataclass(frozen=True)
class ApprovalRule:
    name: str
    label: Label
    field: str
    submit: str
    approved: str
    rejected: str | None
    """An option, or None: back to the option the record was submitted from."""
    lock: frozenset[str]
    steps: tuple[Step, ...]
    loc: SourceLoc

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


ErrorAt = Callable[..., None]
Compile = Callable[[list[PathPart], str, FType | None], CompiledFormula | None]
OwnField = Callable[..., Field | None]


def build_approvals(specs: list[dict[str, Any]], entity: Entity, roles: Roles,
                    org: tuple[OrgUnit, ...], *, error: ErrorAt, compile: Compile,
                    own_field: OwnField, loc: Callable[[list[PathPart]], SourceLoc],
                    duration: Callable[[str], timedelta]) -> tuple[ApprovalRule, ...]:
    """The approval rules of a schema-valid `approvals:` list; problems go to `error`."""
    departments = _department_names(org)
    out: list[ApprovalRule] = []
    names: set[str] = set()
    for i, spec in enumerate(specs):
        base: list[PathPart] = ["approvals", i]
        if spec["name"] in names:
            error([*base, "name"], f"{spec['name']!r} is already an approval of this flow")
        names.add(spec["name"])
        f = own_field([*base, "field"], spec["field"])
        ok = f is not None
        if f is not None and f.type is not FieldType.CHOICE:
            error([*base, "field"], f"{f.name} is a {f.type.value} field; an approval rides "
                                    "on a choice field")
            ok = False
        rejected = spec.get("rejected", "previous")
        if f is not None and ok:
            for key in ("submit", "approved"):
                if spec[key] not in f.options:
                    error([*base, key], f"{spec[key]!r} is not an option of {f.name}"
                                        f"{did_you_mean(spec[key], f.options)}")
                    ok = False
            if rejected != "previous" and rejected not in f.options:
                error([*base, "rejected"], f"{rejected!r} is not an option of {f.name} (or "
                                           f"'previous'){did_you_mean(rejected, f.options)}")
                ok = False
            if spec["submit"] == spec["approved"]:
                error([*base, "approved"], "approved must differ from submit")
                ok = False
        steps: list[Step] = []
        step_names: set[str] = set()
        for j, s in enumerate(spec["steps"]):
            where: list[PathPart] = [*base, "steps", j]
            if s["name"] in step_names:
                error([*where, "name"], f"{s['name']!r} is already a step of this approval")
                ok = False
            step_names.add(s["name"])
            approvers: list[Approver] = []
            for k, a in enumerate(s["approvers"]):
                kind = next(iter(a))
                value = str(a[kind])
                at: list[PathPart] = [*where, "approvers", k, kind]
                if kind == "role" and roles.get(value) is None:
                    error(at, f"unknown role {value!r}{did_you_mean(value, roles.names)}")
                    ok = False
                elif kind == "department_manager" and departments and \
                        value not in departments:
                    error(at, f"no department {value!r} in org.yaml"
                              f"{did_you_mean(value, departments)}")
                    ok = False
                elif kind == "manager" and value != "owner":
                    user_field = own_field(at, value)
                    if user_field is None:
                        ok = False
                    elif user_field.type is not FieldType.USER:
                        error(at, f"{value} is not a user field; the manager of 'owner' or "
                                  "of a user field")
                        ok = False
                approvers.append(Approver(kind, value))
            when = None
            if "when" in s:
                when = compile([*where, "when"], s["when"], FType.BOOLEAN)
                ok = ok and when is not None
            escalate = duration(s["escalate_after"]) if "escalate_after" in s else None
            steps.append(Step(s["name"], Label.of(s.get("label"), s["name"].replace("_", " ")
                                                  .capitalize()),
                              tuple(approvers), s.get("mode", "any"), when, escalate,
                              loc([*where, "name"])))
        if ok and f is not None:
            out.append(ApprovalRule(
                spec["name"], Label.of(spec.get("label"), spec["name"].replace("_", " ")
                                       .capitalize()),
                f.name, spec["submit"], spec["approved"],
                None if rejected == "previous" else rejected,
                frozenset(spec.get("lock", ["pending"])), tuple(steps), loc([*base, "name"])))
    return tuple(out)


def _department_names(org: tuple[OrgUnit, ...]) -> list[str]:
    out: list[str] = []
    todo = list(org)
    while todo:
        unit = todo.pop(0)
        out.append(unit.name)
        todo.extend(unit.children)
    return out

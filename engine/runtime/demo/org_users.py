"""The department tree and the demo's users: admin, and a few people per role."""

from __future__ import annotations

from sqlalchemy import select

from engine.runtime.access import SYSTEM
from engine.runtime.demo.context import Demo
from engine.runtime.org import seed_org
from engine.runtime.users import Users

DEMO_PASSWORD = "metacrm-demo"
# The people of a demo company, in the order their user names are numbered (sales_rep_3).
# A role config/roles.yaml adds later gets one person too (see `roles_to_staff`).
ROLES = ["executive", "sales_manager", "sales_rep", "sales_rep", "sales_rep", "presales",
         "marketing", "service_manager", "service_agent", "partner"]
HEADQUARTERS_ROLES = ("executive", "marketing", "finance")


def roles_to_staff(users: Users) -> list[str]:
    """ROLES, then every other non-administrator role the config defines, once each."""
    known = users.known_roles
    extra = [r.name for r in known.roles if r.name not in ROLES and not r.admin]
    return [r for r in ROLES if known.get(r) is not None] + extra


def make_org(demo: Demo) -> None:
    demo.say("departments")
    seed_org(demo.records)  # `crm migrate` may have seeded config/org.yaml already: kept
    if not _departments_by_kind(demo):
        hq = demo.bulk(SYSTEM, "department", [{"name": "Headquarters", "code": "HQ",
                                               "kind": "headquarters"}])[0]
        regions = demo.bulk(SYSTEM, "department", [
            {"name": "North region", "code": "N", "kind": "region", "parent": hq},
            {"name": "华东大区", "code": "E", "kind": "region", "parent": hq}])
        demo.bulk(SYSTEM, "department", [
            {"name": "Northern branch", "code": "N1", "kind": "branch", "parent": regions[0]},
            {"name": "上海分公司", "code": "E1", "kind": "branch", "parent": regions[1]},
            {"name": "Dealer partner", "code": "P1", "kind": "partner", "parent": regions[0]}])
    demo.departments = _departments_by_kind(demo)
    demo.counts["department"] = sum(len(v) for v in demo.departments.values())


def make_users(demo: Demo, users: Users) -> None:
    demo.say("users")
    kinds = demo.departments
    hq = kinds["headquarters"][0]
    branches = kinds.get("branch") or [hq]
    partner_dept = (kinds.get("partner") or branches)[0]
    demo.admin = users.add("admin", ["admin"], password=DEMO_PASSWORD, department_id=hq,
                           display_name="Administrator")
    demo.department_of[demo.admin.id] = hq
    for i, role in enumerate(roles_to_staff(users)):
        lang = "zh" if i % 2 else "en"
        dept = (hq if role in HEADQUARTERS_ROLES else
                partner_dept if role == "partner" else branches[i % len(branches)])
        display = demo.fakers[lang].name()
        user = users.add(f"{role}_{i + 1}", [role], password=DEMO_PASSWORD,
                         department_id=dept, display_name=display)
        demo.staff.append(user)
        demo.display[user.id] = display
        demo.department_of[user.id] = dept
    _managers(demo)


MANAGING_ROLES = ("executive", "sales_manager", "service_manager")
"""Who manages the department they sit in (the first of them there): the approvals' "the
owner's manager" walks up from a department without one to the head office."""


def _managers(demo: Demo) -> None:
    if not demo.records.model.entity("department").has_field("manager"):
        return
    managed: set[int] = set()
    for role in MANAGING_ROLES:
        for user in demo.with_role(role):
            dept = demo.department_of.get(user.id)
            if dept is not None and dept not in managed:
                managed.add(dept)
                demo.update("department", dept, {"manager": user.id})


def _departments_by_kind(demo: Demo) -> dict[str, list[int]]:
    t = demo.records.schema.table("department")
    out: dict[str, list[int]] = {}
    with demo.records.engine.connect() as conn:
        for row in conn.execute(select(t.c.id, t.c.kind).where(t.c.deleted_at.is_(None))
                                .order_by(t.c.id)):
            out.setdefault(row.kind, []).append(row.id)
    return out

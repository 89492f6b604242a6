"""Assignment rules and team members at run time (the `assign` and `team` actions of a
flow, engine/metadata/flow_people.py): who a record goes to, and why.

A rule's pool is the active users it names, or the active users of a department and the
departments under it (by the department's name, as config/org.yaml seeds it), or of the
department a field of the record maps to — narrowed to the rule's roles. A rule whose `when`
is not true, or whose pool has no active user, gives way to the next one.

- `round_robin` takes a ticket from a counter in crm_autonumber (one upsert that locks the
  counter's row until the write commits: two writes at once wait for each other, on
  PostgreSQL too) and picks the ticket's user in the pool ordered by user id: over N
  assignments to a pool of k users each gets N/k, give or take one.
- `least_open` counts the live records of the entity each user of the pool owns that are
  open (`open_when`, else every one), the record being assigned left out, and picks the
  user with fewest (ties: the lowest user id).

Every pick is described for the automation run: the rule, its pool, and why that user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from engine.metadata.flow_people import AssignAction, AssignRule, Pool, TeamAction
from engine.runtime.access import SYSTEM
from engine.runtime.records import secure
from engine.runtime.records.autonumber import take_numbers
from engine.runtime.records.computed import RecordContext
from engine.runtime.schema.tables import AUTONUMBER_TABLE

if TYPE_CHECKING:
    from engine.runtime.records import Records

COUNTER_ENTITY = "@assign"
"""The crm_autonumber counters of round robin rules live under this name."""


@dataclass
class Pick:
    """What an assign action decided: the user (None: nobody), and how it is explained."""

    user: int | None
    described: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _User:
    id: int
    name: str


class People:
    """Pools, picks and managers, read in the write's transaction."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.users = records.users
        self.counters = records.schema.table(AUTONUMBER_TABLE)
        model = records.model
        self.departments = records.schema.table("department") \
            if model.has_entity("department") else None
        self.has_manager = self.departments is not None \
            and model.entity("department").has_field("manager")

    # -- assign ---------------------------------------------------------------------------

    def pick(self, conn: Connection, entity: str, action: AssignAction, ctx: RecordContext,
             values: Mapping[str, Any], record_id: int) -> Pick:
        """The user the first matching rule picks, else `otherwise`; described."""
        passed: list[dict[str, Any]] = []
        for n, rule in enumerate(action.rules):
            seen = {"rule": n, "pool": rule.pool.describe()}
            if rule.when is not None and not rule.when.holds(ctx):
                passed.append({**seen, "skipped": f"when is not true: {rule.when.source}"})
                continue
            pool, why_empty = self._pool(conn, rule.pool, values)
            if not pool:
                passed.append({**seen, "skipped": why_empty})
                continue
            user, why = (self._round_robin(conn, rule, pool) if rule.by == "round_robin"
                         else self._least_open(conn, entity, action, pool, record_id))
            return Pick(user.id, {"kind": "assign", "rule": n, "by": rule.by,
                                  "pool": [u.name for u in pool], "to": user.name,
                                  "why": why, "passed": passed})
        owner = values.get("owner_id")
        if action.otherwise == "owner_manager" and owner is not None:
            manager = self.manager_of(conn, owner)
            if manager is not None:
                return Pick(manager.id, {"kind": "assign", "rule": "otherwise",
                                         "to": manager.name, "passed": passed,
                                         "why": "no rule matched: the owner's manager"})
            why = "no rule matched and the owner has no active manager: kept"
        else:
            why = "no rule matched: kept"
        return Pick(None, {"kind": "assign", "rule": "otherwise", "to": None, "why": why,
                           "passed": passed})

    def _pool(self, conn: Connection, pool: Pool,
              values: Mapping[str, Any]) -> tuple[list[_User], str]:
        """The active users of a pool, by id; when empty, why."""
        u = self.users
        active = u.c.active.is_(True)
        if pool.users:
            rows = conn.execute(select(u.c.id, u.c.name, u.c.roles).where(
                u.c.name.in_(pool.users), active).order_by(u.c.id)).all()
            return self._roles(rows, pool), f"no active user among {', '.join(pool.users)}" \
                + self._with(pool)
        if pool.department is not None:
            name = pool.department
            top = self._department_ids(conn, name)
        else:
            assert pool.territory_field is not None
            value = values.get(pool.territory_field)
            if value is None:
                return [], f"{pool.territory_field} is blank: no territory"
            if pool.territory_map is None:
                top, name = [int(value)], f"department {value}"
            else:
                mapped = dict(pool.territory_map).get(str(value))
                if mapped is None:
                    return [], f"{pool.territory_field} {value!r} is in no territory"
                name, top = mapped, self._department_ids(conn, mapped)
        if not top:
            return [], f"no department {name!r}"
        ids = self._under(conn, top)
        rows = conn.execute(select(u.c.id, u.c.name, u.c.roles).where(
            u.c.department_id.in_(ids), active).order_by(u.c.id)).all()
        return self._roles(rows, pool), f"no active user in {name}" + self._with(pool)

    @staticmethod
    def _with(pool: Pool) -> str:
        return f" with role {' or '.join(pool.roles)}" if pool.roles else ""

    @staticmethod
    def _roles(rows: Any, pool: Pool) -> list[_User]:
        wanted = set(pool.roles)
        return [_User(r.id, r.name) for r in rows
                if not wanted or wanted & set((r.roles or "").split(","))]

    def _department_ids(self, conn: Connection, name: str) -> list[int]:
        d = self.departments
        if d is None:
            return []
        return [r[0] for r in conn.execute(select(d.c.id).where(
            d.c.name == name, d.c.deleted_at.is_(None)).order_by(d.c.id))]

    def _under(self, conn: Connection, top: list[int]) -> list[int]:
        """`top` and every live department under them."""
        d = self.departments
        if d is None:
            return top
        children: dict[int, list[int]] = {}
        for row in conn.execute(select(d.c.id, d.c.parent).where(d.c.deleted_at.is_(None))):
            if row.parent is not None:
                children.setdefault(row.parent, []).append(row.id)
        found, todo = set(top), list(top)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return sorted(found)

    def _round_robin(self, conn: Connection, rule: AssignRule,
                     pool: list[_User]) -> tuple[_User, str]:
        ticket = take_numbers(conn, self.counters, COUNTER_ENTITY, rule.key, "", 1)
        user = pool[(ticket - 1) % len(pool)]
        return user, (f"round robin: turn {ticket} among {len(pool)} active users "
                      f"goes to {user.name}")

    def _least_open(self, conn: Connection, entity: str, action: AssignAction,
                    pool: list[_User], record_id: int) -> tuple[_User, str]:
        rows = secure.rows(self.records, SYSTEM, entity)
        t = rows.table
        where = [t.c.owner_id.in_([u.id for u in pool]), t.c.id != record_id]
        if action.open_when is not None:
            where.append(rows.condition(action.open_when))
        counts: dict[int, int] = {
            int(r[0]): int(r[1]) for r in conn.execute(
                rows.select(t.c.owner_id, func.count()).where(*where).group_by(t.c.owner_id))}
        user = min(pool, key=lambda u: (counts.get(u.id, 0), u.id))
        shown = ", ".join(f"{u.name} {counts.get(u.id, 0)}" for u in pool)
        return user, f"least open: {user.name} has the fewest open {entity} records ({shown})"

    # -- managers and teams ---------------------------------------------------------------

    def manager_of(self, conn: Connection, user_id: int) -> _User | None:
        """The active manager of the user's department — or, when that is the user or
        nobody, of the department above, and so on up."""
        d, u = self.departments, self.users
        if d is None or not self.has_manager:
            return None
        dept = conn.execute(select(u.c.department_id).where(u.c.id == user_id)).scalar()
        seen: set[int] = set()
        while dept is not None and dept not in seen:
            seen.add(dept)
            row = conn.execute(select(d.c.manager, d.c.parent).where(
                d.c.id == dept, d.c.deleted_at.is_(None))).first()
            if row is None:
                return None
            if row.manager is not None and row.manager != user_id:
                found = conn.execute(select(u.c.id, u.c.name).where(
                    u.c.id == row.manager, u.c.active.is_(True))).first()
                if found is not None:
                    return _User(found.id, found.name)
            dept = row.parent
        return None

    def team(self, conn: Connection, action: TeamAction,
             values: Mapping[str, Any]) -> tuple[list[int], dict[str, Any]]:
        """The users a team action adds (active, not the owner) and how it is described."""
        u = self.users
        owner = values.get("owner_id")
        chosen: list[_User] = []
        left: list[str] = []
        if action.member == "owner_manager":
            manager = None if owner is None else self.manager_of(conn, owner)
            if manager is None:
                left.append("the owner has no active manager")
            else:
                chosen.append(manager)
        elif action.member is not None:
            value = values.get(action.member)
            row = None if value is None else conn.execute(select(u.c.id, u.c.name).where(
                u.c.id == value, u.c.active.is_(True))).first()
            if row is None:
                left.append(f"{action.member} holds no active user")
            else:
                chosen.append(_User(row.id, row.name))
        if action.users:
            rows = conn.execute(select(u.c.id, u.c.name).where(
                u.c.name.in_(action.users), u.c.active.is_(True)).order_by(u.c.id)).all()
            found = {r.name: _User(r.id, r.name) for r in rows}
            for name in action.users:
                if name in found:
                    chosen.append(found[name])
                else:
                    left.append(f"no active user {name}")
        ids: list[int] = []
        names: list[str] = []
        for user in chosen:
            if user.id == owner:
                left.append(f"{user.name} owns the record")
            elif user.id not in ids:
                ids.append(user.id)
                names.append(user.name)
        return ids, {"kind": "team", "access": action.access, "users": names,
                     "left_out": left}

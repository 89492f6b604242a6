"""Approvals (`approvals:` of a flow; engine/metadata/approvals.py): submitting, deciding,
delegating, escalating and locking, all through the write pipeline.

- A record is submitted when its field enters the rule's `submit` option (create or
  update). In the same transaction a crm_approval row starts at the first step whose `when`
  holds; each approver of that step gets a crm_approval_task (their delegate's, when they
  are away) and an in-app notice. With no step applying, the record goes straight to the
  `approved` option.
- While an approval is pending (and after it, with `lock: [pending, approved]`), the
  flows hook refuses any other change of the record with a 409 naming the approval —
  except the write that submitted it and the approval's own moves.
- `Approvals.decide` approves or rejects one task with a comment, in one unit of work:
  a rejection sends the record back (`previous`: the option it was submitted from); an
  approval settles the step (`any`: the first; `all`: the last of its tasks) and starts the
  next step that applies, or moves the record to `approved`. Only the task's approver (or an
  administrator) decides; deciding needs no edit right on the record.
- A step with `escalate_after` schedules a timer per task; if the task is still pending when
  it fires, it goes to the approver's own manager (the administrators at the top).
- Every submission, decision and escalation is an automation run of the record ("Why did
  this change?") and the task rows keep who decided, when and why: the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, func, insert, select, update

from engine.fieldtypes import Regarding
from engine.messages import LabelMessage, msg
from engine.metadata.approvals import ApprovalRule, Approver, Step
from engine.metadata.flows import Flow
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound
from engine.runtime.flows.assignment import People
from engine.runtime.flows.runs import Run, RunWriter
from engine.runtime.flows.timers import Timer, register, schedule
from engine.runtime.records.computed import RecordContext
from engine.runtime.records.regarding import titles
from engine.runtime.records.unit import RecordChange, UnitOfWork
from engine.runtime.schema.tables import (
    APPROVAL_TABLE,
    APPROVAL_TASK_TABLE,
    AUTOMATION_RUN_TABLE,
    DELEGATION_TABLE,
    NOTIFICATION_TABLE,
)

if TYPE_CHECKING:
    from engine.runtime.records import Records

TIMER_KIND = "approval"
MAX_COMMENT = 2000
MAX_DELEGATION_DAYS = 366


class Approvals:
    """The approvals of a records service's flows (owned by its flows hook)."""

    def __init__(self, records: Records, people: People) -> None:
        self.records = records
        self.people = people
        by_entity: dict[str, list[tuple[Flow, ApprovalRule]]] = {}
        for flow in records.model.flows:
            for rule in flow.approvals:
                by_entity.setdefault(flow.entity, []).append((flow, rule))
        self.by_entity = {e: tuple(v) for e, v in by_entity.items()}
        self.line_parents: dict[str, list[tuple[str, str]]] = {}
        """child entity → (parent entity, the child's reference to it) for the line grids of
        entities with approvals: a locked quote's lines are locked with it."""
        for entity in self.by_entity:
            grid = records.model.form(entity).lines if records.model.has_entity(entity) \
                else None
            if grid is not None:
                self.line_parents.setdefault(grid.entity, []).append((entity, grid.via))
        schema = records.schema
        self.approvals = schema.table(APPROVAL_TABLE)
        self.tasks = schema.table(APPROVAL_TASK_TABLE)
        self.delegations = schema.table(DELEGATION_TABLE)
        self.notifications = schema.table(NOTIFICATION_TABLE)
        self.runs = RunWriter(schema.table(AUTOMATION_RUN_TABLE))
        self._moving: WeakKeyDictionary[UnitOfWork, set[tuple[str, int]]] = \
            WeakKeyDictionary()
        """Per unit, the records an approval is moving (or was submitted) in it: exempt
        from the lock."""
        self._dry_runs: WeakKeyDictionary[UnitOfWork, list[Run]] = WeakKeyDictionary()
        """Per dry-run unit, the runs written in it (its report shows them)."""

    def today(self) -> date:
        """Today in the organisation's time zone, by the records service's clock."""
        return self.records.clock().astimezone(self.records.model.settings.zone).date()

    def applies(self, entity: str) -> bool:
        return entity in self.by_entity or entity in self.line_parents

    @property
    def entities(self) -> set[str]:
        """Every entity whose changes the approvals look at."""
        return set(self.by_entity) | set(self.line_parents)

    def rule(self, flow_name: str, name: str) -> tuple[Flow, ApprovalRule] | None:
        for flow in self.records.model.flows:
            if flow.name == flow_name:
                found = next((r for r in flow.approvals if r.name == name), None)
                return None if found is None else (flow, found)
        return None

    # -- inside a write (called by the flows hook for each change of an entity with rules) --

    def on_change(self, unit: UnitOfWork, change: RecordChange, values: Any,
                  ctx: RecordContext) -> None:
        self._check_lines(unit, change)
        rules = self.by_entity.get(change.entity, ())
        if not rules:
            return
        key = (change.entity, change.record_id)
        exempt = key in self._moving.get(unit, set())
        if change.action in ("update", "delete") and not exempt:
            self._check_lock(unit.conn, rules, change)
        if change.action == "delete":
            self._cancel_pending(unit, change)
            return
        for flow, rule in rules:
            if rule.field not in change.changed and change.action != "create":
                continue
            new = values.get(rule.field)
            old = None if change.before is None else change.before.get(rule.field)
            entered = change.action == "create" or old != new
            if new == rule.approved and entered and not exempt and unit.actor is not SYSTEM:
                raise Invalid(
                    msg("%(entity)s %(id)s is approved only through its approval "
                        "(%(approval)s): set %(field)s to %(submit)s to send it for approval",
                        entity=change.entity, id=change.record_id,
                        approval=LabelMessage(rule.label), field=rule.field,
                        submit=rule.submit),
                    {rule.field: msg("%(approved)s is given by the approvers: choose "
                                     "%(submit)s to send it for approval",
                                     approved=rule.approved, submit=rule.submit)})
            if new == rule.submit and entered:
                self._submit(unit, flow, rule, change, values, ctx, old)

    def _check_lines(self, unit: UnitOfWork, change: RecordChange) -> None:
        """A line added to, changed in or taken from a locked parent is refused with it."""
        for parent, via in self.line_parents.get(change.entity, ()):
            ids = {v.get(via) for v in (change.before, change.after) if v is not None}
            for parent_id in ids - {None}:
                if (parent, parent_id) in self._moving.get(unit, set()):
                    continue
                self._check_lock(unit.conn, self.by_entity[parent], RecordChange(
                    parent, int(str(parent_id)), "update", None, None, (), None, unit.now))

    def _check_lock(self, conn: Connection, rules: tuple[tuple[Flow, ApprovalRule], ...],
                    change: RecordChange) -> None:
        a = self.approvals
        row = conn.execute(
            select(a.c.flow, a.c.name, a.c.status, a.c.step)
            .where(a.c.entity == change.entity, a.c.record_id == change.record_id,
                   a.c.status.in_(("pending", "approved")))
            .order_by(a.c.id.desc()).limit(1)).first()
        if row is None:
            return
        rule = next((r for f, r in rules if f.name == row.flow and r.name == row.name), None)
        if rule is None or row.status not in rule.lock:
            return
        if row.status == "pending":
            raise Conflict(msg("%(entity)s %(id)s is waiting for approval (%(approval)s, "
                               "step %(step)s) and cannot be changed until it is decided",
                               entity=change.entity, id=change.record_id,
                               approval=LabelMessage(rule.label), step=row.step))
        raise Conflict(msg("%(entity)s %(id)s was approved (%(approval)s) and is locked",
                           entity=change.entity, id=change.record_id,
                           approval=LabelMessage(rule.label)))

    def _cancel_pending(self, unit: UnitOfWork, change: RecordChange) -> None:
        """A record deleted by an administrator: its pending approval ends."""
        a, t = self.approvals, self.tasks
        ids = [i for (i,) in unit.conn.execute(select(a.c.id).where(
            a.c.entity == change.entity, a.c.record_id == change.record_id,
            a.c.status == "pending"))]
        if ids:
            unit.conn.execute(update(a).where(a.c.id.in_(ids))
                              .values(status="cancelled", decided_at=unit.now))
            unit.conn.execute(update(t).where(t.c.approval_id.in_(ids),
                                              t.c.status == "pending")
                              .values(status="closed", decided_at=unit.now))

    def _submit(self, unit: UnitOfWork, flow: Flow, rule: ApprovalRule, change: RecordChange,
                values: Any, ctx: RecordContext, previous: Any) -> None:
        conn = unit.conn
        a = self.approvals
        pending = conn.execute(select(a.c.id).where(
            a.c.entity == change.entity, a.c.record_id == change.record_id,
            a.c.status == "pending")).first()
        if pending is not None:
            return  # already waiting (submitted again within the same write)
        self._moving.setdefault(unit, set()).add((change.entity, change.record_id))
        approval_id = int(conn.execute(insert(a).returning(a.c.id).values(
            flow=flow.name, name=rule.name, entity=change.entity,
            record_id=change.record_id, status="pending", step=None,
            previous=None if previous is None else str(previous),
            submitted_by=unit.actor.user_id, submitted_at=unit.now)).scalar_one())
        self._run(unit, flow, rule, change.entity, change.record_id, "submitted",
                  f"{rule.field}: {previous} → {rule.submit}")
        self._advance(unit, flow, rule, approval_id, change.entity, change.record_id, None,
                      ctx)

    # -- steps ----------------------------------------------------------------------------

    def _advance(self, unit: UnitOfWork, flow: Flow, rule: ApprovalRule, approval_id: int,
                 entity: str, record_id: int, after: str | None,
                 ctx: RecordContext | None = None) -> None:
        """Start the first step after `after` (None: from the start) whose `when` holds;
        with none left, the approval is approved and the record moves on."""
        names = [s.name for s in rule.steps]
        start = 0 if after is None else names.index(after) + 1
        if ctx is None:
            ctx = self._context(unit.conn, entity, record_id)
        for step in rule.steps[start:]:
            if step.when is not None and not step.when.holds(ctx):
                self._run(unit, flow, rule, entity, record_id, "skipped",
                          f"step {step.name}: when is not true: {step.when.source.strip()}",
                          result="skipped")
                continue
            unit.conn.execute(update(self.approvals).where(self.approvals.c.id == approval_id)
                              .values(step=step.name))
            self._open_tasks(unit, flow, rule, step, approval_id, entity, record_id)
            return
        self._finish(unit, flow, rule, approval_id, entity, record_id, approved=True)

    def _open_tasks(self, unit: UnitOfWork, flow: Flow, rule: ApprovalRule, step: Step,
                    approval_id: int, entity: str, record_id: int) -> None:
        """A task for each approver of the step; an approver entry that finds no active user
        (nobody holds the role, the department has no manager) is stood in for by the
        administrators, so a step never waits for nobody — and never silently for fewer.
        Four eyes: whoever submitted the record does not approve it (an entry that finds
        only them is stood in for too; only an administrator alone at the top is left to
        approve what they submitted themselves)."""
        submitter = unit.conn.execute(select(self.approvals.c.submitted_by).where(
            self.approvals.c.id == approval_id)).scalar()
        users: list[int] = []
        missing: list[str] = []
        for approver in step.approvers:
            resolved = self.resolve(unit.conn, (approver,), entity, record_id)
            found = [u for u in resolved if u != submitter]
            if not found:
                missing.append(approver.described() + (" but the submitter" if resolved
                                                        else ""))
                admins = self.administrators(unit.conn)
                found = [u for u in admins if u != submitter] or admins
            users += found
        users = list(dict.fromkeys(users))
        assigned: list[int] = []
        zone = self.records.model.settings.zone
        for user in users:
            delegate = self.delegate_of(unit.conn, user, unit.now.astimezone(zone).date())
            self._task(unit, flow, rule, step, approval_id, entity, record_id,
                       delegate or user, user if delegate else None)
            assigned.append(delegate or user)
        reason = ""
        if missing:
            reason = f"; no active approver for {', '.join(missing)}: sent to the " \
                     "administrators"
            for admin in self.administrators(unit.conn):
                self._notify(unit, admin, entity, record_id, {
                    "en": f"{rule.label.get('en')} ({step.label.get('en')}) found no active "
                          f"approver for {', '.join(missing)}; it waits for you",
                    "zh": f"{rule.label.get('zh')} ({step.label.get('zh')}) 未找到有效审批人"
                          f" ({', '.join(missing)}), 已转给管理员"})
        self._run(unit, flow, rule, entity, record_id, "step",
                  f"step {step.name} ({step.mode}) waits for users {assigned}{reason}")

    def _task(self, unit: UnitOfWork, flow: Flow, rule: ApprovalRule, step: Step,
              approval_id: int, entity: str, record_id: int, user: int,
              for_user: int | None, since: datetime | None = None) -> int:
        """One approver's task, its notice, and its escalation timer (counted from `since`,
        the escalation that made it, else now)."""
        t = self.tasks
        task_id = int(unit.conn.execute(insert(t).returning(t.c.id).values(
            approval_id=approval_id, step=step.name, user_id=user, for_user=for_user,
            status="pending", created_at=unit.now)).scalar_one())
        self._notify(unit, user, entity, record_id,
                     {"en": f"Waiting for your approval: {rule.label.get('en')} "
                            f"({step.label.get('en')})",
                      "zh": f"待您审批: {rule.label.get('zh')} ({step.label.get('zh')})"})
        if step.escalate_after is not None:
            schedule(unit.conn, f"approval-task:{task_id}",
                     max(unit.now, since or unit.now) + step.escalate_after,
                     kind=TIMER_KIND, entity=entity, record_id=record_id,
                     data={"task": task_id})
        return task_id

    def _finish(self, unit: UnitOfWork, flow: Flow, rule: ApprovalRule, approval_id: int,
                entity: str, record_id: int, *, approved: bool,
                previous: str | None = None) -> None:
        a, t = self.approvals, self.tasks
        status = "approved" if approved else "rejected"
        unit.conn.execute(update(a).where(a.c.id == approval_id)
                          .values(status=status, decided_at=unit.now))
        unit.conn.execute(update(t).where(t.c.approval_id == approval_id,
                                          t.c.status == "pending")
                          .values(status="closed", decided_at=unit.now))
        target = rule.approved if approved else (rule.rejected or previous
                                                 or self._starting_option(entity, rule))
        self._move(unit, entity, record_id, rule.field, target)
        self._run(unit, flow, rule, entity, record_id, status,
                  f"{rule.field} → {target}", diff={rule.field: [rule.submit, target]})
        submitter = unit.conn.execute(select(a.c.submitted_by).where(a.c.id == approval_id)
                                      ).scalar()
        if submitter is not None:
            self._notify(unit, submitter, entity, record_id,
                         {"en": f"{rule.label.get('en')}: "
                                f"{'approved' if approved else 'rejected'}",
                          "zh": f"{rule.label.get('zh')}: "
                                f"{'已批准' if approved else '已驳回'}"})

    def _move(self, unit: UnitOfWork, entity: str, record_id: int, field: str,
              target: str | None) -> None:
        c = self.records.compiled(entity)
        version = unit.conn.execute(select(c.table.c.version).where(
            c.table.c.id == record_id, c.table.c.deleted_at.is_(None))).scalar()
        if version is None:
            return
        with self.moving(unit, entity, record_id):
            self.records.update(_approval_actor(unit.actor), entity, record_id,
                                {field: target}, version, unit=unit)

    def _starting_option(self, entity: str, rule: ApprovalRule) -> str:
        """Where a record created already submitted goes back to: the field's default
        option, else its first one that is not the submit option."""
        f = self.records.model.entity(entity).field(rule.field)
        if isinstance(f.default, str) and f.default in f.options and f.default != rule.submit:
            return f.default
        return next(o for o in f.options if o != rule.submit)

    @contextmanager
    def moving(self, unit: UnitOfWork, entity: str, record_id: int) -> Iterator[None]:
        """Within the block, `unit` may change the record whatever its lock."""
        exempt = self._moving.setdefault(unit, set())
        added = (entity, record_id) not in exempt
        exempt.add((entity, record_id))
        try:
            yield
        finally:
            if added:
                exempt.discard((entity, record_id))

    # -- deciding -----------------------------------------------------------------------

    def decide(self, actor: Actor, task_id: int, *, approve: bool,
               comment: str | None = None) -> dict[str, Any]:
        """Approve or reject one pending task of `actor` (an administrator may decide any
        task); the record moves on in the same unit of work."""
        comment = (comment or "").strip() or None
        if comment is not None and len(comment) > MAX_COMMENT:
            raise BadRequest(msg("the comment is longer than %(max)s characters",
                                 max=MAX_COMMENT), {"comment": msg(
                                     "at most %(max)s characters", max=MAX_COMMENT)})
        if not approve and comment is None:
            raise BadRequest(msg("a rejection needs a comment saying why"),
                             {"comment": msg("required to reject")})
        with self.records.unit(actor) as unit:
            conn = unit.conn
            t, a = self.tasks, self.approvals
            task = conn.execute(select(t).where(t.c.id == task_id).with_for_update()
                                ).mappings().first()
            if task is None or not (task["user_id"] == actor.user_id
                                    or self._is_admin(actor)):
                raise NotFound(msg("no approval task %(id)s of yours", id=task_id))
            approval = conn.execute(select(a).where(a.c.id == task["approval_id"])
                                    .with_for_update()).mappings().one()
            if task["status"] != "pending" or approval["status"] != "pending":
                raise Conflict(msg("approval task %(id)s was already settled (%(status)s)",
                                   id=task_id, status=task["status"]))
            if approval["submitted_by"] == actor.user_id and task["user_id"] != actor.user_id:
                # four eyes: an administrator does not decide another's task on what they
                # submitted themselves
                raise Forbidden(msg("you submitted %(entity)s %(id)s: its approvers decide "
                                    "it", entity=approval["entity"],
                                    id=approval["record_id"]))
            found = self.rule(approval["flow"], approval["name"])
            if found is None:
                raise Conflict(msg("the approval %(name)s is no longer configured",
                                   name=approval["name"]))
            flow, rule = found
            step = rule.step(task["step"])
            conn.execute(update(t).where(t.c.id == task_id).values(
                status="approved" if approve else "rejected", comment=comment,
                decided_at=unit.now, decided_by=actor.user_id))
            entity, record_id = approval["entity"], approval["record_id"]
            self._run(unit, flow, rule, entity, record_id,
                      "approved" if approve else "rejected",
                      f"step {task['step']}" + (f": {comment}" if comment else ""),
                      result="approved" if approve else "rejected", event="decision")
            if not approve:
                self._finish(unit, flow, rule, approval["id"], entity, record_id,
                             approved=False, previous=approval["previous"])
            elif step is None or step.mode == "any" or not self._still_waiting(
                    conn, approval["id"], task["step"]):
                conn.execute(update(t).where(t.c.approval_id == approval["id"],
                                             t.c.step == task["step"],
                                             t.c.status == "pending")
                             .values(status="closed", decided_at=unit.now))
                self._advance(unit, flow, rule, approval["id"], entity, record_id,
                              task["step"] if step is not None else rule.steps[-1].name)
            status = conn.execute(select(a.c.status, a.c.step).where(
                a.c.id == approval["id"])).one()
        return {"task": task_id, "decision": "approved" if approve else "rejected",
                "approval": {"id": approval["id"], "status": status.status,
                             "step": status.step},
                "entity": entity, "record_id": record_id}

    def _still_waiting(self, conn: Connection, approval_id: int, step: str) -> bool:
        t = self.tasks
        return conn.execute(select(func.count()).select_from(t).where(
            t.c.approval_id == approval_id, t.c.step == step, t.c.status == "pending")
        ).scalar_one() > 0

    # -- escalation (the worker fires the timers) -------------------------------------------

    def escalate(self, unit: UnitOfWork, timer: Timer) -> None:
        t, a = self.tasks, self.approvals
        task_id = timer.data.get("task")
        task = unit.conn.execute(select(t).where(t.c.id == task_id).with_for_update()
                                 ).mappings().first()
        if task is None or task["status"] != "pending":
            return  # decided in time
        approval = unit.conn.execute(select(a).where(a.c.id == task["approval_id"])
                                     ).mappings().one()
        found = self.rule(approval["flow"], approval["name"])
        if found is None or approval["status"] != "pending":
            return
        flow, rule = found
        step = rule.step(task["step"])
        if step is None:
            return
        above = self.manager_above(unit.conn, task["user_id"])
        if above == approval["submitted_by"]:
            above = None  # four eyes: not up to who submitted it
        users = [above] if above is not None else [
            u for u in self.administrators(unit.conn)
            if u not in (task["user_id"], approval["submitted_by"])]
        if not users:  # an administrator at the top: nobody above to go to
            self._run(unit, flow, rule, approval["entity"], approval["record_id"],
                      "escalation", f"step {step.name}: task {task_id} not decided within "
                      f"{step.escalate_after}; nobody above user {task['user_id']}: it stays",
                      result="skipped", event="timer")
            return
        unit.conn.execute(update(t).where(t.c.id == task_id)
                          .values(status="escalated", decided_at=unit.now))
        for user in users:
            self._task(unit, flow, rule, step, approval["id"], approval["entity"],
                       approval["record_id"], user, task["for_user"] or task["user_id"],
                       since=timer.due_at)
        self._run(unit, flow, rule, approval["entity"], approval["record_id"], "escalated",
                  f"step {step.name}: task {task_id} of user {task['user_id']} not decided "
                  f"within {step.escalate_after}; now waiting for users {users}",
                  event="timer")

    # -- who approves -----------------------------------------------------------------------

    def resolve(self, conn: Connection, approvers: tuple[Approver, ...], entity: str,
                record_id: int) -> list[int]:
        """The active users a step's approvers name, in order, each once."""
        users = self.records.users
        found: list[int] = []
        record: dict[str, Any] | None = None
        for approver in approvers:
            if approver.kind == "user":
                found += [i for (i,) in conn.execute(select(users.c.id).where(
                    users.c.name == approver.value, users.c.active.is_(True)))]
            elif approver.kind == "role":
                found += [r.id for r in conn.execute(
                    select(users.c.id, users.c.roles).where(users.c.active.is_(True))
                    .order_by(users.c.id)) if approver.value in r.roles.split(",")]
            elif approver.kind == "manager":
                if record is None:
                    c = self.records.compiled(entity)
                    row = conn.execute(select(c.table).where(c.table.c.id == record_id)
                                       ).mappings().first()
                    record = dict(row) if row is not None else {}
                column = "owner_id" if approver.value == "owner" else approver.value
                user = record.get(column)
                manager = None if user is None else self.manager_above(conn, user)
                if manager is not None:
                    found.append(manager)
            elif approver.kind == "department_manager":
                manager = self._department_manager(conn, approver.value)
                if manager is not None:
                    found.append(manager)
        return list(dict.fromkeys(found))

    def manager_above(self, conn: Connection, user_id: int) -> int | None:
        """The active manager of the user's department — of the department above when the
        user manages it (or it has no active manager), up to the top: the flows' one
        lookup (engine/runtime/flows/assignment.py)."""
        found = self.people.manager_of(conn, user_id)
        return None if found is None else found.id

    def _department_manager(self, conn: Connection, name: str) -> int | None:
        if "department" not in self.records.schema.metadata.tables:
            return None
        d = self.records.schema.table("department")
        manager = conn.execute(select(d.c.manager).where(
            d.c.name == name, d.c.deleted_at.is_(None)).order_by(d.c.id).limit(1)).scalar()
        return int(manager) if manager is not None and self._active(conn, manager) else None

    def _active(self, conn: Connection, user_id: int) -> bool:
        users = self.records.users
        return bool(conn.execute(select(users.c.active).where(users.c.id == user_id)
                                 ).scalar())

    def administrators(self, conn: Connection) -> list[int]:
        users = self.records.users
        admin_roles = {r.name for r in self.records.model.roles.roles if r.admin} | {"admin"}
        return [r.id for r in conn.execute(select(users.c.id, users.c.roles).where(
            users.c.active.is_(True)).order_by(users.c.id))
            if admin_roles & set(r.roles.split(","))]

    def _is_admin(self, actor: Actor) -> bool:
        admin_roles = {r.name for r in self.records.model.roles.roles if r.admin} | {"admin"}
        return bool(admin_roles & set(actor.roles))

    # -- delegation -------------------------------------------------------------------------

    def delegate_of(self, conn: Connection, user_id: int, day: date) -> int | None:
        """Who decides for `user_id` on `day`: an active delegate, or None."""
        g = self.delegations
        delegate = conn.execute(select(g.c.delegate_id).where(
            g.c.user_id == user_id, g.c.starts_on <= day, g.c.ends_on >= day)
            .order_by(g.c.id.desc()).limit(1)).scalar()
        if delegate is None or delegate == user_id or not self._active(conn, delegate):
            return None
        return int(delegate)

    def set_delegation(self, actor: Actor, delegate: str | None, starts_on: date | None,
                       ends_on: date | None) -> dict[str, Any] | None:
        """Replace `actor`'s delegation (None: no delegation from now on)."""
        if actor.user_id is None:
            raise BadRequest(msg("only a user delegates approvals"))
        users = self.records.users
        with self.records.unit(actor) as unit:
            conn = unit.conn
            g = self.delegations
            today = unit.now.astimezone(self.records.model.settings.zone).date()
            conn.execute(update(g).where(g.c.user_id == actor.user_id, g.c.ends_on >= today)
                         .values(ends_on=today - timedelta(days=1)))
            if delegate is None:
                return None
            row = conn.execute(select(users.c.id).where(users.c.name == delegate,
                                                        users.c.active.is_(True))).first()
            errors: dict[str, str] = {}
            if row is None:
                errors["delegate"] = msg("no active user %(name)s", name=delegate)
            elif row.id == actor.user_id:
                errors["delegate"] = msg("choose someone else")
            start = starts_on or today
            end = ends_on
            if end is None:
                errors["ends_on"] = msg("required")
            elif end < start:
                errors["ends_on"] = msg("must be on or after %(start)s", start=start.isoformat())
            elif (end - start).days > MAX_DELEGATION_DAYS:
                errors["ends_on"] = msg("at most %(days)s days after the start",
                                        days=MAX_DELEGATION_DAYS)
            if errors or row is None or end is None:
                raise BadRequest(msg("the delegation is not valid"), errors)
            conn.execute(insert(g).values(user_id=actor.user_id, delegate_id=row.id,
                                          starts_on=start, ends_on=end, created_at=unit.now))
            return {"delegate": delegate, "starts_on": start.isoformat(),
                    "ends_on": end.isoformat()}

    def delegation(self, actor: Actor, today: date) -> dict[str, Any] | None:
        g, users = self.delegations, self.records.users
        with self.records.reading() as conn:
            row = conn.execute(select(users.c.name, g.c.starts_on, g.c.ends_on)
                               .join(users, users.c.id == g.c.delegate_id)
                               .where(g.c.user_id == actor.user_id, g.c.ends_on >= today)
                               .order_by(g.c.id.desc()).limit(1)).first()
        if row is None:
            return None
        return {"delegate": row.name, "starts_on": row.starts_on.isoformat(),
                "ends_on": row.ends_on.isoformat()}

    # -- reading ----------------------------------------------------------------------------

    def count(self, actor: Actor) -> int:
        """How many tasks wait for `actor` (the header count)."""
        if actor.user_id is None:
            return 0
        t = self.tasks
        with self.records.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(t).where(
                t.c.user_id == actor.user_id, t.c.status == "pending")).scalar_one())

    def inbox(self, actor: Actor, *, limit: int = 200) -> list[dict[str, Any]]:
        """`actor`'s pending tasks, oldest first, with what they may see of each record."""
        t, a, users = self.tasks, self.approvals, self.records.users
        submitter = users.alias("submitter")
        with self.records.reading() as conn:
            rows = list(conn.execute(
                select(t.c.id, t.c.step, t.c.for_user, t.c.created_at, a.c.flow, a.c.name,
                       a.c.entity, a.c.record_id, a.c.submitted_at,
                       submitter.c.name.label("submitted_by"))
                .join(a, a.c.id == t.c.approval_id)
                .outerjoin(submitter, submitter.c.id == a.c.submitted_by)
                .where(t.c.user_id == actor.user_id, t.c.status == "pending")
                .order_by(t.c.id).limit(limit)).mappings())
        return self._described(actor, [dict(r) for r in rows])

    def of_record(self, actor: Actor, entity: str, record_id: int) -> list[dict[str, Any]]:
        """The approvals of a record the actor may read, newest first, with their tasks."""
        self.records.get(actor, entity, record_id)  # 404 unless readable
        a, t, users = self.approvals, self.tasks, self.records.users
        out: list[dict[str, Any]] = []
        with self.records.reading() as conn:
            for r in conn.execute(select(a).where(a.c.entity == entity,
                                                  a.c.record_id == record_id)
                                  .order_by(a.c.id.desc()).limit(50)).mappings():
                found = self.rule(r["flow"], r["name"])
                tasks = [dict(x) for x in conn.execute(
                    select(t.c.id, t.c.step, t.c.status, t.c.comment, t.c.decided_at,
                           users.c.name.label("user"))
                    .join(users, users.c.id == t.c.user_id)
                    .where(t.c.approval_id == r["id"]).order_by(t.c.id)).mappings()]
                out.append({"id": r["id"], "flow": r["flow"], "name": r["name"],
                            "label": None if found is None else found[1].label.as_dict(),
                            "status": r["status"], "step": r["step"],
                            "submitted_at": r["submitted_at"], "decided_at": r["decided_at"],
                            "tasks": tasks})
        return out

    def _described(self, actor: Actor, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tasks with their approval's labels and the record's title as `actor` may read
        it (None: not readable — no title, no link)."""
        with self.records.reading() as conn:
            found = titles(self.records, actor, conn,
                           [Regarding.of(r["entity"], r["record_id"]) for r in rows])
        out = []
        for row in rows:
            rule = self.rule(row["flow"], row["name"])
            step = None if rule is None else rule[1].step(row["step"])
            title = found.get(Regarding.of(row["entity"], row["record_id"]))
            out.append({**row, "title": title, "readable": title is not None,
                        "label": None if rule is None else rule[1].label.as_dict(),
                        "step_label": None if step is None else step.label.as_dict()})
        return out

    # -- helpers ------------------------------------------------------------------------------

    def _context(self, conn: Connection, entity: str, record_id: int) -> RecordContext:
        c = self.records.compiled(entity)
        row = conn.execute(select(c.table).where(c.table.c.id == record_id)).mappings().one()
        return self.records.record_context(conn, c, dict(row))

    def _notify(self, unit: UnitOfWork, user: int, entity: str, record_id: int,
                message: dict[str, str]) -> None:
        unit.conn.execute(insert(self.notifications).values(
            user_id=user, entity=entity, record_id=record_id, message=message,
            created_at=unit.now))

    def _run(self, unit: UnitOfWork, flow: Flow, rule: ApprovalRule, entity: str,
             record_id: int, what: str, reason: str, *, result: str = "fired",
             event: str = "approval", diff: dict[str, list[Any]] | None = None) -> None:
        run = Run(flow.name, f"approvals.{rule.name}", flow.config_hash, entity, record_id,
                  event, result, f"{what}: {reason}", diff=diff or {}, at=unit.now,
                  by_user=unit.actor.user_id)
        self.runs.now(unit.conn, run)
        if unit.dry_run:
            self._dry_runs.setdefault(unit, []).append(run)

    def runs_in(self, unit: UnitOfWork) -> list[Run]:
        """The runs the approvals wrote in dry-run unit `unit` so far."""
        return list(self._dry_runs.get(unit, ()))


def _approval_actor(decider: Actor) -> Actor:
    """Who an approval's own move of the record writes as: the engine's rights (approving is
    not editing), the decider's name on the change."""
    return Actor(user_id=decider.user_id, name="approval", roles=("admin",),
                 department_id=decider.department_id)


def _fire(unit: UnitOfWork, timer: Timer) -> None:
    """The worker's handler of approval escalation timers."""
    from engine.runtime.flows.hook import HOOK_NAME, FlowHook
    for name, hook in unit.hooks.before_commit:
        if name == HOOK_NAME and isinstance(hook, FlowHook):
            hook.approvals.escalate(unit, timer)
            return
    raise LookupError("this records service runs no flows: the timer cannot fire")


register(TIMER_KIND, _fire)

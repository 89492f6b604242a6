"""`crm flow test` and the flows admin page (`/admin/flows`): run a change through the whole
write pipeline — the flow's stage rules, triggers and approvals included — inside
`Records.dry_run`, report which rules fired or were skipped and why, what would change and
what would be queued (notifications, emails, webhooks, timers, approvals), and roll
everything back: nothing is written. Both callers share `flow_test`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from engine.messages import msg
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import BadRequest, NotFound, RecordError
from engine.runtime.flows.hook import FlowHook, install_flows
from engine.runtime.flows.runs import Run
from engine.runtime.records.unit import RecordChange, UnitOfWork
from engine.runtime.schema.tables import (
    APPROVAL_TABLE,
    APPROVAL_TASK_TABLE,
    NOTIFICATION_TABLE,
    OUTBOX_TABLE,
    TIMER_TABLE,
)
from engine.runtime.values import to_json

QUEUES = (NOTIFICATION_TABLE, OUTBOX_TABLE, TIMER_TABLE, APPROVAL_TABLE, APPROVAL_TASK_TABLE)
"""The engine tables a write queues work in: what a dry run reports having queued."""


@dataclass
class Queued:
    """What the change would leave queued, read inside the dry run before it is rolled
    back: each a plain dict (user ids, with their names in `users`)."""

    notifications: list[dict[str, Any]] = field(default_factory=list)
    """{user, entity, record_id, message: {en, zh}}"""
    emails: list[dict[str, Any]] = field(default_factory=list)
    """{to: [addresses], subject}"""
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    """{url, event}"""
    timers: list[dict[str, Any]] = field(default_factory=list)
    """{kind, entity, record_id, due_at, data}"""
    approvals: list[dict[str, Any]] = field(default_factory=list)
    """{flow, name, entity, record_id, status, step, approvers: [user ids]}"""
    users: dict[int, str] = field(default_factory=dict)
    """user id → name, for every user named above and in the runs' actions."""

    def lines(self) -> list[str]:
        out: list[str] = []
        for a in self.approvals:
            approvers = ", ".join(self.name(u) for u in a["approvers"]) or "nobody"
            out.append(f"approval {a['flow']}.{a['name']} on {a['entity']} {a['record_id']}: "
                       f"{a['status']}" + (f", step {a['step']} waits for {approvers}"
                                           if a["step"] else ""))
        for n in self.notifications:
            out.append(f"notify   {self.name(n['user'])}: {(n['message'] or {}).get('en')}")
        for e in self.emails:
            out.append(f"email    {', '.join(e['to'])}: {e['subject']}")
        for w in self.webhooks:
            out.append(f"webhook  {w['url']} ({w['event']})")
        for t in self.timers:
            out.append(f"timer    {t['kind']} on {t['entity']} {t['record_id']} due "
                       f"{to_json(t['due_at'])}")
        return out

    def name(self, user: Any) -> str:
        return self.users.get(user, f"user {user}") if isinstance(user, int) else str(user)

if TYPE_CHECKING:
    from engine.runtime.records import Records


@dataclass
class FlowTest:
    """What a dry run of a change would do."""

    runs: list[Run] = field(default_factory=list)
    changes: list[RecordChange] = field(default_factory=list)
    refused: RecordError | None = None
    queued: Queued = field(default_factory=Queued)

    def lines(self) -> list[str]:
        """The report, one line each."""
        out: list[str] = []
        for run in self.runs:
            reason = f": {run.reason}" if run.reason else ""
            out.append(f"{run.result:8} {run.flow}.{run.rule} on {run.entity} "
                       f"{run.record_id} ({run.event}){reason}")
            for name, (old, new) in run.diff.items():
                out.append(f"           set {name}: {old!r} -> {new!r}")
            for action in run.actions:
                if action.get("kind") != "set":
                    out.append(f"           {_described(action)}")
        for change in self.changes:
            fields = ", ".join(f"{f}: {to_json(o)!r} -> {to_json(n)!r}"
                               for f, o, n in change.changes)
            out.append(f"change   {change.described()}" + (f" {fields}" if fields else ""))
        out.extend(self.queued.lines())
        if self.refused is not None:
            out.append(f"refused  {self.refused.message}")
            out.extend(f"           {k}: {v}" for k, v in self.refused.fields.items())
        out.append("dry run: nothing was written")
        return out


def _described(action: Mapping[str, Any]) -> str:
    kind = action.get("kind")
    if kind == "create":
        return f"create {action.get('entity')} {action.get('id') or ''}".rstrip()
    if kind == "notify":
        return f"notify user {action.get('to')}"
    if kind == "email":
        return f"email {', '.join(action.get('to') or [])}: {action.get('subject')}"
    if kind == "webhook":
        return f"webhook {action.get('url')}"
    if kind == "assign":
        return f"assign to {action.get('to') or '(kept)'}: {action.get('why')}"
    if kind == "team":
        added = ", ".join(action.get("users") or []) or "nobody"
        left = "; ".join(action.get("left_out") or [])
        return f"team +{added} ({action.get('access')})" + (f"; {left}" if left else "")
    return str(kind)


def flow_test(records: Records, flow_name: str, entity: str, *, record_id: int | None = None,
              record: Mapping[str, Any] | None = None, changes: Mapping[str, Any] | None = None,
              actor: Actor = SYSTEM) -> FlowTest:
    """Dry-run a change of `entity` for flow `flow_name`: with `record_id`, update that
    record with `changes`; with `record`, create it (with `changes` on top)."""
    flow = next((f for f in records.model.flows if f.name == flow_name), None)
    if flow is None:
        raise NotFound(msg("no flow %(flow)s", flow=flow_name))
    if flow.entity != entity:
        raise BadRequest(msg("flow %(flow)s is about %(entity)s", flow=flow_name,
                             entity=flow.entity))
    if (record_id is None) == (record is None):
        raise BadRequest(msg("give a record id or a record, not both"))
    if record_id is not None and not changes:
        raise BadRequest(msg("give the change to test (--set)"))
    _known_fields(records, entity, {**(record or {}), **(changes or {})})
    version = None if record_id is None \
        else records.get(actor, entity, record_id)["version"]  # NotFound: not a test
    hook = install_flows(records)
    assert isinstance(hook, FlowHook)  # the flow exists, so the hook does
    held: list[UnitOfWork] = []
    report = FlowTest()

    def work(u: UnitOfWork) -> None:
        held.append(u)
        marks = _marks(records, u.conn)
        if record_id is not None and version is not None:
            records.update(actor, entity, record_id, dict(changes or {}), version, unit=u)
        else:
            records.create(actor, entity, {**(record or {}), **(changes or {})}, unit=u)
        u.settle()  # the hooks now, not at commit: what they queued is read before rollback
        report.queued = _queued(records, u.conn, marks, _runs(hook, u))

    try:
        done = records.dry_run(actor, work)
    except RecordError as exc:
        report.refused = exc
        if held:
            report.runs = _runs(hook, held[0])
            report.changes = list(held[0].changes)
        return report
    report.changes = list(done.changes)
    report.runs = _runs(hook, held[0])
    return report


def _runs(hook: FlowHook, unit: UnitOfWork) -> list[Run]:
    """The rule evaluations of `unit`: the flows' stage rules, triggers and timers in
    order, then the approvals' submissions and steps."""
    return hook.runs_in(unit) + hook.approvals.runs_in(unit)


def _known_fields(records: Records, entity: str, values: Mapping[str, Any]) -> None:
    """Refuse a field the entity does not have before running anything: a mistyped name is
    a bad question (400), not a refusal the dry run reports."""
    model = records.model.entity(entity)
    unknown = sorted(str(k) for k in values if not isinstance(k, str)
                     or not model.has_field(k))
    if unknown:
        raise BadRequest(msg("no field '%(field)s' of %(entity)s", field=unknown[0],
                             entity=entity),
                         {name: msg("unknown field of %(entity)s", entity=entity)
                          for name in unknown})


def _marks(records: Records, conn: Connection) -> dict[str, int]:
    """The highest id of each queue table before the change: what it adds is above."""
    out: dict[str, int] = {}
    for name in QUEUES:
        t = records.schema.table(name)
        out[name] = int(conn.execute(select(func.coalesce(func.max(t.c.id), 0))).scalar_one())
    return out


def _queued(records: Records, conn: Connection, marks: Mapping[str, int],
            runs: list[Run]) -> Queued:
    """What the unit added to the queue tables since `marks`, inside its transaction."""

    def added(name: str) -> list[dict[str, Any]]:
        t = records.schema.table(name)
        rows = conn.execute(select(t).where(t.c.id > marks[name]).order_by(t.c.id))
        return [dict(r) for r in rows.mappings()]

    out = Queued()
    for row in added(NOTIFICATION_TABLE):
        out.notifications.append({"user": row["user_id"], "entity": row["entity"],
                                  "record_id": row["record_id"],
                                  "message": dict(row["message"] or {})})
    for row in added(OUTBOX_TABLE):
        payload = dict(row["payload"] or {})
        if row["kind"] == "email":
            out.emails.append({"to": list(payload.get("to") or []),
                               "subject": payload.get("subject")})
        else:
            out.webhooks.append({"url": payload.get("url"), "event": payload.get("event")})
    for row in added(TIMER_TABLE):
        out.timers.append({"kind": row["kind"], "entity": row["entity"],
                           "record_id": row["record_id"], "due_at": row["due_at"],
                           "data": dict(row["data"] or {})})
    tasks = added(APPROVAL_TASK_TABLE)
    for row in added(APPROVAL_TABLE):
        out.approvals.append({
            "flow": row["flow"], "name": row["name"], "entity": row["entity"],
            "record_id": row["record_id"], "status": row["status"], "step": row["step"],
            "approvers": [t["user_id"] for t in tasks
                          if t["approval_id"] == row["id"] and t["status"] == "pending"]})
    named: set[int] = {n["user"] for n in out.notifications}
    named.update(u for a in out.approvals for u in a["approvers"])
    for run in runs:
        for action in run.actions:
            if isinstance(action.get("to"), int):
                named.add(action["to"])
    if named:
        users = records.users
        out.users = {int(i): str(n) for i, n in conn.execute(
            select(users.c.id, users.c.name).where(users.c.id.in_(sorted(named))))}
    return out

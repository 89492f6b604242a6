"""The before-commit hook that runs flows (config/flows/*.yaml) inside the write.

For each change of a record of a flow's entity — create, update, delete — in the unit of
work, in the same transaction:

1. stage rules: a change of the stage field (or a new record's stage) is checked against
   the allowed transitions, the guards of the stage it enters and the fields required
   there; a refused move fails the whole write with a 422 naming the field, the two stages
   and the rule's message. Each stage entered is written to crm_stage_history;
2. triggers whose event matches (create, update — only when one of `fields` changed —,
   delete, stage) are evaluated: `when` on the record as it will be saved (ISNEW,
   ISCHANGED, PRIORVALUE see this change), then their actions run through the same unit:
   `set` by Records.update, `create` by Records.create, `notify` as a crm_notification row,
   `email` and `webhook` as outbox messages (outbox.py; delivered after commit), `assign`
   by Records.assign (the owner the assignment rules pick: assignment.py) and `team` by
   Records.set_team_member;
3. a stage move runs the actions of leaving the old stage and of entering the new one
   (`stages.on_leave`, `stages.on_enter`), before the triggers, each as a run of its own.

Every evaluation writes a crm_automation_run row (runs.py). Loops: a trigger that already
ran on a record in this unit of work runs again only when its watched fields changed since
it last ran; otherwise the evaluation is written as skipped, with that reason — never a
silent skip. A chain of triggers that keeps changing its watched fields is stopped by the
unit's depth bound (MAX_DEPTH, `hook_chain_too_deep`, naming the chain).

Everything a rule needs is compiled once, when the configuration loads; the hook indexes
the flows by entity, so a write of an entity without flows costs one dictionary look-up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import insert, select

from engine.formula import FormulaError
from engine.metadata.flow_people import AssignAction, TeamAction
from engine.metadata.flows import (
    Action,
    CreateAction,
    EmailAction,
    Flow,
    NotifyAction,
    ScheduleRule,
    SetAction,
    StageRules,
    TimerRule,
    Trigger,
    WebhookAction,
)
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.flows.approvals import Approvals
from engine.runtime.flows.assignment import People
from engine.runtime.flows.email import enqueue_email
from engine.runtime.flows.recurrence import next_yearly
from engine.runtime.flows.runs import Run, RunWriter, jsonable
from engine.runtime.flows.schedules import Ensurer, set_next
from engine.runtime.flows.stages import StageHistory, check_move, rules_apply
from engine.runtime.flows.timers import Timer, cancel, cancel_all, register, schedule
from engine.runtime.flows.webhooks import enqueue_webhook
from engine.runtime.records.computed import RecordContext
from engine.runtime.records.unit import RecordChange, UnitOfWork
from engine.runtime.schema.tables import (
    AUTOMATION_RUN_TABLE,
    NOTIFICATION_TABLE,
    STAGE_HISTORY_TABLE,
)
from engine.runtime.values import to_json

if TYPE_CHECKING:
    from engine.runtime.records import Records

HOOK_NAME = "flows"
_EVENTS = {"create": "create", "update": "update", "delete": "delete"}


@dataclass
class _UnitState:
    """What the hook knows of one unit of work."""

    last: dict[tuple[str, str, int], tuple[Any, ...]] = field(default_factory=dict)
    """(flow.trigger, entity, id) → the watched fields' values when the trigger last ran."""
    running: list[int] = field(default_factory=list)
    """The runs whose actions are executing (the innermost last): what they change is
    caused by them."""
    caused: dict[int, int] = field(default_factory=dict)
    """id(change) → the run whose actions made it."""
    runs: list[Run] = field(default_factory=list)
    """Every evaluation, in order (the dry run reports them)."""
    pending: list[Run] = field(default_factory=list)
    """Evaluations not written yet (written together when the hook is done)."""
    firing: str | None = None
    """The key of the timer this unit fires: its own actions moving the field it counts
    from do not cancel it (the worker marks it done when they are through)."""


@dataclass(frozen=True)
class _EntityFlows:
    flows: tuple[Flow, ...]
    triggers: tuple[tuple[Flow, Trigger], ...]
    timers: tuple[tuple[Flow, TimerRule], ...] = ()


class FlowHook:
    def __init__(self, records: Records) -> None:
        self.records = records
        by_entity: dict[str, list[Flow]] = {}
        for flow in records.model.flows:
            by_entity.setdefault(flow.entity, []).append(flow)
        self.by_entity = {
            entity: _EntityFlows(tuple(flows),
                                 tuple((f, t) for f in flows for t in f.triggers),
                                 tuple((f, t) for f in flows for t in f.timers))
            for entity, flows in by_entity.items()}
        self.history = StageHistory(records.schema.table(STAGE_HISTORY_TABLE))
        self.runs = RunWriter(records.schema.table(AUTOMATION_RUN_TABLE))
        self.notifications = records.schema.table(NOTIFICATION_TABLE)
        self.people = People(records)
        self.approvals = Approvals(records, self.people)
        for entity in self.approvals.entities:
            self.by_entity.setdefault(entity, _EntityFlows((), ()))
        self._state: WeakKeyDictionary[UnitOfWork, _UnitState] = WeakKeyDictionary()
        self.ensure_schedules = Ensurer(records, TIMER_KIND)
        """Sets the next holiday date of every schedule (each worker pass calls it)."""

    def runs_in(self, unit: UnitOfWork) -> list[Run]:
        """The evaluations made in `unit` so far (a dry run reports them)."""
        state = self._state.get(unit)
        return [] if state is None else list(state.runs)

    def __call__(self, unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        state: _UnitState | None = None
        for change in changes:
            flows = self.by_entity.get(change.entity)
            restored = change.action == "restore" and flows is not None and bool(flows.timers)
            if flows is None or (change.action not in _EVENTS and not restored):
                continue
            if state is None:
                state = self._state.get(unit)
                if state is None:
                    state = self._state[unit] = _UnitState()
            if restored:
                self._restore_timers(unit, state, flows, change)
            else:
                self._handle(unit, state, flows, change)
        if state is not None and state.pending:
            pending, state.pending = state.pending, []
            self.runs.many(unit.conn, pending)

    # -- one change ------------------------------------------------------------------------

    def _handle(self, unit: UnitOfWork, state: _UnitState, flows: _EntityFlows,
                change: RecordChange) -> None:
        records = self.records
        c = records.compiled(change.entity)
        values = change.after if change.after is not None else change.before or {}
        creating = change.action == "create"
        ctx = records.record_context(unit.conn, c, values, prior=change.before,
                                     is_new=creating)
        cause = self._cause_of(state, change)
        event = _EVENTS[change.action]
        staged: set[str] = set()  # the flows whose stage field moved
        for flow in flows.flows:
            rules = flow.stages
            if rules is None or change.action == "delete":
                continue
            if creating:
                old, new = None, values.get(rules.field)
                if new is None:
                    continue
            elif rules.field in change.changed:
                old, new = (change.before or {}).get(rules.field), values.get(rules.field)
            else:
                continue
            staged.add(flow.name)
            if new is not None and rules_apply(rules, old, new):
                refusal = check_move(flow, rules, change.entity, change.record_id, old, new,
                                     values, ctx)
                run = Run(flow.name, "stages", flow.config_hash, change.entity,
                          change.record_id, "stage", "passed", None,
                          {rules.field: [old, new]}, cause_id=cause, at=unit.now,
                          by_user=unit.actor.user_id)
                if refusal is not None:
                    run.result, run.rule, run.reason = "refused", \
                        f"stages.{refusal.rule}", str(refusal.error.message)
                    state.runs.append(run)
                    raise refusal.error
                self._write(unit, state, run)
            self.history.enter(unit.conn, change.entity, change.record_id, rules.field, new,
                               unit.now, unit.actor.user_id, new=creating)
            self._moved(unit, state, flow, rules, change, ctx, values, cause, old, new)
        if self.approvals.applies(change.entity):
            self.approvals.on_change(unit, change, values, ctx)
        for flow, trigger in flows.triggers:
            events = {event}
            if flow.name in staged:
                events.add("stage")
            matched = trigger.on & events
            if not matched:
                continue
            if matched == {"update"} and trigger.fields \
                    and not change.changed.intersection(trigger.fields):
                continue  # none of the fields it watches changed: not its event
            self._trigger(unit, state, flow, trigger, change, ctx, values, cause,
                          "stage" if "stage" in matched else event)
        for flow, timer in flows.timers:
            if timer.on_stage or timer.every is not None:
                self._schedule_again(unit, state, flow, timer, change, values, cause)
            else:
                self._schedule(unit, state, flow, timer, change, values, cause)

    # -- timers (`timers:` of a flow; the worker fires them: engine/runtime/flows/timers.py)

    def _schedule(self, unit: UnitOfWork, state: _UnitState, flow: Flow, timer: TimerRule,
                  change: RecordChange, values: Any, cause: int | None) -> None:
        """Keep the record's timer in step with its `from` field: a new value schedules
        one (its key names the value, so the same value is never scheduled twice), the old
        value's timer goes unless it ran, a deleted record keeps none."""
        old = None if change.before is None else change.before.get(timer.field)
        new = None if change.action == "delete" else values.get(timer.field)
        if change.action not in ("create", "delete") and timer.field not in change.changed:
            return
        if old is not None and old != new:
            key = self._timer_key(flow, timer, change, old)
            if key != state.firing:
                cancel(unit.conn, key)
        if new is None or (new == old and change.action != "create"):
            return
        due = self._due(timer, new)
        if schedule(unit.conn, self._timer_key(flow, timer, change, new), due, kind=TIMER_KIND,
                    entity=change.entity, record_id=change.record_id,
                    data={"flow": flow.name, "timer": timer.name, "value": to_json(new)}):
            self._write(unit, state, Run(
                flow.name, f"timers.{timer.name}", flow.config_hash, change.entity,
                change.record_id, change.action, "scheduled", f"due {to_json(due)}",
                {timer.field: to_json(new)}, cause_id=cause, at=unit.now,
                by_user=unit.actor.user_id))

    @staticmethod
    def _timer_key(flow: Flow, timer: TimerRule, change: RecordChange, value: Any) -> str:
        return (f"flow:{flow.name}:{timer.name}:{change.entity}:{change.record_id}:"
                f"{to_json(value)}")

    def _due(self, timer: TimerRule, value: Any) -> datetime:
        """When a timer of `value` fires: a date counts from its midnight in the
        organisation's time zone, a datetime from its instant."""
        start: datetime = value if isinstance(value, datetime) else datetime.combine(
            value, time(0), tzinfo=self.records.model.settings.zone)
        return start + timer.offset

    # -- timers from stage entry and yearly ones (engine/runtime/flows/recurrence.py)

    def _schedule_again(self, unit: UnitOfWork, state: _UnitState, flow: Flow,
                        timer: TimerRule, change: RecordChange, values: Any,
                        cause: int | None) -> None:
        """A timer from the stage field: set on entering a stage (of its `stages`), its key
        naming the stage and the moment; dropped on leaving it. A yearly timer: set for the
        next anniversary of a new date, the old date's dropped. Neither outlives the record's
        going to the recycle bin."""
        old = None if change.before is None else change.before.get(timer.field)
        new = None if change.action == "delete" else values.get(timer.field)
        if change.action not in ("create", "delete") and timer.field not in change.changed:
            return
        if change.action != "create":  # left the stage, changed the date, deleted
            cancel_all(unit.conn, self._timer_prefix(flow, timer, change.entity,
                                                     change.record_id),
                       entity=change.entity, record_id=change.record_id,
                       keep=state.firing)  # the firing one: the worker marks it done
        if new is None or (new == old and change.action != "create"):
            return
        if timer.every is not None:
            self._set_yearly(unit, state, flow, timer, change.entity, change.record_id, new,
                             change.action, cause)
        elif timer.enters(new):
            self._set(unit, state, flow, timer, change, cause, unit.now + timer.offset, new,
                      {"entered": to_json(unit.now)}, f"{new}@{to_json(unit.now)}")

    def _restore_timers(self, unit: UnitOfWork, state: _UnitState, flows: _EntityFlows,
                        change: RecordChange) -> None:
        """A record back from the recycle bin gets back the timers its going there dropped:
        of its dates (one that ran stays done), its next anniversaries, and of the stage it
        is in, counted from when it entered it."""
        values = change.after or {}
        for flow, timer in flows.timers:
            value = values.get(timer.field)
            if value is None:
                continue
            if timer.on_stage:
                entered = self.history.entered(unit.conn, change.entity, change.record_id,
                                               timer.field) if timer.enters(value) else None
                if entered is not None:
                    self._set(unit, state, flow, timer, change, None, entered + timer.offset,
                              value, {"entered": to_json(entered)},
                              f"{value}@{to_json(entered)}")
            elif timer.every is not None:
                self._set_yearly(unit, state, flow, timer, change.entity, change.record_id,
                                 value, change.action, None)
            else:
                self._set(unit, state, flow, timer, change, None, self._due(timer, value),
                          value)

    def _set(self, unit: UnitOfWork, state: _UnitState, flow: Flow, timer: TimerRule,
             change: RecordChange, cause: int | None, due: datetime, value: Any,
             data: dict[str, Any] | None = None, suffix: str | None = None, *,
             at_once: bool = False) -> None:
        """Schedule one timer of the record (unless its key is taken) and record it as a
        `scheduled` run (`at_once`: written now, not with the wave)."""
        key = self._timer_prefix(flow, timer, change.entity, change.record_id) + (
            str(to_json(value)) if suffix is None else suffix)
        if not schedule(unit.conn, key, due, kind=TIMER_KIND, entity=change.entity,
                        record_id=change.record_id,
                        data={"flow": flow.name, "timer": timer.name,
                              "value": to_json(value), **(data or {})}):
            return
        run = Run(flow.name, f"timers.{timer.name}", flow.config_hash, change.entity,
                  change.record_id, change.action, "scheduled", f"due {to_json(due)}",
                  {timer.field: to_json(value)}, cause_id=cause, at=unit.now,
                  by_user=unit.actor.user_id)
        if at_once:
            state.runs.append(run)
            self.runs.now(unit.conn, run)
        else:
            self._write(unit, state, run)

    def _set_yearly(self, unit: UnitOfWork, state: _UnitState, flow: Flow, timer: TimerRule,
                    entity: str, record_id: int, value: date, event: str, cause: int | None,
                    after: int | None = None, *, at_once: bool = False) -> None:
        """Schedule the timer of `value`'s next anniversary due today or later (after the
        year `after`, when one just fired)."""
        found = next_yearly(value, timer.offset, self.records.model.settings.zone, unit.now,
                            after=after)
        if found is None:
            return
        year, due = found
        change = RecordChange(entity, record_id, event, None, None, (), None, unit.now)
        self._set(unit, state, flow, timer, change, cause, due, value, {"year": year},
                  f"{to_json(value)}@{year}", at_once=at_once)

    def _again(self, unit: UnitOfWork, state: _UnitState, flow: Flow, rule: TimerRule,
               timer: Timer, value: date) -> None:
        """At a yearly timer's turn: the timer of the next anniversary, in the firing's
        transaction."""
        assert timer.entity is not None and timer.record_id is not None
        fired = timer.data.get("year")
        self._set_yearly(unit, state, flow, rule, timer.entity, timer.record_id, value,
                         "timer", None,
                         after=fired if isinstance(fired, int) else timer.due_at.year,
                         at_once=True)

    @staticmethod
    def _timer_prefix(flow: Flow, timer: TimerRule, entity: str, record_id: int) -> str:
        """What every key of a record's timers of `timer` begins with."""
        return f"flow:{flow.name}:{timer.name}:{entity}:{record_id}:"

    def fire(self, unit: UnitOfWork, timer: Timer) -> None:
        """Run a due timer of a flow: on the record as it is now, if it still holds the
        value the timer was scheduled for and the timer's `when` holds; every outcome is
        an automation run of the record."""
        flow = next((f for f in self.records.model.flows if f.name == timer.data.get("flow")),
                    None)
        if "schedule" in timer.data:
            if flow is not None:
                self._fire_schedule(unit, flow, timer)
            return
        rule = None if flow is None else next(
            (t for t in flow.timers if t.name == timer.data.get("timer")), None)
        if flow is None or rule is None or timer.entity is None or timer.record_id is None:
            return  # the flow or timer left the configuration: nothing to do
        records = self.records
        c = records.compiled(timer.entity)
        row = unit.conn.execute(select(c.table).where(
            c.table.c.id == timer.record_id, c.table.c.deleted_at.is_(None))).mappings().first()
        if row is None:
            return  # deleted meanwhile
        values = dict(row)
        state = self._state.get(unit)
        if state is None:
            state = self._state[unit] = _UnitState()
        run = Run(flow.name, f"timers.{rule.name}", flow.config_hash, timer.entity,
                  timer.record_id, "timer", "skipped", at=unit.now, by_user=None)
        ctx = records.record_context(unit.conn, c, values)
        if to_json(values.get(rule.field)) != timer.data.get("value"):
            run.reason = f"{rule.field} changed since the timer was set"
        elif rule.when is not None and not rule.when.holds(ctx):
            run.inputs = jsonable({p[0]: ctx.get(p) for p in rule.when.references
                                   if len(p) == 1})
            run.reason = f"when is not true: {rule.when.source.strip()}"
        if rule.every is not None and isinstance(values.get(rule.field), date) and (
                run.reason is None or run.reason.startswith("when ")):
            # next year's, in this transaction, whether or not `when` holds today (and before
            # the actions: one that changes the date drops it with the old date)
            self._again(unit, state, flow, rule, timer, values[rule.field])
        if run.reason is not None:
            self._write(unit, state, run)
            self.runs.many(unit.conn, state.pending)
            state.pending = []
            return
        change = RecordChange(timer.entity, timer.record_id, "timer", values, values, (),
                              None, unit.now)
        planned = self._plan(unit, rule.actions, change, ctx, values, "timer")
        run.result = "fired"
        run.actions = [p[1] for p in planned]
        run.diff = {k: v for p in planned if p[0] == "set" for k, v in p[2].items()}
        run_id = self.runs.now(unit.conn, run)
        state.runs.append(run)
        state.running.append(run_id)
        state.firing = timer.key
        try:
            for n, (kind, described, data) in enumerate(planned):
                self._act(unit, change, kind, described, data, f"flow:{run_id}:{n}")
        finally:
            state.running.pop()
            state.firing = None

    # -- schedules (`schedules:` of a flow, on the holiday calendar: schedules.py) ----------

    def _fire_schedule(self, unit: UnitOfWork, flow: Flow, timer: Timer) -> None:
        """A schedule's date has come: set the next date's timer, then run the actions on
        every live record of the flow's entity for which `when` holds now, each as a run of
        its own, all in the timer's transaction. A date no longer in the calendar, or a
        timer a day or more late (the worker was stopped over the holiday), runs nothing."""
        rule = next((s for s in flow.schedules if s.name == timer.data.get("schedule")), None)
        holiday = None if rule is None else self.records.model.settings.holiday(rule.holiday)
        if rule is None or holiday is None:
            return  # the schedule or its holiday left the configuration
        day = date.fromisoformat(str(timer.data.get("date")))
        set_next(unit.conn, self.records, flow, rule, unit.now, kind=TIMER_KIND, after=day)
        if day not in holiday.dates or unit.now >= timer.due_at + LATE:
            return
        state = self._state.get(unit)
        if state is None:
            state = self._state[unit] = _UnitState()
        records = self.records
        c = records.compiled(flow.entity)
        for values in self._scheduled_rows(unit, flow.entity, rule):
            ctx = records.record_context(unit.conn, c, values)
            if rule.when is not None and not rule.when.holds(ctx):
                continue  # the SQL filter let it through (or there was none)
            change = RecordChange(flow.entity, values["id"], "timer", values, values, (),
                                  None, unit.now)
            planned = self._plan(unit, rule.actions, change, ctx, values, "timer")
            run = Run(flow.name, f"schedules.{rule.name}", flow.config_hash, flow.entity,
                      values["id"], "timer", "fired", None,
                      {"holiday": rule.holiday, "date": day.isoformat()}, at=unit.now,
                      by_user=None)
            run.actions = [p[1] for p in planned]
            run.diff = {k: v for p in planned if p[0] == "set" for k, v in p[2].items()}
            run_id = self.runs.now(unit.conn, run)
            state.runs.append(run)
            state.running.append(run_id)
            try:
                for n, (kind, described, data) in enumerate(planned):
                    self._act(unit, change, kind, described, data, f"flow:{run_id}:{n}")
            finally:
                state.running.pop()

    def _scheduled_rows(self, unit: UnitOfWork, entity: str,
                        rule: ScheduleRule) -> Iterator[dict[str, Any]]:
        """The live records of `entity` a schedule may run on, in pages of SCHEDULE_PAGE by
        id: filtered by `when` in SQL when it compiles there (else every one: the caller
        checks `when` in Python)."""
        c = self.records.compiled(entity)
        t = c.table
        where: list[Any] = [t.c.deleted_at.is_(None)]
        if rule.when is not None and rule.when.sql_capable:
            sql = self.records.sql_fields(None)
            with suppress(FormulaError):  # else Python decides
                where.append(rule.when.sql_condition(lambda path: sql.path(c.entity, t, path),
                                                     sql.dialect, sql.clock))
        last = 0
        while True:
            page = [dict(r) for r in unit.conn.execute(
                select(t).where(*where, t.c.id > last).order_by(t.c.id)
                .limit(SCHEDULE_PAGE)).mappings()]
            yield from page
            if len(page) < SCHEDULE_PAGE:
                return
            last = page[-1]["id"]

    def _moved(self, unit: UnitOfWork, state: _UnitState, flow: Flow, rules: StageRules,
               change: RecordChange, ctx: RecordContext, values: Any, cause: int | None,
               old: str | None, new: str | None) -> None:
        """Run the actions of leaving `old` and of entering `new` (`on_leave`, `on_enter`),
        each as a run of its own (rule `stages.on_leave.<stage>`)."""
        for when, stage, moves in (("on_leave", old, rules.on_leave),
                                   ("on_enter", new, rules.on_enter)):
            if stage is None:
                continue
            actions = dict(moves).get(stage)
            if not actions:
                continue
            run = Run(flow.name, f"stages.{when}.{stage}", flow.config_hash, change.entity,
                      change.record_id, "stage", "fired", None, {rules.field: [old, new]},
                      cause_id=cause, at=unit.now, by_user=unit.actor.user_id)
            self._fire_actions(unit, state, run, actions, change, ctx, values, "stage")

    def _trigger(self, unit: UnitOfWork, state: _UnitState, flow: Flow, trigger: Trigger,
                 change: RecordChange, ctx: RecordContext, values: Any, cause: int | None,
                 event: str) -> None:
        key = (f"{flow.name}.{trigger.name}", change.entity, change.record_id)
        watched = tuple(values.get(f) for f in trigger.watched)
        run = Run(flow.name, f"triggers.{trigger.name}", flow.config_hash, change.entity,
                  change.record_id, event, "skipped", cause_id=cause, at=unit.now,
                  by_user=unit.actor.user_id)
        if trigger.when is not None:
            run.inputs = jsonable({p[0]: ctx.get(p) for p in trigger.when.references
                                   if len(p) == 1})
        if key in state.last and state.last[key] == watched:
            names = ", ".join(trigger.watched) or "none"
            run.reason = (f"already ran on this record in this write; its watched fields "
                          f"({names}) have not changed since")
            self._write(unit, state, run)
            return
        if trigger.when is not None and not trigger.when.holds(ctx):
            run.reason = f"when is not true: {trigger.when.source.strip()}"
            self._write(unit, state, run)
            return
        state.last[key] = watched
        self._fire_actions(unit, state, run, trigger.actions, change, ctx, values, event)

    def _fire_actions(self, unit: UnitOfWork, state: _UnitState, run: Run,
                      actions: tuple[Action, ...], change: RecordChange, ctx: RecordContext,
                      values: Any, event: str) -> None:
        """Plan `actions`, write `run` as fired (with them), then run them in the unit: what
        they change is caused by the run."""
        planned = self._plan(unit, actions, change, ctx, values, event)
        run.result = "fired"
        run.actions = [p[1] for p in planned]
        run.diff = {k: v for p in planned if p[0] == "set" for k, v in p[2].items()}
        run_id = self.runs.now(unit.conn, run)
        state.runs.append(run)
        state.running.append(run_id)
        first = len(unit.changes)
        try:
            with unit.caused_by(change):
                for n, (kind, described, data) in enumerate(planned):
                    self._act(unit, change, kind, described, data, f"flow:{run_id}:{n}")
        finally:
            state.running.pop()
        for made in unit.changes[first:]:
            state.caused.setdefault(id(made), run_id)

    def _plan(self, unit: UnitOfWork, actions: tuple[Action, ...], change: RecordChange,
              ctx: RecordContext, values: Any,
              event: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Each action as (kind, how the run row describes it, what it will write): the
        formulas are evaluated on the record before any action runs."""
        out: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        for action in actions:
            if isinstance(action, AssignAction):
                picked = self.people.pick(unit.conn, change.entity, action, ctx, values,
                                          change.record_id)
                out.append(("assign", picked.described, {"user": picked.user}))
                if picked.user is not None:
                    # later actions' `owner` is the new owner
                    values = {**values, "owner_id": picked.user}
            elif isinstance(action, TeamAction):
                ids, described = self.people.team(unit.conn, action, values)
                out.append(("team", described, {"users": ids, "access": action.access}))
            elif isinstance(action, SetAction):
                diff: dict[str, Any] = {}
                for name, formula in action.values:
                    new = to_json(formula.evaluate(ctx))
                    old = to_json(values.get(name))
                    if new != old:
                        diff[name] = [old, new]
                out.append(("set", {"kind": "set", "values": {k: v[1] for k, v in
                                                              diff.items()}}, diff))
            elif isinstance(action, CreateAction):
                data = {name: to_json(formula.evaluate(ctx)) for name, formula in action.values}
                out.append(("create", {"kind": "create", "entity": action.entity}, data))
            elif isinstance(action, NotifyAction):
                if action.to == "owner_manager":
                    owner = values.get("owner_id")
                    manager = None if owner is None else self.people.manager_of(unit.conn,
                                                                                owner)
                    user = None if manager is None else manager.id
                else:
                    user = values.get("owner_id" if action.to == "owner" else action.to)
                out.append(("notify", {"kind": "notify", "to": user,
                                       "message": action.message.as_dict()},
                            {"user": user, "message": action.message.as_dict()}))
            elif isinstance(action, EmailAction):
                to = self._addresses(unit, action, values)
                subject = str(action.subject.evaluate(ctx) or "")
                text = str(action.text.evaluate(ctx) or "")
                out.append(("email", {"kind": "email", "to": to, "subject": subject},
                            {"to": to, "subject": subject, "text": text}))
            elif isinstance(action, WebhookAction):
                body = {"event": event, "entity": change.entity, "id": change.record_id,
                        "at": to_json(unit.now), "record": jsonable(values)}
                out.append(("webhook", {"kind": "webhook", "url": action.url},
                            {"url": action.url, "body": body, "event": event,
                             "secret_env": action.secret_env}))
        return out

    def _addresses(self, unit: UnitOfWork, action: EmailAction, values: Any) -> list[str]:
        """The email addresses of an email action's recipients on this record."""
        users: list[int] = []
        found: list[str] = []
        for name in action.to:
            value = values.get("owner_id" if name == "owner" else name)
            if value is None:
                continue
            if isinstance(value, int):
                users.append(value)
            else:
                found.append(str(value))
        if users:
            t = self.records.users
            found[:0] = [e for (e,) in unit.conn.execute(
                select(t.c.email).where(t.c.id.in_(users), t.c.email.is_not(None))
                .order_by(t.c.id))]
        return list(dict.fromkeys(found))

    def _act(self, unit: UnitOfWork, change: RecordChange, kind: str,
             described: dict[str, Any], data: dict[str, Any], key: str) -> None:
        """Run one planned action; `key`: the outbox's idempotency key of its message."""
        records = self.records
        if kind == "set":
            if not data:
                return
            c = records.compiled(change.entity)
            version = unit.conn.execute(select(c.table.c.version).where(
                c.table.c.id == change.record_id)).scalar()
            if version is None:
                return  # purged meanwhile
            records.update(SYSTEM, change.entity, change.record_id,
                           {k: v[1] for k, v in data.items()}, version, unit=unit)
        elif kind == "create":
            owner = (change.after or change.before or {}).get("owner_id")
            made = records.create(_flow_actor(owner, unit.actor), described["entity"], data,
                                  unit=unit)
            described["id"] = made.get("id")
        elif kind == "email" and data["to"]:
            enqueue_email(unit.conn, key, data["to"], data["subject"], data["text"],
                          now=unit.now)
        elif kind == "webhook":
            enqueue_webhook(unit.conn, key, data["url"], data["body"], event=data["event"],
                            secret_env=data["secret_env"], now=unit.now)
        elif kind == "assign" and data["user"] is not None:
            owner = unit.conn.execute(select(records.compiled(change.entity).table.c.owner_id)
                                      .where(records.compiled(change.entity).table.c.id
                                             == change.record_id)).first()
            if owner is not None and owner[0] != data["user"]:
                records.assign(SYSTEM, change.entity, change.record_id, owner=data["user"],
                               department=None, unit=unit)
        elif kind == "team":
            for user in data["users"]:
                records.set_team_member(SYSTEM, change.entity, change.record_id, user,
                                        data["access"], unit=unit)
        elif kind == "notify" and data["user"] is not None:
            unit.conn.execute(insert(self.notifications).values(
                user_id=data["user"], entity=change.entity, record_id=change.record_id,
                message=data["message"], created_at=unit.now))

    # -- runs -----------------------------------------------------------------------------

    def _write(self, unit: UnitOfWork, state: _UnitState, run: Run) -> int | None:
        """Record `run`: a fired one now (its id is needed), the others with the wave."""
        state.runs.append(run)
        if run.result != "fired":
            state.pending.append(run)
            return None
        return self.runs.now(unit.conn, run)

    @staticmethod
    def _cause_of(state: _UnitState, change: RecordChange) -> int | None:
        """The run whose actions made `change` (or a change that led to it)."""
        if state.running:
            return state.running[-1]
        current: RecordChange | None = change
        while current is not None:
            found = state.caused.get(id(current))
            if found is not None:
                return found
            current = current.cause
        return None


def _flow_actor(owner: int | None, writer: Actor) -> Actor:
    """Who a flow's `create` writes as: the engine (no role limits the flow's own
    actions), owning the new record as the triggering record's owner does."""
    return Actor(user_id=owner if owner is not None else writer.user_id, name="flow",
                 roles=SYSTEM.roles, department_id=writer.department_id)


TIMER_KIND = "flow"
"""The kind of the timers flows schedule (engine/runtime/flows/timers.py)."""
SCHEDULE_PAGE = 200
"""Records a schedule reads at a time."""
LATE = timedelta(days=1)
"""A schedule's timer run this late (the worker was stopped) does nothing: care a day
after the holiday is no care."""


def _fire(unit: UnitOfWork, timer: Timer) -> None:
    """The worker's handler of flow timers: the flow hook of the records service the
    worker's unit of work belongs to fires it."""
    for name, hook in unit.hooks.before_commit:
        if name == HOOK_NAME and isinstance(hook, FlowHook):
            hook.fire(unit, timer)
            return
    raise LookupError("this records service runs no flows: the timer cannot fire")


def _ensure(records: Records, now: datetime) -> None:
    """The worker's pass preparer: the next holiday date of every flow schedule set."""
    for name, hook in records.hooks.before_commit:
        if name == HOOK_NAME and isinstance(hook, FlowHook):
            hook.ensure_schedules(now)
            return


register(TIMER_KIND, _fire, _ensure)


def install_flows(records: Records) -> FlowHook | None:
    """Register the hook on a records service (when the app or the CLI assembles it);
    None when no flow is configured."""
    for name, hook in records.hooks.before_commit:
        if name == HOOK_NAME and isinstance(hook, FlowHook):
            return hook
    if not records.model.flows:
        return None
    hook = FlowHook(records)
    records.hooks.on_before_commit(HOOK_NAME, hook)
    return hook


def approvals_of(records: Records) -> Approvals | None:
    """The approvals of the flows hook registered on `records` (None: no flows): the one
    object that both runs inside writes and decides, so its own moves pass the lock."""
    for name, hook in records.hooks.before_commit:
        if name == HOOK_NAME and isinstance(hook, FlowHook):
            return hook.approvals
    return None

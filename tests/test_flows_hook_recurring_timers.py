"""Timers from stage entry and yearly timers (`timers:` of a flow, engine/runtime/flows/hook.py):
the shipped stalled-deal timer of the opportunity pipeline (set on entering proposal or
negotiation, dropped on leaving, fired once, set anew on re-entry) and the shipped birthday
care (生日关怀: each year, 29 February, a changed or blank date, through the worker to the
owner's task and notification); the configuration mistakes `crm check` names. On SQLite and
PostgreSQL, with the records service's clock travelling."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.runtime.access import SYSTEM
from engine.runtime.flows.timers import run_due, timer_table
from engine.runtime.flows.worker import Worker
from engine.runtime.schema.tables import AUTOMATION_RUN_TABLE, NOTIFICATION_TABLE
from tests.access_helpers import departments, place, user
from tests.conftest import Env, broken_flow_errors
from tests.test_flows_hook_timers import plan_line

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    """The records service's time, moved by the test."""

    def __init__(self, env: Env, at: datetime) -> None:
        self.at = at
        env.records.clock = lambda: self.at

    def travel(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at


def timers(env: Env, record_id: int, name: str) -> list[tuple[str, datetime, str]]:
    t = timer_table()
    with env.engine.connect() as conn:
        rows = conn.execute(select(t.c.key, t.c.due_at, t.c.state).where(
            t.c.record_id == record_id, t.c.key.contains(f":{name}:")).order_by(t.c.id)).all()
    return [(k, d if d.tzinfo else d.replace(tzinfo=UTC), s) for k, d, s in rows]


def rows_of(env: Env, table: str, **where: Any) -> list[dict[str, Any]]:
    t = env.records.schema.table(table)
    with env.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).where(
            *[t.c[k] == v for k, v in where.items()]).order_by(t.c.id)).mappings()]


def runs(env: Env, record_id: int, rule: str) -> list[tuple[str, str]]:
    return [(r["event"], r["result"]) for r in rows_of(env, AUTOMATION_RUN_TABLE,
                                                       record_id=record_id, rule=rule)]


# -- from stage entry: the opportunity pipeline's `stalled` -------------------------------

def move(env: Env, deal: dict[str, Any], stage: str) -> dict[str, Any]:
    return env.records.update(SYSTEM, "opportunity", deal["id"], {"stage": stage},
                              deal["version"])


def stalled_notes(env: Env, deal_id: int) -> list[dict[str, Any]]:
    return [n for n in rows_of(env, NOTIFICATION_TABLE, entity="opportunity",
                               record_id=deal_id) if "30 days" in n["message"]["en"]]


def test_a_deal_entering_proposal_is_timed_from_entry_dropped_on_leaving_and_told_once(
        env: Env) -> None:
    clock = Clock(env, T0)
    rep = user(env, "rep", "sales_rep", department=departments(env)["BJ"])
    account = env.records.create(SYSTEM, "account", {"name": "Acme"})
    deal = place(env, "opportunity", {"name": "Presses", "account": account["id"]}, owner=rep)
    deal = move(env, deal, "qualification")
    assert timers(env, deal["id"], "stalled") == []  # only proposal and negotiation count

    entered = clock.travel(timedelta(days=2))
    deal = move(env, deal, "proposal")
    [(key, due, state)] = timers(env, deal["id"], "stalled")
    assert (due, state) == (entered + timedelta(days=30), "pending")
    assert key.startswith(f"flow:opportunity_pipeline:stalled:opportunity:{deal['id']}:"
                          "proposal@")

    # moving on drops it and starts the count again in negotiation
    negotiating = clock.travel(timedelta(days=20))
    deal = move(env, deal, "negotiation")
    [(key, due, state)] = timers(env, deal["id"], "stalled")
    assert ":negotiation@" in key and (due, state) == (negotiating + timedelta(days=30),
                                                      "pending")
    assert run_due(env.records, entered + timedelta(days=31), worker_id="w") == 0
    assert stalled_notes(env, deal["id"]) == []

    # 30 days in negotiation: the owner is told, once
    clock.at = negotiating + timedelta(days=30, minutes=1)
    assert run_due(env.records, clock.at, worker_id="w") == 1
    [note] = stalled_notes(env, deal["id"])
    assert note["user_id"] == rep.id and "停滞" in note["message"]["zh"]
    assert run_due(env.records, clock.at + timedelta(days=60), worker_id="w") == 0
    assert len(stalled_notes(env, deal["id"])) == 1
    assert runs(env, deal["id"], "timers.stalled") == [
        ("update", "scheduled"), ("update", "scheduled"), ("timer", "fired")]

    # back to proposal and on again: each entry is timed anew
    clock.travel(timedelta(days=1))
    deal = move(env, deal, "proposal")
    reentered = clock.travel(timedelta(days=1))
    deal = move(env, deal, "negotiation")
    assert [(due, s) for _, due, s in timers(env, deal["id"], "stalled")] == [
        (negotiating + timedelta(days=30), "done"), (reentered + timedelta(days=30), "pending")]
    clock.at = reentered + timedelta(days=30)
    assert run_due(env.records, clock.at, worker_id="w") == 1
    assert len(stalled_notes(env, deal["id"])) == 2

    # a won deal is no longer stalled, and one in the recycle bin keeps no timer
    deal = move(env, deal, "proposal")
    assert [s for _, _, s in timers(env, deal["id"], "stalled")] == ["done", "done", "pending"]
    proposed = clock.at
    env.records.delete(SYSTEM, "opportunity", deal["id"])
    assert [s for _, _, s in timers(env, deal["id"], "stalled")] == ["done", "done"]
    # back from the recycle bin: timed from when it entered proposal, as before
    clock.travel(timedelta(days=3))
    env.records.restore(SYSTEM, "opportunity", deal["id"])
    assert [(due, s) for _, due, s in timers(env, deal["id"], "stalled")][2:] == [
        (proposed + timedelta(days=30), "pending")]


def test_a_stage_timer_rechecks_the_stage_when_it_fires(env: Env) -> None:
    clock = Clock(env, T0)
    account = env.records.create(SYSTEM, "account", {"name": "Acme"})
    deal = env.records.create(SYSTEM, "opportunity", {"name": "Lathe", "account": account["id"],
                                                      "stage": "proposal"})
    [(_, due, _)] = timers(env, deal["id"], "stalled")  # a new deal enters its first stage
    assert due == T0 + timedelta(days=30)
    runs_before = runs(env, deal["id"], "timers.stalled")
    assert runs_before == [("create", "scheduled")]
    # the stage moved behind the flows' back (a repair in SQL): the timer finds it elsewhere
    t = env.records.compiled("opportunity").table
    with env.engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == deal["id"]).values(stage="qualification"))
    clock.at = due
    assert run_due(env.records, due, worker_id="w") == 1
    assert stalled_notes(env, deal["id"]) == []
    [skipped] = [r for r in rows_of(env, AUTOMATION_RUN_TABLE, record_id=deal["id"],
                                    rule="timers.stalled") if r["event"] == "timer"]
    assert skipped["result"] == "skipped"
    assert skipped["reason"] == "stage changed since the timer was set"


# -- yearly: birthday care ------------------------------------------------------------------

def contact(env: Env, owner: Any, birthday: str | None, **values: Any) -> dict[str, Any]:
    account = env.records.create(SYSTEM, "account", {"name": f"Acme {birthday} {values}"})
    return place(env, "contact", {"full_name": "Wang Fang", "account": account["id"],
                                  "birthday": birthday, **values}, owner=owner)


def local(day: date, env: Env) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=env.model.settings.zone)


def care_tasks(env: Env, contact_id: int) -> list[dict[str, Any]]:
    return rows_of(env, "activity", contact=contact_id)


def test_a_key_contacts_birthday_brings_a_task_and_a_notice_through_the_worker_each_year(
        env: Env) -> None:
    clock = Clock(env, T0)
    rep = user(env, "rep", "sales_rep", department=departments(env)["BJ"])
    key = contact(env, rep, "1980-12-10", full_name="Wang Fang", buying_role="decider")
    due = local(date(2026, 12, 7), env)  # three days before, at midnight
    [(k, at, state)] = timers(env, key["id"], "birthday")
    assert (at, state) == (due, "pending") and k.endswith("@2026")
    worker = Worker(env.records, {}, worker_id="w")
    clock.at = due - timedelta(minutes=1)
    assert worker.run_once().timers.done == 0

    clock.at = due
    assert worker.run_once().timers.done >= 1
    [task] = care_tasks(env, key["id"])
    assert task["subject"] == "Birthday care: Wang Fang" and task["kind"] == "task"
    assert task["owner_id"] == rep.id and task["account"] == key["account"]
    task_due = task["due_at"] if task["due_at"].tzinfo else task["due_at"].replace(tzinfo=UTC)
    assert task_due == local(date(2026, 12, 10), env)  # on the birthday
    [note] = rows_of(env, NOTIFICATION_TABLE, entity="contact", record_id=key["id"])
    assert note["user_id"] == rep.id and "生日" in note["message"]["zh"]
    # next year's is set in the same pass; this year's ran once
    assert [(at, s) for _, at, s in timers(env, key["id"], "birthday")] == [
        (due, "done"), (local(date(2027, 12, 7), env), "pending")]
    assert worker.run_once().timers.done == 0
    assert len(care_tasks(env, key["id"])) == 1
    assert runs(env, key["id"], "timers.birthday") == [
        ("create", "scheduled"), ("timer", "scheduled"), ("timer", "fired")]

    clock.at = local(date(2027, 12, 7), env)
    worker.run_once()
    assert len(care_tasks(env, key["id"])) == 2
    assert timers(env, key["id"], "birthday")[-1][1:] == (local(date(2028, 12, 7), env),
                                                          "pending")


def test_a_contact_not_key_this_year_is_cared_for_once_they_are(env: Env) -> None:
    clock = Clock(env, T0)
    rep = user(env, "rep", "sales_rep", department=departments(env)["BJ"])
    plain = contact(env, rep, "1985-12-20", buying_role="user", influence=2)
    clock.at = local(date(2026, 12, 17), env)
    run_due(env.records, clock.at, worker_id="w")
    assert care_tasks(env, plain["id"]) == []
    [again, skipped] = [r for r in rows_of(env, AUTOMATION_RUN_TABLE, record_id=plain["id"],
                                           rule="timers.birthday") if r["event"] == "timer"]
    assert again["result"] == "scheduled"
    assert skipped["result"] == "skipped" and skipped["reason"].startswith("when is not true")
    # skipped, yet next year's is set: by then the contact has four of influence
    assert timers(env, plain["id"], "birthday")[-1][1:] == (local(date(2027, 12, 17), env),
                                                            "pending")
    plain = env.records.get(SYSTEM, "contact", plain["id"])
    env.records.update(SYSTEM, "contact", plain["id"], {"influence": 4}, plain["version"])
    clock.at = local(date(2027, 12, 17), env)
    run_due(env.records, clock.at, worker_id="w")
    assert [t["subject"] for t in care_tasks(env, plain["id"])] == ["Birthday care: Wang Fang"]


def test_a_leap_day_birthday_falls_on_the_28th_in_common_years(env: Env) -> None:
    clock = Clock(env, T0)
    rep = user(env, "rep", "sales_rep")
    leap = contact(env, rep, "1996-02-29", buying_role="buyer")
    [(_, due, _)] = timers(env, leap["id"], "birthday")
    assert due == local(date(2027, 2, 25), env)  # 28 February 2027, three days before
    clock.at = due
    run_due(env.records, due, worker_id="w")
    [task] = care_tasks(env, leap["id"])
    task_due = task["due_at"] if task["due_at"].tzinfo else task["due_at"].replace(tzinfo=UTC)
    assert task_due == local(date(2027, 2, 28), env)
    assert timers(env, leap["id"], "birthday")[-1][1:] == (local(date(2028, 2, 26), env),
                                                           "pending")  # 29 Feb 2028


def test_a_changed_blank_or_deleted_birthday_keeps_the_timers_in_step(env: Env) -> None:
    Clock(env, T0)
    rep = user(env, "rep", "sales_rep")
    c = contact(env, rep, "1970-06-15", buying_role="decider")
    assert [(at, s) for _, at, s in timers(env, c["id"], "birthday")] == [
        (local(date(2027, 6, 12), env), "pending")]  # June has passed this year
    c = env.records.update(SYSTEM, "contact", c["id"], {"birthday": "1970-12-24"},
                           c["version"])
    assert [(at, s) for _, at, s in timers(env, c["id"], "birthday")] == [
        (local(date(2026, 12, 21), env), "pending")]  # the old date's is gone
    c = env.records.update(SYSTEM, "contact", c["id"], {"title": "CFO"}, c["version"])
    assert len(timers(env, c["id"], "birthday")) == 1  # another field: untouched
    c = env.records.update(SYSTEM, "contact", c["id"], {"birthday": None}, c["version"])
    assert timers(env, c["id"], "birthday") == []
    assert timers(env, contact(env, rep, None, buying_role="decider")["id"], "birthday") == []
    c = env.records.update(SYSTEM, "contact", c["id"], {"birthday": "1970-12-24"},
                           c["version"])
    assert len(timers(env, c["id"], "birthday")) == 1
    env.records.delete(SYSTEM, "contact", c["id"])
    assert timers(env, c["id"], "birthday") == []
    env.records.restore(SYSTEM, "contact", c["id"])  # back from the recycle bin: cared for
    assert [(at, s) for _, at, s in timers(env, c["id"], "birthday")] == [
        (local(date(2026, 12, 21), env), "pending")]
    assert runs(env, c["id"], "timers.birthday")[-1] == ("restore", "scheduled")


def test_a_record_back_from_the_recycle_bin_gets_its_date_timers_back(env: Env) -> None:
    Clock(env, T0)
    line = plan_line(env, user(env, "fin", "finance"))
    before = [(k, due) for k, due, _ in timers(env, line["id"], "due_soon")
              + timers(env, line["id"], "overdue")]
    assert len(before) == 2
    env.records.delete(SYSTEM, "execution_plan_line", line["id"])
    assert timers(env, line["id"], "due_soon") == []
    env.records.restore(SYSTEM, "execution_plan_line", line["id"])
    assert [(k, due) for k, due, _ in timers(env, line["id"], "due_soon")
            + timers(env, line["id"], "overdue")] == before


# -- configuration mistakes -----------------------------------------------------------------

ACTIONS = "actions: [{notify: {to: owner, message: hi}}]"


@pytest.mark.parametrize(("entity", "spec", "expected"), [
    ("opportunity", f"{{name: t, from: close_date, stages: [proposal], after: 1d, {ACTIONS}}}",
     "timers.0.stages: only a timer from the flow's stage field names stages; close_date is "
     "not it"),
    ("opportunity", f"{{name: t, from: stage, stages: [proposel], after: 1d, {ACTIONS}}}",
     "timers.0.stages.0: 'proposel' is not an option of stage (did you mean 'proposal'?)"),
    ("opportunity", f"{{name: t, from: stage, every: year, after: 1d, {ACTIONS}}}",
     "timers.0.every: a timer from the stage field does not repeat"),
    ("opportunity", f"{{name: t, from: stage, before: 1d, {ACTIONS}}}",
     "timers.0.before: a timer from the stage field counts from entering the stage"),
    ("opportunity", f"{{name: t, from: lost_reason, after: 1d, {ACTIONS}}}",
     "timers.0.from: lost_reason is a choice field; a timer counts from a stored date or "
     "datetime field, or from the flow's stage field"),
    ("service_request", f"{{name: t, from: received_at, every: year, after: 1d, {ACTIONS}}}",
     "timers.0.every: every: year needs a date field; received_at is a datetime field"),
    ("contact", f"{{name: t, from: birthday, every: month, after: 1d, {ACTIONS}}}",
     "timers.0.every: "),
])
def test_timer_mistakes_are_named_where_they_are(config_dir: Path, entity: str, spec: str,
                                                 expected: str) -> None:
    stages = "stages: {field: stage}\n" if entity == "opportunity" else ""
    found = broken_flow_errors(
        config_dir, f"flow: broken\nentity: {entity}\n{stages}timers:\n  - {spec}\n")
    assert len(found) == 1 and expected in found[0], found
    line = 5 if stages else 4
    assert found[0].split(":")[1] == str(line) and found[0].split(":")[2].isdigit()

"""Flow timers (`timers:` of a flow, engine/runtime/flows/hook.py): scheduled from a date or
datetime field as records are written, kept in step when it changes, fired by the worker
with `when` re-checked on the record as it is then; the shipped service escalation and
execution reminders; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.runtime.access import SYSTEM
from engine.runtime.flows.timers import run_due, timer_table
from engine.runtime.schema.tables import AUTOMATION_RUN_TABLE, NOTIFICATION_TABLE
from tests.access_helpers import departments, place, user
from tests.conftest import Env, broken_flow_errors

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def timers(env: Env, record_id: int) -> list[tuple[str, datetime, str]]:
    t = timer_table()
    with env.engine.connect() as conn:
        rows = conn.execute(select(t.c.key, t.c.due_at, t.c.state)
                            .where(t.c.record_id == record_id).order_by(t.c.id)).all()
    return [(k, d if d.tzinfo else d.replace(tzinfo=UTC), s) for k, d, s in rows]


def rows_of(env: Env, table: str, record_id: int) -> list[dict[str, Any]]:
    t = env.records.schema.table(table)
    with env.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(t).where(t.c.record_id == record_id).order_by(t.c.id)).mappings()]


def request(env: Env, owner: Any, priority: str, received: datetime,
            queue: int | None = None) -> dict[str, Any]:
    account = env.records.create(SYSTEM, "account", {"name": f"Acme {priority} {received}"})
    return place(env, "service_request", {
        "subject": "Press leaks oil", "account": account["id"], "priority": priority,
        "received_at": received.isoformat(), "request_type": "repair", "queue": queue},
        owner=owner)


def due_timers(env: Env, record_id: int) -> list[tuple[datetime, str]]:
    return [(due, state) for k, due, state in timers(env, record_id) if ":unanswered:" in k]


@pytest.fixture
def agent(env: Env) -> Any:
    return user(env, "agent", "service_agent", department=departments(env)["BJ"])


@pytest.fixture
def queues(env: Env) -> dict[str, int]:
    """The hotline (urgent: 20 minutes) escalates to key accounts (urgent: 10 minutes),
    which escalates nowhere."""
    key = env.records.create(SYSTEM, "service_queue", {
        "name": "Key accounts", "kind": "key_accounts", "response_minutes_urgent": 10})
    hotline = env.records.create(SYSTEM, "service_queue", {
        "name": "Hotline", "response_minutes_urgent": 20, "escalates_to": key["id"]})
    return {"hotline": hotline["id"], "key": key["id"]}


def test_an_unanswered_request_escalates_to_the_next_queue_by_its_queues_targets(
        env: Env, agent: Any, queues: dict[str, int]) -> None:
    boss = user(env, "boss", "service_manager", department=departments(env)["NORTH"])
    env.records.update(SYSTEM, "department", departments(env)["BJ"], {"manager": None},
                       env.records.get(SYSTEM, "department", departments(env)["BJ"])["version"])
    north = env.records.get(SYSTEM, "department", departments(env)["NORTH"])
    env.records.update(SYSTEM, "department", north["id"], {"manager": boss.id},
                       north["version"])
    sr = request(env, agent, "urgent", T0, queues["hotline"])
    due_at = env.records.get(SYSTEM, "service_request", sr["id"])["response_due_at"]
    assert (due_at if due_at.tzinfo else due_at.replace(tzinfo=UTC)) == T0 + timedelta(
        minutes=20)
    assert due_timers(env, sr["id"]) == [(T0 + timedelta(minutes=20), "pending")]
    assert run_due(env.records, T0 + timedelta(minutes=19), worker_id="w") == 0
    fired_at = T0 + timedelta(minutes=21)
    env.records.clock = lambda: fired_at  # NOW() of the escalation: the worker's time
    assert run_due(env.records, fired_at, worker_id="w") >= 1
    now = env.records.get(SYSTEM, "service_request", sr["id"])
    assert (now["escalation_level"], now["queue"]) == (1, queues["key"])
    told = {n["user_id"]: n["message"]["en"] for n in rows_of(env, NOTIFICATION_TABLE,
                                                               sr["id"])}
    assert set(told) == {agent.id, boss.id}  # the owner and the owner's manager
    assert "escalated" in told[agent.id] and "your team" in told[boss.id]
    # in the next queue its clock starts again, with that queue's target
    assert due_timers(env, sr["id"]) == [(T0 + timedelta(minutes=20), "done"),
                                         (fired_at + timedelta(minutes=10), "pending")]
    run_due(env.records, fired_at + timedelta(minutes=11), worker_id="w")
    now = env.records.get(SYSTEM, "service_request", sr["id"])
    # key accounts escalates nowhere: the level goes up, the queue stays, no new timer
    assert (now["escalation_level"], now["queue"]) == (2, queues["key"])
    assert [s for _, s in due_timers(env, sr["id"])] == ["done", "done"]
    fired = [r for r in rows_of(env, AUTOMATION_RUN_TABLE, sr["id"])
             if r["rule"] == "timers.unanswered" and r["event"] == "timer"]
    assert [r["result"] for r in fired] == ["fired", "fired"]
    assert fired[0]["diff"]["queue"] == [queues["hotline"], queues["key"]]


def test_a_request_answered_in_time_is_not_escalated_and_the_run_says_why(
        env: Env, agent: Any, queues: dict[str, int]) -> None:
    sr = request(env, agent, "urgent", T0, queues["hotline"])
    env.records.update(agent, "service_request", sr["id"], {
        "first_response_at": (T0 + timedelta(minutes=10)).isoformat()}, sr["version"])
    assert run_due(env.records, T0 + timedelta(hours=1), worker_id="w") >= 1
    assert env.records.get(SYSTEM, "service_request", sr["id"])["escalation_level"] == 0
    assert rows_of(env, NOTIFICATION_TABLE, sr["id"]) == []
    [skipped] = [r for r in rows_of(env, AUTOMATION_RUN_TABLE, sr["id"])
                 if r["event"] == "timer"]
    assert skipped["result"] == "skipped" and skipped["reason"].startswith("when is not true")
    # the request keeps the time it was held to, answered or not
    assert env.records.get(SYSTEM, "service_request", sr["id"])["response_due_at"] is not None
    # a request without a queue has the shipped defaults: normal priority, 8 hours
    normal = request(env, agent, "normal", T0)
    assert due_timers(env, normal["id"]) == [(T0 + timedelta(hours=8), "pending")]
    run_due(env.records, T0 + timedelta(hours=3), worker_id="w")
    assert env.records.get(SYSTEM, "service_request", normal["id"])["escalation_level"] == 0


def test_a_changed_time_or_priority_moves_the_timer_and_a_deleted_record_keeps_none(
        env: Env, agent: Any) -> None:
    sr = request(env, agent, "high", T0)
    assert due_timers(env, sr["id"]) == [(T0 + timedelta(hours=2), "pending")]
    later = T0 + timedelta(hours=1)
    sr = env.records.update(agent, "service_request", sr["id"],
                            {"received_at": later.isoformat()}, sr["version"])
    assert due_timers(env, sr["id"]) == [(later + timedelta(hours=2), "pending")]  # moved
    # raised to urgent: due 30 minutes from receipt
    sr = env.records.update(agent, "service_request", sr["id"], {"priority": "urgent"},
                            sr["version"])
    assert due_timers(env, sr["id"]) == [(later + timedelta(minutes=30), "pending")]
    run_due(env.records, later + timedelta(minutes=29), worker_id="w")
    assert env.records.get(SYSTEM, "service_request", sr["id"])["escalation_level"] == 0
    env.records.delete(SYSTEM, "service_request", sr["id"])
    assert timers(env, sr["id"]) == []  # what had not run is gone
    assert run_due(env.records, later + timedelta(hours=3), worker_id="w") == 0


def plan_line(env: Env, executor: Any) -> dict[str, Any]:
    """A contract's first installment, due 2027-01-10, with its executor."""
    account = env.records.create(SYSTEM, "account", {"name": "Acme"})
    contract = env.records.create(SYSTEM, "contract", {"name": "Presses",
                                                        "account": account["id"]})
    return env.records.create(SYSTEM, "execution_plan_line", {
        "contract": contract["id"], "kind": "installment", "description": "First 30 %",
        "due_date": "2027-01-10", "planned_amount": "30000", "executor": executor.id})


def test_plan_lines_remind_their_executor_before_they_fall_due(env: Env, agent: Any) -> None:
    finance = user(env, "fin", "finance")
    line = plan_line(env, finance)
    zone = env.model.settings.zone
    midnight = datetime.combine(date(2027, 1, 10), datetime.min.time(), tzinfo=zone)
    due = sorted(d for k, d, _ in timers(env, line["id"]))
    assert due == [midnight - timedelta(days=3), midnight + timedelta(days=1)]
    run_due(env.records, midnight - timedelta(days=2), worker_id="w")
    [soon] = rows_of(env, NOTIFICATION_TABLE, line["id"])
    assert soon["user_id"] == finance.id and "three days" in soon["message"]["en"]
    # done before it is overdue: the overdue reminder finds nothing to say
    current = env.records.get(SYSTEM, "execution_plan_line", line["id"])
    env.records.update(SYSTEM, "execution_plan_line", line["id"], {
        "status": "done", "actual_date": "2027-01-09", "actual_amount": "30000"},
        current["version"])
    run_due(env.records, midnight + timedelta(days=2), worker_id="w")
    assert len(rows_of(env, NOTIFICATION_TABLE, line["id"])) == 1


def test_the_owner_of_a_planned_activity_is_reminded_an_hour_before(env: Env,
                                                                    agent: Any) -> None:
    env.records.clock = lambda: T0
    account = env.records.create(SYSTEM, "account", {"name": "Acme"})

    def activity(subject: str, due: datetime) -> dict[str, Any]:
        return place(env, "activity", {"subject": subject, "kind": "visit",
                                       "account": account["id"], "due_at": due.isoformat()},
                     owner=agent)

    visit = activity("Plant visit", T0 + timedelta(hours=3))
    done = activity("Call done early", T0 + timedelta(hours=3))
    env.records.update(agent, "activity", done["id"], {"status": "done"}, done["version"])
    past = activity("Entered after the fact", T0 - timedelta(days=2))
    assert [d for _, d, _ in timers(env, visit["id"])] == [T0 + timedelta(hours=2)]
    fired_at = T0 + timedelta(hours=2, minutes=1)
    env.records.clock = lambda: fired_at
    run_due(env.records, fired_at, worker_id="w")
    [note] = rows_of(env, NOTIFICATION_TABLE, visit["id"])
    assert note["user_id"] == agent.id and "due in an hour" in note["message"]["en"]
    assert rows_of(env, NOTIFICATION_TABLE, done["id"]) == []
    assert rows_of(env, NOTIFICATION_TABLE, past["id"]) == []  # nothing to remind of
    assert [s for _, _, s in timers(env, past["id"])] == ["done"]


@pytest.mark.parametrize(("spec", "expected"), [
    ("  - {name: t, from: subject, after: 1h, actions: [{set: {escalation_level: '1'}}]}\n",
     "timers.0.from: subject is a text field; a timer counts from a stored date or datetime "
     "field"),
    ("  - {name: t, from: recieved_at, after: 1h, actions: [{set: {escalation_level: '1'}}]}\n",
     "timers.0.from: no field 'recieved_at' of service_request (did you mean 'received_at'?)"),
    ("  - {name: t, from: received_at, after: 1 hour, actions: [{set: {escalation_level: '1'}}]}"
     "\n", "timers.0.after: '1 hour' does not match"),
    ("  - {name: t, from: received_at, actions: [{set: {escalation_level: '1'}}]}\n",
     "timers.0: "),
])
def test_timer_mistakes_are_named_where_they_are(config_dir: Path, spec: str,
                                                 expected: str) -> None:
    found = broken_flow_errors(config_dir,
                               "flow: broken\nentity: service_request\ntimers:\n" + spec)
    assert len(found) == 1 and expected in found[0], found
    assert found[0].split(":")[1] == "4"  # the line of the timer

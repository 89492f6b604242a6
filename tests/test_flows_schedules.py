"""Flow schedules on the holiday calendar (`schedules:` of a flow, settings.yaml `holidays`;
engine/runtime/flows/schedules.py and the flow hook): the shipped holiday care (节日关怀) —
the worker sets the next date of each schedule, firing it gives one task and one notice per
key contact and nothing to the others, once, and sets the next date; a late timer runs
nothing; a calendar with no date left sets nothing; the configuration mistakes `crm check`
names. On SQLite and PostgreSQL, with the records service's clock travelling."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from engine.metadata import ConfigErrors, load_model
from engine.metadata.holidays import Holiday
from engine.metadata.labels import Label
from engine.runtime.access import SYSTEM
from engine.runtime.flows import hook
from engine.runtime.flows.schedules import next_date
from engine.runtime.flows.timers import run_due, timer_table
from engine.runtime.flows.worker import Worker
from engine.runtime.schema.tables import AUTOMATION_RUN_TABLE, NOTIFICATION_TABLE
from tests.access_helpers import departments, place, user
from tests.conftest import Env, broken_flow_errors

T0 = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)
SPRING = "flow:holiday_care:schedule:spring_festival:"


def local(day: date, env: Env) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=env.model.settings.zone)


def aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def schedule_timers(env: Env) -> list[tuple[str, datetime, str]]:
    t = timer_table()
    with env.engine.connect() as conn:
        rows = conn.execute(select(t.c.key, t.c.due_at, t.c.state).where(
            t.c.key.startswith("flow:holiday_care:")).order_by(t.c.key)).all()
    return [(k, aware(d), s) for k, d, s in rows]


def rows_of(env: Env, table: str, **where: Any) -> list[dict[str, Any]]:
    t = env.records.schema.table(table)
    with env.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).where(
            *[t.c[k] == v for k, v in where.items()]).order_by(t.c.id)).mappings()]


def contact(env: Env, owner: Any, name: str, **values: Any) -> dict[str, Any]:
    account = env.records.create(SYSTEM, "account", {"name": f"Acme {name}"})
    return place(env, "contact", {"full_name": name, "account": account["id"], **values},
                 owner=owner)


def care_tasks(env: Env, contact_id: int) -> list[dict[str, Any]]:
    return [a for a in rows_of(env, "activity", contact=contact_id)
            if " care: " in a["subject"]]


def test_holiday_care_runs_once_per_key_contact_and_sets_the_next_date(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hook, "SCHEDULE_PAGE", 2)  # the records are read in pages
    env.records.clock = lambda: T0
    rep = user(env, "rep", "sales_rep", department=departments(env)["BJ"])
    keys = [contact(env, rep, "Wang Fang", buying_role="decider"),
            contact(env, rep, "Li Lei", buying_role="buyer"),
            contact(env, rep, "Zhao Min", buying_role="user", influence=4)]
    plain = contact(env, rep, "Chen Jie", buying_role="user", influence=2)
    gone = contact(env, rep, "Sun Li", buying_role="decider")
    env.records.delete(SYSTEM, "contact", gone["id"])
    assert schedule_timers(env) == []  # no write sets them: the worker does

    worker = Worker(env.records, {}, worker_id="w")
    assert worker.run_once(T0).timers.done == 0
    due = local(date(2027, 2, 3), env)  # three days before 2027-02-06
    assert schedule_timers(env) == [
        ("flow:holiday_care:schedule:mid_autumn:2027-09-15", local(date(2027, 9, 12), env),
         "pending"),
        (SPRING + "2027-02-06", due, "pending")]
    worker.run_once(T0 + timedelta(hours=1))
    assert len(schedule_timers(env)) == 2  # idempotent

    assert run_due(env.records, due - timedelta(minutes=1), worker_id="w") == 0
    env.records.clock = lambda: due
    assert run_due(env.records, due, worker_id="w") == 1
    for key in keys:
        [task] = care_tasks(env, key["id"])
        assert task["subject"] == f"Spring Festival care: {key['full_name']}"
        assert task["kind"] == "task" and task["owner_id"] == rep.id
        assert aware(task["due_at"]) == local(date(2027, 2, 6), env)  # on the holiday
        [note] = rows_of(env, NOTIFICATION_TABLE, entity="contact", record_id=key["id"])
        assert note["user_id"] == rep.id and "春节" in note["message"]["zh"]
        [run] = rows_of(env, AUTOMATION_RUN_TABLE, record_id=key["id"],
                        rule="schedules.spring_festival")
        assert (run["event"], run["result"], run["flow"]) == ("timer", "fired", "holiday_care")
    for other in (plain, gone):
        assert care_tasks(env, other["id"]) == []
        assert rows_of(env, NOTIFICATION_TABLE, entity="contact", record_id=other["id"]) == []

    # once: the next date is set in the same transaction, and a second pass does nothing
    assert schedule_timers(env)[1:] == [
        (SPRING + "2027-02-06", due, "done"),
        (SPRING + "2028-01-26", local(date(2028, 1, 23), env), "pending")]
    assert run_due(env.records, due + timedelta(hours=2), worker_id="w") == 0
    assert worker.run_once(due + timedelta(hours=2)).timers.done == 0
    assert len(schedule_timers(env)) == 3
    assert sum(len(care_tasks(env, k["id"])) for k in keys) == 3


def test_a_schedule_run_a_day_late_cares_for_no_one_and_sets_the_next_date(env: Env) -> None:
    env.records.clock = lambda: T0
    rep = user(env, "rep", "sales_rep")
    key = contact(env, rep, "Wang Fang", buying_role="decider")
    Worker(env.records, {}, worker_id="w").run_once(T0)
    late = local(date(2027, 2, 4), env)  # the worker was stopped over the due day
    env.records.clock = lambda: late
    assert run_due(env.records, late, worker_id="w") == 1
    assert care_tasks(env, key["id"]) == []
    assert schedule_timers(env)[1:] == [
        (SPRING + "2027-02-06", local(date(2027, 2, 3), env), "done"),
        (SPRING + "2028-01-26", local(date(2028, 1, 23), env), "pending")]


def test_a_calendar_without_a_date_left_sets_nothing(env: Env) -> None:
    after = datetime(2031, 1, 1, tzinfo=UTC)
    env.records.clock = lambda: after
    Worker(env.records, {}, worker_id="w").run_once(after)
    assert schedule_timers(env) == []


# -- the next date ---------------------------------------------------------------------------

@given(st.sets(st.dates(date(2020, 1, 1), date(2040, 12, 31)), max_size=8),
       st.datetimes(datetime(2019, 1, 1), datetime(2042, 1, 1), timezones=st.just(UTC)),
       st.integers(-10, 10), st.none() | st.dates(date(2020, 1, 1), date(2040, 12, 31)))
def test_the_next_date_is_the_first_not_past_and_after_the_last_run(
        dates: set[date], now: datetime, days: int, after: date | None) -> None:
    holiday = Holiday("h", Label.of(None, "H"), tuple(sorted(dates)))
    offset = timedelta(days=days)
    today = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    fits = [d for d in sorted(dates) if (after is None or d > after)
            and datetime.combine(d, datetime.min.time(), tzinfo=UTC) + offset >= today]
    found = next_date(holiday, offset, UTC, now, after=after)
    if not fits:
        assert found is None
    else:
        assert found == (fits[0], datetime.combine(fits[0], datetime.min.time(), tzinfo=UTC)
                         + offset)


# -- configuration mistakes -----------------------------------------------------------------

ACTIONS = "actions: [{notify: {to: owner, message: hi}}]"


@pytest.mark.parametrize(("spec", "expected"), [
    (f"{{name: s, holiday: spring_festivel, before: 3d, {ACTIONS}}}",
     "schedules.0.holiday: no holiday 'spring_festivel' in settings.yaml holidays (did you "
     "mean 'spring_festival'?)"),
    (f"{{name: s, holiday: new_year, before: 3d, after: 1d, {ACTIONS}}}", "schedules.0"),
    (f"{{name: s, holiday: new_year, when: 'influence + 1', {ACTIONS}}}",
     "formula 1:1: this formula gives a number, but a boolean is needed here"),
    ("{name: s, holiday: new_year, actions: [{set: {no_such: '1'}}]}",
     "schedules.0.actions.0.set.no_such: no field 'no_such' of contact"),
    (f"{{name: s, from: birthday, holiday: new_year, {ACTIONS}}}", "unknown key 'from'"),
])
def test_schedule_mistakes_are_named_where_they_are(config_dir: Path, spec: str,
                                                    expected: str) -> None:
    found = broken_flow_errors(config_dir,
                               f"flow: broken\nentity: contact\nschedules:\n  - {spec}\n")
    assert len(found) == 1 and expected in found[0], found
    assert found[0].split(":")[1] == "4" and found[0].split(":")[2].isdigit()


def test_a_schedules_name_is_its_own_among_the_flows_rules(config_dir: Path) -> None:
    (config_dir / "flows" / "broken.yaml").write_text(
        "flow: broken\nentity: contact\ntriggers:\n"
        f"  - {{name: s, on: [create], {ACTIONS}}}\n"
        f"schedules:\n  - {{name: s, holiday: new_year, {ACTIONS}}}\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_model(config_dir)
    assert [str(e).split("broken.yaml:")[1] for e in caught.value.errors] == [
        "6:12: schedules.0.name: 's' is already a trigger, timer or schedule of this flow"]


def test_the_shipped_flow_schedules_on_the_shipped_calendar() -> None:
    model = load_model(Path(__file__).resolve().parents[1] / "config")
    flow = next(f for f in model.flows if f.name == "holiday_care")
    assert [(s.name, s.holiday, s.offset) for s in flow.schedules] == [
        ("spring_festival", "spring_festival", -timedelta(days=3)),
        ("mid_autumn", "mid_autumn", -timedelta(days=3))]
    spring = model.settings.holiday("spring_festival")
    assert spring is not None and spring.dates[0] == date(2026, 2, 17)
    assert all(s.when is not None and s.when.sql_capable for s in flow.schedules)

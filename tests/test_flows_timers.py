"""Flow timers (engine/runtime/flows/timers.py): scheduled once by key, run exactly once for
their database effects — also by two workers at once, and by a worker killed mid-batch and
started again — failures retried with backoff up to a bound, never stopping the batch.
Both databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.flows import timers
from engine.runtime.flows.timers import (
    DONE,
    FAILED,
    MAX_ATTEMPTS,
    PENDING,
    Timer,
    TimerKinds,
    cancel,
    run_due,
    run_due_timers,
    schedule,
    timer_table,
)
from engine.runtime.records import Records
from engine.runtime.records.unit import UnitOfWork
from tests.conftest import Env

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def log_activity(records: Records) -> timers.Handler:
    """A handler whose database effect is one activity named after the timer's key."""

    def handle(unit: UnitOfWork, timer: Timer) -> None:
        records.create(SYSTEM, "activity", {"subject": timer.key, "kind": "task"}, unit=unit)

    return handle


def kinds_of(records: Records) -> TimerKinds:
    kinds = TimerKinds()
    kinds.register("log", log_activity(records))
    return kinds


def subjects(env: Env) -> Counter[str]:
    t = env.records.compiled("activity").table
    with env.engine.connect() as conn:
        return Counter(conn.execute(select(t.c.subject)).scalars())


def rows(env: Env) -> dict[str, dict[str, object]]:
    t = timer_table()
    with env.engine.connect() as conn:
        return {r["key"]: dict(r) for r in conn.execute(select(t)).mappings()}


def schedule_many(env: Env, count: int, due: datetime = T0, kind: str = "log") -> None:
    with env.records.unit(SYSTEM) as unit:
        for i in range(count):
            schedule(unit.conn, f"t-{i:05d}", due, kind=kind, entity="activity",
                     data={"n": i})


def test_schedule_is_idempotent_by_key_and_cancel_drops_only_what_has_not_run(env: Env) -> None:
    with env.engine.begin() as conn:
        assert schedule(conn, "remind:1", T0, kind="log", entity="account", record_id=1,
                        data={"why": "first"})
        assert not schedule(conn, "remind:1", T0 + timedelta(days=1), kind="log",
                            data={"why": "second"})
        assert schedule(conn, "remind:2", T0, kind="log")
    got = rows(env)
    assert got["remind:1"]["due_at"] == T0 and got["remind:1"]["data"] == {"why": "first"}
    assert got["remind:1"]["state"] == PENDING and got["remind:1"]["attempts"] == 0
    assert got["remind:1"]["entity"] == "account" and got["remind:1"]["record_id"] == 1

    kinds = kinds_of(env.records)
    assert run_due(env.records, T0, worker_id="w", kinds=kinds) == 2
    with env.engine.begin() as conn:
        assert not cancel(conn, "remind:1")  # it ran: it stays, and its key with it
        assert not schedule(conn, "remind:1", T0, kind="log")
        assert schedule(conn, "remind:3", T0 + timedelta(hours=1), kind="log")
        assert cancel(conn, "remind:3")
        assert not cancel(conn, "remind:3")
        assert not cancel(conn, "nothing")
    assert set(rows(env)) == {"remind:1", "remind:2"}
    assert subjects(env) == Counter({"remind:1": 1, "remind:2": 1})


def test_only_due_timers_run_in_due_order_and_once(env: Env) -> None:
    with env.engine.begin() as conn:
        schedule(conn, "late", T0 + timedelta(hours=2), kind="log")
        schedule(conn, "early", T0 - timedelta(hours=1), kind="log")
        schedule(conn, "now", T0, kind="log")
    kinds = kinds_of(env.records)
    assert run_due(env.records, T0, worker_id="w1", kinds=kinds) == 2
    got = rows(env)
    assert got["early"]["state"] == DONE and got["now"]["state"] == DONE
    assert got["early"]["done_at"] == T0 and got["early"]["claimed_by"] == "w1"
    assert got["early"]["attempts"] == 1 and got["early"]["next_attempt_at"] is None
    assert got["late"]["state"] == PENDING
    assert run_due(env.records, T0, worker_id="w1", kinds=kinds) == 0  # nothing twice
    assert run_due(env.records, T0 + timedelta(hours=2), worker_id="w1", kinds=kinds) == 1
    assert subjects(env) == Counter({"early": 1, "now": 1, "late": 1})
    # the effects went through the pipeline: audited like any create
    audit = env.records.audit
    with env.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit).where(
            audit.c.entity == "activity", audit.c.action == "create")).scalar_one() == 3


def test_batch_bounds_one_pass(env: Env) -> None:
    schedule_many(env, 7)
    kinds = kinds_of(env.records)
    assert run_due(env.records, T0, worker_id="w", kinds=kinds, batch=3) == 3
    assert run_due(env.records, T0, worker_id="w", kinds=kinds, batch=3) == 3
    assert run_due(env.records, T0, worker_id="w", kinds=kinds, batch=3) == 1
    assert sum(subjects(env).values()) == 7


def test_a_failing_handler_rolls_back_its_effects_is_retried_with_backoff_and_spares_the_batch(
        env: Env) -> None:
    records = env.records
    fail_keys = {"t-00001"}

    def flaky(unit: UnitOfWork, timer: Timer) -> None:
        records.create(SYSTEM, "activity", {"subject": timer.key, "kind": "task"}, unit=unit)
        if timer.key in fail_keys:
            raise RuntimeError(f"cannot handle {timer.key} yet")

    kinds = TimerKinds({"log": flaky})
    schedule_many(env, 3)
    run = run_due_timers(records, T0, worker_id="w", kinds=kinds)
    assert (run.done, run.failed) == (2, 1)
    got = rows(env)["t-00001"]
    assert got["state"] == FAILED and got["attempts"] == 1
    assert got["error"] == "RuntimeError: cannot handle t-00001 yet"
    assert got["next_attempt_at"] == T0 + timedelta(minutes=1)
    assert subjects(env) == Counter({"t-00000": 1, "t-00002": 1})  # the failed run left nothing

    # not before its backoff; then 2, 4, 8 minutes; past MAX_ATTEMPTS it is left failed
    assert run_due_timers(records, T0 + timedelta(seconds=59), worker_id="w",
                          kinds=kinds).claimed == 0
    at = T0
    for attempt in range(2, MAX_ATTEMPTS + 1):
        at = at + timers.backoff(attempt - 1)
        assert run_due_timers(records, at, worker_id="w", kinds=kinds).failed == 1
        got = rows(env)["t-00001"]
        assert got["attempts"] == attempt
        if attempt < MAX_ATTEMPTS:
            assert got["next_attempt_at"] == at + timers.backoff(attempt)
    assert got["state"] == FAILED and got["next_attempt_at"] is None
    assert run_due_timers(records, at + timedelta(days=30), worker_id="w",
                          kinds=kinds).claimed == 0

    # fixed, and put back by hand: it runs once
    fail_keys.clear()
    with env.engine.begin() as conn:
        assert timers.retry(conn, got["id"], at)
    assert run_due(records, at, worker_id="w", kinds=kinds) == 1
    assert rows(env)["t-00001"]["state"] == DONE
    assert subjects(env) == Counter({"t-00000": 1, "t-00001": 1, "t-00002": 1})


def test_a_timer_without_a_handler_fails_with_the_kind_named(env: Env) -> None:
    with env.engine.begin() as conn:
        schedule(conn, "x", T0, kind="nobody")
    run = run_due_timers(env.records, T0, worker_id="w", kinds=TimerKinds())
    assert run.failed == 1
    assert rows(env)["x"]["error"] == "NoHandler: no handler for timers of kind 'nobody'"


def test_registered_kinds_are_the_default(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timers, "KINDS", TimerKinds())
    timers.register("log", log_activity(env.records))
    with env.engine.begin() as conn:
        schedule(conn, "k", T0, kind="log")
    assert run_due(env.records, T0, worker_id="w") == 1


def test_a_timer_scheduled_in_a_write_that_fails_is_not_scheduled(env: Env) -> None:
    with pytest.raises(RuntimeError), env.records.unit(SYSTEM) as unit:
        schedule(unit.conn, "lost", T0, kind="log")
        raise RuntimeError("the write fails")
    assert rows(env) == {}


def test_two_workers_claim_the_same_1000_due_timers_and_each_runs_once(env: Env) -> None:
    count = 1000
    schedule_many(env, count)
    # two services, as two worker processes would have, sharing nothing but the database
    workers = [records_service(env.engine, env.model) for _ in range(2)]
    done = [0, 0]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(i: int) -> None:
        try:
            start.wait()
            kinds = kinds_of(workers[i])
            while (n := run_due(workers[i], T0, worker_id=f"w{i}", kinds=kinds,
                                batch=50)) > 0:
                done[i] += n
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(done) == count
    got = rows(env)
    assert {r["state"] for r in got.values()} == {DONE}
    assert {r["attempts"] for r in got.values()} == {1}
    assert Counter(r["claimed_by"] for r in got.values()) == Counter(w0=done[0], w1=done[1])
    made = subjects(env)
    assert len(made) == count and set(made.values()) == {1}
    if env.engine.dialect.name == "postgresql":  # SKIP LOCKED: both took their share
        assert min(done) > 0


CHILD = """
import sys, time
from datetime import datetime
from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from engine.runtime.flows.timers import TimerKinds, run_due

url, worker, when = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
engine = open_engine(url)
records = records_service(engine, load_model("config"))

def slow(unit, timer):
    records.create(SYSTEM, "activity", {"subject": timer.key, "kind": "task"}, unit=unit)
    time.sleep(0.01)

kinds = TimerKinds({"log": slow})
print("ready", flush=True)
while run_due(records, when, worker_id=worker, kinds=kinds, batch=10):
    pass
"""


def test_a_worker_killed_mid_batch_then_restarted_loses_nothing_and_doubles_nothing(
        env: Env, db_url: str) -> None:
    count = 300
    schedule_many(env, count)
    env_vars = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([sys.executable, "-c", CHILD, db_url, "doomed", T0.isoformat()],
                             cwd=REPO, env=env_vars, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while sum(subjects(env).values()) < 40:  # well into its batches
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(timeout=30)
        if first.stdout:
            first.stdout.close()
        if first.stderr:
            first.stderr.close()
    assert first.returncode == -signal.SIGKILL
    ran = sum(subjects(env).values())
    assert 40 <= ran < count  # killed mid-way

    second = subprocess.run([sys.executable, "-c", CHILD, db_url, "again", T0.isoformat()],
                            cwd=REPO, env=env_vars, capture_output=True, timeout=300,
                            check=False)
    assert second.returncode == 0, second.stderr.decode()
    made = subjects(env)
    assert len(made) == count and set(made.values()) == {1}
    got = rows(env)
    assert {r["state"] for r in got.values()} == {DONE}
    assert {r["attempts"] for r in got.values()} == {1}
    by = Counter(r["claimed_by"] for r in got.values())
    assert by["doomed"] == ran and by["again"] == count - ran
    with env.engine.connect() as conn:  # every effect audited once
        audit = env.records.audit
        assert conn.execute(select(func.count()).select_from(audit).where(
            audit.c.entity == "activity", audit.c.action == "create")).scalar_one() == count

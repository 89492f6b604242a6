"""Sessions and sign-in throttling (engine/runtime/sessions.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select

from engine.runtime.sessions import (
    LoginThrottle,
    SessionPolicy,
    Sessions,
    Started,
    ThrottlePolicy,
)
from tests.conftest import Env


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def sessions_of(env: Env, clock: FakeClock, **policy: timedelta) -> Sessions:
    return Sessions(env.engine, env.records.schema, SessionPolicy(**policy), clock=clock)


def test_a_session_stores_only_the_digest_of_its_id(env: Env) -> None:
    clock = FakeClock()
    sessions = sessions_of(env, clock)
    started = sessions.start(env.admin.id)
    with env.engine.connect() as conn:
        row = conn.execute(select(sessions.table)).mappings().one()
    assert row["token_hash"] == hashlib.sha256(started.token.encode()).hexdigest()
    assert started.token not in {str(v) for v in row.values()}
    assert row["user_id"] == env.admin.id and row["ended_at"] is None
    assert len(started.token) >= 43 and len(started.session.csrf_token) >= 43
    assert sessions.lookup(started.token) == started.session


def test_each_start_gives_a_new_id_and_csrf_secret(env: Env) -> None:
    sessions = sessions_of(env, FakeClock())
    a, b = sessions.start(env.admin.id), sessions.start(env.admin.id)
    assert a.token != b.token and a.session.csrf_token != b.session.csrf_token
    assert sessions.live_count(env.admin.id) == 2


def test_unknown_forged_and_oversized_ids_find_nothing(env: Env) -> None:
    sessions = sessions_of(env, FakeClock())
    started = sessions.start(env.admin.id)
    assert sessions.lookup(started.token[:-1]) is None
    assert sessions.lookup("") is None
    assert sessions.lookup("x" * 10_000) is None


def test_end_and_end_all(env: Env) -> None:
    sessions = sessions_of(env, FakeClock())
    other = env.users.add("bo", ["sales_rep"], password="bo-password")
    a, b = sessions.start(env.admin.id), sessions.start(env.admin.id)
    theirs = sessions.start(other.id)
    sessions.end(a.session.id)
    assert sessions.lookup(a.token) is None and sessions.lookup(b.token) is not None
    assert sessions.end_all(env.admin.id) == 1
    assert sessions.lookup(b.token) is None
    assert sessions.lookup(theirs.token) is not None  # other users keep theirs


def test_idle_and_lifetime_limits(env: Env) -> None:
    clock = FakeClock()
    sessions = sessions_of(env, clock, idle=timedelta(hours=1), lifetime=timedelta(hours=5),
                           touch_every=timedelta(minutes=1))
    started = sessions.start(env.admin.id)
    for _ in range(4):  # busy: each visit within the idle limit keeps it alive
        clock.advance(minutes=50)
        assert sessions.lookup(started.token) is not None
    clock.advance(minutes=61)
    assert sessions.lookup(started.token) is None  # idle too long

    fresh = sessions.start(env.admin.id)
    for _ in range(5):
        clock.advance(minutes=59)
        assert sessions.lookup(fresh.token) is not None
    clock.advance(minutes=10)  # 5 h 05 min old, though used 10 minutes ago
    assert sessions.lookup(fresh.token) is None


def seen_two_minutes_ago(env: Env) -> tuple[FakeClock, Sessions, Started, datetime]:
    """A session started at t0 (returned) that records visits every 5 minutes, 2 minutes
    later."""
    clock = FakeClock()
    sessions = sessions_of(env, clock, touch_every=timedelta(minutes=5))
    started = sessions.start(env.admin.id)
    t0 = clock.now
    clock.advance(minutes=2)
    return clock, sessions, started, t0


def test_last_seen_is_written_at_most_once_per_interval(env: Env) -> None:
    clock, sessions, started, t0 = seen_two_minutes_ago(env)
    sessions.lookup(started.token)
    assert sessions.lookup(started.token).last_seen_at == t0  # type: ignore[union-attr]
    clock.advance(minutes=4)
    sessions.lookup(started.token)  # 6 minutes since t0: recorded now
    seen = sessions.lookup(started.token)
    assert seen is not None and seen.last_seen_at == t0 + timedelta(minutes=6)


def test_a_read_only_lookup_says_when_the_visit_is_due_and_touch_records_it(env: Env) -> None:
    clock, sessions, started, t0 = seen_two_minutes_ago(env)
    found = sessions.signed_in(started.token, touch=False)
    assert found is not None and not found.touch_due and found.user is not None
    clock.advance(minutes=4)
    writes: list[str] = []

    def written(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            writes.append(statement)

    event.listen(env.engine, "before_cursor_execute", written)
    try:
        found = sessions.signed_in(started.token, touch=False)
    finally:
        event.remove(env.engine, "before_cursor_execute", written)
    assert found is not None and found.touch_due
    assert writes == []  # only read: the caller records the visit
    assert sessions.lookup(started.token).last_seen_at == t0  # type: ignore[union-attr]
    sessions.touch(found.session.id)
    seen = sessions.signed_in(started.token, touch=False)
    assert seen is not None and not seen.touch_due
    assert seen.session.last_seen_at == t0 + timedelta(minutes=6)


def test_an_inactive_users_sessions_stop_working(env: Env) -> None:
    sessions = sessions_of(env, FakeClock())
    user = env.users.add("cy", ["sales_rep"], password="cy-password", display_name="Cy")
    started = sessions.start(user.id)
    assert started.session.display_name == "Cy"
    env.users.set_active("cy", False)
    assert sessions.lookup(started.token) is None


def throttle_of(env: Env, clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(env.engine, env.records.schema,
                         ThrottlePolicy(free_per_name=3, free_per_address=5,
                                        first_wait=timedelta(seconds=10),
                                        max_wait=timedelta(minutes=10),
                                        forget_after=timedelta(hours=1)), clock=clock)


def test_failures_of_a_name_from_one_address_make_it_wait_longer_each_time(env: Env) -> None:
    clock = FakeClock()
    throttle = throttle_of(env, clock)
    for name in ("admin", "nobody_at_all"):  # an unknown name is counted the same way
        for _ in range(3):
            assert throttle.attempt(name, "10.0.0.1") is None
        waits = []
        for _ in range(8):
            wait = throttle.attempt(name.upper(), "10.0.0.1")  # names match in any case
            assert wait is not None
            assert throttle.attempt(name, "10.0.0.1") == wait  # a refused try adds nothing
            waits.append(wait)
            clock.advance(seconds=wait)
            assert throttle.attempt(name, "10.0.0.1") is None
        assert waits == [10, 20, 40, 80, 160, 320, 600, 600]  # doubling, up to max_wait
        assert throttle.failures(name, "10.0.0.1") == 11
        clock.advance(hours=1)  # quiet for forget_after: the count starts again
        assert throttle.failures(name, "10.0.0.1") == 0
        assert throttle.attempt(name, "10.0.0.1") is None


def test_guesses_from_one_address_never_slow_the_name_from_another(env: Env) -> None:
    clock = FakeClock()
    throttle = throttle_of(env, clock)
    for _ in range(3):
        throttle.attempt("admin", "10.6.6.6")
    assert throttle.attempt("admin", "10.6.6.6") is not None
    assert throttle.attempt("admin", "10.0.0.2") is None  # the administrator at their desk


def test_failures_from_one_address_for_many_names_make_that_address_wait(env: Env) -> None:
    clock = FakeClock()
    throttle = throttle_of(env, clock)
    for i in range(5):
        assert throttle.attempt(f"user_{i}", "10.1.1.1") is None
    assert throttle.attempt("admin", "10.1.1.1") is not None
    assert throttle.attempt("admin", "10.1.1.2") is None


def test_the_right_password_forgets_the_failures_of_its_name_from_its_address(
        env: Env) -> None:
    clock = FakeClock()
    throttle = throttle_of(env, clock)
    for _ in range(2):
        throttle.attempt("admin", "10.0.0.1")
    throttle.attempt("admin", "10.0.0.2")
    throttle.attempt("admin", "10.0.0.1")
    throttle.succeeded("admin", "10.0.0.1")
    assert throttle.failures("admin", "10.0.0.1") == 0
    assert throttle.failures("admin", "10.0.0.2") == 1  # another address's still count
    for _ in range(3):
        assert throttle.attempt("admin", "10.0.0.1") is None
    assert throttle.attempt("admin", "10.0.0.1") is not None


def test_guesses_sent_at_once_are_counted_before_any_is_let_through(env: Env) -> None:
    """Checking and counting are one step: of 20 guesses arriving together, only the free
    ones pass, however the threads interleave (a row lock on PostgreSQL, the write lock on
    SQLite)."""
    clock = FakeClock()  # stands still: no try becomes due while the others run
    throttle = throttle_of(env, clock)
    start = threading.Barrier(20)

    def guess(_: int) -> int | None:
        start.wait()
        return throttle.attempt("admin", "10.0.0.1")

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(guess, range(20)))
    assert answers.count(None) == 3
    assert throttle.failures("admin", "10.0.0.1") == 3


def test_signed_in_reads_the_session_and_its_user_in_one_query(env: Env) -> None:
    """What the page guard calls on every request: the same checks as `lookup` (ended,
    idle, too old, user inactive), and the user from the same row."""
    clock = FakeClock()
    sessions = sessions_of(env, clock, idle=timedelta(minutes=30))
    started = sessions.start(env.admin.id)
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(env.engine, "before_cursor_execute", seen)
    try:
        found = sessions.signed_in(started.token)
    finally:
        event.remove(env.engine, "before_cursor_execute", seen)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert found is not None and found.session == started.session
    assert found.user == env.users.get(env.admin.id)
    assert sessions.signed_in(started.token[:-1]) is None
    clock.advance(minutes=31)
    assert sessions.signed_in(started.token) is None  # idle too long
    fresh = sessions.start(env.admin.id)
    sessions.end(fresh.session.id)
    assert sessions.signed_in(fresh.token) is None  # ended
    leaving = env.users.add("leaving", ["sales_rep"], password="a-password")
    theirs = sessions.start(leaving.id)
    assert sessions.signed_in(theirs.token) is not None
    env.users.set_active("leaving", False)
    assert sessions.signed_in(theirs.token) is None  # user inactive

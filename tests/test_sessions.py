"""Sessions and sign-in throttling (engine/runtime/sessions.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
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
                         ThrottlePolicy(max_per_name=3, max_per_address=5,
                                        window=timedelta(minutes=10)), clock=clock)


def test_failures_per_name_pause_that_name_until_the_window_passes(env: Env) -> None:
    clock = FakeClock()
    throttle = throttle_of(env, clock)
    for name in ("admin", "nobody_at_all"):  # an unknown name is counted the same way
        for i in range(3):
            assert throttle.retry_after(name, f"10.0.0.{i}") is None
            throttle.record_failure(name, f"10.0.0.{i}")
            clock.advance(minutes=1)
        wait = throttle.retry_after(name.upper(), "10.9.9.9")  # names match in any case
        assert wait is not None and 0 < wait <= 10 * 60
        clock.advance(seconds=wait)
        assert throttle.retry_after(name, "10.9.9.9") is None
        clock.advance(minutes=20)


def test_failures_per_address_pause_that_address_for_every_name(env: Env) -> None:
    clock = FakeClock()
    throttle = throttle_of(env, clock)
    for i in range(5):
        throttle.record_failure(f"user_{i}", "10.1.1.1")
    assert throttle.retry_after("admin", "10.1.1.1") is not None
    assert throttle.retry_after("admin", "10.1.1.2") is None


def test_a_good_sign_in_clears_the_failures_of_its_name_and_address(env: Env) -> None:
    clock = FakeClock()
    throttle = throttle_of(env, clock)
    throttle.record_failure("admin", "10.0.0.1")
    throttle.record_failure("admin", "10.0.0.1")
    throttle.record_failure("admin", "10.0.0.2")
    throttle.clear("admin", "10.0.0.1")
    throttle.record_failure("admin", "10.0.0.1")
    assert throttle.retry_after("admin", "10.0.0.3") is None  # 2 failures count, not 4
    throttle.record_failure("admin", "10.0.0.1")
    assert throttle.retry_after("admin", "10.0.0.3") is not None  # the limit is 3


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

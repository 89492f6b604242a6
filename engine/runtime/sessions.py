"""Browser sessions and sign-in throttling, kept in the database so any worker can serve
any request (DESIGN §7: the web tier is stateless).

A session id is 32 random bytes; the database keeps only its SHA-256 digest, so a leaked
database copy cannot be replayed as a cookie. Each session carries its own CSRF secret.
Failed sign-ins are counted in crm_login_throttle per (user name, client address) and per
address, with waits that double past a few free failures (`ThrottlePolicy`); the count does
not depend on whether the name exists.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    case,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.runtime.db import WRITE, is_sqlite
from engine.runtime.schema.tables import (
    LOGIN_THROTTLE_TABLE,
    SESSION_TABLE,
    USER_TABLE,
    Schema,
)
from engine.runtime.users import User, user_of

Clock = Callable[[], datetime]
MAX_TOKEN = 200  # a real session id is 43 characters; longer input is rejected unread


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(hours=12)
    """A session unused this long has ended."""
    lifetime: timedelta = timedelta(days=7)
    """A session older than this has ended, however busy."""
    touch_every: timedelta = timedelta(minutes=1)
    """last_seen_at is written at most this often, not on every request."""


@dataclass(frozen=True)
class Session:
    id: int
    user_id: int
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    display_name: str


@dataclass(frozen=True)
class SignedIn:
    """A live session and its user (None when `Sessions.lookup` did not read it)."""

    session: Session
    user: User | None
    touch_due: bool = False
    """The visit is not yet recorded (`signed_in(…, touch=False)`): call `touch`."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """The header counts (`Sessions(counts=…)`) read with the session, by name."""


_USER = "user__"  # the prefix of the user's columns in the session query
_COUNT = "count__"  # the prefix of the header counts in the session query

HeaderCount = Callable[[ColumnElement[Any]], ColumnElement[int]]
"""A count a page header shows (unread notifications): a scalar subquery on the user id
column of the session query."""


@dataclass(frozen=True)
class Started:
    """A new session and the plain id that goes into the cookie (and nowhere else)."""

    token: str
    session: Session


class Sessions:
    def __init__(self, engine: Engine, schema: Schema, policy: SessionPolicy | None = None,
                 clock: Clock = _utcnow, *,
                 counts: Mapping[str, HeaderCount] | None = None) -> None:
        """`counts`: the page header's counts by name, read in the query that finds a
        signed-in session (`signed_in`), so a page pays no query of its own for them."""
        self.engine = engine
        self.writer = engine.execution_options(**WRITE)
        self.schema = schema
        self.table = schema.table(SESSION_TABLE)
        self.users = schema.table(USER_TABLE)
        self.policy = policy or SessionPolicy()
        self.clock = clock
        self.counts = dict(counts or {})

    def start(self, user_id: int) -> Started:
        """A new session for `user_id`: always a fresh id, so a fixated one is never reused."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        with self.writer.begin() as conn:
            new_id = conn.execute(insert(self.table).values(
                token_hash=_digest(token), user_id=user_id, csrf_secret=csrf,
                created_at=now, last_seen_at=now,
            ).returning(self.table.c.id)).scalar_one()
        session = self.lookup(token)
        assert session is not None and session.id == new_id
        return Started(token, session)

    def lookup(self, token: str) -> Session | None:
        """The live session of a cookie's id, or None (unknown, ended, expired, user
        inactive). Records the visit in last_seen_at at most once per `touch_every`."""
        found = self._live(token, with_user=False)
        return None if found is None else found.session

    def signed_in(self, token: str, *, touch: bool = True) -> SignedIn | None:
        """Like `lookup`, with the session's user read in the same query (a page
        request needs both: one query, not two). `touch=False`: only read (no write that
        could wait for another writer); SignedIn.touch_due says when to call `touch`."""
        return self._live(token, with_user=True, touch=touch)

    def touch(self, session_id: int) -> None:
        """Record a visit of the session now (last_seen_at)."""
        with self.writer.begin() as conn:
            conn.execute(update(self.table).where(self.table.c.id == session_id)
                         .values(last_seen_at=self.clock()))

    def _live(self, token: str, *, with_user: bool, touch: bool = True) -> SignedIn | None:
        if not token or len(token) > MAX_TOKEN:
            return None
        s, u = self.table, self.users
        now = self.clock()
        read = list(u.c) if with_user else [u.c.display_name, u.c.name]
        columns = [c.label(f"{_USER}{c.name}") for c in read]
        if with_user:
            columns += [count(s.c.user_id).label(f"{_COUNT}{name}")
                        for name, count in self.counts.items()]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s, *columns)
                .select_from(s.join(u, u.c.id == s.c.user_id))
                .where(s.c.token_hash == _digest(token), s.c.ended_at.is_(None),
                       u.c.active.is_(True),
                       s.c.last_seen_at > now - self.policy.idle,
                       s.c.created_at > now - self.policy.lifetime)).first()
        if row is None:
            return None
        r = row._mapping
        touch_due = now - r["last_seen_at"] >= self.policy.touch_every
        if touch_due and touch:
            self.touch(r["id"])
        session = Session(id=r["id"], user_id=r["user_id"], csrf_token=r["csrf_secret"],
                          created_at=r["created_at"], last_seen_at=r["last_seen_at"],
                          display_name=r[f"{_USER}display_name"] or r[f"{_USER}name"])
        user = user_of({k[len(_USER):]: v for k, v in r.items() if k.startswith(_USER)}) \
            if with_user else None
        counts = {k[len(_COUNT):]: int(v or 0) for k, v in r.items() if k.startswith(_COUNT)}
        return SignedIn(session, user, touch_due and not touch, counts)

    def former(self, token: str) -> Session | None:
        """The session of a cookie's id whatever its state (ended, idle, too old), or None
        for an id that never was. Used only to tell whose form arrived after the end."""
        if not token or len(token) > MAX_TOKEN:
            return None
        s, u = self.table, self.users
        with self.engine.connect() as conn:
            row = conn.execute(select(s, u.c.display_name, u.c.name)
                               .select_from(s.join(u, u.c.id == s.c.user_id))
                               .where(s.c.token_hash == _digest(token))).first()
        if row is None:
            return None
        return Session(id=row.id, user_id=row.user_id, csrf_token=row.csrf_secret,
                       created_at=row.created_at, last_seen_at=row.last_seen_at,
                       display_name=row.display_name or row.name)

    def end(self, session_id: int) -> None:
        with self.writer.begin() as conn:
            conn.execute(update(self.table).where(self.table.c.id == session_id,
                                                  self.table.c.ended_at.is_(None))
                         .values(ended_at=self.clock()))

    def end_all(self, user_id: int) -> int:
        """End every session of a user (password change, deactivation); returns how many."""
        with self.writer.begin() as conn:
            result = conn.execute(update(self.table).where(self.table.c.user_id == user_id,
                                                           self.table.c.ended_at.is_(None))
                                  .values(ended_at=self.clock()))
        return int(result.rowcount)

    def live_count(self, user_id: int) -> int:
        s = self.table
        now = self.clock()
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(s).where(
                s.c.user_id == user_id, s.c.ended_at.is_(None),
                s.c.last_seen_at > now - self.policy.idle,
                s.c.created_at > now - self.policy.lifetime)).scalar_one())


@dataclass(frozen=True)
class ThrottlePolicy:
    """How sign-in guessing slows down. Failures are counted per (user name, client
    address): guesses from one address never slow down the same name from another, so an
    attacker cannot lock a user (or the administrator) out. Past the free failures each
    further try waits twice as long as the last (first_wait, 2 first_wait, …, max_wait).
    """

    free_per_name: int = 5
    """Failures of one name from one address before the waits begin."""
    free_per_address: int = 20
    """Failures from one address for any names before the waits begin; higher than per
    name because an office may share one address."""
    first_wait: timedelta = timedelta(seconds=1)
    max_wait: timedelta = timedelta(minutes=15)
    forget_after: timedelta = timedelta(hours=1)
    """A counter with no failure for this long starts again from zero."""

    def wait(self, failures: int, free: int) -> timedelta | None:
        """The pause after the last of `failures` failures, or None while some are free.

        >>> p = ThrottlePolicy(first_wait=timedelta(seconds=1), max_wait=timedelta(minutes=1))
        >>> [p.wait(n, 5) for n in (4, 5, 6)], p.wait(50, 5)
        ([None, datetime.timedelta(seconds=1), datetime.timedelta(seconds=2)], \
datetime.timedelta(seconds=60))
        """
        if failures < free:
            return None
        doubled: timedelta = self.first_wait * 2 ** min(failures - free, 40)
        return min(doubled, self.max_wait)


ADDRESS_ROW = ""
"""The user_name of an address's counter for all names (no typed name maps to it)."""


class LoginThrottle:
    """Counts sign-in attempts so that checking and counting are one step: `attempt` is
    called before the password is checked and counts the attempt as a failure under a row
    lock (many guesses at once cannot all pass a check made before any is counted);
    `succeeded` takes it back after the right password."""

    def __init__(self, engine: Engine, schema: Schema, policy: ThrottlePolicy | None = None,
                 clock: Clock = _utcnow) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**WRITE)
        self.table = schema.table(LOGIN_THROTTLE_TABLE)
        self.policy = policy or ThrottlePolicy()
        self.clock = clock

    def attempt(self, name: str, address: str) -> int | None:
        """Count a sign-in attempt for `name` from `address` and return None; or, when the
        name (from this address) or the address must wait, count nothing and return the
        seconds to wait. Works the same for names that do not exist."""
        now = self.clock()
        t = self.table
        keys = ((_name_key(name), self.policy.free_per_name),
                (ADDRESS_ROW, self.policy.free_per_address))
        address = _address_key(address)
        stale = now - self.policy.forget_after
        with self.writer.begin() as conn:
            self._forget(conn, stale)
            waits: list[timedelta] = []
            for user_name, free in keys:  # always in this order: no deadlock between two
                conn.execute(_insert_missing(conn, t).values(
                    user_name=user_name, address=address, failures=0, last_at=now))
                row = conn.execute(select(t.c.failures, t.c.last_at).where(
                    t.c.user_name == user_name, t.c.address == address).with_for_update()
                ).one()
                failures = 0 if row.last_at <= stale else row.failures
                pause = self.policy.wait(failures, free)
                if pause is not None and row.last_at + pause > now:
                    waits.append(row.last_at + pause - now)
            if waits:
                return max(1, math.ceil(max(waits).total_seconds()))
            conn.execute(update(t).where(
                t.c.user_name.in_([k for k, _ in keys]), t.c.address == address).values(
                failures=case((t.c.last_at <= stale, 1), else_=t.c.failures + 1),
                last_at=now))
        return None

    def succeeded(self, name: str, address: str) -> None:
        """The attempt had the right password: forget this name's failures from this
        address, and take the attempt back from the address's count. Failures of the name
        from other addresses still count for those addresses."""
        t = self.table
        address = _address_key(address)
        with self.writer.begin() as conn:
            conn.execute(delete(t).where(t.c.user_name == _name_key(name),
                                         t.c.address == address))
            conn.execute(update(t).where(t.c.user_name == ADDRESS_ROW, t.c.address == address,
                                         t.c.failures > 0)
                         .values(failures=t.c.failures - 1))

    def failures(self, name: str, address: str) -> int:
        """The failures counted for `name` from `address` (0 once forgotten)."""
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.failures, t.c.last_at).where(
                t.c.user_name == _name_key(name), t.c.address == _address_key(address))
            ).first()
        if row is None or row.last_at <= self.clock() - self.policy.forget_after:
            return 0
        return int(row.failures)

    def _forget(self, conn: Connection, stale: datetime) -> None:
        # Old counters count for nothing; dropping them here keeps the table small without a
        # clean-up job. Rows another attempt holds are skipped, never waited for.
        t = self.table
        old = select(t.c.user_name, t.c.address).where(t.c.last_at <= stale).limit(100)
        conn.execute(delete(t).where(tuple_(t.c.user_name, t.c.address).in_(
            old.with_for_update(skip_locked=True))))


def _insert_missing(conn: Connection, table: Table) -> Any:
    """INSERT that does nothing when the row exists (and waits for one being inserted)."""
    if is_sqlite(conn.engine):
        return sqlite_insert(table).on_conflict_do_nothing()
    return pg_insert(table).on_conflict_do_nothing()


def _name_key(name: str) -> str:
    # A blank name gets a key of its own: ADDRESS_ROW belongs to the address's counter.
    return name.strip().lower()[:80] or "-"


def _address_key(address: str) -> str:
    return (address or "unknown")[:64]

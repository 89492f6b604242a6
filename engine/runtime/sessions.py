"""Browser sessions and sign-in throttling, kept in the database so any worker can serve
any request (DESIGN §7: the web tier is stateless).

A session id is 32 random bytes; the database keeps only its SHA-256 digest, so a leaked
database copy cannot be replayed as a cookie. Each session carries its own CSRF secret.
Failed sign-ins are rows in crm_login_attempt, counted per user name and per client
address over a sliding window; the count does not depend on whether the name exists.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select, update

from engine.runtime.db import WRITE
from engine.runtime.schema.tables import (
    LOGIN_ATTEMPT_TABLE,
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


_USER = "user__"  # the prefix of the user's columns in the session query


@dataclass(frozen=True)
class Started:
    """A new session and the plain id that goes into the cookie (and nowhere else)."""

    token: str
    session: Session


class Sessions:
    def __init__(self, engine: Engine, schema: Schema, policy: SessionPolicy | None = None,
                 clock: Clock = _utcnow) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**WRITE)
        self.table = schema.table(SESSION_TABLE)
        self.users = schema.table(USER_TABLE)
        self.policy = policy or SessionPolicy()
        self.clock = clock

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
        return SignedIn(session, user, touch_due and not touch)

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
    max_per_name: int = 5
    """Failures for one user name within `window` before sign-in for that name pauses."""
    max_per_address: int = 20
    """Failures from one client address (any names) within `window` before it pauses;
    higher than per name because an office may share one address."""
    window: timedelta = timedelta(minutes=15)


class LoginThrottle:
    def __init__(self, engine: Engine, schema: Schema, policy: ThrottlePolicy | None = None,
                 clock: Clock = _utcnow) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**WRITE)
        self.table = schema.table(LOGIN_ATTEMPT_TABLE)
        self.policy = policy or ThrottlePolicy()
        self.clock = clock

    def retry_after(self, name: str, address: str) -> int | None:
        """Seconds until a sign-in for `name` from `address` may be tried again, or None
        when it may be tried now. Checked before the password, for any name."""
        now = self.clock()
        since = now - self.policy.window
        t = self.table
        waits: list[timedelta] = []
        with self.engine.connect() as conn:
            for column, value, limit in ((t.c.user_name, _name_key(name),
                                          self.policy.max_per_name),
                                         (t.c.address, _address_key(address),
                                          self.policy.max_per_address)):
                # The limit-th most recent failure: once it leaves the window, the count
                # drops below the limit.
                at = conn.execute(select(t.c.at).where(column == value, t.c.at > since)
                                  .order_by(t.c.at.desc()).offset(limit - 1).limit(1)
                                  ).scalar_one_or_none()
                if at is not None:
                    waits.append(at + self.policy.window - now)
        if not waits:
            return None
        return max(1, math.ceil(max(waits).total_seconds()))

    def record_failure(self, name: str, address: str) -> None:
        now = self.clock()
        t = self.table
        with self.writer.begin() as conn:
            conn.execute(insert(t).values(at=now, user_name=_name_key(name),
                                          address=_address_key(address)))
            # Rows past the window count for nothing; dropping them here keeps the table
            # small without a separate clean-up job.
            conn.execute(delete(t).where(t.c.at <= now - self.policy.window))

    def clear(self, name: str, address: str) -> None:
        """Forget the failures of this name from this address after a good sign-in; other
        addresses' failures for the name still count."""
        t = self.table
        with self.writer.begin() as conn:
            conn.execute(delete(t).where(t.c.user_name == _name_key(name),
                                         t.c.address == _address_key(address)))


def _name_key(name: str) -> str:
    return name.strip().lower()[:80]


def _address_key(address: str) -> str:
    return (address or "unknown")[:64]

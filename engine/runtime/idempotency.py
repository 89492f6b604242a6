"""Idempotency keys: a retried API POST gets the first answer, never a second write.

A caller sends `Idempotency-Key: <key>` with a POST (docs/api.md "Idempotency keys"). The
key is the caller's (one row per user and key in `crm_idempotency`) and stands for one
request: its method, path, query and body, as a SHA-256 (`request_hash`). The web edge
(engine/web/idempotency.py) asks `IdempotencyKeys.claim` before the request runs:

- no row: a row is inserted in a short transaction of its own (`state` running, a random
  `claim` naming this request) and the request runs;
- a row of another request (another hash): `KeyReused` (422);
- a row with its answer (`done`): that answer is sent again;
- a row still `running` or `committed` (its answer not stored yet): `KeyInProgress` (409) —
  unless its claim is older than `LEASE`: a `running` one was abandoned (the server died
  before any write committed), and this request takes it over; a `committed` one wrote and
  then lost its answer (the server died in between): `AnswerLost` (409) names what it wrote,
  so the client can read it, and nothing runs again.

The crash window — the records committed, the answer not yet stored — is closed by the
before-commit hook `install_idempotency` registers (engine/runtime/assembly.py): while a
request holding a key runs (`holding`, a context variable the web edge sets), every unit of
work it commits marks the key's row `committed`, with the records it wrote, **in the unit's
own transaction**. Either both the records and the mark stay, or neither does. The mark is
made only while the row still carries this request's claim: a request whose claim was taken
over after its lease fails (409) and writes nothing. The answer is stored right after the
request (`store`); an answer with a 5xx status is not (`release`): a retry runs again, unless
the request had committed a write, in which case the row stays `committed`.

Rows live 24 hours (`TTL`); expired ones are deleted when their key comes again, and all of
them at most once a minute per process, by the next claim.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from weakref import WeakSet

from sqlalchemy import Engine, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.messages import msg
from engine.runtime.db import WRITE
from engine.runtime.errors import Conflict, Invalid
from engine.runtime.schema.tables import IDEMPOTENCY_TABLE, engine_table

if TYPE_CHECKING:
    from engine.runtime.records import Records
    from engine.runtime.records.unit import RecordChange, UnitOfWork

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
LEASE = timedelta(minutes=5)
"""A claim this old whose request never committed a write is taken as abandoned."""
CLEANUP_EVERY = timedelta(minutes=1)
MAX_WRITTEN = 20
"""Records named in a claim's `written` (the first ones the request changed)."""


class KeyReused(Invalid):
    code = "idempotency_key_reused"


class KeyInProgress(Conflict):
    code = "idempotency_in_progress"


class AnswerLost(Conflict):
    code = "idempotency_answer_lost"


@dataclass(frozen=True, slots=True)
class Replay:
    """The stored answer of the first request with the key."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(eq=False)
class Claim:
    """A request holding a key, while it runs."""

    user_id: int
    key: str
    request_hash: str
    token: str
    committed: bool = False
    active: bool = True
    """False once the request has answered: work it left running (a background thread
    that inherited the context) no longer writes on its behalf."""
    units: WeakSet[UnitOfWork] = field(default_factory=WeakSet)


_HOLDING: ContextVar[Claim | None] = ContextVar("crm_idempotency_claim", default=None)


@contextmanager
def holding(claim: Claim) -> Iterator[Claim]:
    """The block is the request holding `claim`: the writes it commits mark the key."""
    reset = _HOLDING.set(claim)
    try:
        yield claim
    finally:
        _HOLDING.reset(reset)


def valid_key(value: str) -> bool:
    """1 to 255 visible ASCII characters (no space, no control character)."""
    return 0 < len(value) <= 255 and all("!" <= ch <= "~" for ch in value)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IdempotencyKeys:
    """The `crm_idempotency` rows of one database."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _utcnow) -> None:
        self.writer = engine.execution_options(**WRITE)
        self.table: Table = engine_table(IDEMPOTENCY_TABLE)
        self.clock = clock
        self._cleaned: datetime | None = None

    def claim(self, user_id: int, key: str, request_hash: str) -> Claim | Replay:
        """Claim `key` for a request of `user_id` (a Claim: run it), or the first answer
        (a Replay). KeyReused, KeyInProgress or AnswerLost otherwise."""
        t = self.table
        now = self.clock()
        self._cleanup(now)
        token = secrets.token_hex(16)
        for _attempt in range(5):
            try:
                with self.writer.begin() as conn:
                    conn.execute(insert(t).values(
                        user_id=user_id, key=key, request_hash=request_hash, claim=token,
                        state="running", claimed_at=now, expires_at=now + TTL))
                return Claim(user_id, key, request_hash, token)
            except IntegrityError:
                pass
            with self.writer.begin() as conn:
                row = conn.execute(select(t).where(t.c.user_id == user_id, t.c.key == key)
                                   ).mappings().first()
                if row is None:
                    continue  # expired and deleted meanwhile: claim it anew
                if row["expires_at"] <= now:
                    conn.execute(delete(t).where(t.c.user_id == user_id, t.c.key == key,
                                                 t.c.claim == row["claim"]))
                    continue
                if row["request_hash"] != request_hash:
                    raise KeyReused(
                        msg("this Idempotency-Key was used for another request (another "
                            "method, path or body); use a new key for a new request"),
                        {HEADER: msg("used for another request")})
                if row["state"] == "done":
                    return Replay(int(row["status"]),
                                  [(str(k), str(v)) for k, v in row["headers"] or []],
                                  bytes(row["body"] or b""))
                stale = row["claimed_at"] + LEASE <= now
                if row["state"] == "running" and stale:
                    taken = conn.execute(update(t).where(
                        t.c.user_id == user_id, t.c.key == key, t.c.claim == row["claim"],
                        t.c.state == "running").values(claim=token, claimed_at=now))
                    if taken.rowcount == 1:
                        return Claim(user_id, key, request_hash, token)
                    continue
                if row["state"] == "committed" and stale:
                    written = ", ".join(str(w) for w in row["written"] or []) or "-"
                    raise AnswerLost(
                        msg("the first request with this Idempotency-Key was carried out "
                            "(it wrote %(written)s) but its answer was lost; read the "
                            "records instead of sending it again", written=written),
                        {HEADER: msg("carried out, answer lost")})
                raise KeyInProgress(
                    msg("a request with this Idempotency-Key is still running; try again "
                        "when it has finished"),
                    {HEADER: msg("a request with this key is still running")})
        raise KeyInProgress(msg("a request with this Idempotency-Key is still running; try "
                                "again when it has finished"),
                            {HEADER: msg("a request with this key is still running")})

    def store(self, claim: Claim, status: int, headers: Sequence[tuple[str, str]],
              body: bytes) -> None:
        """The request's answer, sent again to every retry for the rest of the key's life."""
        t = self.table
        with self.writer.begin() as conn:
            conn.execute(update(t).where(*self._mine(claim)).values(
                state="done", status=status, headers=[list(h) for h in headers], body=body))

    def release(self, claim: Claim) -> None:
        """The request failed (5xx) or never answered: a retry may run it again, unless it
        committed a write (its row stays `committed`)."""
        t = self.table
        with self.writer.begin() as conn:
            conn.execute(delete(t).where(*self._mine(claim), t.c.state == "running"))

    def mark(self, unit: UnitOfWork, claim: Claim, changes: Sequence[RecordChange]) -> None:
        """In `unit`'s transaction: the key's request commits writes (once per unit)."""
        if unit in claim.units:
            return
        claim.units.add(unit)
        t = self.table
        written = [f"{c.entity}/{c.record_id}" for c in changes if c.depth == 0][:MAX_WRITTEN]
        done = unit.conn.execute(update(t).where(*self._mine(claim)).values(
            state="committed", written=written))
        if done.rowcount != 1:
            raise KeyInProgress(
                msg("this request's Idempotency-Key was taken over by a retry; nothing of "
                    "it was saved"),
                {HEADER: msg("taken over by a retry")})
        claim.committed = True

    def _mine(self, claim: Claim) -> tuple[Any, ...]:
        t = self.table
        return (t.c.user_id == claim.user_id, t.c.key == claim.key, t.c.claim == claim.token)

    def _cleanup(self, now: datetime) -> None:
        if self._cleaned is not None and now - self._cleaned < CLEANUP_EVERY:
            return
        self._cleaned = now
        with self.writer.begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.expires_at <= now))


def install_idempotency(records: Records) -> None:
    """Mark the key of the request that commits a unit of work, in the unit's transaction."""
    keys = IdempotencyKeys(records.engine)

    def mark(unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        claim = _HOLDING.get()
        if claim is None or not claim.active or unit.dry_run or not changes:
            return
        keys.mark(unit, claim, changes)

    records.hooks.on_before_commit("idempotency", mark)


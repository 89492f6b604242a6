"""Flow timers: actions due at a time, each run exactly once for its database effects.

A timer is one `crm_timer` row with a unique key (the flows core makes it from the rule,
the record and the moment, so scheduling the same timer twice leaves one row). A worker
(`crm worker`, engine/runtime/flows/worker.py) calls `run_due`, which takes due rows one at
a time, each in a write transaction of its own opened through the records service's unit
of work:

1. claim: on PostgreSQL `SELECT … FOR UPDATE SKIP LOCKED` of the next due row, so two
   workers never take the same row and never wait for each other; on SQLite, which has one
   writer at a time (`BEGIN IMMEDIATE`), the next due row and a conditional UPDATE of it;
2. the handler registered for the row's kind applies its database effects through the
   unit (`handler(unit, timer)`: record writes, with their hooks and audit rows);
3. the row is marked done — in the same transaction as 2, so the effects and the mark
   commit together or not at all. A worker killed anywhere leaves either both or neither:
   the row is still due and the next pass runs it. Exactly once for database effects.

A handler that raises rolls its effects back; the row is then marked failed with the error
in a transaction of its own (attempts + 1) and is due again after a backoff (1, 2, 4, 8
minutes), up to `MAX_ATTEMPTS`; the batch goes on with the next row. External effects
(email, webhooks) are not a handler's to send: it enqueues them in the outbox
(engine/runtime/flows/outbox.py) inside the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, Table, Update, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.runtime.access import SYSTEM
from engine.runtime.schema.tables import TIMER_TABLE, engine_table

if TYPE_CHECKING:
    from engine.runtime.records import Records
    from engine.runtime.records.unit import UnitOfWork

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = "pending", "done", "failed"
MAX_ATTEMPTS = 5
"""Runs of a failing timer before it is left failed for good (`retry` puts it back)."""
RETRY_BASE = timedelta(minutes=1)
"""The wait after a timer's first failure; each further failure doubles it."""
MAX_ERROR = 2000
"""Characters of an error kept on the row."""


@dataclass(frozen=True)
class Timer:
    """A due timer as its handler sees it."""

    id: int
    key: str
    kind: str
    entity: str | None
    record_id: int | None
    due_at: datetime
    data: Mapping[str, Any]
    attempts: int
    """Runs before this one (each of them failed)."""


Handler = Callable[["UnitOfWork", Timer], None]
Preparer = Callable[["Records", datetime], None]
"""Run at the start of each worker pass (engine/runtime/flows/worker.py): sets timers that
come from no write (a flow's schedules on the holiday calendar:
engine/runtime/flows/schedules.py)."""


@dataclass
class TimerKinds:
    """Which handler runs the timers of each kind."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    preparers: dict[str, Preparer] = field(default_factory=dict)

    def register(self, kind: str, handler: Handler) -> None:
        """`handler` runs the timers of `kind` from now on (a later registration of the
        same kind replaces it: the flows core registers its handlers when it is
        assembled)."""
        self.handlers[kind] = handler

    def get(self, kind: str) -> Handler | None:
        return self.handlers.get(kind)

    def prepare(self, kind: str, preparer: Preparer) -> None:
        """`preparer(records, now)` runs at the start of each pass (before the due timers
        are claimed): it may set timers of `kind` due now or later."""
        self.preparers[kind] = preparer

    def prepare_pass(self, records: Records, now: datetime) -> None:
        """Run the preparers; one that fails is logged, and the pass goes on."""
        for kind, preparer in self.preparers.items():
            try:
                preparer(records, now)
            except Exception as exc:
                log.warning("preparing the timers of kind %s failed: %s", kind, exc)


KINDS = TimerKinds()
"""The handlers `run_due` uses unless it is given others."""


def register(kind: str, handler: Handler, preparer: Preparer | None = None) -> None:
    """Run the timers of `kind` with `handler(unit, timer)` (and `preparer` at the start of
    each pass)."""
    KINDS.register(kind, handler)
    if preparer is not None:
        KINDS.prepare(kind, preparer)


def prepare(records: Records, now: datetime, kinds: TimerKinds | None = None) -> None:
    """What a worker pass does before it runs the due timers: the preparers of `kinds`
    (the registered ones by default) set the timers that come from no write."""
    (KINDS if kinds is None else kinds).prepare_pass(records, now)


def timer_table() -> Table:
    return engine_table(TIMER_TABLE)


def schedule(conn: Connection, key: str, due_at: datetime, *, kind: str,
             entity: str | None = None, record_id: int | None = None,
             data: Mapping[str, Any] | None = None) -> bool:
    """A timer due at `due_at`, in the caller's transaction. Idempotent by `key`: when a
    timer of that key exists — pending, failed or done — it is left as it is and the answer
    is False; True when this call added it."""
    t = timer_table()
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = make(t).values(key=key, kind=kind, entity=entity, record_id=record_id,
                          due_at=due_at, data=dict(data or {}), state=PENDING, attempts=0,
                          next_attempt_at=due_at).on_conflict_do_nothing(index_elements=["key"])
    return conn.execute(stmt.returning(t.c.id)).first() is not None


def cancel(conn: Connection, key: str) -> bool:
    """Drop the timer of `key` unless it has run; True when one was dropped. A timer that
    ran stays (its key keeps it from being scheduled again)."""
    t = timer_table()
    return conn.execute(delete(t).where(t.c.key == key, t.c.state != DONE)).rowcount == 1


def cancel_all(conn: Connection, prefix: str, *, entity: str, record_id: int,
               keep: str | None = None) -> int:
    """Drop the timers of a record whose keys begin with `prefix`, unless they have run
    (as `cancel` does) or their key is `keep`; how many were dropped."""
    t = timer_table()
    stmt = delete(t).where(t.c.entity == entity, t.c.record_id == record_id,
                           t.c.key.startswith(prefix, autoescape=True), t.c.state != DONE)
    if keep is not None:
        stmt = stmt.where(t.c.key != keep)
    return conn.execute(stmt).rowcount


def retry(conn: Connection, timer_id: int, now: datetime) -> bool:
    """Make a failed timer due again now, with its attempts counted from zero; True when
    it was failed."""
    t = timer_table()
    stmt = (update(t).where(t.c.id == timer_id, t.c.state == FAILED)
            .values(state=PENDING, attempts=0, next_attempt_at=now))
    return conn.execute(stmt).rowcount == 1


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed run (1 minute, then doubling)."""
    return RETRY_BASE * int(2 ** max(attempts - 1, 0))


@dataclass(frozen=True)
class TimerRun:
    """What one `run_due` pass did."""

    done: int = 0
    failed: int = 0

    @property
    def claimed(self) -> int:
        return self.done + self.failed


def run_due(records: Records, now: datetime, *, worker_id: str, batch: int = 100,
            kinds: TimerKinds | None = None) -> int:
    """Run up to `batch` timers due at `now`; the number that ran to done."""
    return run_due_timers(records, now, worker_id=worker_id, batch=batch, kinds=kinds).done


def run_due_timers(records: Records, now: datetime, *, worker_id: str, batch: int = 100,
                   kinds: TimerKinds | None = None) -> TimerRun:
    """Run up to `batch` timers due at `now`, each in a transaction of its own: what ran to
    done and what failed."""
    registry = KINDS if kinds is None else kinds
    done = failed = 0
    for _ in range(batch):
        outcome = _run_one(records, now, worker_id, registry)
        if outcome is None:
            break
        if outcome:
            done += 1
        else:
            failed += 1
    return TimerRun(done, failed)


class NoHandler(LookupError):
    """A timer whose kind has no handler here."""


def _run_one(records: Records, now: datetime, worker_id: str,
             kinds: TimerKinds) -> bool | None:
    """Claim and run the next due timer: True when done, False when it failed, None when
    none was due."""
    claimed: Timer | None = None
    try:
        with records.unit(SYSTEM) as unit:
            claimed = _claim(unit.conn, now, worker_id)
            if claimed is None:
                return None
            handler = kinds.get(claimed.kind)
            if handler is None:
                raise NoHandler(f"no handler for timers of kind {claimed.kind!r}")
            handler(unit, claimed)
            done = _statements(unit.conn.dialect.name)[2]
            unit.conn.execute(done, {"timer_id": claimed.id, "now": now,
                                     "attempts": claimed.attempts + 1})
        return True
    except Exception as exc:
        if claimed is None:
            raise  # the claim itself failed (the database): nothing was run
        log.warning("timer %s (%s) failed: %s", claimed.key, claimed.kind, exc)
        _mark_failed(records, claimed, now, worker_id, exc)
        return False


@cache
def _statements(dialect: str) -> tuple[Select[Any], Update, Update]:
    """The claim's and the mark's statements, built once (their parameters bound)."""
    t = timer_table()
    now = bindparam("now", type_=t.c.next_attempt_at.type)
    due = (select(t).where(t.c.next_attempt_at <= now, t.c.state.in_((PENDING, FAILED)))
           .order_by(t.c.next_attempt_at, t.c.id).limit(1))
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claim = update(t).where(
        t.c.id == bindparam("timer_id"), t.c.next_attempt_at <= now,
        t.c.state.in_((PENDING, FAILED))
    ).values(claimed_by=bindparam("worker"), claimed_at=now)
    done = update(t).where(t.c.id == bindparam("timer_id")).values(
        state=DONE, done_at=now, attempts=bindparam("attempts"), next_attempt_at=None,
        error=None)
    return due, claim, done


def _claim(conn: Connection, now: datetime, worker_id: str) -> Timer | None:
    due, claim, _ = _statements(conn.dialect.name)
    row = conn.execute(due, {"now": now}).mappings().first()
    if row is None:
        return None
    # SQLite: the write lock is ours (BEGIN IMMEDIATE), so this finds the row still due;
    # PostgreSQL: the row is locked for this transaction. Either way the claim is ours.
    taken = conn.execute(claim, {"timer_id": row["id"], "now": now,
                                 "worker": worker_id}).rowcount
    if taken != 1:
        return None
    return Timer(id=row["id"], key=row["key"], kind=row["kind"], entity=row["entity"],
                 record_id=row["record_id"], due_at=row["due_at"], data=row["data"] or {},
                 attempts=row["attempts"])


def _mark_failed(records: Records, timer: Timer, now: datetime, worker_id: str,
                 exc: Exception) -> None:
    """Count the failed run and set when the timer is due again (never, past
    MAX_ATTEMPTS). Only while the row is as it was claimed: another worker may have run it
    since the failed run's transaction rolled back."""
    attempts = timer.attempts + 1
    again = now + backoff(attempts) if attempts < MAX_ATTEMPTS else None
    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
    t = timer_table()
    with records.unit(SYSTEM) as unit:  # a transaction of its own, changing no record
        unit.conn.execute(update(t).where(
            t.c.id == timer.id, t.c.attempts == timer.attempts,
            t.c.state.in_((PENDING, FAILED))
        ).values(state=FAILED, attempts=attempts, next_attempt_at=again, error=error,
                 claimed_by=worker_id, claimed_at=now))

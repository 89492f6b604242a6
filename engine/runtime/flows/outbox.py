"""The outbox: webhooks and emails written with the change that causes them, delivered after
it commits — at least once, with the idempotency key sent along.

A flow action does not call out from inside a write: it `enqueue`s one `crm_outbox` row in
the write's transaction, so a write that rolls back (a refused save, a dry run, a timer
whose handler fails) sends nothing, and a write that commits cannot lose its message. The
row's key is unique — the flows core makes it from the rule, the record and the change —
so enqueuing the same message twice keeps one row.

`deliver_due` (run by `crm worker`) sends what is due after commit:

1. claim: in a short write transaction, up to `batch` pending rows due now (PostgreSQL
   `FOR UPDATE SKIP LOCKED`; SQLite: one writer at a time) whose kind has a sender here;
   each is leased — its next attempt moved `LEASE` ahead — so another worker leaves it,
   and takes it back only if this one dies before it reports;
2. send each outside any transaction (`senders[kind](delivery)`; the delivery carries the
   key, which goes out with it: a receiver drops what it has already seen);
3. report each in a transaction of its own: sent; or failed, due again after a backoff of
   1, 2, 4 … minutes; after `max_attempts` failures, or at once for a `PermanentFailure`
   (a refused target), "exhausted". `replay` puts a row back to pending.

The rows are the delivery log: state, attempts, the last error, when it was sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.runtime.db import WRITE
from engine.runtime.schema.tables import OUTBOX_TABLE, engine_table
from engine.runtime.values import to_json

log = logging.getLogger(__name__)

PENDING, SENT, EXHAUSTED = "pending", "sent", "exhausted"
WEBHOOK, EMAIL = "webhook", "email"
KINDS = (WEBHOOK, EMAIL)
MAX_ATTEMPTS = 8
"""Failed attempts before a message is exhausted (1 + 2 + … + 64 minutes: about 2 hours)."""
RETRY_BASE = timedelta(minutes=1)
LEASE = timedelta(minutes=5)
"""How long a claimed message is left to its worker before another may take it."""
MAX_ERROR = 2000


class PermanentFailure(Exception):
    """A delivery that cannot succeed by trying again (a refused target): exhausted at once."""


@dataclass(frozen=True)
class Delivery:
    """One message as a sender gets it."""

    id: int
    key: str
    kind: str
    payload: Mapping[str, Any]
    attempts: int
    """Attempts before this one."""


Sender = Callable[[Delivery], None]
"""Sends one message; returns when it was accepted, raises when it was not."""


def outbox_table() -> Table:
    return engine_table(OUTBOX_TABLE)


def json_safe(value: Any) -> Any:
    """`value` with Decimals, dates and datetimes as the JSON API writes them."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    return to_json(value)


def enqueue(conn: Connection, kind: str, key: str, payload: Mapping[str, Any], *,
            now: datetime | None = None) -> bool:
    """One message to deliver once the caller's transaction commits; due at `now` (by
    default the current time). Idempotent by `key`: False, and nothing changed, when a
    message of that key exists."""
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}; one of {', '.join(KINDS)}")
    at = datetime.now(UTC) if now is None else now
    t = outbox_table()
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (make(t).values(key=key, kind=kind, payload=json_safe(payload), state=PENDING,
                           attempts=0, next_attempt_at=at, created_at=at)
            .on_conflict_do_nothing(index_elements=["key"]).returning(t.c.id))
    return conn.execute(stmt).first() is not None


def replay(conn: Connection, message_id: int, now: datetime | None = None) -> bool:
    """Put a sent or exhausted message back to pending, due now, its attempts counted from
    zero (a pending one is left as it is); True when it was put back."""
    t = outbox_table()
    at = datetime.now(UTC) if now is None else now
    stmt = (update(t).where(t.c.id == message_id, t.c.state.in_((SENT, EXHAUSTED)))
            .values(state=PENDING, attempts=0, next_attempt_at=at, last_error=None,
                    sent_at=None, claimed_by=None))
    return conn.execute(stmt).rowcount == 1


def replay_message(engine: Engine, message_id: int, now: datetime | None = None) -> bool:
    """`replay` in a write transaction of its own (`crm webhook replay`)."""
    with engine.execution_options(**WRITE).begin() as conn:
        return replay(conn, message_id, now)


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 1 minute, then doubling."""
    return RETRY_BASE * int(2 ** max(attempts - 1, 0))


def messages(conn: Connection, *, kind: str | None = None, state: str | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
    """The delivery log, newest first."""
    t = outbox_table()
    stmt = select(t).order_by(t.c.id.desc()).limit(limit)
    if kind is not None:
        stmt = stmt.where(t.c.kind == kind)
    if state is not None:
        stmt = stmt.where(t.c.state == state)
    return [dict(r) for r in conn.execute(stmt).mappings()]


@dataclass(frozen=True)
class DeliveryRun:
    """What one `deliver_due` pass did."""

    sent: int = 0
    retrying: int = 0
    exhausted: int = 0

    @property
    def claimed(self) -> int:
        return self.sent + self.retrying + self.exhausted


def deliver_due(engine: Engine, now: datetime, senders: Mapping[str, Sender], *,
                worker_id: str = "worker", batch: int = 100,
                max_attempts: int = MAX_ATTEMPTS) -> DeliveryRun:
    """Send up to `batch` messages due at `now` whose kind has a sender (one without
    waits), and record how each went."""
    writer = engine.execution_options(**WRITE)
    with writer.begin() as conn:
        claimed = _claim(conn, now, sorted(senders), worker_id, batch)
    sent = retrying = exhausted = 0
    for delivery in claimed:
        error: str | None = None
        final = False
        try:
            senders[delivery.kind](delivery)
        except PermanentFailure as exc:
            error, final = str(exc)[:MAX_ERROR], True
        except Exception as exc:  # any failure of a send is the message's, not the worker's
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        attempts = delivery.attempts + 1
        t = outbox_table()
        if error is None:
            values: dict[str, Any] = {"state": SENT, "sent_at": now, "next_attempt_at": None,
                                      "last_error": None}
            sent += 1
        elif final or attempts >= max_attempts:
            values = {"state": EXHAUSTED, "next_attempt_at": None, "last_error": error}
            exhausted += 1
            log.warning("outbox %s %s exhausted after %s attempt(s): %s", delivery.kind,
                        delivery.key, attempts, error)
        else:
            values = {"next_attempt_at": now + backoff(attempts), "last_error": error}
            retrying += 1
        with writer.begin() as conn:
            conn.execute(update(t).where(t.c.id == delivery.id, t.c.state == PENDING)
                         .values(attempts=attempts, **values))
    return DeliveryRun(sent, retrying, exhausted)


def _claim(conn: Connection, now: datetime, kinds: Sequence[str], worker_id: str,
           batch: int) -> list[Delivery]:
    t = outbox_table()
    due = (select(t.c.id, t.c.key, t.c.kind, t.c.payload, t.c.attempts)
           .where(t.c.state == PENDING, t.c.next_attempt_at <= now, t.c.kind.in_(kinds))
           .order_by(t.c.next_attempt_at, t.c.id).limit(batch))
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = conn.execute(due).all()
    if not rows:
        return []
    conn.execute(update(t).where(t.c.id.in_([r.id for r in rows]))
                 .values(next_attempt_at=now + LEASE, claimed_by=worker_id))
    return [Delivery(r.id, r.key, r.kind, r.payload, r.attempts) for r in rows]

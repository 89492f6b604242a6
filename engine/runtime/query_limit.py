"""The time limit of one request's queries, and its cancellation.

The web edge opens a `Deadline` per request (`within(Deadline(10.0))`); every query that
request runs, in any thread it hands work to, sees it through a context variable, and the
database engines (engine/runtime/db.py) enforce it: PostgreSQL with `statement_timeout`,
SQLite with a progress handler that interrupts the query. `cancel()` (the client went away,
the server is stopping) interrupts the running queries at once. A query stopped either way
raises `QueryTimeLimit` or `QueryCancelled`, which answer 503 naming the limit.

>>> d = Deadline(10.0)
>>> d.expired(), d.cancelled, 0 < d.remaining() <= 10.0
(False, False, True)
>>> d.cancel(); d.expired()
True
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.messages import msg
from engine.runtime.errors import RecordError

log = logging.getLogger("engine.runtime")

DEFAULT_LIMIT = 10.0
"""Seconds a request's queries may run together (settings.yaml `query_time_limit`)."""


class QueryTimeLimit(RecordError):
    """A query ran past its request's time limit and was stopped."""

    status = 503
    code = "query_time_limit"

    def __init__(self, limit: float) -> None:
        super().__init__(msg("the query ran longer than the %(limit)s s limit "
                             "(settings.yaml query_time_limit) and was stopped; "
                             "narrow the filter or try again later", limit=_seconds(limit)))
        self.limit = limit


class QueryCancelled(RecordError):
    """A query was stopped because its request ended: the client left or the server stops."""

    status = 503
    code = "query_cancelled"

    def __init__(self) -> None:
        super().__init__(msg("the query was stopped because the request ended "
                             "(the client disconnected or the server is stopping)"))


class Deadline:
    """When one request's queries must stop, and the database connections they run on.

    Thread-safe: the event loop cancels it while worker threads run its queries."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.expires = time.monotonic() + limit
        self.cancelled = False
        self._lock = threading.Lock()
        self._running: set[Any] = set()  # DB-API connections checked out by this request

    def remaining(self) -> float:
        """Seconds left (0 once cancelled or past the limit)."""
        if self.cancelled:
            return 0.0
        return max(0.0, self.expires - time.monotonic())

    def expired(self) -> bool:
        return self.cancelled or time.monotonic() >= self.expires

    def error(self) -> RecordError:
        """What a query stopped by this deadline raises."""
        return QueryCancelled() if self.cancelled else QueryTimeLimit(self.limit)

    def attach(self, dbapi_connection: Any) -> None:
        """A connection this request now holds: `cancel()` interrupts its query."""
        with self._lock:
            self._running.add(dbapi_connection)

    def detach(self, dbapi_connection: Any) -> None:
        """Waits for a cancel being sent to it: the connection is not reused before."""
        with self._lock:
            self._running.discard(dbapi_connection)

    def cancel(self) -> None:
        """Stop this request's queries now. SQLite's progress handler sees the flag; a
        server connection is sent a cancel request from a thread of its own (it is a
        network call, and this is called from the event loop)."""
        if self.cancelled:
            return
        self.cancelled = True
        with self._lock:
            if not self._running:
                return
        threading.Thread(target=self._cancel_running, name="crm-cancel", daemon=True).start()

    def _cancel_running(self) -> None:
        # Holding the lock while the cancel is sent keeps the connection from going back to
        # the pool (detach waits), so the cancel cannot reach another request's query.
        with self._lock:
            for dbapi_connection in self._running:
                cancel = getattr(dbapi_connection, "cancel_safe", None)
                if cancel is None:
                    continue
                try:
                    cancel(timeout=5)
                except Exception:  # the server may be gone; the query ends with it anyway
                    log.warning("could not cancel a query", exc_info=True)


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "crm_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The deadline of the request running in this context (None outside requests: the
    CLI, the worker, tests of the services)."""
    return _current.get()


@contextmanager
def within(deadline: Deadline) -> Iterator[Deadline]:
    """Run the body, and every thread it hands work to, under `deadline`."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def _seconds(limit: float) -> str:
    """10.0 → '10', 0.25 → '0.25'."""
    return f"{limit:g}"

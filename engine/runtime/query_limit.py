"""The time limit of each query a request runs, and the request's cancellation.

The web edge runs each request under a `QueryLimit` (`limited(QueryLimit(10.0))`); every
query of that request, in any thread it hands work to, sees it through a context variable,
and the database engines (engine/runtime/db.py) enforce it: PostgreSQL with
`statement_timeout`, SQLite with a progress handler that interrupts the query. `cancel()`
(the client went away, the server is stopping) stops the running queries at once and
refuses new ones. A query stopped either way raises `QueryTimeLimit` or `QueryCancelled`,
which answer 503 naming the limit.

>>> limit = QueryLimit(10.0)
>>> limit.cancelled, type(limit.error()).__name__
(False, 'QueryTimeLimit')
>>> limit.cancel(); type(limit.error()).__name__
'QueryCancelled'
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.messages import msg
from engine.runtime.errors import RecordError

log = logging.getLogger("engine.runtime")

DEFAULT_SECONDS = 10.0
"""Seconds one query of a request may run (settings.yaml `query_time_limit`)."""


class QueryTimeLimit(RecordError):
    """A query ran past its request's time limit and was stopped."""

    status = 503
    code = "query_time_limit"

    def __init__(self, seconds: float) -> None:
        super().__init__(msg("the query ran longer than the %(limit)s s limit "
                             "(settings.yaml query_time_limit) and was stopped; "
                             "narrow the filter or try again later", limit=f"{seconds:g}"))
        self.seconds = seconds


class QueryCancelled(RecordError):
    """A query was stopped because its request ended: the client left or the server stops."""

    status = 503
    code = "query_cancelled"

    def __init__(self) -> None:
        super().__init__(msg("the query was stopped because the request ended "
                             "(the client disconnected or the server is stopping)"))


class ConnectionsBusy(RecordError):
    """Every database connection of the pool stayed in use while a request waited for one."""

    status = 503
    code = "busy"

    def __init__(self) -> None:
        super().__init__(msg("the server is busy: every database connection stayed in use "
                             "while this request waited; try again shortly"))


class QueryLimit:
    """How long each query of one request may run, whether the request was cancelled, and
    the server connections its queries run on (to cancel them).

    Thread-safe: the event loop cancels it while worker threads run its queries."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cancelled = False
        self._lock = threading.Lock()
        self._running: set[Any] = set()  # DB-API connections checked out by this request

    def error(self) -> RecordError:
        """What a query stopped under this limit raises."""
        return QueryCancelled() if self.cancelled else QueryTimeLimit(self.seconds)

    def attach(self, dbapi_connection: Any) -> None:
        """A server connection this request now holds: `cancel()` interrupts its query."""
        with self._lock:
            self._running.add(dbapi_connection)

    def detach(self, dbapi_connection: Any) -> None:
        """Waits for a cancel being sent to it: the connection is not reused before."""
        with self._lock:
            self._running.discard(dbapi_connection)

    def cancel(self, wait: bool = False) -> None:
        """Stop this request's queries now and refuse new ones. SQLite's progress handler
        sees the flag; a server connection is sent a cancel request, from a thread of its
        own (a network call, and this is called from the event loop), or right here with
        `wait`: a stopping server must not exit before the cancel is sent, or the query
        would outlive it in its PostgreSQL backend."""
        if self.cancelled:
            return
        self.cancelled = True
        with self._lock:
            if not self._running:
                return
        if wait:
            self._cancel_running()
        else:
            threading.Thread(target=self._cancel_running, name="crm-cancel",
                             daemon=True).start()

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


_current: contextvars.ContextVar[QueryLimit | None] = contextvars.ContextVar(
    "crm_query_limit", default=None)


def current_limit() -> QueryLimit | None:
    """The limit of the request running in this context (None outside requests: the CLI,
    the worker, tests of the services)."""
    return _current.get()


@contextmanager
def limited(limit: QueryLimit) -> Iterator[QueryLimit]:
    """Run the body, and every thread it hands work to, under `limit`."""
    token = _current.set(limit)
    try:
        yield limit
    finally:
        _current.reset(token)

"""Database engines: SQLite (embedded default) and PostgreSQL, configured the same way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from engine.messages import msg
from engine.runtime.errors import BadRequest
from engine.runtime.query_limit import QueryLimit, current_limit

DEFAULT_URL = "sqlite:///data/crm.db"
WRITE = {"crm_write": True}
PROGRESS_STEPS = 1000
"""SQLite virtual-machine steps between two looks at the query's time limit."""
_SQLITE_INTERRUPT = 9
_PG_QUERY_CANCELED = "57014"
_PG_STACK_DEPTH = "54001"


def normalize_url(url: str) -> URL:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_engine(url: str, **kwargs: Any) -> Engine:
    """An Engine with our connection settings; `engine.execution_options(**WRITE)` for writes.

    Each query runs under the time limit of the request that runs it
    (engine/runtime/query_limit.py): a query past it, or cancelled, stops and raises
    QueryTimeLimit or QueryCancelled.

    SQLite runs in WAL mode with synchronous=NORMAL and foreign keys on; transactions are
    begun explicitly so DDL is transactional too, and write transactions take the write lock
    up front (BEGIN IMMEDIATE) so concurrent writers queue instead of failing mid-way.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine)
        _enforce_limits(engine)
        return engine
    engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
    _configure_server(engine)
    _enforce_limits(engine)
    return engine


FOLD_FUNCTION = "crm_fold"
"""SQLite's lower() folds ASCII letters only; this one folds as unique names compare
(engine/runtime/records/unique.py `fold`: lower case, the Greek final sigma as sigma)."""


def _fold(text: object) -> object:
    return text.lower().replace("\u03c2", "\u03c3") if isinstance(text, str) else text


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
        watch = _QueryWatch()
        record.info[_WATCH] = watch
        dbapi_conn.set_progress_handler(watch, PROGRESS_STEPS)
        dbapi_conn.create_function(FOLD_FUNCTION, 1, _fold, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("crm_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_WATCH = "crm_query_watch"


class _QueryWatch:
    """SQLite's progress handler for one connection: non-zero interrupts the running query,
    once it has run past its request's limit or the request was cancelled."""

    __slots__ = ("limit", "started")

    def __init__(self) -> None:
        self.limit: QueryLimit | None = None
        self.started = 0.0

    def start(self, limit: QueryLimit | None) -> None:
        self.limit = limit
        self.started = time.monotonic()

    def __call__(self) -> int:
        limit = self.limit
        if limit is None:
            return 0
        return int(limit.cancelled or time.monotonic() - self.started >= limit.seconds)


def _configure_server(engine: Engine) -> None:
    """PostgreSQL: each statement of a request may run for the request's limit
    (`statement_timeout`, set local to each transaction), and the connections a request
    holds are known to its limit, which cancels their queries when the request ends early."""

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        limit = current_limit()
        if limit is not None:
            ms = max(1, round(limit.seconds * 1000))
            conn.exec_driver_sql("SELECT set_config('statement_timeout', %(ms)s, true)",
                                 {"ms": f"{ms}ms"})

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        limit = current_limit()
        if limit is not None:
            limit.attach(dbapi_conn)
            record.info["crm_limit"] = (limit, dbapi_conn)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        held = record.info.pop("crm_limit", None)
        if held is not None:
            held[0].detach(held[1])


def _enforce_limits(engine: Engine) -> None:
    """Both databases: no statement starts once its request was cancelled, SQLite's watch
    learns each statement's limit and start, and a query the database stopped for the
    limit raises the limit's own error (a 503 naming it)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Connection, _cursor: Any, _statement: Any, _params: Any, _context: Any,
                _many: bool) -> None:
        limit = current_limit()
        if limit is not None and limit.cancelled:
            raise limit.error()
        watch = conn.info.get(_WATCH)
        if watch is not None:
            watch.start(limit)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> BaseException | None:
        if _too_deep(context.original_exception):
            return TooDeep()
        limit = current_limit()
        if limit is None or not _interrupted(context.original_exception):
            return None
        return limit.error()


class TooDeep(BadRequest):
    """The database's parser ran out of stack for a statement: the last guard behind the
    formula bounds (engine/formula/sqlsize.py), for SQL nested past them only once
    computed fields and the list's own query are put around it."""

    code = "query_too_deep"

    def __init__(self) -> None:
        super().__init__(msg("the query nests too deeply for the database to read it; "
                             "simplify the filter or the formulas it uses"))


def _too_deep(exc: BaseException) -> bool:
    """SQLite's 'parser stack overflow'; PostgreSQL's stack depth limit or its parser's
    'memory exhausted'."""
    text = str(exc)
    if getattr(exc, "sqlite_errorcode", None) is not None:
        return "parser stack overflow" in text
    state = getattr(exc, "sqlstate", None)
    return state == _PG_STACK_DEPTH or (state == "42601" and "memory exhausted" in text)


def _interrupted(exc: BaseException) -> bool:
    """SQLite's `interrupted` (the progress handler) or PostgreSQL's query_canceled."""
    return (getattr(exc, "sqlite_errorcode", None) == _SQLITE_INTERRUPT
            or getattr(exc, "sqlstate", None) == _PG_QUERY_CANCELED)


@contextmanager
def connection(engine: Engine, conn: Connection | None = None) -> Iterator[Connection]:
    """`conn` when given (left open: a page reads all it shows through one connection),
    else a new connection of `engine`, closed afterwards."""
    if conn is not None:
        yield conn
        return
    with engine.connect() as opened:
        yield opened


def unreachable(url: str, timeout: int = 3) -> str | None:
    """Why the database at `url` cannot be reached (first line of the error), or None."""
    try:
        probe = create_engine(normalize_url(url), connect_args={"connect_timeout": timeout})
        with probe.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        probe.dispose()
        return None
    except Exception as exc:  # any failure to reach the server
        return str(exc).splitlines()[0]


def drop_database(conn: Connection, name: str) -> None:
    """Drop the PostgreSQL database `name` if it exists, ending the sessions left on it.

    `conn` is an AUTOCOMMIT connection to another database of the server; `name` is one the
    caller made (a safe identifier), quoted anyway. Not `DROP DATABASE ... WITH (FORCE)`:
    for a role that is not a superuser, FORCE refuses the whole drop ("must be a member of
    the role whose process is being terminated") when an autovacuum worker happens to be on
    the database, since a worker belongs to no role. So the role's own sessions there are
    ended first, then a plain DROP DATABASE asks autovacuum to leave and waits for every
    session to go (up to 5 s, PostgreSQL's own wait).
    """
    conn.execute(
        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             " WHERE datname = :name AND pid <> pg_backend_pid()"
             " AND usename = current_user"),
        {"name": name})
    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def refresh_statistics(engine: Engine, tables: tuple[str, ...] = ()) -> None:
    """Let SQLite's planner know the data: ANALYZE the tables (all when none are named).

    Without statistics SQLite takes an access condition like `owner_id = ? OR department_id
    IN (...)` for a rare one, fetches every matching row through those indexes and sorts
    them all for one page (bench/RESULTS.md, access list: 17x slower). PostgreSQL's
    autovacuum keeps its own statistics, so this does nothing there. `tables` are names of
    the validated model (safe identifiers), quoted anyway.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.execution_options(**WRITE).begin() as conn:
        if not tables:
            conn.exec_driver_sql("ANALYZE")
        for name in tables:
            conn.exec_driver_sql(f'ANALYZE "{name}"')

"""Database engines: SQLite (embedded default) and PostgreSQL, configured the same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

DEFAULT_URL = "sqlite:///data/crm.db"
WRITE = {"crm_write": True}


def normalize_url(url: str) -> URL:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_engine(url: str, **kwargs: Any) -> Engine:
    """An Engine with our connection settings; `engine.execution_options(**WRITE)` for writes.

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
        return engine
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("crm_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


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

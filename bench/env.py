"""Shared set-up: database files, the engine on top of them, raw connections, machine facts."""

from __future__ import annotations

import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from sqlalchemy import Engine, create_engine, func, select, text

from bench.data import ACCOUNTS, account_rows, opportunity_rows
from engine.metadata import Model, load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.db import drop_database, normalize_url, open_engine, unreachable
from engine.runtime.records import Records
from engine.runtime.schema import apply_plan, plan_schema

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CONFIG = REPO / "config"
ENTITY = "opportunity"
PG_URL = os.environ.get("CRM_TEST_PG_URL",
                        "postgresql+psycopg://crm:crm@127.0.0.1:5432/crm_test")


@dataclass
class Env:
    """A migrated database with the records service and the benchmark accounts."""

    url: str
    path: Path | None  # the SQLite file; None on PostgreSQL
    model: Model
    engine: Engine
    records: Records
    account_ids: list[int]


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _fresh(url: str, path: Path | None, config: Path) -> Env:
    model = load_model(config)
    engine = open_engine(url)
    apply_plan(engine, model)
    records = records_service(engine, model)
    created = records.bulk_create(SYSTEM, "account", account_rows())
    if created.errors:
        raise RuntimeError(f"benchmark accounts were refused: {created.errors[:3]}")
    return Env(url, path, model, engine, records, created.ids)


def _open(url: str, path: Path | None, config: Path = CONFIG) -> Env:
    model = load_model(config)
    engine = open_engine(url)
    records = records_service(engine, model)
    account = records.schema.table("account")
    with engine.connect() as conn:
        ids = list(conn.execute(select(account.c.id).order_by(account.c.id)).scalars())
    return Env(url, path, model, engine, records, ids)


def fresh_env(path: Path, config: Path = CONFIG) -> Env:
    """A new database file with the schema of `config` and ACCOUNTS accounts (not timed)."""
    remove_db(path)
    return _fresh(sqlite_url(path), path, config)


def open_env(path: Path, config: Path = CONFIG) -> Env:
    return _open(sqlite_url(path), path, config)


def loaded_path(rows: int) -> Path:
    return BENCH_DIR / f"opportunity-{rows}.db"


def count_rows(engine: Engine, table: str) -> int:
    t = sqlalchemy.table(table)
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def _complete(env: Env, rows: int) -> bool:
    return (count_rows(env.engine, ENTITY) == rows and len(env.account_ids) == ACCOUNTS
            and plan_schema(env.engine, env.model).is_empty)


def _load(env: Env, rows: int) -> Env:
    result = env.records.bulk_create(SYSTEM, ENTITY, opportunity_rows(rows, env.account_ids))
    if result.errors or result.created != rows:
        raise RuntimeError(f"loading {env.url} failed: {result.errors[:3]}")
    return env


def loaded_env(rows: int, say: Any = print) -> Env:
    """The database the bulk benchmark leaves behind: `rows` opportunities through the engine.

    Reused when it is complete and its schema matches config/; rebuilt (not timed) otherwise.
    """
    path = loaded_path(rows)
    if path.exists():
        env = open_env(path)
        if _complete(env, rows):
            return env
        env.engine.dispose()
    say(f"building {path.name} with {rows:,} opportunities (not timed)")
    return _load(fresh_env(path), rows)


def pg_problem() -> str | None:
    """Why PostgreSQL at CRM_TEST_PG_URL cannot be used, or None when it can."""
    return unreachable(PG_URL)


def pg_schema_url(schema: str) -> str:
    """CRM_TEST_PG_URL's database with `schema` first on the search path."""
    url = normalize_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def pg_admin() -> Engine:
    return create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")


def pg_drop_database(name: str) -> None:
    """Drop the bench database `name` on CRM_TEST_PG_URL's server, if there is one."""
    admin = pg_admin()
    try:
        with admin.connect() as conn:
            drop_database(conn, name)
    finally:
        admin.dispose()


def pg_new_database(name: str) -> str:
    """A new empty bench database `name` on CRM_TEST_PG_URL's server (dropped first if
    left over); its URL."""
    pg_drop_database(name)
    admin = pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return normalize_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def pg_schema_exists(admin: Engine, schema: str) -> bool:
    with admin.connect() as conn:
        return conn.execute(text("SELECT 1 FROM information_schema.schemata "
                                 "WHERE schema_name = :s"), {"s": schema}).first() is not None


def pg_recreate_schema(admin: Engine, schema: str) -> None:
    """An empty `schema` (a bench schema name, not user input)."""
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))


def pg_settle(admin: Engine, *emptied: str, limit_s: float = 600.0) -> str:
    """Let the server settle before a timed run, so one side does not pay for the work the
    side before it left behind: the schemas `emptied` (a measured side's, checked already)
    are emptied, so autovacuum has nothing of theirs to do; a CHECKPOINT writes out the
    dirty buffers (where the role may: pg_checkpoint or superuser); then it waits — at
    most `limit_s` — until no autovacuum worker runs in the database (a worker has no role,
    usesysid; to a role that is not a superuser its backend_type is hidden too, so that
    cannot be asked). Says what it did."""
    for schema in emptied:
        pg_recreate_schema(admin, schema)
    said = []
    with admin.connect() as conn:
        try:
            conn.execute(text("CHECKPOINT"))
            said.append("checkpoint")
        except sqlalchemy.exc.DBAPIError:
            said.append("no checkpoint (not permitted)")
        waited = time.monotonic()
        while conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND usesysid IS NULL AND pid <> pg_backend_pid()")).scalar_one():
            if time.monotonic() - waited > limit_s:
                said.append(f"autovacuum still running after {limit_s:.0f} s")
                break
            time.sleep(1)
        else:
            said.append(f"autovacuum idle after {time.monotonic() - waited:.0f} s")
    return ", ".join(said)


def pg_loaded_env(rows: int, say: Any = print) -> Env:
    """Like `loaded_env`, in the PostgreSQL schema bench_<rows> of CRM_TEST_PG_URL's database.

    Loaded through `bulk_create` and ANALYZEd (not timed); kept for the next run.
    """
    schema = f"bench_{rows}"
    url_text = pg_schema_url(schema)
    admin = pg_admin()
    try:
        if pg_schema_exists(admin, schema):
            env = _open(url_text, None)
            if _complete(env, rows):
                return env
            env.engine.dispose()
        say(f"building PostgreSQL schema {schema} with {rows:,} opportunities (not timed)")
        pg_recreate_schema(admin, schema)
        env = _load(_fresh(url_text, None, CONFIG), rows)
        with env.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        return env
    finally:
        admin.dispose()


def raw_connect(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the PRAGMAs the engine sets (engine/runtime/db.py)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def checkpoint(path: Path) -> None:
    """Fold the WAL into the main file, so a plain file copy holds every row."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


@dataclass
class Timing:
    """Seconds of wall-clock time and of CPU time (user + system, all threads) of this process.

    On a shared machine other processes stretch the wall time; the CPU time is what the
    work itself cost, so ratios are reported on both.
    """

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    timing = Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield timing
    finally:
        timing.wall = time.perf_counter() - wall
        timing.cpu = time.process_time() - cpu


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


def percentile(values: list[float], p: int) -> float:
    """The p-th percentile (inclusive method), e.g. p=50 for the median."""
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine_info() -> dict[str, str]:
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "os": platform.platform(),
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(proc: subprocess.Popen[bytes], base: str, name: str, seconds: float) -> None:
    """Wait until the server `proc` serving `base` answers /health; RuntimeError naming it
    when it exits or stays silent for `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the {name} exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {name} did not start within {seconds:g} s")
        time.sleep(0.2)


@contextmanager
def serve_module(module: str, args: list[str], name: str,
                 env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `python -m module *args --port P` on loopback; yields its base URL once /health
    answers, and stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, *args, "--port", str(port)],
                            cwd=REPO, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, name, 60)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

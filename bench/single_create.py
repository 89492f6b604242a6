"""Single create: one opportunity per transaction through `Records.create` vs raw SQL.

Each create is its own transaction, on an account, so on this checkout the rollup hook
keeps the account's three rollups (open_deals, open_pipeline, won_amount). The baseline does
by hand what such a create must do, in one transaction of raw SQL: INSERT the row, UPDATE
the account's three rollup columns incrementally, INSERT one audit row. With
CRM_BENCH_BEFORE set to a checkout of an older commit (a git worktree), the same creates run
there too, in a subprocess with that checkout's engine and config, as "before".

The sides take turns, ROUND creates each, so load on the shared machine falls on all alike.
Each writes into a database of its own, fresh, holding the benchmark's 1,000 accounts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from bench.data import opportunity_rows
from bench.env import (
    BENCH_DIR,
    CONFIG,
    ENTITY,
    Env,
    _fresh,
    fresh_env,
    load_text,
    machine_info,
    percentile,
    pg_admin,
    pg_problem,
    pg_recreate_schema,
    pg_schema_url,
    raw_connect,
    remove_db,
)
from bench.report import Row, Section
from engine.runtime.access import SYSTEM

NAME = "single_create"
CREATES = 2_000
WARMUP = 50
ROUND = 100
BEFORE_ENV = "CRM_BENCH_BEFORE"
FIELDS = ("name", "account", "amount", "stage", "close_date", "lost_reason")
_COLUMNS = ("version", "created_at", "created_by", "updated_at", "updated_by", "owner_id",
            "department_id", *FIELDS)
OPEN_PROBABILITY = {"prospecting": 10, "qualification": 30, "proposal": 50, "negotiation": 80}
_CENTS = Decimal("0.01")


def _insert_sql(mark: str, returning: bool) -> str:
    values = ", ".join(mark for _ in _COLUMNS)
    return (f"INSERT INTO {ENTITY} ({', '.join(_COLUMNS)}) VALUES ({values})"
            + (" RETURNING id" if returning else ""))


def _rollup_sql(mark: str) -> str:
    """The obvious incremental update of the account's rollups for one new opportunity."""
    return (f"UPDATE account SET open_deals = open_deals + {mark}, "
            f"open_pipeline = open_pipeline + {mark}, won_amount = won_amount + {mark} "
            f"WHERE id = {mark}")


def _audit_sql(mark: str) -> str:
    return ("INSERT INTO crm_audit (at, user_id, entity, record_id, action, field, old_value, "
            f"new_value) VALUES ({mark}, NULL, {mark}, {mark}, 'create', NULL, NULL, {mark})")


def rollup_deltas(row: dict[str, Any]) -> tuple[int, Decimal, Decimal]:
    """What one new opportunity adds to its account's open_deals, open_pipeline (weighted =
    amount * probability / 100, the config's formula, to the cent half up as the record
    shows it) and won_amount."""
    amount: Decimal = row["amount"]
    probability = OPEN_PROBABILITY.get(row["stage"])
    if probability is not None:
        return 1, (amount * probability / 100).quantize(_CENTS, ROUND_HALF_UP), Decimal(0)
    return 0, Decimal(0), amount if row["stage"] == "won" else Decimal(0)


def _audit_json(row: dict[str, Any]) -> str:
    return json.dumps({k: _json_value(v) for k, v in row.items() if v is not None},
                      ensure_ascii=False)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class Side(Protocol):
    """One way of creating the rows: each call creates one and returns its milliseconds."""

    def create(self, row: dict[str, Any]) -> float: ...

    def close(self) -> None: ...


class ThroughRecords:
    """`Records.create(SYSTEM, "opportunity", row)`, one transaction each."""

    def __init__(self, env: Env) -> None:
        self.env = env

    def create(self, row: dict[str, Any]) -> float:
        start = time.perf_counter()
        self.env.records.create(SYSTEM, ENTITY, row)
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        self.env.engine.dispose()


class RawSqlite:
    """Plain sqlite3 (the engine's PRAGMAs): BEGIN IMMEDIATE, three statements, COMMIT."""

    def __init__(self, path: Path) -> None:
        self.conn = raw_connect(path)
        self.insert, self.rollup, self.audit = (
            _insert_sql("?", False), _rollup_sql("?"), _audit_sql("?"))

    def create(self, row: dict[str, Any]) -> float:
        start = time.perf_counter()
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        count, pipeline, won = rollup_deltas(row)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(self.insert, (
            1, now, None, now, None, None, None, row["name"], row["account"],
            float(row["amount"]), row["stage"], row["close_date"].isoformat(),
            row["lost_reason"]))
        conn.execute(self.rollup, (count, float(pipeline), float(won), row["account"]))
        conn.execute(self.audit, (now, ENTITY, cur.lastrowid, _audit_json(row)))
        conn.execute("COMMIT")
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        self.conn.close()


class RawPostgres:
    """Plain psycopg on one connection: three statements, commit."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.raw = env.engine.raw_connection()
        conn = self.raw.driver_connection
        assert conn is not None
        self.conn: Any = conn
        self.insert, self.rollup, self.audit = (
            _insert_sql("%s", True), _rollup_sql("%s"), _audit_sql("%s"))

    def create(self, row: dict[str, Any]) -> float:
        start = time.perf_counter()
        now = datetime.now(UTC)
        count, pipeline, won = rollup_deltas(row)
        with self.conn.cursor() as cur:
            cur.execute(self.insert, (
                1, now, None, now, None, None, None, row["name"], row["account"],
                row["amount"], row["stage"], row["close_date"], row["lost_reason"]))
            new_id = cur.fetchone()[0]
            cur.execute(self.rollup, (count, pipeline, won, row["account"]))
            cur.execute(self.audit, (now, ENTITY, new_id, _audit_json(row)))
        self.conn.commit()
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        self.raw.close()
        self.env.engine.dispose()


# --- the databases -------------------------------------------------------------------------

def _pg_schema(label: str) -> str:
    return f"bench_create_{label}"


@contextmanager
def database(kind: str, label: str) -> Iterator[Env]:
    """A fresh database of `kind` ("sqlite" or "postgresql") with the config of this
    checkout and the 1,000 benchmark accounts; removed afterwards."""
    if kind == "sqlite":
        path = BENCH_DIR / f"create-{label}.db"
        env = fresh_env(path)
        try:
            yield env
        finally:
            env.engine.dispose()
            remove_db(path)
        return
    schema = _pg_schema(label)
    admin = pg_admin()
    try:
        pg_recreate_schema(admin, schema)
        env = _fresh(pg_schema_url(schema), None, CONFIG)
        try:
            yield env
        finally:
            env.engine.dispose()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        admin.dispose()


def _rows(env: Env, n: int) -> list[dict[str, Any]]:
    return list(opportunity_rows(n, env.account_ids))


def rollup_values(env: Env) -> list[tuple[int, int, Decimal, Decimal]]:
    """(id, open_deals, open_pipeline, won_amount) of every account, money to the cent."""
    account = env.records.schema.table("account")
    with env.engine.connect() as conn:
        found = conn.execute(select(account.c.id, account.c.open_deals,
                                    account.c.open_pipeline, account.c.won_amount)
                             .order_by(account.c.id)).all()
    return [(int(i), int(n), Decimal(str(p)).quantize(_CENTS), Decimal(str(w)).quantize(_CENTS))
            for i, n, p, w in found]


# --- the checkout before: a subprocess --------------------------------------------------------

def worker(kind: str, n: int) -> None:
    """The side run in another checkout: creates `n` rows after WARMUP, ROUND at a time, each
    time a line arrives on stdin, printing their milliseconds as a JSON list."""
    with database(kind, "before") as env:
        rows = _rows(env, WARMUP + n)
        side = ThroughRecords(env)
        for row in rows[:WARMUP]:
            side.create(row)
        print(json.dumps({"ready": True}), flush=True)
        done = WARMUP
        for _ in sys.stdin:
            chunk = rows[done : done + ROUND]
            done += len(chunk)
            print(json.dumps([side.create(row) for row in chunk]), flush=True)
        side.close()


class Before:
    """The creates of the checkout at CRM_BENCH_BEFORE, driven round by round."""

    def __init__(self, checkout: Path, kind: str, n: int) -> None:
        code = ("import importlib.util, sys\n"
                f"spec = importlib.util.spec_from_file_location('bench_single_create', "
                f"{str(Path(__file__).resolve())!r})\n"
                "module = importlib.util.module_from_spec(spec)\n"
                "sys.modules[spec.name] = module\n"
                "spec.loader.exec_module(module)\n"
                f"module.worker({kind!r}, {n})\n")
        env = dict(os.environ, PYTHONPATH=str(checkout))
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=checkout, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if not json.loads(self._line()).get("ready"):
            raise RuntimeError("the before worker did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the before worker exited with {self.proc.wait()}")
        return line

    def round(self) -> list[float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return [float(ms) for ms in json.loads(self._line())]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def commit_of(checkout: Path) -> str:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or str(checkout)


# --- one database --------------------------------------------------------------------------

@dataclass
class Measured:
    kind: str
    ours: list[float]
    raw: list[float]
    before: list[float]
    load_before: str
    load_after: str
    pipeline: tuple[int, Decimal]  # accounts whose open_pipeline differs, the largest gap
    drift: int  # stored rollups of the engine's database that a recomputation finds wrong


def compare_rollups(ours: list[tuple[int, int, Decimal, Decimal]],
                    raw: list[tuple[int, int, Decimal, Decimal]]) -> tuple[int, Decimal]:
    """RuntimeError unless both sides hold the same accounts with the same open_deals and
    won_amount; open_pipeline may differ by rounding (the engine adds each new child's
    unrounded weighted amount to the stored, rounded sum; raw adds the weighted amount to
    the cent): how many accounts differ there and by how much at most."""
    if [(i, n, w) for i, n, _, w in ours] != [(i, n, w) for i, n, _, w in raw]:
        raise RuntimeError("open_deals or won_amount differ between the engine's database "
                           "and the raw one")
    gaps = [abs(a[2] - b[2]) for a, b in zip(ours, raw, strict=True) if a[2] != b[2]]
    return len(gaps), max(gaps, default=Decimal(0))


def measure(kind: str, n: int, say: Callable[[str], None]) -> Measured:
    before_dir = os.environ.get(BEFORE_ENV)
    load_before = load_text()
    ours: list[float] = []
    raw: list[float] = []
    before_ms: list[float] = []
    with database(kind, "ours") as env, database(kind, "raw") as raw_env:
        rows = _rows(env, WARMUP + n)
        if raw_env.account_ids != env.account_ids:
            raise RuntimeError("the two databases' accounts differ")
        side = ThroughRecords(env)
        baseline: Side = (RawSqlite(raw_env.path) if raw_env.path is not None
                          else RawPostgres(raw_env))
        before = Before(Path(before_dir), kind, n) if before_dir else None
        try:
            for row in rows[:WARMUP]:
                side.create(row)
                baseline.create(row)
            for start in range(WARMUP, WARMUP + n, ROUND):
                chunk = rows[start : start + ROUND]
                ours += [side.create(row) for row in chunk]
                raw += [baseline.create(row) for row in chunk]
                if before is not None:
                    before_ms += before.round()
                if (start - WARMUP) % (ROUND * 5) == 0:
                    say(f"{kind}: {start - WARMUP:,} of {n:,} creates per side")
        finally:
            baseline.close()
            if before is not None:
                before.close()
        pipeline = compare_rollups(rollup_values(env), rollup_values(raw_env))
        drift = len(_check(env))
    return Measured(kind, ours, raw, before_ms, load_before, load_text(), pipeline, drift)


def _check(env: Env) -> list[Any]:
    """`crm rollup check` of the engine's database: the stored rollups that differ from a
    recomputation from scratch. (Imported here: the before checkout has no rollups.)"""
    from engine.runtime.rollups.refresh import check_rollups

    return check_rollups(env.records)


def _p(values: list[float]) -> tuple[float, float]:
    return percentile(values, 50), percentile(values, 95)


def _pair(values: list[float]) -> str:
    p50, p95 = _p(values)
    return f"{p50:.2f} / {p95:.2f}"


def _ratio(a: list[float], b: list[float]) -> str:
    (a50, a95), (b50, b95) = _p(a), _p(b)
    return f"{a50 / b50:.2f} / {a95 / b95:.2f}"


def _rows_of(m: Measured, n: int, before_commit: str) -> list[Row]:
    label = "SQLite" if m.kind == "sqlite" else "PostgreSQL"
    rows = [Row(f"single create of an opportunity on an account (`Records.create`, own "
                f"transaction, rollup hook), {n:,} creates, {label}, p50 / p95 (ms)",
                _pair(m.ours), _pair(m.raw), f"{_ratio(m.ours, m.raw)} (ours / raw)",
                "informational", None)]
    if m.before:
        rows.append(Row(f"same, {label}, against the same creates before the write pipeline "
                        f"({before_commit}: no unit of work, no rollups), p50 / p95 (ms)",
                        _pair(m.ours), _pair(m.before),
                        f"{_ratio(m.ours, m.before)} (ours / before)", "informational", None))
    return rows


def _notes_of(m: Measured, before_commit: str) -> list[str]:
    label = "SQLite" if m.kind == "sqlite" else "PostgreSQL"
    o50, r50 = percentile(m.ours, 50), percentile(m.raw, 50)
    note = (f"{label}: ours p50 {o50:.2f} ms, raw p50 {r50:.2f} ms: the engine spends "
            f"{o50 - r50:.2f} ms more per create than the three raw statements")
    if m.before:
        b50 = percentile(m.before, 50)
        note += (f"; before ({before_commit}) p50 {b50:.2f} ms, so the write pipeline and the "
                 f"three rollups cost {o50 - b50:+.2f} ms per create ({o50 / b50 - 1:+.0%})")
    return [note + ".",
            f"{label}: min / max ms: ours {min(m.ours):.2f} / {max(m.ours):.2f}, raw "
            f"{min(m.raw):.2f} / {max(m.raw):.2f}" + (
                f", before {min(m.before):.2f} / {max(m.before):.2f}" if m.before else "")
            + f". Load average {m.load_before} before, {m.load_after} after.",
            f"{label}: afterwards open_deals and won_amount are the same on both sides for "
            f"every account; open_pipeline differs on {m.pipeline[0]:,} of the 1,000 accounts "
            f"(by at most {m.pipeline[1]}): the engine adds each new opportunity's unrounded "
            f"weighted amount (amount * probability / 100, up to 3 places) to the stored sum, "
            f"which the money column keeps to the cent, so the rounding falls per create; raw "
            f"adds the weighted amount as the record shows it (to the cent, half up). `crm "
            f"rollup check` (a recomputation from scratch, rounding the sum once) then finds "
            f"{m.drift:,} stored rollup values of the engine's database wrong."]


def run(n: int = CREATES, say: Callable[[str], None] = print) -> Section:
    measured = [measure("sqlite", n, say)]
    problem = pg_problem()
    if problem is None:
        measured.append(measure("postgresql", n, say))
    else:
        say(f"PostgreSQL skipped: {problem}")
    before_dir = os.environ.get(BEFORE_ENV)
    before_commit = commit_of(Path(before_dir)) if before_dir else ""
    rows = [r for m in measured for r in _rows_of(m, n, before_commit)]
    notes = [
        "ours: `Records.create(SYSTEM, \"opportunity\", row)` built as the app builds it "
        "(engine/runtime/assembly.py `records_service`, the rollup hook installed), one "
        "transaction per create: field checks, the account link check, the INSERT, the "
        "hook (lock the account, the new child's contribution to each of the three rollups, "
        "the UPDATE), the created record read back, one `crm_audit` row, COMMIT.",
        "baseline (raw): in one transaction, `INSERT INTO opportunity`, `UPDATE account SET "
        "open_deals = open_deals + ?, open_pipeline = open_pipeline + ?, won_amount = "
        "won_amount + ? WHERE id = ?` (the deltas worked out in Python from the row: the "
        "config's probability by stage, weighted = amount * probability / 100, won amount) "
        "and `INSERT INTO crm_audit` with the row as JSON; plain sqlite3 with the engine's "
        "PRAGMAs and BEGIN IMMEDIATE on SQLite, one psycopg connection on PostgreSQL. After "
        "the runs every account's open_deals and won_amount are the same in both databases "
        "(checked; open_pipeline below).",
        f"{n:,} creates per side after {WARMUP} untimed, the same seeded rows (bench/data.py) "
        f"on 1,000 accounts, each side into a fresh database of its own (SQLite file in "
        f"bench/, PostgreSQL schema bench_create_<side>) starting with no opportunities; the "
        f"sides take turns {ROUND} creates at a time; the figure is the wall time of each "
        f"call, measured in the process that makes it.",
        (f"before: the same creates through `Records.create` of the checkout at "
         f"{BEFORE_ENV} ({before_commit}), in a subprocess with that checkout's engine and "
         f"config/ (no rollup fields there), driven round by round with the other two sides."
         if before_commit else
         f"before: not measured (set {BEFORE_ENV} to a checkout of an older commit)."),
    ]
    for m in measured:
        notes += _notes_of(m, before_commit)
    notes.append("The machine is shared (2 cores; other engineers' tests and benchmarks ran "
                 "at the same time): compare the sides of one run, not runs.")
    return Section(
        name=NAME, title="Single create of an opportunity (write pipeline and rollups)",
        rows=rows, notes=notes, machine=machine_info(),
        data={m.kind: {"ours_ms": _p(m.ours), "raw_ms": _p(m.raw),
                       "before_ms": _p(m.before) if m.before else None,
                       "before_commit": before_commit} for m in measured} | {"creates": n},
    )


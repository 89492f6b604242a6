"""Import: N opportunities from a CSV file through `crm import` vs raw inserts of the same rows.

The issue's figure: 1,000,000 opportunities from CSV on SQLite, through the import (the file
read and its text coerced, validation, the account reference checked, one rollup on the
account, 7 indexes, one audit row per record, the job's progress in each batch's
transaction), against plain `sqlite3` `executemany` of the same rows, parsed before timing,
into an identical table in the same run (target ≥ 0.5x); the import's peak RSS (≤ 300 MB,
flat in the file size: the import also runs on a file a tenth the size). On PostgreSQL the
baseline is one COPY of the parsed rows into an identical table, and each side starts on a
settled server (bench/env.py `pg_settle`): a side run after a million-row COPY otherwise
shares the machine with that table's autovacuum.

The import runs as the user runs it — `python -m engine.cli import opportunity FILE` in a
subprocess — so its wall time, CPU time (user + system of the child, `os.wait4`) and peak
RSS (the process's own high-water mark, which it reports as it exits) are those of the
command, start-up and configuration load included. The module
is named after the command; `bench.run` loads it with importlib (`import` is a keyword).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.bulk_insert import one_rollup_config
from bench.data import opportunity_rows
from bench.env import (
    BENCH_DIR,
    ENTITY,
    REPO,
    Timing,
    count_rows,
    fresh_env,
    load_text,
    machine_info,
    open_env,
    pg_admin,
    pg_problem,
    pg_recreate_schema,
    pg_schema_url,
    pg_settle,
    raw_connect,
    remove_db,
    timed,
)
from bench.env import _fresh as fresh_pg_env
from bench.env import _open as open_pg_env
from bench.report import Row, Section
from engine.runtime.imports import jobs

NAME = "import"
NAME_PG = "import_pg"
TARGET = 0.5
RSS_TARGET_MB = 300
BATCH = jobs.BATCH  # the raw side commits as often as the import does
FIELDS = ("name", "account", "amount", "stage", "close_date", "lost_reason")
_COLUMNS = ("version", "created_at", "created_by", "updated_at", "updated_by", "owner_id",
            "department_id", *FIELDS)
_INSERT = (f"INSERT INTO {ENTITY} ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)})")


@dataclass
class Child:
    """A subprocess's wall time, CPU time (user + system) and peak RSS (MB)."""

    wall: float
    cpu: float
    rss_mb: float
    output: str


def one_rollup(dest: Path, *, flows: bool = False) -> tuple[Path, list[str]]:
    """bench/bulk_insert.py's one-rollup copy of config/, less the reports that read the
    rollups it leaves out and the dashboards that show those reports, and (unless `flows`)
    without config/flows (not timed)."""
    config, dropped = one_rollup_config(dest)
    if not flows:
        for flow in sorted((config / "flows").glob("*.yaml")):
            flow.unlink()
    gone: set[str] = set()
    for report in sorted((config / "reports").glob("*.yaml")):
        if any(name in report.read_text(encoding="utf-8") for name in dropped):
            gone.add(report.stem)
            report.unlink()
    for board in sorted((config / "dashboards").glob("*.yaml")):
        if any(name in board.read_text(encoding="utf-8") for name in gone):
            board.unlink()
    return config, dropped


def write_csv(path: Path, n_rows: int, account_ids: list[int]) -> None:
    """The opportunities as a spreadsheet export has them: text, a header of field names."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for r in opportunity_rows(n_rows, account_ids):
            w.writerow([r["name"], r["account"], f"{r['amount']:.2f}", r["stage"],
                        r["close_date"].isoformat(), r["lost_reason"] or ""])


def parsed_rows(path: Path) -> list[tuple[Any, ...]]:
    """The baseline's input: the file's rows parsed to typed values (before timing)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        return [(name, int(account), Decimal(amount), stage, date.fromisoformat(close),
                 lost or None) for name, account, amount, stage, close, lost in reader]


def _stamp() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def raw_sqlite(path: Path, rows: list[tuple[Any, ...]]) -> Timing:
    """executemany per BATCH rows, each batch its own write transaction."""
    conn = raw_connect(path)
    try:
        with timed() as timing:
            stamp = _stamp()
            for start in range(0, len(rows), BATCH):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, (
                    (1, stamp, None, stamp, None, None, None, n, a, float(m), s,
                     c.isoformat(), lost) for n, a, m, s, c, lost in rows[start:start + BATCH]))
                conn.execute("COMMIT")
        return timing
    finally:
        conn.close()


def raw_copy(engine: Any, rows: list[tuple[Any, ...]]) -> Timing:
    """One COPY of every row into the table, one transaction."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with timed() as timing:
            now = datetime.now(UTC)
            with conn.cursor() as cur, cur.copy(
                    f"COPY {ENTITY} ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                for n, a, m, s, c, lost in rows:
                    copy.write_row((1, now, None, now, None, None, None, n, a, m, s, c, lost))
            conn.commit()
        return timing
    finally:
        raw.close()


# The floor of what the import is asked to write (informational): the same rows plus one
# audit row per record (its values as JSON, as the engine writes a create's) and one
# change-log row per record, with ids given by the inserter.
_LOG_COLUMNS = ("entity", "record_id", "action", "at", "owner_id", "department_id")
_AUDIT_COLUMNS = ("at", "user_id", "entity", "record_id", "action", "field", "old_value",
                  "new_value")


def _first_values(n: str, a: int, m: Decimal, s: str, c: date, lost: str | None) -> str:
    first: dict[str, Any] = {"name": n, "account": a, "amount": str(m), "stage": s,
                             "close_date": c.isoformat()}
    if lost:
        first["lost_reason"] = lost
    return json.dumps(first, ensure_ascii=False)


def raw_sqlite_logged(path: Path, rows: list[tuple[Any, ...]]) -> Timing:
    """raw_sqlite, each batch also writing the audit and change-log rows."""
    conn = raw_connect(path)
    insert = _INSERT.replace("(version", "(id, version").replace("VALUES (", "VALUES (?, ")
    audit = (f"INSERT INTO crm_audit ({', '.join(_AUDIT_COLUMNS)}) "
             f"VALUES ({', '.join('?' for _ in _AUDIT_COLUMNS)})")
    log = (f"INSERT INTO crm_change ({', '.join(_LOG_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _LOG_COLUMNS)})")
    try:
        with timed() as timing:
            stamp = _stamp()
            for start in range(0, len(rows), BATCH):
                conn.execute("BEGIN IMMEDIATE")
                top = conn.execute(f"SELECT coalesce(max(id), 0) FROM {ENTITY}").fetchone()[0]
                batch = list(enumerate(rows[start:start + BATCH], start=top + 1))
                conn.executemany(insert, (
                    (i, 1, stamp, None, stamp, None, None, None, n, a, float(m), s,
                     c.isoformat(), lost) for i, (n, a, m, s, c, lost) in batch))
                conn.executemany(audit, ((stamp, None, ENTITY, i, "create", None, None,
                                          _first_values(*r)) for i, r in batch))
                conn.executemany(log, ((ENTITY, i, "create", stamp, None, None)
                                       for i, _ in batch))
                conn.execute("COMMIT")
        return timing
    finally:
        conn.close()


def raw_copy_logged(engine: Any, rows: list[tuple[Any, ...]]) -> Timing:
    """raw_copy, also COPYing the audit and change-log rows, in the same transaction."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with timed() as timing:
            now = datetime.now(UTC)
            with conn.cursor() as cur:
                top = cur.execute(f"SELECT coalesce(max(id), 0) FROM {ENTITY}").fetchone()[0]
                numbered = list(enumerate(rows, start=top + 1))
                with cur.copy(f"COPY {ENTITY} (id, {', '.join(_COLUMNS)}) FROM STDIN") as copy:
                    for i, (n, a, m, s, c, lost) in numbered:
                        copy.write_row((i, 1, now, None, now, None, None, None, n, a, m, s, c,
                                        lost))
                with cur.copy(f"COPY crm_audit ({', '.join(_AUDIT_COLUMNS)}) FROM STDIN"
                              ) as copy:
                    for i, r in numbered:
                        copy.write_row((now, None, ENTITY, i, "create", None, None,
                                        _first_values(*r)))
                with cur.copy(f"COPY crm_change ({', '.join(_LOG_COLUMNS)}) FROM STDIN"
                              ) as copy:
                    for i, _ in numbered:
                        copy.write_row((ENTITY, i, "create", now, None, None))
            conn.commit()
        return timing
    finally:
        raw.close()


# `crm` as `python -m engine.cli` runs it, which says its own peak RSS as it exits: the
# high-water mark of the process's own memory since it started (/proc/self/status VmHWM).
# wait4's ru_maxrss is not that: it counts the pages the child shared with this process
# between fork and exec, and this process holds the parsed rows of the baseline (a 1,000,000-
# row run once read 517 MB for an import whose own peak was ~125 MB).
_PEAK = "crm-bench-peak-rss-kb:"
_RUN_CLI = f"""
import atexit, re, runpy, sys
def _peak():
    status = open("/proc/self/status").read()
    sys.stderr.write("\\n{_PEAK} " + re.search(r"VmHWM:\\s+(\\d+)", status).group(1) + "\\n")
atexit.register(_peak)
sys.argv[0] = "crm"
runpy.run_module("engine.cli", run_name="__main__", alter_sys=True)
"""


def crm_import(config: Path, url: str, source: Path) -> Child:
    """`crm import opportunity FILE` in a subprocess: its wall, CPU and peak RSS."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    command = [sys.executable, "-c", _RUN_CLI, "--config", str(config), "--db", url,
               "import", ENTITY, str(source)]
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=environ, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"crm import failed ({proc.returncode}): {output[-2000:]}")
    peaks = [line.split()[-1] for line in output.splitlines() if line.startswith(_PEAK)]
    if not peaks:
        raise RuntimeError(f"crm import did not say its peak RSS: {output[-2000:]}")
    return Child(wall, usage.ru_utime + usage.ru_stime, int(peaks[-1]) / 1024, output)


def _summary(output: str) -> str:
    lines = [line for line in output.splitlines() if "row(s)" in line]
    return lines[-1] if lines else output.strip()[-200:]


def _check(engine: Any, n_rows: int) -> None:
    found = count_rows(engine, ENTITY)
    if found != n_rows:
        raise RuntimeError(f"{found:,} opportunities after the import, not {n_rows:,}")


def run(n_rows: int, say: Callable[[str], None] = print) -> Section:
    """SQLite: the import of n_rows (and of n_rows / 10, for the RSS) vs executemany."""
    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    ours_path, small_path, raw_path, floor_path = (BENCH_DIR / f"import-{k}.db"
                                                   for k in ("ours", "small", "raw", "floor"))
    load_before = load_text()
    try:
        config, dropped = one_rollup(work / "config")
        env = fresh_env(raw_path, config)
        ids = env.account_ids
        env.engine.dispose()
        source, small = work / "opportunities.csv", work / "opportunities-small.csv"
        say(f"writing {n_rows:,} and {n_rows // 10:,} opportunities to CSV (not timed)")
        write_csv(source, n_rows, ids)
        write_csv(small, n_rows // 10, ids)
        rows = parsed_rows(source)
        say("raw executemany (rows parsed before timing)")
        raw = raw_sqlite(raw_path, rows)
        fresh_env(floor_path, config).engine.dispose()
        say("raw executemany with audit and change-log rows (informational)")
        floor = raw_sqlite_logged(floor_path, rows)
        del rows
        for path in (ours_path, small_path):
            fresh_env(path, config).engine.dispose()
        say(f"crm import of {n_rows // 10:,} rows (for the RSS)")
        small_run = crm_import(config, f"sqlite:///{small_path}", small)
        say(f"crm import of {n_rows:,} rows")
        ours = crm_import(config, f"sqlite:///{ours_path}", source)
        env = open_env(ours_path, config)
        _check(env.engine, n_rows)
        audit = count_rows(env.engine, "crm_audit")
        env.engine.dispose()
        size_mb = source.stat().st_size / 2**20
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for path in (ours_path, small_path, raw_path, floor_path):
            remove_db(path)
    wall_ratio, cpu_ratio = raw.wall / ours.wall, raw.cpu / ours.cpu
    label = f"{n_rows:,}"
    return Section(
        name=NAME,
        title=f"Import of {label} opportunities from CSV on SQLite",
        rows=[
            Row(f"crm import {label} opportunities from CSV, one rollup on the account "
                f"(rows/s, wall)", f"{n_rows / ours.wall:,.0f}", f"{n_rows / raw.wall:,.0f}",
                f"{wall_ratio:.2f} wall, {cpu_ratio:.2f} CPU (raw time / ours)", "≥ 0.5",
                min(wall_ratio, cpu_ratio) >= TARGET),
            Row(f"peak RSS of crm import: {label} rows vs {n_rows // 10:,} rows (MB)",
                f"{ours.rss_mb:,.0f}", f"{small_run.rss_mb:,.0f}",
                f"{ours.rss_mb / small_run.rss_mb:.2f}x for 10x the rows",
                f"≤ {RSS_TARGET_MB} MB, flat",
                ours.rss_mb <= RSS_TARGET_MB and ours.rss_mb <= 1.25 * small_run.rss_mb),
            Row(f"information: the same against raw executemany that also writes one audit "
                f"row and one change-log row per record, {label} rows (rows/s, wall)",
                f"{n_rows / ours.wall:,.0f}", f"{n_rows / floor.wall:,.0f}",
                f"{floor.wall / ours.wall:.2f} wall, {floor.cpu / ours.cpu:.2f} CPU "
                f"(raw time / ours)", "—", None),
        ],
        notes=[
            f"ours: `python -m engine.cli --config <copy> import opportunity FILE` in a "
            f"subprocess, {size_mb:,.0f} MB of CSV: {ours.wall:.1f} s wall / {ours.cpu:.1f} s "
            f"CPU, peak RSS {ours.rss_mb:,.0f} MB; it said: {_summary(ours.output)!r}. "
            f"Start-up and the configuration load are in the figure. The job reads the file "
            f"twice (a count for the progress bar, then the rows), maps the columns by name, "
            f"coerces each cell's text, checks every account id (one query per {BATCH}-row "
            f"batch), runs the opportunity's validation rules and defaults, inserts through "
            f"the set-wise bulk path, adds each batch to its accounts' rollup, writes one "
            f"`crm_audit` row per record ({audit:,} audit rows afterwards, the accounts' "
            f"included), and advances the job row in the same transaction (each batch one "
            f"unit of work).",
            f"{n_rows // 10:,} rows: {small_run.wall:.1f} s wall, peak RSS "
            f"{small_run.rss_mb:,.0f} MB.",
            f"baseline: plain `sqlite3` `executemany` of the same rows, parsed from the CSV "
            f"before timing (text → int, Decimal, date), into an identical table of a fresh "
            f"database: {raw.wall:.1f} s wall / {raw.cpu:.1f} s CPU, one BEGIN IMMEDIATE … "
            f"COMMIT per {BATCH} rows, no audit rows, no rollup.",
            f"one rollup on the account (open_pipeline): a copy of config/ "
            f"(bench/bulk_insert.py `one_rollup_config`; left out: {', '.join(dropped)}, the "
            f"reports and dashboards reading them, and config/flows: the shipped opportunity "
            f"flows — stage history, timers — cost about 4 ms a row more, measured at "
            f"10,000 rows, and are not in the issue's list). "
            f"All files made by `apply_plan` with 1,000 accounts; the opportunity table has "
            f"7 indexes and its foreign keys on every side (foreign_keys=ON); WAL, "
            f"synchronous=NORMAL.",
            f"CPU: ours is the child's user + system time, raw this process's. The machine is "
            f"shared (2 cores, other engineers' tests running): load average {load_before} "
            f"before, {load_text()} after.",
        ],
        machine=machine_info(),
        data={"rows": n_rows, "ours": asdict(ours) | {"output": _summary(ours.output)},
              "small": {"rows": n_rows // 10, "wall": small_run.wall,
                        "rss_mb": small_run.rss_mb},
              "raw": asdict(raw), "floor": asdict(floor), "wall_ratio": wall_ratio,
              "cpu_ratio": cpu_ratio},
    )


def run_pg(n_rows: int, say: Callable[[str], None] = print) -> Section | None:
    """PostgreSQL: the import of n_rows vs one COPY of the parsed rows."""
    problem = pg_problem()
    if problem is not None:
        say(f"skipping {NAME_PG}: PostgreSQL is not reachable ({problem})")
        return None
    work = Path(tempfile.mkdtemp(prefix="bench-import-pg-"))
    admin = pg_admin()
    load_before = load_text()
    try:
        config, _ = one_rollup(work / "config")
        for schema in ("bench_import_raw", "bench_import_ours", "bench_import_floor"):
            pg_recreate_schema(admin, schema)
        raw_env = fresh_pg_env(pg_schema_url("bench_import_raw"), None, config)
        ours_url = pg_schema_url("bench_import_ours")
        fresh_pg_env(ours_url, None, config).engine.dispose()
        source = work / "opportunities.csv"
        say(f"writing {n_rows:,} opportunities to CSV (not timed)")
        write_csv(source, n_rows, raw_env.account_ids)
        rows = parsed_rows(source)
        floor_env = fresh_pg_env(pg_schema_url("bench_import_floor"), None, config)
        # each side starts on a settled server (bench/env.py pg_settle): the side before
        # it emptied, its dirty buffers written, autovacuum idle
        settled = [pg_settle(admin)]
        say("raw COPY (rows parsed before timing)")
        raw = raw_copy(raw_env.engine, rows)
        _check(raw_env.engine, n_rows)
        raw_env.engine.dispose()
        settled.append(pg_settle(admin, "bench_import_raw"))
        say("raw COPY with audit and change-log rows (informational)")
        floor = raw_copy_logged(floor_env.engine, rows)
        _check(floor_env.engine, n_rows)
        floor_env.engine.dispose()
        del rows
        settled.append(pg_settle(admin, "bench_import_floor"))
        say(f"crm import of {n_rows:,} rows into PostgreSQL")
        ours = crm_import(config, ours_url, source)
        ours_env = open_pg_env(ours_url, None, config)
        _check(ours_env.engine, n_rows)
        ours_env.engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for schema in ("bench_import_raw", "bench_import_ours", "bench_import_floor"):
            pg_recreate_schema(admin, schema)
        admin.dispose()
    wall_ratio = raw.wall / ours.wall
    label = f"{n_rows:,}"
    return Section(
        name=NAME_PG,
        title=f"Import of {label} opportunities from CSV on PostgreSQL",
        rows=[Row(f"crm import {label} opportunities from CSV into PostgreSQL, one rollup "
                  f"(rows/s, wall)", f"{n_rows / ours.wall:,.0f}", f"{n_rows / raw.wall:,.0f}",
                  f"{wall_ratio:.2f} wall (raw time / ours)", "≥ 0.5",
                  wall_ratio >= TARGET),
              Row(f"information: the same against raw COPY that also copies one audit row "
                  f"and one change-log row per record, {label} rows (rows/s, wall)",
                  f"{n_rows / ours.wall:,.0f}", f"{n_rows / floor.wall:,.0f}",
                  f"{floor.wall / ours.wall:.2f} wall (raw time / ours)", "—", None)],
        notes=[
            f"ours: `python -m engine.cli import opportunity FILE` into a fresh schema, as on "
            f"SQLite: {ours.wall:.1f} s wall / {ours.cpu:.1f} s CPU of the command (the "
            f"server's work is not in its CPU), peak RSS {ours.rss_mb:,.0f} MB; it said: "
            f"{_summary(ours.output)!r}.",
            f"baseline: one psycopg COPY of the same rows (parsed before timing) into an "
            f"identical table of a fresh schema, one transaction: {raw.wall:.1f} s wall. The "
            f"target is judged on wall time (the COPY's work is the server's).",
            f"Before each side the server was settled (the side before it emptied, a "
            f"checkpoint where the role may, autovacuum idle), so no side pays for another's "
            f"leftover work: "
            f"raw: {settled[0]}; floor: {settled[1]}; ours: {settled[2]}.",
            f"The machine is shared: load average {load_before} before, {load_text()} after.",
        ],
        machine=machine_info(),
        data={"rows": n_rows, "ours": asdict(ours) | {"output": _summary(ours.output)},
              "raw": asdict(raw), "floor": asdict(floor), "wall_ratio": wall_ratio,
              "settled": settled},
    )


def _rows(argv: list[str]) -> Iterator[int]:
    yield int(argv[1]) if len(argv) > 1 else 1_000_000


if __name__ == "__main__":  # python -m bench.import [ROWS]
    for n in _rows(sys.argv):
        print(run(n))
        print(run_pg(n))

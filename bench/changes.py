"""The changes feed over a log of about a million changes: a page of 1,000 through the engine
against a hand-written keyset query of the same rows, on SQLite and on PostgreSQL.

ours: `read_changes(records, admin, "opportunity", since, 1000)` (engine/runtime/records/
feed.py) — the engine function behind `GET /api/opportunity/changes`, without HTTP: the
access check, the cursor, the one statement (the log's head LEFT JOIN the page of log rows
joined to their records with every field the caller reads, computed ones included), each
record built as the caller reads it, the next cursor.

hand: the keyset query one writes for those rows through SQLAlchemy `text()` on the same
engine: `crm_change` after the cursor, in `seq` order, 1,000 rows, LEFT JOIN the
opportunity's stored columns (`o.*`), fetched as a list.

Data: N opportunities made by the database (bench/reports_data.py) on the 1,000 benchmark
accounts (made by `bulk_create`, which logs their 1,000 creates through the unit of work),
then the log filled set-wise as if the engine had written it: a `create` of every
opportunity, in id order, and an `update` of every tenth after them — 1.1 N rows of the
opportunity plus the accounts'. Each pair reads a page at a random place in the log (the
same for both sides), A B then B A.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, text

from bench.env import (
    BENCH_DIR,
    CONFIG,
    PG_URL,
    load_text,
    machine_info,
    pg_problem,
    remove_db,
    sqlite_url,
)
from bench.report import Row, Section
from bench.reports import Scratch, build, paired, ratio_median
from engine.metadata import load_model
from engine.runtime.db import normalize_url
from engine.runtime.records.feed import encode_cursor, feed_statement, read_changes

NAME = "changes"
TARGET = 1.5
PAGE = 1_000
PAIRS = 15
DATABASE = "crm_bench_changes"

HAND = """
SELECT c.seq, c.action, c.at, c.record_id, o.*
FROM crm_change c LEFT JOIN opportunity o ON o.id = c.record_id
WHERE c.entity = 'opportunity' AND c.seq > :since
ORDER BY c.seq LIMIT :limit"""


def fill_log(engine: Engine, say: Callable[[str], None]) -> tuple[int, int]:
    """The log rows of the opportunities the database made (see the module); the lowest and
    highest seq of the opportunity's rows."""
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO crm_change (entity, record_id, action, at, owner_id, department_id) "
            "SELECT 'opportunity', id, 'create', created_at, owner_id, department_id "
            "FROM opportunity ORDER BY id"))
        conn.execute(text(
            "INSERT INTO crm_change (entity, record_id, action, at, owner_id, department_id) "
            "SELECT 'opportunity', id, 'update', updated_at, owner_id, department_id "
            "FROM opportunity WHERE id % 10 = 0 ORDER BY id"))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        lo, hi, total = conn.execute(text(
            "SELECT min(seq), max(seq), (SELECT count(*) FROM crm_change) FROM crm_change "
            "WHERE entity = 'opportunity'")).one()
    say(f"  {total:,} log rows made in {time.perf_counter() - started:.1f} s")
    return int(lo), int(hi)


def measure(database: str, scratch: Scratch, lo: int, hi: int, rows: int,
            say: Callable[[str], None], data: dict[str, Any]) -> list[Row]:
    hand_sql = text(HAND)
    places = random.Random(15)
    since = [lo]

    def ours() -> list[Any]:
        return read_changes(scratch.records, scratch.admin, "opportunity",
                            encode_cursor(since[0]), PAGE).items

    def hand() -> list[Any]:
        with scratch.engine.connect() as conn:
            return list(conn.execute(hand_sql, {"since": since[0], "limit": PAGE}).all())

    # the same rows on both sides, at the start, in the middle and at the end of the log
    for at in (lo - 1, (lo + hi) // 2, hi - PAGE):
        since[0] = at
        mine, theirs = ours(), hand()
        if [(i.id, i.action) for i in mine] != [(r.record_id, r.action) for r in theirs] \
                or len(mine) != PAGE or any(i.record is None for i in mine):
            raise RuntimeError(f"{database}: the feed and the keyset query differ at {at}")
    times_ours: list[float] = []
    times_hand: list[float] = []
    for _ in range(PAIRS):
        since[0] = places.randrange(lo - 1, hi - PAGE)
        a, b = paired(ours, hand, 1)
        times_ours += a
        times_hand += b
    ratio = ratio_median(times_ours, times_hand)
    med_ours, med_hand = statistics.median(times_ours), statistics.median(times_hand)
    # where the time goes: the feed's statement alone (typed rows, computed fields in SQL)
    stmt = feed_statement(scratch.records, scratch.admin, "opportunity")

    def statement() -> list[Any]:
        with scratch.engine.connect() as conn:
            return list(conn.execute(stmt, {"since": since[0], "limit": PAGE}).all())

    times_stmt: list[float] = []
    times_hand2: list[float] = []
    for _ in range(PAIRS):
        since[0] = places.randrange(lo - 1, hi - PAGE)
        a, b = paired(statement, hand, 1)
        times_stmt += a
        times_hand2 += b
    med_stmt, med_hand2 = statistics.median(times_stmt), statistics.median(times_hand2)
    data[database] = {"ours_s": times_ours, "hand_s": times_hand, "statement_s": times_stmt,
                      "hand_again_s": times_hand2}
    say(f"  {database}: ours {med_ours * 1000:.1f} ms, hand {med_hand * 1000:.1f} ms, "
        f"ratio {ratio:.2f}; the statement alone {med_stmt * 1000:.1f} ms")
    where = f"a page of {PAGE:,} of ~{rows * 1.1:,.0f} changes, {database}, as an admin"
    return [Row(f"changes feed, {where}, p50 of {PAIRS} (ms)",
                f"{med_ours * 1000:,.1f}", f"{med_hand * 1000:,.1f}",
                f"{ratio:.2f} (ours / hand, median of the pairs)", f"≤ {TARGET:g}",
                ratio <= TARGET),
            Row(f"changes feed's statement alone (typed rows, computed fields), {where}, "
                f"p50 of {PAIRS} (ms)",
                f"{med_stmt * 1000:,.1f}", f"{med_hand2 * 1000:,.1f}",
                f"{ratio_median(times_stmt, times_hand2):.2f} (statement / hand)", "—", None)]


def _pg_admin() -> Engine:
    return create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")


def _pg(sql: str) -> None:
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


def run(rows: int, say: Callable[[str], None] = print) -> Section:
    data: dict[str, Any] = {"rows": rows}
    load_before = load_text()
    model = load_model(CONFIG)
    out: list[Row] = []
    path = BENCH_DIR / f"changes-{rows}.db"
    remove_db(path)
    say(f"building {path.name} (not timed)")
    scratch = build(sqlite_url(path), model, rows, say)
    try:
        lo, hi = fill_log(scratch.engine, say)
        out += measure("SQLite", scratch, lo, hi, rows, say, data)
    finally:
        scratch.engine.dispose()
        remove_db(path)
    problem = pg_problem()
    pg_note = ""
    if problem is not None:
        say(f"skipping PostgreSQL: not reachable at CRM_TEST_PG_URL: {problem}")
        pg_note = f"PostgreSQL was not measured: {problem}."
    else:
        _pg(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        _pg(f'CREATE DATABASE "{DATABASE}"')
        url = normalize_url(PG_URL).set(database=DATABASE).render_as_string(
            hide_password=False)
        say(f"building PostgreSQL database {DATABASE} (not timed)")
        try:
            scratch = build(url, model, rows, say)
            try:
                lo, hi = fill_log(scratch.engine, say)
                out += measure("PostgreSQL", scratch, lo, hi, rows, say, data)
            finally:
                scratch.engine.dispose()
        finally:
            _pg(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    notes = [
        "ours: `read_changes(records, admin, \"opportunity\", since, 1000)` "
        "(engine/runtime/records/feed.py), the engine function behind `GET "
        "/api/opportunity/changes` without the HTTP layer: the access check, the cursor, "
        "one statement (the log's head LEFT JOIN the page: log rows by the index (entity, "
        "seq) joined to their records with every field an admin reads, the computed ones "
        "— probability, forecast category, weighted amount, scores — as SQL expressions), "
        "each record built as the caller reads it, the next cursor. As the user "
        "bench_admin (role admin: no access predicate).",
        "hand: `SELECT c.seq, c.action, c.at, c.record_id, o.* FROM crm_change c LEFT JOIN "
        "opportunity o ON o.id = c.record_id WHERE c.entity = 'opportunity' AND c.seq > "
        ":since ORDER BY c.seq LIMIT 1000` through SQLAlchemy `text()` on the same engine, "
        "fetched as a list: the same log rows and records, the stored columns only.",
        f"data: {rows:,} opportunities on 1,000 accounts (bench/reports_data.py); the log "
        "made set-wise as the engine writes it: a create of each opportunity and an update "
        "of every tenth, plus the accounts' 1,000 creates logged by bulk_create. A scratch "
        f"SQLite file in bench/ and a PostgreSQL database {DATABASE}, dropped afterwards.",
        f"{PAIRS} pairs, each at a random place in the log (the same for both sides), A B "
        "then B A, after checking both sides read the same rows at the start, the middle "
        "and the end; medians of wall time in this process. The machine is shared (2 "
        f"cores): load average {load_before} before, {load_text()} after.",
    ]
    notes.append(
        "Where the time goes: the second row runs the feed's statement alone (SQLAlchemy "
        "typing each value — UTC datetimes, exact decimals — and the database computing the "
        "opportunity's formula fields); the rest of ours is building each record as the "
        "caller reads it (engine/runtime/records/service.py `row_writer`: computed numbers "
        "rounded to their places) and the items, the same work a list page of 1,000 does.")
    if pg_note:
        notes.append(pg_note)
    return Section(NAME, f"Changes feed over ~{rows * 1.1:,.0f} changes", out, notes=notes,
                   machine=machine_info(), data=data)

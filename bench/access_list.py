"""Access list: `GET /api/opportunity?page_size=50&sort=-amount` with and without an access
predicate, over 1M opportunities spread over the department tree of config/org.yaml.

Three users ask for the same page through the real app (bench/api_server.py, uvicorn in a
subprocess): an admin (no predicate), the East region's sales_manager (department_tree: a
quarter of the rows) and a Shanghai sales_rep (own: 1/40 of the rows plus a few team rows).
Requests rotate over the three so drift hits all alike.

The data lives in its own file (bench/access-<rows>.db; PostgreSQL: schema access_<rows>):
a copy of the api_list database when there is one (same rows), else built the same way,
then the departments are seeded, the users added and every opportunity given an owner and
that owner's department (id modulo the number of owners).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import case, event, func, insert, literal, select, text, update

from bench.api_list import OURS_PATH, PARAMS, WARMUP, bench_token, median_ms, serve
from bench.env import (
    BENCH_DIR,
    CONFIG,
    ENTITY,
    Env,
    _fresh,
    _load,
    _open,
    count_rows,
    fresh_env,
    load_text,
    loaded_path,
    machine_info,
    open_env,
    percentile,
    pg_admin,
    pg_problem,
    pg_recreate_schema,
    pg_schema_exists,
    pg_schema_url,
    remove_db,
)
from bench.report import Row, Section
from engine.runtime.access import Actor
from engine.runtime.db import refresh_statistics
from engine.runtime.org import seed_org
from engine.runtime.records.query import parse_list_params
from engine.runtime.records.totals import Totals
from engine.runtime.schema import apply_plan, plan_schema
from engine.runtime.schema.tables import TEAM_TABLE
from engine.runtime.users import Users

NAME = "access_list"
NAME_PG = "access_list_pg"
REQUESTS = 300
TARGET = 1.3
# Opportunity owners per department code of config/org.yaml: East (SH + HZ) holds 10 of 40,
# so its region manager sees a quarter of the rows.
OWNERS = {"HQ": 10, "BJ": 5, "SY": 5, "SH": 5, "HZ": 5, "HH": 5, "PARTNERS": 5}
MANAGER = "bench_east_manager"
MANAGER_DEPARTMENT = "EAST"
REP = "bench_sh_0"
TEAM_EVERY = 97  # every 97th opportunity has one more owner on its team (read access)
MANAGER_TEAM_EVERY = 9_973  # and the manager sits on a few teams outside East


@dataclass
class Who:
    """One benchmark user: the label in the results, the user name and its API token."""

    label: str
    name: str
    token: str
    visible: int = 0


def access_path(rows: int) -> Path:
    return BENCH_DIR / f"access-{rows}.db"


def _owner_names() -> list[tuple[str, str]]:
    return [(f"bench_{code.lower()}_{i}", code) for code, n in OWNERS.items() for i in range(n)]


def _copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of `src` (SQLite's backup API; `src` is only read)."""
    remove_db(dst)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _spread(env: Env, say: Callable[[str], None]) -> None:
    """Departments, users, owners and teams over the loaded opportunities (not timed)."""
    records = env.records
    seed_org(records)
    dept_table = records.schema.table("department")
    with env.engine.connect() as conn:
        dept = {r.code: r.id for r in conn.execute(select(dept_table.c.code, dept_table.c.id))}
    users = Users(env.engine, records.schema)

    def user(name: str, role: str, code: str) -> int:
        found = users.by_name_or_none(name)
        return (found or users.add(name, [role], department_id=dept[code])).id

    owners = [(user(name, "sales_rep", code), dept[code]) for name, code in _owner_names()]
    manager = user(MANAGER, "sales_manager", MANAGER_DEPARTMENT)
    bench_token(env)  # the admin
    t = records.compiled(ENTITY).table
    slot = t.c.id % len(owners)
    say(f"giving {count_rows(env.engine, ENTITY):,} opportunities {len(owners)} owners")
    team = records.schema.table(TEAM_TABLE)
    # the next owner round after the row's own (never the owner), so every owner gets some
    member = (t.c.id // TEAM_EVERY + 1) % len(owners)
    now = datetime.now(UTC)
    with env.engine.execution_options(crm_write=True).begin() as conn:
        conn.execute(update(t).values(
            owner_id=case(*[(slot == i, u) for i, (u, _) in enumerate(owners)]),
            department_id=case(*[(slot == i, d) for i, (_, d) in enumerate(owners)])))
        conn.execute(team.delete())
        cols = ["entity", "record_id", "user_id", "access", "added_at"]
        conn.execute(insert(team).from_select(cols, select(
            literal(ENTITY), t.c.id,
            case(*[(member == i, u) for i, (u, _) in enumerate(owners)]),
            literal("read"), literal(now, team.c.added_at.type),
        ).where(t.c.id % TEAM_EVERY == 0)))
        conn.execute(insert(team).from_select(cols, select(
            literal(ENTITY), t.c.id, literal(manager), literal("read"),
            literal(now, team.c.added_at.type),
        ).where(t.c.id % MANAGER_TEAM_EVERY == 0)))


def _complete(env: Env, rows: int) -> bool:
    t = env.records.compiled(ENTITY).table
    with env.engine.connect() as conn:
        unowned = conn.execute(select(func.count()).select_from(t)
                               .where(t.c.owner_id.is_(None))).scalar_one()
    names = [n for n, _ in _owner_names()] + [MANAGER, "bench"]
    users = Users(env.engine, env.records.schema)
    return (count_rows(env.engine, ENTITY) == rows and unowned == 0
            and all(users.by_name_or_none(n) is not None for n in names)
            and plan_schema(env.engine, env.model).is_empty)


def _reuse(env: Env, rows: int, say: Callable[[str], None]) -> bool:
    """Whether `env` already holds the rows; brings its schema and spread up to date."""
    if count_rows(env.engine, ENTITY) != rows:
        return False
    if not _complete(env, rows):
        apply_plan(env.engine, env.model)  # config/ changed since the file was built
        _spread(env, say)
        _vacuum(env)
    return True


def _vacuum(env: Env) -> None:
    """PostgreSQL: VACUUM ANALYZE after the big UPDATE, as autovacuum would in time."""
    if env.engine.dialect.name == "postgresql":
        with env.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def access_env(rows: int, say: Callable[[str], None] = print) -> Env:
    """bench/access-<rows>.db, reused when it holds the rows, else built (not timed)."""
    path = access_path(rows)
    if path.exists():
        env = open_env(path)
        if _reuse(env, rows, say):
            return env
        env.engine.dispose()
    shared = loaded_path(rows)
    if shared.exists():
        say(f"copying {shared.name} to {path.name} (not timed)")
        _copy_sqlite(shared, path)
        env = open_env(path)
        if _reuse(env, rows, say):
            return env
        env.engine.dispose()
    say(f"building {path.name} with {rows:,} opportunities (not timed)")
    env = _load(fresh_env(path), rows)
    _spread(env, say)
    return env


def _copy_rows(src: Env, dst: Env, say: Callable[[str], None]) -> None:
    """The opportunities of `src` into the empty table of `dst`, unchanged but for owner and
    department (`_spread` sets them), so both databases hold the same rows."""
    s, d = (e.records.compiled(ENTITY).table for e in (src, dst))
    names = [c.name for c in d.columns
             if c.name in s.c and c.name not in ("owner_id", "department_id")]
    say(f"copying {count_rows(src.engine, ENTITY):,} opportunities from {src.path} (not timed)")
    with src.engine.connect() as conn:
        result = conn.execution_options(yield_per=10_000).execute(
            select(*[s.c[n] for n in names]).order_by(s.c.id))
        for part in result.partitions():
            with dst.engine.execution_options(crm_write=True).begin() as out:
                out.execute(insert(d), [dict(r._mapping) for r in part])
    with dst.engine.begin() as out:
        out.execute(text("SELECT setval(pg_get_serial_sequence(:t, 'id'), "
                         f"(SELECT max(id) FROM {ENTITY}))"), {"t": ENTITY})


def pg_access_env(rows: int, say: Callable[[str], None] = print) -> Env:
    """Like `access_env`, in the PostgreSQL schema access_<rows>, holding the rows of the
    SQLite file (copied; VACUUM ANALYZEd after, as autovacuum would)."""
    schema = f"access_{rows}"
    url_text = pg_schema_url(schema)
    admin = pg_admin()
    try:
        if pg_schema_exists(admin, schema):
            env = _open(url_text, None, CONFIG)
            if _reuse(env, rows, say):
                return env
            env.engine.dispose()
        source = access_env(rows, say)
        say(f"building PostgreSQL schema {schema} with {rows:,} opportunities (not timed)")
        pg_recreate_schema(admin, schema)
        env = _fresh(url_text, None, CONFIG)
        if env.account_ids != source.account_ids:
            raise RuntimeError("the PostgreSQL accounts do not match the SQLite file's")
        _copy_rows(source, env, say)
        source.engine.dispose()
        _spread(env, say)
        _vacuum(env)
        return env
    finally:
        admin.dispose()


# -- measuring ---------------------------------------------------------------------------------


def _actor(env: Env, name: str) -> Actor:
    return Users(env.engine, env.records.schema).by_name(name).actor()


def _where(env: Env, actor: Actor) -> list[Any]:
    """The list's WHERE as list_records builds it (live rows, then the read predicate)."""
    c = env.records.compiled(ENTITY)
    where: list[Any] = [c.table.c.deleted_at.is_(None)]
    predicate = env.records.policy.read_filter(actor, c.entity, c.table)
    return where if predicate is None else [*where, predicate]


def in_process(env: Env, actor: Actor, runs: int) -> dict[str, float]:
    """Median ms of `Records.list_records` without HTTP: warm (the estimated total cached,
    as in most requests) and cold (a fresh total every call, as every 10 s per user)."""
    records = env.records
    query = parse_list_params(env.model.entity(ENTITY), PARAMS)

    def cold() -> Any:
        records.totals = Totals()
        return records.list_records(actor, ENTITY, query)

    warm = median_ms(lambda: records.list_records(actor, ENTITY, query), runs)
    return {"warm": warm, "cold": median_ms(cold, max(5, runs // 4))}


def list_statements(env: Env, actor: Actor) -> list[tuple[str, Any]]:
    """The statements (and their parameters) one list of the actor runs against the
    entity's table, the rows statement first."""
    seen: list[tuple[str, Any]] = []

    def hook(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if f"FROM {ENTITY}" in statement:
            seen.append((statement, parameters))

    event.listen(env.engine, "before_cursor_execute", hook)
    try:
        env.records.list_records(actor, ENTITY, parse_list_params(env.model.entity(ENTITY),
                                                                  PARAMS))
    finally:
        event.remove(env.engine, "before_cursor_execute", hook)
    return seen


def plans(env: Env, actor: Actor) -> list[str]:
    """The plans of the statements one uncached list runs against the entity's table."""
    env.records.totals = Totals()
    seen = list_statements(env, actor)
    sqlite = env.engine.dialect.name == "sqlite"
    out = []
    with env.engine.connect() as conn:
        for statement, parameters in seen:
            result = conn.exec_driver_sql(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ")
                                          + statement, parameters)
            steps = [str(r[-1] if sqlite else r[0]).strip().removeprefix("->  ")
                     for r in result]
            if not sqlite:  # the node lines, without their cost details
                steps = [s.split("  (")[0] for s in steps if "(cost=" in s]
            out.append(" → ".join(steps))
    return out


def pg_plan_times(env: Env, actor: Actor, runs: int = 50) -> tuple[float, float]:
    """PostgreSQL: median planning and execution ms of the rows statement of the actor's
    list (EXPLAIN (ANALYZE, SUMMARY, TIMING OFF), unprepared, so it is planned each time)."""
    statement, parameters = list_statements(env, actor)[0]
    planning: list[float] = []
    execution: list[float] = []
    with env.engine.connect() as conn:
        for _ in range(runs):
            lines = [str(r[0]) for r in conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, SUMMARY, TIMING OFF) " + statement, parameters)]
            for line, into in (("Planning Time:", planning), ("Execution Time:", execution)):
                into += [float(x.split()[2]) for x in lines if x.startswith(line)]
    return percentile(planning, 50), percentile(execution, 50)


def pg_prepared(env: Env, actor: Actor, runs: int = 200) -> tuple[float, int, int]:
    """PostgreSQL: median ms of a round trip of the rows statement of the actor's list run as
    the app runs it (psycopg prepares it from its 5th run on a connection), and how many of
    the runs PostgreSQL ran from its generic plan and how many it planned (custom plans)."""
    statement, parameters = list_statements(env, actor)[0]
    ms: list[float] = []
    env.engine.dispose()  # a new connection: no statement prepared on it but this one
    raw = env.engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        for _ in range(runs):
            start = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute(statement, parameters)
                cur.fetchall()
            ms.append((time.perf_counter() - start) * 1000)
        with conn.cursor() as cur:
            cur.execute("SELECT sum(generic_plans), sum(custom_plans) "
                        "FROM pg_prepared_statements WHERE statement LIKE '%%FROM opportunity%%'")
            found = cur.fetchone()
        conn.rollback()
    finally:
        raw.close()
    generic, custom = found if found is not None and found[0] is not None else (0, 0)
    return percentile(ms[runs // 4:], 50), int(generic), int(custom)


def time_http(base: str, who: list[Who], requests: int,
              say: Callable[[str], None]) -> dict[str, list[float]]:
    """Milliseconds per request for each user, requests rotating over the users."""
    times: dict[str, list[float]] = {w.name: [] for w in who}
    with httpx.Client(base_url=base, timeout=120) as client:
        def get(w: Who) -> float:
            start = time.perf_counter()
            response = client.get(OURS_PATH, headers={"Authorization": f"Bearer {w.token}"})
            elapsed = (time.perf_counter() - start) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{w.name}: {response.status_code} {response.text[:300]}")
            w.visible = int(response.json()["total"])
            return elapsed

        say(f"warm-up: {WARMUP} requests per user")
        for _ in range(WARMUP):
            for w in who:
                get(w)
        say(f"timing {requests} requests per user, rotating")
        for i in range(requests):
            for k in range(len(who)):
                w = who[(i + k) % len(who)]
                times[w.name].append(get(w))
    return times


def measure(database: str, env: Env, n_rows: int, requests: int,
            say: Callable[[str], None]) -> tuple[list[Row], list[str], dict[str, Any]]:
    """Time the three users over `env`; `database` names the set-up in the rows."""
    users = Users(env.engine, env.records.schema)
    who = [Who("admin (no predicate)", "bench", bench_token(env)),
           Who("sales_manager of a region (department_tree)", MANAGER,
               users.new_token(MANAGER, label="benchmark")),
           Who("sales_rep (own)", REP, users.new_token(REP, label="benchmark"))]
    load_before = load_text()
    say(f"{database}: in-process breakdown and query plans")
    actors = {w.name: _actor(env, w.name) for w in who}
    parts = {w.name: in_process(env, actors[w.name], 40) for w in who}
    plan = {w.name: plans(env, actors[w.name]) for w in who}
    pg = env.engine.dialect.name == "postgresql"
    sql_ms = {w.name: pg_plan_times(env, actors[w.name]) for w in who} if pg else {}
    prepared = {w.name: pg_prepared(env, actors[w.name]) for w in who} if pg else {}
    t = env.records.compiled(ENTITY).table
    with env.engine.connect() as conn:
        exact = {w.name: int(conn.execute(select(func.count()).select_from(t).where(
            *_where(env, actors[w.name]))).scalar_one()) for w in who}
    env.engine.dispose()  # the server process opens its own
    with serve(env.url) as base:
        times = time_http(base, who, requests, say)
    base50, base95 = percentile(times["bench"], 50), percentile(times["bench"], 95)
    rows = [Row(f"GET /api/opportunity?page_size=50&sort=-amount, {n_rows:,} rows, "
                f"{database}, admin (no access predicate), p50 / p95 (ms)",
                f"{base50:.2f} / {base95:.2f}", "—", "—", "baseline", None)]
    for w in who[1:]:
        p50, p95 = percentile(times[w.name], 50), percentile(times[w.name], 95)
        rows.append(Row(
            f"same, {database}, as {w.label}, {exact[w.name]:,} rows visible, p50 / p95 (ms)",
            f"{p50:.2f} / {p95:.2f}", f"{base50:.2f} / {base95:.2f}",
            f"{p50 / base50:.2f} / {p95 / base95:.2f} (user / admin)", "p50 ≤ 1.3",
            p50 / base50 <= TARGET))
    admin = parts["bench"]
    for w in who[1:]:
        mine = parts[w.name]
        rows.append(Row(
            f"same, {database}, as {w.label}, in-process `list_records` with the total "
            "cached / uncached, median (ms)", f"{mine['warm']:.2f} / {mine['cold']:.2f}",
            f"{admin['warm']:.2f} / {admin['cold']:.2f}",
            f"{mine['warm'] / admin['warm']:.2f} / {mine['cold'] / admin['cold']:.2f}",
            "informational", None))
    notes = [f"{database}: totals returned over HTTP: " + ", ".join(
        f"{w.name} {w.visible:,} (exact {exact[w.name]:,})" for w in who) + "."]
    for w in who:
        steps = "; ".join("same" if i and p == plan[w.name][i - 1] else f"`{p}`"
                          for i, p in enumerate(plan[w.name]))
        notes.append(f"{database}, {w.name}: plans of an uncached list's statements (rows, "
                     f"then the total's probes): {steps}. HTTP samples min "
                     f"{min(times[w.name]):.2f} / max {max(times[w.name]):.2f} ms.")
    if sql_ms:
        notes.append(f"{database}: the rows statement of each list, planned and run apart "
                     "(EXPLAIN (ANALYZE, SUMMARY, TIMING OFF), unprepared, median of 50), "
                     "planning / execution ms: " + ", ".join(
                         f"{w.name} {sql_ms[w.name][0]:.3f} / {sql_ms[w.name][1]:.3f}"
                         for w in who) + ".")
    if prepared:
        notes.append(f"{database}: the rows statement of each list run as the app runs it "
                     "(psycopg prepares it from its 5th run on a connection; 200 runs on one "
                     "connection, median of the last 150), round trip ms and the runs "
                     "PostgreSQL took from its generic plan / planned anew: " + ", ".join(
                         f"{w.name} {prepared[w.name][0]:.3f} ({prepared[w.name][1]} / "
                         f"{prepared[w.name][2]})" for w in who) + ".")

    def p50_of(name: str) -> float:
        return percentile(times[name], 50)

    rows_plan = plan[MANAGER][0] if plan[MANAGER] else ""
    if "MULTI-INDEX OR" in rows_plan:
        notes.append(f"{database}, why the department_tree list is slow: the planner answers "
                     "`owner_id = ? OR id IN (team) OR department_id IN (subtree)` with a "
                     "MULTI-INDEX OR (one index per branch), which collects every visible "
                     f"row ({exact[MANAGER]:,}) and sorts them in a temporary B-tree for the "
                     "50 wanted; the uncached total's probes do the same in id order.")
    elif "ix_opportunity_amount" in rows_plan:
        notes.append(f"{database}: for the department_tree list the planner walks the amount "
                     "index from the top and tests the predicate per row (about 4 rows per "
                     "hit at a quarter visible), like the admin's plan.")
    rep_plan = plan[REP][0] if plan[REP] else ""
    if "MULTI-INDEX OR" in rep_plan and p50_of(REP) / base50 > TARGET:
        notes.append(f"{database}, why the own list misses the target: the planner answers "
                     "`owner_id = ? OR id IN (team)` with a MULTI-INDEX OR (one index per "
                     f"branch), which collects every visible row ({exact[REP]:,}) and sorts "
                     "them in a temporary B-tree for the 50 wanted, where walking the amount "
                     f"index would test about {n_rows // max(exact[REP], 1)} rows per hit.")
    if "ixo_opportunity_amount" in rep_plan and p50_of(REP) / base50 > TARGET:
        team = env.records.schema.table(TEAM_TABLE)
        with env.engine.connect() as conn:
            shared = int(conn.execute(select(func.count()).select_from(team).where(
                team.c.user_id == actors[REP].user_id)).scalar_one())
        notes.append(f"{database}, why the own list misses the target: the own branch reads "
                     "its 50 rows in order from (owner_id, amount); the rest of the gap is the "
                     f"team branch, which reads each of the rep's {shared:,} team records by id "
                     "to find its top 50 by amount, and the page's 50 rows read again by id.")
    notes.append(f"{database}: load average {load_before} before, {load_text()} after.")
    data = {"ms": {w.name: [round(x, 3) for x in times[w.name]] for w in who},
            "visible": exact,
            "in_process_ms": {n: {k: round(v, 4) for k, v in p.items()}
                              for n, p in parts.items()}}
    return rows, notes, data


def _setup_notes(env: Env, requests: int) -> list[str]:
    with env.engine.connect() as conn:
        server = conn.exec_driver_sql(
            "SELECT sqlite_version()" if env.engine.dialect.name == "sqlite"
            else "SHOW server_version").scalar_one()
        t = env.records.compiled(ENTITY).table
        unexplained = int(conn.execute(select(func.count()).select_from(t).where(
            t.c.stage == "lost", t.c.lost_reason.is_(None))).scalar_one())
    owners = ", ".join(f"{code} {n}" for code, n in OWNERS.items())
    stale = [] if not unexplained else [
        f"{unexplained:,} lost opportunities have no lost_reason: the rows predate "
        "bench/data.py giving lost deals one (the other values are the same); the list "
        "reads the column but does not filter or sort on it."]
    return [
        f"database: {env.engine.dialect.name} {server}; the departments of config/org.yaml; "
        f"{sum(OWNERS.values())} sales_rep owners ({owners}); opportunity i belongs to owner "
        f"i mod {sum(OWNERS.values())} and that owner's department, so the East region "
        "(Shanghai + Hangzhou) holds a quarter of the rows; every "
        f"{TEAM_EVERY}th opportunity has another owner on its team (read), and the manager "
        f"is on the team of every {MANAGER_TEAM_EVERY:,}th.",
        "rows: bench/data.py's opportunities as bench/opportunity-1000000.db holds them "
        "(loaded through `bulk_create`; the SQLite file is a copy of it, the PostgreSQL "
        "schema access_<rows> gets the same rows by plain INSERTs from that copy, then "
        "VACUUM ANALYZE); owner_id, department_id and the team rows are set by one UPDATE "
        "and INSERT … SELECT (bench/access_list.py `_spread`).",
        f"users: `bench` (admin: no predicate), `{MANAGER}` (sales_manager in "
        f"{MANAGER_DEPARTMENT}: opportunity read scope department_tree), `{REP}` (sales_rep "
        "in SH: scope own = owner or on the team).",
        f"{requests} requests per user after {WARMUP} warm-up requests each, rotating over "
        "the users, sequential, one keep-alive httpx connection to uvicorn (one worker, in a "
        "subprocess, bench/api_server.py) on 127.0.0.1; latency measured in the client. Each "
        "response is the full route: token lookup, the 50 rows, `total`.",
        "total: above 10,000 matches it is an estimate cached per user and list for 10 s "
        "(engine/runtime/records/totals.py), so most timed requests run only the rows query "
        "and every 10 s per user one also runs the count probes. The in-process rows time "
        "`Records.list_records` (no token lookup, no JSON) with that cache warm and with a "
        "fresh cache per call (rows query plus the probes: the 10,001st matching id by id, "
        "the first, max(id)).",
        *stale,
        "list strategy (engine/runtime/records/query.py `page_statement`, the branches from "
        "`AccessPolicy.read_branches`): under the own scope the list reads two branches "
        "apart, the user's own records (`owner_id = me`, from the index (owner_id, amount) "
        "in amount order) and their team's (leaving out the user's own), each for its first "
        "offset + 50 ids and amounts; the page's 50 ids are taken from their union in the "
        "list's order and only those rows read whole; the uncached total's probes do the "
        "same in id order (the owner's ids from the owner_id index on SQLite, from (owner_id, "
        "id) on PostgreSQL). Every `index: true` field has an (owner_id, field) index beside "
        "its own. On PostgreSQL the team's records and the union's ids are matched as `id = "
        "ANY(ARRAY(subquery))` (engine/runtime/sqlin.py `in_rows`; SQLite keeps `id IN "
        "(subquery)`). A department scope stays one condition (owner, team or department). "
        "Every list writes LIMIT and OFFSET into its SQL as numbers, so once psycopg has "
        "prepared it PostgreSQL runs it from its generic plan instead of planning each run; "
        "`list_records` builds a page's statement once per actor and query (Records.statement; "
        "not with a cursor or a filter, nor when a computed field reads the clock).",
        "The machine is shared (2 cores; other helpers' test suites and benchmarks ran at "
        "the same time), so absolute figures are noisy; compare rows of one run.",
    ]


def _sqlite_stats(env: Env, whole_file: bool) -> float:
    """Statistics as the engine makes them (engine/runtime/db.py `refresh_statistics`), from
    none: of the opportunity table alone, as `bulk_create` leaves it after an import of
    10,000+ records, or of every table, as `crm migrate` and `crm demo` leave it. Seconds the
    ANALYZE took.

    The file is a copy of one built before the engine ran ANALYZE, and `_spread` sets the
    owners afterwards by a plain UPDATE; the import stands for one whose rows carried their
    owners, so its ANALYZE runs on the rows as they are now.
    """
    with env.engine.execution_options(crm_write=True).begin() as conn:
        if conn.exec_driver_sql("SELECT 1 FROM sqlite_master "
                                "WHERE name = 'sqlite_stat1'").first():
            conn.exec_driver_sql("DROP TABLE sqlite_stat1")
    started = time.perf_counter()
    refresh_statistics(env.engine, () if whole_file else (ENTITY,))
    took = time.perf_counter() - started
    env.engine.dispose()  # statistics are read when a connection opens
    return took


def run(n_rows: int, say: Callable[[str], None] = print, requests: int = REQUESTS) -> Section:
    """SQLite as the engine leaves it after importing the rows (the opportunity table
    ANALYZEd), then after an ANALYZE of the whole file (as `crm migrate` runs)."""
    env = access_env(n_rows, say)
    notes = _setup_notes(env, requests)
    say("ANALYZE opportunity, as bulk_create does after an import (not timed)")
    took = _sqlite_stats(env, whole_file=False)
    rows, more, data = measure("SQLite", env, n_rows, requests, say)
    notes.append(f"SQLite: statistics as the engine leaves them after importing the rows: "
                 "`bulk_create` of 10,000+ records ends with `refresh_statistics(engine, "
                 "(entity,))`, an `ANALYZE \"opportunity\"` (engine/runtime/db.py). The file "
                 "was copied (SQLite backup API) from one built before the engine did that, "
                 "so it held no statistics; the benchmark drops any sqlite_stat1 and calls "
                 "`refresh_statistics(engine, (\"opportunity\",))` itself after the owners are "
                 "set (the import stands for one whose rows carried their owners; it took "
                 f"{took:.1f} s here). The other tables have no statistics: `crm migrate` ran "
                 "on empty tables, where ANALYZE records nothing.")
    notes += more
    say("ANALYZE of the whole file, as crm migrate does (not timed)")
    took = _sqlite_stats(env, whole_file=True)
    try:
        rows2, more, data2 = measure("SQLite after a full ANALYZE", env, n_rows, requests,
                                     say)
    finally:
        _sqlite_stats(env, whole_file=False)
    notes.append(f"SQLite after a full ANALYZE: `refresh_statistics(engine)`, a plain "
                 f"`ANALYZE` of every table as `crm migrate` and `crm demo` run it (it took "
                 f"{took:.1f} s here), before the second pass; afterwards the file is put back "
                 "to the import's statistics.")
    return Section(name=NAME, title=f"API list with access predicates over {n_rows:,} "
                   "opportunities on SQLite", rows=rows + rows2, notes=notes + more,
                   machine=machine_info(),
                   data={"rows": n_rows, "requests": requests, "import_statistics": data,
                         "analyzed": data2})


def run_pg(n_rows: int, say: Callable[[str], None] = print,
           requests: int = REQUESTS) -> Section | None:
    problem = pg_problem()
    if problem is not None:
        say(f"skipping {NAME_PG}: PostgreSQL is not reachable at CRM_TEST_PG_URL: {problem}")
        return None
    env = pg_access_env(n_rows, say)
    notes = _setup_notes(env, requests)
    rows, more, data = measure("PostgreSQL", env, n_rows, requests, say)
    return Section(name=NAME_PG, title=f"API list with access predicates over {n_rows:,} "
                   "opportunities on PostgreSQL", rows=rows, notes=notes + more,
                   machine=machine_info(), data={"rows": n_rows, "requests": requests, **data})

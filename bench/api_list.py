"""API list: `GET /api/opportunity?page_size=50&sort=-amount` vs a hand-written Core route.

Both routes live in one app (bench/api_server.py) served by uvicorn in a subprocess on
127.0.0.1; this process sends the requests with httpx over one keep-alive connection,
alternating the two routes so drift hits both alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import Select, select

from bench.api_server import HAND_PATH, HandList, hand_order
from bench.env import (
    CONFIG,
    ENTITY,
    Env,
    load_text,
    loaded_env,
    machine_info,
    percentile,
    pg_loaded_env,
    pg_problem,
    serve_module,
)
from bench.report import Row, Section
from engine.runtime.errors import NotFound
from engine.runtime.records.query import order_by, parse_list_params
from engine.runtime.records.totals import count_matching
from engine.runtime.users import Users

NAME = "api_list"
NAME_PG = "api_list_pg"
REQUESTS = 300
WARMUP = 30
TARGET = 1.5
PARAMS = {"page_size": "50", "sort": "-amount"}
OURS_PATH = f"/api/{ENTITY}?page_size=50&sort=-amount"
HAND_URL = f"{HAND_PATH}?page_size=50"


def bench_token(env: Env) -> str:
    users = Users(env.engine, env.records.schema)
    try:
        users.by_name("bench")
    except NotFound:
        users.add("bench", ["admin"])
    return users.new_token("bench", label="benchmark")


@contextmanager
def serve(url: str) -> Iterator[str]:
    """Run bench.api_server in a subprocess; yields its base URL once /health answers."""
    with serve_module("bench.api_server", ["--db", url, "--config", str(CONFIG)],
                      "benchmark server") as base:
        yield base


def _get(client: httpx.Client, url: str) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    return elapsed, response.json()


def time_http(base: str, token: str, requests: int,
              say: Callable[[str], None]) -> tuple[list[float], list[float], dict[str, Any]]:
    """Milliseconds per request for (ours, hand), and our last response body."""
    ours: list[float] = []
    hand: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        say(f"warm-up: {WARMUP} requests to each route")
        body: dict[str, Any] = {}
        for _ in range(WARMUP):
            _, body = _get(client, OURS_PATH)
            _, hand_body = _get(client, HAND_URL)
        if body["items"] != hand_body["items"]:
            raise RuntimeError("the generated and the hand-written route return different items")
        say(f"timing {requests} requests to each route, alternating")
        for i in range(requests):
            if i % 2 == 0:
                ours.append(_get(client, OURS_PATH)[0])
                hand.append(_get(client, HAND_URL)[0])
            else:
                hand.append(_get(client, HAND_URL)[0])
                ours.append(_get(client, OURS_PATH)[0])
    return ours, hand, body


def median_ms(fn: Callable[[], Any], runs: int = 100) -> float:
    """The median time of `runs` calls of `fn` after one warm-up call, in ms."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return percentile(times, 50)


def in_process(env: Env, token: str) -> dict[str, float]:
    """Where the generated list spends its time, without HTTP (median ms)."""
    records = env.records
    entity = env.model.entity(ENTITY)
    users = Users(env.engine, records.schema)
    actor = users.by_name("bench").actor()
    query = parse_list_params(entity, PARAMS)
    table = records.compiled(ENTITY).table
    where = [table.c.deleted_at.is_(None)]
    hand = HandList(env.engine, str(CONFIG))

    ours_ids = [r["id"] for r in records.list_records(actor, ENTITY, query).items]
    hand_ids = [r["id"] for r in hand.fetch(token, 50) or []]
    if ours_ids != hand_ids:
        raise RuntimeError(f"the generated and the hand-written list differ: {ours_ids[:5]} "
                           f"vs {hand_ids[:5]}")

    def total() -> Any:  # the private helper, timed alone for the breakdown
        with env.engine.connect() as conn:
            return count_matching(conn, table, where)

    return {
        "list_records": median_ms(lambda: records.list_records(actor, ENTITY, query)),
        "total": median_ms(total),
        "by_token": median_ms(lambda: users.by_token(token)),
        "hand_fetch": median_ms(lambda: hand.fetch(token, 50)),
    }


def _plan(env: Env, stmt: Select[Any]) -> str:
    """The database's query plan for `stmt`, on one line."""
    sql = str(stmt.compile(env.engine, compile_kwargs={"literal_binds": True}))
    sqlite = env.engine.dialect.name == "sqlite"
    with env.engine.connect() as conn:
        rows = conn.exec_driver_sql(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql)
        steps = [str(r[-1] if sqlite else r[0]).strip().removeprefix("->  ") for r in rows]
    if not sqlite:  # the node lines, without their cost details
        steps = [s.split("  (")[0] for s in steps if "(cost=" in s]
    return " → ".join(steps)


def list_plans(env: Env) -> tuple[str, str]:
    """Query plans of the generated list's rows query and of the hand-written one."""
    records = env.records
    query = parse_list_params(env.model.entity(ENTITY), PARAMS)
    t = records.compiled(ENTITY).table
    cols = [t.c[c.name] for c in t.columns if c.name not in ("deleted_at", "deleted_by")]
    live = select(*cols).where(t.c.deleted_at.is_(None))
    ours = live.order_by(*order_by(t, query.sort, records.nulls_small)).limit(50)
    hand = live.order_by(*hand_order(env.engine, t)).limit(50)
    return _plan(env, ours), _plan(env, hand)


def measure(name: str, database: str, env: Env, n_rows: int, requests: int,
            say: Callable[[str], None]) -> Section:
    """Time both routes over `env` and describe the figures; `database` names it in titles."""
    token = bench_token(env)
    with env.engine.connect() as conn:
        server = conn.exec_driver_sql(
            "SELECT sqlite_version()" if env.engine.dialect.name == "sqlite"
            else "SHOW server_version").scalar_one()
    load_before = load_text()
    say("in-process breakdown")
    parts = in_process(env, token)
    plan_ours, plan_hand = list_plans(env)
    env.engine.dispose()  # the server process opens its own
    with serve(env.url) as base:
        ours, hand, body = time_http(base, token, requests, say)
    sqlite = env.engine.dialect.name == "sqlite"
    order_text = "amount DESC, id DESC" if sqlite else "amount DESC NULLS LAST, id DESC"
    p50, p95 = percentile(ours, 50), percentile(ours, 95)
    h50, h95 = percentile(hand, 50), percentile(hand, 95)
    label = f"{n_rows:,}"
    return Section(
        name=name,
        title=f"API list over {label} opportunities on {database}",
        rows=[
            Row(f"GET /api/opportunity?page_size=50&sort=-amount, {label} rows, {database}, p50 "
                "(ms)", f"{p50:.2f}", f"{h50:.2f}", f"{p50 / h50:.2f} (ours / hand)", "≤ 1.5",
                p50 / h50 <= TARGET),
            Row(f"same, {database}, p95 (ms)", f"{p95:.2f}", f"{h95:.2f}",
                f"{p95 / h95:.2f} (ours / hand)", "≤ 1.5", p95 / h95 <= TARGET),
            Row(f"same, {database}, in-process without HTTP, median (ms)",
                f"{parts['by_token'] + parts['list_records']:.2f}", f"{parts['hand_fetch']:.2f}",
                f"{(parts['by_token'] + parts['list_records']) / parts['hand_fetch']:.2f} "
                "(ours / hand)", "informational", None),
        ],
        notes=[
            f"database: {env.engine.dialect.name} {server}. "
            f"{requests} requests to each route after {WARMUP} warm-up requests each, "
            "alternating, sequential, over one keep-alive httpx connection to uvicorn "
            "(one worker, in a subprocess) on 127.0.0.1; latency is measured in the client.",
            "ours: the generated route — bearer token lookup (`Users.by_token`), "
            "`parse_list_params`, `Records.list_records` (the 50 rows plus `total`), each "
            "database step in the threadpool, then the JSON body with `total`, "
            f"`total_exact`, `page`, `page_size` and `next_cursor`. Here total = "
            f"{body['total']:,} (exact: {str(body['total_exact']).lower()}).",
            "baseline: `GET /hand/opportunity?page_size=50` in the same app "
            "(bench/api_server.py): the same token check (a Core join of crm_token and "
            "crm_user) and `SELECT <same columns> WHERE deleted_at IS NULL ORDER BY "
            f"{order_text} LIMIT 50` with SQLAlchemy Core in one threadpool call and one "
            "connection, the same value-to-JSON conversion (`to_json`) and `{\"items\": …}` "
            "with no total. The two routes return identical items, so the same ids in the "
            "same order (checked over HTTP and in-process).",
            *([] if sqlite else [
                "ordering: ours sorts blanks as the smallest value on every database, so on "
                "PostgreSQL it asks for `amount DESC NULLS LAST, id DESC`, and so does the "
                "hand-written route (bench/api_server.py `hand_order`); the amount index is "
                "built `ASC NULLS FIRST`, so both can walk it backward."]),
            f"query plans — ours: `{plan_ours}`; hand-written: `{plan_hand}`.",
            "in-process medians without HTTP (ms): "
            f"`Records.list_records` {parts['list_records']:.2f} of which `total` "
            f"{parts['total']:.2f}; `Users.by_token` {parts['by_token']:.2f}; the "
            f"hand-written token check plus query {parts['hand_fetch']:.2f}.",
            f"all samples (ms): ours min {min(ours):.2f} / max {max(ours):.2f}; "
            f"hand min {min(hand):.2f} / max {max(hand):.2f}. The machine is shared: load "
            f"average {load_before} before, {load_text()} after.",
        ],
        machine=machine_info(),
        data={"rows": n_rows, "requests": requests, "ours_ms": [round(t, 3) for t in ours],
              "hand_ms": [round(t, 3) for t in hand],
              "in_process_ms": {k: round(v, 4) for k, v in parts.items()}},
    )


def run(n_rows: int, say: Callable[[str], None] = print, requests: int = REQUESTS) -> Section:
    env = loaded_env(n_rows, say)
    return measure(NAME, "SQLite", env, n_rows, requests, say)


def run_pg(n_rows: int, say: Callable[[str], None] = print,
           requests: int = REQUESTS) -> Section | None:
    problem = pg_problem()
    if problem is not None:
        say(f"skipping {NAME_PG}: PostgreSQL is not reachable at CRM_TEST_PG_URL: {problem}")
        return None
    env = pg_loaded_env(n_rows, say)
    return measure(NAME_PG, "PostgreSQL", env, n_rows, requests, say)

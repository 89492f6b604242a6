"""Duplicate look-ups against 100,000 accounts (engine/runtime/imports/duplicates.py).

Not part of `bench.run` (no raw baseline: the alternative — normalising every stored name
in Python per look-up — is what the match keys exist to avoid). Measures, on SQLite and
PostgreSQL:

- the bulk create of N accounts with their match keys kept by the hook, and the same
  create without the hook (what keeping the keys costs per record);
- `refresh_match_keys` over the N accounts (what `crm migrate` does for new rules);
- one `find_duplicates` (a new-record form's or the API's check): p50 and p95 of 300, half
  of them hits, as an administrator and as a sales rep (whose read scope is a condition);
- `find_duplicates_many` over a batch of 2,000 rows (an import batch), 10% of them hits.

    python -m bench.duplicates [--rows 100000] [--no-pg]

Measured 2026-12-05 on the shared 2-core machine while other test runs were going (load
about 8), 100,000 accounts:

| | SQLite | PostgreSQL |
| --- | --- | --- |
| `find_duplicates` as an administrator, p50 / p95 | 1.44 / 25.7 ms | 1.25 / 1.97 ms |
| `find_duplicates` as a sales rep, p50 / p95 | 2.58 / 26.3 ms | 1.63 / 4.06 ms |
| `find_duplicates_many`, 2,000 rows | 358 ms | 146 ms |
| `refresh_match_keys`, 200,000 accounts | 84.9 s | 51.4 s |
| bulk create 100,000 with the hooks / without any hook | 141 / 267 s | 320 / 163 s |

The last row is dominated by the machine's load (on SQLite the run without hooks came
second and was slower); it bounds nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from bench.env import (
    BENCH_DIR,
    CONFIG,
    pg_admin,
    pg_problem,
    pg_recreate_schema,
    pg_schema_url,
    remove_db,
    sqlite_url,
)
from engine.metadata import load_model
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from engine.runtime.imports.duplicates import (
    find_duplicates,
    find_duplicates_many,
    refresh_match_keys,
)
from engine.runtime.records import Records
from engine.runtime.schema import apply_plan
from engine.runtime.schema.tables import MATCH_KEY_TABLE, MATCH_STATE_TABLE
from engine.runtime.users import Users

CITIES = ["上海", "北京", "深圳", "广州", "杭州", "成都", "武汉", "Hamburg", "München", "Berlin"]
FORMS = ["有限公司", "股份有限公司", "集团", "", " Co., Ltd.", " GmbH", " Inc."]


def account_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)  # repeatable data, not secrets
    return [{"name": f"客户{i:06d}{rnd.choice(FORMS)}", "city": rnd.choice(CITIES),
             "phone": f"021-{60000000 + i}"} for i in range(n)]


def _timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(url: str, rows: int, say: Callable[[str], None]) -> None:
    model = load_model(CONFIG)
    engine = open_engine(url)
    apply_plan(engine, model)
    records = records_service(engine, model)
    data = account_rows(rows)
    took = _timed(lambda: records.bulk_create(SYSTEM, "account", data))
    say(f"  bulk create {rows:,} accounts, keys kept by the hook: {took:.1f} s "
        f"({rows / took:,.0f} rows/s)")
    plain = Records(engine, model)  # no hooks: the same create without keys (or rollups)
    took_plain = _timed(lambda: plain.bulk_create(SYSTEM, "account", [
        {**r, "name": "x" + r["name"]} for r in data]))
    say(f"  the same create without hooks: {took_plain:.1f} s ({rows / took_plain:,.0f} rows/s)")
    keys = records.schema.table(MATCH_KEY_TABLE)
    with engine.begin() as conn:
        conn.execute(delete(keys))
        conn.execute(delete(records.schema.table(MATCH_STATE_TABLE)))
    took = _timed(lambda: refresh_match_keys(records))
    say(f"  refresh_match_keys over {2 * rows:,} accounts: {took:.1f} s")
    users = Users(engine, records.schema)
    rep = users.add("bench_rep", ["sales_rep"])
    actors: list[tuple[str, Actor]] = [("admin", SYSTEM), ("sales_rep", rep.actor())]
    rnd = random.Random(11)  # repeatable choices, not secrets
    for who, actor in actors:
        times: list[float] = []
        with engine.connect() as conn:
            for k in range(300):
                i = rnd.randrange(rows)
                values = ({"name": f"客户{i:06d}", "city": data[i]["city"]} if k % 2
                          else {"name": f"新客户{k}", "city": "上海", "phone": f"0755-{k}"})
                start = time.perf_counter()
                find_duplicates(conn, records, actor, "account", values)
                times.append(time.perf_counter() - start)
        times.sort()
        say(f"  find_duplicates as {who}: p50 {statistics.median(times) * 1000:.2f} ms, "
            f"p95 {times[int(len(times) * 0.95)] * 1000:.2f} ms")
    batch = [{"name": f"客户{i:06d}", "city": data[i]["city"]} if n % 10 == 0
             else {"name": f"新公司{n}", "city": "北京", "phone": f"010-{n}"}
             for n, i in enumerate(rnd.sample(range(rows), 2000))]
    with engine.connect() as conn:
        found: dict[int, Any] = {}

        def many() -> None:
            found.update(find_duplicates_many(conn, records, SYSTEM, "account", batch))

        took = _timed(many)
    say(f"  find_duplicates_many, 2,000 rows: {took * 1000:.0f} ms ({len(found)} with "
        "candidates)")
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args(argv)
    path = Path(BENCH_DIR / "duplicates.db")
    remove_db(path)
    print(f"SQLite, {args.rows:,} accounts")
    try:
        measure(sqlite_url(path), args.rows, print)
    finally:
        remove_db(path)
    if args.no_pg or pg_problem() is not None:
        return 0
    print(f"PostgreSQL, {args.rows:,} accounts")
    admin = pg_admin()
    try:
        pg_recreate_schema(admin, "bench_duplicates")
        measure(pg_schema_url("bench_duplicates"), args.rows, print)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql('DROP SCHEMA IF EXISTS "bench_duplicates" CASCADE')
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

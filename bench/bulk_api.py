"""Bulk API: 1,000 opportunities created by one `POST /api/opportunity/bulk` vs 1,000 single
`POST /api/opportunity`, through the ASGI app in process (no network), each on a fresh
SQLite database holding the benchmark accounts (and on PostgreSQL with --pg).

    python -m bench.bulk_api [--pg]

Prints the times as JSON; asserts nothing.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from bench.data import opportunity_rows
from bench.env import PG_URL, Env, _fresh, fresh_env, pg_admin, pg_recreate_schema, pg_schema_url
from engine.runtime.users import Users
from engine.web.app import create_app

ITEMS = 1_000
FIELDS = ("name", "amount", "stage", "close_date", "lost_reason")


def _items(env: Env) -> list[dict[str, Any]]:
    rows = opportunity_rows(ITEMS, env.account_ids, seed=7)
    return [{**{k: _json(r.get(k)) for k in FIELDS}, "account": r["account"]} for r in rows]


def _json(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, str)) else str(value)


def _client(env: Env) -> TestClient:
    users = Users(env.engine, env.records.schema)
    if users.by_name_or_none("bench") is None:
        users.add("bench", ["admin"], password="bench-password")
    client = TestClient(create_app(env.model, env.engine), raise_server_exceptions=True)
    client.headers["Authorization"] = f"Bearer {users.new_token('bench')}"
    return client


def measure(env: Env) -> dict[str, float]:
    client = _client(env)
    items = _items(env)
    start = time.perf_counter()
    r = client.post("/api/opportunity/bulk", json={"items": items})
    bulk = time.perf_counter() - start
    assert r.status_code == 200, r.text[:500]
    start = time.perf_counter()
    for item in items:
        one = client.post("/api/opportunity", json={**item, "name": item["name"] + " (1)"})
        assert one.status_code == 201, one.text[:500]
    single = time.perf_counter() - start
    return {"bulk_s": round(bulk, 3), "single_posts_s": round(single, 3),
            "speedup": round(single / bulk, 1)}


def main() -> None:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = measure(fresh_env(Path(tmp) / "bulk.db"))
    if "--pg" in sys.argv:
        admin = pg_admin()
        pg_recreate_schema(admin, "bench_bulk_api")
        out["postgresql"] = measure(_fresh(pg_schema_url("bench_bulk_api"), None,
                                           Path(__file__).resolve().parents[1] / "config"))
        pg_recreate_schema(admin, "bench_bulk_api")
    print(json.dumps({"items": ITEMS, "pg_url": PG_URL.rsplit("@", 1)[-1], **out}, indent=1))


if __name__ == "__main__":
    main()

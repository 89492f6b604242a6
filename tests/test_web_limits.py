"""Bounds on one request (engine/web/limits.py): each of its queries stops at settings.yaml
`query_time_limit` on both databases (engine/runtime/query_limit.py), its query stops when
the client disconnects, and one user may have `requests_per_user` requests running at once.

The expensive query is a short, legal filter that builds a 6.75 MB text per row (SUBSTITUTE
of SUBSTITUTE of SUBSTITUTE, each one turning "c" into 150 of them) over a thousand
accounts: seconds of work for the database, on either one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
from sqlalchemy import event, insert
from starlette.testclient import TestClient

from engine.runtime.db import open_engine
from engine.web.app import create_app
from tests.conftest import Env, EnvFactory
from tests.web_helpers import run_in_own_loop, sign_in

ACCOUNTS = 1000
_MANY_C = "c" * 150
EXPENSIVE = f'LEN(SUBSTITUTE(SUBSTITUTE(SUBSTITUTE(name, "c", "{_MANY_C}"), "c", "{_MANY_C}"), ' \
    f'"c", "{_MANY_C}")) = 0'
"""Matches no account, so every query with it (the page, the count) scans them all."""


def limited_env(make_env: EnvFactory, config_dir: Path, accounts: int = ACCOUNTS,
                **settings: object) -> Env:
    """An Env whose settings.yaml sets `settings`, with `accounts` accounts to scan."""
    with (config_dir / "settings.yaml").open("a", encoding="utf-8") as f:
        for key, value in settings.items():
            f.write(f"{key}: {value}\n")
    env = make_env(config_dir)
    now = datetime.now(UTC)
    who = {"owner_id": env.admin.id, "created_by": env.admin.id, "updated_by": env.admin.id,
           "created_at": now, "updated_at": now, "version": 1}
    with env.engine.begin() as conn:
        conn.execute(insert(env.records.schema.table("account")),
                     [{"name": f"Account {i:05d}", **who} for i in range(accounts)])
    return env


def test_an_expensive_filter_stops_at_the_time_limit(make_env: EnvFactory,
                                                     config_dir: Path) -> None:
    env = limited_env(make_env, config_dir, query_time_limit=0.2)
    api = env.client(env.users.new_token("admin"))
    r = api.get("/api/account", params={"filter": EXPENSIVE, "page_size": 1})
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "query_time_limit"
    assert "0.2 s limit" in error["message"] and "query_time_limit" in error["message"]
    # The connection it ran on serves the next request as usual.
    r = api.get("/api/account", params={"page_size": 1})
    assert r.status_code == 200 and r.json()["total"] == ACCOUNTS


def test_a_list_page_past_the_time_limit_is_an_error_page(make_env: EnvFactory,
                                                           config_dir: Path) -> None:
    env = limited_env(make_env, config_dir, query_time_limit=0.2)
    pages = env.client()
    pages.headers["Accept"] = "text/html"
    assert sign_in(pages).status_code == 303
    r = pages.get("/e/account", params={"filter": EXPENSIVE})
    assert r.status_code == 503
    assert "Try again later" in r.text and "0.2 s limit" in r.text
    assert pages.get("/e/account").status_code == 200


def test_the_time_limit_answers_in_the_reader_language(make_env: EnvFactory,
                                                      config_dir: Path) -> None:
    env = limited_env(make_env, config_dir, query_time_limit=0.2)
    api = env.client(env.users.new_token("admin"))
    r = api.get("/api/account", params={"filter": EXPENSIVE},
                headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 503
    assert "0.2 秒" in r.json()["error"]["message"]


def test_a_cheap_request_is_not_limited(make_env: EnvFactory, config_dir: Path) -> None:
    env = limited_env(make_env, config_dir, query_time_limit=5)
    api = env.client(env.users.new_token("admin"))
    r = api.get("/api/account", params={"filter": 'BEGINS(name, "Account 0001")'})
    assert r.status_code == 200 and r.json()["total"] == 10


def test_the_query_stops_when_the_client_disconnects(make_env: EnvFactory,
                                                     config_dir: Path) -> None:
    # A limit far beyond what the query takes: only the disconnect can stop it.
    env = limited_env(make_env, config_dir, query_time_limit=600)
    started = threading.Event()
    event.listen(env.engine, "before_cursor_execute", _forward(started))
    app = create_app(env.model, env.engine)
    token = env.users.new_token("admin")
    asked: list[bool] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        # The client goes away while the expensive query runs.
        await anyio.to_thread.run_sync(started.wait)
        await anyio.sleep(0.2)  # into the query, not only its start
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/api/account", "raw_path": b"",
             "query_string": urlencode({"filter": EXPENSIVE}).encode(), "root_path": "",
             "headers": [(b"authorization", f"Bearer {token}".encode()),
                         (b"host", b"testserver")],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    run_in_own_loop(lambda: app(scope, receive, send))  # type: ignore[arg-type]
    assert started.is_set()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 503, body
    assert b'"query_cancelled"' in body


def _forward(started: threading.Event,
             release: threading.Event | None = None) -> Callable[..., None]:
    """Sets `started` when the expensive query is about to run; with `release`, holds it
    there until `release` is set."""
    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "replace(" in statement.lower():
            started.set()
            if release is not None:
                assert release.wait(60)
    return seen


def test_one_user_may_run_only_so_many_requests_at_once(make_env: EnvFactory,
                                                       config_dir: Path) -> None:
    env = limited_env(make_env, config_dir, query_time_limit=1, requests_per_user=1)
    started, release = threading.Event(), threading.Event()
    # The expensive request is held just before its query until the others have been asked:
    # on a loaded machine its one second could otherwise run out before they arrive.
    event.listen(env.engine, "before_cursor_execute", _forward(started, release))
    app_client = env.client(env.users.new_token("admin"))
    other = env.users.add("second_admin", ["admin"], password="second-password")
    other_client = env.client(env.users.new_token(other.name))
    # Both clients must share one app: a user's running requests are counted per process.
    other_client.app = app_client.app
    answers: list[int] = []

    def expensive() -> None:
        answers.append(app_client.get("/api/account",
                                      params={"filter": EXPENSIVE}).status_code)

    first = threading.Thread(target=expensive)
    first.start()
    assert started.wait(60)
    r = app_client.get("/api/account", params={"page_size": 1})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "too_many_requests"
    assert "requests_per_user" in r.json()["error"]["message"]
    # Someone else is not held back by it.
    assert other_client.get("/api/account", params={"page_size": 1}).status_code == 200
    release.set()
    first.join()
    assert answers == [503]
    # Once it has ended, the user may ask again.
    assert app_client.get("/api/account", params={"page_size": 1}).status_code == 200


def test_a_request_that_finds_every_connection_in_use_is_a_503(make_env: EnvFactory,
                                                              config_dir: Path) -> None:
    """More waiting requests than pooled connections is overload, not a bug: 503, not 500."""
    env = limited_env(make_env, config_dir, accounts=10)
    token = env.users.new_token("admin")
    tight = open_engine(env.engine.url.render_as_string(hide_password=False), pool_size=1,
                        max_overflow=0, pool_timeout=0.2)
    try:
        api = TestClient(create_app(env.model, tight), raise_server_exceptions=False)
        api.headers["Authorization"] = f"Bearer {token}"
        with tight.connect():  # the pool's only connection, held elsewhere
            r = api.get("/api/account")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "busy"
        assert api.get("/api/account").status_code == 200
    finally:
        tight.dispose()

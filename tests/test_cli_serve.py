"""`crm serve` stops promptly on SIGTERM even while a request runs an expensive query: the
request is cancelled after a short grace and its query with it (engine/web/limits.py),
instead of the server waiting for the query (here: a minute or more) to end by itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx

from tests.conftest import CONFIG, Env, EnvFactory
from tests.test_web_limits import EXPENSIVE, limited_env

CRM = str(Path(sys.executable).parent / "crm")
STOPS_WITHIN = 30.0
"""Seconds: generous next to the 3 s grace, far below what the query needs to finish."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("crm serve did not start:\n" + log.read_text())


def test_sigterm_stops_the_server_while_an_expensive_query_runs(
        make_env: EnvFactory, config_dir: Path, db_url: str, tmp_path: Path) -> None:
    # A time limit far beyond the test: only the shutdown can stop the query.
    env = limited_env(make_env, config_dir, accounts=10_000, query_time_limit=3600)
    token = env.users.new_token("admin")
    env.engine.dispose()
    port = _free_port()
    log = tmp_path / "serve.log"
    environ = {**os.environ, "CRM_CONFIG": str(config_dir), "CRM_DATABASE_URL": db_url,
               "CRM_SECRET_KEY": "s" * 40}
    with log.open("wb") as out:
        proc = subprocess.Popen([CRM, "serve", "--port", str(port)], cwd=tmp_path,
                                env=environ, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, port, log)
        answers: list[object] = []

        def expensive() -> None:
            try:
                answers.append(httpx.get(
                    f"http://127.0.0.1:{port}/api/account", params={"filter": EXPENSIVE},
                    headers={"Authorization": f"Bearer {token}"}, timeout=600).status_code)
            except httpx.HTTPError as exc:
                answers.append(type(exc).__name__)

        client = threading.Thread(target=expensive)
        client.start()
        time.sleep(2)  # the request reaches its query (a wait, not a measurement)
        assert not answers, f"the expensive request ended early: {answers}"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOPS_WITHIN)
        client.join(timeout=STOPS_WITHIN)
        assert answers and answers[0] != 200, answers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Application shutdown complete" in log.read_text()
    if env.engine.dialect.name == "postgresql":
        # The server's query is gone too, not left running in its PostgreSQL backend.
        with env.engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{STOPS_WITHIN:g}s'")
            conn.exec_driver_sql("LOCK TABLE account IN ACCESS EXCLUSIVE MODE")


def test_serve_with_worker_fires_due_timers_and_stops(env: Env, db_url: str,
                                                      tmp_path: Path) -> None:
    """`crm serve --worker` runs the flows worker beside the server: an urgent service
    request nobody answered for an hour is escalated without a separate `crm worker`."""
    admin = env.admin.actor()
    account = env.records.create(admin, "account", {"name": "Urumqi Airport"})
    received = env.records.clock() - timedelta(hours=1)
    request = env.records.create(admin, "service_request", {
        "subject": "Tug engine fails to start", "account": account["id"],
        "priority": "urgent", "received_at": received.isoformat()})
    assert request["escalation_level"] in (None, 0)
    env.engine.dispose()
    port = _free_port()
    log = tmp_path / "serve.log"
    environ = {**os.environ, "CRM_CONFIG": str(CONFIG), "CRM_DATABASE_URL": db_url,
               "CRM_SECRET_KEY": "s" * 40}
    with log.open("wb") as out:
        proc = subprocess.Popen([CRM, "serve", "--worker", "--port", str(port)], cwd=tmp_path,
                                env=environ, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, port, log)
        deadline = time.monotonic() + 60
        level = None
        while time.monotonic() < deadline:
            level = env.records.get(admin, "service_request", request["id"])[
                "escalation_level"]
            if level == 1:
                break
            time.sleep(0.5)
        assert level == 1, log.read_text()
        proc.send_signal(signal.SIGTERM)
        # uvicorn ends by raising the signal it was stopped with again
        assert proc.wait(timeout=STOPS_WITHIN) in (0, -signal.SIGTERM), log.read_text()
        assert "running beside the server" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""A new user's first hour: the README's commands end with a signed-in admin and demo data.

`make run` is run as the README says (the same Makefile target, serving on a free port) on a
new database, signed in to over real HTTP with the README's name and password, then run again
on the same database, which must keep what is there. `crm migrate` followed by `crm demo`
(without --if-empty) must work too: the departments `crm migrate` seeds are the engine's, not
data.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from engine.cli import main
from engine.metadata import load_model
from engine.runtime.demo import DEMO_PASSWORD, existing_data
from engine.runtime.records import Records
from engine.runtime.schema import build_schema
from tests.conftest import CONFIG, REPO
from tests.web_helpers import sign_in

README_USER = "admin"


def _readme_password() -> str:
    """The password the README tells a new user, so the test breaks when the two part."""
    found = re.search(r"with the password `([^`]+)`", (REPO / "README.md").read_text())
    assert found, "README.md no longer names the demo password"
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """`make run` in its own process group, its output in a file."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(REPO), "run", f"PORT={port}"],
            env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"make run ended with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/login", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pytest.fail(f"make run did not serve within {timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "MAKE", "MFLAGS"))}
    env["CRM_DATABASE_URL"] = f"sqlite:///{tmp_path / 'crm.db'}"
    env["CRM_SECRET_KEY_FILE"] = str(tmp_path / "secret_key")
    return env


@pytest.fixture
def make_run(run_env: dict[str, str], tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.stop()


def _sign_in_and_list(port: int) -> set[str]:
    """Sign in as the README says; the opportunities on the first page of the admin's list."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        answer = sign_in(client, README_USER, _readme_password())
        assert answer.status_code == 303, answer.text[:500]
        home = client.get("/")
        assert home.status_code == 200 and "/logout" in home.text
        listed = client.get("/e/opportunity")
        assert listed.status_code == 200, listed.text[:500]
        return set(re.findall(r'href="/e/opportunity/(\d+)"', listed.text))


def _opportunities(db_url: str) -> int:
    model = load_model(CONFIG)
    engine = create_engine(db_url)
    try:
        table = build_schema(model).table("opportunity")
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_make_run_on_a_new_database_signs_in_with_the_readme_password(
        run_env: dict[str, str], tmp_path: Path, make_run: list[Served]) -> None:
    assert _readme_password() == DEMO_PASSWORD
    first = Served(run_env, _free_port(), tmp_path / "first.log")
    make_run.append(first)
    first.wait_ready()
    shown = _sign_in_and_list(first.port)
    assert shown, first.output()
    assert "already has data" not in first.output()
    first.stop()
    demo_count = _opportunities(run_env["CRM_DATABASE_URL"])
    assert demo_count >= len(shown)

    second = Served(run_env, _free_port(), tmp_path / "second.log")
    make_run.append(second)
    second.wait_ready()
    said = second.output()
    assert "already has data" in said and "kept as it is" in said, said
    assert _sign_in_and_list(second.port) == shown
    assert _opportunities(run_env["CRM_DATABASE_URL"]) == demo_count


def test_migrate_then_demo_fills_the_database(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--config", str(CONFIG), "--db", db_url]
    migrated = runner.invoke(main, [*base, "migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert "department" in migrated.output  # the engine seeded config/org.yaml

    model = load_model(CONFIG)
    engine = create_engine(db_url)
    try:
        assert existing_data(Records(engine, model)) == {}  # seeded departments are no data
    finally:
        engine.dispose()

    demo = runner.invoke(main, [*base, "demo", "--size", "12"])
    assert demo.exit_code == 0, demo.output
    assert f"sign in as admin / {DEMO_PASSWORD}" in demo.output
    assert _opportunities(db_url) > 0
    # every seller has planned work in the coming days, so their home page is not empty
    engine = create_engine(db_url)
    try:
        t = build_schema(model).table("activity")
        now = datetime.now(UTC)
        with engine.connect() as conn:
            owners = conn.execute(select(t.c.owner_id).distinct().where(
                t.c.status == "planned", t.c.due_at >= now,
                t.c.due_at < now + timedelta(days=8))).scalars().all()
            sellers = conn.execute(select(t.c.owner_id).distinct()).scalars().all()
    finally:
        engine.dispose()
    assert sellers and set(owners) == set(sellers)

    again = runner.invoke(main, [*base, "demo", "--size", "12"])
    assert again.exit_code == 1 and "already has data" in again.output
    kept = runner.invoke(main, [*base, "demo", "--if-empty"])
    assert kept.exit_code == 0 and "kept as it is" in kept.output

"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from CRM_TEST_PG_URL (`make test` starts a local server). Each test gets
its own PostgreSQL schema, dropped afterwards. With CI=true an unreachable server fails the
test; elsewhere it skips, so a laptop without PostgreSQL can still run the SQLite half.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from starlette.testclient import TestClient

from engine.metadata import Model, load_model
from engine.runtime.db import normalize_url, open_engine, unreachable
from engine.runtime.records import Records
from engine.runtime.schema import apply_plan, build_schema
from engine.runtime.users import User, Users
from engine.web.app import create_app

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
PG_URL = os.environ.get("CRM_TEST_PG_URL",
                        "postgresql+psycopg://crm:crm@127.0.0.1:5432/crm_test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_available() -> str | None:
    return unreachable(PG_URL)


_PG_PROBLEM: list[str | None] = []


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.db'}"
        return
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_pg_available())
    problem = _PG_PROBLEM[0]
    if problem is not None:
        message = f"PostgreSQL is not reachable at CRM_TEST_PG_URL: {problem}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalize_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped config/, free to edit."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target)
    return target


@dataclass
class Env:
    """A migrated database with the services on top, as one test sees it."""

    model: Model
    engine: Engine
    records: Records
    users: Users
    admin: User

    def client(self, token: str | None = None) -> TestClient:
        client = TestClient(create_app(self.model, self.engine), raise_server_exceptions=False)
        if token:
            client.headers["Authorization"] = f"Bearer {token}"
        return client


EnvFactory = Callable[..., Env]


@pytest.fixture
def make_env(db_url: str) -> Iterator[EnvFactory]:
    """Build an Env from a config folder (the shipped one by default)."""
    engines: list[Engine] = []

    def factory(config: Path = CONFIG) -> Env:
        model = load_model(config)
        engine = open_engine(db_url)
        engines.append(engine)
        apply_plan(engine, model)
        users = Users(engine, build_schema(model))
        try:
            admin = users.by_name("admin")
        except Exception:
            admin = users.add("admin", ["admin"], password="admin-password")
        return Env(model, engine, Records(engine, model), users, admin)

    yield factory
    for engine in engines:
        engine.dispose()


@pytest.fixture
def env(make_env: EnvFactory) -> Env:
    return make_env()


@pytest.fixture
def api(env: Env) -> TestClient:
    """An HTTP client for the ASGI app, signed in with an admin API token."""
    return env.client(env.users.new_token("admin"))


# -- web pages (engine/web): a browser-like client without a token -----------------------


@pytest.fixture
def pages(env: Env) -> TestClient:
    """An HTTP client for the pages, signed out, asking for HTML like a browser does.
    tests/web_helpers.py signs it in through the /login form."""
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    return client

"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from CRM_TEST_PG_URL (`make test` starts a local server). With CI=true an
unreachable server fails the test; elsewhere it skips, so a laptop without PostgreSQL can
still run the SQLite half.

Each test gets a database of its own: a new SQLite file, or on PostgreSQL a new schema in
the test database, dropped afterwards. A database that make_env migrates while it is still
new starts as a copy of a template migrated once per session (tests/db_templates.py): the
SQLite file is copied before its first use; on PostgreSQL, a test that uses the shipped
config's `env` (past the session's first few) gets instead a migrated schema of its own in
a copy of a template database, dropped once all the copy's schemas have been used. The
shipped config's Model is loaded once per session, and the tests' users' passwords are
hashed with a cheap argon2 (the product's hasher is not switchable).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from starlette.testclient import TestClient

from engine.metadata import ConfigErrors, Model, load_model
from engine.runtime.assembly import records_service
from engine.runtime.db import normalize_url, open_engine, unreachable
from engine.runtime.records import Records
from engine.runtime.users import User, Users
from engine.web.app import create_app
from tests.db_templates import TEST_HASHER, PgTemplates, SqliteTemplates, config_key, seed

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
PG_URL = os.environ.get("CRM_TEST_PG_URL",
                        "postgresql+psycopg://crm:crm@127.0.0.1:5432/crm_test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_available() -> str | None:
    return unreachable(PG_URL)


_PG_PROBLEM: list[str | None] = []


@contextmanager
def module_db_url(kind: str, tmp_path_factory: pytest.TempPathFactory,
                  name: str) -> Iterator[str]:
    """For a module-scoped fixture that builds its own database: the URL of a new SQLite
    file (`kind` "sqlite") or of a scratch PostgreSQL schema (see scratch_pg_url)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp(name) / 'crm.db'}"
        return
    with scratch_pg_url() as url:
        yield url


@contextmanager
def scratch_pg_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema, dropped afterwards (for module-scoped
    fixtures that build their own database); fails in CI, skips elsewhere, when
    PostgreSQL does not answer."""
    problem = _pg_available()
    if problem is not None:
        message = f"PostgreSQL is not reachable at CRM_TEST_PG_URL: {problem}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalize_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@cache
def shipped_model() -> Model:
    """The shipped config's Model, loaded once per session (a Model is immutable)."""
    return load_model(CONFIG)


@cache
def shipped_key() -> str:
    return config_key(CONFIG)


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("templates"))


_COLLECTED: list[int] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _COLLECTED.append(len(items))


LARGE_RUN = 400
"""A run of more tests than this copies PostgreSQL templates from its first test: it is
sure to use enough of them to pay for building one (the whole suite, a worker's share)."""


@pytest.fixture(scope="session")
def pg_templates() -> Iterator[PgTemplates]:
    """Template databases on the test server, dropped at the end of the session; the
    connection is made on first use, so a session without PostgreSQL tests never makes it."""
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    templates = PgTemplates(admin, normalize_url(PG_URL))
    if _COLLECTED and _COLLECTED[-1] > LARGE_RUN:
        templates.migrate_first = 0
    yield templates
    try:
        templates.close()
    finally:
        admin.dispose()


@dataclass
class _NewDatabase:
    """A test's database that no factory call has migrated yet, and how to fill it fast."""

    sqlite_file: Path | None = None
    pg_key: str | None = None
    """The config key of the template a PostgreSQL schema was copied from."""
    pg_schema: str = ""


_NEW: dict[str, _NewDatabase] = {}
"""db_url -> its database, until make_env's first call."""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a new SQLite file, or a new PostgreSQL schema. For a test
    that uses `env`, a PostgreSQL schema copied from the shipped config's template, which
    make_env's first call (from `env`) takes as migrated."""
    if request.param == "sqlite":
        path = tmp_path / "crm.db"
        url = f"sqlite:///{path}"
        _NEW[url] = _NewDatabase(sqlite_file=path)
        try:
            yield url
        finally:
            _NEW.pop(url, None)
        return
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_pg_available())
    problem = _PG_PROBLEM[0]
    if problem is not None:
        message = f"PostgreSQL is not reachable at CRM_TEST_PG_URL: {problem}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    templates: PgTemplates = request.getfixturevalue("pg_templates")
    if "env" in request.fixturenames and templates.worth_copying(shipped_key()):
        clone, schema = templates.lease(shipped_model(), shipped_key())
        url = templates.url(clone.name, schema)
        _NEW[url] = _NewDatabase(pg_key=shipped_key(), pg_schema=schema)
        try:
            yield url
        finally:
            _NEW.pop(url, None)
            templates.release(clone)
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with templates.admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalize_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with templates.admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def broken_flow_errors(config_dir: Path, text: str) -> list[str]:
    """Load a config copy with flows/broken.yaml holding `text`: the errors naming it."""
    (config_dir / "flows" / "broken.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_model(config_dir)
    return [str(e) for e in caught.value.errors if "broken.yaml" in str(e)]


def write_settings(config_dir: Path, text: str) -> Path:
    """Give a config copy a settings.yaml of the test's own, which keeps the shipped holiday
    calendar (the shipped flows' schedules name its holidays) after the test's text."""
    lines = (CONFIG / "settings.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index("holidays:")
    end = next((n for n in range(start + 1, len(lines))
                if lines[n] and not lines[n].startswith((" ", "#"))), len(lines))
    calendar = "\n".join(lines[start:end]) + "\n"
    path = config_dir / "settings.yaml"
    path.write_text(f"{text}\n{calendar}" if text else calendar, encoding="utf-8")
    return path


def replace_roles(config_dir: Path, text: str) -> Path:
    """Give a config copy a roles.yaml of the test's own. The shipped flows (approvers,
    assignment pools) and dashboards (the roles they are the home of) name the shipped
    roles, which such a file does not have: they go too."""
    (config_dir / "roles.yaml").write_text(text, encoding="utf-8")
    shutil.rmtree(config_dir / "flows", ignore_errors=True)
    shutil.rmtree(config_dir / "dashboards", ignore_errors=True)
    return config_dir


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
        client = TestClient(create_app(self.model, self.engine, password_hasher=TEST_HASHER),
                            raise_server_exceptions=False)
        if token:
            client.headers["Authorization"] = f"Bearer {token}"
        return client


EnvFactory = Callable[..., Env]


@pytest.fixture
def make_env(db_url: str, sqlite_templates: SqliteTemplates,
             pg_templates: PgTemplates) -> Iterator[EnvFactory]:
    """Build an Env from a config folder (the shipped one by default)."""
    engines: list[Engine] = []

    def factory(config: Path = CONFIG) -> Env:
        shipped = Path(config).resolve() == CONFIG
        model = shipped_model() if shipped else load_model(config)
        engine = open_engine(db_url)
        engines.append(engine)
        new = _NEW.pop(db_url, None)
        if new is not None and new.sqlite_file is not None and not new.sqlite_file.exists():
            key = shipped_key() if shipped else config_key(Path(config))
            sqlite_templates.copy(new.sqlite_file, model, key)
            sqlite_templates.stamp(engine, model, key)
        elif new is not None and new.pg_key is not None:
            key = shipped_key() if shipped else config_key(Path(config))
            if key == new.pg_key:
                pg_templates.stamp(engine, model, key)
            else:  # made for the shipped config, but first migrated to another one
                with engine.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{new.pg_schema}" CASCADE'))
                    conn.execute(text(f'CREATE SCHEMA "{new.pg_schema}"'))
                seed(engine, model)
        else:
            seed(engine, model)
        records = records_service(engine, model)  # as the app and the CLI assemble it
        users = Users(engine, records.schema, hasher=TEST_HASHER)
        return Env(model, engine, records, users, users.by_name("admin"))

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

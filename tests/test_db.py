"""engine/runtime/db.py: what every connection of an engine promises, on both databases."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, create_engine, text

from engine.runtime.db import TooDeep, drop_database, normalize_url, open_engine
from tests.conftest import PG_URL


@pytest.mark.parametrize("depth", [200, 20_000])
def test_a_statement_too_deep_for_the_parser_is_a_bad_request(db_url: str, depth: int) -> None:
    """The last guard behind the formula bounds: SQLite's parser stack (about 100 levels)
    and PostgreSQL's parser memory or stack depth answer 400 query_too_deep, not a 500."""
    engine = open_engine(db_url)
    try:
        nested = "SELECT " + "abs(" * depth + "1" + ")" * depth
        shallow_enough = engine.dialect.name == "postgresql" and depth == 200
        with engine.connect() as conn:
            if shallow_enough:
                assert conn.execute(text(nested)).scalar() == 1
                return
            with pytest.raises(TooDeep) as caught:
                conn.execute(text(nested))
            assert caught.value.status == 400 and caught.value.code == "query_too_deep"
            assert "nests too deeply" in str(caught.value.message)
            conn.rollback()  # PostgreSQL ends the transaction; the connection stays good
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_other_database_errors_pass_through(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        with engine.connect() as conn, pytest.raises(Exception) as caught:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert not isinstance(caught.value, TooDeep)
    finally:
        engine.dispose()


# An autovacuum worker shows in pg_stat_activity without a role (usesysid), and to a role
# that is not a superuser without its backend_type either.
AUTOVACUUM_ON = ("SELECT count(*) FROM pg_stat_activity WHERE datname = :name "
                 "AND usesysid IS NULL AND pid <> pg_backend_pid()")
AUTOVACUUM_WAIT_S = 180  # autovacuum_naptime is a minute by default


@pytest.fixture
def pg_admin(db_url: str) -> Iterator[Connection]:
    """An AUTOCOMMIT connection to CRM_TEST_PG_URL's database (db_url: skip or fail as
    PostgreSQL does)."""
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            yield conn
    finally:
        admin.dispose()


def exists(admin: Connection, name: str) -> bool:
    return admin.execute(text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                         {"name": name}).scalar_one() == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_dropping_a_database_ends_the_sessions_left_on_it(pg_admin: Connection) -> None:
    name = f"t_drop_{uuid.uuid4().hex[:12]}"
    pg_admin.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = open_engine(normalize_url(PG_URL).set(database=name).render_as_string(
        hide_password=False))
    try:
        left = engine.connect()
        left.execute(text("SELECT 1"))  # idle in a transaction, as a test may leave one
        drop_database(pg_admin, name)
        assert not exists(pg_admin, name)
        with pytest.raises(Exception, match="terminat"):
            left.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    drop_database(pg_admin, name)  # gone already: nothing to do, no error


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_dropping_a_database_an_autovacuum_worker_is_on(pg_admin: Connection) -> None:
    """CI once failed at the end of a green suite: DROP DATABASE ... WITH (FORCE) refused
    ("must be a member of the role whose process is being terminated") because autovacuum
    was vacuuming the test database, and a worker belongs to no role the suite's role is a
    member of. Here a table of dead rows, vacuumed slowly, keeps a worker on the database
    until it is dropped."""
    name = f"t_drop_{uuid.uuid4().hex[:12]}"
    pg_admin.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = open_engine(normalize_url(PG_URL).set(database=name).render_as_string(
        hide_password=False))
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "CREATE TABLE dead (id int, pad text) WITH (autovacuum_vacuum_threshold = 0,"
                " autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 100,"
                " autovacuum_vacuum_cost_limit = 1)"))
            conn.execute(text("INSERT INTO dead SELECT g, repeat('x', 100)"
                              " FROM generate_series(1, 100000) g"))
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dead"))
    finally:
        engine.dispose()  # a session's counts reach autovacuum when it ends at the latest
    waited = time.monotonic()
    try:
        while not pg_admin.execute(text(AUTOVACUUM_ON), {"name": name}).scalar_one():
            assert time.monotonic() - waited < AUTOVACUUM_WAIT_S, (
                f"no autovacuum worker came to {name} in {AUTOVACUUM_WAIT_S} s")
            time.sleep(0.2)
        superuser = pg_admin.execute(text(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar_one()
        if not superuser:  # the suite's role, crm (scripts/pg_ensure.sh)
            with pytest.raises(Exception, match="must be a member of the role"):
                pg_admin.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        drop_database(pg_admin, name)
        assert not exists(pg_admin, name)
    finally:
        drop_database(pg_admin, name)

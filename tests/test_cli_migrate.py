"""`crm migrate` and `crm serve` against SQLite and PostgreSQL, through click's CliRunner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, inspect, text

from engine.cli import main
from engine.metadata import load_model
from engine.runtime.db import open_engine
from engine.runtime.schema import apply_plan
from tests.conftest import EnvFactory
from tests.test_schema_evolution import set_field, yaml_loc


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = open_engine(db_url)
    yield eng
    eng.dispose()


def crm(config_dir: Path, db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config_dir), "--db", db_url, *args])


def columns(engine: Engine, table: str) -> list[str]:
    return [c["name"] for c in inspect(engine).get_columns(table)]


def codes(engine: Engine) -> list[str | None]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT code FROM account ORDER BY id")).scalars())


@pytest.fixture
def with_codes(make_env: EnvFactory, config_dir: Path) -> list[int]:
    """Two accounts with a `code` of 100 characters at most: one of 12, one of 3."""
    set_field(config_dir, "account", "code", "{type: text, max_length: 100}")
    env = make_env(config_dir)
    actor = env.admin.actor()
    return [int(env.records.create(actor, "account", {"name": n, "code": c})["id"])
            for n, c in (("Acme", "ACME-0000001"), ("Globex", "GLX"))]


def test_migrate_on_a_fresh_database_then_up_to_date(config_dir: Path, db_url: str,
                                                     engine: Engine) -> None:
    planned = crm(config_dir, db_url, "migrate", "--plan")
    assert planned.exit_code == 0, planned.output
    lines = planned.stdout.splitlines()
    announced = [line for line in lines if line.startswith("create_table account: ")]
    assert len(announced) == 1 and announced[0].endswith(" columns"), lines
    assert "add_index account.name: unique index uq_account_name" in lines
    assert inspect(engine).get_table_names() == []  # --plan changes nothing

    applied = crm(config_dir, db_url, "migrate")
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.splitlines()[-2:] == [
        f"applied {len(lines)} step(s)", "created 10 department(s) from config/org.yaml"]
    assert "account" in inspect(engine).get_table_names()
    columns = len(inspect(engine).get_columns("account"))  # the plan said how many
    assert announced == [f"create_table account: new table with {columns} columns"]

    again = crm(config_dir, db_url, "migrate")
    assert (again.exit_code, again.stdout) == (0, "schema is up to date\n")
    shown = crm(config_dir, db_url, "migrate", "--plan")
    assert (shown.exit_code, shown.stdout) == (0, "schema is up to date\n")


def test_migrate_plan_lists_steps_and_archived_columns(make_env: EnvFactory, config_dir: Path,
                                                       db_url: str, engine: Engine) -> None:
    make_env(config_dir)
    set_field(config_dir, "account", "region", "{type: text, max_length: 50}")
    set_field(config_dir, "account", "city", None)
    planned = crm(config_dir, db_url, "migrate", "--plan")
    assert planned.exit_code == 0, planned.output
    assert planned.stdout == (
        "add_column account.region: add VARCHAR(50)\n"
        "archive_column account.city: field removed from config: column kept and hidden\n"
        "archived columns (kept, hidden; restore by adding the field back):\n"
        "  account.city\n")
    assert "region" not in columns(engine, "account")

    applied = crm(config_dir, db_url, "migrate")
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.splitlines()[-2:] == [
        "applied 2 step(s)", "created 10 department(s) from config/org.yaml"]
    assert {"region", "city"} <= set(columns(engine, "account"))
    later = crm(config_dir, db_url, "migrate", "--plan")
    assert later.stdout == (
        "schema is up to date\n"
        "archived columns (kept, hidden; restore by adding the field back):\n"
        "  account.city\n")

    dropping = crm(config_dir, db_url, "migrate", "--plan", "--drop-archived")
    assert dropping.stdout == ("DESTRUCTIVE drop_column account.city: drop archived column — "
                               "would lose: 0 non-empty values in account.city\n")
    refused = crm(config_dir, db_url, "migrate", "--drop-archived")
    assert refused.exit_code == 1
    assert "city" in columns(engine, "account")
    dropped = crm(config_dir, db_url, "migrate", "--drop-archived", "--allow-destructive")
    assert dropped.exit_code == 0, dropped.output
    assert "city" not in columns(engine, "account")


def test_migrate_refuses_a_destructive_change_then_applies_it_with_the_flag(
        with_codes: list[int], config_dir: Path, db_url: str, engine: Engine) -> None:
    set_field(config_dir, "account", "code", "{type: text, max_length: 5}")
    step = ("DESTRUCTIVE narrow_column account.code: VARCHAR(100) → VARCHAR(5) — would lose: "
            "1 values longer than 5 characters would be cut")
    planned = crm(config_dir, db_url, "migrate", "--plan")
    assert (planned.exit_code, planned.stdout) == (0, step + "\n")

    refused = crm(config_dir, db_url, "migrate")
    assert refused.exit_code == 1
    assert refused.stdout == ""
    assert refused.stderr == (
        f"error: refusing a destructive step without --allow-destructive: {step}\n"
        "error: nothing was applied\n")
    assert codes(engine) == ["ACME-0000001", "GLX"]

    applied = crm(config_dir, db_url, "migrate", "--allow-destructive")
    assert applied.exit_code == 0, applied.output
    # the accounts were made before any migrate computed their rollups: it does now
    assert applied.stdout == (
        f"{step}\napplied 1 step(s)\n"
        "created 10 department(s) from config/org.yaml\n"
        "computed rollups account.open_deals: 2 records; account.open_pipeline: 2 records; "
        "account.won_amount: 2 records; account.contracted: 2 records; "
        "account.invoiced: 2 records; account.collected: 2 records\n")
    assert codes(engine) == ["ACME-", "GLX"]
    assert crm(config_dir, db_url, "migrate", "--plan").stdout == "schema is up to date\n"


def test_migrate_reports_plan_errors_with_their_place(make_env: EnvFactory, config_dir: Path,
                                                      db_url: str, engine: Engine) -> None:
    make_env(config_dir)
    line = set_field(config_dir, "account", "town", "{type: text, renamed_from: burg}")
    message = (f"{yaml_loc(config_dir, 'account', line)}: fields.town.renamed_from: 'burg' "
               f"names nothing: table account has no column 'burg'")
    planned = crm(config_dir, db_url, "migrate", "--plan")
    assert planned.exit_code == 1
    assert f"error: {message}" in planned.stdout.splitlines()
    applied = crm(config_dir, db_url, "migrate")
    assert applied.exit_code == 1
    assert applied.stderr == f"error: {message}\nerror: nothing was applied\n"
    assert "town" not in columns(engine, "account")


def test_migrate_reports_config_errors(config_dir: Path, db_url: str, engine: Engine) -> None:
    line = set_field(config_dir, "account", "region", "{type: txt}")
    result = crm(config_dir, db_url, "migrate")
    assert result.exit_code == 1
    where = f"{config_dir / 'entities' / 'account.yaml'}:{line}:18"
    assert result.stderr == (
        f"{where}: fields.region.type: unknown field type 'txt' (did you mean 'text'?)\n"
        "error: 1 configuration error(s); nothing was applied\n")
    assert inspect(engine).get_table_names() == []


# -- crm serve: safe plans only ------------------------------------------------------------


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record uvicorn.run instead of serving; serve's own env changes are undone after."""
    import uvicorn

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setenv("CRM_CONFIG", "unset")
    monkeypatch.setenv("CRM_DATABASE_URL", "unset")
    return calls


def test_serve_refuses_to_start_with_a_destructive_plan_pending(
        with_codes: list[int], config_dir: Path, db_url: str, engine: Engine,
        uvicorn_calls: list[tuple[Any, ...]]) -> None:
    set_field(config_dir, "account", "region", "{type: text}")  # safe, but not alone
    set_field(config_dir, "account", "code", "{type: integer}")
    result = crm(config_dir, db_url, "serve")
    assert result.exit_code == 1
    assert uvicorn_calls == []
    assert result.stderr == (
        "error: refusing a destructive step without --allow-destructive: DESTRUCTIVE "
        "change_type account.code: VARCHAR(100) → BIGINT — would lose: 2 of 2 non-empty "
        "values cannot be converted and would become blank, e.g. 'ACME-0000001', 'GLX'\n"
        "error: not starting: run `crm migrate --plan` to see the pending changes\n")
    assert "region" not in columns(engine, "account")  # not even the safe part
    assert codes(engine) == ["ACME-0000001", "GLX"]


def test_serve_refuses_to_start_with_plan_errors(
        make_env: EnvFactory, config_dir: Path, db_url: str,
        uvicorn_calls: list[tuple[Any, ...]]) -> None:
    make_env(config_dir)
    set_field(config_dir, "account", "town", "{type: text, renamed_from: burg}")
    result = crm(config_dir, db_url, "serve")
    assert result.exit_code == 1
    assert uvicorn_calls == []
    assert "names nothing: table account has no column 'burg'" in result.stderr
    assert result.stderr.endswith(
        "error: not starting: run `crm migrate --plan` to see the pending changes\n")


def test_serve_applies_a_safe_plan_then_starts(
        make_env: EnvFactory, config_dir: Path, db_url: str, engine: Engine,
        uvicorn_calls: list[tuple[Any, ...]]) -> None:
    import os

    make_env(config_dir)
    set_field(config_dir, "account", "region", "{type: text}")
    set_field(config_dir, "account", "city", None)
    result = crm(config_dir, db_url, "serve", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert result.stdout == "applied 2 schema step(s)\n"
    assert {"region", "city"} <= set(columns(engine, "account"))
    assert uvicorn_calls == [(("engine.web.asgi:build",),
                              {"factory": True, "host": "127.0.0.1", "port": 8123,
                               "workers": 1, "log_level": "info",
                               # stop within seconds; X-Forwarded-For from no one by default
                               "timeout_graceful_shutdown": 3, "proxy_headers": False})]
    assert os.environ["CRM_CONFIG"] == str(config_dir)
    assert os.environ["CRM_DATABASE_URL"] == db_url
    # nothing pending: it starts without touching the schema
    again = crm(config_dir, db_url, "serve")
    assert (again.exit_code, again.stdout) == (0, "")
    assert len(uvicorn_calls) == 2
    assert apply_plan(engine, load_model(config_dir)).is_empty

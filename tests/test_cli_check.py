"""`crm check` and the other commands on a broken config: every error, exit 1, nothing applied."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect

from engine.cli import main
from engine.metadata import load_model
from tests.conftest import CONFIG

BROKEN = {
    "account.yaml": "entity: account\nfields:\n  name: {type: text}\n"
                    "  tier: {type: choice, options: [a, b], default: c}\n",
    "contact.yaml": "entity: contact\nfields:\n  account: {type: reference, to: acount}\n"
                    "  Email: {type: email}\n",
    "deal.yaml": "entity: deal\nfields:\n  name: {type: text\n",
}
BROKEN_ERRORS = [
    "config/entities/account.yaml:4:50: fields.tier.default 'c' is not one of the options",
    "config/entities/contact.yaml:3:34: fields.account.to: unknown entity 'acount' "
    "(did you mean 'account'?)",
    "config/entities/contact.yaml:4:3: field 'Email' is not a valid name "
    "(lower-case letter, then a-z, 0-9 or _, at most 63)",
    "config/entities/deal.yaml:4:1: YAML syntax error: expected ',' or '}', "
    "but got '<stream end>'",
]
BROKEN_STDERR = "\n".join(
    [*BROKEN_ERRORS, "error: 4 configuration error(s); nothing was applied"]) + "\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory for the command, so file names read `config/entities/…`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_CONFIG", raising=False)
    monkeypatch.delenv("CRM_DATABASE_URL", raising=False)
    return tmp_path


def write_config(root: Path, files: dict[str, str]) -> Path:
    entities = root / "config" / "entities"
    entities.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (entities / name).write_text(text, encoding="utf-8")
    return root / "config"


def crm(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def tables(url: str) -> list[str]:
    return sorted(columns(url))


def columns(url: str) -> dict[str, list[str]]:
    """Table → column names, as the database has them."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {t: sorted(c["name"] for c in found.get_columns(t))
                for t in found.get_table_names()}
    finally:
        engine.dispose()


def test_check_ok_prints_counts(workdir: Path) -> None:
    write_config(workdir, {
        "account.yaml": "entity: account\nfields:\n  name: {type: text}\n  city: {type: text}\n",
        "contact.yaml": "entity: contact\nfields:\n  account: {type: reference, to: account}\n",
    })
    result = crm("--config", "config", "check")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, "ok: 2 entities, 3 fields\n", "")


def test_check_the_shipped_config(workdir: Path) -> None:
    model = load_model(CONFIG)
    fields = sum(len(e.fields) for e in model.entities)
    result = crm("--config", str(CONFIG), "check")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, f"ok: {len(model.entities)} entities, {fields} fields\n", "")


def test_check_reads_the_config_folder_from_the_environment(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(workdir / "elsewhere", BROKEN)
    monkeypatch.setenv("CRM_CONFIG", "elsewhere/config")
    result = crm("check")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == BROKEN_ERRORS[0].replace(
        "config/", "elsewhere/config/", 1)


def test_check_prints_every_error_on_stderr_and_exits_1(workdir: Path) -> None:
    write_config(workdir, BROKEN)
    result = crm("--config", "config", "check")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", BROKEN_STDERR)


def test_check_refuses_unknown_tags_and_oversized_files(workdir: Path) -> None:
    from engine.metadata.yamlio import MAX_FILE_BYTES

    write_config(workdir, {
        "account.yaml": "entity: account\nfields:\n  name: !secret {type: text}\n",
        "contact.yaml": "entity: contact\nfields:\n  note: {type: text}\n"
                        + "# padding\n" * (MAX_FILE_BYTES // 10),
    })
    result = crm("--config", "config", "check")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "config/entities/account.yaml:3:9: unknown YAML tag '!secret'",
        f"config/entities/contact.yaml:1:1: the file is {MAX_FILE_BYTES + 45:,} bytes; "
        f"the limit is {MAX_FILE_BYTES:,}",
        "error: 2 configuration error(s); nothing was applied"]


def test_check_refuses_a_computed_field_whose_sql_is_too_large(workdir: Path) -> None:
    big = "MAX(" + ", ".join(["YEAR(DATE(n, n, n))"] * 90) + ")"
    write_config(workdir, {
        "account.yaml": f"entity: account\nfields:\n  n: {{type: integer}}\n"
                        f"  big: {{type: integer, formula: '{big}'}}\n"})
    result = crm("--config", "config", "check")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[0].startswith(
        "config/entities/account.yaml:4:33: formula 1:1: the formula's SQL has more than "
        "20,000 terms (the limit)")


def test_check_on_a_missing_folder(workdir: Path) -> None:
    result = crm("--config", "nowhere", "check")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == ("nowhere/entities:1:1: no entities/ folder in config\n"
                             "error: 1 configuration error(s); nothing was applied\n")


def test_migrate_on_a_broken_config_exits_1_and_creates_no_tables(workdir: Path) -> None:
    write_config(workdir, BROKEN)
    url = f"sqlite:///{workdir / 'crm.db'}"
    result = crm("--config", "config", "--db", url, "migrate")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", BROKEN_STDERR)
    assert tables(url) == []


@pytest.mark.parametrize("command", [
    ["migrate", "--plan"],
    ["migrate", "--allow-destructive"],
    ["demo", "--size", "1"],
    ["serve"],
    ["user", "add", "ann", "--role", "admin", "--password", "secret-pass"],
    ["user", "token", "ann"],
], ids=lambda c: " ".join(c))
def test_no_command_touches_the_database_while_config_is_broken(
        workdir: Path, command: list[str]) -> None:
    write_config(workdir, BROKEN)
    url = f"sqlite:///{workdir / 'crm.db'}"
    result = crm("--config", "config", "--db", url, *command)
    assert (result.exit_code, result.stderr) == (1, BROKEN_STDERR)
    assert tables(url) == []


def test_a_broken_file_holds_back_the_valid_changes_of_others(workdir: Path) -> None:
    config = write_config(workdir, {})
    shutil.copytree(CONFIG / "entities", config / "entities", dirs_exist_ok=True)
    url = f"sqlite:///{workdir / 'crm.db'}"
    first = crm("--config", "config", "--db", url, "migrate")
    assert first.exit_code == 0, first.stderr
    before = columns(url)
    assert "name" in before["account"]

    account = config / "entities" / "account.yaml"
    account.write_text(account.read_text(encoding="utf-8")
                       + "  region: {type: text, max_length: 40}\n", encoding="utf-8")
    (config / "entities" / "broken.yaml").write_text(
        "entity: broken\nfields:\n  name: {type: txt}\n", encoding="utf-8")
    result = crm("--config", "config", "--db", url, "migrate")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "config/entities/broken.yaml:3:16: fields.name.type: unknown field type 'txt' "
        "(did you mean 'text'?)\n"
        "error: 1 configuration error(s); nothing was applied\n")
    after = columns(url)
    assert after == before
    assert "region" not in after["account"]

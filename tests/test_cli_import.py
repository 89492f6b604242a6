"""`crm import` (engine/cli.py): the summary and the error file, exit codes for bad files,
mappings and options, a dry run — and an import killed with SIGKILL, run again with the same
command, ends with every row once (both databases)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from engine.cli import main
from engine.runtime.schema.tables import IMPORT_JOB_TABLE
from tests.conftest import CONFIG, Env
from tests.test_imports_jobs import count, customers, read_errors, write_csv

ROOT = Path(__file__).resolve().parent.parent


def crm(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(CONFIG), "--db", db_url, *args])


def test_import_reports_counts_and_the_error_file(env: Env, db_url: str,
                                                  tmp_path: Path) -> None:
    rows = customers(10)
    rows[4][3] = "abc"
    source = write_csv(tmp_path / "customers.csv", rows)
    errors = tmp_path / "bad.csv"
    result = crm(db_url, "import", "account", str(source), "--errors", str(errors))
    assert result.exit_code == 0, result.output
    assert "10 row(s): 9 created, 0 updated, 0 skipped, 1 failed" in result.stdout
    assert f"in {errors}" in result.stdout
    assert [r[:-1] for r in read_errors(errors)[1:]] == [rows[4]]
    assert count(env, "account") == 9
    # the same command again: the job is done, so it is a new import whose rows are taken
    again = crm(db_url, "import", "account", str(source), "--errors", str(errors))
    assert again.exit_code == 0 and "0 created" in again.stdout
    assert count(env, "account") == 9


def test_the_error_file_in_chinese(env: Env, db_url: str, tmp_path: Path) -> None:
    rows = customers(3)
    rows[1][3] = "abc"
    rows[2][0] = ""
    source = write_csv(tmp_path / "customers.csv", rows)
    errors = tmp_path / "bad.csv"
    english = crm(db_url, "import", "account", str(source), "--errors", str(errors),
                  "--dry-run")
    assert english.exit_code == 0, english.output
    assert "must be" in read_errors(errors)[1][-1]
    result = crm(db_url, "import", "account", str(source), "--errors", str(errors),
                 "--language", "zh")
    assert result.exit_code == 0, result.output
    problems = [r[-1] for r in read_errors(errors)[1:]]
    assert "必须是" in problems[0] and "must" not in problems[0], problems
    assert problems[1] == "客户名称: 必填"
    # the summary stays English, as the rest of crm does
    assert "3 row(s): 1 created, 0 updated, 0 skipped, 2 failed" in result.stdout


def test_dry_run_and_upsert_by_key(env: Env, db_url: str, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", customers(4))
    dry = crm(db_url, "import", "account", str(source), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: 4 row(s): 4 would be created" in dry.stdout
    assert count(env, "account") == 0
    assert crm(db_url, "import", "account", str(source)).exit_code == 0
    changed = customers(4)
    changed[0][1] = "拉萨市"
    upsert = crm(db_url, "import", "account", str(write_csv(tmp_path / "u.csv", changed)),
                 "--key", "name")
    assert upsert.exit_code == 0, upsert.output
    assert "0 created, 4 updated" in upsert.stdout
    assert count(env, "account") == 4


def test_bad_input_exits_1_with_the_problem(env: Env, db_url: str, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", customers(2))
    missing = crm(db_url, "import", "account", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1 and "no such file" in missing.stderr
    entity = crm(db_url, "import", "nothing", str(source))
    assert entity.exit_code == 1 and "no entity 'nothing'" in entity.stderr
    key = crm(db_url, "import", "account", str(source), "--key", "city")
    assert key.exit_code == 1 and "city" in key.stderr
    mapping = tmp_path / "m.yaml"
    mapping.write_text("entity: account\ncolumns:\n  城市: open_deals\n", encoding="utf-8")
    mapped = crm(db_url, "import", "account", str(source), "--mapping", str(mapping))
    assert mapped.exit_code == 1 and "column 城市" in mapped.stderr, mapped.stderr
    mapping.write_text("entity: account\ncolumns:\n  城市: [city]\n", encoding="utf-8")
    shaped = crm(db_url, "import", "account", str(source), "--mapping", str(mapping))
    assert shaped.exit_code == 1 and f"{mapping}:3:" in shaped.stderr, shaped.stderr
    assert count(env, "account") == 0


def _job_row(env: Env) -> tuple[int, str] | None:
    jobs = env.records.schema.table(IMPORT_JOB_TABLE)
    with env.engine.connect() as conn:
        row = conn.execute(select(jobs.c.rows_done, jobs.c.status)
                           .order_by(jobs.c.id.desc())).first()
    return None if row is None else (int(row[0]), str(row[1]))


@pytest.mark.slow
def test_sigkill_then_the_same_command_resumes_exactly(env: Env, db_url: str,
                                                       tmp_path: Path) -> None:
    total = 16_000
    source = write_csv(tmp_path / "big.csv", customers(total, seed=7))
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "engine.cli", "--config", str(CONFIG), "--db", db_url,
               "import", "account", str(source)]
    proc = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = _job_row(env)
            if state is not None and state[0] >= 2_000:
                break
            assert proc.poll() is None, "the import ended before a batch was seen"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    state = _job_row(env)
    assert state is not None and 2_000 <= state[0] < total, state
    killed_at = count(env, "account")
    assert killed_at == state[0]  # what committed is exactly what the job counts
    rerun = subprocess.run(command, env=environ, capture_output=True, text=True,
                           timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"at row {killed_at + 1:,}" in rerun.stderr  # "resuming import job N at row …"
    assert f"{total:,} row(s): {total:,} created" in rerun.stdout
    t = env.records.compiled("account").table
    with env.engine.connect() as conn:
        names = conn.execute(select(func.count(), func.count(t.c.name.distinct()))
                             .select_from(t)).one()
    assert tuple(names) == (total, total)

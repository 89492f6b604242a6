"""Import jobs (engine/runtime/imports/jobs.py): counts, the error file and its re-import,
upsert by a key, duplicates per the options and per row, dry runs, resuming, access — on
both databases."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from faker import Faker
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest, Forbidden, Invalid, NotFound
from engine.runtime.imports import jobs as import_jobs
from engine.runtime.imports.jobs import ImportOptions, Job, get_job, jobs_of, open_job, run_job
from engine.runtime.imports.mapping import ERRORS_COLUMN, ColumnMap
from engine.runtime.records import imports as bulk_imports
from engine.runtime.schema.tables import IMPORT_ERROR_TABLE, IMPORT_JOB_TABLE
from tests.conftest import Env

HEADERS = ["客户名称", "城市", "邮箱", "员工人数", "行业"]


def write_csv(path: Path, rows: Sequence[Sequence[Any]], headers: Sequence[str] = HEADERS,
              encoding: str = "utf-8-sig") -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)
    return path


def write_xlsx(path: Path, rows: Sequence[Sequence[Any]],
               headers: Sequence[str] = HEADERS) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(headers))
    for r in rows:
        sheet.append(list(r))
    book.save(path)
    return path


def read_errors(path: Path) -> list[list[str]]:
    if path.suffix == ".xlsx":
        sheet = load_workbook(path, read_only=True).active
        assert sheet is not None
        return [["" if v is None else str(v) for v in r] for r in sheet.iter_rows(
            values_only=True)]
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM, so Excel opens it"
    return list(csv.reader(raw.decode("utf-8-sig").splitlines()))


def customers(n: int, seed: int = 15) -> list[list[str]]:
    fake = Faker("zh_CN")
    Faker.seed(seed)
    return [[f"{fake.company()}{i}", fake.city(), f"c{i}@{fake.domain_name()}",
             str(fake.random_int(1, 5000)), "制造业"] for i in range(n)]


def count(env: Env, entity: str) -> int:
    t = env.records.compiled(entity).table
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def run(env: Env, path: Path, actor: Actor | None = None, batch_size: int = 7,
        **options: Any) -> Job:
    """Import `path` into accounts (in batches of 7, so a few batches run)."""
    actor = actor or env.admin.actor()
    opts = ImportOptions(entity=options.pop("entity", "account"), **options)
    job = open_job(env.records, actor, path, opts, file_name=path.name)
    return run_job(env.records, actor, job.id, batch_size=batch_size)


def test_bad_rows_go_to_the_error_file_and_come_back_in_fixed(env: Env,
                                                              tmp_path: Path) -> None:
    rows = customers(30)
    rows[3][3] = "很多"                 # not a number
    rows[5][0] = ""                     # the name is required
    rows[9][0] = rows[8][0]             # the same name twice in the file
    rows[20][2] = "not-an-email"
    source = write_csv(tmp_path / "客户.csv", rows)
    job = run(env, source)
    assert (job.status, job.rows_done, job.total_rows) == ("done", 30, 30)
    assert (job.created, job.updated, job.skipped, job.failed) == (26, 0, 0, 4)
    assert count(env, "account") == 26
    assert job.error_file is not None and job.error_file.suffix == ".csv"
    errors = read_errors(job.error_file)
    assert errors[0] == [*HEADERS, ERRORS_COLUMN]
    assert [e[:-1] for e in errors[1:]] == [rows[3], rows[5], rows[9], rows[20]]
    assert errors[1][-1].startswith("员工人数 '很多': ")
    assert errors[2][-1].startswith("客户名称: ")
    assert "邮箱" in errors[4][-1]
    # fixed and imported again: all in
    fixed = [e[:-1] for e in errors[1:]]
    fixed[0][3] = "120"
    fixed[1][0] = "新客户有限公司"
    fixed[2][0] = rows[9][0] + "分公司"
    fixed[3][2] = "ok@example.cn"
    again = run(env, write_csv(tmp_path / "fixed.csv", fixed, errors[0][:-1]))
    assert (again.status, again.created, again.failed) == ("done", 4, 0)
    assert again.error_file is None
    assert count(env, "account") == 30


def test_a_row_refused_for_a_bad_value_names_its_blank_required_fields_too(
        env: Env, tmp_path: Path) -> None:
    """One round of fixes, not two: the error file names the number it could not read and
    the missing name together; a bad value is not also called missing."""
    rows = customers(3)
    rows[0][3], rows[0][0] = "很多", ""  # a bad number and no name
    rows[1][3] = "很多"                 # a bad number alone
    job = run(env, write_csv(tmp_path / "a.csv", rows))
    assert job.error_file is not None
    problems = [e[-1] for e in read_errors(job.error_file)[1:]]
    assert problems[0] == "员工人数 '很多': must be a whole number; 客户名称: is required"
    assert problems[1] == "员工人数 '很多': must be a whole number"
    # an upsert by key may update a record, where a blank cell keeps the value: not required
    keyed = run(env, write_csv(tmp_path / "b.csv", rows[:1]), key="name")
    assert keyed.error_file is not None
    assert read_errors(keyed.error_file)[1][-1] == "员工人数 '很多': must be a whole number"


def test_an_error_file_imported_again_still_failing_has_one_problems_column(
        env: Env, tmp_path: Path) -> None:
    """An error file imported as it is (its problems column too) whose rows fail again
    gives an error file with the original columns and one problems column — the new
    problems — which can itself be imported again."""
    rows = customers(3)
    rows[1][3] = "很多"
    first = run(env, write_csv(tmp_path / "a.csv", rows))
    assert first.error_file is not None
    errors = read_errors(first.error_file)
    second = run(env, write_csv(tmp_path / "b.csv", errors[1:], errors[0]))
    assert (second.created, second.failed) == (0, 1)
    assert second.error_file is not None
    again = read_errors(second.error_file)
    assert again[0] == [*HEADERS, ERRORS_COLUMN]
    assert again[1][:-1] == rows[1] and again[1][-1].startswith("员工人数 '很多': ")
    again[1][3] = "12"
    third = run(env, write_csv(tmp_path / "c.csv", again[1:], again[0]))
    assert (third.created, third.failed) == (1, 0)


def test_xlsx_in_xlsx_errors_out_as_text(env: Env, tmp_path: Path) -> None:
    rows = customers(5)
    rows[1][3] = "1e3 人"
    job = run(env, write_xlsx(tmp_path / "客户.xlsx", rows))
    assert (job.created, job.failed) == (4, 1)
    assert job.error_file is not None and job.error_file.suffix == ".xlsx"
    errors = read_errors(job.error_file)
    assert errors[1][:-1] == rows[1]
    sheet = load_workbook(job.error_file).active
    assert sheet is not None
    assert sheet.cell(2, 4).data_type == "s"


def test_upsert_by_a_unique_key_updates_with_the_version(env: Env, tmp_path: Path) -> None:
    a = env.admin.actor()
    acme = env.records.create(a, "account", {"name": "华为技术有限公司", "city": "深圳"})
    rows = [["华为技术有限公司", "东莞", "", "", ""], ["小米科技有限责任公司", "北京", "", "", ""]]
    job = run(env, write_csv(tmp_path / "u.csv", rows), key="name")
    assert (job.created, job.updated, job.failed) == (1, 1, 0)
    after = env.records.get(a, "account", acme["id"])
    assert (after["city"], after["version"]) == ("东莞", acme["version"] + 1)
    history = env.records.history(a, "account", acme["id"])
    assert any(h.get("field") == "city" for h in history)


def test_a_dry_run_writes_nothing_but_the_job(env: Env, tmp_path: Path) -> None:
    rows = customers(12)
    rows[2][3] = "x"
    tables = [t for t in env.records.schema.metadata.sorted_tables
              if t.name not in (IMPORT_JOB_TABLE, IMPORT_ERROR_TABLE)]

    def counts() -> dict[str, int]:
        with env.engine.connect() as conn:
            return {t.name: int(conn.execute(select(func.count()).select_from(t))
                                .scalar_one()) for t in tables}

    before = counts()
    job = run(env, write_csv(tmp_path / "d.csv", rows), dry_run=True)
    assert counts() == before
    assert (job.status, job.created, job.failed, job.rows_done) == ("done", 11, 1, 12)
    assert job.error_file is not None and len(read_errors(job.error_file)) == 2


def test_duplicates_skip_update_create_and_per_row_choices(env: Env, tmp_path: Path) -> None:
    a = env.admin.actor()
    old = env.records.create(a, "account", {"name": "旧客户", "phone": "13800138000"})
    rows = [["新客户甲", "上海", "138 0013 8000"],
            ["新客户乙", "上海", "+86 13800138000"],
            ["新客户丙", "上海", "13900139000"]]
    source = write_csv(tmp_path / "dup.csv", rows, ["客户名称", "城市", "电话"])
    review = run(env, source, dry_run=True)
    assert [d.row for d in review.duplicates] == [1, 2]
    assert review.duplicates[0].candidates[0]["id"] == old["id"]
    assert review.duplicates[1].candidates[1] == {"id": None, "title": "新客户甲",
                                                  "rule": ["phone"], "row": 1}
    assert review.skipped == 2
    job = run(env, source, choices={1: "update", 2: "create"})
    assert (job.created, job.updated, job.skipped) == (2, 1, 0)
    assert env.records.get(a, "account", old["id"])["name"] == "新客户甲"


def test_a_rerun_resumes_and_a_done_job_is_not_run_twice(env: Env, tmp_path: Path) -> None:
    a = env.admin.actor()
    source = write_csv(tmp_path / "r.csv", customers(20))
    opts = ImportOptions(entity="account")
    job = open_job(env.records, a, source, opts, file_name="r.csv")
    calls = iter(range(100))
    stopped = run_job(env.records, a, job.id, batch_size=7,
                      should_stop=lambda: next(calls) >= 2)
    assert (stopped.status, stopped.rows_done, count(env, "account")) == ("cancelled", 14, 14)
    again = open_job(env.records, a, source, opts, file_name="r.csv")
    assert again.id == job.id
    done = run_job(env.records, a, again.id, batch_size=7)
    assert (done.status, done.rows_done, done.created, count(env, "account")) == \
        ("done", 20, 20, 20)
    fresh = open_job(env.records, a, source, opts, file_name="r.csv")
    assert fresh.id != job.id  # a finished import is a new job when run again
    assert [j.id for j in jobs_of(env.records, a, "account", 5)] == [fresh.id, job.id]


def test_a_file_unreadable_near_its_end_fails_before_any_row_is_imported(
        env: Env, tmp_path: Path) -> None:
    rows = [*customers(30), ["Last Co", "上海", "x@y.cn", "1", "制" * 10_001]]
    job = run(env, write_csv(tmp_path / "bad.csv", rows))
    assert (job.status, job.rows_done, job.total_rows, count(env, "account")) == \
        ("failed", 0, None, 0)
    assert job.message is not None and "row 32, column E holds 10,001 characters" in job.message


def test_a_resumed_job_counts_its_rows_and_starts_after_the_done_ones(
        env: Env, tmp_path: Path) -> None:
    a = env.admin.actor()
    rows = customers(20)
    rows[5:5] = [["", " ", "", "", ""], ["", "", "", "", ""]]  # blank rows are not counted
    source = write_csv(tmp_path / "b.csv", rows)
    job = open_job(env.records, a, source, ImportOptions(entity="account"), file_name="b.csv")
    calls = iter(range(100))
    stopped = run_job(env.records, a, job.id, batch_size=3,
                      should_stop=lambda: next(calls) >= 2)
    assert (stopped.rows_done, stopped.total_rows, count(env, "account")) == (6, 20, 6)
    done = run_job(env.records, a, job.id, batch_size=3)
    assert (done.status, done.rows_done, done.total_rows, count(env, "account")) == \
        ("done", 20, 20, 20)
    names = {r[0] for r in customers(20)}
    t = env.records.compiled("account").table
    with env.engine.connect() as conn:
        assert set(conn.execute(select(t.c.name)).scalars()) == names


def test_access(env: Env, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "a.csv", customers(3))
    admin = env.admin.actor()
    job = open_job(env.records, admin, source, ImportOptions(entity="account"),
                   file_name="a.csv")
    env.users.add("viewer", roles=["presales"], password="secret-123")
    viewer = env.users.by_name("viewer").actor()
    with pytest.raises(Forbidden):
        open_job(env.records, viewer, source, ImportOptions(entity="account"),
                 file_name="a.csv")
    with pytest.raises(NotFound):
        get_job(env.records, viewer, job.id)
    with pytest.raises(BadRequest):
        open_job(env.records, admin, source, ImportOptions(entity="account", key="city"),
                 file_name="a.csv")
    with pytest.raises(Invalid):
        open_job(env.records, admin, source,
                 ImportOptions(entity="account",
                               mapping=ColumnMap({"城市": "open_deals"}, "account")),
                 file_name="a.csv")


@pytest.mark.slow
def test_ten_thousand_chinese_customers_bad_rows_fixed_and_imported_again(
        env: Env, tmp_path: Path) -> None:
    """The issue's scenario without a browser: an Excel export of 10,000 customers with a
    few bad rows and duplicates; the error file fixed and imported again."""
    a = env.admin.actor()
    rows = customers(10_000, seed=2026)
    for i in (100, 5_000, 9_000):  # already in the CRM: a duplicate by name and city
        env.records.create(a, "account", {"name": rows[i][0], "city": rows[i][1]})
    bad = {17: (3, "三千"), 2_500: (2, "no-at-sign"), 7_777: (0, "")}
    for i, (col, text) in bad.items():
        rows[i][col] = text
    rows[4_001][0] = rows[4_000][0]  # the same customer twice in the file
    source = write_xlsx(tmp_path / "客户导出.xlsx", rows)
    job = run(env, source, batch_size=2_000)
    assert (job.status, job.rows_done, job.total_rows) == ("done", 10_000, 10_000)
    assert (job.created, job.skipped, job.failed) == (9_993, 3, 4)
    assert sorted(d.row for d in job.duplicates) == [101, 5_001, 9_001]
    assert job.error_file is not None
    errors = read_errors(job.error_file)
    assert len(errors) == 1 + 7
    fixed = []
    for line in errors[1:]:
        cells, problem = line[:-1], line[-1]
        if problem.startswith("skipped"):
            continue  # already in the CRM: left out
        cells[3] = "3000" if cells[3] == "三千" else cells[3]
        cells[2] = "fixed@example.cn" if cells[2] == "no-at-sign" else cells[2]
        cells[0] = cells[0] or "补录客户有限公司"
        if cells[0] == rows[4_000][0]:
            cells[0] += "二分部"
        fixed.append(cells)
    again = run(env, write_xlsx(tmp_path / "客户导出.errors-fixed.xlsx", fixed,
                                errors[0][:-1]))
    assert (again.created, again.failed, again.skipped) == (4, 0, 0)
    assert count(env, "account") == 10_000


def test_a_second_process_running_the_same_job_writes_nothing_twice(
        env: Env, tmp_path: Path) -> None:
    """Another run of the job commits a batch behind this one's back: this one's batch
    is rolled back and it stops, leaving the job to the other."""
    source = write_csv(tmp_path / "twice.csv", customers(10))
    after = overtaken(env, source, "account")
    assert (after.rows_done, after.created, count(env, "account")) == (7, 0, 0)


def overtaken(env: Env, source: Path, entity: str) -> Job:
    """Import `source` in batches of 7 while another process, once, commits the first
    batch's progress before this one can."""
    a = env.admin.actor()
    job = open_job(env.records, a, source, ImportOptions(entity=entity),
                   file_name=source.name)
    jobs = env.records.schema.table(IMPORT_JOB_TABLE)

    def the_other_runs(seen: Job) -> None:
        if seen.rows_done == 0:
            with env.engine.begin() as conn:
                conn.execute(jobs.update().where(jobs.c.id == seen.id)
                             .values(rows_done=jobs.c.rows_done + 7))

    return run_job(env.records, a, job.id, batch_size=7, progress=the_other_runs)


def test_a_large_import_refreshes_the_statistics_once_its_batches_commit(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The planner's statistics are refreshed after the last batch, not inside one: on
    SQLite ANALYZE writes, and a batch's unit holds the one write lock (the import once
    waited there for the busy timeout, then ran its batch again row by row)."""
    monkeypatch.setattr(import_jobs, "ANALYZE_AFTER", 20)
    monkeypatch.setattr(bulk_imports, "ANALYZE_AFTER", 20)  # a batch's bulk create leaves it
    caplog.set_level("INFO", logger=import_jobs.__name__)
    job = run(env, write_csv(tmp_path / "c.csv", customers(30)), batch_size=30)
    assert (job.status, job.created, job.failed) == ("done", 30, 0)
    assert "row by row" not in caplog.text  # the one batch went in whole
    if env.engine.dialect.name == "sqlite":
        with env.engine.connect() as conn:
            stats = conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'account'").scalar_one()
        assert stats > 0


# -- batches overlapping on PostgreSQL (run_job, _Runner.overlaps) ---------------------------

DEAL_HEADERS = ["name", "account", "amount", "stage", "close_date"]


def deals(account_ids: Sequence[int], n: int) -> list[list[str]]:
    stages = ["prospecting", "proposal", "negotiation", "won"]
    return [[f"商机 {i:03d}", str(account_ids[i % len(account_ids)]), f"{1000 + i * 7}.50",
             stages[i % len(stages)], "2027-03-31"] for i in range(n)]


def deals_import(env: Env, path: Path, batch_size: int = 7) -> Job:
    a = env.admin.actor()
    job = open_job(env.records, a, path, ImportOptions(entity="opportunity"),
                   file_name=path.name)
    return run_job(env.records, a, job.id, batch_size=batch_size)


def logged(env: Env, entity: str) -> list[tuple[int, str]]:
    """The change log's rows of `entity`, in commit order: (record id, action)."""
    log = env.records.change_log
    with env.engine.connect() as conn:
        return [(r.record_id, r.action) for r in conn.execute(
            select(log.c.record_id, log.c.action).where(log.c.entity == entity)
            .order_by(log.c.seq))]


def test_which_imports_overlap_their_batches(env: Env, tmp_path: Path) -> None:
    """Only on PostgreSQL, only when no batch reads what an earlier batch of the file
    writes: not with an upsert key, duplicate rules, a unique field's column, or in a dry
    run."""
    a = env.admin.actor()
    pg = env.engine.dialect.name == "postgresql"
    source = write_csv(tmp_path / "d.csv", deals([1], 3), DEAL_HEADERS)
    with_key = write_csv(tmp_path / "k.csv", [[*r, f"X{i}"] for i, r in
                                               enumerate(deals([1], 3))],
                         [*DEAL_HEADERS, "external_id"])

    def overlaps(path: Path, **options: Any) -> bool:
        job = open_job(env.records, a, path, ImportOptions(**options), file_name=path.name)
        return import_jobs._Runner(env.records, a, job).overlaps()

    assert overlaps(source, entity="opportunity") is pg
    assert overlaps(source, entity="opportunity", dry_run=True) is False
    assert overlaps(with_key, entity="opportunity") is False  # a unique field's column
    assert overlaps(with_key, entity="opportunity", key="external_id") is False
    customers_file = write_csv(tmp_path / "c.csv", customers(3))
    assert overlaps(customers_file, entity="account") is False  # duplicate rules


def test_overlapping_batches_land_whole_and_in_file_order(env: Env, tmp_path: Path) -> None:
    """Nine batches of deals, two at a time on PostgreSQL: every row once, the change log
    in file order (commit order is batch order), one audit row each, and the accounts'
    rollups exact although the batches' transactions overlapped."""
    a = env.admin.actor()
    accounts = [env.records.create(a, "account", {"name": f"客户 {i}"})["id"]
                for i in range(3)]
    rows = deals(accounts, 60)
    job = deals_import(env, write_csv(tmp_path / "deals.csv", rows, DEAL_HEADERS))
    assert (job.status, job.rows_done, job.created, job.failed) == ("done", 60, 60, 0)
    c = env.records.compiled("opportunity")
    with env.engine.connect() as conn:
        stored = conn.execute(select(c.table.c.id, c.table.c.name, c.table.c.account)
                              .order_by(c.table.c.id)).all()
        won = {acc: conn.execute(select(func.sum(c.table.c.amount)).where(
            c.table.c.account == acc, c.table.c.stage == "won")).scalar() for acc in accounts}
        audited = conn.execute(select(func.count()).select_from(env.records.audit).where(
            env.records.audit.c.entity == "opportunity",
            env.records.audit.c.action == "create")).scalar_one()
    # every row once; the log in file order (ids follow the file only as closely as two
    # batches taking ids from the sequence at the same moment allow)
    assert sorted(r.name for r in stored) == sorted(r[0] for r in rows)
    name_of = {r.id: r.name for r in stored}
    assert [(name_of[i], action) for i, action in logged(env, "opportunity")] == [
        (r[0], "create") for r in rows]
    assert audited == 60
    for acc in accounts:
        assert Decimal(env.records.get(a, "account", acc)["won_amount"]) == Decimal(
            str(won[acc])) > 0


def test_a_failing_batch_is_redone_row_by_row_and_the_next_one_after_it(
        env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A batch that fails as a whole (here a before-commit hook refusing one deal) while
    the next one is already being handled: the next one waits for it, steps back, and is
    handled again once the failed batch has been redone row by row — only the row at
    fault fails, no row lands twice, and the log stays in file order."""
    a = env.admin.actor()
    accounts = [env.records.create(a, "account", {"name": f"客户 {i}"})["id"]
                for i in range(2)]
    rows = deals(accounts, 30)
    rows[9][0] = "拒绝 009"  # in the second batch of 7

    def refuse(unit: Any, changes: Sequence[Any]) -> None:
        if any(ch.after and ch.after.get("name") == "拒绝 009" for ch in changes):
            raise RuntimeError("refused by a hook")

    env.records.hooks.on_before_commit("refuse", refuse)
    caplog.set_level("INFO", logger=import_jobs.__name__)
    job = deals_import(env, write_csv(tmp_path / "deals.csv", rows, DEAL_HEADERS))
    assert (job.status, job.rows_done, job.created, job.failed) == ("done", 30, 29, 1)
    assert "batch at row 8 failed; row by row" in caplog.text
    c = env.records.compiled("opportunity")
    with env.engine.connect() as conn:
        stored = conn.execute(select(c.table.c.id, c.table.c.name).order_by(c.table.c.id)
                              ).all()
    name_of = {r.id: r.name for r in stored}
    assert [(name_of[i], action) for i, action in logged(env, "opportunity")] == [
        (r[0], "create") for r in rows if r[0] != "拒绝 009"]  # once each, in file order
    assert job.error_file is not None
    errors = read_errors(job.error_file)
    assert [e[:-1] for e in errors[1:]] == [rows[9]]
    assert "refused by a hook" in errors[1][-1]


def test_a_batch_ahead_of_the_one_before_it_waits_for_it(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first batch is slow to check its rows (its file rows' references, say), so the
    second reaches the job's progress first: it waits for the first to land instead of
    taking the job as moved on by another process and stopping the import."""
    a = env.admin.actor()
    account = env.records.create(a, "account", {"name": "客户"})["id"]
    handle = import_jobs._Runner._handle

    def slow_first(runner: Any, unit: Any, rows: Sequence[Any], out: Any) -> None:
        if rows[0][0] == 1:
            time.sleep(1.0)
        handle(runner, unit, rows, out)

    monkeypatch.setattr(import_jobs._Runner, "_handle", slow_first)
    job = deals_import(env, write_csv(tmp_path / "deals.csv", deals([account], 20),
                                      DEAL_HEADERS))
    assert (job.status, job.rows_done, job.created) == ("done", 20, 20)
    assert count(env, "opportunity") == 20


def test_a_second_process_stops_overlapping_batches_too(env: Env, tmp_path: Path) -> None:
    """Another run of the job commits a batch behind the back of an import whose batches
    overlap: the batch in hand and the one after it are rolled back, and it stops."""
    account = env.records.create(env.admin.actor(), "account", {"name": "客户"})["id"]
    source = write_csv(tmp_path / "twice.csv", deals([account], 20), DEAL_HEADERS)
    after = overtaken(env, source, "opportunity")
    assert (after.rows_done, after.created, count(env, "opportunity")) == (7, 0, 0)
    assert logged(env, "opportunity") == []

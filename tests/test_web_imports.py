"""The import page (engine/web/pages/imports.py) and its background runner
(engine/runtime/imports/background.py), over HTTP through the ASGI app, on SQLite and
PostgreSQL: upload, mapping, check, per-row duplicate choices, import, progress, result,
the error file and who may fetch it, CSRF, who may import, bad files, resume, and that a
running import does not hold up other requests."""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.imports import jobs as import_jobs
from engine.runtime.imports.background import ImportRunner
from engine.settings import WebSettings
from engine.web.app import create_app
from engine.web.pages import imports as import_pages
from tests.conftest import Env
from tests.db_templates import TEST_HASHER
from tests.web_helpers import csrf_of, sign_in

PASSWORD = "a-password-for-tests"
HEADERS = ["客户名称", "城市", "行业", "邮箱", "员工人数"]
_JOB = re.compile(r"/e/account/import/jobs/(\d+)$")
_UPLOAD = re.compile(r"/e/account/import/u/([A-Za-z0-9_-]+)$")


def browser(env: Env, files: Path, user: str = "admin", password: str = "admin-password"
            ) -> TestClient:
    """A signed-in page client of an app whose files (and imports) live under `files`."""
    app = create_app(env.model, env.engine, WebSettings.ephemeral(files_dir=str(files)),
                     password_hasher=TEST_HASHER)
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, user, password).status_code == 303
    return client


def runner_of(client: TestClient) -> ImportRunner:
    runner = client.app.state.imports  # type: ignore[attr-defined]
    assert isinstance(runner, ImportRunner)
    return runner


def csv_bytes(rows: list[list[Any]], headers: list[str] = HEADERS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def upload(client: TestClient, name: str, content: bytes, *, token: bool = True
           ) -> Any:
    page = client.get("/e/account/import")
    assert page.status_code == 200, page.text
    headers = {"X-CSRF-Token": csrf_of(page.text)} if token else {}
    return client.post("/e/account/import", files={"file": (name, content)},
                       headers=headers, follow_redirects=False)


def uploaded(client: TestClient, name: str, content: bytes) -> str:
    """Upload a file; the mapping page's path."""
    sent = upload(client, name, content)
    assert sent.status_code == 303, sent.text
    path = sent.headers["location"]
    assert _UPLOAD.search(path), path
    return str(path)


def form_of(html: str) -> dict[str, str]:
    """The mapping form's selects as the page chose them, and its CSRF token."""
    values: dict[str, str] = {"csrf_token": csrf_of(html)}
    for name, body in re.findall(r'<select id="[^"]*" name="([^"]+)">(.*?)</select>', html,
                                 re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        values[name] = chosen.group(1) if chosen else ""
    return values


def submit(client: TestClient, mapping_path: str, action: str = "check",
           **changes: str) -> int:
    page = client.get(mapping_path)
    assert page.status_code == 200, page.text
    data = {**form_of(page.text), "action": action, **changes}
    sent = client.post(mapping_path, data=data, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    found = _JOB.search(sent.headers["location"])
    assert found, sent.headers["location"]
    return int(found.group(1))


def finished(client: TestClient, job_id: int) -> str:
    """Wait for the job to end here; its page."""
    assert runner_of(client).wait(job_id, 60)
    page = client.get(f"/e/account/import/jobs/{job_id}")
    assert page.status_code == 200, page.text
    return str(page.text)


def count(html: str, what: str) -> int:
    found = re.search(rf'data-count="{what}">([\d,]+)<', html)
    assert found, what
    return int(found.group(1).replace(",", ""))


def accounts(env: Env, name: str | None = None) -> int:
    t = env.records.compiled("account").table
    stmt = select(func.count()).select_from(t).where(t.c.deleted_at.is_(None))
    if name is not None:
        stmt = stmt.where(t.c.name == name)
    with env.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


# -- the whole way: upload, mapping, check, choices, import, error file -------------------


def test_upload_map_check_choose_and_import(env: Env, tmp_path: Path) -> None:
    existing = env.records.create(SYSTEM, "account", {
        "name": "华为技术", "city": "深圳", "email": "info@huawei.example"})
    before = accounts(env)
    client = browser(env, tmp_path / "files")
    listing = client.get("/e/account")
    assert 'href="/e/account/import"' in listing.text
    rows = [["上海电气集团", "上海", "manufacturing", "sales@shanghai-electric.example", "1200"],
            ["华为技术", "深圳", "manufacturing", "info@huawei.example", "5000"],
            ["", "北京", "energy", "", "10"],                       # no name
            ["比亚迪股份", "深圳", "automotive", "", "not a number"]]  # bad integer
    mapping_path = uploaded(client, "客户.csv", csv_bytes(rows))
    page = client.get(mapping_path)
    assert page.status_code == 200
    assert "上海电气集团" in page.text and "客户名称" in page.text  # samples and headers
    chosen = form_of(page.text)
    assert chosen["col0"] == "name" and chosen["col1"] == "city"  # guessed by label

    check = submit(client, mapping_path, "check")
    html = finished(client, check)
    assert accounts(env) == before  # a check writes nothing
    assert count(html, "total") == 4 and count(html, "created") == 1
    assert count(html, "failed") == 2
    assert f'href="/e/account/{existing["id"]}"' in html  # the candidate, linked
    assert 'name="dup2"' in html  # the duplicate row's choice

    run = client.post(f"/e/account/import/jobs/{check}/run",
                      data={"csrf_token": csrf_of(html), "dup2": "update"},
                      follow_redirects=False)
    assert run.status_code == 303, run.text
    job_id = int(_JOB.search(run.headers["location"]).group(1))  # type: ignore[union-attr]
    html = finished(client, job_id)
    assert count(html, "created") == 1 and count(html, "updated") == 1
    assert accounts(env) == before + 1 and accounts(env, "华为技术") == 1
    assert env.records.get(SYSTEM, "account", existing["id"])["employees"] == 5000
    assert 'href="/e/account"' in html  # on to the list

    errors = client.get(f"/e/account/import/jobs/{job_id}/errors")
    assert errors.status_code == 200
    assert "attachment" in errors.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig"))))
    assert lines[0][:len(HEADERS)] == HEADERS and len(lines[0]) == len(HEADERS) + 1
    assert sorted(r[1] for r in lines[1:]) == ["北京", "深圳"]  # the two bad rows, as sent

    recent = client.get("/e/account/import")
    assert f"/e/account/import/jobs/{job_id}" in recent.text  # the user's recent imports


def test_an_xlsx_file_imports_too(env: Env, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADERS)
    sheet.append(["宁德时代新能源", "宁德", "energy", "", 300])
    data = io.BytesIO()
    book.save(data)
    client = browser(env, tmp_path / "files")
    job_id = submit(client, uploaded(client, "customers.xlsx", data.getvalue()), "import")
    html = finished(client, job_id)
    assert count(html, "created") == 1
    assert accounts(env, "宁德时代新能源") == 1


def test_the_error_file_is_only_for_its_user_or_an_admin(env: Env, tmp_path: Path) -> None:
    env.users.add("rep_one", ["sales_rep"], password=PASSWORD)
    env.users.add("rep_two", ["sales_rep"], password=PASSWORD)
    one = browser(env, tmp_path / "files", "rep_one", PASSWORD)
    job_id = submit(one, uploaded(one, "a.csv", csv_bytes([["", "北京", "", "", ""]])),
                    "import")
    finished(one, job_id)
    assert one.get(f"/e/account/import/jobs/{job_id}/errors").status_code == 200
    two = browser(env, tmp_path / "files", "rep_two", PASSWORD)
    for path in ("", "/errors", "/progress"):
        assert two.get(f"/e/account/import/jobs/{job_id}{path}").status_code == 404
    assert f"/import/jobs/{job_id}" not in two.get("/e/account/import").text
    admin = browser(env, tmp_path / "files")
    assert admin.get(f"/e/account/import/jobs/{job_id}/errors").status_code == 200
    # an upload is its user's alone too
    mapping_path = uploaded(one, "b.csv", csv_bytes([["甲公司", "", "", "", ""]]))
    assert two.get(mapping_path).status_code == 404


def test_who_may_import(env: Env, tmp_path: Path) -> None:
    env.users.add("mia", ["marketing"], password=PASSWORD)  # reads accounts, creates none
    client = browser(env, tmp_path / "files", "mia", PASSWORD)
    listing = client.get("/e/account")
    assert listing.status_code == 200 and "/e/account/import" not in listing.text
    assert client.get("/e/account/import").status_code == 403
    token = csrf_of(listing.text)
    sent = client.post("/e/account/import", files={"file": ("a.csv", b"name\nx\n")},
                       headers={"X-CSRF-Token": token})
    assert sent.status_code == 403


def test_a_post_without_the_csrf_token_is_refused(env: Env, tmp_path: Path) -> None:
    client = browser(env, tmp_path / "files")
    refused = upload(client, "a.csv", csv_bytes([["甲公司", "", "", "", ""]]), token=False)
    assert refused.status_code == 403
    mapping_path = uploaded(client, "a.csv", csv_bytes([["甲公司", "", "", "", ""]]))
    page = client.get(mapping_path)
    data = {k: v for k, v in form_of(page.text).items() if k != "csrf_token"}
    assert client.post(mapping_path, data=data).status_code == 403
    assert accounts(env, "甲公司") == 0


@pytest.mark.parametrize(("name", "content", "status", "says"), [
    ("report.pdf", b"%PDF-1.7\n", 415, "CSV or Excel"),
    ("a.csv", b"", 400, "empty"),
    ("a.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00", 415, "not a readable"),
    ("a.xlsx", b"name,city\n", 415, "not a readable"),
])
def test_bad_files_get_a_clear_message(env: Env, tmp_path: Path, name: str,
                                       content: bytes, status: int, says: str) -> None:
    client = browser(env, tmp_path / "files")
    sent = upload(client, name, content)
    assert sent.status_code == status
    assert says in sent.text and 'id="import-error"' in sent.text


def test_a_file_past_the_limit_is_refused(env: Env, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_pages, "limit_mb", lambda model: 0.001)  # about 1 KB
    client = browser(env, tmp_path / "files")
    sent = upload(client, "big.csv", csv_bytes([["公司", "城市", "", "", ""]] * 200))
    assert sent.status_code == 413 and "larger than" in sent.text


def test_a_bad_mapping_comes_back_with_a_message(env: Env, tmp_path: Path) -> None:
    client = browser(env, tmp_path / "files")
    mapping_path = uploaded(client, "a.csv", csv_bytes([["甲公司", "", "", "", ""]]))
    token = csrf_of(client.get(mapping_path).text)
    for data, says in [({"col0": "open_deals"}, "not a field you may import into"),
                       ({"col0": ""}, "map at least one column"),
                       ({"col0": "name", "on_duplicate": "merge"}, "skip, update or create")]:
        sent = client.post(mapping_path, data={"csrf_token": token, "action": "check",
                                               **data})
        assert sent.status_code == 400, sent.text
        assert says in sent.text


# -- the background: progress, one import per user, other requests go on, resume --------


def gate(runner: ImportRunner) -> threading.Event:
    """Hold every job the runner starts until the returned event is set."""
    go = threading.Event()
    real: Callable[..., object] = runner._run

    def held(*args: Any) -> object:
        assert go.wait(30)
        return real(*args)

    runner._run = held
    return go


def test_a_running_import_shows_progress_and_blocks_nothing(env: Env, tmp_path: Path
                                                            ) -> None:
    client = browser(env, tmp_path / "files")
    go = gate(runner_of(client))
    rows = [[f"进度测试公司{i}", "杭州", "", "", ""] for i in range(50)]
    job_id = submit(client, uploaded(client, "p.csv", csv_bytes(rows)), "import")
    try:
        progress = client.get(f"/e/account/import/jobs/{job_id}/progress")
        assert progress.status_code == 200
        assert 'hx-trigger="every 1s"' in progress.text  # polls while it runs
        started = time.monotonic()
        assert client.get("/e/account").status_code == 200  # other requests go on
        assert time.monotonic() - started < 5
        # a second import of the same user waits for the first, with a message
        second = uploaded(client, "q.csv", csv_bytes([["另一家公司", "", "", "", ""]]))
        page = client.get(second)
        sent = client.post(second, data={**form_of(page.text), "action": "import"})
        assert sent.status_code == 429 and "import running already" in sent.text
    finally:
        go.set()
    html = finished(client, job_id)
    assert 'hx-trigger' not in html.split('id="import-job"')[1].split(">")[0]  # stopped
    assert count(html, "created") == 50


def test_an_interrupted_import_resumes(env: Env, tmp_path: Path) -> None:
    client = browser(env, tmp_path / "files")
    rows = [[f"续传公司{i}", "", "", "", ""] for i in range(30)]
    mapping_path = uploaded(client, "r.csv", csv_bytes(rows))
    page = client.get(mapping_path)
    token = csrf_of(page.text)
    # The server stops before the job's first batch: it is left resumable.
    runner = runner_of(client)
    runner._stop.set()
    sent = client.post(mapping_path, data={**form_of(page.text), "action": "import"},
                       follow_redirects=False)
    job_id = int(_JOB.search(sent.headers["location"]).group(1))  # type: ignore[union-attr]
    html = finished(client, job_id)
    assert 'data-status="interrupted"' in html and "Resume" in html
    runner._stop.clear()
    resumed = client.post(f"/e/account/import/jobs/{job_id}/resume",
                          data={"csrf_token": token}, follow_redirects=False)
    assert resumed.status_code == 303
    html = finished(client, job_id)
    assert 'data-status="done"' in html and count(html, "created") == 30
    job = import_jobs.get_job(env.records, SYSTEM, job_id)
    assert job.status == "done" and accounts(env) >= 30


def test_the_page_speaks_chinese(env: Env, tmp_path: Path) -> None:
    client = browser(env, tmp_path / "files")
    token = csrf_of(client.get("/").text)
    client.post("/account/language", data={"csrf_token": token, "language": "zh-CN",
                                           "next": "/"})
    page = client.get("/e/account/import")
    assert "导入" in page.text
    mapping_path = uploaded(client, "a.csv", csv_bytes([["甲公司", "", "", "", ""]]))
    assert "不导入" in client.get(mapping_path).text


def test_the_error_file_speaks_the_language_of_who_imported(env: Env, tmp_path: Path) -> None:
    """A user of the Chinese UI gets the problems of the error file (and the job page's
    first rows of it) in Chinese, the column labels as the entity names them in Chinese."""
    client = browser(env, tmp_path / "files")
    token = csrf_of(client.get("/").text)
    client.post("/account/language", data={"csrf_token": token, "language": "zh-CN",
                                           "next": "/"})
    bad = [["", "北京", "", "", ""], ["乙公司", "上海", "", "", "很多"]]
    job_id = submit(client, uploaded(client, "a.csv", csv_bytes(bad)), "import")
    html = finished(client, job_id)
    assert count(html, "failed") == 2
    assert "客户名称: 必填" in html
    text = client.get(f"/e/account/import/jobs/{job_id}/errors").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert [r[:2] for r in rows[1:]] == [["", "北京"], ["乙公司", "上海"]]
    assert rows[1][-1] == "客户名称: 必填"
    assert rows[2][-1] == "员工人数 '很多'：必须是整数"  # noqa: RUF001 (the Chinese colon)
    assert "required" not in text and "must be" not in text
    job = import_jobs.get_job(env.records, SYSTEM, job_id)
    assert job.language == "zh-CN"


def test_the_error_file_of_an_english_user_is_in_english(env: Env, tmp_path: Path) -> None:
    client = browser(env, tmp_path / "files")
    job_id = submit(client, uploaded(client, "a.csv", csv_bytes([["", "北京", "", "", ""]])),
                    "import")
    finished(client, job_id)
    text = client.get(f"/e/account/import/jobs/{job_id}/errors").content.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text)))[1][-1] == "客户名称: is required"


def test_error_file_of_an_xlsx_is_xlsx(env: Env, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADERS)
    sheet.append(["", "成都", "", "", ""])
    data = io.BytesIO()
    book.save(data)
    client = browser(env, tmp_path / "files")
    job_id = submit(client, uploaded(client, "c.xlsx", data.getvalue()), "import")
    finished(client, job_id)
    sent = client.get(f"/e/account/import/jobs/{job_id}/errors")
    assert sent.status_code == 200
    rows = list(load_workbook(io.BytesIO(sent.content)).active.iter_rows(values_only=True))
    assert rows[1][1] == "成都"


def test_a_saved_mapping_maps_the_next_file_with_these_headers(env: Env, tmp_path: Path
                                                               ) -> None:
    client = browser(env, tmp_path / "files")
    headers = ["客户名称", "所在地"]  # 所在地 names no field: the user maps it to the city
    first = uploaded(client, "a.csv", csv_bytes([["甲公司", "杭州"]], headers))
    assert form_of(client.get(first).text)["col1"] == ""
    job_id = submit(client, first, "import", col1="city", save_as="老系统导出")
    finished(client, job_id)
    second = uploaded(client, "b.csv", csv_bytes([["乙公司", "苏州"]], headers))
    page = client.get(second)
    assert form_of(page.text)["col1"] == "city"
    assert "as you saved them" in page.text
    finished(client, submit(client, second, "import"))
    t = env.records.compiled("account").table
    with env.engine.connect() as conn:
        assert conn.execute(select(t.c.city).where(t.c.name == "乙公司")).scalar_one() == "苏州"


def test_a_fixed_error_file_imports_again(env: Env, tmp_path: Path) -> None:
    """The error file of an error file: the job page shows it whatever its columns."""
    client = browser(env, tmp_path / "files")
    job_id = submit(client, uploaded(client, "a.csv", csv_bytes([["", "北京", "", "", ""]])),
                    "import")
    finished(client, job_id)
    errors = client.get(f"/e/account/import/jobs/{job_id}/errors").content
    again = submit(client, uploaded(client, "a-errors.csv", errors), "import")
    html = finished(client, again)
    assert 'data-status="done"' in html and count(html, "failed") == 1

"""Exports over HTTP (engine/web/exports.py): `GET /api/<entity>?format=csv|xlsx` and
`GET /api/reports/<name>?format=...` on both databases, with hostile cell values, the
export scope of the caller's roles, their field masks, and refused input."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import load_workbook
from starlette.testclient import TestClient

from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.test_reports import deals
from tests.web_helpers import sign_in

HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2", "@SUM(A1)"]
"""Records trim the blanks around a name: a leading tab or CR is tested on the writer itself
(tests/test_export.py)."""


def browser(env: Env, name: str = "admin", password: str = "admin-password") -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the UTF-8 right
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def read_xlsx(body: bytes) -> list[tuple[Any, ...]]:
    book = load_workbook(io.BytesIO(body), read_only=True)
    return [tuple(r) for r in book.active.iter_rows(values_only=True)]


def test_a_list_as_csv_and_xlsx_neutralises_hostile_cells(env: Env, api: TestClient) -> None:
    for i, name in enumerate(HOSTILE):
        place(env, "account", {"name": name, "annual_revenue": str(1000 * (i + 1))})
    place(env, "account", {"name": "上海客户"})
    got = api.get("/api/account?format=csv&sort=id")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"] == 'attachment; filename="account.csv"'
    rows = read_csv(got.content)
    assert rows[0][:2] == ["ID", "Account name"]
    names = [r[1] for r in rows[1:]]
    assert names == ["'" + h for h in HOSTILE] + ["上海客户"]
    xlsx = api.get("/api/account?format=xlsx&sort=id")
    assert xlsx.status_code == 200
    assert xlsx.headers["content-disposition"] == 'attachment; filename="account.xlsx"'
    sheet = read_xlsx(xlsx.content)
    col = sheet[0].index(env.model.entity("account").field("name").label.get("en"))
    assert [r[col] for r in sheet[1:]] == ["'" + h for h in HOSTILE] + ["上海客户"]


def test_a_reps_export_holds_their_rows_and_refusals(env: Env) -> None:
    sh = departments(env)["SH"]
    a = user(env, "rep_a", "sales_rep", department=sh)
    b = user(env, "rep_b", "sales_rep", department=sh)
    place(env, "account", {"name": "Mine"}, owner=a, department=sh)
    place(env, "account", {"name": "Theirs"}, owner=b, department=sh)
    rep = env.client(env.users.new_token("rep_a"))
    assert rep.get("/api/account").json()["total"] == 2  # reads the department's
    rows = read_csv(rep.get("/api/account?format=csv").content)
    assert [r[1] for r in rows[1:]] == ["Mine"]  # exports their own
    filtered = read_xlsx(rep.get("/api/account?format=xlsx&name=Theirs").content)
    assert filtered[1:] == []
    mkt = env.client(env.users.new_token(user(env, "mkt", "marketing").name))
    body = mkt.get("/api/account?format=csv").content.decode("utf-8-sig")
    assert "Credit limit" not in body and "Bank" not in body and "Mine" in body
    refused = mkt.get("/api/opportunity?format=xlsx")  # reads them, may not export them
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert mkt.get("/api/account?format=csv&credit_limit=1").status_code == 400  # hidden
    bad = rep.get("/api/account?format=pdf")
    assert bad.status_code == 400 and "pdf" in bad.json()["error"]["message"]
    assert bad.json()["error"]["fields"] == {"format": "unknown format 'pdf'"}
    assert rep.get("/api/account?format=csv&format=xlsx").status_code == 400
    assert env.client().get("/api/account?format=csv").status_code == 401


def test_a_report_exports_its_rows_subtotals_and_total_marked(env: Env,
                                                               api: TestClient) -> None:
    deals(env)
    got = api.get("/api/reports/pipeline_by_owner?format=xlsx")
    assert got.status_code == 200
    assert got.headers["content-disposition"] == \
        'attachment; filename="pipeline_by_owner.xlsx"'
    assert read_xlsx(got.content) == [
        ("Row", "Owner", "Stage", "Opportunities", "Amount", "Weighted amount"),
        ("Group", "rep_a", "Prospecting", 1, 1000, 100),
        ("Group", "rep_a", "Proposal", 1, 2000, 1000),
        ("Subtotal", "rep_a", None, 2, 3000, 1100),
        ("Group", "rep_b", "Proposal", 1, 3000, 1500),
        ("Subtotal", "rep_b", None, 1, 3000, 1500),
        ("Total", None, None, 3, 6000, 2600)]
    zh = api.get("/api/reports/pipeline_by_owner?format=csv",
                 headers={"Accept-Language": "zh-CN"})
    rows = read_csv(zh.content)
    assert rows[0] == ["行", "负责人", "阶段", "商机数", "金额", "加权金额"]
    assert rows[-1] == ["合计", "", "", "3", "6000.00", "2600.00"]
    assert api.get("/api/reports/pipeline_by_owner?format=x").status_code == 400


def test_a_reps_report_export_is_their_rows_and_marketing_is_refused(env: Env) -> None:
    deals(env)
    rep = env.client(env.users.new_token("rep_a"))
    rows = read_csv(rep.get("/api/reports/pipeline_by_owner?format=csv").content)
    assert rows[-1][:4] == ["Total", "", "", "2"]  # not rep_b's deals
    mkt = env.client(env.users.new_token(user(env, "mkt", "marketing").name))
    refused = mkt.get("/api/reports/sales_funnel?format=xlsx")
    assert refused.status_code == 403 and "amount" not in refused.text


def test_the_list_and_report_pages_link_their_exports(env: Env) -> None:
    sh = departments(env)["SH"]
    a = user(env, "rep_a", "sales_rep", department=sh)
    place(env, "account", {"name": "Mine =x"}, owner=a, department=sh)
    place(env, "account", {"name": "Other"}, owner=a, department=sh)
    client = browser(env, "rep_a", "a-password")
    page = client.get("/e/account?name__contains=Mine&sort=-name&page=1")
    assert page.status_code == 200
    link = "/e/account/export?name__contains=Mine&amp;sort=-name&amp;format=xlsx"
    assert link in page.text and "Export:" in page.text
    got = client.get(link.replace("&amp;", "&"))
    assert got.status_code == 200
    assert got.headers["content-disposition"] == 'attachment; filename="account.xlsx"'
    assert [r[1] for r in read_xlsx(got.content)[1:]] == ["Mine =x"]
    assert client.get("/e/account/export?format=doc").status_code == 400
    report = client.get("/reports/pipeline_by_owner")
    assert '/reports/pipeline_by_owner/export?format=csv' in report.text
    rows = read_csv(client.get("/reports/pipeline_by_owner/export?format=csv").content)
    assert rows[0][0] == "Row" and rows[-1][0] == "Total"
    mkt = user(env, "mkt", "marketing")
    marketing = browser(env, mkt.name, "a-password")
    opportunities = marketing.get("/e/opportunity")
    assert opportunities.status_code == 200 and "/e/opportunity/export" not in opportunities.text
    assert marketing.get("/e/opportunity/export?format=csv").status_code == 403
    assert env.client().get("/e/account/export?format=csv",
                            follow_redirects=False).status_code in (302, 303, 401)

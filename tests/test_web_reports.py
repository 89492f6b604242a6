"""Reports over HTTP (engine/web/reports.py, engine/web/pages/reports.py): the JSON API's
shape, the caller's access, and the report page in English and Chinese."""

from __future__ import annotations

import re
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.access_helpers import user
from tests.conftest import Env
from tests.test_metadata_reports import SHIPPED
from tests.test_reports import deals
from tests.web_helpers import sign_in


def browser(env: Env, name: str = "admin", password: str = "admin-password") -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def test_the_api_lists_the_reports_the_caller_may_run(env: Env, api: TestClient) -> None:
    names = [r["report"] for r in api.get("/api/reports").json()["items"]]
    assert names == SHIPPED
    user(env, "mkt", "marketing")  # opportunity.amount is hidden; no service requests
    mkt = env.client(env.users.new_token("mkt"))
    assert [r["report"] for r in mkt.get("/api/reports").json()["items"]] == [
        "activities_by_owner", "competitor_by_product_line", "expenses_vs_budget",
        "lead_conversion", "stage_plan_gantt"]  # none of them reads a deal's amount
    assert api.get("/api/reports", headers={"Authorization": ""}).status_code == 401


def test_a_report_as_json(env: Env, api: TestClient) -> None:
    a, b = deals(env)
    body = api.get("/api/reports/pipeline_by_owner").json()
    assert body["report"] == "pipeline_by_owner"
    assert body["label"] == {"en": "Pipeline by owner", "zh": "按负责人统计的销售管道"}
    assert [(c["key"], c["kind"]) for c in body["columns"]] == [
        ("owner", "group"), ("stage", "group"), ("deals", "aggregate"),
        ("amount", "aggregate"), ("weighted", "aggregate")]
    assert [(r["kind"], r["level"], r["values"]["owner"], r["values"]["stage"],
             r["values"]["deals"], r["values"]["amount"]) for r in body["rows"]] == [
        ("group", 2, a.id, "prospecting", 1, "1000.00"),
        ("group", 2, a.id, "proposal", 1, "2000.00"),
        ("subtotal", 1, a.id, None, 2, "3000.00"),
        ("group", 2, b.id, "proposal", 1, "3000.00"),
        ("subtotal", 1, b.id, None, 1, "3000.00"),
    ]
    assert body["rows"][0]["names"] == {"owner": "rep_a"}
    assert body["totals"] == {"kind": "total", "level": 0, "names": {}, "values": {
        "owner": None, "stage": None, "deals": 3, "amount": "6000.00",
        "weighted": "2600.00"}}
    assert body["truncated"] is False


def test_a_reps_report_counts_their_deals_and_hidden_fields_are_refused(env: Env) -> None:
    deals(env)
    rep = env.client(env.users.new_token("rep_a"))
    assert rep.get("/api/reports/sales_funnel").json()["totals"]["values"]["deals"] == 3
    user(env, "mkt", "marketing")
    mkt = env.client(env.users.new_token("mkt"))
    refused = mkt.get("/api/reports/sales_funnel")
    assert refused.status_code == 403
    assert "amount" not in refused.text and "weighted" not in refused.text
    assert refused.json()["error"]["code"] == "forbidden"
    missing = rep.get("/api/reports/no_such_report")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_report_page_in_english_and_chinese(env: Env) -> None:
    deals(env)
    client = browser(env)
    index = client.get("/reports")
    assert index.status_code == 200
    assert '<a href="/reports/sales_funnel">Sales funnel</a>' in index.text
    assert 'href="/reports"' in client.get("/").text  # in the nav
    page = client.get("/reports/pipeline_by_owner")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Pipeline by owner</h1>" in html
    assert html.count('class="report-group"') == 3
    assert html.count('class="report-subtotal"') == 2
    assert "Subtotal: rep_a" in html and "Prospecting" in html
    total = re.search(r'<tr class="report-total">.*?</tr>', html, re.S)
    assert total is not None
    assert "Total" in total.group(0) and "¥6,000.00" in total.group(0)
    env.users.set_locale(env.admin.id, "zh-CN")
    zh = client.get("/reports/pipeline_by_owner").text
    assert "<h1>按负责人统计的销售管道</h1>" in zh
    assert "小计\uff1arep_a" in zh and "潜在" in zh and "合计" in zh
    assert "全部报表" in zh


def test_a_report_page_the_viewer_may_not_run(env: Env) -> None:
    deals(env)
    user(env, "mkt", "marketing")
    client = browser(env, "mkt", "a-password")
    refused = client.get("/reports/sales_funnel")
    assert refused.status_code == 403
    assert "amount" not in refused.text.lower().split("<main")[-1]
    assert client.get("/reports/nothing_here").status_code == 404
    assert "/reports/sales_funnel" not in client.get("/reports").text


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.text(min_size=1, max_size=40))
def test_any_report_name_is_a_report_or_a_404(api: TestClient, name: str) -> None:
    answer = api.get("/api/reports/" + quote(name, safe=""))
    assert answer.status_code in (200, 404), (name, answer.text)
    if answer.status_code == 404:
        assert answer.json()["error"]["code"] == "not_found"

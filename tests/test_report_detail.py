"""Detail reports (`columns:`, engine/runtime/reports/detail.py) and aggregates over a
formula: loaded and checked at file:line:col, run as one statement within the viewer's
access, and shown by the JSON API, the page and the export."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import event

from engine.runtime.errors import Forbidden
from engine.runtime.reports import may_run, run_report
from tests.access_helpers import user
from tests.conftest import Env
from tests.test_metadata_reports import report_errors
from tests.test_reports import adhoc, deals
from tests.test_web_reports import browser

DETAIL = """\
report: adhoc
entity: opportunity
filter: 'stage <> "lost"'
columns:
  - name
  - account.name
  - owner
  - stage
  - amount
  - {name: expected, formula: 'amount * probability / 100', label: {en: Expected, zh: 预期}}
aggregates:
  - {name: amount, agg: sum, field: amount}
  - {name: deals, agg: count}
sort: [-amount]
"""


def D(text: str) -> Decimal:
    return Decimal(text)


def test_a_detail_report_is_a_row_per_record_with_totals_over_all_rows(env: Env) -> None:
    a, b = deals(env)
    report = adhoc(env, DETAIL)
    result = run_report(env.records, env.admin.actor(), report)
    assert [r.keys for r in result.rows] == [
        ("rep_b 4000", "Acme", b.id, "won", D("4000.00"), D("4000.00")),
        ("rep_b 3000", "Acme", b.id, "proposal", D("3000.00"), D("1500.00")),
        ("rep_a 2000", "Acme", a.id, "proposal", D("2000.00"), D("1000.00")),
        ("rep_a 1000", "Acme", a.id, "prospecting", D("1000.00"), D("100.00")),
    ]
    assert [r.names[2] for r in result.rows] == ["rep_b", "rep_b", "rep_a", "rep_a"]
    assert {r.level for r in result.rows} == {1}
    assert result.totals.level == 0
    assert result.totals.values == {"amount": D("10000.00"), "deals": 4}
    # the total under the amount column takes the column's label
    assert report.aggregates[0].label == report.columns[4].label
    assert not result.truncated
    # past its limit: the first rows, the totals still over all of them
    limited = adhoc(env, DETAIL.replace("sort: [-amount]", "sort: [stage, name]\nlimit: 2"))
    cut = run_report(env.records, env.admin.actor(), limited)
    assert cut.truncated and [r.keys[0] for r in cut.rows] == ["rep_a 1000", "rep_a 2000"]
    assert cut.totals.values == {"amount": D("10000.00"), "deals": 4}


def test_a_detail_report_is_one_statement_within_the_viewers_rows(env: Env) -> None:
    a, _b = deals(env)
    report = adhoc(env, DETAIL)
    seen: list[str] = []

    def hook(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(env.engine, "before_cursor_execute", hook)
    try:
        mine = run_report(env.records, a, report)
    finally:
        event.remove(env.engine, "before_cursor_execute", hook)
    assert len(seen) == 1
    assert [r.keys[0] for r in mine.rows] == ["rep_a 2000", "rep_a 1000"]
    assert mine.totals.values == {"amount": D("3000.00"), "deals": 2}


def test_no_rows_and_no_aggregates(env: Env) -> None:
    report = adhoc(env, "report: adhoc\nentity: opportunity\ncolumns: [name, close_date]\n")
    result = run_report(env.records, env.admin.actor(), report)
    assert result.rows == () and result.totals.values == {} and not result.truncated
    totals = adhoc(env, DETAIL)
    assert run_report(env.records, env.admin.actor(), totals).totals.values == {
        "amount": None, "deals": 0}


def test_a_column_hidden_from_the_viewer_refuses_the_report(env: Env) -> None:
    deals(env)
    marketer = user(env, "mkt", "marketing")  # opportunity.amount is hidden from marketing
    report = adhoc(env, "report: adhoc\nentity: opportunity\n"
                        "columns: [name, {name: x, formula: 'amount * 2'}]\n")
    assert not may_run(env.records, marketer, report)
    with pytest.raises(Forbidden) as refused:
        run_report(env.records, marketer, report)
    assert "amount" not in refused.value.message


def test_an_aggregate_over_a_formula(env: Env) -> None:
    deals(env)
    report = adhoc(env, """\
report: adhoc
entity: opportunity
groups: [stage]
aggregates:
  - {name: expected, agg: sum, formula: 'amount * probability / 100'}
  - {name: biggest_half, agg: max, formula: 'amount / 2'}
  - {name: open_share, agg: avg, formula: 'IF(stage = "lost", 0, 100)'}
""")
    result = run_report(env.records, env.admin.actor(), report)
    assert [(r.keys[0], *r.values.values()) for r in (*result.rows, result.totals)] == [
        ("prospecting", D("100.00"), D("500.00"), D("100.0000")),
        ("proposal", D("2500.00"), D("1500.00"), D("100.0000")),
        ("won", D("4000.00"), D("2000.00"), D("100.0000")),
        ("lost", D("0.00"), D("750.00"), D("0.0000")),
        (None, D("6600.00"), D("2000.00"), D("57.1429")),
    ]


@pytest.mark.parametrize(("text", "expected"), [
    (DETAIL.replace("  - owner\n", "  - ownr\n"),
     "adhoc.yaml:7:5: columns.2: no field 'ownr' of opportunity (did you mean 'owner'?)"),
    (DETAIL.replace("'amount * probability / 100'", "'amount *'"),
     "adhoc.yaml:10:31: formula 1:9:"),
    (DETAIL.replace("  - stage\n", "  - name\n"),
     "columns.3: 'name' is already a column of this report"),
    (DETAIL.replace("sort: [-amount]", "sort: [-amont]"),
     "sort.0: 'amont' is not a column of this report (did you mean 'amount'?)"),
    (DETAIL + "groups: [stage]\n", "groups: a detail report (columns) has no groups"),
    ("report: adhoc\nentity: opportunity\n", "a report needs aggregates (of groups) or "
                                             "columns"),
    (DETAIL.replace("{name: deals, agg: count}", "{name: deals, agg: sum, formula: 'name'}"),
     "aggregates.1.formula: sum needs a number; the formula gives text"),
    (DETAIL.replace("{name: deals, agg: count}",
                    "{name: deals, agg: sum, formula: 'ISCHANGED(amount)'}"),
     "aggregates.1.formula: the database cannot compute this"),
    (DETAIL.replace("{name: deals, agg: count}",
                    "{name: deals, agg: sum, field: amount, formula: 'amount'}"),
     "adhoc.yaml:13:53: aggregates.1.formula: an aggregate reads a field or a formula, "
     "not both"),
])
def test_a_bad_detail_report_is_refused_at_its_place(config_dir: Path, text: str,
                                                     expected: str) -> None:
    errors = report_errors(config_dir, text, "adhoc.yaml")
    assert any(expected in e for e in errors), errors


def detail_config(config_dir: Path, env_factory: Any) -> Env:
    (config_dir / "reports" / "adhoc.yaml").write_text(
        DETAIL.replace("report: adhoc", "report: adhoc\nlabel: {en: Deal list, zh: 商机清单}"),
        encoding="utf-8")
    env: Env = env_factory(config_dir)
    return env


def test_a_detail_report_over_http(config_dir: Path, make_env: Any) -> None:
    env = detail_config(config_dir, make_env)
    deals(env)
    api = env.client(env.users.new_token("admin"))
    body = api.get("/api/reports/adhoc").json()
    assert [(c["key"], c["kind"]) for c in body["columns"]] == [
        ("name", "column"), ("account.name", "column"), ("owner", "column"),
        ("stage", "column"), ("amount", "column"), ("expected", "column"),
        ("amount", "aggregate"), ("deals", "aggregate")]
    assert body["columns"][5]["formula"] == "amount * probability / 100"
    assert body["rows"][0] == {"kind": "detail", "level": 1, "names": {"owner": "rep_b"},
                               "values": {"name": "rep_b 4000", "account.name": "Acme",
                                          "owner": body["rows"][0]["values"]["owner"],
                                          "stage": "won", "amount": "4000.00",
                                          "expected": "4000.00"}}
    assert body["totals"]["kind"] == "total"
    assert body["totals"]["values"]["amount"] == "10000.00"
    assert body["totals"]["values"]["deals"] == 4
    rep = env.client(env.users.new_token("rep_a"))
    assert [r["values"]["name"] for r in rep.get("/api/reports/adhoc").json()["rows"]] == [
        "rep_a 2000", "rep_a 1000"]

    exported = api.get("/api/reports/adhoc?format=csv")
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0] == ["Row", "Name", "Account name", "Owner", "Stage", "Amount", "Expected",
                       "Deals"]  # the amount total under its column, the count after
    assert rows[1][:6] == ["Record", "rep_b 4000", "Acme", "rep_b", "Won", "4000.00"]
    assert rows[-1][0] == "Total" and "10000.00" in rows[-1] and "4" in rows[-1]
    assert len(rows) == 1 + 4 + 1

    page = browser(env).get("/reports/adhoc")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Deal list</h1>" in html
    assert html.count('<tr class="report-detail">') == 4
    total = re.search(r'<tr class="report-total">.*?</tr>', html, re.S)
    assert total is not None and "¥10,000.00" in total.group(0) and "Total" in total.group(0)
    assert "rep_b" in html and "Won" in html
    env.users.set_locale(env.admin.id, "zh-CN")
    zh = browser(env).get("/reports/adhoc").text
    assert "<h1>商机清单</h1>" in zh and "预期" in zh and "赢单" in zh


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(limit=st.integers(min_value=1, max_value=9), descending=st.booleans(),
       key=st.sampled_from(["amount", "name", "stage"]))
def test_any_sort_and_limit_is_the_records_in_that_order(env: Env, limit: int,
                                                         descending: bool, key: str) -> None:
    """The first `limit` rows in the order of `key`, the totals over all of them."""
    columns = "columns: [name, stage, amount]\n"
    everything = adhoc(env, f"report: adhoc\nentity: opportunity\n{columns}")
    if not run_report(env.records, env.admin.actor(), everything).rows:
        deals(env)  # once per test: the examples share the database
    rows = [r.keys for r in run_report(env.records, env.admin.actor(), everything).rows]
    stages = list(env.model.entity("opportunity").field("stage").options)

    def order(keys: tuple[Any, ...]) -> Any:
        return {"name": keys[0], "stage": stages.index(keys[1]), "amount": keys[2]}[key]

    report = adhoc(env, f"report: adhoc\nentity: opportunity\n{columns}"
                        "aggregates: [{name: amount, agg: sum, field: amount}]\n"
                        f"sort: [{'-' if descending else ''}{key}]\nlimit: {limit}\n")
    result = run_report(env.records, env.admin.actor(), report)
    ranked = sorted(rows, key=order, reverse=descending)
    assert [order(k) for k in (r.keys for r in result.rows)] == [
        order(k) for k in ranked[:limit]]  # ties (a stage, an amount) in either order
    assert result.truncated == (len(rows) > limit)
    assert result.totals.values == {"amount": D("12700.00")}


def test_a_detail_report_to_excel_has_typed_cells(config_dir: Path, make_env: Any) -> None:
    env = detail_config(config_dir, make_env)
    deals(env)
    api = env.client(env.users.new_token("admin"))
    answer = api.get("/api/reports/adhoc?format=xlsx")
    assert answer.status_code == 200
    sheet = load_workbook(io.BytesIO(answer.content), read_only=True).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("Row", "Name")
    assert rows[1][:6] == ("Record", "rep_b 4000", "Acme", "rep_b", "Won", 4000)
    assert rows[-1][0] == "Total" and rows[-1][5] == 10000 and rows[-1][7] == 4

"""Drill-down (engine/runtime/reports/drill.py): every group row, subtotal, total and cell of
a report page links to the list of its records, and the list shows exactly the rows the
aggregate counted — with the report's filter, its parameters and bucketed keys, within the
viewer's access, on both databases. And the report page's parameters form, and the
administrator's SQL page."""

from __future__ import annotations

import html
import re
from datetime import date
from typing import Any
from urllib.parse import urlencode

from starlette.testclient import TestClient

from engine.runtime.reports import run_report
from engine.runtime.reports.drill import drill_query, key_formula
from engine.runtime.reports.params import resolve
from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.test_reports import adhoc, deals
from tests.test_web_reports import browser

_ROW = re.compile(r'<tr class="report-(group|subtotal|total)"[^>]*>(.*?)</tr>', re.S)
_LINK = re.compile(r'<a class="drill" href="([^"]+)">(.*?)</a>', re.S)


def listed(client: TestClient, href: str) -> int:
    """How many records the list at `href` shows (all on one page), checked against the
    count it states."""
    page = client.get(href + "&page_size=200" if "?" in href else href + "?page_size=200")
    assert page.status_code == 200, (href, page.text[-2000:])
    stated = re.search(r"Records: (\d+)", page.text)
    assert stated is not None, page.text[-2000:]
    body = page.text.split("<tbody", 1)[1].split("</tbody>", 1)[0]
    rows = body.count('<tr>\n        <td')  # a record's row (rows_html); not the "none" row
    assert rows == int(stated.group(1))
    return rows


def drilled(client: TestClient, path: str) -> list[tuple[str, str, int]]:
    """(row kind, the cell's text, how many records its link lists) for every drill link of
    the report page at `path`."""
    page = client.get(path)
    assert page.status_code == 200, page.text[-2000:]
    out = []
    for kind, cells in _ROW.findall(page.text):
        for href, text in _LINK.findall(cells):
            shown = re.sub(r"<[^>]+>", "", text).strip()
            out.append((kind, shown, listed(client, html.unescape(href))))
    return out


def dated(env: Env) -> dict[str, int]:
    """Opportunities of two reps across months and quarters, in two branches."""
    ids = departments(env)
    a = user(env, "rep_a", "sales_rep", department=ids["SH"])
    b = user(env, "rep_b", "sales_rep", department=ids["BJ"])
    account = place(env, "account", {"name": "Acme \"Quoted\" Ltd"})["id"]
    for owner, day, stage, amount in [
            (a, "2026-01-05", "proposal", "100"), (a, "2026-03-31", "won", "200"),
            (b, "2026-04-01", "proposal", "300"), (b, "2026-04-30", "won", "400"),
            (a, "2025-12-31", "prospecting", "50"), (b, None, "proposal", "70")]:
        data: dict[str, Any] = {"name": f"{owner.name} {day}", "account": account,
                                "amount": amount, "stage": stage}
        if day:
            data["close_date"] = day
        place(env, "opportunity", data, owner=owner,
              department=ids["SH"] if owner is a else ids["BJ"])
    return ids


def test_every_row_and_cell_drills_to_the_records_it_counts(env: Env) -> None:
    deals(env)
    client = browser(env)
    found = drilled(client, "/reports/pipeline_by_owner")
    # per row: the group cell, then deals, amount, weighted (all the row's records)
    counts = [n for kind, text, n in found]
    assert counts == [1] * 4 + [1] * 4 + [2] * 4 + [1] * 4 + [1] * 4 + [3] * 3
    assert [text for kind, text, _n in found if kind != "total"][::4] == [
        "Prospecting", "Proposal", "Subtotal: rep_a", "Proposal", "Subtotal: rep_b"]
    # the funnel's count cells against the count they drill to
    for kind, text, n in drilled(client, "/reports/sales_funnel"):
        if text.isdigit():
            assert int(text) == n, (kind, text)


def test_a_drilled_group_of_a_rep_stays_within_their_records(env: Env) -> None:
    deals(env)
    client = browser(env, "rep_a", "a-password")
    found = drilled(client, "/reports/sales_funnel")
    numbers = [(kind, int(text), n) for kind, text, n in found if text.isdigit()]
    assert numbers and all(shown == n for _kind, shown, n in numbers)
    assert numbers[-1] == ("total", 3, 3)


def test_parameters_and_bucketed_keys_drill_too(env: Env) -> None:
    ids = dated(env)
    client = browser(env)
    for bucket in ("day", "week", "month", "quarter", "year"):
        report = adhoc(env, f"""\
report: adhoc
entity: opportunity
filter: 'amount >= 60'
groups: [{{field: close_date, bucket: {bucket}}}, owner, account]
aggregates:
  - {{name: n, agg: count}}
  - {{name: won, agg: count, where: 'stage = "won"'}}
  - {{name: dated, agg: count, field: close_date}}
parameters:
  - {{name: period, kind: period, field: close_date, default: all}}
  - {{name: department, kind: department}}
""")
        for given in ({}, {"period": "this_year", "department": str(ids["EAST"])}):
            values = resolve(env.records, env.admin.actor(), report, given,
                             today=date(2026, 5, 1))
            result = run_report(env.records, env.admin.actor(), report, values=values)
            assert result.rows
            for row in (*result.rows, result.totals):
                query = drill_query(report, values, row, 1)
                assert query is not None, row
                assert listed(client, "/e/opportunity?" + urlencode(query)) == \
                    row.values["n"], (bucket, given, row)
                for agg in report.aggregates[1:]:
                    cell = drill_query(report, values, row, 1, agg)
                    assert cell is not None
                    assert listed(client, "/e/opportunity?" + urlencode(cell)) == \
                        row.values[agg.name], (bucket, agg.name, row)


def test_keys_as_formulas() -> None:
    from tests.conftest import shipped_model

    model = shipped_model()
    report = next(r for r in model.reports if r.name == "lost_reasons")
    group = report.groups[0]
    assert key_formula(group, 'say "hi" \\ bye', 1) == 'lost_reason = "say \\"hi\\" \\\\ bye"'
    assert key_formula(group, None, 1) == "ISBLANK(lost_reason)"


def test_the_parameters_form_shows_the_values_in_use(env: Env) -> None:
    dated(env)
    client = browser(env)
    page = client.get("/reports/sales_funnel?period=custom&period_from=2026-01-01"
                      "&period_to=2026-03-31&owner=me")
    assert page.status_code == 200
    form = page.text.split('<form id="report-parameters"', 1)[1].split("</form>", 1)[0]
    assert '<option value="custom" selected>Custom range</option>' in form
    assert '<option value="this_quarter">This quarter</option>' in form
    assert 'name="period_from" value="2026-01-01"' in form
    assert '<option value="me" selected>Me</option>' in form
    assert "Shanghai branch" in form  # the departments the viewer may read
    # the export links and the drill links carry the values
    assert "export?format=csv&amp;period=custom&amp;period_from=2026-01-01" in page.text
    assert "close_date+%3E%3D+DATE%282026%2C+1%2C+1%29" in page.text
    env.users.set_locale(env.admin.id, "zh-CN")
    zh = client.get("/reports/sales_funnel").text
    assert "本季度" in zh and "自定义" in zh and "运行报表" in zh


def test_a_bad_parameter_is_the_form_again_with_422(env: Env) -> None:
    client = browser(env)
    page = client.get("/reports/sales_funnel?period=soon")
    assert page.status_code == 422
    assert 'role="alert"' in page.text and "this_quarter" in page.text
    assert '<table class="report"' in page.text  # over the defaults


def test_only_administrators_see_the_sql(env: Env) -> None:
    deals(env)
    admin = browser(env)
    assert 'href="/reports/sales_funnel/sql' in admin.get("/reports/sales_funnel").text
    sql = admin.get("/reports/sales_funnel/sql?period=this_year")
    assert sql.status_code == 200
    assert "close_date" in sql.text and 'id="report-plan"' in sql.text
    rep = browser(env, "rep_a", "a-password")
    assert "/sql" not in rep.get("/reports/sales_funnel").text
    refused = rep.get("/reports/sales_funnel/sql")
    assert refused.status_code == 403 and "close_date" not in refused.text

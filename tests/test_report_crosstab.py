"""Cross-tabs (engine/runtime/reports/crosstab.py): the values of one field as columns, each
aggregate per column value by conditional aggregates in the one statement, beside the
total — checked against hand-computed answers on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from starlette.testclient import TestClient

from engine.metadata.errors import ConfigError
from engine.metadata.reports import build_report
from engine.metadata.yamlio import parse_yaml
from engine.runtime.errors import Forbidden
from engine.runtime.reports import may_run, run_report
from engine.runtime.reports.compiler import ReportResult
from engine.runtime.reports.crosstab import MAX_COLUMNS, CrossTabTooWide
from engine.runtime.reports.exported import report_export
from tests.access_helpers import place, user
from tests.conftest import Env, EnvFactory
from tests.test_reports import D, adhoc, deals
from tests.test_web_reports import browser

BY_OWNER_ACROSS_STAGE = """
report: adhoc
entity: opportunity
groups: [{field: owner, label: {en: Owner, zh: 负责人}}]
across: stage
aggregates:
  - {name: deals, agg: count}
  - {name: amount, agg: sum, field: amount}
"""


def cells(result: ReportResult) -> list[tuple[Any, ...]]:
    """(level, keys..., per column (deals, amount)..., totals...) per row, totals last."""
    return [(r.level, *r.keys, *(tuple(c.values()) for c in r.across), *r.values.values())
            for r in (*result.rows, result.totals)]


def test_a_choice_field_across_gives_its_options_in_order(env: Env) -> None:
    a, b = deals(env)
    result = run_report(env.records, env.admin.actor(), adhoc(env, BY_OWNER_ACROSS_STAGE))
    assert [c.value for c in result.across_values] == [
        "prospecting", "qualification", "proposal", "negotiation", "won", "lost"]
    none = (0, None)
    assert cells(result) == [
        (1, a.id, (1, D("1000.00")), none, (1, D("2000.00")), none, none, (1, D("500.00")),
         3, D("3500.00")),
        (1, b.id, none, none, (1, D("3000.00")), none, (1, D("4000.00")),
         (2, D("2200.00")), 4, D("9200.00")),
        (0, None, (1, D("1000.00")), none, (2, D("5000.00")), none, (1, D("4000.00")),
         (3, D("2700.00")), 7, D("12700.00")),
    ]


def test_a_sales_rep_sees_their_own_deals_in_the_cross_tab(env: Env) -> None:
    a, _b = deals(env)
    result = run_report(env.records, a, adhoc(env, BY_OWNER_ACROSS_STAGE))
    assert cells(result)[-1] == (0, None, (1, D("1000.00")), (0, None), (1, D("2000.00")),
                                 (0, None), (0, None), (1, D("500.00")), 3, D("3500.00"))


def test_linked_records_across_are_read_first_and_shown_by_name(env: Env) -> None:
    a, b = deals(env)
    report = adhoc(env, """
report: adhoc
entity: opportunity
groups: [stage]
across: {field: owner}
aggregates:
  - {name: amount, agg: sum, field: amount}
  - {name: share, computed: 'amount * 100 / 12700'}
""")
    seen: list[str] = []

    def hook(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(env.engine, "before_cursor_execute", hook)
    try:
        result = run_report(env.records, env.admin.actor(), report)
    finally:
        event.remove(env.engine, "before_cursor_execute", hook)
    assert len(seen) == 2  # the column values, then the one statement
    assert [(c.value, c.name) for c in result.across_values] == [(a.id, "rep_a"), (b.id, "rep_b")]
    lost = next(r for r in result.rows if r.keys == ("lost",))
    assert lost.across == ({"amount": D("500.00"), "share": D("3.94")},
                           {"amount": D("2200.00"), "share": D("17.32")})
    assert lost.values == {"amount": D("2700.00"), "share": D("21.26")}


def test_a_date_bucket_across(env: Env) -> None:
    account = place(env, "account", {"name": "Acme"})["id"]
    for amount, close in [("100", "2026-01-15"), ("200", "2026-02-01"), ("400", "2026-05-30"),
                          ("800", None)]:
        data: dict[str, Any] = {"name": f"d{amount}", "account": account, "amount": amount}
        if close:
            data["close_date"] = close
        place(env, "opportunity", data)
    result = run_report(env.records, env.admin.actor(), adhoc(env, """
report: adhoc
entity: opportunity
across: {field: close_date, bucket: quarter}
aggregates: [{name: amount, agg: sum, field: amount}]
"""))
    assert [c.value for c in result.across_values] == ["2026-Q1", "2026-Q2"]
    # the blank close date counts in the total only
    assert result.totals.across == ({"amount": D("300.00")}, {"amount": D("400.00")})
    assert result.totals.values == {"amount": D("1500.00")}


def test_more_columns_than_the_bound_is_a_422_naming_it(env: Env) -> None:
    account = place(env, "account", {"name": "Acme"})["id"]
    for n in range(MAX_COLUMNS + 1):
        place(env, "opportunity", {"name": f"deal {n:02}", "account": account})
    report = adhoc(env, """
report: adhoc
entity: opportunity
across: name
aggregates: [{name: deals, agg: count}]
""")
    with pytest.raises(CrossTabTooWide) as refused:
        run_report(env.records, env.admin.actor(), report)
    assert refused.value.status == 422
    assert "name" in refused.value.message and str(MAX_COLUMNS) in refused.value.message


def test_export_has_a_column_per_value_and_aggregate(env: Env) -> None:
    deals(env)
    result = run_report(env.records, env.admin.actor(), adhoc(env, BY_OWNER_ACROSS_STAGE))
    columns, rows = report_export(result, "en")
    titles = [c.label for c in columns]
    assert titles[:4] == ["Row", "Owner", "Prospecting · Deals", "Prospecting · Amount"]
    assert titles[-4:] == ["Lost · Deals", "Lost · Amount", "Total · Deals", "Total · Amount"]
    first = rows[0]
    values = [first[c.key] for c in columns]
    assert values[1] == "rep_a"
    assert values[2:4] == [1, D("1000.00")]
    assert values[-2:] == [3, D("3500.00")]


def broken(env: Env, text: str) -> list[str]:
    doc = parse_yaml(text.encode(), "adhoc.yaml")
    assert not isinstance(doc, ConfigError)
    errors: list[ConfigError] = []
    assert build_report(doc, "adhoc", list(env.model.entities), errors) is None
    return [str(e) for e in errors]


def test_a_wrong_across_is_named_at_its_place(env: Env) -> None:
    errors = broken(env, """report: adhoc
entity: opportunity
groups: [stage]
across: stag
aggregates: [{name: deals, agg: count}]
""")
    assert errors and errors[0].startswith("adhoc.yaml:4:9") and "'stage'" in errors[0]
    errors = broken(env, """report: adhoc
entity: opportunity
groups: [stage]
across: stage
aggregates: [{name: deals, agg: count}]
""")
    assert errors and errors[0].startswith("adhoc.yaml:4:9") and "already a group" in errors[0]
    errors = broken(env, """report: adhoc
entity: opportunity
aggregates:
  - {name: deals, agg: count}
  - {name: ratio, computed: 'deals / amount'}
""")
    assert errors and errors[0].startswith("adhoc.yaml:5:") and "amount" in errors[0]
    # Not over another computed aggregate: written out in full, chains of them would grow
    # the statement past every bound.
    errors = broken(env, """report: adhoc
entity: opportunity
aggregates:
  - {name: deals, agg: count}
  - {name: amount, agg: sum, field: amount}
  - {name: average, computed: 'amount / deals'}
  - {name: doubled, computed: 'average * 2'}
""")
    assert errors and errors[0].startswith("adhoc.yaml:7:") and "average" in errors[0]


_ACCOUNTS = count()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["prospecting", "proposal", "won"]),
                          st.integers(min_value=0, max_value=5000)), max_size=6))
def test_the_columns_add_up_to_the_total(env: Env, deals_: list[tuple[str, int]]) -> None:
    report = adhoc(env, BY_OWNER_ACROSS_STAGE.replace("groups: [{field: owner, label: "
                                                      "{en: Owner, zh: 负责人}}]\n", ""))
    before = run_report(env.records, env.admin.actor(), report).totals
    account = place(env, "account", {"name": f"Acme {next(_ACCOUNTS)}"})["id"]
    for n, (stage, amount) in enumerate(deals_):
        place(env, "opportunity", {"name": f"h{n}", "account": account, "stage": stage,
                                   "amount": str(amount)})
    totals = run_report(env.records, env.admin.actor(), report).totals
    assert sum(c["deals"] for c in totals.across) == totals.values["deals"]
    assert totals.values["deals"] == before.values["deals"] + len(deals_)
    assert sum((c["amount"] or 0) for c in totals.across) == (totals.values["amount"] or 0)


def test_the_shipped_cross_tab_through_the_api_and_the_page(env: Env, api: TestClient) -> None:
    year = date.today().year
    a, b = deals(env)  # none of them closes this year
    account = place(env, "account", {"name": "Won Ltd"})["id"]
    for owner, amount, close in [(a, "100", f"{year}-02-10"), (a, "200", f"{year}-08-01"),
                                 (b, "400", f"{year}-08-30"), (b, "800", f"{year - 1}-08-30")]:
        place(env, "opportunity", {"name": f"won {amount}", "account": account,
                                   "amount": amount, "stage": "won", "close_date": close},
              owner=owner, department=a.department_id)
    body = api.get("/api/reports/won_by_quarter").json()
    assert body["across"] == {"key": "close_date", "label": {"en": "Quarter", "zh": "季度"},
                              "type": "text", "bucket": "quarter",
                              "values": [{"value": f"{year}-Q1"}, {"value": f"{year}-Q3"}]}
    assert body["totals"]["across"] == [{"deals": 1, "amount": "100.00"},
                                        {"deals": 2, "amount": "600.00"}]
    assert body["totals"]["values"]["amount"] == "700.00"
    rep_a = next(r for r in body["rows"] if r["level"] == 2 and r["values"]["owner"] == a.id)
    assert rep_a["names"]["owner"] == "rep_a"
    assert rep_a["across"] == [{"deals": 1, "amount": "100.00"},
                               {"deals": 1, "amount": "200.00"}]
    page = browser(env)
    html = page.get("/reports/won_by_quarter").text
    assert f'<th scope="colgroup" colspan="2">{year}-Q1</th>' in html
    assert '<th scope="colgroup" colspan="2">Total</th>' in html
    csv = api.get("/api/reports/won_by_quarter?format=csv").content.decode("utf-8-sig")
    assert csv.splitlines()[0] == (f"Row,Department,Owner,{year}-Q1 · Won deals,"
                                   f"{year}-Q1 · Won amount,{year}-Q3 · Won deals,"
                                   f"{year}-Q3 · Won amount,Total · Won deals,"
                                   "Total · Won amount")


def test_too_many_columns_is_a_422_through_the_api(config_dir: Path,
                                                  make_env: EnvFactory) -> None:
    (config_dir / "reports" / "deals_by_day.yaml").write_text("""report: deals_by_day
entity: opportunity
across: {field: close_date, bucket: day}
aggregates: [{name: deals, agg: count}]
""", encoding="utf-8")
    env = make_env(config_dir)
    api = env.client(env.users.new_token("admin"))
    account = place(env, "account", {"name": "Acme"})["id"]
    start = date(2026, 1, 1)
    for n in range(MAX_COLUMNS):
        place(env, "opportunity", {"name": f"d{n}", "account": account,
                                   "close_date": str(start + timedelta(days=n))})
    assert len(api.get("/api/reports/deals_by_day").json()["across"]["values"]) == MAX_COLUMNS
    place(env, "opportunity", {"name": "one more", "account": account,
                               "close_date": str(start + timedelta(days=MAX_COLUMNS))})
    answer = api.get("/api/reports/deals_by_day", headers={"Accept-Language": "zh"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "report_too_many_columns"
    assert "close_date" in error["message"] and str(MAX_COLUMNS) in error["message"]


def test_a_cross_tab_over_a_hidden_field_is_refused(env: Env) -> None:
    deals(env)
    marketer = user(env, "mkt", "marketing")  # opportunity.amount is hidden from marketing
    report = adhoc(env, """
report: adhoc
entity: opportunity
across: amount
aggregates: [{name: deals, agg: count}]
""")
    assert not may_run(env.records, marketer, report)
    with pytest.raises(Forbidden) as refused:
        run_report(env.records, marketer, report)
    assert "amount" not in refused.value.message

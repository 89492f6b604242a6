"""Dashboards per role (config/dashboards, engine/metadata/dashboards.py,
engine/web/dashboards.py, engine/web/pages/dashboards.py): load errors at their place, which
dashboard a user gets, and the home page's widgets run as the viewer on both databases."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from starlette.testclient import TestClient

from engine.metadata import load_model
from engine.metadata.dashboards import FORECAST_TREND, Dashboard, Widget
from engine.metadata.errors import ConfigErrors
from engine.metadata.labels import Label
from engine.metadata.model import Model
from engine.runtime.assembly import records_service
from engine.runtime.query_limit import QueryLimit, limited
from engine.runtime.reports import may_run
from engine.web.app import create_app
from engine.web.dashboards import TIME_LIMIT, _sees_forecast, placed_widgets, widget_view
from tests.access_helpers import departments, place, user
from tests.conftest import TEST_HASHER, Env
from tests.test_reports import adhoc, deals
from tests.test_web_limits import ACCOUNTS, EXPENSIVE
from tests.web_helpers import sign_in

SHIPPED = ["executive", "finance", "sales_manager", "sales_rep", "service_manager"]


def browser(env: Env, name: str, model: Model | None = None) -> TestClient:
    """A client signed in as `name` (made by tests.access_helpers.user), on an app of
    `model` (the env's by default)."""
    client = env.client() if model is None else TestClient(
        create_app(model, env.engine, password_hasher=TEST_HASHER),
        raise_server_exceptions=False)
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    password = "admin-password" if name == "admin" else "a-password"
    assert sign_in(client, name, password).status_code == 303
    return client


def widget_sources(page: str) -> list[str]:
    return re.findall(r'hx-get="(/dashboards/[a-z_]+/widgets/\d+)" hx-trigger="load, retry"', page)


def fragment(client: TestClient, src: str) -> str:
    answer = client.get(src, headers={"HX-Request": "true"})
    assert answer.status_code == 200, answer.text
    return answer.text


# -- the files ---------------------------------------------------------------------------


def broken_dashboard_errors(config_dir: Path, text: str) -> list[str]:
    (config_dir / "dashboards" / "broken.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_model(config_dir)
    return [str(e).removeprefix(f"{config_dir.parent}/") for e in caught.value.errors]


def test_mistakes_are_named_at_their_place(config_dir: Path) -> None:
    errors = broken_dashboard_errors(config_dir, """\
dashboard: broke
roles: [sales_rep, sales_rpe]
widgets:
  - {report: sales_funnel, show: table}
  - {report: sales_funnle, show: table}
  - {report: sales_funnel, aggregate: weigthed, show: total}
  - {report: sales_funnel, aggregate: deals, show: table}
  - {report: sales_funnel, show: table, parameters: {perod: this_quarter, owner: mine}}
""")
    assert errors == [
        "config/dashboards/broken.yaml:1:12: dashboard: 'broke' must be the file's name "
        "('broken')",
        "config/dashboards/broken.yaml:2:20: roles.1: no role 'sales_rpe' in roles.yaml "
        "(did you mean 'sales_rep'?)",
        "config/dashboards/broken.yaml:5:14: widgets.1.report: no report 'sales_funnle' in "
        "config/reports (did you mean 'sales_funnel'?)",
        "config/dashboards/broken.yaml:6:39: widgets.2.aggregate: report 'sales_funnel' has "
        "no aggregate 'weigthed' (did you mean 'weighted'?)",
        "config/dashboards/broken.yaml:7:39: widgets.3.aggregate: only a widget with "
        "show: total shows one aggregate",
        "config/dashboards/broken.yaml:8:54: widgets.4.parameters: report 'sales_funnel' has "
        "no parameter 'perod' (did you mean 'period'?)",
        "config/dashboards/broken.yaml:8:82: widgets.4.parameters.owner: 'mine' is not a "
        "value of kind owner; one of me, any (did you mean 'me'?)",
    ]


def test_the_schema_refuses_unknown_keys_and_widths(config_dir: Path) -> None:
    errors = broken_dashboard_errors(config_dir, """\
dashboard: broken
roles: [sales_rep]
widgets:
  - {report: sales_funnel, show: pie, width: 4, colour: red}
""")
    joined = "\n".join(errors)
    assert all(e.startswith("config/dashboards/broken.yaml:4:") for e in errors), errors
    assert "show" in joined and "width" in joined and "colour" in joined


def test_the_shipped_dashboards_and_who_gets_which(env: Env) -> None:
    model = env.model
    assert [d.name for d in model.dashboards] == SHIPPED  # by file name
    assert {d.name: d.roles for d in model.dashboards} == {n: (n,) for n in SHIPPED}
    for d in model.dashboards:
        assert d.label.get("zh") != d.label.get("en")
        for w in d.widgets:
            assert w.label.get("zh") != w.label.get("en"), (d.name, w.report)
    # the first, by file name, naming one of the user's roles; none for the others
    assert model.dashboard_of(("sales_rep",)).name == "sales_rep"  # type: ignore[union-attr]
    both = model.dashboard_of(("sales_rep", "sales_manager"))
    assert both is not None and both.name == "sales_manager"
    assert model.dashboard_of(("admin",)) is None
    assert model.dashboard_of(()) is None
    # every widget of a shipped dashboard runs for each role it is the home of
    for d in model.dashboards:
        for role in d.roles:
            who = user(env, f"u_{role}", role)
            for w in d.widgets:
                if w.report == FORECAST_TREND:  # not a report: the forecast trend
                    assert _sees_forecast(env.records, who), (role, w)
                    continue
                report = model.report(w.report)
                assert report is not None and may_run(env.records, who, report), (role, w)


# -- the home page -----------------------------------------------------------------------


def test_a_sales_reps_dashboard_counts_only_their_records(env: Env) -> None:
    deals(env)  # rep_a: 1000 prospecting, 2000 proposal, 500 lost; rep_b: four more
    client = browser(env, "rep_a")
    page = client.get("/").text
    sources = widget_sources(page)
    dashboard = env.model.dashboard("sales_rep")
    assert dashboard is not None
    assert sources == [f"/dashboards/sales_rep/widgets/{i}"
                       for i in range(len(dashboard.widgets))]
    assert '<a href="/reports/sales_funnel">My funnel amount</a>' in page
    assert 'id="open-opportunity"' in page  # the rest of the home page stays
    amount, weighted, count = (fragment(client, s) for s in sources[:3])
    assert "<dd>¥3,500.00</dd>" in amount
    assert "<dd>¥1,100.00</dd>" in weighted  # 10 % of 1,000 and 50 % of 2,000
    assert re.search(r"<dd>3</dd>", count)
    funnel = fragment(client, sources[3])  # the report's chart (engine/web/charts)
    assert '<figure class="chart chart-kind-funnel"' in funnel and 'role="img"' in funnel
    tips = re.findall(r"<title[^>]*>([^<]*)</title>", funnel)
    assert tips == ["Sales funnel", "Prospecting: ¥1,000.00", "Proposal: ¥2,000.00",
                    "Lost: ¥500.00"]
    assert "rep_b" not in funnel
    # the whole department's, for their manager
    user(env, "boss", "sales_manager", department=departments(env)["SH"])
    boss = browser(env, "boss")
    manager = boss.get("/").text
    assert widget_sources(manager)[0] == "/dashboards/sales_manager/widgets/0"
    assert "<dd>¥12,700.00</dd>" in fragment(boss, "/dashboards/sales_manager/widgets/0")


def test_the_dashboard_in_chinese(env: Env) -> None:
    deals(env)
    rep = env.users.by_name("rep_a")
    env.users.set_locale(rep.id, "zh-CN")
    client = browser(env, "rep_a")
    page = client.get("/").text
    assert "我的漏斗金额" in page and "加载中…" in page
    table = fragment(client, "/dashboards/sales_rep/widgets/4")
    assert "丢单原因" not in table or "合计" in table
    assert "合计" in table and "丢单数" in table


def test_a_table_widget_shows_its_limit_and_links_the_rest(env: Env) -> None:
    deals(env)
    one = Widget("pipeline_by_owner", "table", Label.of("Top", "Top"), 1, 3)
    model = replace(env.model, dashboards=(Dashboard("mine", Label.of("Mine", "Mine"),
                                                     ("admin",), (one,), "mine.yaml"),))
    client = browser(env, "admin", model)
    body = fragment(client, "/dashboards/mine/widgets/0")
    assert re.findall(r'<tr class="report-(group|subtotal)"', body) == [
        "group", "group", "subtotal"]  # of 5: rep_a's two deals and their subtotal
    assert "Subtotal: rep_a" in body and "rep_b" not in body
    assert '<a href="/reports/pipeline_by_owner">' in body  # the rest in the full report
    assert "<strong>3</strong>" in body  # the totals row counts every row
    assert client.get("/dashboards/mine/widgets/1").status_code == 404
    assert client.get("/dashboards/nope").status_code == 404
    page = client.get("/dashboards/mine").text
    assert widget_sources(page) == ["/dashboards/mine/widgets/0"]


def test_a_widget_the_viewer_may_not_run_is_left_out(env: Env) -> None:
    user(env, "svc", "service_manager", department=departments(env)["BJ"])
    place(env, "account", {"name": "Acme"})
    secret = Widget("sales_funnel", "table", Label.of("Secret funnel", "Secret funnel"), 2, 5)
    service = Widget("service_requests_by_queue", "total",
                     Label.of("Service requests", "x"), 1, 5, aggregate="requests")
    mixed = Dashboard("service_manager", Label.of("Service", "Service"), ("service_manager",),
                      (secret, service), "service_manager.yaml")
    model = replace(env.model, dashboards=(mixed,))
    client = browser(env, "svc", model)
    page = client.get("/").text
    assert widget_sources(page) == ["/dashboards/service_manager/widgets/1"]
    assert "Secret funnel" not in page and "sales_funnel" not in page
    assert "<dd>0</dd>" in fragment(client, "/dashboards/service_manager/widgets/1")
    refused = client.get("/dashboards/service_manager/widgets/0",
                         headers={"HX-Request": "true"})
    assert refused.status_code == 403
    assert "amount" not in refused.text and "Secret" not in refused.text
    # a user with no dashboard, or none of whose widgets they may run, has today's home
    user(env, "mkt", "marketing")
    home = browser(env, "mkt", replace(env.model, dashboards=(
        replace(mixed, roles=("marketing",)),))).get("/").text
    assert widget_sources(home) == [] and 'class="dashboard-grid"' not in home
    assert "Records you can see" in home
    assert widget_sources(browser(env, "admin").get("/").text) == []


def test_a_slow_widget_shows_a_message_in_its_place(env: Env) -> None:
    now = datetime.now(UTC)
    who = {"owner_id": env.admin.id, "created_by": env.admin.id, "updated_by": env.admin.id,
           "created_at": now, "updated_at": now, "version": 1}
    with env.engine.begin() as conn:
        conn.execute(insert(env.records.schema.table("account")),
                     [{"name": f"Account {i:05d}", **who} for i in range(ACCOUNTS)])
    slow = adhoc(env, f"report: adhoc\nentity: account\nfilter: '{EXPENSIVE}'\n"
                      "aggregates: [{name: n, agg: count}]\n")
    fast = replace(adhoc(env, "report: adhoc\nentity: account\n"
                              "aggregates: [{name: n, agg: count}]\n"), name="quick")
    board = Dashboard("admin", Label.of("Admin", "Admin"), ("admin",), (
        Widget("adhoc", "total", Label.of("Slow", "Slow"), 1, 5),
        Widget("quick", "total", Label.of("Fast", "Fast"), 1, 5)), "admin.yaml")
    model = replace(env.model, reports=(*env.model.reports, slow, fast), dashboards=(board,),
                    settings=replace(env.model.settings, query_time_limit=0.2))
    records = records_service(env.engine, model)
    with limited(QueryLimit(0.2)):
        view = widget_view(records, env.admin.actor(), board.widgets[0], "en")
    assert view.failed == TIME_LIMIT and view.figures == ()
    # over HTTP: the page shows at once, the slow widget says so, the fast one counts
    client = browser(env, "admin", model)
    page = client.get("/")
    assert page.status_code == 200
    assert widget_sources(page.text) == ["/dashboards/admin/widgets/0",
                                         "/dashboards/admin/widgets/1"]
    assert "took too long" in fragment(client, "/dashboards/admin/widgets/0")
    assert f"<dd>{ACCOUNTS:,}</dd>" in fragment(client, "/dashboards/admin/widgets/1")
    assert [p.index for p in placed_widgets(records, env.admin.actor(), board)] == [0, 1]


def test_a_widget_runs_its_report_with_its_parameters(env: Env) -> None:
    deals(env)  # seven deals of rep_a and rep_b in SH, none with a close date
    boss = user(env, "boss", "sales_manager", department=departments(env)["SH"])
    account = place(env, "account", {"name": "Initech"})["id"]
    today = datetime.now(env.model.settings.zone).date()
    place(env, "opportunity", {"name": "Boss's", "account": account, "amount": "800",
                               "stage": "proposal", "close_date": today.isoformat()},
          owner=boss)
    mine = Widget("sales_funnel", "total", Label.of("Mine", "Mine"), 1, 5, aggregate="deals",
                  parameters=(("owner", "me"),))
    quarter = Widget("sales_funnel", "total", Label.of("Q", "Q"), 1, 5, aggregate="amount",
                     parameters=(("period", "this_quarter"),))
    every = Widget("sales_funnel", "total", Label.of("All", "All"), 1, 5, aggregate="amount")
    board = Dashboard("sales_manager", Label.of("Team", "Team"), ("sales_manager",),
                      (mine, quarter, every), "sales_manager.yaml")
    client = browser(env, "boss", replace(env.model, dashboards=(board,)))
    page = client.get("/").text
    assert '<a href="/reports/sales_funnel?owner=me">Mine</a>' in page
    assert '<a href="/reports/sales_funnel?period=this_quarter">Q</a>' in page
    assert '<a href="/reports/sales_funnel">All</a>' in page
    assert "<dd>1</dd>" in fragment(client, "/dashboards/sales_manager/widgets/0")
    assert "<dd>¥800.00</dd>" in fragment(client, "/dashboards/sales_manager/widgets/1")
    assert "<dd>¥13,500.00</dd>" in fragment(client, "/dashboards/sales_manager/widgets/2")


def test_a_detail_report_widget_is_a_row_per_record(env: Env) -> None:
    from tests.test_report_detail import DETAIL

    deals(env)
    detail = replace(adhoc(env, DETAIL), name="deal_list")
    board = Dashboard("admin", Label.of("Admin", "Admin"), ("admin",), (
        Widget("deal_list", "table", Label.of("Deals", "Deals"), 3, 2),
        Widget("deal_list", "total", Label.of("Amount", "Amount"), 1, 5, aggregate="amount"),
        Widget("deal_list", "chart", Label.of("Chart", "Chart"), 1, 5)), "admin.yaml")
    model = replace(env.model, reports=(*env.model.reports, detail), dashboards=(board,))
    client = browser(env, "admin", model)
    table = fragment(client, "/dashboards/admin/widgets/0")
    rows = re.findall(r'<tr class="report-detail"><td>([^<]*)</td>', table)
    assert rows == ["rep_b 4000", "rep_b 3000"]  # the first two of four, largest first
    assert "<strong>¥10,000.00</strong>" in table  # the totals over all four
    assert '<a href="/reports/deal_list">See the whole report</a>' in table
    assert "<dd>¥10,000.00</dd>" in fragment(client, "/dashboards/admin/widgets/1")
    # no chart of its own: its table
    assert "rep_b 4000" in fragment(client, "/dashboards/admin/widgets/2")


def test_a_total_needs_aggregates(config_dir: Path) -> None:
    (config_dir / "reports" / "deal_names.yaml").write_text(
        "report: deal_names\nentity: opportunity\ncolumns: [name, stage]\n", encoding="utf-8")
    errors = broken_dashboard_errors(config_dir, """\
dashboard: broken
roles: [sales_rep]
widgets:
  - {report: deal_names, show: total}
""")
    assert errors == ["config/dashboards/broken.yaml:4:32: widgets.0.show: report "
                      "'deal_names' has no aggregates to total; show it as a table"]


def test_every_shipped_widget_shows_for_its_role(env: Env) -> None:
    deals(env)
    for d in env.model.dashboards:
        role = d.roles[0]
        user(env, f"w_{role}", role, department=departments(env)["SH"])
        client = browser(env, f"w_{role}")
        sources = widget_sources(client.get("/").text)
        assert sources == [f"/dashboards/{d.name}/widgets/{i}" for i in range(len(d.widgets))]
        for src, w in zip(sources, d.widgets, strict=True):
            body = fragment(client, src)
            shape = {"total": "<dl", "table": "<table", "chart": '<figure class="chart'}
            if w.report == FORECAST_TREND:  # no snapshots taken here
                assert "two pipeline snapshots" in body, (d.name, w)
                continue
            assert shape[w.show] in body, (d.name, w)


def test_a_cross_tab_widget_has_a_column_per_value(env: Env) -> None:
    a, _b = deals(env)
    account = place(env, "account", {"name": "Globex"})["id"]
    year = datetime.now(env.model.settings.zone).year
    place(env, "opportunity", {"name": "Q1 win", "account": account, "amount": "900",
                               "stage": "won", "close_date": f"{year}-02-10"}, owner=a)
    client = browser(env, "admin", replace(env.model, dashboards=(Dashboard(
        "admin", Label.of("A", "A"), ("admin",),
        (Widget("won_by_quarter", "table", Label.of("Won", "Won"), 2, 10),), "a.yaml"),)))
    body = fragment(client, "/dashboards/admin/widgets/0")
    assert f'<th scope="colgroup" colspan="2">{year}-Q1</th>' in body
    assert '<th scope="colgroup" colspan="2">Total</th>' in body
    assert "¥900.00" in body and "rep_a" in body


# -- the forecast trend ------------------------------------------------------------------


def test_the_forecast_trend_widget_draws_the_snapshots_within_access(env: Env) -> None:
    from tests.test_reports_waterfall import build

    world = build(env)  # two snapshots a week apart; deals of rep_a and rep_b (Shanghai)
    manager = user(env, "trend_manager", "sales_manager", department=departments(env)["SH"])
    dashboard = env.model.dashboard("sales_manager")
    assert dashboard is not None
    at = next(i for i, w in enumerate(dashboard.widgets) if w.report == FORECAST_TREND)
    client = browser(env, manager.name)
    src = f"/dashboards/sales_manager/widgets/{at}"
    assert src in widget_sources(client.get("/").text)
    assert 'href="/reports/forecast_history"' in client.get("/").text
    body = fragment(client, src)
    # March 2027 as of each snapshot: the total line's points are the page's numbers
    assert 'id="forecast-trend-chart"' in body and 'role="img"' in body
    assert "<title>Jan 4 · Total: ¥6,070.00</title>" in body
    # rep_a sees the trend of their own deals only: not the department's total
    mine = widget_view(env.records, world.a, dashboard.widgets[at], "en")
    assert mine.chart is not None and "¥6,070.00" not in mine.chart
    assert "<title>Jan 4 · Total:" in mine.chart


def test_the_forecast_trend_before_two_snapshots_and_its_mistakes(env: Env,
                                                                  config_dir: Path) -> None:
    dashboard = env.model.dashboard("executive")
    assert dashboard is not None
    w = next(w for w in dashboard.widgets if w.report == FORECAST_TREND)
    view = widget_view(env.records, env.admin.actor(), w, "zh-CN")
    assert view.chart is None and view.failed is None
    assert view.notice is not None and "two" in view.notice
    errors = broken_dashboard_errors(config_dir, """\
dashboard: broken
roles: [sales_rep]
widgets:
  - {report: forecast_history, show: table}
  - {report: forecast_history, show: chart, limit: 5}
""")
    assert errors == [
        "config/dashboards/broken.yaml:4:38: widgets.0.show: the forecast_history widget is "
        "a chart (show: chart)",
        "config/dashboards/broken.yaml:5:52: widgets.1.limit: the forecast_history widget "
        "has no limit: it draws the forecast trend",
    ]

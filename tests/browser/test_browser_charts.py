"""In a real browser, under the Content-Security-Policy: the report pages draw their charts
(engine/web/charts) above the table — a stacked bar chart, a funnel in Chinese, a Gantt
chart of stage plans — with no CSP violation or console error, bars as tall as their
values."""

from __future__ import annotations

from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from tests.browser.conftest import REPO, LiveServer, screenshot
from tests.browser.test_browser_csp import watched  # noqa: F401 - a fixture
from tests.browser.test_browser_scenario import sign_in

pytestmark = pytest.mark.browser


def test_report_charts(watched: tuple[Any, list[str]],  # noqa: F811 - the fixture
                       live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    page, problems = watched
    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    acme = records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    deal = None
    for name, amount, stage in [("Turbines", "1000", "prospecting"),
                                ("Pumps", "3000", "proposal"),
                                ("Valves", "2000", "negotiation")]:
        deal = records.create(SYSTEM, "opportunity", {"name": name, "account": acme,
                                                      "amount": amount, "stage": stage})
    assert deal is not None
    for stage, ps, pe, s, e in [
            ("prospecting", "2026-01-05", "2026-01-20", "2026-01-05", "2026-01-18"),
            ("qualification", "2026-01-21", "2026-02-10", "2026-01-19", "2026-02-20"),
            ("proposal", "2026-02-11", "2026-03-01", "2026-02-21", None),
            ("negotiation", "2026-03-02", "2026-03-31", None, None)]:
        data = {"opportunity": deal["id"], "stage": stage, "planned_start": ps,
                "planned_end": pe}
        data |= {"actual_start": s} if s else {}
        data |= {"actual_end": e} if e else {}
        records.create(SYSTEM, "opportunity_stage_plan", data)
    sign_in(page)

    page.goto("/reports/pipeline_by_owner")
    chart = page.get_by_role("img", name="Pipeline by owner")
    expect(chart).to_be_visible()
    bars = chart.locator("rect.chart-bar")
    expect(bars).to_have_count(3)
    heights = {b.get_attribute("data-value"): b.bounding_box()["height"]
               for b in bars.all()}
    assert heights["3000"] == pytest.approx(3 * heights["1000"], rel=0.02)
    assert heights["2000"] == pytest.approx(2 * heights["1000"], rel=0.02)
    fill = bars.first.evaluate("b => getComputedStyle(b).fill")
    assert fill == "rgb(78, 121, 167)"  # the palette of static/charts.css applies
    figure = page.locator("figure.chart").bounding_box()
    table = page.locator("table.report").bounding_box()
    assert figure["y"] + figure["height"] <= table["y"]  # above the table
    screenshot(page, "report-chart-stacked-bar")

    page.goto("/reports/stage_plan_gantt")
    gantt = page.get_by_role("img", name="Stage plan vs actual")
    expect(gantt).to_be_visible()
    expect(gantt.locator("rect.chart-plan")).to_have_count(4)
    expect(gantt.locator("rect.chart-late")).to_have_count(1)
    screenshot(page, "report-chart-gantt")

    admin = live_server.users.by_name("admin")
    live_server.users.set_locale(admin.id, "zh-CN")
    page.goto("/reports/sales_funnel")
    funnel = page.get_by_role("img", name="销售漏斗")
    expect(funnel).to_be_visible()
    expect(funnel.locator("text.chart-label").first).to_have_text("潜在")
    screenshot(page, "report-chart-funnel-zh")
    assert problems == []
    assert page.dialogs == []

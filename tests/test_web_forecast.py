"""The forecast history page (engine/web/pages/forecast.py): the forecast per category as
of each snapshot, the trend, the waterfall with its drill-down, the take-a-snapshot button
(CSRF), a rep's own deals only, hidden amounts, in English and Chinese."""

from __future__ import annotations

import re

import pytest

from tests.access_helpers import user
from tests.conftest import Env
from tests.test_reports_waterfall import World, build
from tests.test_web_reports import browser
from tests.web_helpers import csrf_of


@pytest.fixture
def world(env: Env) -> World:
    return build(env)


def _row(html: str, attr: str, value: object) -> str:
    found = re.search(rf'<tr[^>]*{attr}="{value}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, f"no row {attr}={value}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


def test_the_page_as_an_administrator(world: World) -> None:
    client = browser(world.env)
    assert 'href="/reports/forecast_history"' in client.get("/reports").text
    page = client.get("/reports/forecast_history?month=2027-03&period=2027-03")
    assert page.status_code == 200
    html = page.text
    # March as of the first snapshot: pipeline 1,170, best case 2,500, commit 2,400
    by_category = html.split('id="forecast-by-category"')[1].split("</section>")[0]
    assert _row(by_category, "data-snapshot", world.first) == (
        "Jan 4, 2027, 8:00:00 AM ¥1,170.00 ¥2,500.00 ¥2,400.00 ¥6,070.00 6")
    chart = by_category.split('id="forecast-trend-chart"')[1].split("</figure>")[0]
    assert '<svg' in chart and 'role="img"' in chart
    assert "<title>Jan 4 · Total: ¥6,070.00</title>" in chart  # the total line, first point
    assert "Total</li>" in chart  # a line per category and the total, in the legend
    waterfall = html.split('id="waterfall"')[1].split("</section>")[0]
    assert _row(waterfall, "data-step", "won").startswith("Won 1 -¥1,000.00")
    assert _row(waterfall, "data-step", "moved_out") == "Moved out of the period 1 -¥5,000.00"
    assert _row(waterfall, "data-step", "end").endswith("5 ¥8,600.00")
    link = re.search(r'href="(/reports/forecast_history/deals\?[^"]*step=won[^"]*)"',
                     waterfall)
    assert link
    deals = client.get(link.group(1).replace("&amp;", "&"))
    assert deals.status_code == 200
    assert _row(deals.text, "data-id", world.ids["d1"]) == "d1 ¥1,000.00 -¥1,000.00"


def test_the_page_in_chinese(world: World) -> None:
    client = browser(world.env)
    world.env.users.set_locale(world.env.admin.id, "zh-CN")
    html = client.get("/reports/forecast_history?period=2027-03").text
    assert "预测历史" in html and "赢单" in html and "移出期间" in html


def test_taking_a_snapshot_from_the_page(world: World) -> None:
    env = world.env
    client = browser(env)
    page = client.get("/reports/forecast_history")
    assert 'id="take-snapshot"' in page.text
    refused = client.post("/reports/forecast_history/snapshots", data={},
                          follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token
    done = client.post("/reports/forecast_history/snapshots",
                       data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/reports/forecast_history")
    assert len(re.findall(r'<tr data-snapshot=', client.get(
        "/reports/forecast_history").text.split('id="snapshots"')[1])) == 3


def test_a_rep_sees_their_deals_and_no_button(world: World) -> None:
    rep = browser(world.env, "rep_a", "a-password")
    html = rep.get("/reports/forecast_history?period=2027-03").text
    assert 'id="take-snapshot"' not in html
    waterfall = html.split('id="waterfall"')[1].split("</section>")[0]
    assert _row(waterfall, "data-step", "start").endswith("4 ¥8,700.00")
    assert _row(waterfall, "data-step", "transferred_out") == "Handed to others 1 -¥700.00"
    page = rep.get("/reports/forecast_history")
    refused = rep.post("/reports/forecast_history/snapshots",
                       data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert refused.status_code == 403


def test_hidden_amounts_show_counts_only(world: World) -> None:
    user(world.env, "mkt", "marketing")
    html = browser(world.env, "mkt", "a-password").get("/reports/forecast_history").text
    assert "Amounts are hidden from you" in html
    assert "¥" not in html.split("<main")[1]
    assert _row(html.split('id="snapshots"')[1], "data-snapshot", world.first).endswith("7")

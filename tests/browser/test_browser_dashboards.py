"""In a real browser: a sales rep's dashboard (config/dashboards/sales_rep.yaml) — the page
shows at once and each widget loads its report with htmx, counting only the rep's deals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import tests.browser.conftest as live
from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from tests.browser.conftest import REPO, LiveServer, screenshot

pytestmark = pytest.mark.browser


def test_a_sales_reps_dashboard_loads_its_widgets(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    rep = live_server.users.add("rep", ["sales_rep"], password="rep-password",
                                display_name="Rita Rep")
    acme = records.create(rep.actor(), "account", {"name": "Acme"})
    for name, amount, stage in (("Turbines", "1000", "proposal"),
                                ("Pumps", "3000", "negotiation")):
        records.create(rep.actor(), "opportunity", {"name": name, "account": acme["id"],
                                                    "amount": amount, "stage": stage})
    records.create(SYSTEM, "opportunity", {"name": "Not mine", "account": acme["id"],
                                           "amount": "5000", "stage": "proposal"})

    page.goto("/login")
    page.get_by_label("User name").fill("rep")
    page.get_by_label("Password").fill("rep-password")
    page.keyboard.press("Enter")
    amount = page.locator("#widget-0")
    expect(amount.get_by_role("link", name="My funnel amount")).to_have_attribute(
        "href", "/reports/sales_funnel")
    expect(amount.locator("dd")).to_have_text("¥4,000.00")  # loaded by htmx: mine only
    expect(page.locator("#widget-1 dd")).to_have_text("¥2,900.00")  # 50 % + 80 %
    expect(page.locator("#widget-2 dd")).to_have_text("2")
    expect(page.locator("#widget-3 figure svg[role=img]")).to_be_visible()  # the funnel chart
    pipeline = page.locator("#widget-5")
    expect(pipeline.locator("tfoot")).to_contain_text("¥4,000.00")
    expect(pipeline.locator("tbody")).not_to_contain_text("Not mine")
    expect(page.locator(".widget-body", has_text="Loading")).to_have_count(0)
    screenshot(page, "dashboard-sales-rep")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: widgets stack
    expect(pipeline.locator("tfoot")).to_be_visible()
    screenshot(page, "dashboard-sales-rep-narrow")
    assert page.dialogs == []


@pytest.fixture
def two_requests_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live server's model lets one user have two requests running at once."""
    model = load_model(REPO / "config")
    model = replace(model, settings=replace(model.settings, requests_per_user=2))

    def patched(_path: Path) -> Any:
        return model

    monkeypatch.setattr(live, "load_model", patched)


def test_widgets_refused_as_too_many_requests_ask_again(
        two_requests_per_user: None, page: Any, live_server: LiveServer) -> None:
    """The executive's dashboard has thirteen widgets, all loading at once; a user may have
    two requests running: the refused ones (429) ask again until every widget shows."""
    from playwright.sync_api import expect

    live_server.users.add("boss", ["executive"], password="boss-password")
    page.goto("/login")
    page.get_by_label("User name").fill("boss")
    page.get_by_label("Password").fill("boss-password")
    page.keyboard.press("Enter")
    widgets = page.locator(".dashboard-grid .widget-body")
    expect(widgets).to_have_count(13)
    expect(page.locator(".widget-body", has_text="Loading")).to_have_count(0, timeout=30_000)
    expect(page.locator(".widget-failed")).to_have_count(0)
    expect(page.locator("#widget-0 dd")).to_have_text("¥0.00")  # a sum of no deals
    assert page.locator(".widget-body[data-tries]").count() > 0  # some were refused first
    assert page.dialogs == []

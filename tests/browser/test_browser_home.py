"""In a real browser: a sales rep's home page (engine/web/dashboard.py), quick create with
its notice, and the language switch returning to a list filtered in place."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from tests.browser.conftest import REPO, LiveServer, screenshot

pytestmark = pytest.mark.browser


def test_a_sales_reps_home_page(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    rep = live_server.users.add("rep", ["sales_rep"], password="rep-password",
                                display_name="Rita Rep")
    acme = records.create(rep.actor(), "account", {"name": "Acme"})
    records.create(rep.actor(), "opportunity", {"name": "Turbines", "account": acme["id"],
                                                "amount": "1000", "stage": "proposal"})
    records.create(SYSTEM, "opportunity", {"name": "Not mine", "account": acme["id"],
                                           "amount": "5000", "stage": "proposal"})
    today = datetime.now(UTC).date()
    monday = datetime.combine(today - timedelta(days=today.weekday()), time(9), UTC)
    records.create(rep.actor(), "activity", {"subject": "Call Acme", "kind": "call",
                                             "due_at": (monday + timedelta(days=2)).isoformat()})

    page.goto("/login")
    page.get_by_label("User name").fill("rep")
    page.get_by_label("Password").fill("rep-password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    deals = page.locator("#open-opportunity")
    expect(deals.locator(".count")).to_have_text("1")
    expect(deals.locator(".amount")).to_have_text("¥1,000.00")
    expect(deals.locator(".weighted")).to_have_text("¥500.00")
    due = page.locator("#due-activity")
    expect(due.get_by_role("link", name="Call Acme")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Leads")).to_be_visible()
    expect(nav.get_by_role("link", name="Departments", exact=True)).to_be_visible()
    screenshot(page, "home-sales-rep")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: cards stack
    expect(deals.locator(".count")).to_be_visible()
    screenshot(page, "home-sales-rep-narrow")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Quick create, then the notice on the new record's page.
    page.get_by_role("navigation", name="Create a record").get_by_role(
        "link", name="New Lead").click()
    page.get_by_label("Company").fill("Initech")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Lead created.")
    screenshot(page, "home-created-notice")

    # Filter a list in place (htmx), then switch the language: back to the same list.
    page.goto("/e/opportunity")
    page.get_by_label("Name").fill("Turb")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"/e/opportunity\?name__contains=Turb$"))
    page.locator("summary", has_text="Rita Rep").click()  # the user menu
    page.get_by_label("Language").select_option("zh-CN")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page).to_have_url(re.compile(r"/e/opportunity\?name__contains=Turb$"))
    expect(page.get_by_role("heading", name="销售机会")).to_be_visible()
    expect(page.get_by_role("link", name="Turbines", exact=True)).to_be_visible()

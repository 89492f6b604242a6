"""In a real browser: the header's search box finds records by title and by `search: true`
fields, each hit with its kind and the line that matched; a hit opens the record."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.assembly import records_service
from tests.browser.conftest import ADMIN_PASSWORD, REPO, LiveServer, screenshot

pytestmark = pytest.mark.browser


def test_search_box_finds_hits_with_context(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    admin = live_server.users.by_name("admin").actor()
    records.create(admin, "account", {"name": "Shanghai Steel", "city": "Shanghai"})
    harbour = records.create(admin, "account", {"name": "Harbour Logistics",
                                                "city": "Shanghai"})
    zhang = records.create(admin, "contact", {"full_name": "Zhang Wei", "account": harbour["id"],
                                              "email": "zhang.wei@shanghai-harbour.cn"})
    records.create(admin, "account", {"name": "Hamburg Tools", "city": "Hamburg"})

    page.goto("/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    box = page.get_by_role("searchbox", name="Search")
    box.fill("shanghai")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?q=shanghai$"))

    accounts = page.locator("#hits-account .hit")
    expect(accounts).to_have_count(2)
    # the title that starts with the words comes first; the other matched on its city
    expect(accounts.nth(0).locator(".hit-title")).to_have_text("Shanghai Steel")
    expect(accounts.nth(1).locator(".hit-title")).to_have_text("Harbour Logistics")
    expect(accounts.nth(1).locator(".hit-context")).to_have_text("City: Shanghai")
    contact = page.locator("#hits-contact .hit")
    expect(contact).to_have_count(1)
    expect(contact.locator(".hit-kind")).to_have_text("Contact")
    expect(contact.locator(".hit-context")).to_have_text(
        "Email: zhang.wei@shanghai-harbour.cn")
    expect(contact.locator(".hit-context mark")).to_have_text("shanghai")
    expect(page.locator("#main")).not_to_contain_text("Hamburg")
    screenshot(page, "search-hits")

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "search-hits-narrow")
    page.set_viewport_size({"width": 1280, "height": 800})

    contact.get_by_role("link", name="Zhang Wei").click()
    expect(page).to_have_url(re.compile(rf"/e/contact/{zhang['id']}$"))
    expect(page.get_by_role("heading", name="Zhang Wei")).to_be_visible()

    box = page.get_by_role("searchbox", name="Search")
    box.fill("x" * 100 + "y")  # the box holds at most 100 characters
    assert len(box.input_value()) == 100
    assert page.dialogs == []

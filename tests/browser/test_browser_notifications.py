"""In a real browser: a won deal's notice in its owner's header count and inbox, marked read
one by one and all at once with htmx, the header's count dropping in place."""

from __future__ import annotations

from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from tests.browser.conftest import REPO, LiveServer, screenshot
from tests.deals import win

pytestmark = pytest.mark.browser


def test_marking_notifications_read_drops_the_header_count(page: Any,
                                                           live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    rep = live_server.users.add("rep", ["sales_rep"], password="rep-password",
                                display_name="Rita Rep")
    acme = records.create(rep.actor(), "account", {"name": "Acme"})
    for name in ("Turbines", "Harbour cranes"):
        deal = records.create(rep.actor(), "opportunity", {"name": name,
                                                           "account": acme["id"]})
        win(records, SYSTEM, deal["id"])  # on an accepted quote, as the pipeline asks

    page.goto("/login")
    page.get_by_label("User name").fill("rep")
    page.get_by_label("Password").fill("rep-password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    bell = page.locator("#header-notifications")
    expect(bell).to_have_text("Notifications (2)")
    bell.click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    unread = page.locator(".notification.unread")
    expect(unread).to_have_count(2)
    expect(page.get_by_role("link", name="Harbour cranes")).to_be_visible()
    screenshot(page, "notifications")

    unread.first.get_by_role("button", name="Mark as read").click()
    expect(unread).to_have_count(1)
    expect(bell).to_have_text("Notifications (1)")
    page.get_by_role("button", name="Mark all as read").click()
    expect(unread).to_have_count(0)
    expect(bell).to_have_text("Notifications")
    expect(page.locator(".notification")).to_have_count(2)
    page.goto("/")
    expect(page.locator("#header-notifications")).to_have_text("Notifications")
    assert page.dialogs == []

"""In a real browser: the record form's live preview, conditional fields, the keyboard
picker, a server error beside its field, and the detail page it leads to."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import ADMIN_PASSWORD, LiveServer, screenshot

pytestmark = pytest.mark.browser


def test_opportunity_form_updates_live_and_saves(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.goto("/e/account/new")
    page.get_by_label("Account name").fill("Nordwind Turbines")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=re.compile("Nordwind Turbines"))).to_be_visible()

    page.goto("/e/opportunity/new")
    page.get_by_label("Name", exact=True).fill("Rotor blades")
    stage = page.get_by_label("Stage")
    stage.select_option("proposal")
    page.get_by_label("Amount", exact=True).fill("12,000")
    expect(page.locator("#computed-weighted")).to_have_text("¥6,000.00")
    page.get_by_label("Amount", exact=True).fill("1000")
    expect(page.locator("#computed-weighted")).to_have_text("¥500.00")

    # the account picker, by keyboard: type, arrow down to the match, Enter
    box = page.locator("#f-account")
    box.press_sequentially("nord")
    expect(page.locator("#pick-account button")).to_have_count(1)
    box.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("#f-account")).to_have_value("Nordwind Turbines")
    expect(page.locator('#picker-account input[name="account"]')).not_to_have_value("")

    # lost_reason appears once the stage is lost; saving without it is refused in place
    expect(page.locator("#f-lost_reason")).to_have_count(0)
    stage.select_option("lost")
    expect(page.locator("#f-lost_reason")).to_be_visible()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#form-errors")).to_contain_text("Some fields need attention")
    # the rule names lost_reason (field: in config), so its message stands beside it
    expect(page.locator("#err-lost_reason")).to_have_text(
        "A lost opportunity needs a lost reason")
    expect(page.get_by_label("Amount", exact=True)).to_have_value("1000")
    screenshot(page, "form-error")
    page.locator("#f-lost_reason").select_option("price")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=re.compile("Rotor blades"))).to_be_visible()
    expect(page.locator("#value-lost_reason dd").first).to_have_text("Price")
    screenshot(page, "detail")
    assert page.dialogs == []

"""In a real browser: the layout on a phone (390x844) and on a desktop. On the phone the
menu and the list filters fold behind buttons (static/layout.js), list rows are cards and
nothing scrolls sideways; on a desktop everything shows as before. Money shows its ¥."""

from __future__ import annotations

from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.assembly import records_service
from tests.browser.conftest import ADMIN_PASSWORD, REPO, LiveServer, new_context, screenshot

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def _seed(live_server: LiveServer) -> int:
    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    admin = live_server.users.by_name("admin").actor()
    acme = records.create(admin, "account", {"name": "Acme Shanghai Heavy Industries"})
    deal = records.create(admin, "opportunity", {
        "name": "Turbines for the Pudong plant", "account": acme["id"],
        "amount": "1234567.5", "stage": "negotiation", "close_date": "2025-03-31"})
    records.create(admin, "opportunity", {"name": "Spare parts", "account": acme["id"],
                                          "amount": "800", "stage": "proposal"})
    return int(deal["id"])


def _sign_in(page: Any, path: str) -> None:
    page.goto(f"/login?next={path}")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"


def test_on_a_phone_menu_and_filters_fold_and_rows_are_cards(browser: Any,
                                                             live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    deal = _seed(live_server)
    context = new_context(browser, live_server.url, viewport=PHONE, is_mobile=True,
                          has_touch=True)
    page = context.new_page()
    try:
        _sign_in(page, "/e/opportunity")
        expect(page.get_by_role("heading", name="Opportunities")).to_be_visible()
        menu = page.get_by_role("button", name="Menu", exact=True)
        nav = page.get_by_role("navigation", name="Main")
        expect(menu).to_be_visible()
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(nav).to_be_hidden()
        filters_button = page.get_by_role("button", name="Filters", exact=True)
        expect(filters_button).to_be_visible()
        expect(page.locator("#list-filters")).to_be_hidden()

        # Rows are cards: one block per record, each value under its column's title.
        card = page.locator("#list-results tbody tr").filter(has_text="Turbines")
        assert card.evaluate("e => getComputedStyle(e).display") == "block"
        amount = card.locator('td[data-label="Amount"]')
        expect(amount).to_have_text("¥1,234,567.50")
        assert amount.evaluate("e => getComputedStyle(e, '::before').content") == '"Amount"'
        box = card.bounding_box()
        assert box is not None and box["width"] <= PHONE["width"]
        expect(page.locator("#list-results thead").get_by_role("link", name="Amount", exact=True)) \
            .to_be_visible()  # the header row stays as sort links
        _no_sideways_scroll(page)
        screenshot(page, "phone-list")

        # The menu opens with the keyboard and folds again with Escape.
        menu.focus()
        page.keyboard.press("Enter")
        expect(menu).to_have_attribute("aria-expanded", "true")
        expect(nav).to_be_visible()
        expect(nav.get_by_role("link", name="Accounts")).to_be_visible()
        _no_sideways_scroll(page)
        screenshot(page, "phone-menu-open")
        nav.get_by_role("link", name="Accounts").focus()
        page.keyboard.press("Escape")
        expect(nav).to_be_hidden()
        expect(menu).to_be_focused()

        # The filters unfold, and filtering works as on a desktop.
        filters_button.click()
        expect(filters_button).to_have_attribute("aria-expanded", "true")
        expect(page.locator("#list-filters")).to_be_visible()
        _no_sideways_scroll(page)
        screenshot(page, "phone-filters-open")
        page.get_by_label("Name").fill("spare")
        page.get_by_role("button", name="Apply filters").click()
        expect(page.locator("#list-results tbody tr")).to_have_count(1)
        expect(page.locator("#list-results tbody")).to_contain_text("¥800.00")

        for path in (f"/e/opportunity/{deal}", f"/e/opportunity/{deal}/edit", "/"):
            page.goto(path)
            expect(page.get_by_role("button", name="Menu", exact=True)).to_be_visible()
            expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
            _no_sideways_scroll(page)
        page.goto(f"/e/opportunity/{deal}")
        expect(page.locator("main")).to_contain_text("¥1,234,567.50")
        screenshot(page, "phone-detail")
    finally:
        context.close()


def test_on_a_desktop_nothing_folds(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    _seed(live_server)
    _sign_in(page, "/e/opportunity")
    expect(page.get_by_role("heading", name="Opportunities")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("button", name="Menu", exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Filters", exact=True)).to_be_hidden()
    expect(page.locator("#list-filters")).to_be_visible()
    row = page.locator("#list-results tbody tr").filter(has_text="Turbines")
    assert row.evaluate("e => getComputedStyle(e).display") == "table-row"
    amount = row.locator('td[data-label="Amount"]')
    expect(amount).to_have_text("¥1,234,567.50")
    assert amount.evaluate("e => getComputedStyle(e, '::before').content") == "none"
    nav_box = page.get_by_role("navigation", name="Main").bounding_box()
    main_box = page.locator("main").bounding_box()
    assert nav_box is not None and main_box is not None
    assert nav_box["x"] + nav_box["width"] <= main_box["x"]  # the menu beside the page
    _no_sideways_scroll(page)
    screenshot(page, "desktop-list")
    assert page.dialogs == []

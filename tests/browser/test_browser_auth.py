"""In a real browser: sign in (wrong, then right), the dashboard, Chinese, sign out."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import ADMIN_PASSWORD, LiveServer, screenshot

pytestmark = pytest.mark.browser


def test_sign_in_dashboard_language_and_sign_out(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    screenshot(page, "login")

    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The user name or password is not right.")
    # The same words for a user that does not exist: nothing tells which names are real.
    page.get_by_label("User name").fill("nobody_here")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The user name or password is not right.")
    screenshot(page, "login-error")

    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(live_server.url + "/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    for area, entity in (("Customers", "Accounts"), ("Sales", "Opportunities"),
                         ("Marketing", "Leads"), ("Administration", "Departments")):
        expect(nav.get_by_role("heading", name=area)).to_be_visible()
        expect(nav.get_by_role("link", name=entity, exact=True)).to_be_visible()
    screenshot(page, "dashboard")
    page.set_viewport_size({"width": 390, "height": 800})  # a phone: the menu folds away
    expect(nav.get_by_role("link", name="Accounts", exact=True)).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(nav.get_by_role("link", name="Accounts")).to_be_visible()
    screenshot(page, "dashboard-narrow")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_text("Admin", exact=True).click()  # the user menu
    page.get_by_label("Language").select_option("zh-CN")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("heading", name="工作台")).to_be_visible()
    nav = page.get_by_role("navigation", name="主导航")
    expect(nav.get_by_role("link", name="销售机会")).to_be_visible()
    expect(nav.get_by_role("heading", name="客户")).to_be_visible()
    screenshot(page, "dashboard-zh")

    page.get_by_text("Admin", exact=True).click()
    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))  # the session has ended
    assert page.dialogs == []

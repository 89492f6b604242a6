"""In a real browser: a list sorts and filters in place with htmx (the address follows),
then a record goes to the recycle bin and comes back."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.assembly import records_service
from tests.browser.conftest import ADMIN_PASSWORD, REPO, LiveServer, screenshot

pytestmark = pytest.mark.browser


def test_list_sort_filter_in_place_then_delete_and_restore(page: Any,
                                                           live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    admin = live_server.users.by_name("admin").actor()
    for name, city in (("Beta Works", "Hamburg"), ("Alpha Tools", "Shanghai"),
                       ("Gamma Labs", "Hamburg")):
        records.create(admin, "account", {"name": name, "city": city})

    page.goto("/login?next=/e/account")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
    page.evaluate("window.__samePage = true")  # gone if the page were loaded again

    results = page.locator("#list-results tbody")
    heads = page.locator("#list-results thead")
    heads.get_by_role("link", name=re.compile("^Account name")).click()
    expect(page).to_have_url(re.compile(r"/e/account\?sort=name$"))
    expect(results.locator("tr").first).to_contain_text("Alpha Tools")
    heads.get_by_role("link", name=re.compile("^Account name")).click()
    expect(page).to_have_url(re.compile(r"\?sort=-name$"))
    expect(results.locator("tr").first).to_contain_text("Gamma Labs")

    page.get_by_label("City").fill("hamburg")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"/e/account\?city__contains=hamburg&sort=-name$"))
    expect(results.locator("tr")).to_have_count(2)
    expect(page.get_by_text("Records: 2")).to_be_visible()
    assert page.evaluate("window.__samePage") is True  # htmx swapped the results only
    screenshot(page, "list-accounts")

    page.get_by_role("link", name="Delete Gamma Labs").click()
    expect(page.get_by_role("heading", name="Delete this record?")).to_be_visible()
    screenshot(page, "confirm-delete")
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").filter(has_text="recycle bin")).to_be_visible()
    expect(page.locator("#list-results")).not_to_contain_text("Gamma Labs")

    page.get_by_role("link", name="Open the recycle bin").click()
    expect(page.get_by_role("heading", name="Recycle bin: Accounts")).to_be_visible()
    screenshot(page, "recycle-bin")
    page.get_by_role("button", name="Restore Gamma Labs").click()
    expect(page.get_by_text("The record was restored from the recycle bin.")).to_be_visible()
    expect(page.get_by_text("The recycle bin is empty.")).to_be_visible()
    assert page.dialogs == []

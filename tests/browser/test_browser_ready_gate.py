"""The browser tests' READY_GATE (tests/browser/conftest.py): on a slow line, where a page
shows a second before its deferred htmx script has loaded, the tests' first action on the
page still waits until htmx has wired it up, as a person would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.browser.conftest import ADMIN_PASSWORD, LiveServer, new_context

pytestmark = pytest.mark.browser

LATENCY_MS = 1000  # per request: the page's document, then its deferred htmx script


@contextmanager
def entity_chosen_on_a_slow_line(browser: Any, live_server: LiveServer,
                                 gated: bool) -> Iterator[Any]:
    """The report builder opened over a slow line, an entity chosen at once (htmx then
    redraws the grouping choices for it): the page."""
    if gated:
        context = new_context(browser, live_server.url)
    else:
        context = browser.new_context(base_url=live_server.url, locale="en-US")
        context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{live_server.url}/")
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": LATENCY_MS, "downloadThroughput": -1,
            "uploadThroughput": -1})
        page.goto("/reports/new", wait_until="commit")
        page.locator("#builder-entity").select_option("opportunity")
        yield page
    finally:
        context.close()


def test_the_first_action_on_a_page_waits_for_htmx(browser: Any,
                                                   live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    with entity_chosen_on_a_slow_line(browser, live_server, gated=True) as page:
        expect(page.locator('#group-0 option[value="stage"]')).to_have_count(1)


def test_without_the_gate_that_action_is_lost(browser: Any, live_server: LiveServer) -> None:
    """What the gate is for: the same steps in a context without it lose the choice."""
    with entity_chosen_on_a_slow_line(browser, live_server, gated=False) as page:
        page.wait_for_load_state()
        page.wait_for_timeout(3 * LATENCY_MS)  # time for the redraw a choice would ask for
        assert page.locator("#builder-entity").input_value() == "opportunity"
        assert page.locator('#group-0 option[value="stage"]').count() == 0

"""The calendar in a real browser: an activity dragged to another day of the month is saved
there with its time of day, the grid redraws, the week view's htmx link swaps the grid; no
CSP violation or console error on the way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.assembly import records_service
from tests.browser.conftest import ADMIN_PASSWORD, REPO, LiveServer, screenshot
from tests.browser.test_browser_csp import watched  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser
CAL = "/e/activity/calendar?view=month&date=2030-03-04"


def test_drag_an_activity_to_another_day(watched: tuple[Any, list[str]],  # noqa: F811
                                         live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    page, problems = watched
    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    admin = live_server.users.by_name("admin").actor()
    call = records.create(admin, "activity", {"subject": "Call Acme", "kind": "call",
                                              "due_at": "2030-03-04T10:15:00Z"})

    page.goto(f"/login?next={CAL.replace('&', '%26').replace('?', '%3F')}")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="March 2030")).to_be_visible()
    item = page.locator(f"#cal-item-{call['id']}")
    expect(page.locator('td[data-date="2030-03-04"]').locator(item)).to_be_visible()
    expect(item).to_contain_text("10:15")

    item.drag_to(page.locator('td[data-date="2030-03-07"]'))
    target = page.locator('td[data-date="2030-03-07"]')
    expect(target.locator(f"#cal-item-{call['id']}")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Moved “Call Acme” to Thursday")
    saved = records.get(admin, "activity", call["id"])
    assert saved["due_at"] == datetime(2030, 3, 7, 10, 15, tzinfo=UTC)
    assert saved["version"] == call["version"] + 1

    # the week view through htmx: only the grid is swapped, and it has hour rows
    page.get_by_role("link", name="Week").click()
    expect(page).to_have_url(f"{live_server.url}/e/activity/calendar"
                             "?field=due_at&view=week&date=2030-03-04")
    week_item = page.locator(f'td[data-date="2030-03-07"][data-hour="10"] #cal-item-{call["id"]}')
    expect(week_item).to_be_visible()
    assert problems == [] and page.dialogs == []
    screenshot(page, "calendar-week")  # last: a screenshot leaves style="" on the inputs

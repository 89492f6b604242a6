"""In a real browser: a form's line-item grid — add two lines, pick their products, see the
line and parent totals computed live by the server, move a line, save, and find the lines
on the record. Served with the line-item test config (tests/lines_world.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.records import ListQuery, Records
from engine.runtime.records.lines import read_lines
from tests.browser.conftest import ADMIN_PASSWORD, LiveServer, screenshot, served
from tests.lines_world import write_lines_config

pytestmark = pytest.mark.browser


@pytest.fixture
def lines_records(tmp_path: Path) -> Iterator[tuple[LiveServer, Records]]:
    """The app with the line-item config on a new SQLite file, with two products, and the
    records service on the same database (to read what the browser saved)."""
    model = load_model(write_lines_config(tmp_path / "config"))
    with served(model, tmp_path / "crm.db") as (server, engine):
        records = records_service(engine, model)
        for name in ("Rotor blade", "Gearbox"):
            records.create(SYSTEM, "product", {"name": name})
        yield server, records


@pytest.fixture
def live_server(lines_records: tuple[LiveServer, Records]) -> LiveServer:
    """The `page` fixture's server: this module's."""
    return lines_records[0]


def pick(page: Any, row: Any, text: str) -> None:
    from playwright.sync_api import expect

    box = row.locator('.picker input[role="combobox"]')
    box.press_sequentially(text)
    expect(row.locator(".pick-list button")).to_have_count(1)
    row.locator(".pick-list button").click()
    expect(row.locator('.picker input[type="hidden"]')).not_to_have_value("")
    # htmx focuses the new search box when it settles: typing before that would land there.
    expect(row.locator(".picker")).not_to_have_class(re.compile(r"\bhtmx-added\b"))
    expect(box).to_be_focused()


def test_add_two_lines_see_the_live_totals_and_save(
        page: Any, lines_records: tuple[LiveServer, Records]) -> None:
    from playwright.sync_api import expect

    records = lines_records[1]
    page.goto("/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.goto("/e/estimate/new")
    page.get_by_label("Name", exact=True).fill("Wind farm service")
    rows = page.locator("#line-rows tr[data-line]")
    expect(rows).to_have_count(1)
    first = rows.nth(0)
    pick(page, first, "rotor")
    first.get_by_label("Quantity").fill("3")
    first.get_by_label("Unit price").fill("1000")
    expect(first.locator('output[id$="-line_total"]')).to_have_text(re.compile(r"3,000\.00"))

    page.get_by_role("button", name="Add line").click()
    expect(rows).to_have_count(2)
    second = rows.nth(1)
    pick(page, second, "gear")
    second.get_by_label("Quantity").fill("1")
    second.get_by_label("Unit price").fill("500")
    second.get_by_label("Discount").fill("10")
    expect(second.locator('output[id$="-line_total"]')).to_have_text(re.compile(r"450\.00"))
    # the parent's totals: rollups over the rows, and the grand total with 10 % tax
    expect(page.locator("#computed-line_count")).to_have_text("2")
    expect(page.locator("#computed-subtotal")).to_have_text(re.compile(r"3,450\.00"))
    expect(page.locator("#computed-grand_total")).to_have_text(re.compile(r"3,795\.00"))
    screenshot(page, "line-grid-live-totals")

    second.get_by_role("button", name="Move line up").click()
    expect(rows.nth(0).locator('output[id$="-line_total"]')).to_have_text(
        re.compile(r"450\.00"))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=re.compile("Wind farm service"))).to_be_visible()
    assert page.dialogs == []
    (estimate,) = records.list_records(SYSTEM, "estimate", ListQuery()).items
    assert (estimate["line_count"], estimate["subtotal"]) == (2, Decimal("3450.00"))
    # saved in the order on screen: the moved line first
    assert [(ln["position"], ln["line_total"])
            for ln in read_lines(records, SYSTEM, "estimate", estimate["id"])] == [
        (1, Decimal("450.00")), (2, Decimal("3000.00"))]

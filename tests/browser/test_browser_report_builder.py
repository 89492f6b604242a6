"""In a real browser: the report builder — choose the entity, type a filter (checked as it
is typed, a field inserted from the picker), group and add a sum, preview the report on
live data, save it, reload it and see the same table (engine/web/pages/report_builder.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from tests.browser.conftest import (
    ADMIN_PASSWORD,
    REPO,
    LiveServer,
    screenshot,
    served,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The shipped config on a new SQLite file with five opportunities of one account."""
    model = load_model(REPO / "config")
    with served(model, tmp_path / "crm.db") as (server, engine):
        records = records_service(engine, model)
        account = records.create(SYSTEM, "account", {"name": "Acme"})["id"]
        for amount, stage in [("1000", "prospecting"), ("2000", "proposal"), ("3000", "proposal"),
                              ("4000", "won"), ("500", "lost")]:
            data: dict[str, Any] = {"name": f"Deal {amount}", "account": account,
                                    "amount": amount, "stage": stage}
            if stage == "lost":
                data["lost_reason"] = "price"
            records.create(SYSTEM, "opportunity", data)
        yield server


def cells(table: Any) -> list[list[str]]:
    """The text of every row of a table, cell by cell."""
    rows = table.locator("tr")
    return [[c.strip() for c in rows.nth(i).locator("th, td").all_inner_texts()]
            for i in range(rows.count())]


def test_build_preview_save_and_reload_a_report(page: Any) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.goto("/reports")
    page.get_by_role("link", name="New report").click()
    expect(page.get_by_role("heading", name="New report")).to_be_visible()
    page.locator("#builder-entity").select_option("opportunity")
    expect(page.locator('#group-0 option[value="stage"]')).to_have_count(1)
    page.get_by_label("Title").fill("Open deals by stage")

    # the filter is checked as it is typed; a field comes from the picker
    box = page.locator("#builder-filter")
    box.press_sequentially('stage <> "lost" AND amout')
    expect(page.locator("#filter-check")).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#filter-check")).to_contain_text("1:21")
    box.fill('stage <> "lost" AND ')
    box.press("End")
    page.locator("#builder-insert").select_option("amount")
    expect(box).to_have_value('stage <> "lost" AND amount')
    box.press("End")
    box.press_sequentially(" > 0")
    expect(page.locator("#filter-check")).to_have_text("The formula is valid.")

    page.locator("#group-0").select_option("stage")
    expect(page.locator("#group-1")).to_have_count(1)
    page.locator("#agg-1").select_option("sum")
    expect(page.locator("#agg-field-1")).to_have_count(1)
    page.locator("#agg-field-1").select_option("amount")
    expect(box).to_have_value('stage <> "lost" AND amount > 0')  # kept through redraws

    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview-table")
    expect(preview).to_be_visible()
    expect(preview.locator("tr.report-group")).to_have_count(3)
    expect(preview.locator("tr.report-total")).to_contain_text("10,000.00")
    shown = cells(preview)
    screenshot(page, "report-builder-preview")

    page.get_by_label("Everyone who may run it").check()
    page.get_by_role("button", name="Save report").click()
    expect(page.get_by_role("heading", name="Open deals by stage")).to_be_visible()
    assert re.search(r"/reports/saved-\d+$", page.url), page.url
    assert cells(page.locator("#report")) == shown
    page.reload()
    assert cells(page.locator("#report")) == shown

    # it is listed, and opens again in the builder as it was saved
    page.goto("/reports")
    expect(page.get_by_role("link", name="Open deals by stage")).to_be_visible()
    page.get_by_role("link", name="Open deals by stage").click()
    page.get_by_role("link", name="Edit").click()
    expect(page.locator("#builder-filter")).to_have_value('stage <> "lost" AND amount > 0')
    expect(page.locator("#group-0")).to_have_value("stage")
    expect(page.locator("#agg-field-1")).to_have_value("amount")
    assert page.dialogs == []

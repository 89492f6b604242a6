"""In a real browser at 1,400 px: the pipeline board's compact cards, the owner filter, a
drag to "Lost" that asks for the lost reason on the card, cancelling, the keyboard move, and
a board that scrolls inside itself rather than the page scrolling sideways."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.assembly import records_service
from tests.browser.conftest import ADMIN_PASSWORD, REPO, LiveServer, screenshot

pytestmark = pytest.mark.browser
BOARD = "/e/opportunity/board/stage"


def page_scrolls_sideways(page: Any) -> bool:
    return bool(page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"))


def test_board_compact_cards_filter_and_lost_reason(page: Any,
                                                    live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    admin = live_server.users.by_name("admin").actor()
    bo = live_server.users.add("bo", ["sales_rep"], password="bo-password",
                               display_name="Bo Li")
    account = records.create(admin, "account", {"name": "Acme Ltd"})
    made = {}
    for name, amount, stage in (("Price war", "5000", "proposal"),
                                ("Keeper", "3000", "proposal"),
                                ("Walker", "1000", "prospecting")):
        made[name] = records.create(admin, "opportunity", {
            "name": name, "account": account["id"], "amount": amount, "stage": stage,
            "close_date": "2031-06-30"})
    theirs = records.create(admin, "opportunity", {
        "name": "Bo's deal", "account": account["id"], "amount": "700", "stage": "proposal"})
    records.assign(admin, "opportunity", theirs["id"], owner=bo.id, department=None)

    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"/login?next={BOARD}")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Opportunities by Stage")).to_be_visible()

    # compact cards: the facts are shown, the move control only in the card's menu
    card = page.locator(f"#board-card-{made['Price war']['id']}")
    expect(card).to_contain_text("Acme Ltd")
    expect(card).to_contain_text("¥5,000.00")
    expect(card).to_contain_text("Jun 30, 2031")
    expect(card).to_contain_text("Admin")
    expect(card.get_by_label("Move to column")).to_be_hidden()
    assert card.bounding_box()["height"] < 120
    # six columns fit: neither the page nor the board scrolls sideways
    assert not page_scrolls_sideways(page)
    assert page.evaluate("(b => b.scrollWidth <= b.clientWidth)"
                         "(document.querySelector('[data-board]'))")
    screenshot(page, "board-1400")

    # the owner filter: only Bo's deal, and the address says so
    page.get_by_label("Owner").select_option(label="Bo Li (1)")
    expect(page).to_have_url(re.compile(rf"{BOARD}\?owner_id={bo.id}$"))
    expect(page.locator(".board-card")).to_have_count(1)
    expect(page.locator(".board-card")).to_contain_text("Bo's deal")
    page.get_by_label("Owner").select_option(label="Anyone")
    expect(page).to_have_url(re.compile(rf"{BOARD}$"))
    expect(page.locator(".board-card")).to_have_count(4)

    lost = page.locator('.board-column[data-value="lost"]')
    proposal = page.locator('.board-column[data-value="proposal"]')

    # drag to Lost, then cancel: the card goes back, nothing is saved
    keeper = page.locator(f"#board-card-{made['Keeper']['id']}")
    keeper.drag_to(lost)
    expect(keeper.get_by_label("Lost reason")).to_be_visible()
    keeper.get_by_role("button", name="Cancel").click()
    expect(proposal.locator(f"#board-card-{made['Keeper']['id']}")).to_be_visible()
    expect(keeper.locator("form.board-prompt")).to_have_count(0)
    assert records.get(admin, "opportunity", made["Keeper"]["id"])["stage"] == "proposal"

    # drag to Lost, asked for the reason on the card, choose "Price", saved and moved
    card.drag_to(lost)
    reason = card.get_by_label("Lost reason")
    expect(reason).to_be_focused()
    expect(card).to_contain_text("A lost opportunity needs a lost reason")
    assert card.locator("select[name='set.lost_reason'] option").all_inner_texts() == [
        "—", "Price", "Product", "Relationship", "Timing", "Other"]
    expect(lost.locator(f"#board-card-{made['Price war']['id']}")).to_be_visible()
    screenshot(page, "board-lost-reason")
    reason.select_option(label="Price")
    card.get_by_role("button", name="Save and move").click()
    moved = lost.locator(f"#board-card-{made['Price war']['id']}")
    expect(moved).to_have_attribute("data-value", "lost")
    expect(moved.locator("form.board-prompt")).to_have_count(0)
    saved = records.get(admin, "opportunity", made["Price war"]["id"])
    assert saved["stage"] == "lost" and saved["lost_reason"] == "price"
    expect(lost.locator(".board-count")).to_have_text("1 in this column")

    # the keyboard: the card's menu, a column, "Move card"
    walker = page.locator(f"#board-card-{made['Walker']['id']}")
    walker.locator(".board-menu > summary").focus()
    page.keyboard.press("Enter")
    walker.get_by_label("Move to column").select_option(label="Negotiation")
    walker.get_by_role("button", name="Move card").click()
    negotiation = page.locator('.board-column[data-value="negotiation"]')
    expect(negotiation.locator(f"#board-card-{made['Walker']['id']}")).to_be_visible()
    expect(negotiation.locator(".board-menu > summary")).to_be_focused()
    assert records.get(admin, "opportunity", made["Walker"]["id"])["stage"] == "negotiation"
    assert page.dialogs == []


def test_board_scrolls_inside_itself_not_the_page(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    admin = live_server.users.by_name("admin").actor()
    account = records.create(admin, "account", {"name": "Wide Ltd"})
    blank = records.create(admin, "opportunity", {"name": "Unstaged", "account": account["id"]})
    records.update(admin, "opportunity", blank["id"], {"stage": None}, blank["version"])

    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"/login?next={BOARD}")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Without a value")).to_be_attached()
    # seven columns: more than fit, so the board scrolls, and the page does not
    assert page.evaluate("(b => b.scrollWidth > b.clientWidth)"
                         "(document.querySelector('[data-board]'))")
    assert not page_scrolls_sideways(page)
    screenshot(page, "board-1400-seven-columns")
    # on a phone the columns stack, and nothing scrolls sideways
    page.set_viewport_size({"width": 390, "height": 844})
    assert not page_scrolls_sideways(page)
    screenshot(page, "board-390")

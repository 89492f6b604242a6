"""The issue's scenario in a real browser: sign in, an account with two contacts and their
decision tree, an opportunity whose weighted amount follows the typing, a validation error
beside its field, a card dragged on the pipeline board (and a refused move put back), the UI
in Chinese, and a script-shaped name that stays text. Screenshots of the main pages go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import ADMIN_PASSWORD, LiveServer, screenshot

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"
INFLUENCE = "Influence (1\N{EN DASH}5)"


def sign_in(page: Any) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))


def field(page: Any, text: str) -> Any:
    """The input labelled `text` (a required field's label ends with a "*")."""
    return page.get_by_label(re.compile(rf"^{re.escape(text)}\*?$"))


def save(page: Any) -> None:
    page.get_by_role("button", name="Save").click()


def pick(page: Any, field: str, text: str) -> None:
    """Choose `text` in the reference picker of `field` (type, then click the match)."""
    box = page.locator(f"#f-{field}")
    box.fill(text)
    page.locator(f"#pick-{field}").get_by_role("button", name=text).click()
    settled(page, field)


def settled(page: Any, field: str) -> None:
    """Wait until the picker of `field` holds its chosen value and htmx has settled it."""
    from playwright.sync_api import expect

    expect(page.locator(f"#picker-{field} input[name={field}]")).not_to_have_value("")
    # the chosen widget takes the focus back when htmx settles it (autofocus), about 20 ms
    # after the swap: wait for the settling to end (htmx-added is gone), not only for the
    # focus, which htmx may already have put back at the swap; else typing into the next
    # field can land in this one
    expect(page.locator(f"#picker-{field}")).not_to_have_class(re.compile(r"\bhtmx-added\b"))
    expect(page.locator(f"#f-{field}")).to_be_focused()


def record_id(page: Any, entity: str) -> int:
    found = re.search(rf"/e/{entity}/(\d+)(?:\?[^/]*)?$", page.url)
    assert found, page.url
    return int(found.group(1))


def test_scenario(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    screenshot(page, "scenario-dashboard")

    # An account.
    page.goto("/e/account/new")
    field(page, "Account name").fill("Scenario Trading")
    save(page)
    expect(page).to_have_url(re.compile(r"/e/account/\d+\?done=created$"))
    account = record_id(page, "account")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Scenario Trading")

    # Two contacts, one reporting to the other, added from the account's related list.
    page.get_by_role("link", name=re.compile(r"Add · Contact")).click()
    field(page, "Full name").fill("Alice Chief")
    field(page, "Job title").fill("CEO")
    field(page, "Buying role").select_option("decider")
    field(page, INFLUENCE).fill("5")
    save(page)
    expect(page).to_have_url(re.compile(rf"/e/account/{account}\?done=created&what=contact$"))
    page.get_by_role("link", name=re.compile(r"Add · Contact")).click()
    field(page, "Full name").fill("Bob Report")
    field(page, "Job title").fill("CTO")
    pick(page, "reports_to", "Alice Chief")
    field(page, "Buying role").select_option("influencer")
    field(page, INFLUENCE).fill("3")
    save(page)
    expect(page).to_have_url(re.compile(rf"/e/account/{account}\?done=created&what=contact$"))

    # The decision tree, loaded into the account's page: Bob under Alice.
    tree = page.locator("#tree-contact")
    expect(tree).to_be_visible()
    alice = tree.locator("li.tree-item", has=page.get_by_role("link", name="Alice Chief",
                                                                exact=True)).first
    expect(alice).to_have_class(re.compile(r"\bw5\b"))
    expect(alice.locator("ul li.tree-item")).to_contain_text("Bob Report")
    expect(alice.locator("ul li.tree-item")).to_have_class(re.compile(r"\bw3\b"))
    expect(tree).to_contain_text("Decider")
    screenshot(page, "scenario-detail")
    tree.scroll_into_view_if_needed()
    page.goto(f"/e/account/{account}/tree/contact?full=1")
    expect(page.get_by_role("heading", name=re.compile("Decision tree"))).to_be_visible()
    screenshot(page, "scenario-tree")

    # An opportunity: the weighted amount follows the amount as it is typed.
    page.goto(f"/e/opportunity/new?account={account}")
    field(page, "Name").fill("Scenario deal")
    weighted = page.locator("#computed-weighted")
    field(page, "Amount").press_sequentially("20000", delay=30)
    expect(weighted).to_have_text(re.compile(r"2,000\.00"))  # prospecting: 10 %
    field(page, "Stage").select_option("proposal")
    expect(weighted).to_have_text(re.compile(r"10,000\.00"))  # proposal: 50 %
    screenshot(page, "scenario-form")

    # A validation error, shown beside its field, with what was typed kept.
    field(page, "Amount").fill("-5")
    save(page)
    error = page.locator("#field-amount .error")
    expect(error).to_be_visible()
    expect(field(page, "Name")).to_have_value("Scenario deal")
    screenshot(page, "scenario-form-error")
    field(page, "Amount").fill("20000")
    save(page)
    expect(page).to_have_url(re.compile(r"/e/opportunity/\d+\?done=created$"))
    deal = record_id(page, "opportunity")

    # The list.
    page.goto("/e/opportunity")
    expect(page.get_by_role("link", name="Scenario deal", exact=True)).to_be_visible()
    screenshot(page, "scenario-list")

    # The board: drag the card from "Proposal" to "Negotiation". Wide enough that every
    # column is on the screen (narrower, the board scrolls sideways).
    page.set_viewport_size({"width": 1600, "height": 900})
    page.get_by_role("link", name="Board by Stage").click()
    expect(page).to_have_url(re.compile(r"/e/opportunity/board/stage$"))
    card = page.locator(f"#board-card-{deal}")
    proposal = page.locator('.board-column[data-value="proposal"]')
    negotiation = page.locator('.board-column[data-value="negotiation"]')
    expect(proposal.locator(f"#board-card-{deal}")).to_be_visible()
    expect(proposal.locator(".board-totals")).to_contain_text("10,000.00")
    screenshot(page, "scenario-board")
    card.drag_to(negotiation.locator(".board-cards"))
    expect(negotiation.locator(f"#board-card-{deal}")).to_be_visible()
    expect(negotiation.locator(".board-totals")).to_contain_text("16,000.00")  # 80 %
    expect(proposal.locator(".board-totals")).to_contain_text("0 in this column")
    page.reload()  # it was saved, not just drawn there
    expect(negotiation.locator(f"#board-card-{deal}")).to_be_visible()
    # Lost needs a lost reason: the card asks for it in place; cancelled, it goes back.
    page.locator(f"#board-card-{deal}").drag_to(
        page.locator('.board-column[data-value="lost"] .board-cards'))
    asking = page.locator(f"#board-card-{deal}")
    expect(asking).to_contain_text("A lost opportunity needs a lost reason")
    expect(asking.get_by_label("Lost reason")).to_be_visible()
    asking.get_by_role("button", name="Cancel").click()
    back = negotiation.locator(f"#board-card-{deal}")
    expect(back).to_be_visible()
    # The keyboard: the card's menu, a column, "Move card".
    back.locator(".board-menu > summary").focus()
    page.keyboard.press("Enter")
    # (back to qualification: won would need an accepted quote, the pipeline's guard)
    back.get_by_label("Move to column").select_option("qualification")
    back.get_by_role("button", name="Move card").click()
    expect(page.locator(
        f'.board-column[data-value="qualification"] #board-card-{deal}')).to_be_visible()
    screenshot(page, "scenario-board-moved")

    # Chinese.
    menu = page.locator(".user-menu")
    menu.get_by_text("Admin", exact=True).click()
    menu.get_by_label("Language").select_option("zh-CN")
    menu.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("销售机会")
    expect(page.get_by_role("heading", level=1)).to_contain_text("按阶段")
    nav = page.get_by_role("navigation", name="主导航")
    expect(nav.get_by_role("link", name="客户", exact=True)).to_be_visible()
    screenshot(page, "scenario-board-zh")
    page.goto(f"/e/opportunity/{deal}/edit")
    expect(page.get_by_text("加权金额")).to_be_visible()
    expect(field(page, "金额")).to_be_visible()
    screenshot(page, "scenario-form-zh")
    menu.get_by_text("Admin", exact=True).click()
    menu.get_by_label("语言").select_option("en")
    menu.get_by_role("button", name="应用").click()

    # A name shaped like a script is shown as text, and nothing runs.
    page.goto(f"/e/contact/new?account={account}")
    field(page, "Full name").fill(XSS)
    pick(page, "reports_to", "Alice Chief")
    save(page)
    expect(page).to_have_url(re.compile(r"/e/contact/\d+\?done=created$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(XSS)
    page.goto(f"/e/account/{account}")
    expect(page.locator("#tree-contact")).to_contain_text(XSS)
    page.goto("/e/contact")
    expect(page.get_by_role("link", name=XSS, exact=True)).to_be_visible()
    page.goto(f"/search?q={XSS[:4]}")
    expect(page.get_by_role("link", name=XSS, exact=True)).to_be_visible()
    assert page.locator('img[src="x"]').count() == 0
    screenshot(page, "scenario-xss-as-text")
    assert page.dialogs == []

"""The main pages in a real browser under the Content-Security-Policy the server sends
(engine/web/headers.py): dashboard, list (filtered in place by htmx), detail (its decision
tree loaded by htmx), a form with pickers and the live preview, the board (a card moved),
search, the access check, the recycle bin, an error page and the narrow layout's menu. Any
CSP violation (a `securitypolicyviolation` event) or console error fails the test: no
inline script or style is left, and htmx runs without eval, script tags or the <style> it
would inject."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.assembly import records_service
from tests.browser.conftest import REPO, LiveServer, screenshot
from tests.browser.test_browser_scenario import field, pick, sign_in
from tests.deals import accept_quote

pytestmark = pytest.mark.browser

# Reports every violation to the test, from every document the tab loads (added before
# any page script runs; the policy does not apply to it, it is injected by the browser).
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} ` +
                      `at ${e.sourceFile}:${e.lineNumber} (${e.sample})`);
});
"""


# htmx reports a request it aborted (hx-sync="this:replace": a newer preview or picker
# search replaces one in flight, as designed) with console.error; a request that really
# failed shows as an answer of 400 or more, which the test catches by itself (as it does
# the browser's "Failed to load resource" line, but with the address; the browser's own
# /favicon.ico request is not one of the page's).
_NOT_A_PROBLEM = re.compile(r"^(htmx:(sendAbort|afterRequest), |Failed to load resource: "
                            r"the server responded with a status of )")


@pytest.fixture
def watched(page: Any) -> Iterator[tuple[Any, list[str]]]:
    """The tab, and the problems it meets: CSP violations, console errors, uncaught page
    errors and answers of 400 or more."""
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error" and not _NOT_A_PROBLEM.match(message.text):
            problems.append(f"console error on {page.url}: {message.text}")

    page.expose_function("cspViolation", lambda text: problems.append(f"CSP: {text}"))
    page.add_init_script(_REPORT_VIOLATIONS)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error on {page.url}: {error}"))
    page.on("response", lambda answer: problems.append(
        f"{answer.status} {answer.request.method} {answer.url}")
        if answer.status >= 400 else None)
    yield page, problems


def test_the_detector_sees_a_violation(watched: tuple[Any, list[str]],
                                       live_server: LiveServer) -> None:
    """The test below means something: an inline style added to a page is reported."""
    page, problems = watched
    page.goto("/login")
    assert problems == []
    directive = page.evaluate("""() => new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation",
                                  (e) => resolve(e.effectiveDirective), {once: true});
        const style = document.createElement("style");
        style.textContent = "body { color: red }";
        document.head.appendChild(style);
    })""")
    assert directive == "style-src-elem"
    for _ in range(100):  # the report crosses to the test asynchronously
        if any(p.startswith("CSP: style-src-elem") for p in problems):
            break
        page.wait_for_timeout(20)
    assert any(p.startswith("CSP: style-src-elem") for p in problems), problems
    assert page.evaluate("getComputedStyle(document.body).color") != "rgb(255, 0, 0)"


def test_main_pages_work_under_the_policy(watched: tuple[Any, list[str]],
                                          live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    page, problems = watched
    records = records_service(live_server.users.engine, load_model(REPO / "config"))
    admin = live_server.users.by_name("admin").actor()
    acme = records.create(admin, "account", {"name": "Acme Trading", "city": "Hamburg"})
    records.create(admin, "account", {"name": "Beta Works", "city": "Shanghai"})
    chief = records.create(admin, "contact", {"full_name": "Alice Chief",
                                              "account": acme["id"]})
    records.create(admin, "contact", {"full_name": "Bob Report", "account": acme["id"],
                                      "reports_to": chief["id"]})
    deal = records.create(admin, "opportunity", {"name": "Harbour deal", "account": acme["id"],
                                                 "amount": "1000", "stage": "proposal"})
    deal = accept_quote(records, deal["id"])  # the dry run below wins it

    answer = page.goto("/login")
    assert answer is not None
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    sign_in(page)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # the list, filtered in place (htmx swaps the results and pushes the address)
    page.goto("/e/account")
    page.get_by_label("City").fill("hamburg")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"/e/account\?city__contains=hamburg"))
    expect(page.locator("#list-results tbody tr")).to_have_count(1)

    # the detail, whose decision tree htmx loads
    page.goto(f"/e/account/{acme['id']}")
    tree = page.locator("#tree-contact")
    expect(tree).to_contain_text("Bob Report")
    page.wait_for_load_state("networkidle")  # every related tree is in (leaving aborts one)

    # a form: two pickers, the live preview of the computed fields, saved
    page.goto("/e/opportunity/new")
    field(page, "Name").fill("Picked deal")
    pick(page, "account", "Acme Trading")
    pick(page, "primary_contact", "Alice Chief")
    field(page, "Amount").press_sequentially("20000", delay=20)
    field(page, "Stage").select_option("proposal")
    expect(page.locator("#computed-weighted")).to_have_text(re.compile(r"10,000\.00"))
    screenshot(page, "csp-form")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/opportunity/\d+\?done=created$"))
    expect(page.locator("#value-primary_contact")).to_contain_text("Alice Chief")

    # the board: a card moved with its menu (posted by board.js)
    page.set_viewport_size({"width": 1600, "height": 900})
    page.goto("/e/opportunity/board/stage")
    card = page.locator(f"#board-card-{deal['id']}")
    card.locator(".board-menu > summary").click()
    card.get_by_label("Move to column").select_option(label="Negotiation")
    card.get_by_role("button", name="Move card").click()
    expect(page.locator('.board-column[data-value="negotiation"]').locator(
        f"#board-card-{deal['id']}")).to_be_visible()
    screenshot(page, "csp-board")

    # search, the access check, the recycle bin, an error page
    page.goto("/search?q=harbour")
    expect(page.locator("#hits-opportunity .hit")).to_have_count(1)
    page.goto(f"/admin/access?user=admin&entity=account&id={acme['id']}")
    expect(page.locator(".access-facts")).to_be_visible()
    assert page.locator(".access-form").evaluate(
        "e => getComputedStyle(e).display") == "flex"  # its styles load from a file
    # the flows page: a dry run and a bad question, each swapped in place by htmx (the
    # 400 too: admin_flows.js), and nothing written
    page.goto("/admin/flows")
    page.get_by_label("Flow", exact=True).select_option("opportunity_pipeline")
    page.get_by_label("Record number (id)").fill(str(deal["id"]))
    page.get_by_label("Changed values (JSON)").fill('{"stage": "won"}')
    page.get_by_role("button", name="Run the dry run").click()
    expect(page.locator("#flow-test-nothing")).to_be_visible()
    expect(page.locator("#flow-test-result")).to_contain_text("won_notice")
    page.get_by_label("Changed values (JSON)").fill("[1]")
    page.get_by_role("button", name="Run the dry run").click()
    expect(page.locator("#flow-test-error")).to_contain_text("Give a JSON object")
    expect(page.locator("#flow-test-nothing")).to_have_count(0)
    problems[:] = [p for p in problems if not p.startswith("400 POST")
                   or "/admin/flows/test" not in p]  # the bad question's own 400
    assert records.get(admin, "opportunity", deal["id"])["stage"] == "negotiation"
    page.goto("/e/account/trash")
    expect(page.get_by_role("heading", name=re.compile("Recycle bin"))).to_be_visible()
    missing = page.goto("/e/account/987654")
    assert missing is not None and missing.status == 404
    problems[:] = [p for p in problems if "/e/account/987654" not in p]  # its own 404

    # the narrow layout: the menu folds and unfolds (layout.js)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    menu = page.get_by_role("button", name="Menu")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#site-nav")).to_be_visible()

    assert problems == [], "\n".join(problems)
    assert page.dialogs == []

"""A reference picker in the browser: context under each match, the form's account's
contacts first (picker_filter reading what the form holds), keyboard choice."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from tests.browser.conftest import REPO, LiveServer, screenshot
from tests.browser.test_browser_scenario import pick, settled, sign_in

pytestmark = pytest.mark.browser


def seed(tmp_path: Path) -> dict[str, int]:
    """Records in the live server's database (the same SQLite file)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    try:
        records = records_service(engine, load_model(REPO / "config"))
        acme = records.create(SYSTEM, "account", {"name": "Acme", "city": "Shanghai"})["id"]
        other = records.create(SYSTEM, "account", {"name": "Other", "city": "Hamburg"})["id"]
        ann = records.create(SYSTEM, "contact", {"full_name": "Ann Lee", "account": acme,
                                                 "email": "ann@acme.example"})["id"]
        bob = records.create(SYSTEM, "contact", {"full_name": "Bob Lee", "account": other,
                                                 "email": "bob@other.example"})["id"]
    finally:
        engine.dispose()
    return {"acme": acme, "other": other, "ann": ann, "bob": bob}


def test_contact_picker_suggests_the_chosen_account_s_contacts(
        page: Any, live_server: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ids = seed(tmp_path)
    sign_in(page)
    page.goto("/e/opportunity/new")
    pick(page, "account", "Other")
    expect(page.locator("#picker-account input[name=account]")).to_have_value(str(ids["other"]))

    box = page.locator("#f-primary_contact")
    box.fill("Lee")
    matches = page.locator("#pick-primary_contact")
    expect(matches.locator(".pick-title")).to_have_text(["Bob Lee", "Ann Lee"])
    expect(matches.locator(".pick-group")).to_have_text(["Suggested", "Others"])
    expect(matches.locator(".pick-context")).to_have_text(
        ["Other · bob@other.example", "Acme · ann@acme.example"])
    screenshot(page, "picker-suggested-contacts")

    # the keyboard: down to the first match, Enter chooses it
    box.press("ArrowDown")
    expect(matches.locator("button.pick").first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#picker-primary_contact input[name=primary_contact]")).to_have_value(
        str(ids["bob"]))

    # another account in the form: its contacts come first now
    page.goto("/e/opportunity/new")
    pick(page, "account", "Acme")
    expect(page.locator("#picker-account input[name=account]")).to_have_value(str(ids["acme"]))
    page.locator("#f-primary_contact").fill("Lee")
    expect(page.locator("#pick-primary_contact .pick-title")).to_have_text(
        ["Ann Lee", "Bob Lee"])
    page.locator("#pick-primary_contact").get_by_role(
        "button", name=re.compile("^Ann Lee")).click()
    settled(page, "primary_contact")  # else its autofocus can take the name's typing
    expect(page.locator("#picker-primary_contact input[name=primary_contact]")).to_have_value(
        str(ids["ann"]))
    page.locator("#f-name").fill("Picked deal")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/opportunity/\d+(\?.*)?$"))
    expect(page.locator("#value-primary_contact")).to_contain_text("Ann Lee")
    assert page.dialogs == []


def test_a_match_clicked_the_moment_it_shows_is_chosen(
        page: Any, live_server: LiveServer, tmp_path: Path) -> None:
    """The click lands in the moment the list shows and before the form's preview (300 ms
    after the typing) starts. Two ways it was lost: htmx wires up swapped-in content when it
    settles, 20 ms after the swap by default (base.html settles at once); and the choice's
    request shared the form's `hx-sync` queue, so the preview replaced it in flight
    (form.html: hx-disinherit)."""
    from playwright.sync_api import expect

    ids = seed(tmp_path)
    sign_in(page)
    page.goto("/e/opportunity/new")
    # click the first match in the same moment htmx puts it in the list
    page.evaluate("""() => {
      const list = document.querySelector("#pick-account");
      new MutationObserver((changes, watch) => {
        const match = list.querySelector("button.pick");
        if (match) { watch.disconnect(); match.click(); }
      }).observe(list, {childList: true});
    }""")
    page.locator("#f-account").fill("Acme")
    expect(page.locator("#picker-account input[name=account]")).to_have_value(str(ids["acme"]))
    expect(page.locator("#f-account")).to_have_value("Acme")

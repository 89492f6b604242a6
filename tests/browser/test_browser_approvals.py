"""In a real browser: a sales manager approves a quote with a deep discount from the
approvals inbox, and the quote moves on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.browser.conftest import ADMIN_PASSWORD, LiveServer, screenshot

pytestmark = pytest.mark.browser


def test_a_manager_approves_a_quote_from_the_inbox(page: Any, live_server: LiveServer) -> None:
    clients: list[httpx.Client] = []

    def api(token: str) -> httpx.Client:
        client = httpx.Client(base_url=live_server.url,
                              headers={"Authorization": f"Bearer {token}"})
        clients.append(client)
        return client

    try:
        _approve_from_the_inbox(page, live_server, api)
    finally:
        for client in clients:
            client.close()


def _approve_from_the_inbox(page: Any, live_server: LiveServer,
                            api: Callable[[str], httpx.Client]) -> None:
    from playwright.sync_api import expect

    users = live_server.users

    admin = api(users.new_token("admin"))
    east = admin.post("/api/department", json={"name": "East region"}).json()
    manager = users.add("li_manager", ["sales_manager"], password=ADMIN_PASSWORD,
                        department_id=east["id"], display_name="Li Na")
    users.add("wang_rep", ["sales_rep"], password=ADMIN_PASSWORD, department_id=east["id"])
    assert admin.patch(f"/api/department/{east['id']}", json={
        "manager": manager.id, "version": east["version"]}).status_code == 200
    product = admin.post("/api/product", json={"name": "Tow tractor", "code": "TT-9",
                                               "list_price": "50000.00"}).json()
    rep = api(users.new_token("wang_rep"))
    account = rep.post("/api/account", json={"name": "Pudong Airport Services"}).json()
    quote = rep.post("/api/quote", json={"name": "Tow tractors",
                                         "account": account["id"]}).json()
    line = rep.post("/api/quote_line", json={"quote": quote["id"], "product": product["id"],
                                             "quantity": "4", "discount": "18"})
    assert line.status_code == 201, line.text
    quote = rep.get(f"/api/quote/{quote['id']}").json()
    sent = rep.patch(f"/api/quote/{quote['id']}", json={"status": "in_review",
                                                        "version": quote["version"]})
    assert sent.json()["status"] == "in_review"

    page.goto("/login")
    page.get_by_label("User name").fill("li_manager")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    count = page.locator(".approvals-count")
    expect(count).to_contain_text("1")
    count.click()
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    task = page.locator(".approval-task")
    expect(task).to_have_count(1)
    expect(task).to_contain_text("Tow tractors")
    expect(task).to_contain_text("Sales manager (discount over 15 %)")
    task.get_by_label("Comment").fill("Fleet deal, discount agreed")
    screenshot(page, "approvals-inbox")
    task.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_have_text("Approved.")
    expect(page.get_by_text("Nothing is waiting for your approval.")).to_be_visible()
    assert rep.get(f"/api/quote/{quote['id']}").json()["status"] == "approved"
    decided = rep.get(f"/api/quote/{quote['id']}/approvals").json()["items"][0]
    assert decided["status"] == "approved"
    assert decided["tasks"][0]["comment"] == "Fleet deal, discount agreed"
    assert page.dialogs == []

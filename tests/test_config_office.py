"""The shipped office and planning model: expense budgets against their expenses, sales
targets, the knowledge base's search, announcements with target departments and read
receipts, and an activity's cost; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Invalid
from engine.runtime.records.search import search_records
from engine.web.i18n import translations
from engine.web.nav import navigation
from tests.access_helpers import departments
from tests.conftest import Env
from tests.web_helpers import csrf_of, sign_in


def _budget(env: Env, **values: Any) -> dict[str, Any]:
    return env.records.create(SYSTEM, "expense_budget", {
        "name": "2026 Q1 travel", "budget_department": departments(env)["BJ"],
        "category": "travel", "period_start": "2026-01-01", "period_end": "2026-03-31",
        "amount": "10000", **values})


def _expense(env: Env, budget: dict[str, Any], amount: str, status: str,
             **values: Any) -> dict[str, Any]:
    return env.records.create(SYSTEM, "expense", {
        "subject": "Trip to Shenyang", "category": "travel", "amount": amount,
        "budget": budget["id"], "status": status, "expense_date": "2026-02-10", **values})


def test_a_budget_keeps_what_its_expenses_used(env: Env) -> None:
    budget = _budget(env)
    _expense(env, budget, "1200.50", "approved")
    _expense(env, budget, "800", "paid", paid_on="2026-02-20")
    _expense(env, budget, "300", "submitted")
    _expense(env, budget, "5000", "rejected")
    _expense(env, budget, "70", "draft")
    budget = env.records.get(SYSTEM, "expense_budget", budget["id"])
    assert (budget["used"], budget["pending"], budget["remaining"]) == (
        Decimal("2000.50"), Decimal("300.00"), Decimal("7999.50"))
    assert budget["used_percent"] == Decimal("20.0")
    expense = _expense(env, budget, "10", "draft")
    assert expense["budget_remaining"] == Decimal("7999.50")


@pytest.mark.parametrize(("values", "field"), [
    ({"category": "entertainment"}, "budget"),  # the budget is for travel
    ({"expense_date": "2026-04-01"}, "expense_date"),  # after the budget's period
    ({"status": "paid"}, "paid_on"),
    ({"amount": "0"}, "amount"),
])
def test_an_expense_must_fit_its_budget(env: Env, values: dict[str, Any], field: str) -> None:
    budget = _budget(env)
    with pytest.raises(Invalid) as info:
        _expense(env, budget, **{"amount": "10", "status": "draft", **values})
    assert list(info.value.fields) == [field]


def test_an_expense_is_dated_today_unless_told(env: Env) -> None:
    env.records.clock = lambda: datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
    expense = env.records.create(SYSTEM, "expense", {
        "subject": "Taxi", "category": "transport", "amount": "35"})
    assert (expense["expense_date"], expense["status"]) == (date(2026, 2, 10), "draft")


def test_budget_periods_and_sales_targets_run_forward(env: Env) -> None:
    with pytest.raises(Invalid) as info:
        _budget(env, period_end="2025-12-31")
    assert list(info.value.fields) == ["period_end"]
    line = env.records.create(SYSTEM, "product_line", {"name": "Compressors", "code": "CMP"})
    target = env.records.create(SYSTEM, "sales_target", {
        "name": "2026 H1 compressors, North", "period_start": "2026-01-01",
        "period_end": "2026-06-30", "target_department": departments(env)["NORTH"],
        "product_line": line["id"], "metric": "gross_margin", "target_value": "1500000"})
    assert (target["metric"], target["target_value"]) == ("gross_margin", Decimal("1500000"))
    with pytest.raises(Invalid) as info:  # for nobody
        env.records.create(SYSTEM, "sales_target", {
            "name": "x", "period_start": "2026-01-01", "period_end": "2026-06-30",
            "target_value": "1"})
    assert list(info.value.fields) == ["target_department"]
    mine = env.records.create(SYSTEM, "sales_target", {
        "name": "My Q1", "period_start": "2026-01-01", "period_end": "2026-03-31",
        "salesperson": env.admin.id, "metric": "quantity", "target_value": "12"})
    assert mine["salesperson"] == env.admin.id


def test_knowledge_is_found_by_title_tags_and_body(env: Env) -> None:
    article = env.records.create(SYSTEM, "knowledge_article", {
        "title": "Replacing the shaft seal", "category": "service_repair",
        "tags": "leak, seal, pump", "body": "Drain the housing first, then lift the cover."})
    for words, field in [("shaft", None), ("leak", "tags"), ("housing", "body")]:
        found = search_records(env.records, SYSTEM, "knowledge_article", words)
        assert found is not None and [h.id for h in found.hits] == [article["id"]]
        assert found.hits[0].matched == field
    pump = env.records.create(SYSTEM, "product", {"name": "Pump P-200", "code": "P200"})
    link = env.records.create(SYSTEM, "knowledge_article_product", {
        "article": article["id"], "product": pump["id"]})
    assert link["product_name"] == "Pump P-200"
    assert env.records.get(SYSTEM, "knowledge_article", article["id"])["related_products"] == 1
    with pytest.raises(Invalid) as info:
        env.records.update(SYSTEM, "knowledge_article", article["id"],
                           {"status": "published"}, article["version"])
    assert list(info.value.fields) == ["published_on"]


def test_an_announcement_goes_to_departments_and_counts_its_readers(env: Env) -> None:
    notice = env.records.create(SYSTEM, "announcement", {
        "title": "New warranty policy", "kind": "policy", "body": "From 1 April …"})
    with pytest.raises(Invalid) as info:  # published to nobody
        env.records.update(SYSTEM, "announcement", notice["id"], {
            "status": "published", "published_on": "2026-03-20"}, notice["version"])
    assert list(info.value.fields) == ["whole_company"]
    target = env.records.create(SYSTEM, "announcement_target", {
        "announcement": notice["id"], "branch": departments(env)["NORTH"]})
    assert (target["branch_name"], target["include_children"]) == ("North region", True)
    notice = env.records.get(SYSTEM, "announcement", notice["id"])
    notice = env.records.update(SYSTEM, "announcement", notice["id"], {
        "status": "published", "published_on": "2026-03-20"}, notice["version"])
    assert (notice["target_departments"], notice["reads"], notice["last_read_at"]) == (
        1, 0, None)
    for when in ["2026-03-20T08:00:00Z", "2026-03-21T09:30:00Z"]:
        env.records.create(SYSTEM, "announcement_read", {
            "announcement": notice["id"], "reader": env.admin.id, "read_at": when})
    notice = env.records.get(SYSTEM, "announcement", notice["id"])
    assert notice["reads"] == 2
    assert notice["last_read_at"].isoformat().startswith("2026-03-21T09:30:00")
    receipt = env.records.create(SYSTEM, "announcement_read", {
        "announcement": notice["id"], "reader": env.admin.id})
    assert receipt["read_at"] is not None and receipt["announcement_title"] == notice["title"]
    with pytest.raises(Invalid) as info:
        env.records.update(SYSTEM, "announcement", notice["id"],
                           {"expires_on": "2026-03-01"}, notice["version"])
    assert list(info.value.fields) == ["expires_on"]


def test_an_activity_records_its_cost(env: Env) -> None:
    visit = env.records.create(SYSTEM, "activity", {
        "subject": "Site visit", "kind": "visit", "cost": "420.00"})
    assert visit["cost"] == Decimal("420.00")
    with pytest.raises(Invalid) as info:
        env.records.create(SYSTEM, "activity", {"subject": "x", "kind": "call", "cost": "-1"})
    assert list(info.value.fields) == ["cost"]


def test_the_office_area_holds_expenses_knowledge_and_announcements(env: Env) -> None:
    areas = {a.key: [e.name for e in a.entities] for a in navigation(env.model, "en")}
    assert {"expense_budget", "expense", "knowledge_article", "announcement"} <= set(
        areas["office"])
    assert "sales_target" in areas["sales"] and "service_request" in areas["service"]
    office = next(a for a in navigation(env.model, "zh-CN") if a.key == "office")
    assert translations()["zh-CN"].gettext(office.title) == "办公"  # the title is a msgid


def test_the_office_pages_show_lists_forms_and_related_lists(
        env: Env, pages: TestClient) -> None:
    sign_in(pages)
    budget = _budget(env)
    _expense(env, budget, "1200.50", "approved")
    detail = pages.get(f"/e/expense_budget/{budget['id']}")
    assert detail.status_code == 200 and "Trip to Shenyang" in detail.text
    notice = env.records.create(SYSTEM, "announcement", {
        "title": "New warranty policy", "kind": "policy", "body": "From 1 April …"})
    env.records.create(SYSTEM, "announcement_read", {
        "announcement": notice["id"], "reader": env.admin.id})
    pages.post("/account/language", data={"language": "zh-CN", "csrf_token": csrf_of(detail.text)})
    shown = pages.get(f"/e/announcement/{notice['id']}")
    assert shown.status_code == 200 and "阅读回执" in shown.text and "发送范围与回执" in shown.text
    assert pages.get("/e/expense/board/status").status_code == 200
    for name in ("expense_budget", "expense", "sales_target", "knowledge_article",
                 "knowledge_article_product", "announcement", "announcement_target",
                 "announcement_read"):
        for path in (f"/e/{name}", f"/e/{name}/new"):
            assert pages.get(path).status_code == 200, path

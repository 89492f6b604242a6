"""The shipped reports (config/reports/*.yaml): each against a hand-computed answer on one
small fixed dataset built through the records service, on SQLite and PostgreSQL; a sales
rep's answers count only their own records.

The dataset (`world`): two reps, rep_a in the Shanghai branch (East region) and rep_b in
Beijing (North region); three accounts; two campaigns; six opportunities

    o1 rep_a Acme   1000 prospecting 2026-03-10 Expo     p 10  pipeline
    o2 rep_a Acme   2000 proposal    2026-03-20          p 50  commit (overridden)
    o3 rep_b Beta   3000 negotiation 2026-04-05          p 60 (overridden) commit
    o4 rep_b Beta   4000 won         2026-03-15 Expo     p 100 closed
    o5 rep_a Acme    500 lost/price  2026-04-01          p 0   omitted
    o6 rep_b Gamma  1500 lost/timing 2026-04-02 Webinar  p 0   omitted

and the leads, competitors, quotes, contracts, plan lines, service requests, plans, work
orders and budgets each report reads (see each test).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from engine.runtime.access import SYSTEM
from engine.runtime.reports import ReportResult, run_report
from tests.access_helpers import Person, departments, place, user
from tests.conftest import Env
from tests.test_web_reports import browser


def D(text: str) -> Decimal:
    return Decimal(text)


@dataclass
class World:
    a: Person
    b: Person
    ids: dict[str, int]
    """Record ids by a short name (o1, acme, expo, ...)."""
    depts: dict[str, int]


def world(env: Env) -> World:
    depts = departments(env)
    a = user(env, "rep_a", "sales_rep", department=depts["SH"])
    b = user(env, "rep_b", "sales_rep", department=depts["BJ"])
    ids: dict[str, int] = {}

    def put(key: str, entity: str, data: dict[str, Any], owner: Person | None = None
            ) -> None:
        ids[key] = place(env, entity, data, owner=owner,
                         department=owner.department_id if owner else None)["id"]

    put("acme", "account", {"name": "Acme", "industry": "manufacturing",
                            "lifecycle": "signed"})
    put("beta", "account", {"name": "Beta", "industry": "energy", "lifecycle": "prospect"})
    put("gamma", "account", {"name": "Gamma", "lifecycle": "target"})
    put("expo", "campaign", {"name": "Expo", "campaign_type": "trade_show",
                             "start_date": "2026-03-01", "budget": "1000",
                             "actual_cost": "800"})
    put("webinar", "campaign", {"name": "Webinar", "campaign_type": "webinar",
                                "start_date": "2026-04-01", "budget": "500"})
    for key, owner, account, amount, stage, close, extra in [
            ("o1", a, "acme", "1000", "prospecting", "2026-03-10", {"campaign": "expo"}),
            ("o2", a, "acme", "2000", "proposal", "2026-03-20",
             {"forecast_override": "commit"}),
            ("o3", b, "beta", "3000", "negotiation", "2026-04-05",
             {"probability_override": "60"}),
            ("o4", b, "beta", "4000", "won", "2026-03-15", {"campaign": "expo"}),
            ("o5", a, "acme", "500", "lost", "2026-04-01", {"lost_reason": "price"}),
            ("o6", b, "gamma", "1500", "lost", "2026-04-02",
             {"lost_reason": "timing", "campaign": "webinar"})]:
        data: dict[str, Any] = {"name": key, "account": ids[account], "amount": amount,
                                "stage": stage, "close_date": close}
        data.update({k: ids[v] if k == "campaign" else v for k, v in extra.items()})
        put(key, "opportunity", data, owner)
    return World(a, b, ids, depts)


def table(result: ReportResult) -> list[tuple[Any, ...]]:
    """(level, keys..., values...) per row, the totals last."""
    return [(r.level, *r.keys, *r.values.values()) for r in (*result.rows, result.totals)]


def run(env: Env, name: str, actor: Any = None) -> ReportResult:
    report = env.model.report(name)
    assert report is not None, name
    return run_report(env.records, actor or env.admin.actor(), report)


def test_forecast_by_close_month_and_category(env: Env) -> None:
    world(env)
    assert table(run(env, "forecast_by_month")) == [
        (2, "2026-03", "pipeline", 1, D("1000.00"), D("100.00")),
        (2, "2026-03", "commit", 1, D("2000.00"), D("1000.00")),
        (2, "2026-03", "closed", 1, D("4000.00"), D("4000.00")),
        (1, "2026-03", None, 3, D("7000.00"), D("5100.00")),
        (2, "2026-04", "commit", 1, D("3000.00"), D("1800.00")),
        (1, "2026-04", None, 1, D("3000.00"), D("1800.00")),
        (0, None, None, 4, D("10000.00"), D("6900.00")),
    ]


def test_a_reps_forecast_counts_only_their_deals(env: Env) -> None:
    w = world(env)
    assert table(run(env, "forecast_by_month", w.a)) == [
        (2, "2026-03", "pipeline", 1, D("1000.00"), D("100.00")),
        (2, "2026-03", "commit", 1, D("2000.00"), D("1000.00")),
        (1, "2026-03", None, 2, D("3000.00"), D("1100.00")),
        (0, None, None, 2, D("3000.00"), D("1100.00")),
    ]


def test_sales_ranking_by_won_amount(env: Env) -> None:
    w = world(env)
    result = run(env, "employee_performance")
    assert table(result) == [
        (1, w.b.id, D("4000.00"), 1, 1, D("50.0000"), D("3000.00")),
        (1, w.a.id, None, 0, 1, D("0.0000"), D("3000.00")),
        (0, None, D("4000.00"), 1, 2, D("33.3333"), D("6000.00")),
    ]
    assert [r.names[0] for r in result.rows] == ["rep_b", "rep_a"]
    # a rep ranks only themself
    assert [r.keys for r in run(env, "employee_performance", w.a).rows] == [(w.a.id,)]


def test_branch_results_roll_up_to_the_region(env: Env) -> None:
    w = world(env)
    d = w.depts
    result = run(env, "branch_results")
    assert table(result) == [
        (2, d["NORTH"], d["BJ"], D("4000.00"), 1, D("3000.00"), D("5800.00")),
        (1, d["NORTH"], None, D("4000.00"), 1, D("3000.00"), D("5800.00")),
        (2, d["EAST"], d["SH"], None, 0, D("3000.00"), D("1100.00")),
        (1, d["EAST"], None, None, 0, D("3000.00"), D("1100.00")),
        (0, None, None, D("4000.00"), 1, D("6000.00"), D("6900.00")),
    ]
    assert [r.names for r in result.rows] == [
        ("North region", "Beijing branch"), ("North region", None),
        ("East region", "Shanghai branch"), ("East region", None)]


def leads(env: Env, w: World) -> None:
    expo = w.ids["expo"]
    for company, source, campaign, status, value in [
            ("L1", "website", None, "converted", "100"), ("L2", "website", None, "new", "200"),
            ("L3", "campaign", expo, "qualified", "300"),
            ("L4", "campaign", expo, "converted", "400"),
            ("L5", "trade_show", expo, "disqualified", None)]:
        data: dict[str, Any] = {"company": company, "source": source, "status": status}
        if campaign:
            data["campaign"] = campaign
        if value:
            data["estimated_value"] = value
        place(env, "lead", data)


def test_lead_conversion_by_source_and_campaign(env: Env) -> None:
    w = world(env)
    leads(env, w)
    expo = w.ids["expo"]
    assert table(run(env, "lead_conversion")) == [
        (2, "website", None, 2, 1, 1, D("50.0000"), D("300.00")),
        (1, "website", None, 2, 1, 1, D("50.0000"), D("300.00")),
        (2, "trade_show", expo, 1, 0, 0, D("0.0000"), None),
        (1, "trade_show", None, 1, 0, 0, D("0.0000"), None),
        (2, "campaign", expo, 2, 2, 1, D("50.0000"), D("700.00")),
        (1, "campaign", None, 2, 2, 1, D("50.0000"), D("700.00")),
        (0, None, None, 5, 3, 2, D("40.0000"), D("1000.00")),
    ]


def test_campaign_results_a_detail_report_with_totals(env: Env) -> None:
    w = world(env)
    leads(env, w)
    result = run(env, "campaign_results")
    assert [r.keys for r in result.rows] == [
        ("Webinar", "webinar", "planned", date(2026, 4, 1), D("500.00"), None, 0, 1,
         D("0.00"), D("0.00")),
        ("Expo", "trade_show", "planned", date(2026, 3, 1), D("1000.00"), D("800.00"), 3, 2,
         D("4000.00"), D("3200.00")),
    ]
    assert result.totals.values == {
        "budget": D("1500.00"), "actual_cost": D("800.00"), "leads": 3, "opportunities": 3,
        "won_amount": D("4000.00"), "won_minus_cost": D("3200.00")}


def competition(env: Env, w: World) -> dict[str, int]:
    ids = {}
    ids["c1"] = place(env, "competitor", {"name": "Thunder"})["id"]
    ids["c2"] = place(env, "competitor", {"name": "Nord"})["id"]
    ids["pl"] = place(env, "product_line", {"name": "Loaders", "code": "LD"})["id"]
    ids["p1"] = place(env, "competitor_product", {"name": "T-30", "competitor": ids["c1"],
                                                  "product_line": ids["pl"]})["id"]
    for deal, who, outcome, product, price in [
            ("o1", "c1", "open", None, None), ("o4", "c1", "we_won", "p1", "100"),
            ("o6", "c1", "they_won", "p1", "200"), ("o3", "c2", "they_won", None, None)]:
        data: dict[str, Any] = {"opportunity": w.ids[deal], "competitor": ids[who],
                                "outcome": outcome}
        if product:
            data["competitor_product"] = ids[product]
            data["their_price"] = price
        place(env, "opportunity_competitor", data)
    return ids


def test_competitor_win_loss_by_industry(env: Env) -> None:
    w = world(env)
    c = competition(env, w)
    result = run(env, "competitor_win_loss")
    assert table(result) == [
        (2, c["c1"], "manufacturing", 1, 0, 0, None, None),
        (2, c["c1"], "energy", 1, 1, 0, D("100.0000"), None),
        (2, c["c1"], None, 1, 0, 1, D("0.0000"), D("1500.00")),
        (1, c["c1"], None, 3, 1, 1, D("50.0000"), D("1500.00")),
        (2, c["c2"], "energy", 1, 0, 1, D("0.0000"), D("3000.00")),
        (1, c["c2"], None, 1, 0, 1, D("0.0000"), D("3000.00")),
        (0, None, None, 4, 1, 2, D("33.3333"), D("4500.00")),
    ]
    assert result.rows[0].names[0] == "Thunder"


def test_competitors_by_product_line(env: Env) -> None:
    w = world(env)
    c = competition(env, w)
    assert table(run(env, "competitor_by_product_line")) == [
        (2, c["pl"], c["c1"], 2, 1, 1, D("150.0000")),
        (1, c["pl"], None, 2, 1, 1, D("150.0000")),
        (2, None, c["c1"], 1, 0, 0, None),
        (2, None, c["c2"], 1, 0, 1, None),
        (1, None, None, 2, 0, 1, None),
        (0, None, None, 4, 1, 2, D("150.0000")),
    ]


def test_customer_lifecycle(env: Env) -> None:
    world(env)
    assert table(run(env, "customer_lifecycle")) == [
        (1, "target", 1, D("0.00"), D("0.00"), D("0.00")),
        (1, "prospect", 1, D("1800.00"), D("4000.00"), D("0.00")),
        (1, "signed", 1, D("1100.00"), D("0.00"), D("0.00")),
        (0, None, 3, D("2900.00"), D("4000.00"), D("0.00")),
    ]


def products(env: Env) -> tuple[int, int]:
    line = place(env, "product_line", {"name": "Forklifts", "code": "FL"})["id"]
    x = place(env, "product", {"name": "FX", "code": "FX", "product_line": line,
                               "list_price": "100", "unit_cost": "60"})["id"]
    y = place(env, "product", {"name": "FY", "code": "FY", "product_line": line,
                               "list_price": "50", "unit_cost": "20"})["id"]
    return x, y


def test_quote_details_a_row_per_line(env: Env) -> None:
    w = world(env)
    x, y = products(env)
    quote = place(env, "quote", {"name": "Q-Acme", "account": w.ids["acme"],
                                 "opportunity": w.ids["o2"], "quoted_on": "2026-03-05"})["id"]
    place(env, "quote_line", {"quote": quote, "position": 2, "product": y, "quantity": "1"})
    place(env, "quote_line", {"quote": quote, "position": 1, "product": x, "quantity": "2",
                              "unit_price": "90", "discount": "10"})
    result = run(env, "quote_details")
    assert [(r.keys, r.names[:2]) for r in result.rows] == [
        ((quote, w.ids["acme"], "draft", date(2026, 3, 5), 1, x, D("2.0000"), D("100.00"),
          D("90.00"), D("10.00"), D("162.00"), D("120.00"), D("42.00"), D("25.93")),
         ("Q-Acme", "Acme")),
        ((quote, w.ids["acme"], "draft", date(2026, 3, 5), 2, y, D("1.0000"), D("50.00"),
          D("50.00"), D("0.00"), D("50.00"), D("20.00"), D("30.00"), D("60.00")),
         ("Q-Acme", "Acme")),
    ]
    assert result.totals.values == {"quantity": D("3.0000"), "line_total": D("212.00"),
                                    "cost_total": D("140.00"), "margin": D("72.00")}


def contracts(env: Env, w: World) -> dict[str, int]:
    x, _y = products(env)
    ids = {}
    ids["k1"] = place(env, "contract", {"name": "K1", "account": w.ids["acme"],
                                        "status": "draft"})["id"]
    ids["k2"] = place(env, "contract", {"name": "K2", "account": w.ids["beta"],
                                        "status": "draft"})["id"]
    place(env, "contract_line", {"contract": ids["k1"], "product": x, "quantity": "1",
                                 "unit_price": "5000", "unit_cost": "3000"})
    place(env, "invoice", {"contract": ids["k1"], "invoice_type": "vat_normal",
                           "amount": "2000", "status": "issued", "issued_on": "2020-02-01",
                           "tax_invoice_no": "T1", "tax_rate": "13"})
    place(env, "receipt", {"contract": ids["k1"], "amount": "1000", "status": "confirmed",
                           "received_on": "2020-02-02"})
    k1 = ids["k1"]  # signed once its line is in (a signed contract's lines are fixed)
    version = env.records.get(SYSTEM, "contract", k1)["version"]
    env.records.update(SYSTEM, "contract", k1, {"status": "executing",
                                                "signed_on": "2020-01-02"}, version)
    for key, kind, due, planned, status, actual in [
            ("p1", "installment", "2020-01-15", "1000", "done", "1000"),
            ("p2", "installment", "2020-01-31", "500", "planned", "200"),
            ("p3", "installment", "2099-06-01", "2000", "planned", None),
            ("p4", "acceptance", "2020-01-10", None, "planned", None),
            ("p5", "installment", "2020-01-20", "700", "cancelled", None)]:
        data: dict[str, Any] = {"contract": k1, "kind": kind, "description": key,
                                "due_date": due, "status": status, "executor": w.a.id}
        if planned:
            data["planned_amount"] = planned
        if actual:
            data["actual_amount"] = actual
        if status == "done":
            data["actual_date"] = due
        ids[key] = place(env, "execution_plan_line", data)["id"]
    return ids


def test_collection_plan_by_due_month(env: Env) -> None:
    contracts(env, world(env))
    assert table(run(env, "collection_plan")) == [
        (1, "2020-01", 2, D("1500.00"), D("1200.00"), D("300.00"), 1),
        (1, "2099-06", 1, D("2000.00"), None, D("2000.00"), 0),
        (0, None, 3, D("3500.00"), D("1200.00"), D("2300.00"), 1),
    ]


def test_overdue_receivables_a_row_per_late_instalment(env: Env) -> None:
    w = world(env)
    k = contracts(env, w)
    result = run(env, "overdue_receivables")
    late = (datetime.now(UTC).date() - date(2020, 1, 31)).days
    assert [(r.keys, r.names) for r in result.rows] == [
        ((k["k1"], w.ids["acme"], "p2", date(2020, 1, 31), D("500.00"), D("200.00"),
          D("300.00"), D(f"{late}.00"), w.a.id),
         ("K1", "Acme", None, None, None, None, None, None, "rep_a"))]
    assert result.totals.values == {"outstanding": D("300.00")}


def test_contract_execution_by_status(env: Env) -> None:
    contracts(env, world(env))
    assert table(run(env, "contract_execution")) == [
        (1, "draft", 1, D("0.00"), D("0.00"), D("0.00"), D("0.00"), D("0.00")),
        (1, "executing", 1, D("5000.00"), D("2000.00"), D("1000.00"), D("4000.00"),
         D("3000.00")),
        (0, None, 2, D("5000.00"), D("2000.00"), D("1000.00"), D("4000.00"), D("3000.00")),
    ]


def test_service_compliance_by_type_and_priority(env: Env) -> None:
    w = world(env)
    queue = place(env, "service_queue", {
        "name": "Hotline", "response_minutes_urgent": 15, "response_minutes_high": 30,
        "response_minutes_normal": 60, "response_minutes_low": 120, "resolve_hours_urgent": 4,
        "resolve_hours_high": 8, "resolve_hours_normal": 8, "resolve_hours_low": 24})["id"]
    for n, (kind, priority, responded, resolved) in enumerate([
            ("repair", "urgent", "2026-03-02T10:10:00Z", "2026-03-02T11:00:00Z"),
            ("repair", "urgent", "2026-03-02T10:30:00Z", None),
            ("complaint", "normal", "2026-03-02T10:45:00Z", "2026-03-03T10:00:00Z"),
            ("complaint", "normal", None, None)]):
        data: dict[str, Any] = {"subject": f"r{n}", "account": w.ids["acme"],
                                "request_type": kind, "priority": priority, "queue": queue,
                                "received_at": "2026-03-02T10:00:00Z"}
        if responded:
            data["first_response_at"] = responded
        if resolved:
            data["resolved_at"] = resolved
        place(env, "service_request", data)
    assert table(run(env, "service_compliance")) == [
        (2, "repair", "urgent", 2, 1, D("50.0000"), 1, D("1.000000")),
        (1, "repair", None, 2, 1, D("50.0000"), 1, D("1.000000")),
        (2, "complaint", "normal", 2, 1, D("100.0000"), 0, D("24.000000")),
        (1, "complaint", None, 2, 1, D("100.0000"), 0, D("24.000000")),
        (0, None, None, 4, 2, D("66.6667"), 1, D("12.500000")),
    ]


def test_service_plans_and_work_orders(env: Env) -> None:
    w = world(env)
    acme = w.ids["acme"]
    planned = place(env, "service_plan", {"subject": "s1", "plan_type": "maintenance",
                                          "status": "planned", "account": acme,
                                          "visit_date": "2026-05-01"})["id"]
    done = place(env, "service_plan", {"subject": "s2", "plan_type": "maintenance",
                                       "status": "done", "account": acme,
                                       "visit_date": "2026-02-01", "done_on": "2026-02-01"})["id"]
    place(env, "service_plan", {"subject": "s3", "plan_type": "inspection", "status": "done",
                                "account": acme, "visit_date": "2026-02-02",
                                "done_on": "2026-02-02"})
    for subject, kind, status, hours, rate, plan in [
            ("w1", "repair", "completed", "2", "100", planned),
            ("w2", "repair", "open", None, None, planned),
            ("w3", "maintenance", "completed", "1", "50", done)]:
        data: dict[str, Any] = {"subject": subject, "account": acme, "work_type": kind,
                                "status": status}
        if hours:
            data.update(hours=hours, hourly_rate=rate, started_at="2026-02-01T08:00:00Z",
                        completed_at="2026-02-01T12:00:00Z")
        data["service_plan"] = plan
        place(env, "work_order", data)
    assert table(run(env, "service_plans")) == [
        (2, "maintenance", "planned", 1, 2),
        (2, "maintenance", "done", 1, 1),
        (1, "maintenance", None, 2, 3),
        (2, "inspection", "done", 1, 0),
        (1, "inspection", None, 1, 0),
        (0, None, None, 3, 3),
    ]
    assert table(run(env, "work_orders")) == [
        (2, "repair", "open", 1, None, None, D("0.00")),
        (2, "repair", "completed", 1, D("2.0000"), D("200.00"), D("200.00")),
        (1, "repair", None, 2, D("2.0000"), D("200.00"), D("200.00")),
        (2, "maintenance", "completed", 1, D("1.0000"), D("50.00"), D("50.00")),
        (1, "maintenance", None, 1, D("1.0000"), D("50.00"), D("50.00")),
        (0, None, None, 3, D("3.0000"), D("250.00"), D("250.00")),
    ]


def test_expenses_against_budget(env: Env) -> None:
    w = world(env)
    d = w.depts
    budgets = {}
    for key, dept, category, amount in [("b1", "SH", "travel", "10000"),
                                        ("b2", "SH", "marketing", "5000"),
                                        ("b3", "BJ", "travel", "2000")]:
        budgets[key] = place(env, "expense_budget", {
            "name": key, "budget_department": d[dept], "category": category,
            "period_start": "2026-01-01", "period_end": "2026-12-31", "amount": amount})["id"]
    for subject, budget, amount, status in [("e1", "b1", "1000", "approved"),
                                            ("e2", "b1", "500", "submitted"),
                                            ("e3", "b3", "300", "paid")]:
        place(env, "expense", {"subject": subject, "expense_date": "2026-03-01",
                               "category": "travel", "amount": amount,
                               "budget": budgets[budget], "status": status,
                               **({"paid_on": "2026-03-10"} if status == "paid" else {})})
    result = run(env, "expenses_vs_budget")
    assert table(result) == [
        (2, d["BJ"], "travel", D("2000.00"), D("300.00"), D("0.00"), D("1700.00")),
        (1, d["BJ"], None, D("2000.00"), D("300.00"), D("0.00"), D("1700.00")),
        (2, d["SH"], "travel", D("10000.00"), D("1000.00"), D("500.00"), D("9000.00")),
        (2, d["SH"], "marketing", D("5000.00"), D("0.00"), D("0.00"), D("5000.00")),
        (1, d["SH"], None, D("15000.00"), D("1000.00"), D("500.00"), D("14000.00")),
        (0, None, None, D("17000.00"), D("1300.00"), D("500.00"), D("15700.00")),
    ]
    assert result.rows[0].names[0] == "Beijing branch"


@pytest.mark.parametrize("name", ["forecast_by_month", "employee_performance",
                                  "branch_results", "lead_conversion", "campaign_results",
                                  "competitor_win_loss", "competitor_by_product_line",
                                  "customer_lifecycle", "quote_details", "collection_plan",
                                  "overdue_receivables", "contract_execution",
                                  "service_compliance", "service_plans", "work_orders",
                                  "expenses_vs_budget", "customer_composition",
                                  "activities_by_owner"])
def test_every_shipped_report_has_a_description_and_labels_in_both_languages(
        env: Env, name: str) -> None:
    report = env.model.report(name)
    assert report is not None and report.description is not None
    for text in (report.label, report.description,
                 *(c.label for c in (*report.groups, *report.aggregates, *report.columns))):
        assert text.get("en") and text.get("zh"), (name, text)
        assert text.get("zh") != text.get("en"), (name, text)
    assert run_report(env.records, SYSTEM, report).totals.level == 0


def test_every_shipped_report_page_shows_in_english_and_chinese(env: Env) -> None:
    """Each report's page (a grouped one with its chart, a detail one with its rows) over
    the dataset, in both languages; the forecast draws its stacked bars."""
    w = world(env)
    leads(env, w)
    contracts(env, w)
    client = browser(env)
    for report in env.model.reports:
        page = client.get(f"/reports/{report.name}")
        assert page.status_code == 200, report.name
        assert f"<h1>{report.label.get('en')}</h1>" in page.text, report.name
    forecast = client.get("/reports/forecast_by_month").text
    assert "<svg" in forecast and "Commit" in forecast
    details = client.get("/reports/overdue_receivables").text
    assert details.count('<tr class="report-detail">') == 1 and "K1" in details
    env.users.set_locale(env.admin.id, "zh-CN")
    for report in env.model.reports:
        page = client.get(f"/reports/{report.name}")
        assert page.status_code == 200, report.name
        assert f"<h1>{report.label.get('zh')}</h1>" in page.text, report.name


def test_quote_details_narrowed_by_the_quote_period(env: Env) -> None:
    """A detail report's parameter: the API, the page (its form) and the export narrow the
    rows to the quotes of the period; a bad value is a 422, never a 500."""
    w = world(env)
    x, _y = products(env)
    quote = place(env, "quote", {"name": "Q-Acme", "account": w.ids["acme"],
                                 "quoted_on": "2026-03-05"})["id"]
    place(env, "quote_line", {"quote": quote, "position": 1, "product": x, "quantity": "2"})
    api = env.client(env.users.new_token("admin"))
    march = "period=custom&period_from=2026-03-01&period_to=2026-03-31"
    april = "period=custom&period_from=2026-04-01&period_to=2026-04-30"
    assert len(api.get(f"/api/reports/quote_details?{march}").json()["rows"]) == 1
    empty = api.get(f"/api/reports/quote_details?{april}").json()
    assert empty["rows"] == [] and empty["totals"]["values"]["line_total"] is None
    assert api.get("/api/reports/quote_details?period=fortnight").status_code == 422
    client = browser(env)
    page = client.get(f"/reports/quote_details?{april}").text
    assert 'id="report-parameters"' in page and "Quoted in" in page
    assert '<tr class="report-detail">' not in page and "No records to show." in page
    assert f"/reports/quote_details/export?format=csv&amp;{april.replace('&', '&amp;')}" in page
    assert client.get("/reports/quote_details?period=fortnight").status_code == 422
    exported = client.get(f"/reports/quote_details/export?format=csv&{march}")
    assert exported.status_code == 200
    assert len(exported.content.decode("utf-8-sig").strip().splitlines()) == 1 + 1 + 1


def test_customer_composition_by_industry_and_tier(env: Env) -> None:
    w = world(env)
    acme = env.records.get(SYSTEM, "account", w.ids["acme"])
    env.records.update(SYSTEM, "account", acme["id"], {"tier": "key", "status": "customer"},
                       acme["version"])
    assert table(run(env, "customer_composition")) == [
        (2, "manufacturing", "key", 1, 1, D("0.00"), D("0.00")),
        (1, "manufacturing", None, 1, 1, D("0.00"), D("0.00")),
        (2, "energy", "standard", 1, 0, D("4000.00"), D("0.00")),  # the default tier
        (1, "energy", None, 1, 0, D("4000.00"), D("0.00")),
        (2, None, "standard", 1, 0, D("0.00"), D("0.00")),
        (1, None, None, 1, 0, D("0.00"), D("0.00")),
        (0, None, None, 3, 1, D("4000.00"), D("0.00")),
    ]


def test_activities_by_owner_and_kind(env: Env) -> None:
    w = world(env)
    for owner, kind, status, minutes, cost in [(w.a, "call", "done", 30, "10"),
                                               (w.a, "call", "planned", 15, None),
                                               (w.a, "meeting", "planned", 60, None),
                                               (w.b, "visit", "done", 120, "500")]:
        data: dict[str, Any] = {"subject": kind, "kind": kind, "status": status,
                                "duration_minutes": minutes,
                                "due_at": "2026-03-02T10:00:00Z"}
        if cost:
            data["cost"] = cost
        place(env, "activity", data, owner=owner, department=owner.department_id)
    a, b = w.a.id, w.b.id
    assert table(run(env, "activities_by_owner")) == [
        (2, a, "call", 2, 1, 45, D("10.00")),
        (2, a, "meeting", 1, 0, 60, None),
        (1, a, None, 3, 1, 105, D("10.00")),
        (2, b, "visit", 1, 1, 120, D("500.00")),
        (1, b, None, 1, 1, 120, D("500.00")),
        (0, None, None, 4, 2, 225, D("510.00")),
    ]
    assert table(run(env, "activities_by_owner", w.a))[-1] == (0, None, None, 3, 1, 105,
                                                                D("10.00"))


def planning_world(env: Env) -> tuple[Person, dict[str, int]]:
    """rep_a (Shanghai): a 10,000 amount target this year (and others the report ignores),
    deals won 3,000 this year and 1,000 last year, three lost, one open; eight accounts:
    four targets, two prospects, one at opportunity, one signed. rep_b (Beijing): no target,
    one deal won this year for 1,000, one signed account."""
    depts = departments(env)
    a = user(env, "rep_a", "sales_rep", department=depts["SH"])
    b = user(env, "rep_b", "sales_rep", department=depts["BJ"])
    year = date.today().year
    for metric, value, start in [("amount", "10000", year), ("quantity", "99", year),
                                 ("amount", "5000", year - 1)]:
        place(env, "sales_target", {"name": f"{metric} {start}", "metric": metric,
                                    "target_value": value, "salesperson": a.id,
                                    "target_department": depts["SH"],
                                    "period_start": f"{start}-01-01",
                                    "period_end": f"{start}-12-31"},
              owner=a, department=depts["SH"])
    for who, lifecycles in [(a, ["target"] * 3 + ["prospect"] * 2 + ["opportunity", "signed"]),
                            (b, ["signed"])]:
        for n, lifecycle in enumerate(lifecycles):
            place(env, "account", {"name": f"{who.name} account {n}", "lifecycle": lifecycle},
                  owner=who, department=who.department_id)
    account = place(env, "account", {"name": "Deals"}, owner=a, department=depts["SH"])["id"]
    for who, amount, stage, close in [(a, "3000", "won", f"{year}-02-01"),
                                      (a, "1000", "won", f"{year - 1}-06-01"),
                                      (a, "500", "lost", f"{year}-03-01"),
                                      (a, "700", "lost", f"{year}-04-01"),
                                      (a, "900", "lost", f"{year - 1}-04-01"),
                                      (a, "2000", "prospecting", f"{year}-12-31"),
                                      (b, "1000", "won", f"{year}-05-01")]:
        extra = {"lost_reason": "price"} if stage == "lost" else {}
        place(env, "opportunity", {"name": f"{who.name} {amount}", "account": account,
                                   "amount": amount, "stage": stage, "close_date": close,
                                   **extra}, owner=who, department=who.department_id)
    return a, depts


PLANNING = ("target", "won_this_year", "won_amount", "won", "decided", "accounts",
            "prospects", "with_opportunity", "open_target", "average_deal", "win_rate",
            "deals_needed", "opportunities_needed", "prospects_needed", "targets_needed")


def test_resource_planning_from_measured_conversion_rates(env: Env) -> None:
    a, depts = planning_world(env)
    result = run(env, "resource_planning")
    assert [name for name in result.rows[0].values] == list(PLANNING)
    rows = {r.keys[0]: tuple(r.values.values()) for r in result.rows}
    # Shanghai: 7,000 of the target still open; 4,000 won over 2 deals is 2,000 a deal: 3.5
    # won deals, 4; 2 won of 5 decided: 8.75 opportunities, 9; 2 of the 4 prospects reached
    # opportunity: 17.5 prospects, 18; 4 of the 8 accounts became prospects: 35 targets.
    assert rows[depts["SH"]] == (D("10000"), D("3000"), D("4000"), 2, 5, 8, 4, 2, D("7000"),
                                 D("2000"), D("40"), 4, 9, 18, 35)
    # Beijing has no target: nothing is needed, though its rates are measured.
    assert rows[depts["BJ"]] == (None, D("1000"), D("1000"), 1, 1, 1, 1, 1, None, D("1000"),
                                 D("100"), None, None, None, None)
    # The company: 6,000 open at 1,666.67 a deal: 3.6 deals, 4; 3 of 6 won: 7.2
    # opportunities, 8; 3 of 5 prospects reached opportunity: 12 prospects; 5 of 9: 21.6
    # targets, 22.
    assert tuple(result.totals.values.values()) == (
        D("10000"), D("4000"), D("5000"), 3, 6, 9, 5, 3, D("6000"), D("1666.67"), D("50"),
        4, 8, 12, 22)
    # A sales rep plans from their own targets, deals and accounts.
    mine = run(env, "resource_planning", a)
    assert [r.keys[0] for r in mine.rows] == [depts["SH"]]
    assert tuple(mine.totals.values.values()) == rows[depts["SH"]]


def test_employee_scorecard_from_four_entities(env: Env) -> None:
    w = world(env)
    k1 = contracts(env, w)["k1"]  # executing, 5,000; K2 is a draft (not counted)
    env.records.assign(SYSTEM, "contract", k1, owner=w.b.id, department=w.b.department_id)
    env.records.assign(SYSTEM, "account", w.ids["acme"], owner=w.a.id,
                       department=w.a.department_id)
    for owner, status in [(w.a, "done"), (w.a, "done"), (w.a, "planned"), (w.b, "done")]:
        place(env, "activity", {"subject": "call", "kind": "call", "status": status},
              owner=owner, department=owner.department_id)
    queue = place(env, "service_queue", {"name": "Hotline"})["id"]
    for n, kind in enumerate(["complaint", "complaint", "repair"]):
        place(env, "service_request", {"subject": f"r{n}", "account": w.ids["acme"],
                                       "request_type": kind, "priority": "normal",
                                       "queue": queue})
    a, b = w.a.id, w.b.id
    # won amount, won, decided, signed contracts, their amount, activities done,
    # complaints on their customers, win rate
    assert table(run(env, "employee_scorecard")) == [
        (1, a, None, 0, 1, 0, None, 2, 2, D("0")),
        (1, b, D("4000.00"), 1, 2, 1, D("5000.00"), 1, 0, D("50")),
        (0, None, D("4000.00"), 1, 3, 1, D("5000.00"), 3, 2, D("33.3")),
    ]
    # rep_a: their own deals and activities; not rep_b's contract, and not the complaints,
    # which the service desk owns (a rep reads the service requests they own)
    assert table(run(env, "employee_scorecard", w.a)) == [
        (1, a, None, 0, 1, 0, None, 2, 0, D("0")),
        (0, None, None, 0, 1, 0, None, 2, 0, D("0")),
    ]

"""Everyday work: activities (with their cost, on the deal they concern), notes, expense
budgets per department and year with the expenses booked within them, and sales targets
per quarter for departments and salespeople."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from engine.fieldtypes import Regarding
from engine.runtime.access import SYSTEM
from engine.runtime.demo.catalogue import LINES
from engine.runtime.demo.context import YEARS, Demo, money
from engine.runtime.users import User

SUBJECTS = {
    "en": {"call": "Follow-up call", "meeting": "Price review meeting",
           "email": "Send the brochure",
           "visit": "Site visit", "demo": "Machine demonstration", "task": "Prepare the quote"},
    "zh": {"call": "电话跟进", "meeting": "商务谈判会议", "email": "发送产品资料",
           "visit": "上门拜访", "demo": "现场演示", "task": "准备报价"},
}
NOTES = {
    "en": ["The customer wants the final price before the end of the month.",
           "Their fleet manager prefers electric models for the warehouse.",
           "Budget approved by the board; the tender is expected next quarter."],
    "zh": ["客户要求月底前提供最终报价。", "车队经理倾向于仓库使用电动车型。",
           "预算已获董事会批准，预计下季度招标。"],
}
# category, its name, a person's yearly budget (CNY), what people spend it on (en, zh)
BUDGETS = [
    ("travel", "Travel · 差旅费", 240_000, "Trip to a customer", "客户拜访差旅"),
    ("entertainment", "Entertainment · 业务招待费", 120_000, "Business dinner with a customer",
     "客户业务招待"),
    ("marketing", "Marketing · 市场推广费", 300_000, "Trade show booth materials",
     "展会物料制作"),
]


def make_work(demo: Demo) -> None:
    _activities(demo)
    if demo.has("note"):
        _notes(demo)
    if demo.has("expense_budget", "expense"):
        _expenses(demo)
    if demo.has("sales_target"):
        _targets(demo)


def _activities(demo: Demo) -> None:
    demo.say("activities")
    rnd = demo.rnd
    deals_of: dict[int, list[int]] = defaultdict(list)
    for deal in demo.deals:
        deals_of[deal.account.id].append(deal.id)
    rows: list[tuple[User, dict[str, Any]]] = []
    for account in demo.accounts:
        for i in range(rnd.randrange(2, 6)):
            # the first is coming up in the next days, so a seller's week has work in it
            due = (demo.now + timedelta(days=rnd.randrange(0, 7), hours=rnd.randrange(1, 24))
                   if i == 0 else
                   demo.now - timedelta(days=rnd.randrange(-30, YEARS * 365),
                                        hours=rnd.randrange(24)))
            kind = rnd.choice(["call", "meeting", "email", "visit", "demo", "task"])
            deal_id = rnd.choice(deals_of[account.id]) if deals_of[account.id] else None
            rows.append((account.owner, {
                "subject": SUBJECTS[account.lang][kind], "kind": kind,
                "status": ("done" if rnd.random() < 0.9 else "cancelled")
                if due < demo.now else "planned", "due_at": due,
                "duration_minutes": rnd.choice([15, 30, 60, 90, 120]),
                "cost": money(rnd.randrange(200, 6000)) if kind in ("visit", "demo", "meeting")
                and due < demo.now else None,
                "account": account.id, "contact": rnd.choice(account.contacts),
                "opportunity": deal_id,
                "regarding": Regarding.of("opportunity", deal_id) if deal_id
                else Regarding.of("account", account.id)}))
    demo.bulk_owned("activity", rows)


def _notes(demo: Demo) -> None:
    rnd = demo.stream(40)
    demo.bulk_owned("note", [
        (deal.account.owner, {"body": rnd.choice(NOTES[deal.account.lang]),
                              "regarding": Regarding.of("opportunity", deal.id)})
        for deal in demo.deals[::4]])


def _expenses(demo: Demo) -> None:
    """A budget per department, category and year; expenses of the department's people,
    all of them within it (approved and paid ones never more than the budget)."""
    demo.say("expenses")
    rnd = demo.stream(41)
    people: dict[int, list[User]] = defaultdict(list)
    for user in demo.staff:
        people[demo.department_of[user.id]].append(user)
    names = _department_names(demo)
    deals_of: dict[int, list[int]] = defaultdict(list)  # a seller's travel is for their deals
    for deal in demo.deals:
        deals_of[deal.account.owner.id].append(deal.id)
    budgets: list[dict[str, Any]] = []
    spenders: list[tuple[list[User], str, str, date, date]] = []
    for year in range(demo.today.year - YEARS + 1, demo.today.year + 1):
        for dept, users in sorted(people.items()):
            for category, label, base, en, zh in BUDGETS:
                start, end = date(year, 1, 1), date(year, 12, 31)
                budgets.append({
                    "name": f"{year} {names.get(dept, dept)} {label}"[:200],
                    "budget_department": dept,
                    "category": category, "period_start": start, "period_end": end,
                    "amount": Decimal(base * len(users))})
                spenders.append((users, en, zh, start, min(end, demo.today)))
    ids = demo.bulk(SYSTEM, "expense_budget", budgets)
    rows: list[tuple[User, dict[str, Any]]] = []
    for bid, budget, (users, en, zh, start, last) in zip(ids, budgets, spenders,
                                                          strict=True):
        cap = budget["amount"] * Decimal("0.9")
        spent = Decimal(0)
        for _ in range(rnd.randrange(3, 10)):
            amount = money(rnd.randrange(300, 20_000))
            if spent + amount > cap or last < start:
                break
            spent += amount
            day = start + timedelta(days=rnd.randrange((last - start).days + 1))
            age = (demo.today - day).days
            status = ("paid" if age > 30 else rnd.choice(["submitted", "approved", "draft"]))
            if rnd.random() < 0.05:
                status = "rejected"
            user = rnd.choice(users)
            lang = "en" if demo.display.get(user.id, "").isascii() else "zh"
            deals = deals_of[user.id] if budget["category"] in ("travel", "entertainment") \
                else []
            rows.append((user, {
                "regarding": Regarding.of("opportunity", rnd.choice(deals)) if deals else None,
                "subject": zh if lang == "zh" else en, "expense_date": day,
                "category": budget["category"], "amount": amount, "budget": bid,
                "status": status,
                "paid_on": min(day + timedelta(days=rnd.randrange(5, 25)), demo.today)
                if status == "paid" else None}))
    demo.bulk_owned("expense", rows)


def _department_names(demo: Demo) -> dict[int, str]:
    t = demo.records.schema.table("department")
    with demo.records.engine.connect() as conn:
        return {r.id: r.name for r in conn.execute(
            t.select().with_only_columns(t.c.id, t.c.name))}


def _targets(demo: Demo) -> None:
    """Quarterly sales targets per salesperson and per department, near what they won."""
    demo.say("sales targets")
    rnd = demo.stream(42)
    won: dict[tuple[int, int, int], Decimal] = defaultdict(Decimal)
    for deal in demo.deals:
        if deal.stage == "won":
            quarter = (deal.close_date.year, (deal.close_date.month - 1) // 3 + 1)
            won[(deal.account.owner.id, *quarter)] += deal.amount
    names = _department_names(demo)
    rows: list[dict[str, Any]] = []
    for year in range(demo.today.year - YEARS + 1, demo.today.year + 2):
        for q in range(1, 5):
            start = date(year, 3 * q - 2, 1)
            if start > demo.today + timedelta(days=200):
                break
            end = (date(year + (q == 4), (3 * q) % 12 + 1, 1) - timedelta(days=1))
            by_dept: dict[int, Decimal] = defaultdict(Decimal)
            for seller in demo.sellers:
                actual = won.get((seller.id, year, q), Decimal(0))
                target = max(Decimal(1_000_000),
                             (actual * Decimal(rnd.randrange(80, 140)) / 100)
                             .quantize(Decimal(100_000)))
                by_dept[demo.department_of[seller.id]] += target
                rows.append({"name": f"{year} Q{q} · {demo.display.get(seller.id, seller.name)}",
                             "period_start": start, "period_end": end,
                             "salesperson": seller.id,
                             "target_department": demo.department_of[seller.id],
                             "metric": "amount", "target_value": target})
            for dept, total in sorted(by_dept.items()):
                rows.append({"name": f"{year} Q{q} · {names.get(dept, dept)}",
                             "period_start": start, "period_end": end,
                             "target_department": dept, "metric": "amount",
                             "target_value": total})
                rows.append({"name": f"{year} Q{q} · {names.get(dept, dept)} · collections",
                             "period_start": start, "period_end": end,
                             "target_department": dept, "metric": "collections",
                             "target_value": (total * Decimal("0.8")).quantize(Decimal(1))})
    rows += _line_targets(demo, rnd)
    demo.bulk(SYSTEM, "sales_target", rows)


def _line_targets(demo: Demo, rnd: random.Random) -> list[dict[str, Any]]:
    """Headquarters' yearly targets per product line: units for the machines, an amount
    for the rest, near what each line sold."""
    hq = demo.departments["headquarters"][0]
    sold: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    units: dict[tuple[int, str], int] = defaultdict(int)
    for deal in demo.deals:
        if deal.stage == "won":
            for item in deal.items:
                sold[(deal.close_date.year, item.product.line)] += item.total
                units[(deal.close_date.year, item.product.line)] += item.quantity
    rows: list[dict[str, Any]] = []
    for year in range(demo.today.year - YEARS + 1, demo.today.year + 1):
        for line, en, zh, _den, _dzh in LINES:
            line_id = demo.product_lines[line]
            machines = line in ("TRC", "LDR", "FLT")
            actual = Decimal(units[(year, line)]) if machines else sold[(year, line)]
            floor = Decimal(10) if machines else Decimal(500_000)
            rows.append({
                "name": f"{year} {en} · {zh}",
                "period_start": date(year, 1, 1), "period_end": date(year, 12, 31),
                "target_department": hq, "product_line": line_id,
                "metric": "quantity" if machines else "amount",
                "target_value": max(floor, (actual * Decimal(rnd.randrange(90, 130)) / 100)
                                    .quantize(Decimal(1)))})
    return rows

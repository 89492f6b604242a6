"""Quotes and contracts with their lines (the deal's basket), execution plans whose
installments add up to the contract's amount, and invoices and receipts that never exceed
what is owed: receipts ≤ invoices ≤ the contract's amount, contract by contract."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from engine.runtime.demo.context import Deal, Demo, Item, money
from engine.runtime.users import User

QUOTED = ("proposal", "negotiation", "won", "lost")
TERMS = {
    "en": ("30% on signing, 60% on delivery, 10% after acceptance",
           "Delivery to the customer's site within 45 days of the advance payment"),
    "zh": ("合同签订后支付30%预付款，到货后支付60%，验收合格后支付10%尾款",
           "收到预付款后45天内送货至客户指定地点"),
}
SERVICE_TERMS = {"en": "Paid quarterly in advance", "zh": "按季度预付服务费"}


def make_quotes_and_contracts(demo: Demo) -> None:
    _quotes(demo)
    _win(demo)
    contracts = _contracts(demo)
    _execution(demo, contracts)


def _win(demo: Demo) -> None:
    """Won deals enter `won` now that their accepted quotes exist: the opportunity pipeline
    lets a deal be won only on an accepted quote or a contract."""
    for deal in demo.deals:
        if deal.stage == "won":
            demo.update("opportunity", deal.id, {"stage": "won"})


def _line(item: Item, lang: str, position: int, discount: int | None = None
          ) -> dict[str, Any]:
    p = item.product
    return {"position": position, "product": p.id,
            "description": (p.zh if lang == "zh" else p.en)[:200],
            "quantity": Decimal(item.quantity), "unit_price": p.price,
            "discount": Decimal(item.discount if discount is None else discount)}


def _quotes(demo: Demo) -> None:
    demo.say("quotes")
    rnd = demo.stream(20)
    quotes: list[tuple[User, dict[str, Any]]] = []
    baskets: list[tuple[Deal, int]] = []  # the deal and how much less discount it offered
    for deal in demo.deals:
        if deal.stage not in QUOTED:
            continue
        lang = deal.account.lang
        last = (deal.close_date - timedelta(days=rnd.randrange(10, 60))
                if deal.stage in ("won", "lost")
                else demo.today - timedelta(days=rnd.randrange(0, 40)))
        revisions = rnd.choice([1, 1, 2, 3])
        for rev in range(1, revisions + 1):
            final = rev == revisions
            quoted = last - timedelta(days=21 * (revisions - rev))
            status = (("accepted" if deal.stage == "won" else
                       "rejected" if deal.stage == "lost" else
                       rnd.choice(["sent", "approved", "in_review", "draft"]))
                      if final else rnd.choice(["expired", "rejected"]))
            pay, delivery = TERMS[lang]
            quotes.append((deal.account.owner, {
                "name": deal.name if rev == 1 else
                f"{deal.name}（第{rev}版）" if lang == "zh" else f"{deal.name}, rev. {rev}",
                "account": deal.account.id, "opportunity": deal.id, "contact": deal.contact,
                "revision": rev, "status": status, "quoted_on": quoted,
                "valid_until": quoted + timedelta(days=30), "payment_terms": pay,
                "delivery_terms": delivery}))
            baskets.append((deal, 3 * (revisions - rev)))
    ids = demo.bulk_owned("quote", quotes)
    lines: list[tuple[User, dict[str, Any]]] = []
    for qid, (deal, less) in zip(ids, baskets, strict=True):
        if less == 0:
            deal.quote = qid  # the last revision is the one a contract follows
        for n, item in enumerate(deal.items, start=1):
            lines.append((deal.account.owner, {
                "quote": qid, **_line(item, deal.account.lang, n,
                                      max(0, item.discount - less))}))
    demo.bulk_owned("quote_line", lines)


class Signed:
    """A contract and what its execution plan follows."""

    def __init__(self, cid: int, deal: Deal, status: str, signed: date) -> None:
        self.id, self.deal, self.status, self.signed = cid, deal, status, signed


def _contracts(demo: Demo) -> list[Signed]:
    """A contract per won deal (and a draft for some in negotiation), created as a draft with
    its lines, then moved on to its status as a user would: signed, executing, completed.
    A contract that would take its account past its credit limit stays in review."""
    demo.say("contracts")
    rnd = demo.stream(21)
    rows: list[tuple[User, dict[str, Any]]] = []
    made: list[tuple[Deal, str, date]] = []
    for deal in demo.deals:
        if deal.stage == "won":
            signed = min(deal.close_date + timedelta(days=rnd.randrange(0, 10)), demo.today)
            age = (demo.today - signed).days
            status = ("signed" if age < 30 else "executing" if age < 240 or
                      rnd.random() < 0.15 else "completed")
        elif deal.stage == "negotiation" and rnd.random() < 0.3:
            signed, status = demo.today, rnd.choice(["draft", "in_review"])
        else:
            continue
        lang = deal.account.lang
        service = all(i.product.family in ("service", "software") for i in deal.items)
        kind = "sales_order" if all(i.product.family == "spare_part" for i in deal.items) \
            else "contract"
        name = deal.name
        if lang == "zh":
            name = name.replace("采购项目", "采购合同").replace("框架协议", "框架合同")
        rows.append((deal.account.owner, {
            "name": name, "kind": kind, "account": deal.account.id,
            "opportunity": deal.id, "quote": deal.quote,
            "signer": deal.account.contacts[0], "status": "draft",
            "signed_on": signed if status not in ("draft", "in_review") else None,
            "start_date": signed,
            "end_date": signed + timedelta(days=365 * (rnd.randrange(1, 4) if service else 1)),
            "payment_terms": SERVICE_TERMS[lang] if service else TERMS[lang][0]}))
        made.append((deal, status, signed))
    ids = demo.bulk_owned("contract", rows)
    lines: list[tuple[User, dict[str, Any]]] = []
    for cid, (deal, _status, _signed) in zip(ids, made, strict=True):
        for n, item in enumerate(deal.items, start=1):
            lines.append((deal.account.owner, {"contract": cid,
                                               **_line(item, deal.account.lang, n)}))
    demo.bulk_owned("contract_line", lines)
    out: list[Signed] = []
    for cid, (deal, status, signed) in zip(ids, made, strict=True):
        account = deal.account
        if status not in ("draft", "in_review") and account.credit_limit is not None and \
                account.opening + account.contracted + deal.amount > account.credit_limit:
            status = "in_review"  # held: signing it would pass the account's credit limit
        if status != "draft":
            demo.update("contract", cid, {"status": status} if status != "in_review" else
                        {"status": status, "signed_on": None})
        if status in ("signed", "executing", "completed"):
            account.contracted += deal.amount
            out.append(Signed(cid, deal, status, signed))
    return out


def _execution(demo: Demo, contracts: list[Signed]) -> None:
    """Plan lines (installments summing to the amount, deliveries, acceptance), then an
    invoice for each installment due, and receipts for what was invoiced and paid."""
    demo.say("execution plans, invoices and receipts")
    rnd = demo.stream(22)
    plan: list[tuple[User, dict[str, Any]]] = []
    installments: list[tuple[Signed, int]] = []  # contract, index into plan
    for c in contracts:
        owner = c.deal.account.owner
        zh = c.deal.account.lang == "zh"
        amount = c.deal.amount
        equipment = [i for i in c.deal.items if i.product.family in ("equipment",
                                                                     "spare_part")]
        if equipment:
            shares = [("预付款" if zh else "Advance payment", 30, 0),
                      ("到货款" if zh else "Payment on delivery", 60, 45),
                      ("验收尾款" if zh else "Retention after acceptance", 10, 120)]
        else:
            shares = [(f"第{q + 1}季度服务费" if zh else f"Service fee, quarter {q + 1}", 25,
                       91 * q) for q in range(4)]
        left = amount
        for n, (label, percent, days) in enumerate(shares):
            part = left if n == len(shares) - 1 else money(amount * percent / 100)
            left -= part
            due = c.signed + timedelta(days=days)
            line = _plan_line(demo, rnd, c, "installment", label, due, amount=part)
            plan.append((owner, line))
            installments.append((c, len(plan) - 1))
            if line["status"] != "done" and due < demo.today - timedelta(days=15):
                # overdue: someone is chasing it (催款)
                plan.append((owner, {**_plan_line(demo, rnd, c, "dunning",
                                                  (f"催收：{label}" if zh
                                                   else f"Dunning: {label}")[:200],
                                                  due + timedelta(days=15), amount=part),
                                     "status": "in_progress", "actual_date": None,
                                     "actual_amount": None}))
        for item in equipment:
            first = item.quantity // 2 if item.quantity > 3 else item.quantity
            batches = [first, item.quantity - first] if first < item.quantity else [first]
            for b, qty in enumerate(batches):
                desc = (f"第{b + 1}批供货：{item.product.zh}" if zh
                        else f"Delivery {b + 1}: {item.product.en}")
                plan.append((owner, _plan_line(demo, rnd, c, "delivery", desc[:200],
                                               c.signed + timedelta(days=30 + 30 * b),
                                               quantity=qty)))
        if equipment:
            plan.append((owner, _plan_line(demo, rnd, c, "acceptance",
                                           "客户验收" if zh else "Customer acceptance",
                                           c.signed + timedelta(days=100))))
    ids = demo.bulk_owned("execution_plan_line", plan)
    invoices: list[tuple[User, dict[str, Any]]] = []
    billed: list[tuple[Signed, int, Decimal, date]] = []
    for c, index in installments:
        line = plan[index][1]
        if line["status"] != "done":
            continue
        issued = line["actual_date"]
        invoices.append((c.deal.account.owner, {
            "contract": c.id, "tax_invoice_no": f"{issued.year % 100:02d}{len(invoices) + 1:06d}",
            "invoice_type": "vat_special" if c.deal.account.lang == "zh" else "electronic",
            "status": "issued", "issued_on": issued, "amount": line["planned_amount"],
            "tax_rate": Decimal(13 if c.deal.account.lang == "zh" else 0)}))
        billed.append((c, ids[index], line["planned_amount"], issued))
    demo.bulk_owned("invoice", invoices)
    receipts: list[tuple[User, dict[str, Any]]] = []
    for c, plan_line, amount, issued in billed:
        received = issued + timedelta(days=rnd.randrange(3, 40))
        if received > demo.today:
            continue  # invoiced lately, not paid yet
        parts = [amount] if rnd.random() < 0.85 else [money(amount / 2), amount - money(amount / 2)]
        for n, part in enumerate(parts):
            day = min(received + timedelta(days=20 * n), demo.today)
            receipts.append((c.deal.account.owner, {
                "contract": c.id, "plan_line": plan_line, "received_on": day, "amount": part,
                "method": rnd.choice(["bank_transfer", "bank_transfer", "acceptance_bill"]),
                "status": "confirmed" if (demo.today - day).days > 3 else "pending",
                "bank_reference": f"{rnd.randrange(10**11, 10**12)}"}))
    demo.bulk_owned("receipt", receipts)


def _plan_line(demo: Demo, rnd: random.Random, c: Signed, kind: str, description: str,
               due: date, *, amount: Decimal | None = None, quantity: int | None = None
               ) -> dict[str, Any]:
    done = c.status == "completed" or (
        c.status == "executing" and due <= demo.today - timedelta(days=rnd.randrange(0, 30)))
    actual = min(due + timedelta(days=rnd.randrange(0, 12)), demo.today) if done else None
    return {"contract": c.id, "kind": kind, "description": description, "due_date": due,
            "planned_amount": amount,
            "planned_quantity": Decimal(quantity) if quantity is not None else None,
            "executor": c.deal.account.owner.id,
            "status": "done" if done else ("in_progress" if due <= demo.today else "planned"),
            "actual_date": actual, "actual_amount": amount if done else None,
            "actual_quantity": Decimal(quantity) if done and quantity is not None else None}

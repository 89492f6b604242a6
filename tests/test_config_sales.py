"""The shipped sales configuration at work (config/entities: quote, contract, their lines,
execution plan, invoice, receipt, account credit, opportunity evaluation, campaign), on
SQLite and PostgreSQL: lines start from their product, parents sum their lines, the
account's credit follows contracts, invoices and receipts, signing past the available
credit is refused except for an administrator, a signed contract's lines are fixed."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import Invalid
from tests.access_helpers import user
from tests.conftest import Env, EnvFactory
from tests.web_helpers import sign_in

CREDIT = ("contracted", "invoiced", "collected", "balance", "receivable", "advance",
          "available_credit")
SIGNED = {"status": "signed", "signed_on": "2026-03-02"}

CLERK = """
  contract_clerk:
    label: {en: Contract clerk, zh: 合同专员}
    entities:
      account: {read: all}
      product: {read: all}
      contract: all
      contract_line: all
"""


def make(env: Env, entity: str, actor: Actor = SYSTEM, **values: Any) -> dict[str, Any]:
    return env.records.create(actor, entity, values)


def change(env: Env, entity: str, row: dict[str, Any], actor: Actor = SYSTEM,
           **values: Any) -> dict[str, Any]:
    return env.records.update(actor, entity, row["id"], values, row["version"])


def get(env: Env, entity: str, row: dict[str, Any]) -> dict[str, Any]:
    return env.records.get(SYSTEM, entity, row["id"])


def press(env: Env, code: str = "P200", price: str = "30000", cost: str = "18000") -> int:
    line = make(env, "product_line", name=f"Presses {code}", code=f"PR-{code}")
    return int(make(env, "product", name=f"Press {code}", code=code, list_price=price,
                    unit_cost=cost, product_line=line["id"])["id"])


def contract(env: Env, account: int, product: int, quantity: str,
             actor: Actor = SYSTEM, **values: Any) -> dict[str, Any]:
    """A draft contract with one line of `quantity` products at their list price."""
    k = make(env, "contract", actor, name=f"Contract {quantity}", account=account, **values)
    make(env, "contract_line", actor, contract=k["id"], product=product, quantity=quantity)
    return get(env, "contract", k)


def credit(env: Env, account: dict[str, Any]) -> tuple[Any, ...]:
    row = get(env, "account", account)
    return tuple(row[n] for n in CREDIT)


def money(*values: str | None) -> tuple[Decimal | None, ...]:
    return tuple(None if v is None else Decimal(v) for v in values)


def test_a_quote_line_starts_from_its_product_and_the_quote_sums_its_lines(env: Env) -> None:
    acme = make(env, "account", name="Acme")
    product = press(env)
    quote = make(env, "quote", name="Presses for Acme", account=acme["id"])
    assert (quote["status"], quote["revision"]) == ("draft", 1)
    assert quote["valid_until"] - quote["quoted_on"] == timedelta(days=30)
    line = make(env, "quote_line", quote=quote["id"], product=product, quantity="2",
                discount="10")
    assert (line["description"], line["unit_price"], line["unit_cost"]) == (
        "Press P200", Decimal("30000.00"), Decimal("18000.00"))
    assert (line["line_total"], line["cost_total"], line["margin"]) == money(
        "54000.00", "36000.00", "18000.00")
    make(env, "quote_line", quote=quote["id"], product=product, quantity="1",
         unit_price="28000", description="Spare press")
    totals = get(env, "quote", quote)
    assert (totals["line_count"], totals["list_total"], totals["total"],
            totals["discount_total"], totals["cost_total"], totals["margin"],
            totals["margin_percent"]) == (
        2, Decimal("90000.00"), Decimal("82000.00"), Decimal("8000.00"),
        Decimal("54000.00"), Decimal("28000.00"), Decimal("34.15"))


def test_a_line_without_a_price_is_refused(env: Env) -> None:
    acme = make(env, "account", name="Acme")
    unpriced = make(env, "product", name="Custom rig", code="RIG")
    quote = make(env, "quote", name="Rig", account=acme["id"])
    with pytest.raises(Invalid) as refused:
        make(env, "quote_line", quote=quote["id"], product=unpriced["id"])
    assert list(refused.value.fields) == ["unit_price"]


def test_credit_follows_contracts_invoices_and_receipts(env: Env) -> None:
    acme = make(env, "account", name="Acme", credit_limit="200000",
                opening_receivable="5000")
    product = press(env)
    assert credit(env, acme) == money("0.00", "0.00", "0.00", "5000.00", "5000.00", "0.00",
                                      "195000.00")
    k = contract(env, acme["id"], product, "3")
    assert k["amount"] == Decimal("90000.00")
    # a draft commits the customer to nothing yet
    assert credit(env, acme)[0] == Decimal("0.00")
    k = change(env, "contract", k, **SIGNED)
    make(env, "invoice", contract=k["id"], amount="30000", status="issued",
         tax_invoice_no="No. 001", issued_on="2026-03-05")
    make(env, "invoice", contract=k["id"], amount="60000")  # a draft counts for nothing
    make(env, "receipt", contract=k["id"], amount="40000", status="confirmed")
    make(env, "receipt", contract=k["id"], amount="1000")  # not confirmed yet
    k = get(env, "contract", k)
    assert (k["invoiced"], k["collected"], k["receivable"], k["uninvoiced"]) == money(
        "30000.00", "40000.00", "50000.00", "60000.00")
    assert credit(env, acme) == money("90000.00", "30000.00", "40000.00", "55000.00",
                                      "55000.00", "0.00", "145000.00")
    # paid beyond what it owes: the rest is an advance, and adds to the available credit
    make(env, "receipt", contract=k["id"], amount="70000", status="confirmed")
    assert credit(env, acme) == money("90000.00", "30000.00", "110000.00", "-15000.00",
                                      "0.00", "15000.00", "215000.00")
    opportunity = make(env, "opportunity", name="Presses", account=acme["id"])
    make(env, "quote", name="Q", account=acme["id"], opportunity=opportunity["id"])
    change(env, "contract", get(env, "contract", k), opportunity=opportunity["id"])
    deal = get(env, "opportunity", opportunity)
    assert (deal["quotes"], deal["contracted"]) == (1, Decimal("90000.00"))


def test_no_credit_limit_means_no_available_credit_and_no_check(env: Env) -> None:
    acme = make(env, "account", name="Acme")
    k = contract(env, acme["id"], press(env), "10")
    assert change(env, "contract", k, **SIGNED)["status"] == "signed"
    assert get(env, "account", acme)["available_credit"] is None


@pytest.fixture
def clerk_env(make_env: EnvFactory, config_dir: Path) -> Env:
    """The shipped config with a role that writes contracts without being an administrator."""
    roles = config_dir / "roles.yaml"
    roles.write_text(roles.read_text(encoding="utf-8") + CLERK, encoding="utf-8")
    return make_env(config_dir)


def test_signing_past_the_available_credit_takes_an_administrator(clerk_env: Env) -> None:
    env = clerk_env
    clerk = user(env, "clara", "contract_clerk")
    admin = user(env, "ada", "admin")
    acme = make(env, "account", name="Acme", credit_limit="100000")
    product = press(env)
    first = contract(env, acme["id"], product, "3", clerk)  # 90,000 of 100,000
    change(env, "contract", first, clerk, **SIGNED)
    second = contract(env, acme["id"], product, "1", clerk)  # 30,000 more: 20,000 over
    with pytest.raises(Invalid) as refused:
        change(env, "contract", second, clerk, **SIGNED)
    assert str(refused.value.fields["status"]).startswith(
        "Signing this contract would exceed the account's available credit")
    assert change(env, "contract", second, admin, **SIGNED)["status"] == "signed"
    assert get(env, "account", acme)["available_credit"] == Decimal("-20000.00")
    third = change(env, "contract", contract(env, acme["id"], product, "1", clerk), clerk,
                   status="terminated")
    with pytest.raises(Invalid):  # starting to count from any status is checked as well
        change(env, "contract", third, clerk, status="executing", signed_on="2026-03-09")
    # once signed, other changes to the contract are not checked again
    assert change(env, "contract", get(env, "contract", first), clerk,
                  notes="Delivery in May")["notes"] == "Delivery in May"


def test_a_signed_contracts_lines_are_fixed(env: Env) -> None:
    acme = make(env, "account", name="Acme")
    product = press(env)
    k = change(env, "contract", contract(env, acme["id"], product, "1"), **SIGNED)
    with pytest.raises(Invalid) as refused:
        make(env, "contract_line", contract=k["id"], product=product)
    assert list(refused.value.fields) == ["contract"]
    assert get(env, "contract", k)["amount"] == Decimal("30000.00")


def test_the_execution_plan_keeps_the_contracts_next_due_date(env: Env) -> None:
    acme = make(env, "account", name="Acme")
    k = contract(env, acme["id"], press(env), "2")
    past = date.today() - timedelta(days=3)
    first = make(env, "execution_plan_line", contract=k["id"], kind="installment",
                 description="Down payment 30 %", due_date=past.isoformat(),
                 planned_amount="18000")
    make(env, "execution_plan_line", contract=k["id"], kind="delivery",
         description="First press", due_date="2099-06-01", planned_quantity="1")
    assert first["overdue"] is True
    with pytest.raises(Invalid) as refused:
        make(env, "execution_plan_line", contract=k["id"], kind="installment",
             description="Balance", due_date="2099-09-01")
    assert list(refused.value.fields) == ["planned_amount"]
    k = get(env, "contract", k)
    assert (k["planned_collection"], k["next_due"]) == (Decimal("18000.00"), past)
    done = change(env, "execution_plan_line", first, status="done",
                  actual_date=date.today().isoformat(), actual_amount="18000")
    assert done["overdue"] is False
    assert get(env, "contract", k)["next_due"] == date(2099, 6, 1)


def test_the_evaluation_scores_the_questionnaire_term_by_term(env: Env) -> None:
    acme = make(env, "account", name="Acme")
    deal = make(env, "opportunity", name="Presses", account=acme["id"],
                eval_amount="over_5m", eval_urgency="this_year", eval_funding="approved",
                eval_competition="behind", eval_relationship="good")
    assert deal["evaluation_score"] == 20 + 10 + 25 + 0 + 8
    assert deal["score"] == 0  # the qualification score reads other answers
    out = env.records.explain(SYSTEM, "opportunity", deal["id"], "evaluation_score")
    assert [t["text"] for t in out["terms"]] == [
        "Expected amount: Over 5 million → 20", "Urgency: Needed this year → 10",
        "Funding: Approved → 25", "Competition: We trail → 0", "Relationship: Good → 8"]


def test_a_campaign_counts_what_it_brought_in(env: Env) -> None:
    acme = make(env, "account", name="Acme")
    ann = make(env, "contact", full_name="Ann", account=acme["id"])
    fair = make(env, "campaign", name="Hannover fair", campaign_type="trade_show",
                budget="50000", actual_cost="40000")
    make(env, "campaign_member", campaign=fair["id"], account=acme["id"], contact=ann["id"],
         response="attended")
    lead = make(env, "lead", company="Beta Ltd", campaign=fair["id"])
    make(env, "campaign_member", campaign=fair["id"], lead=lead["id"])
    make(env, "opportunity", name="Won", account=acme["id"], campaign=fair["id"],
         amount="120000", stage="won")
    make(env, "opportunity", name="Open", account=acme["id"], campaign=fair["id"],
         amount="99999")
    row = get(env, "campaign", fair)
    assert (row["members"], row["responded"], row["leads"], row["opportunities"],
            row["won_amount"], row["cost_variance"], row["return_on_cost"]) == (
        2, 1, 1, 2, Decimal("120000.00"), Decimal("10000.00"), Decimal("300.0"))
    with pytest.raises(Invalid) as refused:  # a participant is someone
        make(env, "campaign_member", campaign=fair["id"])
    assert list(refused.value.fields) == ["_record"]
    other = make(env, "account", name="Other")
    with pytest.raises(Invalid) as refused:
        make(env, "campaign_member", campaign=fair["id"], account=other["id"],
             contact=ann["id"])
    assert list(refused.value.fields) == ["contact"]


SALES = ("product_line", "competitor", "competitor_product", "opportunity_competitor",
         "campaign", "campaign_member", "opportunity_stage_plan", "quote", "quote_line",
         "contract", "contract_line", "execution_plan_line", "invoice", "receipt",
         "contact_job_change")


def test_every_page_of_the_sales_entities_renders(env: Env, pages: TestClient) -> None:
    acme = make(env, "account", name="Acme", credit_limit="500000")
    ann = make(env, "contact", full_name="Ann", account=acme["id"])
    product = press(env)
    rival = make(env, "competitor", name="Rival Corp")
    deal = make(env, "opportunity", name="Presses", account=acme["id"])
    quote = make(env, "quote", name="Q", account=acme["id"], opportunity=deal["id"])
    k = contract(env, acme["id"], product, "1", quote=quote["id"])
    fair = make(env, "campaign", name="Fair", campaign_type="trade_show")
    made = {
        "product_line": get(env, "product", {"id": product})["product_line"],
        "competitor": rival["id"],
        "competitor_product": make(env, "competitor_product", name="RP-1",
                                   competitor=rival["id"], our_product=product)["id"],
        "opportunity_competitor": make(env, "opportunity_competitor", opportunity=deal["id"],
                                       competitor=rival["id"])["id"],
        "campaign": fair["id"],
        "campaign_member": make(env, "campaign_member", campaign=fair["id"],
                                contact=ann["id"])["id"],
        "opportunity_stage_plan": make(env, "opportunity_stage_plan", opportunity=deal["id"],
                                       stage="proposal", planned_start="2026-03-01",
                                       planned_end="2026-03-31")["id"],
        "quote": quote["id"],
        "quote_line": make(env, "quote_line", quote=quote["id"], product=product)["id"],
        "contract": k["id"],
        "contract_line": make(env, "contract_line", contract=k["id"], product=product)["id"],
        "execution_plan_line": make(env, "execution_plan_line", contract=k["id"],
                                    kind="acceptance", description="Acceptance",
                                    due_date="2026-06-01")["id"],
        "invoice": make(env, "invoice", contract=k["id"], amount="100")["id"],
        "receipt": make(env, "receipt", contract=k["id"], amount="100")["id"],
        "contact_job_change": make(env, "contact_job_change", contact=ann["id"],
                                   job_title="Buyer", from_date="2020-01-01")["id"],
    }
    assert sign_in(pages).status_code == 303
    for entity in SALES:
        for path in (f"/e/{entity}", f"/e/{entity}/new", f"/e/{entity}/{made[entity]}",
                     f"/e/{entity}/{made[entity]}/edit"):
            assert pages.get(path).status_code == 200, path
    for entity, rid in (("account", acme["id"]), ("contact", ann["id"]),
                        ("opportunity", deal["id"]), ("lead", make(env, "lead",
                                                                   company="L")["id"])):
        assert pages.get(f"/e/{entity}/{rid}").status_code == 200, entity
    account_page = pages.get(f"/e/account/{acme['id']}").text
    assert "Available credit" in account_page and "Sub-accounts" in account_page

"""A parent's rules that read its rollups are judged when a child write changes them
(engine/runtime/rollups/rules.py): invoices and collections stay within the contract,
approved expenses within the budget (config/entities/contract.yaml, expense_budget.yaml)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Invalid
from tests.access_helpers import departments, place, user
from tests.conftest import Env, EnvFactory

INVOICES_OVER = "Invoices may not exceed the contract amount"


def contract_of(env: Env, amount: str) -> dict[str, Any]:
    """A draft contract whose one line makes its amount `amount`."""
    acme = place(env, "account", {"name": "Acme"})
    pump = place(env, "product", {"name": "Pump", "code": "P-1", "list_price": amount})
    deal = place(env, "contract", {"name": "Pumps", "account": acme["id"]})
    place(env, "contract_line", {"contract": deal["id"], "product": pump["id"], "quantity": 1})
    return env.records.get(SYSTEM, "contract", deal["id"])


def invoice(env: Env, contract: int, amount: str, number: str) -> dict[str, Any]:
    return env.records.create(SYSTEM, "invoice", {
        "contract": contract, "amount": amount, "status": "issued",
        "issued_on": "2026-12-01", "tax_invoice_no": number})


def invoiced(env: Env, contract: int) -> Decimal:
    return Decimal(env.records.get(SYSTEM, "contract", contract)["invoiced"])


def count(env: Env, entity: str) -> int:
    t = env.records.schema.table(entity)
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def test_an_invoice_past_the_contract_amount_is_refused_at_its_contract(env: Env) -> None:
    deal = contract_of(env, "1000")
    assert Decimal(deal["amount"]) == 1000
    invoice(env, deal["id"], "600", "INV-1")
    invoice(env, deal["id"], "400", "INV-2")  # exactly the amount: allowed
    with pytest.raises(Invalid) as refused:
        invoice(env, deal["id"], "0.01", "INV-3")
    assert list(refused.value.fields) == ["contract"]
    assert str(refused.value.fields["contract"]) == INVOICES_OVER
    assert invoiced(env, deal["id"]) == 1000 and count(env, "invoice") == 2  # nothing kept
    # a draft invoice does not count in `invoiced`: it may be written
    env.records.create(SYSTEM, "invoice", {"contract": deal["id"], "amount": "50"})
    assert count(env, "invoice") == 3


def test_a_smaller_contract_than_its_invoices_is_refused_at_the_line(env: Env) -> None:
    deal = contract_of(env, "1000")
    invoice(env, deal["id"], "900", "INV-1")
    # collections may go past the amount (the rest is the account's advance)
    env.records.create(SYSTEM, "receipt", {"contract": deal["id"], "amount": "1500",
                                           "status": "confirmed", "received_on": "2026-12-01"})
    # lowering the contract's amount below what was invoiced breaks the rule: the message
    # goes to the line's contract field, and the line keeps its price
    line = _line_of(env, deal["id"])
    with pytest.raises(Invalid) as smaller:
        env.records.update(SYSTEM, "contract_line", line["id"], {"unit_price": "800"},
                           version=line["version"])
    assert {k: str(v) for k, v in smaller.value.fields.items()} == {"contract": INVOICES_OVER}
    assert Decimal(env.records.get(SYSTEM, "contract", deal["id"])["amount"]) == 1000
    env.records.update(SYSTEM, "contract_line", line["id"], {"unit_price": "950"},
                       version=line["version"])
    assert Decimal(env.records.get(SYSTEM, "contract", deal["id"])["amount"]) == 950


def _line_of(env: Env, contract: int) -> dict[str, Any]:
    t = env.records.schema.table("contract_line")
    with env.engine.connect() as conn:
        line_id = conn.execute(select(t.c.id).where(t.c.contract == contract)).scalar_one()
    return env.records.get(SYSTEM, "contract_line", line_id)


def test_a_contract_already_past_its_rule_does_not_block_its_children(env: Env) -> None:
    deal = contract_of(env, "1000")
    first = invoice(env, deal["id"], "1000", "INV-1")
    t = env.records.schema.table("contract")  # data from before the rule: amount lowered
    with env.engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == deal["id"]).values(amount=Decimal("500")))
    # voiding an invoice lowers `invoiced` without mending the rule: not refused
    env.records.update(SYSTEM, "invoice", first["id"], {"status": "voided"},
                       version=first["version"])
    assert invoiced(env, deal["id"]) == 0


def test_budget_overruns_are_refused_unless_an_administrator_approves(
        make_env: EnvFactory, config_dir: Path) -> None:
    # without the shipped expense approval, which lets only its approvers approve: the
    # rule is what is tested here; tests/test_flows_approvals.py decides through it
    (config_dir / "flows" / "expense_approval.yaml").unlink()
    env = make_env(config_dir)
    dept = departments(env)
    boss = user(env, "boss", "sales_manager", department=dept["BJ"])
    budget = place(env, "expense_budget", {
        "name": "Travel Q4", "budget_department": dept["BJ"], "category": "travel",
        "period_start": "2026-10-01", "period_end": "2026-12-31", "amount": "1000"})
    spent = [place(env, "expense", {"subject": f"Trip {n}", "category": "travel",
                                    "amount": "600", "budget": budget["id"],
                                    "expense_date": "2026-11-02", "status": "draft"},
                   owner=boss) for n in (1, 2)]
    env.records.update(boss, "expense", spent[0]["id"], {"status": "approved"},
                       version=env.records.get(boss, "expense", spent[0]["id"])["version"])
    second = env.records.get(boss, "expense", spent[1]["id"])
    with pytest.raises(Invalid) as refused:
        env.records.update(boss, "expense", second["id"], {"status": "approved"},
                           version=second["version"])
    assert list(refused.value.fields) == ["budget"]
    assert "an administrator may approve it" in str(refused.value.fields["budget"])
    assert env.records.get(boss, "expense", second["id"])["status"] == "draft"
    env.records.update(env.admin.actor(), "expense", second["id"], {"status": "approved"},
                       version=second["version"])  # the rule's overridable_by: [admin]
    assert Decimal(env.records.get(SYSTEM, "expense_budget", budget["id"])["used"]) == 1200


def test_the_api_answers_422_with_the_rule_under_the_link(env: Env, api: TestClient) -> None:
    deal = contract_of(env, "100")
    answer = api.post("/api/invoice", json={
        "contract": deal["id"], "amount": "150", "status": "issued",
        "issued_on": "2026-12-01", "tax_invoice_no": "INV-9"})
    assert answer.status_code == 422, answer.text
    body = answer.json()["error"]
    assert body["fields"] == {"contract": INVOICES_OVER}
    [problem] = body["field_messages"]["contract"]
    number = next(n for n, v in enumerate(env.model.entity("contract").validations)
                  if v.rule == "invoiced <= amount")
    assert problem == {"message_id": INVOICES_OVER, "params": {},
                       "rule": f"contract.validations.{number}"}
    assert count(env, "invoice") == 0

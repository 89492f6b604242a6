"""Approvals (engine/runtime/flows/approvals.py) with the shipped flows: submitting, the lock,
deciding by API and page, mode all, delegation, escalation by time travel, the
administrators' fallback and the audit trail; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Conflict, Invalid
from engine.runtime.flows.hook import approvals_of
from engine.runtime.flows.timers import run_due
from engine.runtime.schema.tables import (
    APPROVAL_TABLE,
    APPROVAL_TASK_TABLE,
    AUTOMATION_RUN_TABLE,
    NOTIFICATION_TABLE,
)
from engine.runtime.users import User
from tests.conftest import Env
from tests.db_templates import ADMIN_PASSWORD


class Org:
    """Head office (manager: the director) above the East region (manager: a sales
    manager), where a sales rep works; finance sits at the head office."""

    def __init__(self, env: Env) -> None:
        self.env = env
        add = env.users.add
        admin = env.admin.actor()
        hq = env.records.create(admin, "department", {"name": "Headquarters"})
        east = env.records.create(admin, "department", {"name": "East region",
                                                        "parent": hq["id"]})
        self.hq, self.east = hq["id"], east["id"]
        self.director = add("director", ["executive"], password=ADMIN_PASSWORD,
                            department_id=self.hq)
        self.manager = add("east_manager", ["sales_manager"], password=ADMIN_PASSWORD,
                           department_id=self.east)
        self.rep = add("east_rep", ["sales_rep"], password=ADMIN_PASSWORD,
                       department_id=self.east)
        self.colleague = add("east_manager_2", ["sales_manager"], password=ADMIN_PASSWORD,
                             department_id=self.east)
        self.finance = add("finance_1", ["finance"], password=ADMIN_PASSWORD,
                           department_id=self.hq)
        env.records.update(admin, "department", self.hq, {"manager": self.director.id},
                           hq["version"])
        env.records.update(admin, "department", self.east, {"manager": self.manager.id},
                           east["version"])

    def client(self, user: User) -> TestClient:
        return self.env.client(self.env.users.new_token(user.name))

    def expense(self, amount: str = "120.00", **values: Any) -> dict[str, Any]:
        return self.env.records.create(self.rep.actor(), "expense", {
            "subject": "Taxi to the customer", "category": "transport", "amount": amount,
            **values})

    def submit(self, entity: str, record: dict[str, Any], option: str,
               user: User | None = None) -> dict[str, Any]:
        return self.submit_field(entity, record, "status", option, user)

    def submit_field(self, entity: str, record: dict[str, Any], field: str, option: str,
                     user: User | None = None) -> dict[str, Any]:
        return self.env.records.update((user or self.rep).actor(), entity, record["id"],
                                       {field: option}, record["version"])


def rows(env: Env, table: str, **where: Any) -> list[dict[str, Any]]:
    t = env.records.schema.table(table)
    stmt = select(t).order_by(t.c.id)
    for k, v in where.items():
        stmt = stmt.where(t.c[k] == v)
    with env.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def tasks_of(env: Env, record_id: int, entity: str = "expense") -> list[dict[str, Any]]:
    approvals = rows(env, APPROVAL_TABLE, entity=entity, record_id=record_id)
    return [t for a in approvals for t in rows(env, APPROVAL_TASK_TABLE, approval_id=a["id"])]


@pytest.fixture
def org(env: Env) -> Org:
    return Org(env)


def test_a_submitted_expense_waits_for_the_owners_manager_and_is_locked(env: Env,
                                                                       org: Org) -> None:
    expense = org.submit("expense", org.expense(), "submitted")
    assert expense["status"] == "submitted"
    [approval] = rows(env, APPROVAL_TABLE, entity="expense", record_id=expense["id"])
    assert (approval["status"], approval["step"], approval["previous"]) == \
        ("pending", "manager", "draft")
    [task] = tasks_of(env, expense["id"])
    assert (task["user_id"], task["status"]) == (org.manager.id, "pending")
    told = rows(env, NOTIFICATION_TABLE, user_id=org.manager.id)
    assert told and "Waiting for your approval" in told[-1]["message"]["en"]
    # locked while pending: neither the owner nor an administrator edits it
    for actor in (org.rep.actor(), env.admin.actor()):
        with pytest.raises(Conflict, match="waiting for approval"):
            env.records.update(actor, "expense", expense["id"], {"amount": "1.00"},
                               expense["version"])
    assert env.records.get(env.admin.actor(), "expense", expense["id"])["amount"] == \
        Decimal("120.00")
    # over HTTP the lock is a 409 naming the approval
    resp = org.client(org.rep).patch(f"/api/expense/{expense['id']}",
                                     json={"amount": "2.00", "version": expense["version"]})
    assert resp.status_code == 409 and "Expense approval" in resp.json()["error"]["message"]


def test_approving_moves_the_record_on_and_tells_the_submitter(env: Env, org: Org) -> None:
    expense = org.submit("expense", org.expense(), "submitted")
    [task] = tasks_of(env, expense["id"])
    resp = org.client(org.manager).post(f"/api/approvals/{task['id']}/approve",
                                        json={"comment": "Fine"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["approval"]["status"] == "approved"
    after = env.records.get(env.admin.actor(), "expense", expense["id"])
    assert after["status"] == "approved"
    assert after["updated_by"] == org.manager.id  # the decider's change, not an edit right
    [task] = tasks_of(env, expense["id"])
    assert (task["status"], task["comment"], task["decided_by"]) == \
        ("approved", "Fine", org.manager.id)
    told = rows(env, NOTIFICATION_TABLE, user_id=org.rep.id)
    assert any(n["message"]["en"] == "Expense approval: approved" for n in told)
    # the audit: every step of it is an automation run of the record
    reasons = [r["reason"] for r in rows(env, AUTOMATION_RUN_TABLE, entity="expense",
                                         record_id=expense["id"])]
    assert any(r.startswith("submitted") for r in reasons)
    assert any(r.startswith("approved: step manager: Fine") for r in reasons)
    # a settled task is not decided twice; another user's task is not theirs to see
    again = org.client(org.manager).post(f"/api/approvals/{task['id']}/approve")
    assert again.status_code == 409  # no body at all is fine; the task is settled
    other = org.client(org.colleague).post(f"/api/approvals/{task['id']}/reject",
                                           json={"comment": "no"})
    assert other.status_code == 404


def test_a_rejection_needs_a_reason_and_returns_the_record(env: Env, org: Org) -> None:
    expense = org.submit("expense", org.expense(), "submitted")
    [task] = tasks_of(env, expense["id"])
    client = org.client(org.manager)
    bare = client.post(f"/api/approvals/{task['id']}/reject", json={})
    assert bare.status_code == 400 and "comment" in bare.json()["error"]["fields"]
    resp = client.post(f"/api/approvals/{task['id']}/reject",
                       json={"comment": "No receipt attached"})
    assert resp.status_code == 200
    after = env.records.get(env.admin.actor(), "expense", expense["id"])
    assert after["status"] == "draft"  # back where it was submitted from
    # no longer locked: the owner fixes it and submits again
    fixed = env.records.update(org.rep.actor(), "expense", expense["id"],
                               {"description": "receipt attached"}, after["version"])
    org.submit("expense", fixed, "submitted")
    assert [a["status"] for a in rows(env, APPROVAL_TABLE, entity="expense",
                                      record_id=expense["id"])] == ["rejected", "pending"]


def test_a_step_applies_only_when_its_condition_holds(env: Env, org: Org) -> None:
    budget = env.records.create(env.admin.actor(), "expense_budget", {
        "name": "East travel", "budget_department": org.east, "category": "transport",
        "period_start": "2020-01-01", "period_end": "2099-12-31", "amount": "100.00"})
    # the East region's budget, so its people may read it
    env.records.assign(env.admin.actor(), "expense_budget", budget["id"], owner=None,
                       department=org.east)
    within = org.submit("expense", org.expense("50.00", budget=budget["id"]), "submitted")
    [task] = tasks_of(env, within["id"])
    org.client(org.manager).post(f"/api/approvals/{task['id']}/approve", json={})
    assert env.records.get(env.admin.actor(), "expense", within["id"])["status"] == \
        "approved"  # within the budget: the manager alone
    over = org.submit("expense", org.expense("80.00", budget=budget["id"]), "submitted")
    [task] = tasks_of(env, over["id"])
    org.client(org.manager).post(f"/api/approvals/{task['id']}/approve", json={})
    [approval] = rows(env, APPROVAL_TABLE, entity="expense", record_id=over["id"])
    assert (approval["status"], approval["step"]) == ("pending", "over_budget")
    finance = [t for t in tasks_of(env, over["id"]) if t["step"] == "over_budget"]
    assert [t["user_id"] for t in finance] == [org.finance.id]


def test_mode_all_waits_for_every_approver(env: Env, org: Org) -> None:
    admin = env.admin.actor()
    account = env.records.create(admin, "account", {"name": "Harbin Aviation"})
    contract = env.records.create(admin, "contract", {"name": "Spare engines",
                                                      "account": account["id"]})
    contract = org.submit("contract", contract, "in_review", user=env.admin)
    tasks = tasks_of(env, contract["id"], "contract")
    assert sorted(t["user_id"] for t in tasks) == sorted([org.finance.id, org.director.id])
    first = org.client(org.finance).post(f"/api/approvals/{tasks[0]['id']}/approve"
                                         if tasks[0]["user_id"] == org.finance.id else
                                         f"/api/approvals/{tasks[1]['id']}/approve", json={})
    assert first.json()["approval"]["status"] == "pending"
    assert env.records.get(admin, "contract", contract["id"])["status"] == "in_review"
    last = next(t for t in tasks if t["user_id"] == org.director.id)
    done = org.client(org.director).post(f"/api/approvals/{last['id']}/approve", json={})
    assert done.json()["approval"]["status"] == "approved"
    assert env.records.get(admin, "contract", contract["id"])["status"] == "approved"


def test_no_step_applies_approves_at_once(env: Env, org: Org) -> None:
    account = env.records.create(org.rep.actor(), "account", {"name": "Dalian Port"})
    quote = env.records.create(org.rep.actor(), "quote", {"name": "Crane parts",
                                                          "account": account["id"]})
    moved = org.submit("quote", quote, "in_review")
    assert moved["status"] == "approved"  # no discount, no large amount: nothing to wait for
    [approval] = rows(env, APPROVAL_TABLE, entity="quote", record_id=quote["id"])
    assert approval["status"] == "approved"


def test_nobody_approves_by_setting_the_approved_option_themselves(env: Env,
                                                                    org: Org) -> None:
    """Approving is the approvers' decision: the approved option is reached only through
    the approval, not by an edit, an administrator's included, nor by creating a record
    already approved; the engine's own writes (the demo, imports as the engine) may."""
    expense = org.expense()
    for actor in (org.rep.actor(), org.manager.actor(), env.admin.actor()):
        with pytest.raises(Invalid) as refused:
            env.records.update(actor, "expense", expense["id"], {"status": "approved"},
                               expense["version"])
        assert "only through its approval (Expense approval): set status to submitted to " \
            "send it for approval" in str(refused.value)
        assert list(refused.value.fields) == ["status"]
    resp = org.client(org.rep).post("/api/expense", json={
        "subject": "Dinner", "category": "entertainment", "amount": "80.00", "status": "approved"})
    assert resp.status_code == 422 and "status" in resp.json()["error"]["fields"], resp.text
    assert env.records.get(SYSTEM, "expense", expense["id"])["status"] == "draft"
    assert rows(env, APPROVAL_TABLE, entity="expense") == []
    made = env.records.create(SYSTEM, "expense", {
        "subject": "Imported", "category": "entertainment", "amount": "10.00",
        "status": "approved"})
    assert made["status"] == "approved"


def test_four_eyes_nobody_approves_what_they_submitted(env: Env, org: Org) -> None:
    # the rep's manager submits the rep's expense: the step's approver is that manager, so
    # the administrators stand in (and are told why)
    expense = org.submit("expense", org.expense(), "submitted", user=org.manager)
    [task] = tasks_of(env, expense["id"])
    assert task["user_id"] == env.admin.id
    [step_run] = [r for r in rows(env, AUTOMATION_RUN_TABLE, record_id=expense["id"])
                  if r["rule"] == "approvals.expense_review" and "waits for" in
                  (r["reason"] or "")]
    assert "no active approver for manager owner but the submitter" in step_run["reason"]
    assert org.client(org.manager).post(f"/api/approvals/{task['id']}/approve",
                                        json={}).status_code == 404  # not their task
    # an administrator submits: the manager decides, the administrator may not
    other = org.submit("expense", org.expense("55.00"), "submitted",
                       user=env.users.by_name("admin"))
    [task] = tasks_of(env, other["id"])
    assert task["user_id"] == org.manager.id
    resp = org.client(env.users.by_name("admin")).post(
        f"/api/approvals/{task['id']}/approve", json={})
    assert resp.status_code == 403 and "its approvers decide it" in resp.text
    resp = org.client(org.manager).post(f"/api/approvals/{task['id']}/approve", json={})
    assert resp.status_code == 200, resp.text
    assert env.records.get(SYSTEM, "expense", other["id"])["status"] == "approved"


def test_a_deep_discount_needs_the_sales_manager(env: Env, org: Org) -> None:
    admin = env.admin.actor()
    account = env.records.create(org.rep.actor(), "account", {"name": "Qingdao Logistics"})
    product = env.records.create(admin, "product", {"name": "Forklift", "code": "FL-1",
                                                    "list_price": "1000.00"})
    quote = env.records.create(org.rep.actor(), "quote", {"name": "Forklifts",
                                                          "account": account["id"]})
    env.records.create(org.rep.actor(), "quote_line", {
        "quote": quote["id"], "product": product["id"], "quantity": "2", "discount": "20"})
    quote = env.records.get(admin, "quote", quote["id"])
    moved = org.submit("quote", quote, "in_review")
    assert moved["status"] == "in_review"
    [task] = tasks_of(env, quote["id"], "quote")
    assert task["user_id"] == org.manager.id and task["step"] == "sales_manager"
    # the lock covers the lines too: they change the quote's totals
    with pytest.raises(Conflict):
        env.records.create(org.rep.actor(), "quote_line", {
            "quote": quote["id"], "product": product["id"], "quantity": "1"})


def test_delegation_sends_new_tasks_to_the_delegate(env: Env, org: Org) -> None:
    client = org.client(org.manager)
    today = approvals_of(env.records).today()  # type: ignore[union-attr]
    resp = client.put("/api/approvals/delegation", json={
        "delegate": "east_manager_2", "ends_on": (today + timedelta(days=7)).isoformat()})
    assert resp.status_code == 200, resp.text
    assert client.get("/api/approvals/delegation").json()["delegation"]["delegate"] == \
        "east_manager_2"
    expense = org.submit("expense", org.expense(), "submitted")
    [task] = tasks_of(env, expense["id"])
    assert (task["user_id"], task["for_user"]) == (org.colleague.id, org.manager.id)
    inbox = org.client(org.colleague).get("/api/approvals").json()["items"]
    assert [i["id"] for i in inbox] == [task["id"]]
    # bad delegations are 400s naming the field
    bad = client.put("/api/approvals/delegation", json={"delegate": "nobody",
                                                         "ends_on": today.isoformat()})
    assert bad.status_code == 400 and "delegate" in bad.json()["error"]["fields"]
    back = client.put("/api/approvals/delegation", json={
        "delegate": "east_manager_2", "starts_on": today.isoformat(),
        "ends_on": (today - timedelta(days=1)).isoformat()})
    assert back.status_code == 400 and "ends_on" in back.json()["error"]["fields"]
    assert client.delete("/api/approvals/delegation").status_code == 204
    second = org.submit("expense", org.expense("5.00"), "submitted")
    assert [t["user_id"] for t in tasks_of(env, second["id"])] == [org.manager.id]


def test_a_task_nobody_decides_escalates_to_the_managers_manager(env: Env, org: Org) -> None:
    expense = org.submit("expense", org.expense(), "submitted")
    [task] = tasks_of(env, expense["id"])
    now = env.records.clock()
    assert run_due(env.records, now + timedelta(days=1), worker_id="w") == 0
    assert run_due(env.records, now + timedelta(days=3, minutes=1), worker_id="w") >= 1
    tasks = tasks_of(env, expense["id"])
    assert [(t["user_id"], t["status"]) for t in tasks] == \
        [(org.manager.id, "escalated"), (org.director.id, "pending")]
    assert tasks[1]["for_user"] == org.manager.id
    # the director decides; the escalated task cannot be decided any more
    assert org.client(org.manager).post(f"/api/approvals/{task['id']}/approve",
                                        json={}).status_code == 409
    resp = org.client(org.director).post(f"/api/approvals/{tasks[1]['id']}/approve",
                                         json={})
    assert resp.json()["approval"]["status"] == "approved"


def test_a_step_with_no_active_approver_goes_to_the_administrators(env: Env,
                                                                  org: Org) -> None:
    env.users.set_active("east_manager", False)
    env.users.set_active("director", False)
    expense = org.submit("expense", org.expense(), "submitted")
    [task] = tasks_of(env, expense["id"])
    assert task["user_id"] == env.admin.id
    runs = rows(env, AUTOMATION_RUN_TABLE, entity="expense", record_id=expense["id"])
    assert any("sent to the administrators" in (r["reason"] or "") for r in runs)


def test_the_inbox_page_lists_and_decides(env: Env, org: Org, pages: TestClient) -> None:
    from tests.web_helpers import sign_in
    expense = org.submit("expense", org.expense(), "submitted")
    sign_in(pages, "east_manager", ADMIN_PASSWORD)
    page = pages.get("/approvals")
    assert page.status_code == 200
    assert "Taxi to the customer" in page.text and "Expense approval" in page.text
    count = pages.get("/approvals/count")
    assert ">1<" in count.text.replace(" ", "")
    [task] = tasks_of(env, expense["id"])
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    no_csrf = pages.post(f"/approvals/{task['id']}", data={"decision": "approve"},
                         follow_redirects=False)
    assert no_csrf.status_code == 403
    done = pages.post(f"/approvals/{task['id']}", data={
        "decision": "approve", "comment": "ok", "csrf_token": token.group(1)},
        follow_redirects=False)
    assert done.status_code == 303
    assert env.records.get(env.admin.actor(), "expense", expense["id"])["status"] == \
        "approved"
    assert "Nothing is waiting for your approval." in pages.get("/approvals").text


def test_a_reviewed_action_stays_locked(env: Env, org: Org) -> None:
    activity = env.records.create(org.rep.actor(), "activity", {
        "subject": "Site visit", "kind": "visit", "status": "done", "cost": "300.00"})
    submitted = org.submit_field("activity", activity, "review", "submitted")
    [task] = tasks_of(env, activity["id"], "activity")
    resp = org.client(org.manager).post(f"/api/approvals/{task['id']}/approve", json={})
    assert resp.status_code == 200
    reviewed = env.records.get(env.admin.actor(), "activity", activity["id"])
    assert reviewed["review"] == "approved" and reviewed["version"] > submitted["version"]
    with pytest.raises(Conflict, match="was approved"):
        env.records.update(org.rep.actor(), "activity", activity["id"], {"cost": "900.00"},
                           reviewed["version"])


def test_a_record_created_submitted_goes_back_to_its_first_option(env: Env, org: Org) -> None:
    expense = org.expense(status="submitted")
    [task] = tasks_of(env, expense["id"])
    resp = org.client(org.manager).post(f"/api/approvals/{task['id']}/reject",
                                        json={"comment": "Which customer?"})
    assert resp.status_code == 200, resp.text
    assert env.records.get(env.admin.actor(), "expense", expense["id"])["status"] == "draft"

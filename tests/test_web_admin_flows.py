"""The flows admin page (engine/web/pages/flows_admin.py): the configured flows, and a dry
run of a change through the shared engine.runtime.flows.dryrun.flow_test — what it would
fire, change and queue, and nothing written; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.runtime.errors import BadRequest
from engine.runtime.schema.tables import (
    APPROVAL_TABLE,
    APPROVAL_TASK_TABLE,
    AUDIT_TABLE,
    AUTOMATION_RUN_TABLE,
    NOTIFICATION_TABLE,
    OUTBOX_TABLE,
    STAGE_HISTORY_TABLE,
    TEAM_TABLE,
    TIMER_TABLE,
)
from engine.runtime.users import User
from engine.web.pages.flows_admin import MAX_FORM, parse_values
from tests.conftest import Env
from tests.db_templates import ADMIN_PASSWORD
from tests.deals import accept_quote
from tests.web_helpers import csrf_of, sign_in

WRITTEN = ("opportunity", "quote", "quote_line", "account", "activity", "contract",
           AUDIT_TABLE, AUTOMATION_RUN_TABLE, STAGE_HISTORY_TABLE, NOTIFICATION_TABLE,
           TIMER_TABLE, OUTBOX_TABLE, APPROVAL_TABLE, APPROVAL_TASK_TABLE, TEAM_TABLE)


def counts(env: Env) -> dict[str, int]:
    with env.engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(
            env.records.schema.table(name))).scalar_one() for name in WRITTEN}


def browser(env: Env, name: str = "admin", password: str = "admin-password") -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def dry_run(client: TestClient, *, htmx: bool = True, **form: str) -> Any:
    token = csrf_of(client.get("/admin/flows").text)
    headers = {"HX-Request": "true", "X-CSRF-Token": token} if htmx else {}
    data = form if htmx else {**form, "csrf_token": token}
    return client.post("/admin/flows/test", data=data, headers=headers)


def runs(html: str) -> dict[str, str]:
    """rule → result word, from the evaluations table."""
    found = re.findall(r'<span class="result result-\w+">(\w+)</span></td>\s*<td><code>'
                       r'([\w.]+)</code>', html)
    return {rule: result for result, rule in found}


def test_the_list_of_flows_and_the_navigation_link(env: Env) -> None:
    html = browser(env).get("/admin/flows").text
    for flow in env.model.flows:
        assert f'<tr id="flow-{flow.name}">' in html and flow.file in html
    row = html.split('<tr id="flow-opportunity_pipeline">')[1].split("</tr>")[0]
    assert "Opportunity pipeline" in row and "<code>stage</code>" in row
    assert "<code>won_notice</code>, <code>lost_notice</code>" in row
    assert "<code>make_contract</code>" in row
    row = html.split('<tr id="flow-quote_approval">')[1].split("</tr>")[0]
    assert "Approvals: <code>quote_review</code>" in row
    row = html.split('<tr id="flow-holiday_care">')[1].split("</tr>")[0]
    assert "Holiday schedules: <code>spring_festival</code>, <code>mid_autumn</code>" in row
    assert 'href="/admin/flows" aria-current="page"' in html
    assert '<select id="flow-test-flow" name="flow"' in html


def east_region(env: Env) -> tuple[User, User]:
    """A sales manager heading the East region, and a sales rep working there."""
    manager = env.users.add("east_manager", ["sales_manager"], password=ADMIN_PASSWORD)
    east = env.records.create(env.admin.actor(), "department", {"name": "East region",
                                                                "manager": manager.id})
    rep = env.users.add("east_rep", ["sales_rep"], password=ADMIN_PASSWORD,
                        department_id=east["id"])
    return manager, rep


def test_a_won_deal_fires_the_notice_and_the_team_and_writes_nothing(env: Env) -> None:
    admin = env.admin.actor()
    _manager, rep = east_region(env)
    account = env.records.create(rep.actor(), "account", {"name": "Dalian Port"})
    deal = env.records.create(rep.actor(), "opportunity", {
        "name": "Crane parts", "account": account["id"], "stage": "negotiation",
        "amount": "50000"})
    deal = accept_quote(env.records, deal["id"])  # a deal is won on an accepted quote
    client = browser(env)
    before = counts(env)
    response = dry_run(client, flow="opportunity_pipeline", id=str(deal["id"]),
                       changes=json.dumps({"stage": "won"}))
    assert response.status_code == 200, response.text
    html = response.text
    assert html.lstrip().startswith('<div id="flow-test-result"')  # a fragment for htmx
    assert 'id="flow-test-passed"' in html and "Dry run: nothing was written." in html
    assert runs(html) == {"opportunity_pipeline.stages": "passed",  # the won guard
                          "opportunity_pipeline.stages.on_enter.won": "fired",
                          "opportunity_pipeline.triggers.stage_defaults": "skipped",
                          "opportunity_pipeline.triggers.won_notice": "fired",
                          "opportunity_pipeline.triggers.lost_notice": "skipped"}
    assert "when is not true: AND(stage = &#34;lost&#34;" in html
    assert '<li class="action-team">Add to the team: east_manager</li>' in html
    assert '<li class="action-notify">Notify: east_rep</li>' in html
    assert "<li>Stage: Negotiation → Won</li>" in html  # the field change, option labels
    assert "Notification to east_rep: A deal of yours is won" in html
    assert counts(env) == before
    assert env.records.get(admin, "opportunity", deal["id"])["stage"] == "negotiation"
    # without htmx: the whole page, the form kept, the result below it
    page = dry_run(client, htmx=False, flow="opportunity_pipeline", id=str(deal["id"]),
                   changes='{"stage": "won"}')
    assert page.status_code == 200 and "<html" in page.text
    assert '<option value="opportunity_pipeline" selected>' in page.text
    assert "Notification to east_rep" in page.text
    # a refused move: named, and nothing written either
    refused = dry_run(client, flow="opportunity_pipeline", id=str(deal["id"]),
                      changes='{"stage": "lost"}')
    assert refused.status_code == 200 and 'id="flow-test-refused"' in refused.text
    assert "lost reason" in refused.text.lower()
    # a new record from field values: the create path
    made = dry_run(client, flow="opportunity_pipeline", record=json.dumps(
        {"name": "New deal", "account": account["id"], "stage": "won"}))
    assert made.status_code == 200, made.text
    assert runs(made.text)["opportunity_pipeline.triggers.won_notice"] == "fired"
    assert counts(env) == before


def test_a_deep_discount_would_start_the_quote_approval(env: Env) -> None:
    admin = env.admin.actor()
    _manager, rep = east_region(env)
    account = env.records.create(rep.actor(), "account", {"name": "Qingdao Logistics"})
    product = env.records.create(admin, "product", {"name": "Forklift", "code": "FL-1",
                                                    "list_price": "1000.00"})
    quote = env.records.create(rep.actor(), "quote", {"name": "Forklifts",
                                                      "account": account["id"]})
    env.records.create(rep.actor(), "quote_line", {
        "quote": quote["id"], "product": product["id"], "quantity": "2", "discount": "18"})
    client = browser(env)
    before = counts(env)
    response = dry_run(client, flow="quote_approval", id=str(quote["id"]),
                       changes='{"status": "in_review"}')
    assert response.status_code == 200, response.text
    html = response.text
    assert "submitted: status: draft → in_review" in html
    assert "step: step sales_manager (any) waits for users" in html
    assert ('<li class="queued-approval">Approval <code>quote_approval.quote_review</code>'
            f" — Quote #{quote['id']}: pending; step sales_manager waits for east_manager"
            "</li>") in html
    assert "Notification to east_manager: Waiting for your approval" in html
    assert 'class="queued-timer">Timer approval on Quote' in html  # its escalation
    assert counts(env) == before
    assert env.records.get(admin, "quote", quote["id"])["status"] == "draft"


@pytest.mark.parametrize(("form", "status", "problem"), [
    ({"flow": "nope", "id": "1", "changes": '{"stage": "won"}'}, 404,
     "There is no flow of this name."),
    ({"flow": "opportunity_pipeline", "id": "999999", "changes": '{"stage": "won"}'}, 404,
     "There is no such record."),
    ({"flow": "opportunity_pipeline", "id": "x", "changes": '{"stage": "won"}'}, 400,
     "The record id is a whole number."),
    ({"flow": "opportunity_pipeline", "record": "[1, 2]"}, 400, "Give a JSON object"),
    ({"flow": "opportunity_pipeline", "record": "{"}, 400, "This is not valid JSON."),
    ({"flow": "opportunity_pipeline", "record": '{"nam": "Deal"}'}, 400,
     "no field &#39;nam&#39; of opportunity"),
    ({"flow": "opportunity_pipeline", "id": "1"}, 400, "Give the changed values to test."),
    ({"flow": "opportunity_pipeline"}, 400, "Give a record id and the changed values"),
])
def test_bad_questions_are_named(env: Env, form: dict[str, str], status: int,
                                 problem: str) -> None:
    client = browser(env)
    before = counts(env)
    for htmx in (True, False):
        response = dry_run(client, htmx=htmx, **form)
        assert response.status_code == status, (form, response.text[-2000:])
        assert 'id="flow-test-error"' in response.text and problem in response.text
        assert ('<form class="flow-test-form"' in response.text) is not htmx
    assert counts(env) == before


def test_a_form_too_large_and_others_than_administrators(env: Env) -> None:
    client = browser(env)
    token = csrf_of(client.get("/admin/flows").text)
    big = client.post("/admin/flows/test", headers={"HX-Request": "true",
                                                    "X-CSRF-Token": token},
                      data={"flow": "opportunity_pipeline",
                            "record": json.dumps({"name": "x" * MAX_FORM})})
    assert big.status_code == 413 and "The form is too large" in big.text
    odd = client.post("/admin/flows/test", headers={"HX-Request": "true",
                                                    "X-CSRF-Token": token},
                      files={"record": ("r.json", b"{}")})
    assert odd.status_code == 400 and "with the page&#39;s form" in odd.text
    env.users.add("rep", ["sales_rep"], password="a-password")
    rep = browser(env, "rep", "a-password")
    assert 'href="/admin/flows"' not in rep.get("/").text
    assert rep.get("/admin/flows").status_code == 403
    answer = rep.post("/admin/flows/test", data={
        "flow": "opportunity_pipeline", "record": '{"name": "x"}',
        "csrf_token": csrf_of(rep.get("/").text)})
    assert answer.status_code == 403 and "Only an administrator" in answer.text
    # Chinese
    token = csrf_of(client.get("/").text)
    client.post("/account/language", data={"language": "zh-CN", "csrf_token": token})
    assert "试运行" in client.get("/admin/flows").text


@given(st.text(max_size=200))
def test_any_text_is_values_or_a_named_problem(text: str) -> None:
    try:
        values = parse_values(text, "record")
    except BadRequest as exc:
        assert set(exc.fields) == {"record"}
    else:
        assert values is None or isinstance(values, dict)

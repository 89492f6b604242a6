"""Conversions (engine/runtime/flows/conversions.py, POST /api/<entity>/<id>/actions/<name>
and the record page's buttons): each shipped conversion end to end through the API, all or
nothing, duplicates reused, the 403/404/409/422 answers; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.runtime.flows.conversions import NotAllowed, convert
from engine.runtime.schema.tables import AUTOMATION_RUN_TABLE
from tests.conftest import Env
from tests.web_helpers import csrf_of, sign_in


def count(env: Env, entity: str) -> int:
    t = env.records.schema.table(entity)
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def make(env: Env, entity: str, **values: Any) -> dict[str, Any]:
    return env.records.create(env.admin.actor(), entity, values)


def lead(env: Env, **values: Any) -> dict[str, Any]:
    return make(env, "lead", **{"company": "Harbin Turbine Works", "contact_name": "Wang Li",
                                "email": "wang@example.cn", "industry": "energy",
                                "estimated_value": "250000", "status": "qualified", **values})


def test_a_lead_converts_to_account_contact_and_opportunity(env: Env, api: TestClient) -> None:
    found = lead(env, notes="Needs two turbines")
    answer = api.post(f"/api/lead/{found['id']}/actions/convert")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    made = body["records"]
    assert body["main"] == "account" and set(made) == {"account", "contact", "opportunity"}
    assert answer.headers["location"] == f"/api/account/{made['account']['id']}"
    assert not made["account"]["reused"]
    account = api.get(made["account"]["url"]).json()
    assert account["name"] == "Harbin Turbine Works" and account["industry"] == "energy"
    contact = api.get(made["contact"]["url"]).json()
    assert contact["full_name"] == "Wang Li" and contact["account"] == account["id"]
    deal = api.get(made["opportunity"]["url"]).json()
    assert deal["account"] == account["id"] and deal["primary_contact"] == contact["id"]
    assert deal["amount"] == "250000.00" and deal["source"] == "lead"
    assert deal["owner_id"] == env.admin.id
    converted = api.get(f"/api/lead/{found['id']}").json()
    assert converted["status"] == "converted"
    assert converted["converted_account"] == account["id"]
    assert converted["converted_opportunity"] == deal["id"]
    # once converted, its condition no longer holds: 409, nothing made
    again = api.post(f"/api/lead/{found['id']}/actions/convert")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "conversion_not_allowed"
    assert "status <> \"converted\"" in again.json()["error"]["message"]
    assert count(env, "account") == 1
    # "why did this change?" on the lead tells the conversion
    runs = api.get(f"/api/lead/{found['id']}/automation").json()["runs"]
    (run,) = [r for r in runs if r["rule"] == "conversions.convert"]
    assert run["result"] == "fired" and run["event"] == "action"
    assert run["diff"]["status"] == ["qualified", "converted"]
    assert [a["entity"] for a in run["actions"] if a["kind"] == "create"] == \
        ["account", "contact", "opportunity"]


def test_an_account_of_the_same_name_is_reused(env: Env, api: TestClient) -> None:
    existing = make(env, "account", name="Harbin Turbine Works")
    found = lead(env, company="  harbin turbine WORKS ")
    refused = api.post(f"/api/lead/{found['id']}/actions/convert",
                       json={"duplicates": "refuse"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "duplicate"
    assert refused.json()["error"]["fields"] == {"account": f"account {existing['id']}"}
    assert count(env, "contact") == 0
    answer = api.post(f"/api/lead/{found['id']}/actions/convert")
    assert answer.status_code == 201, answer.text
    made = answer.json()["records"]
    assert made["account"] == {**made["account"], "id": existing["id"], "reused": True}
    assert count(env, "account") == 1
    assert api.get(made["contact"]["url"]).json()["account"] == existing["id"]


def test_a_failing_record_fails_the_whole_conversion(env: Env, api: TestClient) -> None:
    # an opportunity cannot hold a negative amount: the account and contact made before it
    # are not kept either, and the lead is not marked
    found = lead(env)
    answer = api.post(f"/api/lead/{found['id']}/actions/convert",
                      json={"values": {"opportunity": {"amount": "-5"}}})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert set(error["fields"]) == {"opportunity.amount"}
    assert "opportunity (opportunity) is not valid" in error["message"]
    assert (count(env, "account"), count(env, "contact"), count(env, "opportunity")) == (0, 0, 0)
    assert api.get(f"/api/lead/{found['id']}").json()["status"] == "qualified"
    # overrides name records and fields the caller may write
    for body, field in [({"values": {"nothing": {}}}, "values.nothing"),
                        ({"values": {"account": {"colour": "red"}}}, "account.colour")]:
        wrong = api.post(f"/api/lead/{found['id']}/actions/convert", json=body)
        assert wrong.status_code == 422 and field in wrong.json()["error"]["fields"], wrong.text
    for body in [{"duplicates": "maybe"}, {"other": 1}, {"values": []}]:
        assert api.post(f"/api/lead/{found['id']}/actions/convert",
                        json=body).status_code == 400
    ok = api.post(f"/api/lead/{found['id']}/actions/convert",
                  json={"values": {"opportunity": {"name": "Two turbines"}}})
    assert ok.status_code == 201, ok.text
    assert api.get(ok.json()["records"]["opportunity"]["url"]).json()["name"] == "Two turbines"


def test_who_may_convert(env: Env) -> None:
    found = lead(env)
    # marketing owns leads but may not create accounts: 403, naming the entity
    env.users.add("mia", ["marketing"], password="a-password")
    mia = env.client(env.users.new_token("mia"))
    refused = mia.post(f"/api/lead/{found['id']}/actions/convert")
    assert refused.status_code == 403, refused.text
    assert count(env, "account") == 0
    # a sales rep reads only their own leads: the admin's is not there for them
    env.users.add("rob", ["sales_rep"], password="a-password")
    rob = env.client(env.users.new_token("rob"))
    assert rob.post(f"/api/lead/{found['id']}/actions/convert").status_code == 404
    assert rob.post("/api/lead/999999/actions/convert").status_code == 404
    assert rob.post(f"/api/lead/{found['id']}/actions/nothing").status_code == 404
    # their own lead they convert, and own what it made
    rob_actor = env.users.by_name("rob").actor()
    own = env.records.create(rob_actor, "lead", {"company": "Rob's lead", "status": "new"})
    answer = rob.post(f"/api/lead/{own['id']}/actions/convert")
    assert answer.status_code == 201, answer.text
    deal = rob.get(answer.json()["records"]["opportunity"]["url"]).json()
    assert deal["owner_id"] == rob_actor.user_id
    # without a token: 401
    assert env.client().post(f"/api/lead/{own['id']}/actions/convert").status_code == 401


def test_a_campaign_participant_becomes_a_lead(env: Env, api: TestClient) -> None:
    account = make(env, "account", name="Shenyang Aero")
    contact = make(env, "contact", full_name="Zhao Min", account=account["id"],
                   email="zhao@example.cn")
    campaign = make(env, "campaign", name="Expo 2026", campaign_type="trade_show")
    member = make(env, "campaign_member", campaign=campaign["id"], account=account["id"],
                  contact=contact["id"], response="invited")
    path = f"/api/campaign_member/{member['id']}/actions/make_lead"
    assert api.post(path).status_code == 409  # only an interested participant
    env.records.update(env.admin.actor(), "campaign_member", member["id"],
                       {"response": "interested"}, member["version"])
    answer = api.post(path)
    assert answer.status_code == 201, answer.text
    made = api.get(answer.json()["records"]["lead"]["url"]).json()
    assert made["company"] == "Shenyang Aero" and made["contact_name"] == "Zhao Min"
    assert made["email"] == "zhao@example.cn" and made["campaign"] == campaign["id"]
    assert made["source"] == "campaign"
    assert api.get(f"/api/campaign_member/{member['id']}").json()["lead"] == made["id"]
    assert api.post(path).status_code == 409


def test_a_won_deal_gets_a_contract_with_the_accepted_quote_lines(
        env: Env, api: TestClient) -> None:
    admin = env.admin.actor()
    account = make(env, "account", name="Dalian Shipyard")
    deal = make(env, "opportunity", name="Cranes", account=account["id"])
    turbine = make(env, "product", name="Crane", code="CR-1", list_price="1000")
    motor = make(env, "product", name="Motor", code="MO-1", list_price="50")
    rejected = make(env, "quote", name="First offer", account=account["id"],
                    opportunity=deal["id"], status="rejected")
    make(env, "quote_line", quote=rejected["id"], product=turbine["id"], quantity="9")
    accepted = make(env, "quote", name="Second offer", account=account["id"],
                    opportunity=deal["id"], status="accepted", payment_terms="30 days")
    make(env, "quote_line", quote=accepted["id"], product=turbine["id"], quantity="2",
         unit_price="900", discount="10", position=1)
    make(env, "quote_line", quote=accepted["id"], product=motor["id"], quantity="4",
         position=2)
    path = f"/api/opportunity/{deal['id']}/actions/make_contract"
    not_won = api.post(path)
    assert not_won.status_code == 409
    assert "stage = \"won\"" in not_won.json()["error"]["message"]
    deal = env.records.get(admin, "opportunity", deal["id"])
    env.records.update(admin, "opportunity", deal["id"], {"stage": "won"}, deal["version"])
    answer = api.post(path)
    assert answer.status_code == 201, answer.text
    made = answer.json()["records"]["contract"]
    assert made["lines"] == 2 and answer.json()["found"] == {"quote": accepted["id"]}
    contract = api.get(made["url"] + "?include=lines").json()
    assert contract["quote"] == accepted["id"] and contract["opportunity"] == deal["id"]
    assert contract["payment_terms"] == "30 days" and contract["status"] == "draft"
    assert [(ln["description"], Decimal(ln["quantity"]), ln["unit_price"],
             Decimal(ln["discount"])) for ln in contract["lines"]] == [
        ("Crane", 2, "900.00", 10), ("Motor", 4, "50.00", 0)]
    assert contract["amount"] == "1820.00"
    # a second time the deal's contract is found, not made again
    again = api.post(path)
    assert again.status_code == 201, again.text
    assert again.json()["records"]["contract"] == {**made, "reused": True, "lines": 0}
    assert count(env, "contract") == 1 and count(env, "contract_line") == 2


def test_a_won_deal_without_an_accepted_quote_is_refused(env: Env, api: TestClient) -> None:
    account = make(env, "account", name="Wuhan Steel")
    deal = make(env, "opportunity", name="Furnace", account=account["id"], stage="won")
    answer = api.post(f"/api/opportunity/{deal['id']}/actions/make_contract")
    assert answer.status_code == 409, answer.text
    assert "the deal has no accepted quote" in answer.json()["error"]["message"]
    zh = api.post(f"/api/opportunity/{deal['id']}/actions/make_contract",
                  headers={"Accept-Language": "zh-CN"})
    assert "该销售机会没有已接受的报价单" in zh.json()["error"]["message"], zh.text
    assert count(env, "contract") == 0


def test_service_feedback_becomes_an_opportunity(env: Env, api: TestClient) -> None:
    account = make(env, "account", name="Qingdao Port")
    request = make(env, "service_request", subject="Crane 3 noisy", account=account["id"])
    path = f"/api/service_request/{request['id']}/actions/feedback_opportunity"
    assert api.post(path).status_code == 409  # no feedback yet
    env.records.update(env.admin.actor(), "service_request", request["id"],
                       {"feedback": "They want two more cranes"}, request["version"])
    answer = api.post(path)
    assert answer.status_code == 201, answer.text
    deal = api.get(answer.json()["records"]["opportunity"]["url"]).json()
    assert deal["name"] == "Crane 3 noisy" and deal["account"] == account["id"]
    assert deal["description"] == "They want two more cranes"
    assert deal["source"] == "existing_customer"
    assert api.get(f"/api/service_request/{request['id']}").json()["feedback_opportunity"] \
        == deal["id"]


def test_the_page_offers_the_button_and_its_post_converts(env: Env, pages: TestClient) -> None:
    found = lead(env)
    sign_in(pages)
    page = pages.get(f"/e/lead/{found['id']}")
    assert page.status_code == 200
    assert f'action="/e/lead/{found["id"]}/actions/convert"' in page.text
    # without the CSRF token the POST is refused
    assert pages.post(f"/e/lead/{found['id']}/actions/convert",
                      follow_redirects=False).status_code == 403
    sent = pages.post(f"/e/lead/{found['id']}/actions/convert",
                      data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    account = pages.get(sent.headers["location"])
    assert sent.headers["location"].startswith("/e/account/")
    assert "Made from a Lead by its conversion." in account.text
    # converted: no button any more; a second POST shows the page with the problem
    page = pages.get(f"/e/lead/{found['id']}")
    assert "/actions/convert" not in page.text
    again = pages.post(f"/e/lead/{found['id']}/actions/convert",
                       data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert again.status_code == 409 and "cannot be converted now" in again.text
    panel = pages.get(f"/e/lead/{found['id']}/automation")
    assert "conversions.convert" in panel.text


def test_the_button_is_for_those_who_may_convert(env: Env, pages: TestClient) -> None:
    env.users.add("mia", ["marketing"], password="a-password")
    found = lead(env)
    sign_in(pages, "mia", "a-password")
    page = pages.get(f"/e/lead/{found['id']}")
    assert page.status_code == 200, page.text
    assert "/actions/convert" not in page.text


def test_openapi_lists_the_conversions(env: Env, api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    post = doc["paths"]["/api/lead/{record_id}/actions/{action}"]["post"]
    assert "convert" in post["parameters"][1]["schema"]["enum"]
    assert "201" in post["responses"]
    assert "make_contract" in doc["paths"]["/api/opportunity/{record_id}/actions/{action}"][
        "post"]["parameters"][1]["schema"]["enum"]
    env.users.add("mia", ["marketing"], password="a-password")
    mia = env.client(env.users.new_token("mia"))
    seen = mia.get("/openapi.json").json()["paths"]
    lead_actions = seen.get("/api/lead/{record_id}/actions/{action}")
    assert lead_actions is None or "convert" not in \
        lead_actions["post"]["parameters"][1]["schema"]["enum"]


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                         max_leaves=8))
def test_any_body_gets_an_answer_not_a_crash(env: Env, api: TestClient, body: Any) -> None:
    found = lead(env, company=f"Lead {count(env, 'lead')}")
    answer = api.post(f"/api/lead/{found['id']}/actions/convert", json=body)
    assert answer.status_code in (201, 400, 409, 422), answer.text
    assert answer.json().get("error", {}).get("code") != "internal"


def test_runs_are_written_on_the_records_made(env: Env, api: TestClient) -> None:
    found = lead(env)
    made = api.post(f"/api/lead/{found['id']}/actions/convert").json()["records"]
    t = env.records.schema.table(AUTOMATION_RUN_TABLE)
    with env.engine.connect() as conn:
        rows = conn.execute(select(t.c.entity, t.c.record_id, t.c.reason).where(
            t.c.rule == "conversions.convert").order_by(t.c.id)).all()
    assert [(r.entity, r.record_id) for r in rows] == [
        ("lead", found["id"]), *[(m["entity"], m["id"]) for m in made.values()]]
    assert rows[1].reason == f"made by convert of lead {found['id']}"



def test_two_conversions_of_one_lead_at_once_make_one_set(env: Env) -> None:
    found = lead(env)
    admin = env.admin.actor()
    barrier = threading.Barrier(2)

    def run() -> str:
        barrier.wait()
        try:
            convert(env.records, admin, "lead", found["id"], "convert")
        except NotAllowed:
            return "refused"
        return "converted"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: run(), range(2)))
    assert outcomes == ["converted", "refused"]
    assert (count(env, "account"), count(env, "contact"), count(env, "opportunity")) == (1, 1, 1)

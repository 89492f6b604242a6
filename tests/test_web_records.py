"""Detail pages and their actions: assign, team (engine/web/pages/records.py)."""

from __future__ import annotations

import re
from datetime import date

from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.test_web_forms import XSS, client_for, zoned_client
from tests.web_helpers import csrf_of, sign_in


def value_of(page: str, name: str) -> str:
    """The text shown for field `name` on a detail page (tags stripped)."""
    found = re.search(rf'<div class="item[^"]*" id="value-{name}">\s*<dt>[^<]*</dt>\s*'
                      r'<dd[^>]*>(.*?)</dd>', page, re.S)
    assert found, f"no value {name} on the page"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_detail_shows_sections_with_values_formatted(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme", "industry": "public_sector"})
    deal = env.records.create(actor, "opportunity", {
        "name": "Turbines", "account": acme["id"], "amount": "1234567.5",
        "stage": "negotiation", "close_date": "2025-03-31", "authority": "decision_maker"})
    sign_in(pages)
    page = pages.get(f"/e/opportunity/{deal['id']}").text
    assert "<h2>Deal</h2>" in page and "<h2>Qualification</h2>" in page
    assert value_of(page, "amount") == "¥1,234,567.50"
    assert value_of(page, "probability") == "80%"
    assert value_of(page, "weighted") == "¥987,654.00"  # computed
    assert value_of(page, "close_date") == "Mar 31, 2025"
    assert value_of(page, "authority") == "Decision maker"
    assert f'<a href="/e/account/{acme["id"]}">Acme</a>' in page
    assert f'href="/e/opportunity/{deal["id"]}/edit"' in page
    assert f'href="/e/opportunity/{deal["id"]}/delete"' in page
    owner = re.search(r"<dt>Owner</dt><dd>([^<]*)</dd>", page)
    assert owner and owner.group(1) == "admin"
    account = pages.get(f"/e/account/{acme['id']}").text
    assert value_of(account, "industry") == "Public sector"


def test_detail_in_chinese(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme"})
    deal = env.records.create(actor, "opportunity", {"name": "D", "account": acme["id"],
                                                     "amount": "1000"})
    env.users.set_locale(env.admin.id, "zh-CN")
    sign_in(pages)
    page = pages.get(f"/e/opportunity/{deal['id']}").text
    assert "<h2>商机</h2>" in page and "<dt>加权金额</dt>" in page
    assert "历史记录" in page and "编辑" in page
    assert value_of(page, "amount") == "¥1,000.00"


def test_score_shows_what_each_answer_adds(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme"})
    deal = env.records.create(actor, "opportunity", {
        "name": "D", "account": acme["id"], "budget": "confirmed",
        "authority": "influencer", "need": "none"})
    sign_in(pages)
    page = pages.get(f"/e/opportunity/{deal['id']}").text
    assert value_of(page, "score") == "40"
    explain = re.search(r'<details class="explain" id="explain-score">(.*?)</details>', page,
                        re.S)
    assert explain
    rows = re.findall(r'<th scope="row">([^<]*)</th><td class="num">.*?</span>([^<]*)</td>',
                      explain.group(1))
    # each answer in words with its points, not the formula's source
    assert rows == [("Budget: Confirmed", "30"), ("Authority: Influencer", "10"),
                    ("Need: None", "0"), ("Timeline: no answer", "0")]
    assert "CASE(" not in explain.group(1)
    assert 'id="explain-weighted"' not in page  # a product, not a sum
    env.users.set_locale(env.admin.id, "zh-CN")
    chinese = pages.get(f"/e/opportunity/{deal['id']}").text
    explain = re.search(r'<details class="explain" id="explain-score">(.*?)</details>',
                        chinese, re.S)
    assert explain
    C = "\uff1a"  # the full-width colon Chinese writes after a label
    assert re.findall(r'<th scope="row">([^<]*)</th>', explain.group(1)) == [
        f"预算{C}已确认", f"决策权{C}影响者", f"需求{C}无", f"时间表{C}未填写"]


def test_hidden_fields_and_condition_hidden_fields_are_left_out(env: Env) -> None:
    actor = SYSTEM
    acme = env.records.create(actor, "account", {"name": "Acme", "credit_limit": "900"})
    open_deal = env.records.create(actor, "opportunity", {
        "name": "Open", "account": acme["id"], "amount": "5000", "stage": "proposal"})
    lost = env.records.create(actor, "opportunity", {
        "name": "Gone", "account": acme["id"], "stage": "lost", "lost_reason": "price"})
    user(env, "mkt", "marketing")
    client = client_for(env, "mkt")
    page = client.get(f"/e/opportunity/{open_deal['id']}").text
    assert 'id="value-amount"' not in page and 'id="value-weighted"' not in page
    assert "5,000" not in page and "Weighted" not in page
    assert 'id="value-lost_reason"' not in page  # hidden by the form's condition
    assert value_of(client.get(f"/e/opportunity/{lost['id']}").text, "lost_reason") == "Price"
    account = client.get(f"/e/account/{acme['id']}").text
    assert "credit_limit" not in account and "900" not in account
    # the related list of opportunities leaves the hidden columns out too
    related = re.search(r'id="related-opportunity-account">(.*?)</section>', account, re.S)
    assert related and "Amount" not in related.group(1) and "Open" in related.group(1)


def test_related_lists_link_children_and_add_returns_to_the_parent(
        env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme"})
    boss = env.records.create(actor, "contact", {"full_name": "Boss", "account": acme["id"]})
    env.records.create(actor, "contact", {"full_name": XSS, "account": acme["id"],
                                          "reports_to": boss["id"]})
    env.records.create(actor, "opportunity", {"name": "Deal", "account": acme["id"],
                                              "amount": "10"})
    sign_in(pages)
    page = pages.get(f"/e/account/{acme['id']}").text
    contacts = re.search(r'id="related-contact-account">(.*?)</section>', page, re.S)
    assert contacts
    block = contacts.group(1)
    assert f'<a href="/e/contact/{boss["id"]}">Boss</a>' in block
    assert "&lt;img src=x onerror=alert(1)&gt;" in block and XSS not in page
    assert (f'href="/e/contact/new?account={acme["id"]}&amp;next=%2Fe%2Faccount%2F'
            f'{acme["id"]}"') in block
    assert f'hx-get="/e/account/{acme["id"]}/tree/contact" hx-trigger="load"' in block
    assert f'href="/e/contact?account={acme["id"]}"' in block
    deals = re.search(r'id="related-opportunity-account">(.*?)</section>', page, re.S)
    assert deals and "/tree/" not in deals.group(1) and "Deal" in deals.group(1)
    assert '<span class="badge">2</span>' in page  # two contacts


def test_history_shows_who_changed_what(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme"})
    deal = env.records.create(actor, "opportunity", {"name": "D", "account": acme["id"],
                                                     "amount": "100"})
    env.records.update(actor, "opportunity", deal["id"],
                       {"amount": "2500", "close_date": date(2025, 1, 2)}, 1)
    sign_in(pages)
    page = pages.get(f"/e/opportunity/{deal['id']}").text
    history = re.search(r'<section class="card" id="history">(.*?)</section>', page, re.S)
    assert history
    rows = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td><td>([^<]*)</td></tr>", history.group(1))
    assert ("admin", "Changed", "Amount", "¥100.00", "¥2,500.00") in rows
    assert ("admin", "Changed", "Expected close date", "", "Jan 2, 2025") in rows
    user(env, "mkt", "marketing")
    hidden = client_for(env, "mkt").get(f"/e/opportunity/{deal['id']}").text
    assert "2,500" not in hidden and "Close date" not in hidden.replace("Expected close", "")
    assert "Expected close date" in hidden


def test_datetimes_are_shown_in_the_organisations_time_zone(env: Env) -> None:
    """A lead received at 09:00 in Shanghai (01:00 UTC) shows 09:00 on its page, in its
    history and in the list — what the calendar says too — and 01:00 in UTC."""
    actor = env.admin.actor()
    lead = env.records.create(actor, "lead", {"company": "Zone Co",
                                              "received_at": "2026-03-31T01:00:00Z"})
    env.records.update(actor, "lead", lead["id"], {"received_at": "2026-03-31T16:30:00Z"}, 1)
    shanghai = zoned_client(env, "Asia/Shanghai")
    page = shanghai.get(f"/e/lead/{lead['id']}").text
    assert value_of(page, "received_at") == "Apr 1, 2026, 12:30:00\u202fAM"
    history = re.search(r'<section class="card" id="history">(.*?)</section>', page, re.S)
    assert history
    assert "<td>Mar 31, 2026, 9:00:00\u202fAM</td><td>Apr 1, 2026, 12:30:00\u202fAM</td>" \
        in history.group(1)
    listed = shanghai.get("/e/lead").text
    assert "Apr 1, 2026, 12:30:00\u202fAM" in listed and "4:30:00" not in listed
    utc = zoned_client(env, "UTC").get(f"/e/lead/{lead['id']}").text
    assert value_of(utc, "received_at") == "Mar 31, 2026, 4:30:00\u202fPM"
    env.users.set_locale(env.admin.id, "zh-CN")
    chinese = zoned_client(env, "Asia/Shanghai").get(f"/e/lead/{lead['id']}").text
    assert value_of(chinese, "received_at") == "2026年4月1日 00:30:00"


def test_team_members_are_added_and_removed(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme"})
    helper = user(env, "presales1", "presales")
    sign_in(pages)
    path = f"/e/account/{acme['id']}"
    token = csrf_of(pages.get(path).text)
    added = pages.post(f"{path}/team", data={"csrf_token": token, "_member": str(helper.id),
                                             "access": "edit"}, follow_redirects=False)
    assert added.status_code == 303 and added.headers["location"] == f"{path}?done=team"
    page = pages.get(added.headers["location"]).text
    assert "The team was updated." in page
    team = re.search(r'<section class="card" id="team">(.*?)</section>', page, re.S)
    assert team and "<td>presales1</td><td>Can edit</td>" in team.group(1)
    assert f'action="{path}/team/{helper.id}/remove"' in team.group(1)
    assert env.records.team(actor, "account", acme["id"])[0]["access"] == "edit"
    bad = pages.post(f"{path}/team", data={"csrf_token": token, "_member": "999999"})
    assert bad.status_code == 422 and "no active user with id 999999" in bad.text
    assert pages.post(f"{path}/team/{helper.id}/remove").status_code == 403  # no CSRF token
    removed = pages.post(f"{path}/team/{helper.id}/remove", data={"csrf_token": token},
                         follow_redirects=False)
    assert removed.status_code == 303
    assert env.records.team(actor, "account", acme["id"]) == []
    assert pages.post(f"{path}/team/{helper.id}/remove",
                      data={"csrf_token": token}).status_code == 404


def test_viewers_without_update_or_assign_see_no_forms(env: Env) -> None:
    acme = env.records.create(SYSTEM, "account", {"name": "Acme"})
    user(env, "exec", "executive")
    client = client_for(env, "exec")
    path = f"/e/account/{acme['id']}"
    page = client.get(path).text
    assert f'action="{path}/team"' not in page and f'action="{path}/assign"' not in page
    assert f'href="{path}/edit"' not in page and f'href="{path}/delete"' not in page
    assert "/e/contact/new?" not in page  # no create scope: no "add"
    token = csrf_of(client.get("/").text)
    assert client.post(f"{path}/team", data={"csrf_token": token, "_member": "1"}) \
        .status_code == 403
    assert client.post(f"{path}/assign", data={"csrf_token": token, "_owner": "1"}) \
        .status_code == 403


def test_assign_gives_the_record_to_a_user(env: Env, pages: TestClient) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    sign_in(pages)
    path = f"/e/account/{acme['id']}"
    page = pages.get(path).text
    assert f'action="{path}/assign"' in page and 'hx-get="/e/account/pick/_owner"' in page
    stale = pages.post(f"{path}/assign", data={"csrf_token": csrf_of(page), "version": "7",
                                               "_owner": str(rep.id)})
    assert stale.status_code == 409 and "Nothing was changed." in stale.text
    assert f'<a href="{path}">Reload</a>' in stale.text
    done = pages.post(f"{path}/assign", data={"csrf_token": csrf_of(page), "version": "1",
                                              "_owner": str(rep.id)}, follow_redirects=False)
    assert done.status_code == 303
    after = env.records.get(env.admin.actor(), "account", acme["id"])
    assert after["owner_id"] == rep.id and after["department_id"] == dept["BJ"]
    shown = pages.get(done.headers["location"]).text
    assert "The record was assigned." in shown
    assert re.search(r"<dt>Owner</dt><dd>rep</dd>", shown)
    assert f'<dt>Department</dt><dd><a href="/e/department/{dept["BJ"]}">Beijing branch</a>' \
        in shown
    assert "<td>Assigned</td><td>Owner</td><td>admin</td><td>rep</td>" in shown
    nobody = pages.post(f"{path}/assign", data={"csrf_token": csrf_of(page)})
    assert nobody.status_code == 422 and "give a user id" in nobody.text
    # a sales rep has no assign scope on accounts
    mine = place(env, "account", {"name": "Rep Co"}, owner=rep)
    assert 'id="assign"' not in client_for(env, "rep").get(f"/e/account/{mine['id']}").text


def test_missing_records_and_entities_are_404(env: Env, pages: TestClient) -> None:
    dept = departments(env)
    far = place(env, "opportunity", {"name": "Theirs", "account": env.records.create(
        SYSTEM, "account", {"name": "A"})["id"]}, department=dept["SH"])
    user(env, "rep", "sales_rep", department=dept["BJ"])
    sign_in(pages)
    assert pages.get("/e/nothing/1").status_code == 404
    assert pages.get("/e/account/424242").status_code == 404
    client = client_for(env, "rep")
    hidden = client.get(f"/e/opportunity/{far['id']}")
    assert hidden.status_code == 404 and "Theirs" not in hidden.text
    assert client.get(f"/e/opportunity/{far['id']}/edit").status_code == 404


# -- notices after create and edit; "Add" in related lists -------------------------------


def test_a_notice_says_the_record_was_created_or_saved(env: Env, pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    sign_in(pages)
    token = csrf_of(pages.get("/e/opportunity/new").text)
    made = pages.post("/e/opportunity/new", data={
        "csrf_token": token, "name": "Turbines", "account": str(acme["id"])})
    assert made.status_code == 200 and "<h1><span class=\"kind\">Opportunity</span> Turbines" \
        in made.text
    assert '<p class="notice" role="status">Opportunity created.</p>' in made.text
    deal = re.search(r"/e/opportunity/(\d+)", str(made.url))
    assert deal
    edit = f"/e/opportunity/{deal.group(1)}/edit"
    saved = pages.post(edit, data={"csrf_token": token, "version": "1", "name": "Turbines 2"})
    assert '<p class="notice" role="status">Changes saved.</p>' in saved.text
    # From a related list's "Add", back on the parent's page: it names what was made.
    back = f"/e/account/{acme['id']}"
    added = pages.post("/e/contact/new", data={"csrf_token": token, "full_name": "Ann",
                                               "account": str(acme["id"]), "next": back})
    assert str(added.url).endswith(f"{back}?done=created&what=contact")
    assert '<p class="notice" role="status">Contact created.</p>' in added.text
    env.users.set_locale(env.admin.id, "zh-CN")
    zh = pages.get(f"{back}?done=created&what=contact").text
    assert '<p class="notice" role="status">联系人已创建。</p>' in zh
    # Only known notices: anything else typed into the address shows nothing.
    for odd in ("?done=%3Cb%3E", "?done=created&what=%3Cb%3E", "?done=saved&what=nothing"):
        page = pages.get(back + odd).text
        assert "&lt;b&gt;" not in page and "<b>" not in page
    # an unknown kind of record: the notice names this page's kind
    assert "客户已创建。" in pages.get(back + "?done=created&what=%3Cb%3E").text


def test_related_lists_offer_add_only_to_those_who_may_create_the_child(env: Env) -> None:
    dept = departments(env)
    agent = user(env, "agent", "service_agent", department=dept["BJ"])
    user(env, "boss", "executive")
    acme = place(env, "account", {"name": "Acme"}, department=dept["BJ"])
    place(env, "contact", {"full_name": "Ann", "account": acme["id"]}, owner=agent)
    agent_page = client_for(env, "agent").get(f"/e/account/{acme['id']}").text
    assert f'href="/e/contact/new?account={acme["id"]}' in agent_page
    assert f'href="/e/activity/new?account={acme["id"]}' in agent_page
    assert 'id="related-opportunity-account"' not in agent_page  # agents read no deals
    boss_page = client_for(env, "boss").get(f"/e/account/{acme['id']}").text
    assert 'id="related-contact-account"' in boss_page and "Ann" in boss_page
    assert "/new?" not in boss_page  # executives read everything and create nothing


def test_related_lists_follow_their_configured_sort(env: Env, pages: TestClient) -> None:
    # config/forms/contract.yaml: lines by position, plan lines by due date, not newest first
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme"})
    pump = env.records.create(actor, "product", {"name": "Pump", "code": "P-1",
                                                "list_price": "100"})
    deal = env.records.create(actor, "contract", {"name": "Pumps", "account": acme["id"]})
    for position, text in ((2, "second line"), (1, "first line"), (3, "third line")):
        env.records.create(actor, "contract_line", {"contract": deal["id"], "product": pump["id"],
                                                    "position": position, "description": text})
    for due, text in (("2027-03-01", "March"), ("2027-01-01", "January"),
                      ("2027-02-01", "February")):
        env.records.create(actor, "execution_plan_line", {
            "contract": deal["id"], "kind": "installment", "description": text, "due_date": due,
            "planned_amount": "100"})
    sign_in(pages)
    page = pages.get(f"/e/contract/{deal['id']}").text

    def shown(child: str, words: tuple[str, ...]) -> list[str]:
        block = re.search(f'id="related-{child}-contract">(.*?)</section>', page, re.S)
        assert block, child
        return sorted(words, key=block.group(1).index)

    assert shown("contract_line", ("second line", "first line", "third line")) == [
        "first line", "second line", "third line"]
    assert shown("execution_plan_line", ("March", "January", "February")) == [
        "January", "February", "March"]
    assert f'href="/e/contract_line?contract={deal["id"]}&amp;sort=position"' in page

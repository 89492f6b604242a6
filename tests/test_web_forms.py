"""Create/edit forms, the live preview and the pickers (engine/web/pages/forms.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from starlette.testclient import TestClient

from engine.runtime.records.query import ListQuery, parse_list_params
from engine.web.app import create_app
from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.db_templates import TEST_HASHER
from tests.web_helpers import csrf_of, sign_in

XSS = "<img src=x onerror=alert(1)>"


def client_for(env: Env, name: str, password: str = "a-password") -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def zoned_client(env: Env, zone: str, name: str = "admin",
                 password: str = "admin-password") -> TestClient:
    """`name` signed in to an app whose settings.yaml says `time_zone: <zone>`."""
    model = replace(env.model, settings=replace(env.model.settings, time_zone=zone))
    client = TestClient(create_app(model, env.engine, password_hasher=TEST_HASHER),
                        raise_server_exceptions=False)
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def version_of(page: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', page)
    assert found, "the form carries no version"
    return found.group(1)


def field_html(page: str, name: str) -> str:
    """The markup of one field's wrapper on a form page."""
    found = re.search(rf'<div id="field-{name}"[^>]*>.*?(?=<div id="field-|</div>\s*</fieldset>)',
                      page, re.S)
    assert found, f"no field {name} on the page"
    return found.group(0)


def test_new_form_has_a_widget_per_field_type(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    page = pages.get("/e/opportunity/new").text
    assert '<input type="text" id="f-name" name="name"' in page
    assert 'class="req"' in field_html(page, "name")  # required marker
    assert 'inputmode="decimal"' in field_html(page, "amount")
    assert 'type="date" id="f-close_date"' in page
    assert '<option value="prospecting" selected>Prospecting</option>' in page  # default
    assert '<option value="decision_maker">Decision maker</option>' in page
    assert 'id="picker-account"' in page and 'hx-get="/e/opportunity/pick/account"' in page
    assert '<output id="computed-weighted"' in page and 'id="computed-score"' in page
    # lost_reason is hidden by its form condition until the stage is lost
    assert re.search(r'<div id="field-lost_reason" class="field-slot" hidden>', page)
    assert 'name="lost_reason"' not in page
    lead = pages.get("/e/lead/new").text
    assert 'type="checkbox" id="f-interests-1" name="interests" value="equipment"' in lead
    assert 'type="datetime-local" step="1" id="f-received_at"' in lead
    contact = pages.get("/e/contact/new").text
    assert 'type="checkbox" id="f-is_primary" name="is_primary" value="true"' in contact
    assert "Builds the account&#39;s decision tree" in contact  # help text
    assert 'aria-describedby="help-reports_to"' in contact
    assert 'type="email" id="f-email"' in contact and 'type="tel" id="f-phone"' in contact


def test_every_form_input_has_a_label(env: Env, pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    sign_in(pages)
    for path in ("/e/opportunity/new", "/e/lead/new", "/e/contact/new",
                 f"/e/account/{acme['id']}/edit", f"/e/account/{acme['id']}"):
        html = pages.get(path).text
        ids = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"',
                         html)
        assert not re.findall(
            r'<(?:input|select|textarea)(?![^>]*type="hidden")(?![^>]*\bid=)', html), path
        for i in ids:
            assert f'for="{i}"' in html or i.startswith("f-interests-"), (path, i)


def test_labels_follow_the_users_language(env: Env, pages: TestClient) -> None:
    env.users.set_locale(env.admin.id, "zh-CN")
    sign_in(pages)
    page = pages.get("/e/opportunity/new").text
    assert "<legend>商机</legend>" in page and ">金额</label>" in page
    assert "新建" in page and "保存" in page


def test_create_accepts_grouped_money_and_goes_to_the_record(env: Env,
                                                             pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    sign_in(pages)
    token = csrf_of(pages.get("/e/opportunity/new").text)
    answer = pages.post("/e/opportunity/new", data={
        "csrf_token": token, "name": "Turbines", "account": str(acme["id"]),
        "amount": "1,234.50", "stage": "proposal", "q": "ignored", "close_date": ""},
        follow_redirects=False)
    assert answer.status_code == 303
    path, _, query = answer.headers["location"].partition("?")
    assert query == "done=created"  # the record's page says "Opportunity created."
    new_id = int(path.rsplit("/", 1)[1])
    saved = env.records.get(env.admin.actor(), "opportunity", new_id)
    assert saved["amount"] == Decimal("1234.50") and saved["stage"] == "proposal"
    assert saved["weighted"] == Decimal("617.25")


def test_query_parameters_prefill_and_next_returns_to_the_parent(env: Env,
                                                                  pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme Rockets"})
    sign_in(pages)
    back = f"/e/account/{acme['id']}"
    page = pages.get("/e/contact/new", params={"account": acme["id"], "next": back}).text
    assert f'<input type="hidden" name="account" value="{acme["id"]}">' in page
    assert 'value="Acme Rockets"' in page
    answer = pages.post("/e/contact/new", data={
        "csrf_token": csrf_of(page), "full_name": "Ann", "account": str(acme["id"]),
        "next": back, "is_primary": ["false", "true"]}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{back}?done=created&what=contact"
    contact = env.records.list_records(env.admin.actor(), "contact",
                                       _query(env, "contact", {})).items[0]
    assert contact["is_primary"] is True and contact["account"] == acme["id"]
    # `next` is only ever a path on this site
    evil = pages.post("/e/contact/new", data={
        "csrf_token": csrf_of(page), "full_name": "Bob", "account": str(acme["id"]),
        "next": "https://evil.example/"}, follow_redirects=False)
    assert evil.headers["location"].startswith("/e/contact/")


def test_field_errors_stand_beside_fields_and_keep_what_was_typed(
        env: Env, pages: TestClient) -> None:
    sign_in(pages)
    token = csrf_of(pages.get("/e/opportunity/new").text)
    answer = pages.post("/e/opportunity/new", data={
        "csrf_token": token, "name": "", "amount": "12abc", "next_step": XSS,
        "stage": "proposal"})
    assert answer.status_code == 422
    page = answer.text
    assert '<p class="error" id="err-name">is required</p>' in page
    amount = field_html(page, "amount")
    assert 'value="12abc"' in amount and "must be a number" in amount
    assert 'aria-invalid="true"' in amount and 'class="field invalid"' in amount
    assert 'value="&lt;img src=x onerror=alert(1)&gt;"' in field_html(page, "next_step")
    assert XSS not in page
    assert '<option value="proposal" selected>' in page
    assert env.records.list_records(env.admin.actor(), "opportunity",
                                    _query(env, "opportunity", {})).total == 0


def test_a_rule_of_the_record_is_shown_in_the_users_language(env: Env,
                                                             pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    sign_in(pages)
    token = csrf_of(pages.get("/e/opportunity/new").text)
    data = {"csrf_token": token, "name": "Lost one", "account": str(acme["id"]),
            "stage": "lost", "lost_reason": ""}
    answer = pages.post("/e/opportunity/new", data=data)
    assert answer.status_code == 422
    assert "A lost opportunity needs a lost reason" in answer.text
    assert 'name="lost_reason"' in answer.text  # the stage is lost: the field is shown
    env.users.set_locale(env.admin.id, "zh-CN")
    again = pages.post("/e/opportunity/new", data=data)
    assert "丢单必须填写丢单原因" in again.text


def test_a_stale_version_is_a_clear_conflict_that_overwrites_nothing(
        env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme"})
    sign_in(pages)
    path = f"/e/account/{acme['id']}/edit"
    page = pages.get(path).text
    assert '<input type="hidden" name="version" value="1">' in page
    env.records.update(actor, "account", acme["id"], {"city": "Hamburg"}, 1)
    answer = pages.post(path, data={"csrf_token": csrf_of(page), "version": "1",
                                    "name": "Acme Mine", "city": "Berlin"})
    assert answer.status_code == 409
    assert "Someone else changed this record after you opened it" in answer.text
    assert f'<a href="{path}">Reload the record' in answer.text
    assert 'value="Acme Mine"' in answer.text  # what was typed is still there to copy
    assert '<input type="hidden" name="version" value="1">' in answer.text  # not bumped
    current = env.records.get(actor, "account", acme["id"])
    assert current["name"] == "Acme" and current["city"] == "Hamburg"
    fresh = pages.get(path).text
    assert 'name="version" value="2"' in fresh and 'value="Hamburg"' in fresh


def test_edit_saves_and_keeps_the_fields_not_changed(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    lead = env.records.create(actor, "lead", {"company": "Initech",
                                              "interests": ["parts", "service"]})
    sign_in(pages)
    path = f"/e/lead/{lead['id']}/edit"
    page = pages.get(path).text
    assert re.search(r'value="service" checked', page) and re.search(r'value="parts" checked',
                                                                         page)
    # The breadcrumb names the record by its title, not its number.
    assert f'<a href="/e/lead/{lead["id"]}">Initech</a>' in page
    answer = pages.post(path, data={"csrf_token": csrf_of(page), "version": "1",
                                    "company": "Initech AG", "interests": ["", "training"]},
                        follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/e/lead/{lead['id']}?done=saved"
    saved = env.records.get(actor, "lead", lead["id"])
    assert saved["company"] == "Initech AG" and saved["interests"] == ["training"]
    cleared = pages.post(path, data={"csrf_token": csrf_of(page), "version": "2",
                                     "interests": [""]}, follow_redirects=False)
    assert cleared.status_code == 303
    assert env.records.get(actor, "lead", lead["id"])["interests"] is None


def test_a_datetime_input_holds_the_wall_time_of_the_organisations_zone(env: Env) -> None:
    """settings.yaml time_zone: Asia/Shanghai. A lead received at 09:00 there is typed as
    09:00 and stored as 01:00 UTC; its edit form holds 09:00 again, and a form sent back
    with an error keeps what was typed."""
    actor = env.admin.actor()
    shanghai = zoned_client(env, "Asia/Shanghai")
    page = shanghai.get("/e/lead/new").text
    answer = shanghai.post("/e/lead/new", data={
        "csrf_token": csrf_of(page), "company": "Zone Co",
        "received_at": "2026-03-31T09:00"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    lead_id = int(answer.headers["location"].split("?")[0].rsplit("/", 1)[1])
    stored = env.records.get(actor, "lead", lead_id)
    assert stored["received_at"] == datetime(2026, 3, 31, 1, 0, tzinfo=UTC)
    edit = shanghai.get(f"/e/lead/{lead_id}/edit").text
    assert 'name="received_at" value="2026-03-31T09:00:00"' in edit
    refused = shanghai.post(f"/e/lead/{lead_id}/edit", data={
        "csrf_token": csrf_of(edit), "version": "1", "company": "",
        "received_at": "2026-04-01T08:15:00"}, follow_redirects=False)
    assert refused.status_code == 422
    assert 'name="received_at" value="2026-04-01T08:15:00"' in refused.text
    assert env.records.get(actor, "lead", lead_id)["received_at"] == stored["received_at"]


def test_a_form_saved_unchanged_keeps_a_datetime_in_the_hour_clocks_go_back(
        env: Env) -> None:
    """Europe/Berlin: 02:30 on October 25, 2026 happens twice. A lead received at the
    second (01:30 UTC) keeps it when its form is saved with another field changed; 09:00
    typed in summer is 07:00 UTC, in winter 08:00 UTC."""
    actor = env.admin.actor()
    lead = env.records.create(actor, "lead", {"company": "Berlin GmbH",
                                              "received_at": "2026-10-25T01:30:00Z"})
    berlin = zoned_client(env, "Europe/Berlin")
    path = f"/e/lead/{lead['id']}/edit"
    edit = berlin.get(path).text
    assert 'name="received_at" value="2026-10-25T02:30:00"' in edit
    saved = berlin.post(path, data={"csrf_token": csrf_of(edit), "version": "1",
                                    "company": "Berlin AG",
                                    "received_at": "2026-10-25T02:30:00"},
                        follow_redirects=False)
    assert saved.status_code == 303, saved.text
    after = env.records.get(actor, "lead", lead["id"])
    assert (after["company"], after["received_at"]) == \
        ("Berlin AG", datetime(2026, 10, 25, 1, 30, tzinfo=UTC))
    for typed, utc_hour, version in (("2026-07-15T09:00:00", 7, "2"),
                                     ("2026-01-15T09:00:00", 8, "3")):
        answer = berlin.post(path, data={"csrf_token": csrf_of(edit), "version": version,
                                         "company": "Berlin AG", "received_at": typed},
                             follow_redirects=False)
        assert answer.status_code == 303, answer.text
        got = env.records.get(actor, "lead", lead["id"])["received_at"]
        assert (got.hour, got.tzinfo, got.date().isoformat()) == \
            (utc_hour, UTC, typed[:10])


def test_missing_and_forbidden_pages(env: Env, pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    user(env, "exec", "executive")
    sign_in(pages)
    assert pages.get("/e/nothing/new").status_code == 404
    assert pages.get("/e/account/999999/edit").status_code == 404
    assert pages.get("/e/account/pick/nothing?q=a").status_code == 404
    assert pages.get("/e/account/pick/name?q=a").status_code == 404  # not a link field
    viewer = client_for(env, "exec")
    answer = viewer.get(f"/e/account/{acme['id']}/edit")
    assert answer.status_code == 403 and "Not allowed" in answer.text
    assert viewer.get("/e/account/new").status_code == 403
    token = csrf_of(viewer.get("/").text)
    refused = viewer.post(f"/e/account/{acme['id']}/edit",
                          data={"csrf_token": token, "version": "1", "name": "Mine"})
    assert refused.status_code == 403
    assert env.records.get(env.admin.actor(), "account", acme["id"])["name"] == "Acme"


def test_a_post_without_the_csrf_token_changes_nothing(env: Env, pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    sign_in(pages)
    answer = pages.post("/e/account/new", data={"name": "Sneaky"})
    assert answer.status_code == 403
    wrong = pages.post(f"/e/account/{acme['id']}/edit",
                       data={"csrf_token": "nope", "version": "1", "name": "Sneaky"})
    assert wrong.status_code == 403
    assert pages.post("/e/opportunity/preview", data={"amount": "1"}).status_code == 403
    names = [r["name"] for r in env.records.list_records(
        env.admin.actor(), "account", _query(env, "account", {})).items]
    assert names == ["Acme"]


def test_preview_computes_with_the_same_formulas_as_the_service(env: Env,
                                                                pages: TestClient) -> None:
    sign_in(pages)
    token = csrf_of(pages.get("/e/opportunity/new").text)
    answer = pages.post("/e/opportunity/preview", data={
        "csrf_token": token, "amount": "1,000", "stage": "proposal", "budget": "confirmed",
        "need": "urgent", "_state": ["lost_reason:hidden", "description:shown"]})
    assert answer.status_code == 200
    html = answer.text
    assert re.search(r'<output id="computed-weighted"[^>]*hx-swap-oob="true">¥500\.00</output>',
                     html)
    assert re.search(r'id="computed-probability"[^>]*>50%<', html)
    assert re.search(r'id="computed-score"[^>]*>55<', html)
    assert "field-lost_reason" not in html  # its state did not change
    lost = pages.post("/e/opportunity/preview", data={
        "csrf_token": token, "amount": "oops", "stage": "lost",
        "_state": ["lost_reason:hidden", "description:shown"]}).text
    assert re.search(r'id="computed-weighted"[^>]*></output>', lost)  # bad input is blank
    assert '<div id="field-lost_reason" class="field" hx-swap-oob="true">' in lost
    assert '<select id="f-lost_reason" name="lost_reason"' in lost


def test_money_inputs_hold_plain_numbers_and_computed_money_its_currency(
        env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme"})
    deal = env.records.create(actor, "opportunity", {
        "name": "Deal", "account": acme["id"], "amount": "1234.5", "stage": "proposal"})
    sign_in(pages)
    page = pages.get(f"/e/opportunity/{deal['id']}/edit").text
    amount = field_html(page, "amount")
    assert 'name="amount" value="1,234.50"' in amount and "¥" not in amount
    assert re.search(r'<output id="computed-weighted"[^>]*>¥617\.25</output>', page)  # 50%


def test_preview_of_an_edit_reads_the_stored_record(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    acme = env.records.create(actor, "account", {"name": "Acme"})
    deal = env.records.create(actor, "opportunity", {
        "name": "Deal", "account": acme["id"], "amount": "2000", "stage": "won"})
    sign_in(pages)
    page = pages.get(f"/e/opportunity/{deal['id']}/edit").text
    # description is readonly while the stage is won (a form condition)
    assert '<input type="text" id="f-description"' not in page
    assert re.search(r'<textarea id="f-description" rows="3" disabled>', page)
    html = pages.post("/e/opportunity/preview", data={
        "csrf_token": csrf_of(page), "record_id": str(deal["id"]),
        "_state": ["description:readonly", "lost_reason:hidden"]}).text
    assert re.search(r'id="computed-weighted"[^>]*>¥2,000\.00<', html)


def test_readonly_fields_cannot_be_changed_even_if_posted(env: Env,
                                                          pages: TestClient) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    mine = place(env, "account", {"name": "Mine", "credit_limit": "100"}, owner=rep)
    client = client_for(env, "rep")
    path = f"/e/account/{mine['id']}/edit"
    page = client.get(path).text
    assert re.search(r'<input type="text" id="f-credit_limit" value="¥100.00" disabled>', page)
    assert 'name="credit_limit"' not in page
    answer = client.post(path, data={"csrf_token": csrf_of(page), "version": version_of(page),
                                     "name": "Mine 2", "credit_limit": "999999",
                                     "tier": "strategic"}, follow_redirects=False)
    assert answer.status_code == 303
    saved = env.records.get(env.admin.actor(), "account", mine["id"])
    assert saved["name"] == "Mine 2" and saved["credit_limit"] == Decimal("100.00")
    assert saved["tier"] == "standard"
    # a form condition's readonly holds too: no description change on a won deal
    actor = env.admin.actor()
    deal = env.records.create(actor, "opportunity", {
        "name": "Won", "account": mine["id"], "stage": "won", "description": "final"})
    sign_in(pages)
    edit = f"/e/opportunity/{deal['id']}/edit"
    token = csrf_of(pages.get(edit).text)
    pages.post(edit, data={"csrf_token": token, "version": "1", "description": "changed",
                           "next_step": "party"})
    after = env.records.get(actor, "opportunity", deal["id"])
    assert after["description"] == "final" and after["next_step"] == "party"


def test_fields_hidden_from_the_viewer_never_reach_the_page(env: Env) -> None:
    dept = departments(env)
    partner = user(env, "dealer", "partner", department=dept["PARTNERS"])
    mine = place(env, "account", {"name": "Dealer Co", "credit_limit": "5000",
                                  "annual_revenue": "7", "tier": "key"}, owner=partner)
    deal = place(env, "opportunity", {"name": "D1", "account": mine["id"],
                                      "budget": "confirmed"}, owner=partner)
    client = client_for(env, "dealer")
    for path in ("/e/account/new", f"/e/account/{mine['id']}/edit",
                 f"/e/account/{mine['id']}"):
        html = client.get(path).text
        assert "credit_limit" not in html and "annual_revenue" not in html, path
        assert "Credit limit" not in html and "f-tier" not in html, path
    token = csrf_of(client.get("/").text)
    preview = client.post("/e/opportunity/preview", data={
        "csrf_token": token, "record_id": str(deal["id"]), "amount": "10"}).text
    assert "computed-weighted" in preview and "score" not in preview
    assert "score" not in client.get(f"/e/opportunity/{deal['id']}").text.replace(
        "Score", "")


def test_the_picker_offers_only_records_the_viewer_can_read(env: Env) -> None:
    dept = departments(env)
    user(env, "rep", "sales_rep", department=dept["BJ"])
    place(env, "account", {"name": "Beijing Steel"}, department=dept["BJ"])
    far = place(env, "account", {"name": "Shanghai Steel"}, department=dept["SH"])
    client = client_for(env, "rep")
    hits = client.get("/e/opportunity/pick/account", params={"q": "steel"}).text
    assert "Beijing Steel" in hits and "Shanghai Steel" not in hits
    assert 'hx-get="/e/opportunity/pick/account/choose?id=' in hits
    assert "Nothing matches" in client.get("/e/opportunity/pick/account",
                                           params={"q": "zzz"}).text
    chosen = client.get("/e/opportunity/pick/account/choose", params={"id": far["id"]})
    assert chosen.status_code == 200 and "Shanghai" not in chosen.text
    assert '<input type="hidden" name="account" value="">' in chosen.text
    assert chosen.headers["HX-Trigger-After-Swap"] == "crm-picked"
    # a typed id of a record the viewer cannot read shows no title on the form either
    page = client.get("/e/contact/new", params={"account": far["id"]}).text
    assert "Shanghai" not in page
    users = client.get("/e/account/pick/_member", params={"q": "re"}).text
    assert '"pick-title">rep<' in users and "admin" not in users
    # the assign form's owner: only whom the viewer may assign to (a rep: nobody)
    assert "pick-title" not in client.get("/e/account/pick/_owner").text
    env.users.set_active("rep", False)
    admin = client_for(env, "admin", "admin-password")
    assert '"pick-title">admin<' in admin.get("/e/account/pick/_owner").text
    assert '"pick-title">rep<' not in admin.get("/e/account/pick/_owner").text


def test_picking_a_record_fills_the_widget(env: Env, pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": XSS})
    sign_in(pages)
    chosen = pages.get("/e/contact/pick/account/choose", params={"id": acme["id"]}).text
    assert f'<input type="hidden" name="account" value="{acme["id"]}">' in chosen
    assert 'value="&lt;img src=x onerror=alert(1)&gt;"' in chosen and XSS not in chosen
    assert "autofocus" in chosen


def _query(env: Env, entity: str, params: dict[str, str]) -> ListQuery:
    return parse_list_params(env.model.entity(entity), params)

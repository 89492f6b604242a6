"""List pages, saved views, delete with confirmation and the recycle bin
(engine/web/pages/lists.py, trash.py, table.py; engine/runtime/views.py)."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Invalid, NotFound
from engine.runtime.records import totals
from engine.runtime.views import SavedViews, parse_state
from tests.access_helpers import departments, place, user
from tests.conftest import Env, EnvFactory, write_settings
from tests.web_helpers import csrf_of, sign_in

XSS = "<img src=x onerror=alert(1)>"


def browser(env: Env, name: str = "admin", password: str = "admin-password") -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def body_rows(page: str) -> list[str]:
    """The record titles of a list page, in order (the text of each row's link)."""
    tbody = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    out = []
    for row in tbody.split("<tr>")[1:]:
        found = re.search(r'<a href="/e/\w+/\d+">([^<]*)</a>', row)
        if found:
            out.append(html.unescape(found.group(1)))
    return out


def opp(env: Env, name: str, account: int, **values: Any) -> dict[str, Any]:
    return env.records.create(env.admin.actor(), "opportunity",
                              {"name": name, "account": account, **values})


@pytest.fixture
def acme(env: Env) -> int:
    return int(env.records.create(env.admin.actor(), "account", {"name": "Acme"})["id"])


# -- columns and values -----------------------------------------------------------------


def test_money_shows_the_currency_in_each_language_and_the_api_keeps_decimals(
        env: Env, acme: int) -> None:
    deal = opp(env, "Big deal", acme, amount="1234567.5", stage="negotiation")
    text = browser(env).get("/e/opportunity").text
    assert '<td class="num" data-label="Amount">¥1,234,567.50</td>' in text
    assert '<td class="num" data-label="Weighted amount">¥987,654.00</td>' in text  # 80%
    env.users.set_locale(env.admin.id, "zh-CN")
    zh = browser(env).get("/e/opportunity").text
    assert '<td class="num" data-label="金额">¥1,234,567.50</td>' in zh
    api = env.client(env.users.new_token("admin"))
    assert api.get(f"/api/opportunity/{deal['id']}").json()["amount"] == "1234567.50"


def test_the_currency_comes_from_config_settings(make_env: EnvFactory,
                                                 config_dir: Path) -> None:
    write_settings(config_dir, "currency: USD\n")
    env = make_env(config_dir)
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    deal = opp(env, "Big deal", acme["id"], amount="2500", stage="proposal")
    text = browser(env).get("/e/opportunity").text
    assert '<td class="num" data-label="Amount">$2,500.00</td>' in text
    assert "¥" not in text
    assert "$2,500.00" in browser(env).get(f"/e/opportunity/{deal['id']}").text


def test_list_shows_the_form_columns_with_formatted_values_and_links(env: Env,
                                                                      acme: int) -> None:
    deal = opp(env, "Big deal", acme, amount="1234567.5", stage="negotiation",
               close_date="2025-01-05")
    admin = browser(env)
    page = admin.get("/e/opportunity")
    assert page.status_code == 200
    text = page.text
    heads = re.findall(r'<th scope="col"[^>]*>\s*(?:<a[^>]*>)?([^<]+)', text)
    assert heads[:7] == ["Name", "Account", "Stage", "Amount", "Weighted amount",
                         "Expected close date", "Owner"]
    assert f'<a href="/e/opportunity/{deal["id"]}">Big deal</a>' in text
    assert f'<a href="/e/account/{acme}">Acme</a>' in text  # the target's title, linked
    assert "1,234,567.50" in text and "987,654.00" in text  # money; weighted = 80%
    assert "Negotiation" in text and "Jan 5, 2025" in text
    assert '<td data-label="Owner">admin</td>' in text  # the owner's display name
    assert 'href="/e/opportunity/new"' in text


def test_booleans_percent_and_zh_labels(env: Env) -> None:
    env.records.create(env.admin.actor(), "product", {"name": "Widget", "code": "W1",
                                                      "active": True})
    env.records.create(env.admin.actor(), "product", {"name": "Gadget", "code": "G1",
                                                      "active": False})
    admin = browser(env)
    text = admin.get("/e/product").text
    assert '<span aria-hidden="true">✓</span><span class="visually-hidden">Yes</span>' in text
    assert '<span aria-hidden="true">—</span><span class="visually-hidden">No</span>' in text
    env.users.set_locale(env.admin.id, "zh-CN")
    zh = admin.get("/e/product").text
    assert "<h1>产品</h1>" in zh and ">名称<" in zh and "记录数\uff1a2" in zh  # full-width :


def test_an_unknown_entity_is_a_404_page_and_no_read_scope_a_403_page(env: Env) -> None:
    user(env, "partner1", "partner")
    admin = browser(env)
    missing = admin.get("/e/nothing")
    assert missing.status_code == 404 and "<h1>" in missing.text
    partner = browser(env, "partner1", "a-password")
    refused = partner.get("/e/department")  # partners have no scope on departments
    assert refused.status_code == 403 and "Not allowed" in refused.text
    assert partner.get("/e/department/trash").status_code == 403


def test_signed_out_list_goes_to_login(env: Env, pages: TestClient) -> None:
    r = pages.get("/e/account?sort=name", follow_redirects=False)
    assert r.status_code in (302, 303, 307)
    assert r.headers["location"].startswith("/login?next=")


def test_hidden_fields_never_reach_the_page(env: Env, acme: int) -> None:
    opp(env, "Secret deal", acme, amount="424242.42", stage="proposal")
    user(env, "mkt", "marketing")
    marketing = browser(env, "mkt", "a-password")
    text = marketing.get("/e/opportunity").text
    assert "Secret deal" in text
    for leak in ("424,242.42", "424242", "212,121.21", ">Amount<", "Weighted amount",
                 "amount__gte"):
        assert leak not in text, leak
    assert 'href="/e/opportunity/new"' not in text  # marketing may only read opportunities
    for probe in ("/e/opportunity?amount__gte=1", "/e/opportunity?sort=-amount",
                  "/e/opportunity?filter=amount+%3E+1"):
        r = marketing.get(probe)
        assert r.status_code in (400, 404) and "424" not in r.text and "Secret" not in r.text


# -- sorting, filters, paging -----------------------------------------------------------


def test_header_links_sort_both_ways_with_aria_sort(env: Env, acme: int) -> None:
    for name, amount in (("Beta", "20"), ("Alpha", "30"), ("Gamma", "10")):
        opp(env, name, acme, amount=amount)
    admin = browser(env)
    page = admin.get("/e/opportunity?sort=name").text
    assert body_rows(page) == ["Alpha", "Beta", "Gamma"]
    assert re.search(r'<th scope="col" aria-sort="ascending"><a class="sort" '
                     r'href="/e/opportunity\?sort=-name"', page)
    down = admin.get("/e/opportunity?sort=-name").text
    assert body_rows(down) == ["Gamma", "Beta", "Alpha"]
    assert 'aria-sort="descending"' in down and 'href="/e/opportunity?sort=name"' in down
    by_amount = admin.get("/e/opportunity?sort=-amount").text
    assert body_rows(by_amount) == ["Alpha", "Beta", "Gamma"]
    assert '<th scope="col" class="num"><a class="sort" href="/e/opportunity?sort=amount"' \
        not in by_amount  # the sorted column links to the other direction
    assert 'href="/e/opportunity?sort=amount"' in by_amount


def test_filters_by_field_type(env: Env, acme: int) -> None:
    opp(env, "Alpha one", acme, amount="100", stage="won", close_date="2025-01-10")
    opp(env, "Alpha two", acme, amount="500", stage="lost", lost_reason="price",
        close_date="2025-03-01")
    opp(env, "Beta", acme, amount="900", stage="won", close_date="2025-02-01")
    admin = browser(env)

    def titles(query: str) -> list[str]:
        r = admin.get(f"/e/opportunity?{query}&sort=name")
        assert r.status_code == 200, r.text
        return body_rows(r.text)

    assert titles("name__contains=alpha") == ["Alpha one", "Alpha two"]
    assert titles("stage=won") == ["Alpha one", "Beta"]
    assert titles("amount__gte=200&amount__lte=900") == ["Alpha two", "Beta"]
    assert titles("close_date__gte=2025-01-31&close_date__lte=2025-03-01") == \
        ["Alpha two", "Beta"]
    assert titles("filter=amount+%3E+150+AND+stage+%3D+%22won%22") == ["Beta"]
    form = admin.get("/e/opportunity?stage=won").text
    assert '<option value="won" selected>Won</option>' in form
    assert 'id="f-name__contains"' in form and 'for="f-amount__gte"' in form


def test_datetime_ranges_take_whole_days_and_multichoice_and_booleans(env: Env) -> None:
    actor = env.admin.actor()
    env.records.create(actor, "lead", {"company": "Early", "interests": ["service", "parts"],
                                       "received_at": "2025-05-01T08:00:00Z"})
    env.records.create(actor, "lead", {"company": "Late", "interests": ["parts"],
                                       "received_at": "2025-05-02T23:30:00Z"})
    env.records.create(actor, "product", {"name": "On", "code": "ON", "active": True})
    env.records.create(actor, "product", {"name": "Off", "code": "OFF", "active": False})
    admin = browser(env)
    leads = admin.get("/e/lead?received_at__gte=2025-05-02&received_at__lte=2025-05-02").text
    assert "Late" in leads and "Early" not in leads  # the `to` day counts to its end
    service = admin.get("/e/lead?interests__has=service").text
    assert "Early" in service and "Late" not in service
    assert admin.get("/e/lead?interests__has=nope").status_code == 400
    products = admin.get("/e/product?active=false").text
    assert body_rows(products) == ["Off"]


def test_my_records_toggle(env: Env, acme: int) -> None:
    rep = user(env, "rep", "sales_manager")
    opp(env, "Admin's", acme)
    place(env, "opportunity", {"name": "Rep's", "account": acme}, owner=rep)
    admin = browser(env)
    assert body_rows(admin.get("/e/opportunity?sort=name").text) == ["Admin's", "Rep's"]
    mine = admin.get("/e/opportunity?mine=1").text
    assert body_rows(mine) == ["Admin's"]
    assert 'name="mine" value="1" checked' in mine


def test_paging_and_page_sizes(env: Env, acme: int) -> None:
    for i in range(12):
        opp(env, f"Deal {i:02}", acme)
    admin = browser(env)
    page = admin.get("/e/opportunity?sort=name&page_size=5&page=2").text
    assert body_rows(page) == [f"Deal {i:02}" for i in range(5, 10)]
    assert "Records: 12" in page
    assert 'aria-current="page">2<' in page
    assert 'href="/e/opportunity?sort=name&amp;page_size=5&amp;page=3"' in page
    assert 'href="/e/opportunity?sort=name&amp;page_size=5"' in page  # page 1: no number
    assert 'rel="prev"' in page and 'rel="next"' in page
    last = admin.get("/e/opportunity?sort=name&page_size=5&page=3").text
    assert body_rows(last) == ["Deal 10", "Deal 11"] and 'rel="next"' not in last
    assert 'href="/e/opportunity?sort=name&amp;page_size=25"' in last  # a size resets paging


def test_an_estimated_total_says_about(env: Env, acme: int,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        opp(env, f"Deal {i}", acme)
    monkeypatch.setattr(totals, "EXACT_TOTAL_LIMIT", 2)
    text = browser(env).get("/e/opportunity").text
    assert "Records: about" in text


def test_a_bad_formula_or_parameter_is_shown_not_a_500(env: Env, acme: int) -> None:
    opp(env, "Alpha", acme)
    admin = browser(env)
    r = admin.get("/e/opportunity", params={"filter": "amount >"})
    assert r.status_code == 400
    assert re.search(r"Filter formula</strong>: <code>1:\d+: ", r.text), r.text
    assert 'value="amount &gt;"' in r.text  # what was typed stays in the box
    bad = admin.get("/e/opportunity", params={"amount__gte": "lots", "sort": "nope"})
    assert bad.status_code == 400
    assert "<strong>amount__gte</strong>" in bad.text and "<strong>sort</strong>" in bad.text
    assert admin.get("/e/opportunity?page=0").status_code == 400


def test_htmx_gets_the_results_fragment_and_a_clean_url(env: Env, acme: int) -> None:
    opp(env, "Alpha", acme)
    admin = browser(env)
    hx = {"HX-Request": "true", "HX-Target": "list-results"}
    r = admin.get("/e/opportunity?name__contains=alp&stage=&sort=name", headers=hx)
    assert r.status_code == 200
    assert r.text.lstrip().startswith("<div id=\"list-results\"") and "<html" not in r.text
    assert r.headers["HX-Push-Url"] == "/e/opportunity?name__contains=alp&sort=name"
    assert "Alpha" in r.text
    bad = admin.get("/e/opportunity?filter=1+%2B", headers=hx)
    assert bad.status_code == 200 and 'role="alert"' in bad.text  # htmx swaps 2xx only
    # Without htmx, a form with empty boxes is sent on to the clean address.
    plain = admin.get("/e/opportunity?name__contains=&stage=won", follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == "/e/opportunity?stage=won"


def test_every_input_of_the_list_has_a_label(env: Env, acme: int) -> None:
    admin = browser(env)
    for path in ("/e/opportunity", "/e/lead", "/e/product"):
        text = admin.get(path).text
        ids = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"',
                         text)
        unlabelled = re.findall(
            r'<(?:input|select|textarea)(?![^>]*type="hidden")(?![^>]*\bid=)', text)
        assert not unlabelled, path
        for i in ids:
            assert f'for="{i}"' in text, (path, i)


# -- saved views ------------------------------------------------------------------------


def test_saved_views_belong_to_their_user(env: Env, acme: int) -> None:
    opp(env, "Alpha", acme, stage="won")
    user(env, "other", "sales_manager")
    admin = browser(env)
    page = admin.get("/e/opportunity?stage=won&sort=-amount&page=2").text
    assert 'name="query" value="stage=won&amp;sort=-amount" form="save-view"' in page
    saved = admin.post("/e/opportunity/views", data={
        "name": "Won deals", "query": "stage=won&sort=-amount", "csrf_token": csrf_of(page)},
        follow_redirects=False)
    assert saved.status_code == 303
    assert saved.headers["location"] == "/e/opportunity?stage=won&sort=-amount&notice=view-saved"
    listed = admin.get(saved.headers["location"]).text
    assert "The view was saved." in listed
    assert '<a href="/e/opportunity?stage=won&amp;sort=-amount" aria-current="true">Won deals</a>' \
        in listed

    other = browser(env, "other", "a-password")
    theirs = other.get("/e/opportunity").text
    assert "Won deals" not in theirs
    view_id = SavedViews(env.engine, env.records.schema).list(env.admin.id, "opportunity")[0].id
    stolen = other.post(f"/e/opportunity/views/{view_id}/delete",
                        data={"csrf_token": csrf_of(theirs)})
    assert stolen.status_code == 404
    assert "Won deals" in admin.get("/e/opportunity").text

    gone = admin.post(f"/e/opportunity/views/{view_id}/delete",
                      data={"csrf_token": csrf_of(listed)}, follow_redirects=False)
    assert gone.status_code == 303
    assert "Won deals" not in admin.get("/e/opportunity").text


def test_a_view_must_have_a_name_and_a_query_that_parses(env: Env) -> None:
    admin = browser(env)
    token = csrf_of(admin.get("/e/opportunity").text)
    for data in ({"name": "", "query": "stage=won"}, {"name": "x" * 81, "query": ""},
                 {"name": "Bad", "query": "nope=1"}, {"name": "Bad", "query": "amount__gte=x"},
                 {"name": "Bad", "query": "filter=amount+%3E"}):
        r = admin.post("/e/opportunity/views", data={**data, "csrf_token": token})
        assert r.status_code in (400, 422), data
    assert SavedViews(env.engine, env.records.schema).list(env.admin.id, "opportunity") == []


def test_saving_a_view_under_the_same_name_replaces_it(env: Env) -> None:
    views = SavedViews(env.engine, env.records.schema)
    entity = env.model.entity("opportunity")
    first = views.save(env.admin.id, entity, " Mine ", "mine=1&page=3")
    again = views.save(env.admin.id, entity, "Mine", "stage=won&name__contains=")
    assert first.id == again.id and again.name == "Mine" and again.query == "stage=won"
    assert [v.query for v in views.list(env.admin.id, "opportunity")] == ["stage=won"]
    with pytest.raises(Invalid):
        views.save(env.admin.id, entity, "Tab\there\x01", "")
    with pytest.raises(NotFound):
        views.delete(env.admin.id, "account", first.id)  # the wrong entity


def test_parse_state_reads_the_page_parameters() -> None:
    from engine.metadata import load_model

    model = load_model("config")
    state = parse_state(model.entity("lead"), {
        "interests__has": "service", "mine": "1", "filter": " TRUE ",
        "received_at__lte": "2025-01-31", "company__contains": "", "notice": "deleted"})
    assert state.has == (("interests", "service"),) and state.mine and state.formula == "TRUE"
    (cond,) = state.query.conditions
    assert (cond.field, cond.op, cond.value.date()) == ("received_at", "lt", date(2025, 2, 1))


@pytest.mark.parametrize(("zone", "params", "expected"), [
    # a date bound of a datetime is that day in the organisation's time zone
    ("Asia/Shanghai", {"received_at__gte": "2025-05-02"},
     [("received_at", "gte", datetime(2025, 5, 1, 16, 0, tzinfo=UTC))]),
    ("Asia/Shanghai", {"received_at__lte": "2025-05-02"},  # to the end of that day there
     [("received_at", "lt", datetime(2025, 5, 2, 16, 0, tzinfo=UTC))]),
    ("Europe/Berlin", {"created_at__gt": "2025-07-01", "updated_at__lt": "2025-01-15"},
     [("created_at", "gt", datetime(2025, 6, 30, 22, 0, tzinfo=UTC)),
      ("updated_at", "lt", datetime(2025, 1, 14, 23, 0, tzinfo=UTC))]),
    ("UTC", {"received_at__lte": "2025-05-02"},
     [("received_at", "lt", datetime(2025, 5, 3, 0, 0, tzinfo=UTC))]),
    # an instant stays that instant; a date field has no zone
    ("Asia/Shanghai", {"received_at__gte": "2025-05-02T08:00:00Z"},
     [("received_at", "gte", datetime(2025, 5, 2, 8, 0, tzinfo=UTC))]),
])
def test_date_bounds_of_a_datetime_are_the_organisations_days(
        zone: str, params: dict[str, str], expected: list[tuple[str, str, datetime]]) -> None:
    from zoneinfo import ZoneInfo

    from engine.metadata import load_model

    lead = load_model("config").entity("lead")
    state = parse_state(lead, params, zone=ZoneInfo(zone))
    assert [(c.field, c.op, c.value) for c in state.query.conditions] == expected


def test_a_lists_date_range_of_a_datetime_is_in_the_organisations_days(env: Env) -> None:
    """Shanghai: a lead received at 23:30 UTC on May 1 was received on May 2 there."""
    from tests.test_web_forms import zoned_client

    actor = env.admin.actor()
    env.records.create(actor, "lead", {"company": "Early", "received_at": "2025-05-01T15:59:00Z"})
    env.records.create(actor, "lead", {"company": "Late", "received_at": "2025-05-01T23:30:00Z"})
    shanghai = zoned_client(env, "Asia/Shanghai")
    assert body_rows(shanghai.get(
        "/e/lead?received_at__gte=2025-05-02&received_at__lte=2025-05-02").text) == ["Late"]
    assert body_rows(shanghai.get("/e/lead?received_at__lte=2025-05-01").text) == ["Early"]


# -- CSRF -------------------------------------------------------------------------------


def test_posts_without_the_csrf_token_change_nothing(env: Env, acme: int) -> None:
    deal = opp(env, "Alpha", acme)
    admin = browser(env)
    for path, data in ((f"/e/opportunity/{deal['id']}/delete", {"version": "1"}),
                       ("/e/opportunity/views", {"name": "V", "query": ""}),
                       (f"/e/opportunity/{deal['id']}/restore", {})):
        r = admin.post(path, data=data)
        assert r.status_code == 403, path
        assert "expired" in r.text
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["name"] == "Alpha"
    assert SavedViews(env.engine, env.records.schema).list(env.admin.id, "opportunity") == []


# -- delete, recycle bin, restore -------------------------------------------------------


def test_delete_confirm_then_restore_round_trip(env: Env, acme: int) -> None:
    deal = opp(env, "Doomed", acme, amount="10")
    admin = browser(env)
    ask = admin.get(f"/e/opportunity/{deal['id']}/delete")
    assert ask.status_code == 200
    assert "Doomed" in ask.text and 'name="version" value="1"' in ask.text
    assert f'href="/e/opportunity/{deal["id"]}">Cancel</a>' in ask.text
    done = admin.post(f"/e/opportunity/{deal['id']}/delete",
                      data={"version": "1", "csrf_token": csrf_of(ask.text)},
                      follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == \
        "/e/opportunity?notice=deleted"
    listed = admin.get(done.headers["location"]).text
    assert "moved to the recycle bin" in listed and "Doomed" not in body_rows(listed)

    trash = admin.get("/e/opportunity/trash")
    assert trash.status_code == 200 and "Doomed" in trash.text and "Records: 1" in trash.text
    back = admin.post(f"/e/opportunity/{deal['id']}/restore",
                      data={"csrf_token": csrf_of(trash.text)}, follow_redirects=False)
    assert back.status_code == 303
    assert "restored" in admin.get(back.headers["location"]).text
    assert "Doomed" in body_rows(admin.get("/e/opportunity").text)
    assert "Doomed" not in admin.get("/e/opportunity/trash").text
    # Restoring what is not in the recycle bin is a 404 page.
    again = admin.post(f"/e/opportunity/{deal['id']}/restore",
                       data={"csrf_token": csrf_of(trash.text)})
    assert again.status_code == 404


def test_a_stale_version_asks_again_and_wrong_ids_are_clear_pages(env: Env,
                                                                   acme: int) -> None:
    deal = opp(env, "Moving", acme)
    admin = browser(env)
    ask = admin.get(f"/e/opportunity/{deal['id']}/delete").text
    env.records.update(env.admin.actor(), "opportunity", deal["id"], {"amount": "5"}, 1)
    stale = admin.post(f"/e/opportunity/{deal['id']}/delete",
                       data={"version": "1", "csrf_token": csrf_of(ask)})
    assert stale.status_code == 409
    assert "changed this record" in stale.text and 'name="version" value="2"' in stale.text
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["name"] == "Moving"
    assert admin.get("/e/opportunity/999999/delete").status_code == 404
    assert admin.get("/e/nothing/1/delete").status_code == 404
    assert admin.get("/e/nothing/trash").status_code == 404
    bad = admin.post(f"/e/opportunity/{deal['id']}/delete",
                     data={"version": "x", "csrf_token": csrf_of(ask)})
    assert bad.status_code == 400


def test_delete_needs_the_delete_permission(env: Env, acme: int) -> None:
    rep = user(env, "rep", "sales_rep")
    account = env.records.create(rep, "account", {"name": "Reps Co"})
    seller = browser(env, "rep", "a-password")
    listed = seller.get("/e/account").text
    assert "Reps Co" in listed
    assert "/delete" not in listed and "/e/account/trash" not in listed  # no delete right
    assert seller.get(f"/e/account/{account['id']}/delete").status_code == 403
    refused = seller.post(f"/e/account/{account['id']}/delete",
                          data={"version": "1", "csrf_token": csrf_of(listed)})
    assert refused.status_code == 403 and "Not allowed" in refused.text
    assert env.records.get(SYSTEM, "account", account["id"])["name"] == "Reps Co"


def test_user_supplied_text_is_escaped_everywhere(env: Env) -> None:
    account = env.records.create(env.admin.actor(), "account", {"name": XSS, "city": XSS})
    admin = browser(env)
    escaped = html.escape(XSS, quote=False)
    pages = [admin.get("/e/account").text,
             admin.get(f"/e/account/{account['id']}/delete").text,
             admin.get("/e/account", params={"name__contains": XSS}).text,
             admin.get("/e/account", params={"filter": XSS}).text]
    token = csrf_of(pages[0])
    admin.post("/e/account/views", data={"name": XSS, "query": "", "csrf_token": token})
    pages.append(admin.get("/e/account").text)
    env.records.delete(env.admin.actor(), "account", account["id"])
    pages.append(admin.get("/e/account/trash").text)
    for text in pages:
        assert XSS not in text
    assert escaped in pages[0] and escaped in pages[1] and escaped in pages[4]
    assert escaped in pages[5]


def test_reference_titles_are_read_in_one_batch_and_respect_access(env: Env) -> None:
    manager = user(env, "boss", "sales_manager")
    accounts = [env.records.create(env.admin.actor(), "account", {"name": f"Co {i}"})
                for i in range(3)]
    for a in accounts:
        opp(env, f"Deal of {a['name']}", a["id"])
    from engine.web.pages import table

    opportunity = env.model.entity("opportunity")
    items = env.records.list_records(env.admin.actor(), "opportunity",
                                     parse_state(opportunity, {}).query).items
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(env.engine, "before_cursor_execute", seen)
    try:
        rows = table.build_rows(env.records, env.admin.actor(), opportunity,
                                table.visible_columns(env.records, env.admin.actor(),
                                                      opportunity), items, "en")
    finally:
        event.remove(env.engine, "before_cursor_execute", seen)
    assert len([s for s in statements if "FROM account" in s]) == 1  # one for all rows
    assert {r.cells[1].value for r in rows} == {"Co 0", "Co 1", "Co 2"}
    # A manager of no department reads no account: the link shows the number only.
    assert manager.department_id is None
    hidden_rows = table.build_rows(
        env.records, manager, opportunity,
        table.visible_columns(env.records, manager, opportunity),
        env.records.list_records(SYSTEM, "opportunity",
                                 parse_state(opportunity, {}).query).items,
        "zh-CN")
    assert all(r.cells[1].href is None and r.cells[1].value.startswith("#")
               for r in hidden_rows)


def test_titles_name_only_live_records_the_viewer_may_read(env: Env) -> None:
    """fields.titles (list cells, the detail page, pickers): the access policy's read
    predicate and the recycle bin decide, as for any list of the target."""
    from engine.web.pages.fields import titles

    partner = user(env, "dealer", "partner")  # reads the accounts they own or share
    mine = place(env, "account", {"name": "Mine"}, owner=partner)["id"]
    shared = env.records.create(env.admin.actor(), "account", {"name": "Shared"})["id"]
    env.records.set_team_member(env.admin.actor(), "account", shared, partner.user_id, "read")
    theirs = env.records.create(env.admin.actor(), "account", {"name": "Theirs"})["id"]
    binned = place(env, "account", {"name": "Binned"}, owner=partner)["id"]
    env.records.delete(env.admin.actor(), "account", binned)
    asked = [mine, shared, theirs, binned, 10_000_000]
    assert titles(env.model, env.records, partner, "account", asked) == {
        mine: "Mine", shared: "Shared"}
    assert titles(env.model, env.records, env.admin.actor(), "account", asked) == {
        mine: "Mine", shared: "Shared", theirs: "Theirs"}
    # No read scope on the entity at all, no such entity, nothing asked: no query, nothing.
    assert titles(env.model, env.records, partner, "department", [1]) == {}
    assert titles(env.model, env.records, partner, "nothing", [1]) == {}
    assert titles(env.model, env.records, partner, "account", []) == {}
    # The same through a list page: the unreadable account shows as its number, unlinked.
    deal = place(env, "opportunity", {"name": "Deal", "account": theirs}, owner=partner)
    page = browser(env, "dealer", "a-password").get("/e/opportunity").text
    assert f">#{theirs}<" in page and f'href="/e/account/{theirs}"' not in page
    assert "Theirs" not in page and f'href="/e/opportunity/{deal["id"]}"' in page


def test_money_values_keep_their_decimals(env: Env, acme: int) -> None:
    deal = opp(env, "Exact", acme, amount="0.05")
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["amount"] == Decimal("0.05")
    assert ">¥0.05<" in browser(env).get("/e/opportunity").text


def test_a_multichoice_list_column_filters_by_one_option(make_env: Any,
                                                         config_dir: Any) -> None:
    form = config_dir / "forms" / "lead.yaml"
    form.write_text(form.read_text(encoding="utf-8").replace(
        "list: [company,", "list: [company, interests,"), encoding="utf-8")
    env = make_env(config_dir)
    env.records.create(env.admin.actor(), "lead", {"company": "Both",
                                                   "interests": ["service", "parts"]})
    env.records.create(env.admin.actor(), "lead", {"company": "Parts", "interests": ["parts"]})
    admin = browser(env)
    text = admin.get("/e/lead?interests__has=service").text
    assert '<option value="service" selected>Service</option>' in text
    assert body_rows(text) == ["Both"] and "Service, Parts" in text
    assert '<th scope="col">Interests</th>' in text  # a multichoice cannot be sorted on


def test_choice_options_read_in_the_viewer_language(env: Env) -> None:
    """Choice cells and filter options use the YAML option_labels of the viewer's language."""
    from engine.web.pages import table

    actor = env.admin.actor()
    account = env.records.create(actor, "account", {"name": "Acme"})
    env.records.create(actor, "opportunity", {"name": "Deal", "account": account["id"],
                                              "stage": "negotiation"})
    opportunity = env.model.entity("opportunity")
    columns = table.visible_columns(env.records, actor, opportunity)
    items = env.records.list_records(actor, "opportunity",
                                     parse_state(opportunity, {}).query).items
    stage = next(i for i, c in enumerate(columns) if c.name == "stage")
    assert table.build_rows(env.records, actor, opportunity, columns, items,
                            "zh-CN")[0].cells[stage].value == "商务谈判"
    assert table.build_rows(env.records, actor, opportunity, columns, items,
                            "en")[0].cells[stage].value == "Negotiation"


# -- per-row actions: only where the policy allows that row -----------------------------


def test_row_actions_are_offered_only_on_rows_the_user_may_change(env: Env) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    other = user(env, "other", "sales_rep", department=dept["BJ"])
    acme = place(env, "account", {"name": "Acme"}, department=dept["BJ"])["id"]
    mine = place(env, "contact", {"full_name": "Mine", "account": acme}, owner=rep)["id"]
    theirs = place(env, "contact", {"full_name": "Theirs", "account": acme}, owner=other)["id"]
    client = browser(env, "rep", "a-password")
    page = client.get("/e/contact").text
    assert sorted(body_rows(page)) == ["Mine", "Theirs"]
    assert f'href="/e/contact/{mine}/edit"' in page and f'href="/e/contact/{mine}/delete"' in page
    # another rep's contact of the same department: readable, but neither edit nor delete
    assert f"/e/contact/{theirs}/edit" not in page and f"/e/contact/{theirs}/delete" not in page
    assert client.get(f"/e/contact/{theirs}/delete").status_code == 403  # what was offered
    # Accounts: rep reads the department's, updates own, deletes none: no Delete at all.
    accounts = client.get("/e/account").text
    assert "/delete" not in accounts and f"/e/account/{acme}/edit" not in accounts


def test_restore_is_offered_only_on_rows_the_user_may_restore(env: Env) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    other = user(env, "other", "sales_rep", department=dept["BJ"])
    acme = place(env, "account", {"name": "Acme"}, department=dept["BJ"])["id"]
    mine = place(env, "contact", {"full_name": "Mine", "account": acme}, owner=rep)["id"]
    theirs = place(env, "contact", {"full_name": "Theirs", "account": acme}, owner=other)["id"]
    for rid in (mine, theirs):
        env.records.delete(SYSTEM, "contact", rid)
    page = browser(env, "rep", "a-password").get("/e/contact/trash").text
    assert "Mine" in page and "Theirs" in page  # both readable in the bin
    assert f'action="/e/contact/{mine}/restore"' in page
    assert f'action="/e/contact/{theirs}/restore"' not in page

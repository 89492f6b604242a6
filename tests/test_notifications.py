"""The notifications inbox (engine/runtime/notifications.py, engine/web/notifications.py,
engine/web/pages/notifications.py): what the shipped flows' notify actions write shows on the
recipient's page, in the header's count and in the API, to them alone; on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.errors import BadRequest, NotFound
from engine.runtime.notifications import (
    HEADER_CAP,
    MAX_PAGE,
    Notifications,
    cursor_of,
    page_size_of,
)
from engine.runtime.schema.tables import NOTIFICATION_TABLE
from engine.web.i18n import formatters
from tests.access_helpers import Person, place, user
from tests.conftest import Env
from tests.deals import win
from tests.test_api import assert_error
from tests.test_openapi import validator
from tests.web_helpers import csrf_of, sign_in

WON = {"en": "A deal of yours is won", "zh": "您的商机已赢单"}


def won_deal(env: Env, owner: Person, name: str = "Harbour cranes") -> dict[str, Any]:
    """A deal of `owner`'s, set to won by the administrator: the shipped opportunity
    pipeline's won_notice tells its owner."""
    account = place(env, "account", {"name": f"{name} Ltd"})
    deal = place(env, "opportunity", {"name": name, "account": account["id"]}, owner=owner)
    return win(env.records, env.admin.actor(), deal["id"])


def add_notices(env: Env, user_id: int, n: int, *, start: datetime | None = None) -> list[int]:
    """`n` notifications for `user_id` without a record, oldest first; their ids."""
    t = env.records.schema.table(NOTIFICATION_TABLE)
    start = start or datetime(2026, 3, 1, tzinfo=UTC)
    with env.engine.begin() as conn:
        return [int(conn.execute(insert(t).values(
            user_id=user_id, entity=None, record_id=None,
            message={"en": f"notice {i}", "zh": f"通知 {i}"},
            created_at=start + timedelta(minutes=i)).returning(t.c.id)).scalar_one())
            for i in range(n)]


# -- the runtime ------------------------------------------------------------------------

def test_a_won_deal_shows_in_its_owners_inbox_and_nobody_elses(env: Env) -> None:
    rep, other = user(env, "rep_li", "sales_rep"), user(env, "rep_wang", "sales_rep")
    deal = won_deal(env, rep)
    inbox = Notifications(env.records)
    page = inbox.page(rep)
    assert [(n.message, n.entity, n.record_id, n.title, n.unread) for n in page.items] == [
        (WON, "opportunity", deal["id"], "Harbour cranes", True)]
    assert page.next_cursor is None
    notice = page.items[0]
    assert notice.text("en") == WON["en"] and notice.text("zh-CN") == WON["zh"]
    assert inbox.unread(rep) == 1
    assert inbox.page(other).items == [] and inbox.unread(other) == 0
    with pytest.raises(NotFound):  # not theirs: the same 404 as an id that does not exist
        inbox.mark_read(other, notice.id)
    with pytest.raises(NotFound):
        inbox.mark_read(other, notice.id + 1000)
    assert inbox.unread(rep) == 1
    inbox.mark_read(rep, notice.id)
    inbox.mark_read(rep, notice.id)  # again: no change, no error
    assert inbox.unread(rep) == 0
    read = inbox.page(rep).items[0]
    assert not read.unread and read.read_at is not None
    assert inbox.page(rep, unread_only=True).items == []


def test_a_record_the_recipient_may_no_longer_read_is_not_named(env: Env) -> None:
    rep, other = user(env, "rep_li", "sales_rep"), user(env, "rep_wang", "sales_rep")
    deal = won_deal(env, rep, "Secret tender")
    # given to another rep: rep_li reads only their own deals
    env.records.assign(SYSTEM, "opportunity", deal["id"], owner=other.id, department=None)
    notice = Notifications(env.records).page(rep).items[0]
    assert notice.title is None and not notice.readable
    assert notice.as_json()["record"] is None
    assert "Secret tender" not in repr(notice.as_json())
    # the administrator, who may read it, is told nothing: only the owner was
    assert Notifications(env.records).page(env.admin.actor()).items == []


def test_pages_are_newest_first_and_bounded(env: Env) -> None:
    rep = user(env, "rep_li", "sales_rep")
    ids = add_notices(env, rep.id, 5)
    inbox = Notifications(env.records)
    first = inbox.page(rep, limit=2)
    assert [n.id for n in first.items] == ids[:-3:-1] and first.next_cursor is not None
    second = inbox.page(rep, limit=2, cursor=cursor_of(first.next_cursor))
    third = inbox.page(rep, limit=2, cursor=cursor_of(second.next_cursor))
    assert [n.id for n in second.items + third.items] == ids[2::-1]
    assert third.next_cursor is None
    assert inbox.mark_all_read(rep) == 5 and inbox.unread(rep) == 0
    assert inbox.mark_all_read(rep) == 0
    with pytest.raises(BadRequest) as caught:
        inbox.page(rep, limit=MAX_PAGE + 1)
    assert "page_size" in caught.value.fields


@given(st.text(max_size=30))
def test_page_size_and_cursor_parameters_are_whole_numbers_or_a_400(raw: str) -> None:
    for parse, key in ((page_size_of, "page_size"), (cursor_of, "cursor")):
        try:
            value = parse(raw)
        except BadRequest as exc:
            assert list(exc.fields) == [key]
            continue
        if raw:
            assert value == int(raw) and raw.isdigit()
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_PAGE:
        assert page_size_of(raw) == int(raw)


def test_the_session_query_reads_the_header_count_capped(env: Env) -> None:
    from engine.runtime.notifications import unread_column
    from engine.runtime.sessions import Sessions

    rep = user(env, "rep_li", "sales_rep")
    table = env.records.schema.table(NOTIFICATION_TABLE)
    sessions = Sessions(env.engine, env.records.schema,
                        counts={"notifications": lambda uid: unread_column(table, uid)})
    started = sessions.start(rep.id)
    found = sessions.signed_in(started.token)
    assert found is not None and found.counts == {"notifications": 0}
    add_notices(env, rep.id, HEADER_CAP + 3)
    add_notices(env, env.admin.id, 2)
    found = sessions.signed_in(started.token)
    assert found is not None and found.counts == {"notifications": HEADER_CAP}
    Notifications(env.records).mark_all_read(rep)
    found = sessions.signed_in(started.token)
    assert found is not None and found.counts == {"notifications": 0}


# -- the API ----------------------------------------------------------------------------

def test_the_api_lists_counts_and_marks_the_callers_own(env: Env) -> None:
    rep, other = user(env, "rep_li", "sales_rep"), user(env, "rep_wang", "sales_rep")
    deal = won_deal(env, rep)
    mine = env.client(env.users.new_token("rep_li"))
    theirs = env.client(env.users.new_token("rep_wang"))
    body = mine.get("/api/notifications").json()
    assert body["next_cursor"] is None and len(body["items"]) == 1
    item = body["items"][0]
    assert item["message"] == WON and item["unread"] is True and item["read_at"] is None
    assert item["record"] == {"entity": "opportunity", "id": deal["id"],
                              "title": "Harbour cranes"}
    assert item["created_at"].endswith("Z")
    assert mine.get("/api/notifications/count").json() == {"unread": 1}
    # the answers are what /openapi.json describes
    validator("NotificationPage").validate(body)
    validator("NotificationCount").validate(mine.get("/api/notifications/count").json())
    assert theirs.get("/api/notifications").json() == {"items": [], "next_cursor": None}
    assert theirs.get("/api/notifications/count").json() == {"unread": 0}
    assert_error(theirs.post(f"/api/notifications/{item['id']}/read"), 404, "not_found")
    assert_error(theirs.post("/api/notifications/99999999/read"), 404, "not_found")
    assert_error(theirs.post("/api/notifications/x1/read"), 404, "not_found")
    assert theirs.post("/api/notifications/read").json() == {"marked": 0}
    assert mine.get("/api/notifications/count").json() == {"unread": 1}
    answer = mine.post(f"/api/notifications/{item['id']}/read")
    assert answer.status_code == 200 and answer.json() == {"id": item["id"], "unread": False}
    validator("NotificationRead").validate(answer.json())
    validator("NotificationPage").validate(mine.get("/api/notifications").json())
    assert mine.get("/api/notifications?unread=1").json()["items"] == []
    assert mine.get("/api/notifications?unread=0").json()["items"][0]["unread"] is False
    add_notices(env, rep.id, 3)
    marked = mine.post("/api/notifications/read").json()
    assert marked == {"marked": 3}
    validator("NotificationsMarked").validate(marked)
    assert mine.get("/api/notifications/count").json() == {"unread": 0}
    assert other.user_id is not None


def test_the_api_pages_with_a_cursor_and_bounds_the_page_size(env: Env) -> None:
    rep = user(env, "rep_li", "sales_rep")
    ids = add_notices(env, rep.id, 5)
    api = env.client(env.users.new_token("rep_li"))
    seen: list[int] = []
    url = "/api/notifications?page_size=2"
    while True:
        body = api.get(url).json()
        seen += [i["id"] for i in body["items"]]
        if body["next_cursor"] is None:
            break
        url = f"/api/notifications?page_size=2&cursor={body['next_cursor']}"
    assert seen == ids[::-1]
    for bad in (f"page_size={MAX_PAGE + 1}", "page_size=0", "page_size=ten"):
        answer = api.get(f"/api/notifications?{bad}")
        assert_error(answer, 400, "bad_request")
        assert "page_size" in answer.json()["error"]["fields"]
    assert api.get(f"/api/notifications?page_size={MAX_PAGE}").status_code == 200
    for bad, key in (("cursor=abc", "cursor"), ("unread=maybe", "unread"),
                     ("sort=id", "sort"), ("unread=1&unread=0", "unread")):
        answer = api.get(f"/api/notifications?{bad}")
        assert_error(answer, 400, "bad_request")
        assert key in answer.json()["error"]["fields"], bad


def test_the_api_needs_a_token(env: Env) -> None:
    anonymous = env.client()
    for method, path in (("GET", "/api/notifications"), ("GET", "/api/notifications/count"),
                         ("POST", "/api/notifications/read"),
                         ("POST", "/api/notifications/1/read")):
        assert_error(anonymous.request(method, path), 401, "unauthorized")


# -- the pages --------------------------------------------------------------------------

def _signed_in(env: Env, name: str) -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, "a-password").status_code == 303
    return client


def _header(html: str) -> str:
    found = re.search(r'<a id="header-notifications"[^>]*>(.*?)</a>', html, re.S)
    assert found, "no notifications link in the header"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_the_owner_sees_the_notice_on_the_page_and_in_the_header(env: Env) -> None:
    rep = user(env, "rep_li", "sales_rep")
    user(env, "rep_wang", "sales_rep")
    deal = won_deal(env, rep)
    page = _signed_in(env, "rep_li")
    home = page.get("/")
    assert _header(home.text) == "Notifications (1)"
    answer = page.get("/notifications")
    assert answer.status_code == 200
    html = answer.text
    assert 'class="notification unread"' in html and WON["en"] in html
    assert f'<a href="/e/opportunity/{deal["id"]}">Harbour cranes</a>' in html
    assert _header(html) == "Notifications (1)"
    # the other rep: nothing, and no count
    other = _signed_in(env, "rep_wang")
    assert _header(other.get("/").text) == "Notifications"
    theirs = other.get("/notifications").text
    assert WON["en"] not in theirs and "Harbour cranes" not in theirs
    notice = Notifications(env.records).page(rep).items[0]
    refused = other.post(f"/notifications/{notice.id}/read",
                         data={"csrf_token": csrf_of(theirs)}, follow_redirects=False)
    assert refused.status_code == 404
    assert Notifications(env.records).unread(rep) == 1


def test_the_page_speaks_the_viewers_language_and_the_organisations_time(env: Env) -> None:
    rep = user(env, "rep_li", "sales_rep")
    env.users.set_locale(rep.id, "zh-CN")
    add_notices(env, rep.id, 1, start=datetime(2026, 12, 31, 16, 30, tzinfo=UTC))
    html = _signed_in(env, "rep_li").get("/notifications").text
    assert "通知 0" in html and "notice 0" not in html
    settings_ = env.model.settings  # the time as every page shows one: the organisation's zone
    shown = formatters("zh-CN", settings_.currency, settings_.time_zone)["datetime"](
        datetime(2026, 12, 31, 16, 30, tzinfo=UTC))
    assert shown.startswith("202") and shown in html
    assert "全部标为已读" in html


def test_a_record_the_viewer_may_not_read_is_shown_without_title_or_link(env: Env) -> None:
    rep, other = user(env, "rep_li", "sales_rep"), user(env, "rep_wang", "sales_rep")
    deal = won_deal(env, rep, "Secret tender")
    env.records.assign(SYSTEM, "opportunity", deal["id"], owner=other.id, department=None)
    html = _signed_in(env, "rep_li").get("/notifications").text
    assert WON["en"] in html and "a record you cannot open" in html
    assert "Secret tender" not in html and f"/e/opportunity/{deal['id']}" not in html


def test_marking_needs_the_csrf_token_and_then_the_count_drops(env: Env) -> None:
    rep = user(env, "rep_li", "sales_rep")
    won_deal(env, rep)
    add_notices(env, rep.id, 2)
    page = _signed_in(env, "rep_li")
    html = page.get("/notifications").text
    assert _header(html) == "Notifications (3)"
    notice = Notifications(env.records).page(rep).items[-1]  # the won deal's, oldest
    for path in (f"/notifications/{notice.id}/read", "/notifications/read"):
        refused = page.post(path, data={}, follow_redirects=False)
        assert refused.status_code == 403
        refused = page.post(path, data={"csrf_token": "forged"}, follow_redirects=False)
        assert refused.status_code == 403
    assert Notifications(env.records).unread(rep) == 3
    token = csrf_of(html)
    done = page.post(f"/notifications/{notice.id}/read", data={"csrf_token": token},
                     follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/notifications"
    html = page.get("/notifications").text
    assert _header(html) == "Notifications (2)"
    assert html.count('class="notification unread"') == 2
    # htmx: the list comes back in place, the header's count with it (out of band)
    swapped = page.post("/notifications/read", data={"csrf_token": token, "unread": "1"},
                        headers={"HX-Request": "true"})
    assert swapped.status_code == 200
    assert swapped.text.lstrip().startswith("{#") is False
    assert 'id="notifications"' in swapped.text and "<html" not in swapped.text
    assert 'hx-swap-oob="true"' in swapped.text and _header(swapped.text) == "Notifications"
    assert "No unread notifications." in swapped.text
    assert Notifications(env.records).unread(rep) == 0
    assert _header(page.get("/").text) == "Notifications"


def test_the_page_needs_sign_in_and_bounds_its_page_size(env: Env, pages: TestClient) -> None:
    answer = pages.get("/notifications", follow_redirects=False)
    assert answer.status_code in (302, 303) and "/login" in answer.headers["location"]
    sign_in(pages)
    add_notices(env, env.admin.id, 3)
    assert pages.get(f"/notifications?page_size={MAX_PAGE + 1}").status_code == 400
    assert pages.get("/notifications?cursor=x").status_code == 400
    first = pages.get("/notifications?page_size=2").text
    assert first.count('class="notification unread"') == 2
    older = re.search(r'href="(/notifications\?cursor=\d+)" rel="next"', first)
    assert older, "no link to older notifications"
    assert pages.get(older.group(1)).text.count('class="notification unread"') == 1


def test_signed_in_pages_all_carry_the_header_count(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    add_notices(env, env.admin.id, HEADER_CAP + 1)
    for path in ("/", "/e/account", "/search?q=x", "/notifications"):
        html = pages.get(path).text
        assert _header(html) == "Notifications (99+)", path


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.text(alphabet="0123456789x-", min_size=1, max_size=25))
def test_odd_notification_ids_are_404_not_500(env: Env, ids: str) -> None:
    api = env.client(env.users.new_token("admin"))
    answer = api.post(f"/api/notifications/{ids}/read")
    assert answer.status_code == 404


def test_notification_rows_stay_as_the_flow_wrote_them(env: Env) -> None:
    """Marking read only sets read_at; the message and record stay."""
    rep = user(env, "rep_li", "sales_rep")
    deal = won_deal(env, rep)
    Notifications(env.records).mark_all_read(rep)
    t = env.records.schema.table(NOTIFICATION_TABLE)
    with env.engine.connect() as conn:
        row = conn.execute(select(t)).mappings().one()
    assert (row["user_id"], row["entity"], row["record_id"], row["message"]) == (
        rep.id, "opportunity", deal["id"], WON)
    assert row["read_at"] is not None

"""Sign-in pages and sessions over HTTP (engine/web/auth.py, engine/web/security.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update
from starlette.testclient import TestClient

from engine.cli import proxy_options
from engine.runtime.sessions import Sessions
from engine.settings import WebSettings
from engine.web.app import create_app
from tests.conftest import Env
from tests.web_helpers import csrf_of, page_token, run_in_own_loop, sign_in

WRONG = "The user name or password is not right."
THROTTLED = "Too many failed sign-ins"


def rows(env: Env, table: str) -> list[dict[str, Any]]:
    t = env.records.schema.table(table)
    with env.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).order_by(*t.primary_key)).mappings()]


def new_client(env: Env, app: Any = None) -> TestClient:
    client = TestClient(app or create_app(env.model, env.engine), raise_server_exceptions=False)
    client.headers["Accept"] = "text/html"
    return client


def plant(client: TestClient, value: str) -> None:
    """Put a session cookie in the client's jar, as a browser holding it would send it."""
    client.cookies.set("crm_session", value, domain="testserver.local")


def test_pages_need_a_signed_in_user(pages: TestClient) -> None:
    r = pages.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = pages.get("/search?q=acme", follow_redirects=False)
    target = urlsplit(r.headers["location"])
    assert target.path == "/login"
    assert parse_qs(target.query) == {"next": ["/search?q=acme"]}
    r = pages.get("/", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 401 and r.headers["HX-Redirect"] == "/login"


def test_login_page_is_a_labelled_form_with_a_csrf_token(pages: TestClient) -> None:
    r = pages.get("/login")
    assert r.status_code == 200
    assert 'for="username"' in r.text and 'for="password"' in r.text
    assert csrf_of(r.text)
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("crm_csrf=") and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_sign_in_sets_a_signed_http_only_cookie_and_goes_to_next(env: Env,
                                                                   pages: TestClient) -> None:
    r = sign_in(pages, next_url="/search?q=x")
    assert r.status_code == 303 and r.headers["location"] == "/search?q=x"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("crm_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    token, _, signature = value.rpartition(".")
    assert token and signature
    assert [s["user_id"] for s in rows(env, "crm_session")] == [env.admin.id]
    page = pages.get("/")
    assert page.status_code == 200 and 'href="/e/account"' in page.text


def test_next_never_leads_to_another_site(pages: TestClient) -> None:
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/login"):
        r = sign_in(pages, next_url=bad)
        assert r.headers["location"] == "/", bad


def test_wrong_password_and_unknown_user_get_the_same_answer(env: Env,
                                                              pages: TestClient) -> None:
    wrong = sign_in(pages, "admin", "not-the-password")
    unknown = sign_in(pages, "nobody_here", "not-the-password")
    assert wrong.status_code == unknown.status_code == 400
    for r in (wrong, unknown):
        assert WRONG in r.text
        assert not any(c.startswith("crm_session=") for c in r.headers.get_list("set-cookie"))
    # The only difference is the name typed, shown back in the form.
    assert wrong.text.replace('value="admin"', "") == unknown.text.replace(
        'value="nobody_here"', "").replace(csrf_of(unknown.text), csrf_of(wrong.text))
    assert rows(env, "crm_session") == []


class FrozenClock:
    """A clock that stands still, so no throttled try becomes due while a test runs."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def freeze_throttle(app: Any) -> FrozenClock:
    clock = FrozenClock()
    app.state.services.throttle.clock = clock
    return clock


def client_at(env: Env, app: Any, address: str) -> TestClient:
    """A browser connecting from `address`."""
    client = TestClient(app, raise_server_exceptions=False, client=(address, 50000))
    client.headers["Accept"] = "text/html"
    return client


def test_repeated_failures_are_throttled_with_429_for_any_name(env: Env,
                                                                pages: TestClient) -> None:
    freeze_throttle(pages.app)
    for name in ("admin", "nobody_here"):
        for _ in range(5):
            assert sign_in(pages, name, "wrong-password").status_code == 400
        r = sign_in(pages, name, "admin-password")  # even the right password waits
        assert r.status_code == 429, name
        assert THROTTLED in r.text and int(r.headers["Retry-After"]) > 0
    assert rows(env, "crm_session") == []


def test_guessing_from_one_address_does_not_lock_the_name_out_elsewhere(env: Env) -> None:
    app = create_app(env.model, env.engine)
    freeze_throttle(app)
    attacker = client_at(env, app, "203.0.113.66")
    for _ in range(5):
        assert sign_in(attacker, "admin", "wrong-password").status_code == 400
    assert sign_in(attacker, "admin", "admin-password").status_code == 429
    admin = client_at(env, app, "192.0.2.10")
    assert sign_in(admin, "admin", "admin-password").status_code == 303
    assert sign_in(attacker, "admin", "admin-password").status_code == 429  # still waits


def test_bad_guesses_sent_at_once_get_only_the_free_tries(env: Env) -> None:
    """20 sign-ins with a wrong password at the same moment, from one address: the count
    is taken before the password is checked, so at most 5 are checked at all."""
    app = create_app(env.model, env.engine)
    freeze_throttle(app)

    async def guess_all() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     headers={"Accept": "text/html"}) as client:
            token = csrf_of((await client.get("/login")).text)
            form = {"username": "admin", "password": "wrong-password", "csrf_token": token}
            answers = await asyncio.gather(*(client.post("/login", data=form)
                                             for _ in range(20)))
        return [r.status_code for r in answers]

    statuses = run_in_own_loop(guess_all)
    assert sorted(statuses) == [400] * 5 + [429] * 15


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(name=st.text(max_size=200), address=st.sampled_from(
    ["203.0.113.1", "2001:db8::1", "unknown", "x" * 300]))
def test_any_name_from_any_address_is_counted_without_an_error(env: Env, name: str,
                                                                address: str) -> None:
    """Whatever is typed as the name (NUL, any script, longer than a column, a case that
    lengthens when lowered) and whatever the peer is called, the answer is 400 or 429."""
    client = client_at(env, env.client().app, address)
    assert sign_in(client, name, "wrong-password").status_code in (400, 429)


def test_x_forwarded_for_is_believed_only_from_a_named_proxy(env: Env) -> None:
    """`crm serve` starts uvicorn with proxy_options(CRM_TRUSTED_PROXIES): by default the
    address a failure is counted for is the connection's peer, even from 127.0.0.1."""
    for proxies, counted in (((), "127.0.0.1"), (("127.0.0.1",), "198.51.100.9")):
        config = uvicorn.Config(create_app(env.model, env.engine), **proxy_options(proxies))
        config.load()
        client = TestClient(config.loaded_app, raise_server_exceptions=False,
                            client=("127.0.0.1", 50000))
        client.headers["X-Forwarded-For"] = "198.51.100.9"
        assert sign_in(client, "admin", "wrong-password").status_code == 400
        addresses = {r["address"] for r in rows(env, "crm_login_throttle")}
        assert addresses == {counted}, proxies
        with env.engine.begin() as conn:
            conn.execute(delete(env.records.schema.table("crm_login_throttle")))


def test_a_good_sign_in_resets_the_count_for_that_name(pages: TestClient) -> None:
    for _ in range(4):
        sign_in(pages, "admin", "wrong-password")
    assert sign_in(pages).status_code == 303
    for _ in range(4):
        assert sign_in(pages, "admin", "wrong-password").status_code == 400


def test_signing_in_again_rotates_the_session_id(env: Env, pages: TestClient) -> None:
    first = sign_in(pages)
    old_cookie = first.cookies["crm_session"]
    second = sign_in(pages)
    assert second.status_code == 303
    assert second.cookies["crm_session"] != old_cookie
    sessions = rows(env, "crm_session")
    assert len(sessions) == 2 and sessions[0]["ended_at"] is not None
    assert sessions[1]["ended_at"] is None
    stale = new_client(env, pages.app)
    plant(stale, old_cookie)
    assert stale.get("/", follow_redirects=False).headers["location"] == "/login"


def test_a_planted_or_forged_cookie_is_no_session(env: Env, pages: TestClient) -> None:
    plant(pages, "planted-by-someone-else")
    assert pages.get("/", follow_redirects=False).status_code == 303
    assert sign_in(pages).status_code == 303
    good = pages.cookies["crm_session"]
    token, _, signature = good.rpartition(".")
    forged = new_client(env, pages.app)
    plant(forged, f"{token}.{signature[::-1]}")
    assert forged.get("/", follow_redirects=False).status_code == 303
    # A cookie signed with another app's key is refused as well.
    other = new_client(env)
    plant(other, good)
    assert other.get("/", follow_redirects=False).status_code == 303


def test_logout_ends_the_session(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    cookie = pages.cookies["crm_session"]
    r = pages.post("/logout", data={"csrf_token": page_token(pages)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert rows(env, "crm_session")[0]["ended_at"] is not None
    replay = new_client(env, pages.app)
    plant(replay, cookie)
    assert replay.get("/", follow_redirects=False).status_code == 303


def test_password_change_ends_every_other_session(env: Env, pages: TestClient) -> None:
    other = new_client(env, pages.app)
    sign_in(other)
    sign_in(pages)
    token = page_token(pages, "/account/password")
    r = pages.post("/account/password", data={
        "csrf_token": token, "current_password": "admin-password",
        "new_password": "a-new-password", "confirm_password": "a-new-password"},
        follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account/password?changed=1"
    done = pages.get("/account/password?changed=1")
    assert done.status_code == 200 and "Your password was changed" in done.text
    assert other.get("/", follow_redirects=False).status_code == 303
    assert Sessions(env.engine, env.records.schema).live_count(env.admin.id) == 1
    fresh = new_client(env, pages.app)
    assert sign_in(fresh, "admin", "admin-password").status_code == 400
    assert sign_in(fresh, "admin", "a-new-password").status_code == 303


def test_password_change_revokes_the_users_api_tokens(env: Env, pages: TestClient) -> None:
    token = env.users.new_token("admin", "integration")
    api = env.client(token)
    assert api.get("/api/account").status_code == 200
    sign_in(pages)
    r = pages.post("/account/password", data={
        "csrf_token": page_token(pages, "/account/password"),
        "current_password": "admin-password", "new_password": "a-new-password",
        "confirm_password": "a-new-password"})
    assert "your API tokens revoked" in r.text
    assert api.get("/api/account").status_code == 401
    assert env.client(env.users.new_token("admin")).get("/api/account").status_code == 200


def test_password_change_checks_its_fields(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    token = page_token(pages, "/account/password")

    def change(current: str, new: str, confirm: str) -> str:
        r = pages.post("/account/password", data={
            "csrf_token": token, "current_password": current, "new_password": new,
            "confirm_password": confirm})
        assert r.status_code == 400
        return r.text

    assert "This is not your current password." in change("wrong", "long-enough", "long-enough")
    assert "Use at least 8 characters." in change("admin-password", "short", "short")
    assert "are not the same" in change("admin-password", "long-enough", "long-enougH")
    assert 'aria-invalid="true"' in change("admin-password", "short", "short")
    assert env.users.check_password("admin", "admin-password") is not None


def test_state_changes_need_the_csrf_token(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    for path, data in (("/logout", {}), ("/account/language", {"language": "zh-CN"}),
                       ("/account/password", {"current_password": "admin-password",
                                              "new_password": "a-new-password",
                                              "confirm_password": "a-new-password"})):
        for extra in ({}, {"csrf_token": "not-the-token"}):
            r = pages.post(path, data={**data, **extra}, follow_redirects=False)
            assert r.status_code == 403, (path, extra)
            assert "did not come from this site" in r.text and "<form" in r.text
    r = pages.post("/login", data={"username": "admin", "password": "admin-password"},
                   follow_redirects=False)
    assert r.status_code == 403
    assert rows(env, "crm_session")[0]["ended_at"] is None  # not signed out
    assert len(rows(env, "crm_session")) == 1
    assert env.users.get(env.admin.id).locale == "en"
    assert env.users.check_password("admin", "admin-password") is not None


def test_the_token_may_come_in_the_htmx_header_or_a_multipart_form(env: Env,
                                                                    pages: TestClient) -> None:
    sign_in(pages)
    token = page_token(pages)
    r = pages.post("/account/language", data={"language": "zh-CN"},
                   headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert r.status_code == 303
    r = pages.post("/account/language", data={"language": "en", "csrf_token": token},
                   files={"note": ("a.txt", b"hello")}, follow_redirects=False)
    assert r.status_code == 303
    assert env.users.get(env.admin.id).locale == "en"


def test_a_signed_out_form_needs_the_token_of_its_cookie(env: Env) -> None:
    one, two = new_client(env), new_client(env)
    token_one = csrf_of(one.get("/login").text)
    two.get("/login")
    r = two.post("/login", data={"username": "admin", "password": "admin-password",
                                 "csrf_token": token_one}, follow_redirects=False)
    assert r.status_code == 403


def test_get_never_changes_state(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    before = {t: rows(env, t) for t in ("crm_session", "crm_login_throttle", "crm_user")}
    assert pages.get("/login?username=admin&password=wrong").status_code == 200  # → dashboard
    assert pages.get("/logout", follow_redirects=False).status_code == 405
    assert pages.get("/account/language?language=zh-CN",
                     follow_redirects=False).status_code == 405
    assert pages.get("/account/password?new_password=x").status_code == 200
    signed_out = new_client(env, pages.app)
    assert signed_out.get("/login?username=admin&password=admin-password").status_code == 200
    after = {t: rows(env, t) for t in before}
    assert after == before


def test_language_switch_changes_labels_and_messages(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    r = pages.post("/account/language", data={"language": "zh-CN", "next": "/search",
                                              "csrf_token": page_token(pages)},
                   follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/search"
    assert env.users.get(env.admin.id).locale == "zh-CN"
    page = pages.get("/").text
    assert '<html lang="zh-CN">' in page
    assert "工作台" in page and "销售机会" in page and "退出登录" in page
    assert "Dashboard" not in page
    bad = pages.post("/account/language", data={"language": "xx",
                                                "csrf_token": page_token(pages)})
    assert bad.status_code == 400 and "不支持的语言" in bad.text


def test_signed_out_pages_follow_accept_language(pages: TestClient) -> None:
    r = pages.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert "用户名" in r.text and '<html lang="zh-CN">' in r.text
    assert "User name" in pages.get("/login", headers={"Accept-Language": "fr"}).text


def test_a_display_name_renders_as_text(env: Env, pages: TestClient) -> None:
    env.users.add("mallory", ["admin"], password="mallory-password",
                  display_name='<script>alert(1)</script><img src=x onerror=alert(2)>')
    sign_in(pages, "mallory", "mallory-password")
    page = pages.get("/").text
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page


def test_secure_cookies_when_configured(env: Env) -> None:
    app = create_app(env.model, env.engine, WebSettings.ephemeral(cookie_secure=True))
    client = TestClient(app, base_url="https://testserver")
    login = client.get("/login")
    assert login.headers["set-cookie"].startswith("__Host-crm_csrf=")
    r = client.post("/login", data={"username": "admin", "password": "admin-password",
                                    "csrf_token": csrf_of(login.text)},
                    follow_redirects=False)
    cookie = next(c for c in r.headers.get_list("set-cookie")
                  if c.startswith("__Host-crm_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
    assert client.get("/").status_code == 200


def test_error_pages_for_browsers_json_for_the_api(pages: TestClient) -> None:
    r = pages.get("/no/such/page")
    assert r.status_code == 404 and "There is no page at this address." in r.text
    assert r.headers["content-type"].startswith("text/html")
    api = pages.get("/api/nothing", headers={"Accept": "application/json"})
    assert api.status_code in (401, 404) and "error" in api.json()


def test_the_api_takes_bearer_tokens_without_csrf(env: Env, api: TestClient) -> None:
    r = api.post("/api/account", json={"name": "Acme"})
    assert r.status_code == 201, r.text


def test_a_page_visit_records_when_the_session_was_last_seen(env: Env,
                                                             pages: TestClient) -> None:
    sign_in(pages)
    t = env.records.schema.table("crm_session")
    long_ago = datetime.now(UTC) - timedelta(minutes=30)
    with env.engine.begin() as conn:
        conn.execute(update(t).values(last_seen_at=long_ago))
    assert pages.get("/e/opportunity").status_code == 200
    seen = rows(env, "crm_session")[0]["last_seen_at"]
    assert seen > long_ago + timedelta(minutes=29)  # recorded by this visit
    assert pages.get("/e/opportunity").status_code == 200  # and not written again
    assert rows(env, "crm_session")[0]["last_seen_at"] == seen


# -- a form sent after the session ended ---------------------------------------------------


def end_sessions_by_idleness(env: Env) -> None:
    t = env.records.schema.table("crm_session")
    with env.engine.begin() as conn:
        conn.execute(update(t).values(last_seen_at=datetime.now(UTC) - timedelta(days=2)))


def drafts(env: Env) -> list[dict[str, Any]]:
    return rows(env, "crm_form_draft")


def sign_in_again(client: TestClient, login_url: str, name: str = "admin",
                  password: str = "admin-password") -> Any:
    page = client.get(login_url)
    form = {k: v[0] for k, v in parse_qs(urlsplit(login_url).query).items()}
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf_token": csrf_of(page.text), **form},
                       follow_redirects=False)


def test_a_form_sent_after_the_session_ended_comes_back_filled_after_sign_in(
        env: Env, pages: TestClient) -> None:
    sign_in(pages)
    token = page_token(pages, "/e/account/new")
    end_sessions_by_idleness(env)
    r = pages.post("/e/account/new", data={"csrf_token": token, "name": "Typed Before Expiry",
                                           "website": "https://typed.example"},
                   follow_redirects=False)
    assert r.status_code == 303, r.text
    login = r.headers["location"]
    assert urlsplit(login).path == "/login"
    assert parse_qs(urlsplit(login).query)["next"] == ["/e/account/new"]
    [kept] = drafts(env)
    assert kept["user_id"] == env.admin.id and token not in kept["fields"]
    assert "Typed Before Expiry" in kept["fields"]
    page = pages.get(login)
    assert "the form you sent comes back filled in" in page.text
    back = sign_in_again(pages, login)
    assert back.status_code == 303 and back.headers["location"].startswith(
        "/e/account/new?restore=")
    form = pages.get(back.headers["location"])
    assert form.status_code == 200
    assert 'value="Typed Before Expiry"' in form.text
    assert 'value="https://typed.example"' in form.text
    assert rows(env, "account") == []  # nothing saved unseen
    assert drafts(env) == []  # handed back once
    again = pages.get(back.headers["location"])
    assert "Typed Before Expiry" not in again.text


def test_an_edit_form_comes_back_with_the_version_it_was_opened_with(
        env: Env, pages: TestClient) -> None:
    account = env.records.create(env.admin.actor(), "account", {"name": "Old Name"})
    sign_in(pages)
    edit = f"/e/account/{account['id']}/edit"
    token = page_token(pages, edit)
    end_sessions_by_idleness(env)
    r = pages.post(edit, data={"csrf_token": token, "name": "New Name",
                               "version": str(account["version"])},
                   headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/login?")
    env.records.update(env.admin.actor(), "account", account["id"], {"name": "Changed Meanwhile"},
                       account["version"])
    back = sign_in_again(pages, r.headers["HX-Redirect"])
    form = pages.get(back.headers["location"])
    assert 'value="New Name"' in form.text
    saved = pages.post(edit, data={"csrf_token": csrf_of(form.text), "name": "New Name",
                                   "version": str(account["version"])},
                       follow_redirects=False)
    assert saved.status_code == 409  # the change made meanwhile is not overwritten unseen


def test_a_kept_form_goes_back_to_its_own_user_only(env: Env, pages: TestClient) -> None:
    env.users.add("bo", ["admin"], password="bo-password")
    sign_in(pages)
    token = page_token(pages, "/e/account/new")
    end_sessions_by_idleness(env)
    r = pages.post("/e/account/new", data={"csrf_token": token, "name": "Admin's Secret Deal"},
                   follow_redirects=False)
    login = r.headers["location"]
    draft_id = parse_qs(urlsplit(login).query)["draft"][0]
    other = new_client(env, pages.app)
    back = sign_in_again(other, login, "bo", "bo-password")
    assert back.headers["location"] == "/e/account/new"
    form = other.get(f"/e/account/new?restore={draft_id}")
    assert form.status_code == 200 and "Secret Deal" not in form.text
    assert len(drafts(env)) == 1  # still there for its user


def test_a_form_without_the_ended_sessions_token_is_refused_and_not_kept(
        env: Env, pages: TestClient) -> None:
    sign_in(pages)
    page_token(pages, "/e/account/new")
    end_sessions_by_idleness(env)
    r = pages.post("/e/account/new", data={"csrf_token": "forged", "name": "Planted"},
                   follow_redirects=False)
    assert r.status_code == 403
    assert drafts(env) == []

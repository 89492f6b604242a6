"""Cookie signatures and the CSRF guard's body handling (engine/web/security.py), and the
security headers on every answer (engine/web/headers.py)."""

from __future__ import annotations

import re

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from engine.web.app import create_app
from engine.web.headers import SecurityHeaders
from engine.web.security import MAX_FORM_BYTES, Signer
from engine.web.ui import TEMPLATES
from tests.conftest import REPO, Env
from tests.web_helpers import page_token, sign_in


def test_a_signature_binds_the_value_the_key_and_the_purpose() -> None:
    signer = Signer(b"a" * 32)
    signed = signer.sign("session", "value-1")
    assert signer.unsign("session", signed) == "value-1"
    assert signer.unsign("csrf", signed) is None
    assert Signer(b"b" * 32).unsign("session", signed) is None
    assert signer.unsign("session", signed.replace("value-1", "value-2")) is None
    for bad in (None, "", "no-dot", ".", "x" * 1000):
        assert signer.unsign("session", bad) is None


def test_a_form_too_large_to_check_is_refused(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    token = page_token(pages)
    r = pages.post("/account/language", data={"language": "zh-CN", "csrf_token": token,
                                              "pad": "x" * (MAX_FORM_BYTES + 10)})
    assert r.status_code == 403 and "too large" in r.text
    assert env.users.get(env.admin.id).locale == "en"
    # the token in the header (as htmx sends it) does not lift the bound
    r = pages.post("/account/language", headers={"X-CSRF-Token": token, "HX-Request": "true"},
                   data={"language": "zh-CN", "pad": "x" * (MAX_FORM_BYTES + 10)})
    assert r.status_code == 403 and "too large" in r.text
    assert env.users.get(env.admin.id).locale == "en"
    r = pages.post("/account/language", headers={"X-CSRF-Token": token, "HX-Request": "true"},
                   data={"language": "zh-CN"}, follow_redirects=False)
    assert r.status_code < 400 and env.users.get(env.admin.id).locale == "zh-CN"


def test_a_json_body_to_a_page_needs_the_header(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    r = pages.post("/logout", json={"csrf_token": page_token(pages)},
                   follow_redirects=False)
    assert r.status_code == 403


def test_static_files_and_health_pass_unguarded(pages: TestClient) -> None:
    css = pages.get("/static/app.css")
    assert css.status_code == 200 and "set-cookie" not in css.headers
    assert pages.get("/health").json()["status"] == "ok"


# -- security headers (engine/web/headers.py) -------------------------------------------

POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; "
          "object-src 'none'")


def _assert_secured(answer: httpx.Response, *, cacheable: bool = False) -> None:
    where = f"{answer.request.method} {answer.request.url.path} ({answer.status_code})"
    headers = answer.headers
    assert headers.get("content-security-policy") == POLICY, where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("referrer-policy") == "same-origin", where
    assert len(headers.get_list("content-security-policy")) == 1, where
    if cacheable:
        assert "no-store" not in headers.get("cache-control", ""), where
    else:
        assert headers.get("cache-control") == "no-store", where


def test_every_kind_of_answer_carries_the_security_headers(env: Env, pages: TestClient,
                                                           api: TestClient) -> None:
    _assert_secured(pages.get("/login"))
    assert sign_in(pages).status_code == 303
    account = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    for path in ("/", "/e/account", f"/e/account/{account['id']}", "/e/account/new",
                 "/e/opportunity/board/stage", "/search?q=Acme"):
        page = pages.get(path)
        assert page.status_code == 200, path
        _assert_secured(page)
    # an htmx fragment, a refused form, a page that is not there
    _assert_secured(pages.get("/e/account", headers={"HX-Request": "true"}))
    _assert_secured(pages.post("/logout", data={"csrf_token": "forged"}))
    missing = pages.get("/no/such/page")
    assert missing.status_code == 404
    _assert_secured(missing)
    # the API: an answer, an error, a 404, a refused token, the description
    listed = api.get("/api/account")
    assert listed.status_code == 200 and listed.json()["total"] == 1
    _assert_secured(listed)
    refused = api.post("/api/account", json={"name": ""})
    assert refused.status_code == 422
    _assert_secured(refused)
    _assert_secured(api.get("/api/account/987654"))
    _assert_secured(env.client().get("/api/account"))
    _assert_secured(api.get("/openapi.json"))
    _assert_secured(api.get("/health"))
    # static files stay cacheable (their validators are kept), a missing one is a 404
    css = pages.get("/static/app.css")
    assert css.status_code == 200 and css.headers["etag"]
    _assert_secured(css, cacheable=True)
    _assert_secured(pages.get("/static/no-such.css"), cacheable=True)


def test_an_unexpected_error_carries_the_security_headers(env: Env) -> None:
    """The headers wrap Starlette's error middleware too: a 500 (our bug) has them."""
    app = create_app(env.model, env.engine)

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    app.router.routes.insert(0, Route("/broken", broken))
    client = TestClient(app, raise_server_exceptions=False)
    for accept in ("application/json", "text/html"):
        answer = client.get("/broken", headers={"Accept": accept})
        assert answer.status_code == 500 and "a bug" not in answer.text
        _assert_secured(answer)


def test_an_app_value_is_replaced_not_doubled() -> None:
    """An answer that set one of the headers itself leaves with ours, once."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"cache-control", b"max-age=3600"), (b"x-frame-options", b"SAMEORIGIN"),
            (b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    answer = TestClient(SecurityHeaders(app)).get("/e/account")
    assert answer.text == "ok" and answer.headers["content-type"] == "text/plain"
    _assert_secured(answer)
    assert answer.headers.get_list("cache-control") == ["no-store"]
    assert answer.headers.get_list("x-frame-options") == ["DENY"]


# Inside a tag: an inline handler, a style attribute, a javascript: address, an htmx
# attribute that evaluates script (hx-on, hx-vars, js: values, trigger filters).
_INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b"  # an inline script or style element
    r"|<[a-z][^>]*\s(?:on[a-z]+|style|hx-on[:-][\w:-]*|hx-vars)\s*="
    r"|<[a-z][^>]*=\s*[\"']\s*(?:javascript|js):"
    r"|<[a-z][^>]*\shx-trigger=\"[^\"]*\[", re.IGNORECASE)


def test_no_template_or_page_code_holds_inline_script_or_style() -> None:
    """What the CSP would block, found before a browser does: in every template and in the
    HTML the page code builds (tests/browser/test_browser_csp.py runs the main pages)."""
    sources = [*TEMPLATES.glob("*.html"), *(REPO / "engine" / "web").rglob("*.py")]
    found = [f"{path.relative_to(REPO)}: {hit.group(0)}" for path in sources
             for hit in _INLINE.finditer(path.read_text(encoding="utf-8"))]
    assert found == []
    assert _INLINE.search('<button onclick="go()">') and _INLINE.search("<p style='x'>")
    assert _INLINE.search("<a href='javascript:x'>") and _INLINE.search("<style>")
    assert _INLINE.search('<div hx-on:click="x">') and _INLINE.search("<script>x</script>")
    assert not _INLINE.search('<script src="/static/layout.js" defer></script>')

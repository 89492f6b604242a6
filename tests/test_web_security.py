"""Cookie signatures and the CSRF guard's body handling (engine/web/security.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from engine.web.security import MAX_FORM_BYTES, Signer
from tests.conftest import Env
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


def test_a_json_body_to_a_page_needs_the_header(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    r = pages.post("/logout", json={"csrf_token": page_token(pages)},
                   follow_redirects=False)
    assert r.status_code == 403


def test_static_files_and_health_pass_unguarded(pages: TestClient) -> None:
    css = pages.get("/static/app.css")
    assert css.status_code == 200 and "set-cookie" not in css.headers
    assert pages.get("/health").json()["status"] == "ok"

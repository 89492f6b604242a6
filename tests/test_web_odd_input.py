"""Odd input to the pages answers 4xx, never 500, on both databases: malformed multipart
bodies, ids beyond BIGINT, NUL characters (PostgreSQL refuses them), non-ASCII digits, an
edit saved without the version it was opened at, and odd paths under /static (NUL, `..`,
very long) that can only miss."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import Env
from tests.web_helpers import csrf_of, page_token, sign_in


def test_a_malformed_multipart_body_is_refused_not_a_500(pages: TestClient) -> None:
    for body, ctype in ((b"garbage", "multipart/form-data"),
                        (b"--xx\r\nContent-Disposition: form-data\r\n\r\nv\r\n--xx--\r\n",
                         "multipart/form-data; boundary=xx")):
        answer = pages.post("/login", content=body, headers={"Content-Type": ctype})
        assert answer.status_code == 403, (body, answer.status_code)


def test_ids_beyond_bigint_are_404(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    huge = "9" * 25
    for path in (f"/e/account/{huge}", f"/e/account/{huge}/edit", f"/e/account/{huge}/delete",
                 f"/e/account/{huge}/tree/contact"):
        assert pages.get(path).status_code == 404, path
    token = page_token(pages)
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    for path in (f"/e/account/{huge}/restore", f"/e/account/{acme['id']}/team/{huge}/remove",
                 f"/e/account/views/{huge}/delete"):
        answer = pages.post(path, data={"csrf_token": token})
        assert answer.status_code == 404, path


def test_nul_characters_match_nothing(env: Env, pages: TestClient) -> None:
    login = pages.get("/login")
    answer = pages.post("/login", data={"csrf_token": csrf_of(login.text),
                                        "username": "ad\x00min", "password": "x" * 10})
    assert answer.status_code in (400, 401, 403), answer.status_code  # refused, not a 500
    assert "ad\x00min" not in answer.text
    sign_in(pages)
    assert pages.get("/e/account/pick/_owner", params={"q": "\x00"}).status_code == 200
    explained = pages.get("/admin/access", params={"user": "a\x00", "entity": "account",
                                                   "id": "1"})
    assert explained.status_code == 404


def test_non_ascii_digits_are_not_numbers(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    assert pages.get("/admin/access", params={"entity": "account", "id": "²"}).status_code \
        == 400
    account = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    deal = env.records.create(env.admin.actor(), "opportunity",
                              {"name": "Deal", "account": account["id"]})
    answer = pages.post(f"/e/opportunity/{deal['id']}/move",
                        data={"csrf_token": page_token(pages), "field": "stage",
                              "value": "proposal", "version": "²"})
    assert answer.status_code == 400


def test_an_edit_saved_without_its_version_changes_nothing(env: Env, pages: TestClient) -> None:
    account = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    sign_in(pages)
    path = f"/e/account/{account['id']}/edit"
    token = csrf_of(pages.get(path).text)
    for version in ("abc", ""):
        answer = pages.post(path, data={"csrf_token": token, "name": "Changed",
                                        "version": version}, follow_redirects=False)
        assert answer.status_code == 400, version
    assert env.records.get(env.admin.actor(), "account", account["id"])["name"] == "Acme"


ODD_STATIC_PATHS = ("/static/app.css%00.js", "/static/%00", "/static/app.css%00",
                    "/static/..%2f..%2fetc%2fpasswd", "/static/%2e%2e/engine/cli.py",
                    "/static/../pyproject.toml", "/static/.", "/static/%2e",
                    "/static/a%ff.css", "/static/a%0a.css", "/static/a%20b.css",
                    "/static/%5c..%5capp.css", "/static/" + "a" * 5000,
                    "/static/" + "a/" * 300 + "app.css", "/static/" + "%C3%A9" * 100)


def test_odd_static_paths_are_404_not_500(pages: TestClient) -> None:
    for path in ODD_STATIC_PATHS:
        for accept in ("text/html", "application/json"):
            answer = pages.get(path, headers={"Accept": accept})
            assert answer.status_code == 404, (path, accept, answer.status_code)
    assert pages.get("/static/app.css").status_code == 200
    assert pages.get("/static/x/../app.css").status_code == 200  # a path as browsers send it


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1, max_size=300))
def test_any_static_path_is_a_file_or_a_404(pages: TestClient, name: str) -> None:
    answer = pages.get("/static/" + quote(name, safe=""))
    assert answer.status_code in (200, 404), (name, answer.status_code)

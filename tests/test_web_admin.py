"""The access check page (engine/web/pages/admin.py): explain_access as a page."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.web_helpers import sign_in


def browser(env: Env, name: str = "admin", password: str = "admin-password") -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def verdicts(html: str) -> dict[str, str]:
    """Action row title → allowed/denied."""
    rows = re.findall(r'<th scope="row">([^<]+)</th>\s*<td><span class="verdict \w+">(\w+)<',
                      html)
    return dict(rows)


def test_the_form_alone_and_the_navigation_link(env: Env) -> None:
    client = browser(env)
    response = client.get("/admin/access")
    assert response.status_code == 200
    html = response.text
    assert '<label for="access-user">' in html and 'value="admin"' in html
    assert '<label for="access-entity">' in html and '<option value="opportunity"' in html
    assert '<label for="access-id">' in html
    assert 'href="/admin/access" aria-current="page"' in html  # in the Administration area


def test_admin_asks_about_someone_else(env: Env) -> None:
    deps = departments(env)
    rep = user(env, "rep", "sales_rep", department=deps["SH"])
    user(env, "pre", "presales", department=deps["SH"])
    deal = place(env, "opportunity", {
        "name": "Deal", "account": env.records.create(SYSTEM, "account", {"name": "A"})["id"]},
        owner=rep)
    client = browser(env)
    response = client.get("/admin/access", params={"user": "pre", "entity": "opportunity",
                                                   "id": str(deal["id"])})
    assert response.status_code == 200
    html = response.text
    assert verdicts(html) == {"May create": "denied", "May read": "denied",
                              "May update": "denied", "May delete": "denied",
                              "May export": "denied", "May assign": "denied"}
    assert "they do not own the record" in html and "presales" in html
    assert "Shanghai branch" in html  # the department path of the record and of the user
    # field rules: presales sees stage read-only
    stage = re.search(r"<code>stage</code></th>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>", html)
    assert stage and stage.groups() == ("can see it", "cannot change it")
    own = client.get("/admin/access", params={"user": "rep", "entity": "opportunity",
                                              "id": str(deal["id"])}).text
    assert verdicts(own)["May update"] == "allowed" and "they own the record" in own


def test_others_may_ask_only_about_themselves(env: Env) -> None:
    deps = departments(env)
    rep = user(env, "rep", "sales_rep", department=deps["SH"])
    deal = place(env, "opportunity", {
        "name": "Deal", "account": env.records.create(SYSTEM, "account", {"name": "A"})["id"]},
        owner=rep)
    client = browser(env, "rep", "a-password")
    mine = client.get("/admin/access", params={"entity": "opportunity", "id": str(deal["id"])})
    assert mine.status_code == 200 and verdicts(mine.text)["May read"] == "allowed"
    assert "readonly" in mine.text  # the user box: they cannot ask about others
    for name in ("admin", "nobody_at_all"):  # the same answer: no hint which names exist
        other = client.get("/admin/access", params={"user": name, "entity": "opportunity",
                                                    "id": str(deal["id"])})
        assert other.status_code == 403, name
        assert "Only an administrator may explain another user" in other.text
    # a record they cannot read is not there for them
    hidden = env.records.create(SYSTEM, "opportunity", {"name": "Secret", "account": deal[
        "account"]})
    response = client.get("/admin/access", params={"entity": "opportunity",
                                                   "id": str(hidden["id"])})
    assert response.status_code == 404 and "Secret" not in response.text


def test_bad_questions(env: Env) -> None:
    client = browser(env)
    cases = [({"user": "ghost", "entity": "account", "id": "1"}, 404,
              "There is no user with this name."),
             ({"entity": "nothing", "id": "1"}, 404, "There is no such kind of record."),
             ({"entity": "account", "id": "x1"}, 400, "The record id is a whole number."),
             ({"entity": "account", "id": "0"}, 400, "The record id is a whole number."),
             ({"entity": "account", "id": "99"}, 404, "There is no such record.")]
    for params, status, message in cases:
        response = client.get("/admin/access", params=params)
        assert response.status_code == status, params
        assert f'role="alert">{message}<' in response.text
        assert '<form class="card access-form"' in response.text  # the form stays


def test_signed_out_and_chinese(env: Env) -> None:
    signed_out = env.client()
    signed_out.headers["Accept"] = "text/html"
    response = signed_out.get("/admin/access", follow_redirects=False)
    assert "/login" in response.headers["location"]
    client = browser(env)
    account = env.records.create(SYSTEM, "account", {"name": "A"})
    token = client.get("/").text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/account/language", data={"language": "zh-CN", "csrf_token": token})
    html = client.get("/admin/access", params={"entity": "account",
                                               "id": str(account["id"])}).text
    assert "权限检查" in html and "可查看" in html and "允许" in html

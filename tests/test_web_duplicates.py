"""The new-record form warns of duplicates before it creates (engine/web/pages/duplicates.py,
engine/web/pages/forms.py): the candidates linked, what matched, "Create anyway"."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from tests.access_helpers import place, user
from tests.conftest import Env
from tests.web_helpers import csrf_of, sign_in


def _accounts(env: Env) -> int:
    table = env.records.schema.table("account")
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_the_form_warns_and_creates_anyway(env: Env, pages: TestClient) -> None:
    first = env.records.create(SYSTEM, "account", {"name": "上海电气集团股份有限公司",
                                                   "city": "上海", "phone": "021-62345678"})
    sign_in(pages)
    page = pages.get("/e/account/new").text
    assert 'id="create-anyway"' not in page
    typed = {"csrf_token": csrf_of(page), "name": "上海电气", "city": "上海",
             "industry": "energy"}
    answer = pages.post("/e/account/new", data=typed, follow_redirects=False)
    assert answer.status_code == 409
    warning = re.search(r'<div class="alert" role="alert" id="form-duplicates">.*?</div>',
                        answer.text, re.S)
    assert warning, answer.text
    assert f'<a href="/e/account/{first["id"]}">上海电气集团股份有限公司</a>' in warning.group(0)
    assert "same Account name, City" in warning.group(0)
    assert 'value="上海电气"' in answer.text  # what was typed is kept
    assert '<button type="submit" name="_allow_duplicate" value="1" id="create-anyway">' \
        in answer.text
    assert _accounts(env) == 1
    anyway = pages.post("/e/account/new", data={**typed, "_allow_duplicate": "1"},
                        follow_redirects=False)
    assert anyway.status_code == 303, anyway.text
    assert re.fullmatch(r"/e/account/\d+\?done=created", anyway.headers["location"])
    assert _accounts(env) == 2


def test_the_warning_in_chinese(env: Env, pages: TestClient) -> None:
    env.records.create(SYSTEM, "lead", {"company": "华为技术有限公司", "phone": "0755-28780808"})
    sign_in(pages)
    pages.post("/account/language", data={"language": "zh-CN",
                                          "csrf_token": csrf_of(pages.get("/").text)})
    page = pages.get("/e/lead/new").text
    answer = pages.post("/e/lead/new", data={"csrf_token": csrf_of(page), "company": "华为技术",
                                             "phone": "+86 755 2878 0808"})
    assert answer.status_code == 409
    assert "可能已存在" in answer.text and "公司, 电话相同" in answer.text
    assert "仍然创建" in answer.text


def test_no_warning_names_a_record_the_viewer_may_not_read(env: Env) -> None:
    user(env, "ann", "partner")
    bob = user(env, "bob", "partner")
    place(env, "account", {"name": "Acme GmbH", "city": "Bonn"}, owner=bob)
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, "ann", "a-password").status_code == 303
    page = client.get("/e/account/new").text
    answer = client.post("/e/account/new", data={"csrf_token": csrf_of(page),
                                                 "name": "ACME AG", "city": "Bonn"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert "Acme GmbH" not in answer.text


def test_a_live_hint_while_typing(env: Env, pages: TestClient) -> None:
    first = env.records.create(SYSTEM, "contact", {
        "full_name": "李伟", "email": "li.wei@acme.cn",
        "account": env.records.create(SYSTEM, "account", {"name": "Acme"})["id"]})
    sign_in(pages)
    page = pages.get("/e/contact/new").text
    assert '<div id="duplicate-hint" aria-live="polite"></div>' in page
    token = csrf_of(page)
    hint = pages.post("/e/contact/preview", data={"csrf_token": token, "full_name": "Li",
                                                  "email": "LI.WEI@acme.cn "}).text
    assert '<div id="duplicate-hint" hx-swap-oob="true"' in hint
    assert f'<a href="/e/contact/{first["id"]}" target="_blank" rel="noopener">李伟</a>' in hint
    assert "same Email" in hint
    none = pages.post("/e/contact/preview", data={"csrf_token": token, "email": "x@y.cn"}).text
    assert '<div id="duplicate-hint" hx-swap-oob="true" aria-live="polite"></div>' in none
    # editing a record: no hint (it would name the record itself)
    edit = pages.post("/e/contact/preview", data={"csrf_token": token,
                                                  "record_id": str(first["id"]),
                                                  "email": "li.wei@acme.cn"}).text
    assert "duplicate-hint" not in edit
    assert "duplicate-hint" not in pages.get("/e/product/new").text

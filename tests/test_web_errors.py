"""Server messages reach the reader in their language (engine/web/errors.py, ui.py): the JSON
API in English unless Accept-Language asks for Chinese, pages in the user's language; every
problem of a write comes back at once, a rule's message beside its field. Both databases."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from engine.runtime.records.query import ListQuery
from engine.web.i18n import translations
from engine.web.pages.records import ACTIONS
from engine.web.pages.table import ENGINE_LIST_COLUMNS
from tests.access_helpers import user
from tests.conftest import Env
from tests.web_helpers import csrf_of, sign_in

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
_CJK = re.compile(r"[\u4e00-\u9fff]")
# English words a message may keep in Chinese: names, codes and values, never sentences.
_ENGLISH_SENTENCE = re.compile(r"\b(?:is|must|be|the|not|no|of|you|may|a|an)\b")


def _chinese(text: str) -> bool:
    return bool(_CJK.search(text)) and not _ENGLISH_SENTENCE.search(text)


def _error(answer: object) -> dict[str, object]:
    body = answer.json()  # type: ignore[attr-defined]
    return body["error"]  # type: ignore[no-any-return]


def test_api_messages_are_english_by_default_and_chinese_on_request(
        env: Env, api: TestClient) -> None:
    account = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    body = {"account": account["id"], "stage": "lost", "amount": "12abc",
            "close_date": "tomorrow"}
    english = api.post("/api/opportunity", json=body)
    assert english.status_code == 422 and english.headers["content-language"] == "en"
    fields = _error(english)["fields"]
    # field checks and the validation rule answer together, the rule beside its field
    assert fields == {"name": "is required", "amount": "must be a number",
                      "close_date": "must be a date like 2025-03-31",
                      "lost_reason": "A lost opportunity needs a lost reason"}
    chinese = api.post("/api/opportunity", json=body, headers=ZH)
    assert chinese.status_code == 422 and chinese.headers["content-language"] == "zh-CN"
    error = _error(chinese)
    assert error["code"] == "invalid"  # codes and field keys do not change with the language
    assert error["fields"] == {"name": "必填", "amount": "必须是数字",
                               "close_date": "必须是日期\uff0c例如 2025-03-31",
                               "lost_reason": "丢单必须填写丢单原因"}
    assert _chinese(str(error["message"])), error["message"]
    assert env.records.list_records(env.admin.actor(), "opportunity", ListQuery()).total == 0


def test_every_kind_of_api_error_speaks_chinese(env: Env, api: TestClient) -> None:
    sales = user(env, "mkt", "marketing")
    mkt = env.client(env.users.new_token(sales.name))
    answers = {
        "not found": api.get("/api/opportunity/987654", headers=ZH),
        "unknown entity": api.get("/api/nothing_here", headers=ZH),
        "list parameters": api.get("/api/opportunity?sort=nope&page_size=0", headers=ZH),
        "filter formula": api.get("/api/opportunity", params={"filter": 'amount > "x"'},
                                  headers=ZH),
        "formula syntax": api.get("/api/opportunity", params={"filter": "amount >"},
                                  headers=ZH),
        "forbidden": mkt.post("/api/opportunity", json={"name": "x"}, headers=ZH),
        "bad json": api.post("/api/opportunity", content=b"{", headers={
            **ZH, "Content-Type": "application/json"}),
        "stale version": None,
    }
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    env.records.update(env.admin.actor(), "account", acme["id"], {"city": "Ulm"}, 1)
    answers["stale version"] = api.patch(f"/api/account/{acme['id']}",
                                         json={"version": 1, "city": "Bonn"}, headers=ZH)
    for what, answer in answers.items():
        assert answer is not None and 400 <= answer.status_code < 500, what
        error = _error(answer)
        assert _chinese(str(error["message"])), (what, error)
        for key, text in dict(error["fields"]).items():  # type: ignore[call-overload]
            if key == "version" and text == "stale":
                continue  # a code for clients, not text
            assert _chinese(str(text)), (what, key, text)
    # the formula error keeps its position in front of the Chinese text
    fields = _error(answers["filter formula"])["fields"]
    assert re.match(r"1:\d+: ", str(dict(fields)["filter"]))  # type: ignore[call-overload]


def test_pages_show_every_problem_in_the_users_language(env: Env, pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    env.users.set_locale(env.admin.id, "zh-CN")
    sign_in(pages)
    token = csrf_of(pages.get("/e/opportunity/new").text)
    answer = pages.post("/e/opportunity/new", data={
        "csrf_token": token, "name": "", "account": str(acme["id"]), "amount": "12abc",
        "stage": "lost", "lost_reason": ""})
    assert answer.status_code == 422
    page = answer.text
    assert '<p class="error" id="err-name">必填</p>' in page
    assert '<p class="error" id="err-amount">必须是数字</p>' in page
    # the rule names lost_reason, so its message stands beside that field, not on top
    assert '<p class="error" id="err-lost_reason">丢单必须填写丢单原因</p>' in page
    for english in ("is required", "must be a number", "A lost opportunity"):
        assert english not in page

    missing = pages.get("/e/opportunity/987654")
    assert missing.status_code == 404 and "找不到 opportunity 987654" in missing.text
    sign_in_as_rep = env.client()
    sign_in_as_rep.headers["Accept"] = "text/html"
    rep = user(env, "rep_zh", "sales_rep")
    env.users.set_locale(rep.user_id, "zh-CN")
    assert sign_in(sign_in_as_rep, "rep_zh", "a-password").status_code == 303
    refused = sign_in_as_rep.get("/e/department/new")
    assert refused.status_code == 403 and _CJK.search(refused.text)
    assert "you may not" not in refused.text


def test_history_action_and_timestamp_column_are_separate_messages(
        env: Env, pages: TestClient) -> None:
    zh = translations()["zh-CN"].gettext
    assert zh(ACTIONS["create"]) == "创建"
    assert zh(ENGINE_LIST_COLUMNS["created_at"][2]) == "创建时间"
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    env.users.set_locale(env.admin.id, "zh-CN")
    sign_in(pages)
    history = pages.get(f"/e/account/{acme['id']}").text.split('id="history"', 1)[1]
    assert re.search(r"<td>创建</td>", history)

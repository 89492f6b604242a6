"""Server messages reach the reader in their language (engine/web/errors.py, ui.py): the JSON
API in English unless Accept-Language asks for Chinese, pages in the user's language; every
problem of a write comes back at once, a rule's message beside its field. Both databases."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.metadata.model import Model
from engine.runtime.errors import STALE_VERSION
from engine.runtime.records import Records
from engine.runtime.records.query import ListQuery
from engine.web.i18n import read_catalog, translations
from engine.web.pages.records import ACTIONS
from engine.web.pages.table import ENGINE_LIST_COLUMNS
from tests.access_helpers import add_fields, user
from tests.conftest import Env, EnvFactory
from tests.web_helpers import csrf_of, sign_in

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
JSON = {"Content-Type": "application/json"}
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


# -- every error path, structured: ids and parameters beside the rendered text ------------

_EN = translations()["en"].gettext
_ZH = translations()["zh-CN"].gettext
_ZH_CATALOG = read_catalog("zh-CN")


def _rules_config(config_dir: Path) -> Path:
    """The shipped config, with a percent and a decimal field on opportunity and three more
    rules: one about the one field it reads, one about two fields (reported as `_record`),
    one reported under a field it does not read (so that field can have two problems)."""
    add_fields(config_dir, "opportunity",
               "discount: {type: percent, label: {en: Discount, zh: 折扣}}",
               "ratio: {type: decimal, label: {en: Ratio, zh: 比率}}")
    path = config_dir / "entities" / "opportunity.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\nvalidations:\n", """
validations:
  - rule: 'OR(ISBLANK(discount), discount <= 50)'
    message: {en: A discount is at most 50 percent, zh: 折扣最多百分之五十}
  - rule: 'OR(ISBLANK(ratio), ISBLANK(amount), ratio <= amount)'
    message: {en: The ratio may not exceed the amount, zh: 比率不能超过金额}
  - rule: 'OR(ISBLANK(amount), amount < 1000000)'
    message: {en: A deal this big names its competitor, zh: 这么大的单子要写明竞争对手}
    field: competitor
""", 1), encoding="utf-8")
    return config_dir


def _render(part: dict[str, Any], gettext: Callable[[str], str]) -> str:
    """A structured message rendered as a client would: its id from the catalog, filled with
    its parameters (nested messages rendered the same way)."""
    params = {k: _render(v, gettext) if isinstance(v, dict) else v
              for k, v in part["params"].items()}
    template = gettext(part["message_id"])
    return template % params if params else template


def _ids(part: dict[str, Any]) -> list[str]:
    """Every message id of a structured message, its nested parameters' too."""
    return [part["message_id"], *(i for v in part["params"].values() if isinstance(v, dict)
                                  for i in _ids(v))]


def _translated(message_id: str) -> bool:
    entry = _ZH_CATALOG.get(message_id)
    return entry is not None and bool(entry.string) and entry.string != message_id


def _check_rendered(error: dict[str, Any], gettext: Callable[[str], str], model: Model,
                    language: str) -> None:
    """`message` and each `fields` text are what their structured form renders to."""
    assert error["message"] == _render(error, gettext)
    assert set(error["field_messages"]) == set(error["fields"])
    for key, found in error["field_messages"].items():
        texts = []
        for part in found:
            if "rule" in part:  # a validation rule: its message is in config, per language
                entity, _, index = str(part["rule"]).split(".")
                rule = model.entity(entity).validations[int(index)]
                assert part["message_id"] == rule.message.get("en")
                texts.append(rule.message.get(language))
            elif part["message_id"] is None:  # a code for clients, shown as it is
                assert (key, error["fields"][key]) == ("version", STALE_VERSION)
                texts.append(error["fields"][key])
            else:
                texts.append(_render(part, gettext))
        assert error["fields"][key] == "; ".join(texts), (key, found)


def test_every_error_path_is_rendered_from_the_catalog(
        make_env: EnvFactory, config_dir: Path) -> None:
    """Bad filters, unknown fields, invalid values of every field type, rule failures, a
    stale version, forbidden, not found, list and formula bounds, HTTP errors: the Chinese
    answer is rendered from the catalog (each text from its id and parameters), differs from
    the English one wherever a translation exists, and the ids, parameters, codes and rule
    ids are the same in both languages."""
    env = make_env(_rules_config(config_dir))
    api = env.client(env.users.new_token("admin"))
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    env.records.update(env.admin.actor(), "account", acme["id"], {"city": "Ulm"}, 1)
    deal = env.records.create(env.admin.actor(), "opportunity",
                              {"name": "Deal", "account": acme["id"]})
    env.records.create(env.admin.actor(), "product", {"name": "Pump", "code": "P-1"})
    mkt = env.client(env.users.new_token(user(env, "mkt_zh", "marketing").name))
    rep = env.client(env.users.new_token(user(env, "rep_zh", "sales_rep").name))
    anonymous = env.client()
    sent: dict[str, tuple[TestClient, str, str, dict[str, Any]]] = {
        "unknown route": (api, "GET", "/api/opportunity/1/nowhere/else", {}),
        "method": (api, "PUT", f"/api/opportunity/{deal['id']}", {"json": {}}),
        "no token": (anonymous, "GET", "/api/opportunity", {}),
        "bad token": (env.client("crm_nope"), "GET", "/api/opportunity", {}),
        "unknown entity": (api, "GET", "/api/nothing_here", {}),
        "not found": (api, "GET", "/api/opportunity/987654", {}),
        "not an id": (api, "GET", "/api/opportunity/abc", {}),
        "unknown action": (api, "POST", f"/api/account/{acme['id']}/actions/explode", {}),
        "forbidden create": (mkt, "POST", "/api/opportunity", {"json": {"name": "x"}}),
        "forbidden page size": (rep, "GET", "/api/account?page_size=300", {}),
        "page size": (api, "GET", "/api/opportunity?page_size=501", {}),
        "page": (api, "GET", "/api/opportunity?page=0&sort=nope", {}),
        "repeated parameter": (api, "GET", "/api/opportunity?page=1&page=2", {}),
        "field filters": (api, "GET", "/api/opportunity?amount__gt=abc&nope=1&stage__zz=1"
                          "&close_date__in=&deleted=maybe", {}),
        "cursor": (api, "GET", "/api/opportunity?cursor=zzz", {}),
        "filter unknown field": (api, "GET", "/api/opportunity", {"params": {
            "filter": "amout > 5"}}),
        "filter syntax": (api, "GET", "/api/opportunity", {"params": {"filter": "amount >"}}),
        "filter types": (api, "GET", "/api/opportunity", {"params": {"filter": 'amount > "x"'}}),
        "filter not a condition": (api, "GET", "/api/opportunity", {"params": {
            "filter": "amount"}}),
        "filter function": (api, "GET", "/api/opportunity", {"params": {"filter": "FOO(1)"}}),
        "filter too long": (api, "GET", "/api/opportunity", {"params": {
            "filter": "1" + " + 1" * 1200 + " > 0"}}),
        "filter too deep": (api, "GET", "/api/opportunity", {"params": {
            "filter": "(" * 100 + "1" + ")" * 100 + " > 0"}}),
        "bad json": (api, "POST", "/api/account", {"content": b"{", "headers": JSON}),
        "not an object": (api, "POST", "/api/account", {"json": [1]}),
        "key twice": (api, "POST", "/api/account", {
            "content": b'{"name": "a", "name": "b"}', "headers": JSON}),
        "not json": (api, "POST", "/api/account", {"content": b"name=x", "headers": {
            "Content-Type": "text/plain"}}),
        "too large": (api, "POST", "/api/account", {
            "content": b" " * (2 * 1024 * 1024), "headers": JSON}),
        "required and unknown": (api, "POST", "/api/account", {"json": {"nope": 1}}),
        "account values": (api, "POST", "/api/account", {"json": {
            "name": "x" * 300, "employees": "1.5", "annual_revenue": "abc",
            "credit_limit": "1e999", "website": "not a url", "email": "nope",
            "phone": "abc!!", "industry": "zzz", "parent": 999999, "tier": 5,
            "address": "x" * 100_001, "won_amount": 3, "owner_id": 1}}),
        "contact values": (api, "POST", "/api/contact", {"json": {
            "full_name": "x", "account": "abc", "is_primary": "maybe", "birthday": "13/13",
            "influence": 10**20}}),
        "lead values": (api, "POST", "/api/lead", {"json": {
            "company": "x", "interests": ["zz"], "received_at": "yesterday",
            "estimated_value": -1}}),
        "activity values": (api, "POST", "/api/activity", {"json": {
            "subject": "x", "kind": "call", "due_at": "2024-13-01T00:00",
            "duration_minutes": "ten"}}),
        "department values": (api, "POST", "/api/department", {"json": {
            "name": "x", "manager": "nobody", "active": 3, "parent": -4}}),
        "percent and decimal": (api, "POST", "/api/opportunity", {"json": {
            "name": "x", "account": acme["id"], "discount": "half", "ratio": "1,5",
            "weighted": "5",
            "stage": "nowhere", "close_date": "2024-02-30"}}),
        "rules": (api, "POST", "/api/opportunity", {"json": {
            "name": "x", "account": acme["id"], "stage": "lost", "discount": 80,
            "amount": "10", "ratio": "20"}}),
        "rule waits for its input": (api, "POST", "/api/opportunity", {"json": {
            "name": "x", "account": acme["id"], "stage": "lost", "lost_reason": "weather"}}),
        "value check and rule": (api, "POST", "/api/opportunity", {"json": {
            "name": "x", "account": acme["id"], "amount": "2000000", "competitor": "x" * 200}}),
        "unique": (api, "POST", "/api/product", {"json": {"name": "Pump", "code": "P-1"}}),
        "stale version": (api, "PATCH", f"/api/account/{acme['id']}", {"json": {
            "version": 1, "city": "Bonn"}}),
        "no version": (api, "PATCH", f"/api/account/{acme['id']}", {"json": {"city": "B"}}),
        "version not a number": (api, "PATCH", f"/api/account/{acme['id']}", {"json": {
            "version": "x", "city": "B"}}),
        "team": (api, "POST", f"/api/opportunity/{deal['id']}/team", {"json": {
            "user": "nobody_xx", "access": "own"}}),
        "assign": (api, "POST", f"/api/opportunity/{deal['id']}/actions/assign", {"json": {
            "owner": "nobody_xx"}}),
        "explain": (api, "GET", f"/api/opportunity/{deal['id']}/explain/name", {}),
    }
    seen_rules: set[str] = set()
    for what, (client, method, path, kwargs) in sent.items():
        headers = kwargs.pop("headers", {})
        answers = {language: client.request(method, path, **kwargs, headers={
            **headers, "Accept-Language": language}) for language in ("en", "zh-CN")}
        en, zh = (_error(answers[lang]) for lang in ("en", "zh-CN"))
        status = answers["en"].status_code
        assert 400 <= status < 500 and answers["zh-CN"].status_code == status, (what, en)
        assert answers["zh-CN"].headers["content-language"] == "zh-CN"
        # what a client acts on is the same in every language
        assert (zh["code"], zh["message_id"], list(zh["fields"])) == \
            (en["code"], en["message_id"], list(en["fields"])), what
        assert [[p["message_id"] for p in v] for v in zh["field_messages"].values()] == \
            [[p["message_id"] for p in v] for v in en["field_messages"].values()], what
        _check_rendered(en, _EN, env.model, "en")
        _check_rendered(zh, _ZH, env.model, "zh-CN")
        # every id has a translation, so no English id reaches a Chinese reader
        structured = [en, *(p for v in en["field_messages"].values() for p in v
                            if p["message_id"] is not None and "rule" not in p)]
        untranslated = [i for s in structured for i in _ids(s) if not _translated(i)
                        and re.search(r"[a-z]{2}", re.sub(r"%\(\w+\)s", "", i))]
        assert not untranslated, (what, untranslated)
        assert zh["message"] != en["message"], what
        for key, text in zh["fields"].items():
            if key != "version" or text != STALE_VERSION:
                assert text != en["fields"][key], (what, key, text)
        seen_rules |= {str(p["rule"]) for v in zh["field_messages"].values() for p in v
                       if "rule" in p}
    # the four rules of opportunity answered, each under its key and with its id
    assert seen_rules == {f"opportunity.validations.{n}" for n in range(4)}
    rules = _error(api.post("/api/opportunity", json=sent["rules"][3]["json"], headers=ZH))
    assert rules["fields"]["lost_reason"] == "丢单必须填写丢单原因"
    assert rules["fields"]["discount"] == "折扣最多百分之五十"
    assert rules["fields"]["_record"] == "比率不能超过金额"
    assert rules["field_messages"]["discount"] == [{
        "message_id": "A discount is at most 50 percent", "params": {},
        "rule": "opportunity.validations.0"}]
    # a rule whose input was refused waits for a fix: one problem, the value check's
    waits = _error(api.post("/api/opportunity", json=sent["rule waits for its input"][3][
        "json"], headers=ZH))["field_messages"]
    assert waits == {"lost_reason": [{"message_id": "must be one of: %(options)s", "params": {
        "options": "price, product, relationship, timing, other"}}]}
    # two problems of one field: one text in `fields`, two entries in `field_messages`
    both = _error(api.post("/api/opportunity", json=sent["value check and rule"][3]["json"],
                           headers=ZH))
    assert both["fields"] == {
        "competitor": "最多 120 个字符\uff08实际 200 个\uff09; 这么大的单子要写明竞争对手"}
    assert both["field_messages"]["competitor"] == [
        {"message_id": "must be at most %(limit)s characters (got %(got)s)",
         "params": {"limit": 120, "got": 200}},
        {"message_id": "A deal this big names its competitor", "params": {},
         "rule": "opportunity.validations.2"}]
    assert env.records.list_records(env.admin.actor(), "opportunity", ListQuery()).total == 1


def test_http_errors_are_messages_too(env: Env, api: TestClient) -> None:
    """The router's 404 and 405 speak the reader's language (English as Starlette wrote
    it) and name what was asked in their parameters."""
    missing = api.get("/api/account/1/nowhere/else", headers=ZH)
    assert missing.status_code == 404
    assert _error(missing) == {
        "code": "not_found", "message": "这个地址没有内容", "fields": {},
        "message_id": "Not Found", "params": {"path": "/api/account/1/nowhere/else"},
        "field_messages": {}}
    refused = api.put("/api/account/1", json={})
    error = _error(refused)
    assert refused.status_code == 405 and error["code"] == "method_not_allowed"
    assert error["message"] == error["message_id"] == "Method Not Allowed"  # as before
    assert error["params"]["method"] == "PUT"
    assert error["params"]["path"] == "/api/account/1"
    assert set(error["params"]["allowed"].split(", ")) == set(
        refused.headers["allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}


def test_a_list_page_shows_a_bad_filter_in_the_users_language(
        env: Env, pages: TestClient) -> None:
    env.users.set_locale(env.admin.id, "zh-CN")
    sign_in(pages)
    page = pages.get("/e/opportunity", params={"filter": "amout > 5"})
    assert page.status_code == 400
    text = html.unescape(page.text)
    assert "1:1: 未知字段 'amout'" in text and "'amount'" in text
    assert "unknown field" not in text and "did you mean" not in text


def test_an_unexpected_error_is_a_message_and_is_logged(
        env: Env, api: TestClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(Records, "get", broken)
    with caplog.at_level(logging.ERROR, logger="engine.web"):
        answer = api.get("/api/account/1", headers=ZH)
    assert answer.status_code == 500 and answer.headers["content-language"] == "zh-CN"
    assert _error(answer) == {
        "code": "internal", "message": "内部错误\uff1b已记录到日志", "fields": {},
        "message_id": "internal error; it has been logged", "params": {},
        "field_messages": {}}
    assert "a bug of ours" not in answer.text
    assert any("unexpected error on GET /api/account/1" in r.getMessage()
               for r in caplog.records)
    english = _error(api.get("/api/account/1"))
    assert english["message"] == "internal error; it has been logged"

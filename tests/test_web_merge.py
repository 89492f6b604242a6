"""Merge over HTTP: POST /api/<entity>/<id>/actions/merge (engine/web/merging.py) and the
merge page (engine/web/pages/merging.py): pick, compare, merge with CSRF, undo by restore."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Invalid, NotFound
from engine.web.merging import merge_body
from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.test_web_forms import client_for
from tests.web_helpers import csrf_of


def _pair(env: Env) -> tuple[int, int, int]:
    r = env.records
    s = r.create(SYSTEM, "account", {"name": "Huawei Co., Ltd.", "city": "Shenzhen"})["id"]
    l_ = r.create(SYSTEM, "account", {"name": "华为技术有限公司", "city": "深圳",
                                      "phone": "0755-1234"})["id"]
    opp = r.create(SYSTEM, "opportunity", {"name": "5G", "account": l_, "amount": "10",
                                           "stage": "won"})["id"]
    return s, l_, opp


def _version(env: Env, rid: int) -> int:
    return int(env.records.get(SYSTEM, "account", rid)["version"])


def _binned(env: Env, rid: int) -> bool:
    try:
        env.records.get(SYSTEM, "account", rid)
    except NotFound:
        return True
    return False


def test_api_merge_and_undo_by_restore(env: Env, api: TestClient) -> None:
    s, l_, opp = _pair(env)
    body: dict[str, Any] = {"loser": l_, "versions": {str(s): _version(env, s),
                                                      str(l_): _version(env, l_)},
                            "take": {"phone": "loser", "name": "loser"}}
    answer = api.post(f"/api/account/{s}/actions/merge", json=body)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["record"]["name"] == "华为技术有限公司"
    assert out["record"]["phone"] == "0755-1234"
    assert out["record"]["won_amount"] == "10.00"
    assert out["moved"] == {"opportunity": 1} and out["loser"] == l_
    assert env.records.get(SYSTEM, "opportunity", opp)["account"] == s
    history = api.get(f"/api/account/{l_}/history").json()["items"]
    assert {"into": s, "merge": out["merge"]} in [h["new"] for h in history
                                                  if h["action"] == "merge"]
    # the same request again: the loser is in the recycle bin now
    assert api.post(f"/api/account/{s}/actions/merge", json=body).status_code == 404
    restored = api.post(f"/api/account/{l_}/actions/restore")
    assert restored.status_code == 200
    assert restored.json()["name"] == "华为技术有限公司"
    assert env.records.get(SYSTEM, "account", s)["name"] == "Huawei Co., Ltd."
    assert env.records.get(SYSTEM, "opportunity", opp)["account"] == l_


def test_api_merge_refusals(env: Env, api: TestClient) -> None:
    s, l_, _ = _pair(env)
    versions = {str(s): _version(env, s), str(l_): _version(env, l_)}
    url = f"/api/account/{s}/actions/merge"
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({}, 422, "loser"),
        ({"loser": l_}, 422, "versions"),
        ({"loser": l_, "versions": {"x": 1}}, 422, "versions"),
        ({"loser": l_, "versions": versions, "take": {"name": "both"}}, 422, "take"),
        ({"loser": l_, "versions": versions, "take": ["name"]}, 422, "take"),
        ({"loser": l_, "versions": versions, "bogus": 1}, 422, "bogus"),
        ({"loser": s, "versions": versions}, 422, "loser"),
        ({"loser": l_, "versions": versions, "take": {"won_amount": "loser"}}, 422,
         "won_amount"),
        ({"loser": l_, "versions": {**versions, str(l_): 99}}, 409, "version"),
    ]
    for body, status, key in cases:
        answer = api.post(url, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert key in answer.json()["error"].get("fields", {}), (body, answer.json())
    assert api.post(f"/api/account/{s}/actions/merge", content=b"[1]",
                    headers={"Content-Type": "application/json"}).status_code == 400
    assert api.post("/api/account/999999/actions/merge",
                    json={"loser": l_, "versions": {**versions, "999999": 1}}
                    ).status_code == 404
    assert not _binned(env, l_)


def test_api_merge_needs_update_and_delete(env: Env) -> None:
    d = departments(env)
    user(env, "rep", "sales_rep", department=d["BJ"])
    rep = env.client(env.users.new_token("rep"))
    s = place(env, "account", {"name": "one"}, department=d["BJ"])["id"]
    l_ = place(env, "account", {"name": "two"}, department=d["BJ"])["id"]
    answer = rep.post(f"/api/account/{s}/actions/merge", json={
        "loser": l_, "versions": {str(s): _version(env, s), str(l_): _version(env, l_)}})
    assert answer.status_code == 403
    assert not _binned(env, l_)
    paths = rep.get("/openapi.json").json()["paths"]
    assert "/api/account/{record_id}/actions/merge" not in paths


def test_the_merge_page_flow(env: Env) -> None:
    s, l_, opp = _pair(env)
    client = client_for(env, "admin", "admin-password")
    detail = client.get(f"/e/account/{s}")
    assert f'href="/e/account/{s}/merge"' in detail.text
    # the picker offers records of the same entity
    picked = client.get("/e/account/pick/_merge", params={"q": "华为"}).text
    assert re.findall(r'<span class="pick-title">([^<]*)</span>', picked) == ["华为技术有限公司"]
    chosen = client.get("/e/account/pick/_merge/choose", params={"id": l_})
    assert chosen.status_code == 200 and f'value="{l_}"' in chosen.text
    # the comparison: a radio on each differing field, and what moves
    page = client.get(f"/e/account/{s}/merge", params={"other": l_})
    assert page.status_code == 200
    assert 'name="take-phone" value="loser"' in page.text
    assert 'name="take-name" value="loser"' in page.text
    assert 'name="take-won_amount"' not in page.text  # a rollup is the engine's
    assert re.search(r'id="merge-moving">\s*<li>Opportunities: 1</li>', page.text)
    token = csrf_of(page.text)
    form = {"csrf_token": token, "version": str(_version(env, s)), "loser": str(l_),
            "loser_version": str(_version(env, l_)), "take-phone": "loser",
            "take-name": "survivor"}
    # without the CSRF token: refused, nothing merged
    refused = client.post(f"/e/account/{s}/merge",
                          data={k: v for k, v in form.items() if k != "csrf_token"})
    assert refused.status_code == 403 and not _binned(env, l_)
    done = client.post(f"/e/account/{s}/merge", data=form, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/e/account/{s}?done=merged&loser={l_}"
    landed = client.get(done.headers["location"])
    assert "The records were merged" in landed.text
    assert f'action="/e/account/{l_}/restore"' in landed.text
    assert env.records.get(SYSTEM, "account", s)["phone"] == "0755-1234"
    assert env.records.get(SYSTEM, "opportunity", opp)["account"] == s
    assert _binned(env, l_)
    # the history on the page shows the merge
    assert "Merged" in landed.text and f"merged #{l_} into this record" in landed.text
    # undo: the restore button of the notice
    assert 'name="then" value="unmerged"' in landed.text
    undone = client.post(f"/e/account/{l_}/restore", data={"csrf_token": csrf_of(landed.text),
                                                          "then": "unmerged"},
                         follow_redirects=False)
    assert undone.status_code == 303
    assert undone.headers["location"] == f"/e/account/{l_}?done=unmerged"
    assert "The merge was undone" in client.get(undone.headers["location"]).text
    assert not _binned(env, l_)
    assert env.records.get(SYSTEM, "account", s)["phone"] is None
    assert env.records.get(SYSTEM, "opportunity", opp)["account"] == l_


def test_the_merge_page_stale_and_in_chinese(env: Env) -> None:
    s, l_, _ = _pair(env)
    client = client_for(env, "admin", "admin-password")
    env.users.set_locale(env.admin.id, "zh-CN")
    page = client.get(f"/e/account/{s}/merge", params={"other": l_})
    assert "要合并到本记录的记录" in page.text and "将转到本记录的记录" in page.text
    env.users.set_locale(env.admin.id, "en")
    form = {"csrf_token": csrf_of(page.text), "version": str(_version(env, s)),
            "loser": str(l_), "loser_version": str(_version(env, l_))}
    env.records.update(SYSTEM, "account", l_, {"city": "广州"}, _version(env, l_))
    stale = client.post(f"/e/account/{s}/merge", data=form)
    assert stale.status_code == 409
    assert "One of the records changed after you compared them" in stale.text
    assert not _binned(env, l_)


def test_the_merge_page_is_for_those_who_may(env: Env) -> None:
    d = departments(env)
    user(env, "rep", "sales_rep", department=d["BJ"])
    s = place(env, "account", {"name": "one"}, department=d["BJ"])["id"]
    rep = client_for(env, "rep")
    assert f"/e/account/{s}/merge" not in rep.get(f"/e/account/{s}").text
    assert rep.get(f"/e/account/{s}/merge").status_code == 403


def test_possible_duplicates_on_the_record_page_lead_to_the_merge(env: Env) -> None:
    r = env.records
    s = r.create(SYSTEM, "account", {"name": "Sany Heavy", "phone": "+86 731 8888 1234"})["id"]
    other = r.create(SYSTEM, "account", {"name": "三一重工股份有限公司",
                                         "phone": "0731-88881234"})["id"]
    unrelated = r.create(SYSTEM, "account", {"name": "XCMG", "phone": "0516-1"})["id"]
    client = client_for(env, "admin", "admin-password")
    page = client.get(f"/e/account/{s}").text
    section = page.split('id="possible-duplicates"', 1)[1].split("</section>", 1)[0]
    assert f'href="/e/account/{s}/merge?other={other}"' in section
    assert f"/e/account/{unrelated}" not in section
    merging = client.get(f"/e/account/{s}/merge").text
    assert f'href="/e/account/{s}/merge?other={other}"' in merging
    # an entity without duplicate rules shows none
    opp = r.create(SYSTEM, "opportunity", {"name": "x", "account": s})["id"]
    assert 'id="possible-duplicates"' not in client.get(f"/e/opportunity/{opp}").text


def test_the_binned_loser_says_restoring_undoes_the_merge(env: Env, api: TestClient) -> None:
    s, l_, _ = _pair(env)
    api.post(f"/api/account/{s}/actions/merge", json={
        "loser": l_, "versions": {str(s): _version(env, s), str(l_): _version(env, l_)}})
    client = client_for(env, "admin", "admin-password")
    page = client.get(f"/e/account/{l_}")
    assert page.status_code == 410
    assert "It was merged into “Huawei Co., Ltd.”; restoring it undoes the merge." in page.text
    assert f'href="/e/account/{s}"' in page.text


def test_timelines_show_the_merge(env: Env, api: TestClient) -> None:
    s, l_, _ = _pair(env)
    api.post(f"/api/account/{s}/actions/merge", json={
        "loser": l_, "versions": {str(s): _version(env, s), str(l_): _version(env, l_)}})
    answer = api.get(f"/api/account/{s}/timeline")
    assert answer.status_code == 200, answer.text
    assert "merge" in [i.get("action") for i in answer.json()["items"]]
    client = client_for(env, "admin", "admin-password")
    page = client.get(f"/e/account/{s}/timeline")
    assert page.status_code == 200 and "Merged" in page.text
    api.post(f"/api/account/{l_}/actions/restore")
    assert client.get(f"/e/account/{s}").status_code == 200
    assert "Merge undone" in client.get(f"/e/account/{s}/timeline").text


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                     | st.floats(allow_nan=False),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["loser", "versions", "take", "x"]), _JSON,
                       max_size=4))
def test_any_body_is_read_or_refused_with_422(body: dict[str, Any]) -> None:
    try:
        loser, versions, take = merge_body(body)
    except Invalid as exc:
        assert exc.fields
        return
    assert loser > 0 and versions and all(k > 0 and v > 0 for k, v in versions.items())
    assert set(take.values()) <= {"survivor", "loser"}


def test_a_retried_merge_with_its_idempotency_key_gets_the_first_answer(
        env: Env, api: TestClient) -> None:
    s, l_, _ = _pair(env)
    body = {"loser": l_, "versions": {str(s): _version(env, s), str(l_): _version(env, l_)}}
    headers = {"Idempotency-Key": "merge-huawei-1"}
    first = api.post(f"/api/account/{s}/actions/merge", json=body, headers=headers)
    again = api.post(f"/api/account/{s}/actions/merge", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"

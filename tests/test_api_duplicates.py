"""Duplicates in the JSON API (engine/web/duplicates.py, engine/runtime/imports/guard.py):
409 with the candidates, ?allow_duplicate=1, GET /api/<entity>/duplicates — within access."""

from __future__ import annotations

from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from tests.access_helpers import place, user
from tests.conftest import Env


def _count(env: Env, entity: str) -> int:
    table = env.records.schema.table(entity)
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _audits(env: Env) -> int:
    table = env.records.schema.table("crm_audit")
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_duplicate_create_is_a_409_with_its_candidates(api: TestClient, env: Env) -> None:
    first = api.post("/api/account", json={"name": "上海电气集团股份有限公司", "city": "上海",
                                           "phone": "021-62345678"})
    assert first.status_code == 201, first.text
    audits = _audits(env)
    r = api.post("/api/account", json={"name": "上海电气", "city": "上海"})
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "duplicate"
    assert error["candidates"] == [{"id": first.json()["id"], "title": "上海电气集团股份有限公司",
                                    "matched": ["name", "city"]}]
    assert "上海电气集团股份有限公司" in error["message"] and "allow_duplicate" in error["message"]
    assert _count(env, "account") == 1 and _audits(env) == audits  # nothing stayed
    r = api.post("/api/account", json={"name": "Shanghai Electric", "phone": "+86 21 6234 5678"})
    assert r.status_code == 409
    assert r.json()["error"]["candidates"][0]["matched"] == ["phone"]
    zh = api.post("/api/account", json={"name": "上海电气", "city": "上海"},
                  headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 409 and "可能已存在" in zh.json()["error"]["message"]


def test_allow_duplicate_creates_it_anyway(api: TestClient, env: Env) -> None:
    api.post("/api/contact", json={"full_name": "李伟", "email": "li.wei@acme.cn",
                                   "account": api.post("/api/account", json={
                                       "name": "Acme"}).json()["id"]})
    account = api.get("/api/account").json()["items"][0]["id"]
    body = {"full_name": "Li Wei", "email": "LI.WEI@acme.cn", "account": account}
    assert api.post("/api/contact", json=body).status_code == 409
    assert api.post("/api/contact?allow_duplicate=1", json=body).status_code == 201
    assert api.post("/api/contact?allow_duplicate=true", json=body).status_code == 201
    assert api.post("/api/contact?allow_duplicate=0", json=body).status_code == 409
    assert api.post("/api/contact?allow_duplicate=perhaps", json=body).status_code == 400
    assert _count(env, "contact") == 3


def test_an_invalid_record_gets_its_422_first(api: TestClient) -> None:
    api.post("/api/lead", json={"company": "Acme", "email": "sales@acme.com"})
    r = api.post("/api/lead", json={"company": "Other", "email": "SALES@acme.com",
                                    "estimated_value": "-5"})
    assert r.status_code == 422, r.text


def test_entities_without_rules_create_as_before(api: TestClient) -> None:
    for _ in range(2):
        assert api.post("/api/product_line", json={"name": "Pumps"}).status_code in (201, 422)


def test_a_rep_is_never_told_of_a_record_they_may_not_read(env: Env) -> None:
    ann = user(env, "ann", "partner")
    bob = user(env, "bob", "partner")
    place(env, "account", {"name": "Acme GmbH", "city": "Bonn", "phone": "0228 1234"},
          owner=bob)
    client = env.client(env.users.new_token("ann"))
    r = client.post("/api/account", json={"name": "ACME AG", "city": "Bonn",
                                          "phone": "+49 228 1234"})
    assert r.status_code == 201, r.text  # bob's account is not hers to see: no 409, no hint
    assert client.get("/api/account/duplicates", params={"name": "Acme", "city": "Bonn"}
                      ).json() == {"items": [{"id": r.json()["id"], "title": "ACME AG",
                                              "matched": ["name", "city"]}]}
    assert ann.id != bob.id


def test_asking_first(api: TestClient, env: Env) -> None:
    a = env.records.create(SYSTEM, "account", {"name": "Acme Co., Ltd.", "city": "Hamburg",
                                               "phone": "040 1234 5678"})
    r = api.get("/api/account/duplicates", params={"name": "ACME", "city": "hamburg"})
    assert r.status_code == 200
    assert r.json() == {"items": [{"id": a["id"], "title": "Acme Co., Ltd.",
                                   "matched": ["name", "city"]}]}
    assert api.get("/api/account/duplicates", params={"phone": "040-12345678"}).json()[
        "items"][0]["matched"] == ["phone"]
    assert api.get("/api/account/duplicates", params={"name": "Other", "city": "Hamburg"}
                   ).json() == {"items": []}
    bad = api.get("/api/account/duplicates", params={"industry": "energy"})
    assert bad.status_code == 400 and "industry" in bad.json()["error"]["fields"]
    assert api.get("/api/account/duplicates").status_code == 400
    assert api.get("/api/product/duplicates", params={"name": "x"}).status_code == 400
    assert api.get("/api/nothing/duplicates").status_code == 404

"""POST /api/<entity>/bulk (engine/web/bulk_api.py, engine/runtime/imports/upsert.py) and
reference values given by external id, on both databases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from tests.access_helpers import departments, place, user
from tests.conftest import Env, EnvFactory


def count(env: Env, entity: str) -> int:
    t = env.records.schema.table(entity)
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def audit_total(env: Env) -> int:
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(env.records.audit))
                   .scalar_one())


def bulk(api: TestClient, entity: str, items: Any, key: str | None = None,
         **extra: Any) -> Any:
    body: dict[str, Any] = {"items": items, **extra}
    if key is not None:
        body["key"] = key
    return api.post(f"/api/{entity}/bulk", json=body)


def test_creates_many_and_answers_ids_by_index(env: Env, api: TestClient) -> None:
    r = bulk(api, "account", [{"name": f"Firm {i}", "external_id": f"ERP-{i}"}
                              for i in range(5)])
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [x["index"] for x in items] == list(range(5))
    assert {x["action"] for x in items} == {"created"} and {x["version"] for x in items} == {1}
    for i, x in enumerate(items):
        got = api.get(f"/api/account/{x['id']}").json()
        assert got["name"] == f"Firm {i}" and got["external_id"] == f"ERP-{i}"


def test_all_or_nothing_when_the_last_item_is_bad(env: Env, api: TestClient) -> None:
    first = bulk(api, "account", [{"name": "Kept", "external_id": "K-1"}]).json()["items"][0]
    before = (count(env, "account"), audit_total(env))
    items: list[dict[str, Any]] = [{"name": f"New {i}"} for i in range(9)]
    items.insert(0, {"external_id": "K-1", "city": "Hangzhou"})  # an update by key
    items.append({"name": "", "employees": "many"})  # the last one is bad
    r = bulk(api, "account", items, key="external_id")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid" and list(err["items"]) == ["10"]
    assert set(err["items"]["10"]["fields"]) == {"name", "employees"}
    assert err["items"]["10"]["code"] == "invalid"
    assert (count(env, "account"), audit_total(env)) == before
    assert api.get(f"/api/account/{first['id']}").json()["city"] is None


def test_upsert_by_key_updates_and_raises_the_version(env: Env, api: TestClient) -> None:
    made = bulk(api, "account", [{"name": "Acme", "external_id": "ERP-1"}]).json()["items"][0]
    r = bulk(api, "account", [{"external_id": "ERP-1", "city": "Shanghai"},
                              {"external_id": "ERP-2", "name": "Beta"}], key="external_id")
    assert r.status_code == 200, r.text
    up, new = r.json()["items"]
    assert up == {"index": 0, "id": made["id"], "version": 2, "action": "updated"}
    assert new["action"] == "created" and new["version"] == 1
    assert api.get(f"/api/account/{made['id']}").json()["city"] == "Shanghai"
    # a unique name is a key too, compared ignoring case
    r = bulk(api, "account", [{"name": "ACME", "city": "Suzhou"}], key="name")
    assert r.json()["items"][0]["id"] == made["id"], r.text
    # an item with id and version updates that record
    r = bulk(api, "account", [{"id": made["id"], "version": 3, "city": "Ningbo"}])
    assert r.json()["items"][0] == {"index": 0, "id": made["id"], "version": 4,
                                    "action": "updated"}


def test_a_stale_version_is_a_conflict(env: Env, api: TestClient) -> None:
    made = bulk(api, "account", [{"name": "Acme", "external_id": "ERP-1"}]).json()["items"][0]
    api.patch(f"/api/account/{made['id']}", json={"version": 1, "city": "Xi'an"})
    before = audit_total(env)
    r = bulk(api, "account", [{"external_id": "ERP-1", "version": 1, "city": "Wuhan"},
                              {"name": "Other"}], key="external_id")
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["items"]["0"]["code"] == "conflict"
    assert err["items"]["0"]["fields"] == {"version": "stale"}
    r = bulk(api, "account", [{"id": made["id"], "version": 1, "city": "Wuhan"}])
    assert r.status_code == 409
    assert audit_total(env) == before and count(env, "account") == 1
    # a version with a key no record holds: nothing to update
    r = bulk(api, "account", [{"external_id": "ERP-9", "version": 1, "name": "X"}],
             key="external_id")
    assert r.status_code == 422 and "version" in r.json()["error"]["items"]["0"]["fields"]


def test_a_key_twice_in_one_request_is_refused(env: Env, api: TestClient) -> None:
    r = bulk(api, "account", [{"name": "A", "external_id": "E-1"},
                              {"name": "B", "external_id": "e-1 "},
                              {"name": "C", "external_id": "E-1"}], key="external_id")
    assert r.status_code == 422
    assert list(r.json()["error"]["items"]) == ["2"]  # external ids keep their case
    assert count(env, "account") == 0


def test_a_key_that_is_not_a_key_field(env: Env, api: TestClient) -> None:
    r = bulk(api, "account", [{"name": "A"}], key="city")
    assert r.status_code == 422 and "key" in r.json()["error"]["fields"]
    r = bulk(api, "account", [{"name": "A"}], key="nope")
    assert r.status_code == 422 and "key" in r.json()["error"]["fields"]


def test_bounds(env: Env, api: TestClient) -> None:
    r = bulk(api, "account", [{"name": f"F{i}"} for i in range(1001)])
    assert r.status_code == 413 and "1000" in r.json()["error"]["message"].replace(",", "")
    assert count(env, "account") == 0
    big = json.dumps({"items": [{"name": "x" * 100, "description": "y" * 100_000}] * 200})
    r = api.post("/api/account/bulk", content=big,
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    for body in ({"items": {}}, {"items": "x"}, {}, {"items": [], "extra": 1},
                 {"items": [], "key": 3}):
        r = api.post("/api/account/bulk", json=body)
        assert r.status_code == 422, (body, r.text)
    assert bulk(api, "account", []).json() == {"items": []}
    r = bulk(api, "account", [1, "x", None, {"name": "ok"}])
    assert r.status_code == 422 and list(r.json()["error"]["items"]) == ["0", "1", "2"]
    assert api.post("/api/nope/bulk", json={"items": []}).status_code == 404


def test_access(env: Env) -> None:
    deps = departments(env)
    user(env, "rep", "sales_rep", department=deps["BJ"])
    user(env, "boss", "executive", department=deps["BJ"])
    rep = env.client(env.users.new_token("rep"))
    boss = env.client(env.users.new_token("boss"))
    # a role that may not create
    r = bulk(boss, "account", [{"name": "Nope"}])
    assert r.status_code == 403 and count(env, "account") == 0
    # a read-only field is refused
    r = bulk(rep, "account", [{"name": "Mine", "credit_limit": 100}])
    assert r.status_code == 422
    assert "read-only" in r.json()["error"]["items"]["0"]["fields"]["credit_limit"]
    # a record the rep may not see is not found by its key: the create clashes instead,
    # with the message a free value taken by anyone gets
    place(env, "account", {"name": "Hidden Co", "external_id": "H-1"}, department=deps["SH"])
    r = bulk(rep, "account", [{"external_id": "H-1", "name": "Hidden Co 2"}],
             key="external_id")
    assert r.status_code == 422
    assert r.json()["error"]["items"]["0"]["fields"] == {"external_id": "H-1 is already used"}
    r = bulk(rep, "account", [{"name": "Mine", "external_id": "M-1"}])
    assert r.status_code == 200, r.text


def test_hidden_fields_are_unknown(make_env: EnvFactory, config_dir: Path) -> None:
    roles = config_dir / "roles.yaml"
    roles.write_text(roles.read_text(encoding="utf-8").rstrip("\n") + "\n\n  importer:\n"
                     "    label: {en: Importer, zh: 导入员}\n    entities:\n"
                     "      account: all\n      contact: all\n"
                     "    fields:\n      account: {credit_limit: hidden, external_id: hidden}\n",
                     encoding="utf-8")
    env = make_env(config_dir)
    env.users.add("imp", ["importer"], password="a-password")
    imp = env.client(env.users.new_token("imp"))
    env.records.create(SYSTEM, "account", {"name": "Acme", "external_id": "ERP-1"})
    r = bulk(imp, "account", [{"name": "A", "credit_limit": 5}])
    assert r.status_code == 422
    assert r.json()["error"]["items"]["0"]["fields"] == {
        "credit_limit": "unknown field of account"}
    # a hidden field is no key, and no way to name a reference's target either
    r = bulk(imp, "account", [{"name": "A"}], key="external_id")
    assert r.status_code == 422 and r.json()["error"]["fields"] == {
        "key": "unknown field of account"}
    r = bulk(imp, "contact", [{"full_name": "Li", "account": {"external_id": "ERP-1"}}])
    assert r.status_code == 422
    assert "ERP-1" in r.json()["error"]["items"]["0"]["fields"]["account"]
    assert count(env, "contact") == 0


def test_references_by_external_id(env: Env, api: TestClient) -> None:
    acc = bulk(api, "account", [{"name": "Acme", "external_id": "ERP-1"}]).json()["items"][0]
    r = bulk(api, "contact", [{"full_name": "Li Lei", "account": {"external_id": "ERP-1"}},
                              {"full_name": "Han Meimei", "account": {"external_id": "ERP-2"}}])
    assert r.status_code == 422
    assert "ERP-2" in r.json()["error"]["items"]["1"]["fields"]["account"]
    assert "0" not in r.json()["error"]["items"]
    r = bulk(api, "contact", [{"full_name": "Li Lei", "account": {"external_id": "ERP-1"}}])
    assert r.status_code == 200
    cid = r.json()["items"][0]["id"]
    assert api.get(f"/api/contact/{cid}").json()["account"] == acc["id"]
    # single create and update take them too
    r = api.post("/api/contact", json={"full_name": "Wang", "account": {"external_id": "ERP-1"}})
    assert r.status_code == 201 and r.json()["account"] == acc["id"]
    r = api.post("/api/contact", json={"full_name": "Wang", "account": {"external_id": "NO"}})
    assert r.status_code == 422 and "NO" in r.json()["error"]["fields"]["account"]
    r = api.patch(f"/api/contact/{cid}", json={"version": 1, "account": {"external_id": 5}})
    assert r.status_code == 422 and "account" in r.json()["error"]["fields"]


def test_errors_in_chinese(env: Env, api: TestClient) -> None:
    r = api.post("/api/account/bulk", json={"items": [{"name": ""}]},
                 headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 422
    assert r.headers["Content-Language"] == "zh-CN"
    assert "未" in r.json()["error"]["message"] or "条" in r.json()["error"]["message"]


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**64), st.text(max_size=8),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.sampled_from(["id", "external_id", "x"]),
                                    st.one_of(st.integers(), st.text(max_size=4)),
                                    max_size=2))
_items = st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["name", "external_id", "city", "employees", "parent",
                                     "id", "version", "owner_id", "bogus", "tier"]),
                    _values, max_size=5),
    _values), max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=_items, key=st.sampled_from([None, "external_id", "name", "city", "id"]))
def test_random_item_lists_never_break_the_server(env: Env, api: TestClient,
                                                  items: list[Any], key: str | None) -> None:
    r = bulk(api, "account", items, key=key)
    assert r.status_code in (200, 403, 404, 409, 413, 422), r.text
    body = r.json()
    if r.status_code == 200:
        assert [x["index"] for x in body["items"]] == list(range(len(items)))
    else:
        assert body["error"]["code"] in ("invalid", "conflict", "too_large", "not_found")


def test_records_written_through_the_service_are_found(env: Env) -> None:
    env.records.create(SYSTEM, "account", {"name": "Direct", "external_id": "D-1"})
    api = env.client(env.users.new_token("admin"))
    r = bulk(api, "account", [{"external_id": "D-1", "city": "Tianjin"}], key="external_id")
    assert r.json()["items"][0]["action"] == "updated"


def test_duplicates_are_refused_unless_allowed(env: Env, api: TestClient) -> None:
    old = bulk(api, "account", [{"name": "Acme Ltd", "phone": "010-12345678"}]).json()
    items = [{"name": "ACME Co., Ltd.", "phone": "+86 10 1234 5678"},
             {"name": "Beta", "phone": "021-5555 0000"},
             {"name": "Beta Trading", "phone": "02155550000"}]
    r = bulk(api, "account", items)
    assert r.status_code == 409, r.text
    refused = r.json()["error"]["items"]
    assert set(refused) == {"0", "2"} and refused["0"]["code"] == "duplicate"
    assert refused["0"]["candidates"][0]["id"] == old["items"][0]["id"]
    assert refused["2"]["candidates"][0]["row"] == 1  # an earlier item of the request
    assert count(env, "account") == 1
    r = api.post("/api/account/bulk?allow_duplicate=1", json={"items": items})
    assert r.status_code == 200, r.text
    assert count(env, "account") == 4


def test_an_idempotency_key_replays_a_bulk_write(env: Env, api: TestClient) -> None:
    body = {"items": [{"name": f"Once {i}"} for i in range(3)]}
    first = api.post("/api/account/bulk", json=body, headers={"Idempotency-Key": "bulk-1"})
    again = api.post("/api/account/bulk", json=body, headers={"Idempotency-Key": "bulk-1"})
    assert first.status_code == again.status_code == 200, first.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count(env, "account") == 3

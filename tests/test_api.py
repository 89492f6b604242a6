"""The JSON API through the ASGI app (DESIGN §6): every route, every status, one error shape.

Each refused write is checked against the database itself: every entity table and the
audit table read back by SQL must be exactly as before.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from engine.runtime.schema.tables import AUDIT_TABLE
from engine.web.app import create_app
from tests.conftest import Env

ERROR_KEYS = {"code", "message", "fields", "message_id", "params", "field_messages"}


# -- helpers shared with test_api_fuzz and test_openapi ----------------------------------


def assert_error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is `status` with exactly {"error": {"code", "message", "fields",
    "message_id", "params", "field_messages"}}, a structured message for each field."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == ERROR_KEYS, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in error["fields"].items())
    assert isinstance(error["params"], dict)
    assert set(error["field_messages"]) == set(error["fields"])
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


def db_state(env: Env) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every entity table and of the audit table, in id order."""
    names = [*env.model.entity_names, AUDIT_TABLE]
    with env.engine.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(
            select(env.records.schema.table(name)).order_by("id"))] for name in names}


def row_count(env: Env, entity: str) -> int:
    """Rows in the entity's table, live and in the recycle bin."""
    table = env.records.schema.table(entity)
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def post_raw(client: TestClient, path: str, body: bytes,
             content_type: str = "application/json") -> Any:
    return client.post(path, content=body, headers={"content-type": content_type})


def new_account(api: TestClient, name: str = "Acme", **fields: Any) -> dict[str, Any]:
    resp = api.post("/api/account", json={"name": name, **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def new_opportunity(api: TestClient, account_id: int, name: str,
                    **fields: Any) -> dict[str, Any]:
    resp = api.post("/api/opportunity", json={"name": name, "account": account_id, **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


# -- authentication ----------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/account"), ("POST", "/api/account"), ("GET", "/api/account/1"),
    ("PATCH", "/api/account/1"), ("DELETE", "/api/account/1"),
    ("GET", "/api/account/1/history"), ("POST", "/api/account/1/actions/restore"),
    ("POST", "/api/account/1/actions/purge"), ("GET", "/api/no_such_entity"),
]


@pytest.mark.parametrize("header", [
    None, "Bearer crm_not-a-real-token", "Bearer ", "Basic YWRtaW46YWRtaW4=", "crm_token",
    "Bearer " + "x" * 5000,
])
def test_every_api_route_needs_a_valid_bearer_token(env: Env, header: str | None) -> None:
    client = env.client()
    if header is not None:
        client.headers["Authorization"] = header
    before = db_state(env)
    for method, path in ROUTES:
        resp = client.request(method, path, json={"name": "Intruder", "version": 1})
        error = assert_error(resp, 401, "unauthorized")
        assert resp.headers["www-authenticate"] == "Bearer"
        expected = ("send an API token" if header is None or not header.startswith("Bearer ")
                    or header == "Bearer " else "the API token is not valid")
        assert expected in error["message"]
    assert db_state(env) == before


def test_a_revoked_token_is_refused(env: Env) -> None:
    token = env.users.new_token("admin")
    client = env.client(token)
    assert client.get("/api/account").status_code == 200
    env.users.revoke_tokens("admin")
    assert_error(client.get("/api/account"), 401, "unauthorized")


# -- create and read ---------------------------------------------------------------------


def test_create_returns_201_with_location_and_exact_values(api: TestClient, env: Env) -> None:
    account = new_account(api, "Acme", annual_revenue="1234.5", employees=250)
    assert account["annual_revenue"] == "1234.50"
    resp = api.post("/api/opportunity", json={
        "name": "Turbines", "account": account["id"], "amount": 1234.5,
        "close_date": "2025-03-31", "stage": "proposal"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert resp.headers["location"] == f"/api/opportunity/{body['id']}"
    assert body["amount"] == "1234.50"  # money is an exact string, never a float
    assert body["close_date"] == "2025-03-31"
    assert body["account"] == account["id"]
    assert body["stage"] == "proposal"
    assert body["lost_reason"] is None
    assert body["version"] == 1
    assert body["created_by"] == env.admin.id and body["owner_id"] == env.admin.id
    assert body["created_at"].endswith("Z") and body["created_at"] == body["updated_at"]
    assert "deleted_at" not in body
    assert account["tier"] == "standard" and account["status"] == "prospect"  # defaults

    again = api.get(resp.headers["location"])
    assert again.status_code == 200
    assert again.json() == body
    record = env.records.get(env.admin.actor(), "opportunity", body["id"])
    assert str(record["amount"]) == "1234.50"


def test_money_keeps_every_cent(api: TestClient) -> None:
    account = new_account(api)
    opp = new_opportunity(api, account["id"], "Exact", amount="9999999999999.99")
    assert opp["amount"] == "9999999999999.99"
    assert api.get(f"/api/opportunity/{opp['id']}").json()["amount"] == "9999999999999.99"


@pytest.mark.parametrize(("path", "message"), [
    ("/api/no_such_entity/1", "no entity 'no_such_entity'"),
    ("/api/account/999999", "no account 999999"),
    ("/api/account/abc", "no record 'abc'"),
    ("/api/account/0", "no record '0'"),
    ("/api/account/-1", "no record '-1'"),
    ("/api/account/1.5", "no record '1.5'"),
    ("/api/account/9223372036854775807", "no account 9223372036854775807"),
    ("/api/account/9223372036854775808", "no record '9223372036854775808'"),
    ("/api/account/" + "9" * 5000, "no record '" + "9" * 40 + "'"),
    ("/api/account/%C2%B2", "no record '²'"),  # "²".isdigit() is True, int("²") fails
    ("/api/account/%D9%A1", "no record '\u0661'"),  # an Arabic-Indic 1 is not the id 1
    ("/api/account/1/nope", "Not Found"),
    ("/api/no_such_entity/abc/history", "no entity 'no_such_entity'"),
])
def test_get_unknown_things_is_404(api: TestClient, path: str, message: str) -> None:
    new_account(api)  # id 1 exists, so the odd spellings of 1 above must not find it
    error = assert_error(api.get(path), 404, "not_found")
    assert error["message"] == message


def test_unknown_entity_is_404_for_every_route(api: TestClient, env: Env) -> None:
    before = db_state(env)
    for method, path in [("GET", "/api/nope"), ("POST", "/api/nope"),
                         ("GET", "/api/nope/1"), ("PATCH", "/api/nope/1"),
                         ("DELETE", "/api/nope/1"), ("GET", "/api/nope/1/history"),
                         ("POST", "/api/nope/1/actions/restore")]:
        error = assert_error(api.request(method, path, json={"version": 1}), 404, "not_found")
        assert error["message"] == "no entity 'nope'"
    assert db_state(env) == before


def test_create_422_reports_every_field_at_once(api: TestClient, env: Env) -> None:
    before = db_state(env)
    resp = api.post("/api/opportunity", json={
        "amount": "12.345", "stage": "sold", "close_date": "31/13/2025", "colour": "red",
        "id": 7, "version": 3, "owner_id": 1, "primary_contact": "x"})
    error = assert_error(resp, 422, "invalid")
    assert error["message"] == "opportunity is not valid"
    assert error["fields"] == {
        "name": "is required",
        "account": "is required",
        "amount": "must have at most 2 decimal places",
        "stage": "must be one of: prospecting, qualification, proposal, negotiation, won, lost",
        "close_date": "must be a date like 2025-03-31",
        "colour": "unknown field of opportunity",
        "id": "is set by the engine and cannot be written",
        "version": "is set by the engine and cannot be written",
        "owner_id": "is set by the engine and cannot be written",
        "primary_contact": "must be a record id",
    }
    assert db_state(env) == before


@pytest.mark.parametrize(("body", "fields"), [
    ({"name": "Big", "employees": 2**70}, {"employees": "is too large"}),
    ({"name": "Big", "employees": 1.5}, {"employees": "must be a whole number"}),
    ({"name": "Big", "employees": -1}, {"employees": "must be at least 0"}),
    ({"name": "Big", "employees": True}, {"employees": "must be a whole number"}),
    ({"name": "Big", "annual_revenue": "1e999999999"},
     {"annual_revenue": "must be less than 10,000,000,000,000 in size"}),
    ({"name": "Big", "parent": 2**63}, {"parent": "must be a record id"}),
    ({"name": "Big", "parent": 424242}, {"parent": "no account with id 424242"}),
    ({"name": "x" * 201}, {"name": "must be at most 200 characters (got 201)"}),
    ({"name": "a\x00b"}, {"name": "must not contain NUL characters"}),
    ({"name": {"nested": ["object"]}}, {"name": "must be text"}),
    ({"name": ["a"]}, {"name": "must be text"}),
    ({"name": "Ok", "email": "not-an-email"},
     {"email": "must be an email address like name@example.com"}),
    ({"name": "Ok", "industry": "mining"}, {"industry": (
        "must be one of: manufacturing, aviation, automotive, energy, construction, "
        "logistics, healthcare, public_sector, other")}),
    ({"name": "   "}, {"name": "is required"}),
    ({"name": None}, {"name": "is required"}),
])
def test_create_refuses_bad_values_and_changes_nothing(
        api: TestClient, env: Env, body: dict[str, Any], fields: dict[str, str]) -> None:
    before = db_state(env)
    error = assert_error(api.post("/api/account", json=body), 422, "invalid")
    assert error["fields"] == fields
    assert db_state(env) == before


def test_create_refuses_a_taken_unique_value(api: TestClient, env: Env) -> None:
    new_account(api, "Acme")
    before = db_state(env)
    error = assert_error(api.post("/api/account", json={"name": "Acme"}), 422, "invalid")
    assert error["fields"] == {"name": "Acme is already used"}
    assert db_state(env) == before


# -- update ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    {"name": "New"}, {"name": "New", "version": "1"}, {"name": "New", "version": True},
    {"name": "New", "version": None}, {"name": "New", "version": 1.0},
    {"name": "New", "version": [1]},
])
def test_patch_without_a_whole_number_version_is_422(
        api: TestClient, env: Env, body: dict[str, Any]) -> None:
    account = new_account(api, "Old")
    before = db_state(env)
    error = assert_error(api.patch(f"/api/account/{account['id']}", json=body), 422, "invalid")
    assert error["fields"] == {"version": "required: the version you read (a whole number)"}
    assert db_state(env) == before
    assert api.get(f"/api/account/{account['id']}").json() == account


def test_patch_with_a_stale_version_is_409_and_changes_nothing(
        api: TestClient, env: Env) -> None:
    account = new_account(api, "Old")
    path = f"/api/account/{account['id']}"
    current = api.patch(path, json={"version": 1, "city": "Berlin"}).json()
    assert current["version"] == 2
    before = db_state(env)
    for stale in (1, 3, 0, 2**80):
        error = assert_error(api.patch(path, json={"version": stale, "name": "Lost update"}),
                             409, "conflict")
        assert error["fields"] == {"version": "stale"}
        assert "current version is 2" in error["message"]
    assert db_state(env) == before
    assert api.get(path).json() == current


def test_patch_bumps_the_version_and_writes_only_the_given_fields(
        api: TestClient, env: Env) -> None:
    account = new_account(api, "Acme", city="Paris", employees=10)
    path = f"/api/account/{account['id']}"
    resp = api.patch(path, json={"version": 1, "city": "Berlin", "credit_limit": 50000})
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert updated["version"] == 2
    assert updated["city"] == "Berlin" and updated["credit_limit"] == "50000.00"
    assert updated["employees"] == 10 and updated["name"] == "Acme"
    assert updated["created_at"] == account["created_at"]
    assert api.get(path).json() == updated
    # a second writer still holding version 1 is refused
    assert_error(api.patch(path, json={"version": 1, "city": "Rome"}), 409, "conflict")
    assert api.patch(path, json={"version": 2, "city": None}).json()["city"] is None


def test_patch_with_invalid_values_is_422_and_changes_nothing(
        api: TestClient, env: Env) -> None:
    account = new_account(api, "Acme")
    path = f"/api/account/{account['id']}"
    before = db_state(env)
    error = assert_error(api.patch(path, json={
        "version": 1, "name": None, "employees": "many", "id": 5, "nope": 1}), 422, "invalid")
    assert error["fields"] == {"name": "is required", "employees": "must be a whole number",
                               "id": "is set by the engine and cannot be written",
                               "nope": "unknown field of account"}
    assert db_state(env) == before


def test_patch_a_missing_or_deleted_record_is_404(api: TestClient, env: Env) -> None:
    account = new_account(api)
    assert_error(api.patch("/api/account/999", json={"version": 1, "city": "X"}), 404)
    assert api.delete(f"/api/account/{account['id']}").status_code == 204
    before = db_state(env)
    error = assert_error(api.patch(f"/api/account/{account['id']}",
                                   json={"version": 2, "city": "X"}), 404, "not_found")
    assert error["message"] == f"no account {account['id']}"
    assert db_state(env) == before


# -- delete, restore, purge --------------------------------------------------------------


def test_delete_moves_to_the_recycle_bin_and_restore_brings_it_back(
        api: TestClient, env: Env) -> None:
    account = new_account(api, "Binned")
    other = new_account(api, "Stays")
    path = f"/api/account/{account['id']}"
    resp = api.delete(path)
    assert resp.status_code == 204 and resp.content == b""
    assert_error(api.get(path), 404, "not_found")
    binned = api.get(path, params={"deleted": "true"})
    assert binned.status_code == 200
    assert binned.json()["deleted_at"].endswith("Z")
    assert binned.json()["deleted_by"] == env.admin.id
    assert binned.json()["version"] == 2
    live = api.get("/api/account").json()
    assert [r["id"] for r in live["items"]] == [other["id"]] and live["total"] == 1
    bin_list = api.get("/api/account", params={"deleted": "true"}).json()
    assert [r["id"] for r in bin_list["items"]] == [account["id"]] and bin_list["total"] == 1
    assert_error(api.delete(path), 404, "not_found")  # already in the bin

    restored = api.post(f"{path}/actions/restore")
    assert restored.status_code == 200
    assert restored.json()["version"] == 3 and "deleted_at" not in restored.json()
    assert api.get(path).json() == restored.json()
    error = assert_error(api.post(f"{path}/actions/restore"), 404, "not_found")
    assert error["message"] == f"no account {account['id']} in the recycle bin"
    assert_error(api.get(path, params={"deleted": "true"}), 404, "not_found")


def test_delete_with_a_version_checks_it(api: TestClient, env: Env) -> None:
    account = new_account(api)
    path = f"/api/account/{account['id']}"
    before = db_state(env)
    assert_error(api.delete(path, params={"version": "2"}), 409, "conflict")
    error = assert_error(api.delete(path, params={"version": "two"}), 400, "bad_request")
    assert error["fields"] == {"version": "not a number"}
    assert_error(api.delete(path, params={"version": "²"}), 400, "bad_request")
    assert_error(api.delete(f"{path}?version=1&version=1"), 400, "bad_request")
    assert db_state(env) == before
    assert api.delete(path, params={"version": "1"}).status_code == 204


def test_purge_works_only_from_the_recycle_bin(api: TestClient, env: Env) -> None:
    account = new_account(api, "Gone")
    path = f"/api/account/{account['id']}"
    before = db_state(env)
    error = assert_error(api.post(f"{path}/actions/purge"), 404, "not_found")
    assert error["message"] == f"no account {account['id']} in the recycle bin"
    assert db_state(env) == before
    assert api.delete(path).status_code == 204
    assert row_count(env, "account") == 1
    resp = api.post(f"{path}/actions/purge")
    assert resp.status_code == 204
    assert row_count(env, "account") == 0
    assert_error(api.get(path, params={"deleted": "true"}), 404)
    assert_error(api.post(f"{path}/actions/restore"), 404)


def test_purge_of_a_referenced_record_is_409_and_changes_nothing(
        api: TestClient, env: Env) -> None:
    account = new_account(api)
    new_opportunity(api, account["id"], "Keeps the account")
    assert api.delete(f"/api/account/{account['id']}").status_code == 204
    before = db_state(env)
    error = assert_error(api.post(f"/api/account/{account['id']}/actions/purge"), 409,
                         "conflict")
    assert "still referenced" in error["message"]
    assert db_state(env) == before


def test_unknown_action_is_404(api: TestClient, env: Env) -> None:
    account = new_account(api)
    before = db_state(env)
    error = assert_error(api.post(f"/api/account/{account['id']}/actions/explode"), 404,
                         "not_found")
    assert error["message"] == "no action 'explode' on account; available: restore, purge, assign"
    assert db_state(env) == before


# -- history -----------------------------------------------------------------------------


def test_history_lists_create_update_delete_restore_with_values(api: TestClient) -> None:
    account = new_account(api, "Acme", city="Paris")
    path = f"/api/account/{account['id']}"
    assert api.patch(path, json={"version": 1, "city": "Berlin",
                                 "credit_limit": "10.5"}).status_code == 200
    assert api.delete(path).status_code == 204
    assert api.get(f"{path}/history").status_code == 200  # readable while in the bin
    assert api.post(f"{path}/actions/restore").status_code == 200
    resp = api.get(f"{path}/history")
    assert resp.status_code == 200
    body = resp.json()
    rows = [(r["action"], r["field"], r["old"], r["new"]) for r in body["items"]]
    assert [r[0] for r in rows] == ["create"] * 6 + ["update"] * 2 + ["delete", "restore"]
    creates = {r[1]: r[3] for r in rows if r[0] == "create"}
    assert creates == {"name": "Acme", "tier": "standard", "status": "prospect",
                       "account_type": "customer", "lifecycle": "target", "city": "Paris"}
    rest = [r for r in rows if r[0] != "create"]
    assert sorted(rest[:2]) == [("update", "city", "Paris", "Berlin"),
                                ("update", "credit_limit", None, "10.50")]
    assert rest[2:] == [("delete", None, None, None), ("restore", None, None, None)]
    assert body["total"] == len(body["items"]) == 10
    assert all(r["user"] == "admin" and r["at"].endswith("Z") for r in body["items"])


def test_history_of_an_unknown_record_is_404(api: TestClient) -> None:
    error = assert_error(api.get("/api/account/77/history"), 404, "not_found")
    assert error["message"] == "no account 77"
    assert_error(api.get("/api/account/x/history"), 404, "not_found")


# -- lists -------------------------------------------------------------------------------


@pytest.fixture
def deals(api: TestClient) -> dict[str, int]:
    """Five opportunities on one account; name → id."""
    account = new_account(api, "Buyer")
    rows = [("Alpha turbine", "won", "500.00"), ("Beta pump", "won", "1500.00"),
            ("Gamma turbine", "lost", "2500.00"), ("Delta valve", "proposal", None),
            ("Epsilon turbine", "won", "2500.00")]
    ids = {}
    for name, stage, amount in rows:
        extra = {"lost_reason": "price"} if stage == "lost" else {}
        ids[name] = new_opportunity(api, account["id"], name, stage=stage, amount=amount,
                                    **extra)["id"]
    return ids


def _names(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [r["name"] for r in resp.json()["items"]]


def test_list_filters(api: TestClient, deals: dict[str, int]) -> None:
    assert _names(api.get("/api/opportunity", params={"stage": "won"})) == [
        "Alpha turbine", "Beta pump", "Epsilon turbine"]
    assert _names(api.get("/api/opportunity", params={"amount__gte": "1500"})) == [
        "Beta pump", "Gamma turbine", "Epsilon turbine"]
    assert _names(api.get("/api/opportunity", params={"name__contains": "TURBINE"})) == [
        "Alpha turbine", "Gamma turbine", "Epsilon turbine"]
    combined = api.get("/api/opportunity", params={
        "stage": "won", "amount__gte": "1000", "name__contains": "turbine"})
    assert _names(combined) == ["Epsilon turbine"] and combined.json()["total"] == 1
    assert _names(api.get("/api/opportunity", params={"stage__ne": "won"})) == [
        "Gamma turbine", "Delta valve"]
    assert _names(api.get("/api/opportunity", params={"amount__blank": "true"})) == [
        "Delta valve"]
    assert _names(api.get("/api/opportunity", params={"stage__in": "lost,proposal"})) == [
        "Gamma turbine", "Delta valve"]
    assert _names(api.get("/api/opportunity", params={"name__contains": "100%_"})) == []


def test_list_sorts_and_pages(api: TestClient, deals: dict[str, int]) -> None:
    by_amount = api.get("/api/opportunity", params={"sort": "-amount"})
    # blanks sort as the smallest value; ties fall back to id, descending like the last key
    assert _names(by_amount) == ["Epsilon turbine", "Gamma turbine", "Beta pump",
                                 "Alpha turbine", "Delta valve"]
    assert _names(api.get("/api/opportunity", params={"sort": "stage,-name"})) == [
        "Gamma turbine", "Delta valve", "Epsilon turbine", "Beta pump", "Alpha turbine"]
    page = api.get("/api/opportunity", params={"sort": "name", "page": "2", "page_size": "2"})
    assert _names(page) == ["Delta valve", "Epsilon turbine"]
    body = page.json()
    assert (body["total"], body["total_exact"], body["page"], body["page_size"]) == (
        5, True, 2, 2)
    assert _names(api.get("/api/opportunity", params={"page": "9"})) == []
    full = api.get("/api/opportunity", params={"page_size": "500"})
    assert len(_names(full)) == 5 and full.json()["next_cursor"] is None


@pytest.mark.parametrize("sort", ["", "-amount", "name", "stage,-amount", "-close_date,name"])
def test_cursor_pagination_walks_every_row_once(
        api: TestClient, deals: dict[str, int], sort: str) -> None:
    expected = [r["id"] for r in api.get("/api/opportunity",
                                         params={"sort": sort, "page_size": "500"}
                                         ).json()["items"]]
    seen: list[int] = []
    params = {"sort": sort, "page_size": "2"}
    for _ in range(10):
        body = api.get("/api/opportunity", params=params).json()
        seen += [r["id"] for r in body["items"]]
        if body["next_cursor"] is None:
            break
        params = {"sort": sort, "page_size": "2", "cursor": body["next_cursor"]}
    assert seen == expected and sorted(seen) == sorted(deals.values())


@pytest.mark.parametrize(("query", "fields"), [
    ("page_size=501", {"page_size": "must be a whole number from 1 to 500"}),
    ("page_size=0", {"page_size": "must be a whole number from 1 to 500"}),
    ("page=0", {"page": "must be a whole number from 1 to 1000000000"}),
    ("page=-1", {"page": "must be a whole number from 1 to 1000000000"}),
    ("page=%C2%B2", {"page": "must be a whole number from 1 to 1000000000"}),
    ("page=1e3", {"page": "must be a whole number from 1 to 1000000000"}),
    ("sort=amount;--", {"sort": "'amount;--' is not a field name"}),
    ("sort=amount%20desc", {"sort": "'amount desc' is not a field name"}),
    ("sort=colour", {"sort": "unknown sort field 'colour' of opportunity"}),
    ("sort=--amount", {"sort": "'--amount' is not a field name"}),
    ("colour=red", {"colour": "unknown field 'colour' of opportunity"}),
    ("amount__like=1", {"amount__like": (
        "unknown operator 'like'; use one of eq, ne, gt, gte, lt, lte, contains, in, blank")}),
    ("amount__gte=lots", {"amount__gte": "amount must be a number"}),
    ("stage=sold", {"stage": (
        "stage must be one of: prospecting, qualification, proposal, negotiation, won, lost")}),
    ("account__gt=1", {"account__gt": "account cannot compare a reference field with gt"}),
    ("amount__contains=1",
     {"amount__contains": "amount cannot use contains on a field of type money"}),
    ("deleted=maybe", {"deleted": "must be true or false"}),
    ("cursor=not-a-cursor", {"cursor": "not a cursor from this list"}),
    ("stage=won&stage=lost", {"stage": "given twice"}),
    ("name__contains=a%00b", {"name__contains": "contains a NUL character"}),
])
def test_bad_list_parameters_are_400_naming_the_parameter(
        api: TestClient, deals: dict[str, int], query: str, fields: dict[str, str]) -> None:
    error = assert_error(api.get(f"/api/opportunity?{query}"), 400, "bad_request")
    assert error["fields"] == fields


def test_a_cursor_with_an_out_of_range_id_is_400(api: TestClient,
                                                 deals: dict[str, int]) -> None:
    import base64

    cursor = base64.urlsafe_b64encode(json.dumps([10**30]).encode()).decode()
    error = assert_error(api.get("/api/opportunity", params={"cursor": cursor}), 400)
    assert error["fields"] == {"cursor": "not a cursor from this list"}


def test_get_one_rejects_bad_flags(api: TestClient) -> None:
    account = new_account(api)
    path = f"/api/account/{account['id']}"
    error = assert_error(api.get(path, params={"deleted": "maybe"}), 400, "bad_request")
    assert error["fields"] == {"deleted": "must be true or false"}
    assert_error(api.get(f"{path}?deleted=false&deleted=true"), 400, "bad_request")
    assert api.get(path, params={"deleted": "false"}).json() == account


# -- request bodies ----------------------------------------------------------------------


def test_a_2mb_body_is_413(api: TestClient, env: Env) -> None:
    account = new_account(api)
    before = db_state(env)
    body = json.dumps({"name": "Huge", "description": "x" * (2 * 1024 * 1024)}).encode()
    error = assert_error(post_raw(api, "/api/account", body), 413, "too_large")
    assert error["message"] == "request body is larger than 1048576 bytes"
    patch = json.dumps({"version": 1, "description": "x" * (2 * 1024 * 1024)}).encode()
    resp = api.patch(f"/api/account/{account['id']}", content=patch,
                     headers={"content-type": "application/json"})
    assert_error(resp, 413, "too_large")
    assert db_state(env) == before


def test_a_streamed_body_over_the_limit_is_413(api: TestClient, env: Env) -> None:
    before = db_state(env)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"name": "Streamed", "description": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    resp = api.post("/api/account", content=chunks(),
                    headers={"content-type": "application/json"})
    assert_error(resp, 413, "too_large")
    assert db_state(env) == before


@pytest.mark.parametrize(("body", "message"), [
    (b'{"name": "Acme"', "request body is not valid JSON: Expecting ',' delimiter"),
    (b"", "request body is not valid JSON: Expecting value"),
    (b"[1, 2]", "request body must be a JSON object of field values"),
    (b'"Acme"', "request body must be a JSON object of field values"),
    (b"null", "request body must be a JSON object of field values"),
    (b'{"name": NaN}', "request body is not valid JSON: NaN is not a JSON number"),
    (b'{"employees": Infinity}', "request body is not valid JSON: Infinity is not"),
    (b'{"name": "\xff"}', "request body is not valid JSON: 'utf-8' codec can't decode"),
    (b'{"name": "x\\ud800"}', "request body is not valid JSON: it holds an unpaired surrogate"),
    (b'{"\\udfff": 1}', "request body is not valid JSON: it holds an unpaired surrogate"),
    (b"[" * 100_000 + b"]" * 100_000, "request body is not valid JSON"),
    (b'{"employees": 1' + b"0" * 5000 + b"}", "request body is not valid JSON"),
])
def test_malformed_bodies_are_400(api: TestClient, env: Env, body: bytes, message: str) -> None:
    account = new_account(api)
    before = db_state(env)
    for method, path in [("POST", "/api/account"), ("PATCH", f"/api/account/{account['id']}")]:
        resp = api.request(method, path, content=body,
                           headers={"content-type": "application/json"})
        error = assert_error(resp, 400, "bad_request")
        assert error["message"].startswith(message), error["message"]
    assert db_state(env) == before


@pytest.mark.parametrize(("body", "key"), [
    (b'{"name": "Acme", "name": "Evil"}', "name"),
    (b'{"name": "Acme", "employees": 1, "industry": null, "employees": 2}', "employees"),
    (b'{"name": "Acme", "\\u006eame": "Evil"}', "name"),  # the same key, escaped
    (b'{"name": "Acme", "notes": {"a": 1, "a": 2}}', "a"),  # inside a nested object
])
def test_a_key_given_twice_in_a_body_is_400_naming_it(api: TestClient, env: Env, body: bytes,
                                                       key: str) -> None:
    """Not last-one-wins: a body whose keys repeat says two things at once."""
    account = new_account(api)
    before = db_state(env)
    for method, path in [("POST", "/api/account"), ("PATCH", f"/api/account/{account['id']}"),
                         ("POST", f"/api/account/{account['id']}/actions/assign"),
                         ("POST", f"/api/account/{account['id']}/team"),
                         ("POST", "/api/access/transfer")]:
        resp = api.request(method, path, content=body,
                           headers={"content-type": "application/json"})
        error = assert_error(resp, 400, "bad_request")
        assert error["message"] == f"request body gives the key '{key}' twice", path
        assert error["fields"] == {key: "given twice"}
    assert db_state(env) == before
    zh = api.post("/api/account", content=body, headers={"content-type": "application/json",
                                                         "accept-language": "zh-CN"})
    assert assert_error(zh, 400)["message"] == f"请求正文中的键 '{key}' 出现了两次"


def test_a_paired_surrogate_escape_is_fine(api: TestClient) -> None:
    resp = post_raw(api, "/api/account", b'{"name": "Rocket \\ud83d\\ude80"}')
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == "Rocket \U0001f680"


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain",
    "application/xml"])
def test_non_json_content_types_are_415(api: TestClient, env: Env, content_type: str) -> None:
    before = db_state(env)
    error = assert_error(post_raw(api, "/api/account", b'{"name": "Acme"}', content_type),
                         415, "unsupported_media_type")
    assert error["message"] == (f"send JSON (Content-Type: application/json), not "
                                f"{content_type.split(';')[0]}")
    assert db_state(env) == before


def test_json_with_a_charset_parameter_is_accepted(api: TestClient) -> None:
    resp = post_raw(api, "/api/account", b'{"name": "Acme"}', "application/json; charset=utf-8")
    assert resp.status_code == 201


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/api/account/1", "GET, HEAD, PATCH, DELETE"),
    ("DELETE", "/api/account", "GET, HEAD, POST"),
    ("PATCH", "/api/account", "GET, HEAD, POST"),
    ("GET", "/api/account/1/actions/restore", "POST"),
    ("POST", "/api/account/1/history", "GET, HEAD"),
])
def test_wrong_methods_are_405(api: TestClient, env: Env, method: str, path: str,
                               allow: str) -> None:
    new_account(api)
    before = db_state(env)
    resp = api.request(method, path, json={"name": "Nope", "version": 1})
    assert_error(resp, 405, "method_not_allowed")
    assert set(resp.headers["allow"].split(", ")) == set(allow.split(", "))
    assert db_state(env) == before


# -- user names ------------------------------------------------------------------------


def test_a_user_name_the_caller_may_not_name_answers_as_an_unknown_one(env: Env) -> None:
    """Every body that names a user (team, assign, transfer): a user outside the caller's
    reach (engine/runtime/access/reachable.py) gets exactly the answer of a name no user
    has, so no route tells a dealer which staff names exist."""
    from tests.access_helpers import departments, place, user

    d = departments(env)
    dealer = user(env, "dealer_one", "partner", department=d["PARTNERS"])
    user(env, "zhang_sh", "sales_rep", department=d["SH"])
    account = place(env, "account", {"name": "Dealer account"}, owner=dealer)
    deal = place(env, "opportunity", {"name": "Deal", "account": account["id"]}, owner=dealer)
    api = env.client(env.users.new_token("dealer_one"))
    before = db_state(env)
    for path, key, extra, status in [
            (f"/api/opportunity/{deal['id']}/team", "user", {}, 422),
            (f"/api/opportunity/{deal['id']}/actions/assign", "owner", {}, 422),
            ("/api/access/transfer", "from", {"to": "dealer_one"}, 403),  # before any lookup
            ("/api/access/transfer", "to", {"from": "dealer_one"}, 403)]:
        staff = api.post(path, json={key: "zhang_sh", **extra})
        nobody = api.post(path, json={key: "nobody_xx", **extra})
        assert staff.status_code == nobody.status_code == status, (path, staff.text)
        assert staff.text.replace("zhang_sh", "nobody_xx") == nobody.text, path
    assert db_state(env) == before


# -- one error shape ---------------------------------------------------------------------


def test_every_error_response_has_the_one_error_shape(api: TestClient, env: Env) -> None:
    """A contract across routes: whatever goes wrong, the body is the same shape."""
    account = new_account(api)
    rid = account["id"]
    anonymous = env.client()
    cases: list[tuple[int, Any]] = [
        (401, anonymous.get("/api/account")),
        (401, anonymous.post("/api/account", json={"name": "x"})),
        (401, env.client("crm_bad").delete(f"/api/account/{rid}")),
        (404, api.get("/api/nope")),
        (404, api.get(f"/api/account/{rid + 100}")),
        (404, api.get("/api/account/abc")),
        (404, api.get(f"/api/account/{rid}/history/extra")),
        (404, api.post(f"/api/account/{rid}/actions/nope")),
        (404, api.post(f"/api/account/{rid}/actions/purge")),
        (404, api.get("/no/such/page")),
        (422, api.post("/api/account", json={})),
        (422, api.patch(f"/api/account/{rid}", json={"name": "x"})),
        (409, api.patch(f"/api/account/{rid}", json={"version": 9, "name": "x"})),
        (400, api.get("/api/account?page_size=501")),
        (400, api.get("/api/account?sort=amount;--")),
        (400, api.get("/api/account?page=1&page=2")),
        (400, post_raw(api, "/api/account", b"{")),
        (400, post_raw(api, "/api/account", b"[]")),
        (413, post_raw(api, "/api/account", b" " * (2 * 1024 * 1024))),
        (415, post_raw(api, "/api/account", b"name=x", "application/x-www-form-urlencoded")),
        (405, api.put(f"/api/account/{rid}", json={})),
    ]
    for status, resp in cases:
        assert_error(resp, status)


# -- database work stays off the event loop ----------------------------------------------


def test_database_work_runs_off_the_event_loop(env: Env) -> None:
    app = create_app(env.model, env.engine)
    loop_threads: set[int] = set()
    db_threads: set[int] = set()

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        loop_threads.add(threading.get_ident())  # the thread the event loop runs on
        await app(scope, receive, send)

    def on_execute(*_args: Any) -> None:
        db_threads.add(threading.get_ident())

    token = env.users.new_token("admin")
    event.listen(env.engine, "before_cursor_execute", on_execute)
    try:
        # one portal, so every request is served by the same event loop thread
        with TestClient(recording) as client:  # type: ignore[arg-type]
            client.headers["Authorization"] = f"Bearer {token}"
            made = client.post("/api/account", json={"name": "Threads"}).json()
            path = f"/api/account/{made['id']}"
            statuses = [
                client.get(path).status_code,
                client.get("/api/account", params={"name__contains": "T"}).status_code,
                client.patch(path, json={"version": 1, "city": "Oslo"}).status_code,
                client.get(f"{path}/history").status_code,
                client.delete(path).status_code,
                client.post(f"{path}/actions/restore").status_code,
                client.delete(path).status_code,
                client.post(f"{path}/actions/purge").status_code,
            ]
    finally:
        event.remove(env.engine, "before_cursor_execute", on_execute)
    assert statuses == [200, 200, 200, 200, 204, 200, 204, 204]
    assert len(loop_threads) == 1 and len(db_threads) >= 1
    assert threading.get_ident() not in loop_threads
    assert not loop_threads & db_threads

"""Line items on the web (engine/web/api.py, engine/web/pages/line_grid.py): the JSON API
saves a record with its lines atomically and answers each line's problems by row; the form
shows the grid, previews line and parent totals live with the server's formulas, saves
everything at once and, when refused, shows the rows as typed with each problem at its
cell. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from tests.conftest import Env, EnvFactory
from tests.db_templates import ADMIN_PASSWORD
from tests.lines_world import write_lines_config
from tests.web_helpers import sign_in


@pytest.fixture
def lenv(make_env: EnvFactory, tmp_path: Path) -> Env:
    return make_env(write_lines_config(tmp_path / "lines_config"))


@pytest.fixture
def api(lenv: Env) -> TestClient:
    return lenv.client(lenv.users.new_token("admin"))


@pytest.fixture
def pages(lenv: Env) -> TestClient:
    client = lenv.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, "admin", ADMIN_PASSWORD).status_code == 303
    return client


def products(env: Env, *names: str) -> list[int]:
    return [env.records.create(SYSTEM, "product", {"name": n})["id"] for n in names]


def count(env: Env, entity: str) -> int:
    t = env.records.compiled(entity).table
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def audit_total(env: Env) -> int:
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(env.records.audit))
                   .scalar_one())


# -- JSON API ----------------------------------------------------------------------------


def test_api_creates_updates_and_reads_a_record_with_its_lines(lenv: Env,
                                                               api: TestClient) -> None:
    a, b = products(lenv, "Valve", "Pump")
    made = api.post("/api/estimate", json={"name": "Retrofit", "lines": [
        {"values": {"product": a, "quantity": 2, "price": "100"}},
        {"values": {"product": b, "quantity": 1, "price": 50}}]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert made.headers["location"] == f"/api/estimate/{body['id']}"
    assert (body["line_count"], body["subtotal"], body["grand_total"]) == (2, "250.00",
                                                                            "275.00")
    first, second = body["lines"]
    assert (first["position"], first["line_total"]) == (1, "200.00")
    changed = api.patch(f"/api/estimate/{body['id']}", json={
        "version": body["version"], "lines": [
            {"id": second["id"], "version": second["version"], "values": {"quantity": 3}},
            {"id": first["id"], "delete": True}]})
    assert changed.status_code == 200, changed.text
    assert [(r["id"], r["position"]) for r in changed.json()["lines"]] == [(second["id"], 1)]
    assert changed.json()["subtotal"] == "150.00"
    read = api.get(f"/api/estimate/{body['id']}?include=lines")
    assert read.status_code == 200
    assert [r["quantity"] for r in read.json()["lines"]] == [3]
    assert "lines" not in api.get(f"/api/estimate/{body['id']}").json()
    assert api.get(f"/api/estimate/{body['id']}?include=team").status_code == 400
    assert api.get(f"/api/product/{a}?include=lines").status_code == 400


def test_api_is_all_or_nothing_with_each_rows_problems(lenv: Env, api: TestClient) -> None:
    (a,) = products(lenv, "Valve")
    before = (count(lenv, "estimate"), count(lenv, "estimate_line"), audit_total(lenv))
    refused = api.post("/api/estimate", headers={"Accept-Language": "zh-CN"}, json={
        "name": "Retrofit", "lines": [
            {"values": {"product": a, "quantity": 2, "price": "100"}},
            {"values": {"product": a, "quantity": "lots", "price": "100"}},
            {"values": {"product": a, "quantity": 1, "price": "5"}}]})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["lines"]) == ["1"] and list(error["lines"]["1"]) == ["quantity"]
    assert error["line_messages"]["1"]["quantity"][0]["message_id"]
    assert re.search(r"[\u4e00-\u9fff]", error["lines"]["1"]["quantity"])  # zh-CN
    assert (count(lenv, "estimate"), count(lenv, "estimate_line"), audit_total(lenv)) == before
    malformed = api.post("/api/estimate", json={"name": "X", "lines": [{"id": "x"}]})
    assert malformed.status_code == 422
    assert list(malformed.json()["error"]["lines"]["0"]) == ["id"]
    assert api.post("/api/estimate", json={"name": "X", "lines": {}}).status_code == 422
    # an entity without a grid: lines is an unknown field, as any other
    assert api.post("/api/product", json={"name": "X", "lines": []}).status_code == 422


def test_api_refuses_a_line_of_another_record_and_a_stale_line(lenv: Env,
                                                              api: TestClient) -> None:
    (a,) = products(lenv, "Valve")
    one = api.post("/api/estimate", json={"name": "One", "lines": [
        {"values": {"product": a, "quantity": 1, "price": "1"}}]}).json()
    two = api.post("/api/estimate", json={"name": "Two", "lines": [
        {"values": {"product": a, "quantity": 1, "price": "1"}}]}).json()
    theirs = two["lines"][0]
    refused = api.patch(f"/api/estimate/{one['id']}", json={"version": one["version"], "lines": [
        {"id": theirs["id"], "version": theirs["version"], "values": {"quantity": 9}}]})
    assert refused.status_code == 422
    assert list(refused.json()["error"]["lines"]["0"]) == ["id"]
    assert lenv.records.get(SYSTEM, "estimate_line", theirs["id"])["quantity"] == 1
    mine = one["lines"][0]
    stale = api.patch(f"/api/estimate/{one['id']}", json={"version": one["version"], "lines": [
        {"id": mine["id"], "version": mine["version"] + 1, "values": {"quantity": 9}}]})
    assert stale.status_code == 409
    assert stale.json()["error"]["lines"] == {"0": {"version": "stale"}}


def test_openapi_describes_the_lines(lenv: Env, api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert schemas["EstimateCreate"]["properties"]["lines"]["items"] == {
        "$ref": "#/components/schemas/EstimateLineEdit"}
    assert "quantity" in schemas["EstimateLineEdit"]["properties"]["values"]["properties"]
    assert "line_total" not in schemas["EstimateLineEdit"]["properties"]["values"]["properties"]
    params = doc["paths"]["/api/estimate/{record_id}"]["get"]["parameters"]
    assert any(p["name"] == "include" for p in params)
    assert "lines" not in schemas["ProductCreate"]["properties"]

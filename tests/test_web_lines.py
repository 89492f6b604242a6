"""Line items on the web (engine/web/api.py, engine/web/pages/line_grid.py): the JSON API
saves a record with its lines atomically and answers each line's problems by row; the form
shows the grid, previews line and parent totals live with the server's formulas, saves
everything at once and, when refused, shows the rows as typed with each problem at its
cell. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.records.lines import LineEdit, read_lines, save_with_lines
from tests.conftest import Env, EnvFactory
from tests.db_templates import ADMIN_PASSWORD
from tests.lines_world import write_lines_config
from tests.web_helpers import csrf_of, sign_in


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


# -- the form's grid -----------------------------------------------------------------------


def row(key: int, product: int | str, quantity: Any, price: Any, **more: Any
        ) -> list[tuple[str, str]]:
    cells = [("lines-order", str(key)), (f"lines-{key}-product", str(product)),
             (f"lines-{key}-quantity", str(quantity)), (f"lines-{key}-price", str(price))]
    return cells + [(f"lines-{key}-{k}", str(v)) for k, v in more.items()]


def post_form(client: TestClient, path: str, items: list[tuple[str, str]]) -> Any:
    page = client.get(path)
    body = urlencode([("csrf_token", csrf_of(page.text)), *items])
    return client.post(path, content=body, follow_redirects=False,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})


def cell(html: str, name: str) -> str:
    found = re.search(rf'<td class="line-cell[^"]*" data-column="[a-z_]+">\s*'
                      rf'(?:(?!</td>).)*name="{re.escape(name)}"(?:(?!</td>).)*</td>', html,
                      re.S)
    assert found, f"no cell {name}"
    return found.group(0)


def test_the_new_form_has_a_grid_with_a_blank_row_and_a_template(lenv: Env,
                                                                 pages: TestClient) -> None:
    page = pages.get("/e/estimate/new")
    assert page.status_code == 200
    html = page.text
    assert 'id="line-grid"' in html and "Items" in html
    assert 'name="lines-0-product"' in html and 'name="lines-0-quantity"' in html
    assert '<template id="line-template">' in html and 'name="lines-__i__-price"' in html
    assert 'id="computed-lines-0-line_total"' in html
    assert 'data-line-add' in html and "/static/line_grid.js" in html
    assert 'href="/e/estimate_line/pick/lines-0-product"' not in html  # a picker's url:
    assert 'hx-get="/e/estimate_line/pick/lines-0-product"' in html    # its row's slot


def test_the_form_saves_the_record_and_its_lines_at_once(lenv: Env, pages: TestClient) -> None:
    a, b = products(lenv, "Valve", "Pump")
    saved = post_form(pages, "/e/estimate/new", [
        ("name", "Retrofit"), *row(0, a, 2, "100"), *row(3, b, 1, "1,000.50"),
        ("lines-order", "5"), ("lines-5-quantity", "")])  # a blank new row is no line
    assert saved.status_code == 303, saved.text
    estimate_id = int(saved.headers["location"].split("/")[3].split("?")[0])
    record = lenv.records.get(SYSTEM, "estimate", estimate_id)
    assert (record["line_count"], record["subtotal"]) == (2, Decimal("1200.50"))
    page = pages.get(f"/e/estimate/{estimate_id}/edit")
    assert 'name="lines-0-id"' in page.text and 'name="lines-1-id"' in page.text


def test_a_refused_save_keeps_the_rows_with_each_problem_at_its_cell(
        lenv: Env, pages: TestClient) -> None:
    (a,) = products(lenv, "Valve")
    before = (count(lenv, "estimate"), count(lenv, "estimate_line"), audit_total(lenv))
    refused = post_form(pages, "/e/estimate/new", [
        ("name", "Retrofit"), *row(0, a, 2, "100"), *row(1, a, "lots", "5"),
        *row(2, a, 3, "7", discount="60")])
    assert refused.status_code == 422
    html = refused.text
    assert (count(lenv, "estimate"), count(lenv, "estimate_line"), audit_total(lenv)) == before
    assert 'value="lots"' in cell(html, "lines-1-quantity")
    assert 'id="err-lines-1-quantity"' in html
    assert 'id="err-lines-2-discount"' in html and "at least 10 units" in html
    assert 'id="err-lines-0-' not in html and 'id="err-lines-1-price"' not in html
    assert 'value="Retrofit"' in html and 'value="100"' in cell(html, "lines-0-price")
    assert html.count('name="lines-order"') == 4  # the three rows and the template's


def test_the_preview_computes_line_and_parent_totals_on_the_server(
        lenv: Env, pages: TestClient) -> None:
    a, b = products(lenv, "Valve", "Pump")
    token = csrf_of(pages.get("/e/estimate/new").text)
    body = urlencode([("csrf_token", token), ("name", "X"), ("tax_rate", "10"),
                      *row(0, a, 2, "100"), *row(1, b, 1, "50", discount="10"),
                      *row(2, b, 9, "9"), ("lines-2-_delete", "1")])
    preview = pages.post("/e/estimate/preview", content=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert preview.status_code == 200
    html = preview.text

    def shown(name: str) -> str:
        found = re.search(rf'<output id="computed-{name}"[^>]*>([^<]*)</output>', html)
        assert found, name
        return found.group(1)

    assert "200.00" in shown("lines-0-line_total") and "45.00" in shown("lines-1-line_total")
    assert "computed-lines-2-line_total" not in html  # removed: no cell, not counted
    assert shown("line_count") == "2"
    assert "245.00" in shown("subtotal") and "269.50" in shown("grand_total")


def test_the_edit_form_reorders_removes_and_adds_lines(lenv: Env, pages: TestClient) -> None:
    a, b, c = products(lenv, "Valve", "Pump", "Seal")
    made = lenv.records.create(SYSTEM, "estimate", {"name": "Retrofit"})
    saved = save_with_lines(lenv.records, SYSTEM, "estimate", made["id"], {}, made["version"], [
        LineEdit({"product": p, "quantity": 1, "price": "10"}) for p in (a, b, c)])
    first, second, third = saved["lines"]

    def kept(key: int, line: dict[str, Any], quantity: int) -> list[tuple[str, str]]:
        return [*row(key, line["product"], quantity, "10"), (f"lines-{key}-id", str(line["id"])),
                (f"lines-{key}-version", str(line["version"]))]

    path = f"/e/estimate/{made['id']}/edit"
    done = post_form(pages, path, [
        ("version", str(saved["version"])), ("name", "Retrofit"),
        *kept(2, third, 1), *kept(0, first, 4), *kept(1, second, 1),
        ("lines-1-_delete", "1"), *row(7, a, 2, "5")])
    assert done.status_code == 303, done.text
    lines = read_lines(lenv.records, SYSTEM, "estimate", made["id"])
    assert [(ln["id"], ln["position"], ln["quantity"]) for ln in lines] == [
        (third["id"], 1, 1), (first["id"], 2, 4), (lines[2]["id"], 3, 2)]
    assert lenv.records.get(SYSTEM, "estimate", made["id"])["subtotal"] == Decimal("60.00")


def test_a_grid_picker_fills_its_own_rows_input(lenv: Env, pages: TestClient) -> None:
    (a,) = products(lenv, "Valve")
    hits = pages.get("/e/estimate_line/pick/lines-3-product?q=Val")
    assert hits.status_code == 200
    assert 'hx-target="#picker-lines-3-product"' in hits.text
    assert f"/e/estimate_line/pick/lines-3-product/choose?id={a}" in hits.text
    chosen = pages.get(f"/e/estimate_line/pick/lines-3-product/choose?id={a}")
    assert f'name="lines-3-product" value="{a}"' in chosen.text
    assert pages.get("/e/estimate_line/pick/lines-3-nothing?q=V").status_code == 404


def test_a_stale_line_on_the_page_is_a_conflict_at_its_row(lenv: Env,
                                                           pages: TestClient) -> None:
    (a,) = products(lenv, "Valve")
    made = lenv.records.create(SYSTEM, "estimate", {"name": "Retrofit"})
    saved = save_with_lines(lenv.records, SYSTEM, "estimate", made["id"], {}, made["version"],
                            [LineEdit({"product": a, "quantity": 1, "price": "10"})])
    (line,) = saved["lines"]
    lenv.records.update(SYSTEM, "estimate_line", line["id"], {"note": "theirs"},
                        line["version"])
    refused = post_form(pages, f"/e/estimate/{made['id']}/edit", [
        ("version", str(saved["version"])), ("name", "Retrofit"), *row(0, a, 5, "10"),
        ("lines-0-id", str(line["id"])), ("lines-0-version", str(line["version"]))])
    assert refused.status_code == 409
    assert "changed by someone else" in refused.text
    assert 'value="5"' in cell(refused.text, "lines-0-quantity")  # what was typed stays
    assert lenv.records.get(SYSTEM, "estimate_line", line["id"])["quantity"] == 1


def test_the_shipped_quote_edits_its_lines_as_a_grid(env: Env) -> None:
    """config/forms/quote.yaml: the lines start from their product (formula defaults), in
    the preview as in the save, and the quote's total is their sum."""
    client = env.client(env.users.new_token("admin"))
    acme = env.records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    turbine = env.records.create(SYSTEM, "product", {"name": "Turbine", "code": "T-1",
                                                     "list_price": "1000"})["id"]
    made = client.post("/api/quote", json={"name": "Turbines", "account": acme, "lines": [
        {"values": {"product": turbine, "quantity": "2"}},
        {"values": {"product": turbine, "quantity": "1", "unit_price": "900",
                    "discount": "10"}}]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert [ln["line_total"] for ln in body["lines"]] == ["2000.00", "810.00"]
    assert body["lines"][0]["description"] == "Turbine"
    assert (body["line_count"], body["total"]) == (2, "2810.00")
    pages = env.client()
    pages.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(pages, "admin", ADMIN_PASSWORD).status_code == 303
    edit = pages.get(f"/e/quote/{body['id']}/edit")
    assert 'id="line-grid"' in edit.text and 'name="lines-1-unit_price"' in edit.text
    token = csrf_of(edit.text)
    preview = pages.post("/e/quote/preview", content=urlencode([
        ("csrf_token", token), ("lines-order", "0"), ("lines-0-product", str(turbine)),
        ("lines-0-quantity", "3"), ("lines-0-unit_price", "")]),
        headers={"Content-Type": "application/x-www-form-urlencoded"}).text
    assert re.search(r'id="computed-lines-0-line_total"[^>]*>[^<]*3,000\.00<', preview)
    assert re.search(r'id="computed-total"[^>]*>[^<]*3,000\.00<', preview)

"""Formulas over HTTP: computed fields in JSON, `?filter=`, sorting, validation messages
and `/explain/<field>`; SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Env


def make(api: TestClient, env: Env, name: str, **values: Any) -> dict[str, Any]:
    account = env.records.create(env.admin.actor(), "account", {"name": f"Acme {name}"})
    response = api.post("/api/opportunity", json={"name": name, "account": account["id"],
                                                  **values})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def names(api: TestClient, **params: str) -> list[str]:
    response = api.get("/api/opportunity", params=params)
    assert response.status_code == 200, response.text
    return [r["name"] for r in response.json()["items"]]


def test_computed_fields_in_json(api: TestClient, env: Env) -> None:
    body = make(api, env, "a", amount="1000", stage="proposal")
    assert (body["probability"], body["weighted"], body["score"]) == ("50.0000", "500.00", 0)
    got = api.get(f"/api/opportunity/{body['id']}").json()
    assert got["weighted"] == "500.00"


def test_computed_field_cannot_be_written(api: TestClient, env: Env) -> None:
    body = make(api, env, "a", amount="10")
    response = api.patch(f"/api/opportunity/{body['id']}",
                         json={"version": 1, "score": 100})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"score": "is computed and cannot be written"}


def test_lost_without_reason_is_422(api: TestClient, env: Env) -> None:
    account = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    response = api.post("/api/opportunity", json={"name": "x", "account": account["id"],
                                                  "stage": "lost"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {
        "lost_reason": "A lost opportunity needs a lost reason"}


def test_filter_and_sort_on_formulas(api: TestClient, env: Env) -> None:
    make(api, env, "a", amount="1000", stage="proposal")          # weighted 500
    make(api, env, "b", amount="600", stage="negotiation")        # 480
    make(api, env, "c", amount="2000", stage="prospecting")       # 200
    make(api, env, "d", amount="900", stage="won", budget="confirmed")  # 900, score 30
    assert names(api, sort="-weighted") == ["d", "a", "b", "c"]
    assert names(api, filter="weighted > 400", sort="weighted") == ["b", "a", "d"]
    assert names(api, filter='stage = "won" OR amount < 700') == ["b", "d"]
    assert names(api, filter="score >= 30") == ["d"]
    assert names(api, filter="LEN(account.name) = 6", sort="name") == [
        "a", "b", "c", "d"]
    assert names(api, filter="weighted > 400", weighted__lt="500") == ["b"]


def test_bad_filters_are_400(api: TestClient) -> None:
    cases = {
        "amout > 1": "1:1: unknown field 'amout'; did you mean 'amount'?",
        "amount + 1": "1:1: this formula gives a number, but a boolean is needed here",
        "amount >": "1:9: the formula ends too early: expected a value",
        "ISCHANGED(stage)": "1:1: ISCHANGED cannot run in the database, so this formula "
                            "can't be filtered or sorted on",
    }
    for source, message in cases.items():
        response = api.get("/api/opportunity", params={"filter": source})
        assert response.status_code == 400, source
        assert response.json()["error"]["fields"] == {"filter": message}, source


def test_nested_filters_run_small(api: TestClient, env: Env) -> None:
    """Filters that once compiled to megabytes of SQL (each power, quotient or rounding
    copied its operand, and nesting multiplied the copies) answer like any other."""
    make(api, env, "a", amount="1000", stage="proposal")
    make(api, env, "b", amount="7", stage="won")
    assert names(api, filter="2^2^2^2^2^2 > 0", sort="name") == ["a", "b"]
    assert names(api, filter="MOD(MOD(MOD(MOD(amount, 13), 11), 7), 3) = 1",
                 sort="name") == ["a"]
    assert names(api, filter="SQRT(SQRT(SQRT(SQRT(SQRT(SQRT(amount)))))) > 1.1") == ["a"]
    assert names(api, filter="amount / 2 / 2 / 2 / 2 / 2 / 2 / 2 / 2 > 3") == ["a"]


def test_filters_past_the_sql_bound_are_400(api: TestClient) -> None:
    """17 characters once became 13 MB of SQL, 44 s and a 500: now refused before any
    query runs, naming the limit (SQLite's parser reads only so many levels)."""
    response = api.get("/api/opportunity", params={"filter": "2^2^2^2^2^2^2^2^2 > 0"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"filter": (
        "1:1: the formula's SQL nests too deeply for SQLite's parser (the limit); simplify "
        "it or split it into formula fields")}
    years = "MAX(" + ", ".join(["YEAR(DATE(amount, amount, amount))"] * 90) + ") > 0"
    response = api.get("/api/opportunity", params={"filter": years})
    assert response.status_code == 400
    message = response.json()["error"]["fields"]["filter"]
    assert message.startswith("1:1: the formula's SQL has more than ")
    assert "(the limit)" in message
    many = "MAX(" + ",".join(["1"] * 1000) + ") > 0"
    response = api.get("/api/opportunity", params={"filter": many})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"filter": (
        "1:2003: the formula has 1,003 values, operators and calls; the limit is 1,000")}


def test_explain_a_score(api: TestClient, env: Env) -> None:
    body = make(api, env, "a", budget="confirmed", authority="influencer", need="urgent")
    response = api.get(f"/api/opportunity/{body['id']}/explain/score")
    assert response.status_code == 200, response.text
    assert response.json() == {"field": "score", "value": 65, "terms": [
        {"formula": 'CASE(budget, "confirmed", 30, "estimated", 15, 0)', "value": "30",
         "reads": [{"field": "budget", "value": "confirmed"}],
         "answers": "Budget: Confirmed", "text": "Budget: Confirmed → 30"},
        {"formula": 'IF(authority = "decision_maker", 25, IF(authority = "influencer", 10, 0))',
         "value": "10", "reads": [{"field": "authority", "value": "influencer"}],
         "answers": "Authority: Influencer", "text": "Authority: Influencer → 10"},
        {"formula": 'CASE(need, "urgent", 25, "planned", 10, 0)', "value": "25",
         "reads": [{"field": "need", "value": "urgent"}],
         "answers": "Need: Urgent", "text": "Need: Urgent → 25"},
        {"formula": 'CASE(timeline, "this_quarter", 20, "this_year", 10, 0)', "value": "0",
         "reads": [{"field": "timeline", "value": None}],
         "answers": "Timeline: no answer", "text": "Timeline: no answer → 0"},
    ]}
    assert response.headers["content-language"] == "en"
    chinese = api.get(f"/api/opportunity/{body['id']}/explain/score",
                      headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert chinese.headers["content-language"] == "zh-CN"
    C = "\uff1a"  # the full-width colon Chinese writes after a label
    assert [t["text"] for t in chinese.json()["terms"]] == [
        f"预算{C}已确认 → 30", f"决策权{C}影响者 → 10", f"需求{C}紧迫 → 25", f"时间表{C}未填写 → 0"]
    weighted = api.get(f"/api/opportunity/{body['id']}/explain/weighted")
    assert weighted.status_code == 400
    assert weighted.json()["error"]["fields"] == {
        "field": "its formula is not a sum (a + b + c)"}
    unknown = api.get(f"/api/opportunity/{body['id']}/explain/nothing")
    assert unknown.status_code == 404
    assert api.get("/api/opportunity/999999/explain/score").status_code == 404


def test_a_filter_past_the_bound_with_computed_fields_inlined_is_400(api: TestClient) -> None:
    """A computed field's SQL runs inside the filter that reads it: many reads of one
    pass the bound only then, and answer 400 all the same, not 500."""
    many = "MAX(" + ",".join(["weighted"] * 300) + ") > 0"
    response = api.get("/api/opportunity", params={"filter": many})
    assert response.status_code == 400, response.text
    message = response.json()["error"]["fields"]["filter"]
    assert message.startswith("1:1: the formula's SQL has more than ")
    assert "(the limit)" in message

"""Pipeline snapshots in the JSON API (engine/web/pipeline.py): the list, taking one, the
forecast history and the waterfall with a step's deals, within the caller's access; bad
input is a 4xx."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.access_helpers import user
from tests.conftest import Env
from tests.test_api import assert_error
from tests.test_reports_waterfall import World, build


@pytest.fixture
def world(env: Env) -> World:
    return build(env)


def test_the_snapshots_and_taking_one(world: World, api: TestClient) -> None:
    env = world.env
    body = api.get("/api/pipeline/snapshots").json()
    assert body["may_take"] is True
    assert [(s["id"], s["kind"], s["deals"]) for s in body["items"]] == [
        (world.second, "on_demand", 6), (world.first, "on_demand", 7)]
    assert body["items"][1]["taken_at"] == "2027-01-04T08:00:00+00:00"
    taken = api.post("/api/pipeline/snapshots")
    assert taken.status_code == 201
    assert (taken.json()["deals"], taken.json()["taken_by"]) == (6, env.admin.id)
    rep = env.client(env.users.new_token("rep_a"))
    assert rep.get("/api/pipeline/snapshots").json()["may_take"] is False
    assert_error(rep.post("/api/pipeline/snapshots"), 403, "forbidden")
    counts = {s["id"]: s["deals"] for s in rep.get("/api/pipeline/snapshots").json()["items"]}
    # rep_a's deals as each snapshot stored them: d1, d2, d5, d7; then d5 alone
    assert counts == {world.first: 4, world.second: 1, taken.json()["id"]: 1}
    assert api.get("/api/pipeline/snapshots",
                   headers={"Authorization": ""}).status_code == 401


def test_the_forecast_history(world: World, api: TestClient) -> None:
    body = api.get("/api/pipeline/forecast?limit=1").json()
    assert [s["id"] for s in body["snapshots"]] == [world.second]
    assert sorted((c["month"], c["category"], c["deals"], c["weighted"])
                  for c in body["cells"]) == [
        ("2027-03", "best_case", 3, "2200.00"), ("2027-03", "commit", 1, "2800.00"),
        ("2027-03", "pipeline", 1, "70.00"), ("2027-04", "pipeline", 1, "500.00")]
    assert_error(api.get("/api/pipeline/forecast?limit=x"), 400, "bad_request")


def test_the_waterfall_defaults_to_the_last_two(world: World, api: TestClient) -> None:
    body = api.get("/api/pipeline/waterfall?period=2027-03").json()
    assert (body["from"]["id"], body["to"]["id"], body["period"], body["measure"]) == (
        world.first, world.second, "2027-03", "amount")
    assert body["start"] == {"deals": 6, "value": "15700.00"}
    assert body["end"] == {"deals": 5, "value": "8600.00"}
    steps = {s["step"]: s["value"] for s in body["steps"] if s["deals"]}
    assert steps == {"new": "800.00", "increased": "500.00", "decreased": "-1000.00",
                     "won": "-1000.00", "lost": "-2000.00", "moved_in": "600.00",
                     "moved_out": "-5000.00"}
    won = api.get(f"/api/pipeline/waterfall?from={world.first}&to={world.second}"
                  "&period=2027-03&step=won").json()
    assert won["deals"] == [{"id": world.ids["d1"], "from": "1000.00", "to": None,
                             "change": "-1000.00"}]
    assert won["truncated"] is False


def test_the_waterfall_within_access(world: World) -> None:
    env = world.env
    rep = env.client(env.users.new_token("rep_a"))
    body = rep.get("/api/pipeline/waterfall?period=2027-03").json()
    assert body["start"] == {"deals": 4, "value": "8700.00"}
    assert body["end"] == {"deals": 0, "value": "0.00"}
    user(env, "mkt", "marketing")  # the amount is hidden from marketing
    mkt = env.client(env.users.new_token("mkt"))
    refused = mkt.get("/api/pipeline/waterfall")
    assert_error(refused, 403, "forbidden")
    assert "amount" not in refused.text
    assert_error(mkt.get("/api/pipeline/forecast"), 403, "forbidden")
    user(env, "agent", "service_agent")  # reads no opportunity
    agent = env.client(env.users.new_token("agent"))
    assert_error(agent.get("/api/pipeline/snapshots"), 403, "forbidden")


@pytest.mark.parametrize("query", ["from=x", "from=1&to=2&period=2027-13",
                                   "measure=probability", "step=gone", "period=March"])
def test_bad_waterfall_input_is_400(world: World, api: TestClient, query: str) -> None:
    assert_error(api.get(f"/api/pipeline/waterfall?{query}"), 400, "bad_request")


def test_no_two_snapshots_is_404(env: Env, api: TestClient) -> None:
    assert_error(api.get("/api/pipeline/waterfall"), 404, "not_found")
    assert_error(api.get("/api/pipeline/waterfall?from=1&to=2"), 404, "not_found")

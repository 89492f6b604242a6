"""Why did this change? (engine/runtime/flows/explain.py, GET /api/<e>/<id>/automation and
the record page's panel): runs and stages for readers of the record only, without the
values of fields hidden from them; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from tests.access_helpers import without_timestamps
from tests.conftest import Env, EnvFactory
from tests.test_flows_hook import flows_env, opportunity
from tests.web_helpers import sign_in

FLOW = """\
flow: explained
entity: opportunity
stages:
  field: stage
triggers:
  - name: price_on_proposal
    on: [stage]
    when: 'AND(stage = "proposal", amount < 100)'
    actions:
      - set: {amount: '999', next_step: '"Price it"'}
"""


def moved(make_env: EnvFactory, config_dir: Path) -> tuple[Env, int]:
    env = flows_env(make_env, config_dir, FLOW)
    deal = opportunity(env, name="x", amount="5")
    env.records.update(env.admin.actor(), "opportunity", deal["id"], {"stage": "proposal"},
                       deal["version"])
    return env, deal["id"]


def test_the_api_explains_a_change_to_readers_without_hidden_values(
        make_env: EnvFactory, config_dir: Path) -> None:
    env, deal = moved(make_env, config_dir)
    admin = env.client(env.users.new_token("admin"))
    body = admin.get(f"/api/opportunity/{deal}/automation").json()
    fired = [r for r in body["runs"] if r["result"] == "fired"]
    (run,) = fired
    assert run["flow"] == "explained" and run["rule"] == "triggers.price_on_proposal"
    assert run["diff"] == {"amount": ["5.00", "999"], "next_step": [None, "Price it"]}
    assert run["inputs"] == {"stage": "proposal", "amount": "5.00"}
    assert run["by"] == "admin" and run["event"] == "stage"
    assert [s["stage"] for s in body["stages"]] == ["prospecting", "proposal"]
    assert body["runs"][0]["id"] > body["runs"][-1]["id"]  # newest first
    # marketing reads every opportunity but not its amount
    env.users.add("mia", ["marketing"], password="a-password")
    mia = env.client(env.users.new_token("mia"))
    seen = mia.get(f"/api/opportunity/{deal}/automation")
    assert seen.status_code == 200, seen.text
    (run,) = [r for r in seen.json()["runs"] if r["result"] == "fired"]
    assert run["diff"] == {"next_step": [None, "Price it"]}
    assert run["inputs"] == {"stage": "proposal"}
    assert all("amount" not in (a.get("values") or {}) for a in run["actions"])
    assert "999" not in without_timestamps(seen.text)
    # a sales rep reads only their own deals: the admin's is not there for them
    env.users.add("rob", ["sales_rep"], password="a-password")
    rob = env.client(env.users.new_token("rob"))
    answer = rob.get(f"/api/opportunity/{deal}/automation")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert rob.get("/api/opportunity/999999/automation").status_code == 404


def test_the_record_page_has_a_why_did_this_change_panel(make_env: EnvFactory,
                                                         config_dir: Path) -> None:
    env, deal = moved(make_env, config_dir)
    page = env.client()
    page.headers["Accept"] = "text/html"
    assert sign_in(page).status_code == 303
    detail = page.get(f"/e/opportunity/{deal}")
    assert f'hx-get="/e/opportunity/{deal}/automation"' in detail.text
    panel = page.get(f"/e/opportunity/{deal}/automation")
    assert panel.status_code == 200
    assert "Why did this change?" in panel.text and "price_on_proposal" in panel.text
    assert "Next step: — → Price it" in panel.text
    assert 'id="stage-history"' in panel.text and "Proposal" in panel.text
    # in the user's language
    env.users.set_locale(env.admin.id, "zh-CN")
    zh = page.get(f"/e/opportunity/{deal}/automation")
    assert "为什么会有这些变化" in zh.text and "方案报价" in zh.text
    # an entity no flow is about: nothing to show
    account = env.records.create(env.admin.actor(), "account", {"name": "Plain"})
    assert page.get(f"/e/account/{account['id']}/automation").text == ""

"""Assignment rules, team members and stage enter/leave actions of flows
(engine/metadata/flow_people.py, engine/runtime/flows/assignment.py): the shipped lead
assignment (round robin within a region, least open by territory, the fallback, nobody),
named users, the owner's manager, inactive users skipped, every pick explained, a concurrent
round robin on PostgreSQL, and mistakes at file:line:col; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.metadata.errors import ConfigErrors
from engine.metadata.loader import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.flows.dryrun import flow_test
from engine.runtime.schema.tables import AUTOMATION_RUN_TABLE
from tests.access_helpers import Person, departments, user
from tests.conftest import Env, EnvFactory
from tests.deals import win
from tests.test_flows_hook import flows_env
from tests.web_helpers import sign_in


def web_lead(env: Env, industry: str, *, source: str = "website",
             **values: Any) -> dict[str, Any]:
    return env.records.create(env.admin.actor(), "lead", {
        "company": f"{industry} co", "industry": industry, "source": source, **values})


def owner_name(env: Env, lead: dict[str, Any]) -> str | None:
    row = env.records.get(SYSTEM, "lead", lead["id"])
    if row["owner_id"] is None:
        return None
    return env.users.get(row["owner_id"]).name


def runs(env: Env, entity: str, record_id: int) -> list[dict[str, Any]]:
    t = env.records.schema.table(AUTOMATION_RUN_TABLE)
    with env.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).where(
            t.c.entity == entity, t.c.record_id == record_id).order_by(t.c.id)).mappings()]


class Sales:
    """Sales reps of the shipped org: east_1 (Shanghai), east_2 (Hangzhou), north_1
    (Beijing), north_2 (Shenyang); east_off (Shanghai, deactivated) and a presales engineer
    in Shanghai, who are never picked."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.d = d = departments(env)
        self.east_1 = user(env, "east_1", "sales_rep", department=d["SH"])
        self.east_2 = user(env, "east_2", "sales_rep", department=d["HZ"])
        self.north_1 = user(env, "north_1", "sales_rep", department=d["BJ"])
        self.north_2 = user(env, "north_2", "sales_rep", department=d["SY"])
        user(env, "east_off", "sales_rep", department=d["SH"])
        env.users.set_active("east_off", False)
        user(env, "presales_sh", "presales", department=d["SH"])


@pytest.fixture
def sales(env: Env) -> Sales:
    return Sales(env)


def test_aviation_web_leads_go_round_robin_within_the_east_region(sales: Sales) -> None:
    env = sales.env
    owners = [owner_name(env, web_lead(env, "aviation")) for _ in range(6)]
    assert Counter(owners) == {"east_1": 3, "east_2": 3}  # fair; never inactive or presales
    assert owners[0] != owners[1]  # in turn
    lead = web_lead(env, "aviation")
    (run,) = [r for r in runs(env, "lead", lead["id"]) if r["rule"].startswith("triggers.")]
    assert run["result"] == "fired"
    assign, notify = run["actions"]
    assert assign["kind"] == "assign" and assign["rule"] == 0
    assert assign["by"] == "round_robin" and assign["pool"] == ["east_1", "east_2"]
    assert "round robin: turn 7 among 2 active users" in assign["why"]
    # later actions see the new owner: the notice goes to the rep
    assert notify["to"] == env.users.by_name(assign["to"]).id
    # assigned through the assign path: audited, the department follows the owner
    row = env.records.get(SYSTEM, "lead", lead["id"])
    assert row["department_id"] == env.users.by_name(assign["to"]).department_id
    history = env.records.history(SYSTEM, "lead", lead["id"])
    assert any(h["action"] == "assign" for h in history)


def test_least_open_by_territory_counts_only_open_leads(sales: Sales) -> None:
    env = sales.env
    records, admin = env.records, env.admin.actor()
    for status in ("new", "working"):  # north_1 holds two open leads
        made = records.create(admin, "lead", {"company": "x", "status": status})
        records.assign(SYSTEM, "lead", made["id"], owner=sales.north_1.id, department=None)
    for _ in range(3):  # north_2 three closed ones, which do not count
        made = records.create(admin, "lead", {"company": "y", "status": "disqualified"})
        records.assign(SYSTEM, "lead", made["id"], owner=sales.north_2.id, department=None)
    first = web_lead(env, "energy")
    assert owner_name(env, first) == "north_2"
    (assign, _) = next(r for r in runs(env, "lead", first["id"])
                       if r["rule"] == "triggers.assign_web_leads")["actions"]
    assert assign["rule"] == 1 and assign["by"] == "least_open"
    assert assign["why"] == ("least open: north_2 has the fewest open lead records "
                             "(north_1 2, north_2 0)")
    assert [owner_name(env, web_lead(env, "public_sector")) for _ in range(3)] == [
        "north_2", "north_1", "north_2"]  # 1 vs 2, then 2 vs 2 (lowest id), then 3 vs 2


def test_other_industries_fall_back_to_every_rep_and_other_sources_stay(
        sales: Sales) -> None:
    env = sales.env
    owners = [owner_name(env, web_lead(env, "healthcare")) for _ in range(8)]
    assert Counter(owners) == {"east_1": 2, "east_2": 2, "north_1": 2, "north_2": 2}
    kept = web_lead(env, "aviation", source="referral")
    assert owner_name(env, kept) == "admin"
    (run,) = runs(env, "lead", kept["id"])
    assert run["result"] == "skipped" and "when is not true" in run["reason"]


def test_nobody_to_pick_keeps_the_owner_and_says_why(env: Env) -> None:
    departments(env)  # the departments, but no sales rep in them
    lead = web_lead(env, "energy")
    assert owner_name(env, lead) == "admin"
    (run,) = runs(env, "lead", lead["id"])
    assign = run["actions"][0]
    assert assign["to"] is None and assign["rule"] == "otherwise"
    assert assign["why"] == "no rule matched: kept"
    assert [p["skipped"] for p in assign["passed"]] == [
        'when is not true: industry = "aviation"',
        "no active user in North region with role sales_rep",
        "no active user in Headquarters with role sales_rep"]
    other = web_lead(env, "other")
    assert runs(env, "lead", other["id"])[0]["actions"][0]["passed"][1]["skipped"] == \
        "industry 'other' is in no territory"


def test_a_won_deal_adds_the_owners_manager_to_its_team(sales: Sales) -> None:
    env = sales.env
    records = env.records
    boss = user(env, "boss_bj", "sales_manager", department=sales.d["NORTH"])
    t = records.schema.table("department")
    with env.engine.begin() as conn:  # Beijing has no manager: the region's one is asked
        conn.execute(update(t).where(t.c.id == sales.d["NORTH"]).values(manager=boss.id))
    account = records.create(SYSTEM, "account", {"name": "Air Co"})
    deal = records.create(SYSTEM, "opportunity", {"name": "Jets", "account": account["id"]})
    records.assign(SYSTEM, "opportunity", deal["id"], owner=sales.north_1.id,
                   department=None)
    win(records, SYSTEM, deal["id"])
    assert [(m["user"], m["access"]) for m in records.team(SYSTEM, "opportunity",
                                                           deal["id"])] == [("boss_bj", "read")]
    run = next(r for r in runs(env, "opportunity", deal["id"])
               if r["rule"] == "stages.on_enter.won")
    assert run["result"] == "fired" and run["event"] == "stage"
    assert run["actions"] == [{"kind": "team", "access": "read", "users": ["boss_bj"],
                               "left_out": []}]


CUSTOM = """\
flow: custom
entity: lead
stages:
  field: status
  on_enter:
    qualified:
      - team: {users: [u_b, nobody], member: owner_manager, access: edit}
  on_leave:
    new:
      - set: {notes: '"left new for " & status'}
triggers:
  - name: by_users
    on: [create]
    when: 'source = "referral"'
    actions:
      - assign:
          rules:
            - when: 'estimated_value > 1000'
              to: {users: [u_a, u_b, u_gone]}
              by: least_open
          otherwise: owner_manager
"""


def test_named_users_owner_manager_and_stage_actions(make_env: EnvFactory,
                                                     config_dir: Path) -> None:
    env = flows_env(make_env, config_dir, CUSTOM)
    d = departments(env)
    u_a = user(env, "u_a", "sales_rep", department=d["SH"])
    user(env, "u_b", "sales_rep", department=d["SH"])
    user(env, "u_gone", "sales_rep", department=d["SH"])
    env.users.set_active("u_gone", False)
    boss = user(env, "boss", "sales_manager", department=d["EAST"])
    t = env.records.schema.table("department")
    with env.engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == d["EAST"]).values(manager=boss.id))
    records = env.records
    big = [web_lead(env, "other", source="referral", estimated_value="5000")
           for _ in range(3)]
    assert [owner_name(env, x) for x in big] == ["u_a", "u_b", "u_a"]
    # no rule matches: the owner's manager (u_a's department has none; the region's boss)
    rep = Person(u_a.id, u_a.name, u_a.roles, u_a.department_id)
    small = records.create(rep, "lead", {"company": "s", "source": "referral",
                                         "estimated_value": "10"})
    assert owner_name(env, small) == "boss"
    assign = runs(env, "lead", small["id"])[0]["actions"][0]
    assert assign == {"kind": "assign", "rule": "otherwise", "to": "boss",
                      "why": "no rule matched: the owner's manager",
                      "passed": [{"rule": 0, "pool": "users u_a, u_b, u_gone",
                                  "skipped": "when is not true: estimated_value > 1000"}]}
    # leaving new, entering qualified: both run, in the same write
    lead = records.get(SYSTEM, "lead", big[0]["id"])
    records.update(SYSTEM, "lead", lead["id"], {"status": "qualified"}, lead["version"])
    lead = records.get(SYSTEM, "lead", lead["id"])
    assert lead["notes"] == "left new for qualified"
    assert [(m["user"], m["access"]) for m in records.team(SYSTEM, "lead", lead["id"])] == [
        ("boss", "edit"), ("u_b", "edit")]
    fired = {r["rule"]: r for r in runs(env, "lead", lead["id"]) if r["result"] == "fired"}
    assert {"stages.on_leave.new", "stages.on_enter.qualified"} <= set(fired)
    assert fired["stages.on_enter.qualified"]["actions"][0]["left_out"] == [
        "no active user nobody"]


def test_round_robin_is_fair_under_concurrent_writes(make_env: EnvFactory) -> None:
    env = make_env()
    if env.engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite runs one writer at a time)")
    Sales(env)
    admin = env.admin.actor()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(10):
                env.records.create(admin, "lead", {"company": "c", "industry": "aviation",
                                                   "source": "website"})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lead = env.records.schema.table("lead")
    with env.engine.connect() as conn:
        owners = [r[0] for r in conn.execute(select(lead.c.owner_id).order_by(lead.c.id))]
    names = Counter(env.users.get(o).name for o in owners)
    assert names == {"east_1": 10, "east_2": 10}
    turns = sorted(int(r["actions"][0]["why"].split()[3])
                   for i in range(len(owners))
                   for r in runs(env, "lead", i + 1) if r["result"] == "fired")
    assert turns == list(range(1, 21))  # every turn taken once


BAD = """\
flow: bad
entity: lead
stages:
  field: status
  on_enter:
    qualifed:
      - team: {member: company}
triggers:
  - name: t
    on: [create]
    actions:
      - assign:
          rules:
            - to: {department: Nowhere, roles: [salesrep]}
            - to: {territory: {field: company}}
            - to: {territory: {field: industry, map: {aviaton: East region}}}
          open_when: 'status = 1'
  - name: changing
    on: [update]
    actions:
      - assign:
          rules: [{to: {users: [a]}, by: least_open}]
          open_when: 'ISCHANGED(status)'
  - name: gone
    on: [delete]
    actions:
      - team: {users: [someone]}
"""


def test_mistakes_are_reported_at_file_line_col(config_dir: Path) -> None:
    (config_dir / "flows" / "bad.yaml").write_text(BAD, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_model(config_dir)
    text = str(caught.value)
    for expected in (
        "bad.yaml:6:5: stages.on_enter.qualifed: 'qualifed' is not an option of status "
        "(did you mean 'qualified'?)",
        "bad.yaml:7:24: stages.on_enter.qualifed.0.team.member: company is not a user field",
        "bad.yaml:14:32: triggers.0.actions.0.assign.rules.0.to.department: no department "
        "'Nowhere' in config/org.yaml",
        "triggers.0.actions.0.assign.rules.0.to.roles.0: no role 'salesrep' "
        "(did you mean 'sales_rep'?)",
        "bad.yaml:15:31: triggers.0.actions.0.assign.rules.1.to.territory: company is a "
        "text field: map its values",
        "triggers.0.actions.0.assign.rules.2.to.territory.map.aviaton: 'aviaton' is not an "
        "option of industry",
        "bad.yaml:17:22: formula 1:8: cannot compare text with a number",
        "bad.yaml:23:22: triggers.1.actions.0.assign.open_when: cannot run in SQL (ISCHANGED",
        "bad.yaml:27:9: triggers.2.actions.0.team: a delete trigger cannot add team members",
    ):
        assert expected in text, (expected, text)


def test_a_web_lead_created_through_the_api_goes_to_a_rep(sales: Sales) -> None:
    env = sales.env
    user(env, "mkt", "marketing", department=sales.d["HQ"])
    client = env.client(env.users.new_token("mkt"))
    answer = client.post("/api/lead", json={"company": "Sky Co", "industry": "aviation",
                                            "source": "website"})
    assert answer.status_code == 201
    assert answer.json()["owner_id"] in (sales.east_1.id, sales.east_2.id)
    rep = env.client(env.users.new_token("north_1"))  # a rep who may see only their own
    answer = rep.post("/api/lead", json={"company": "Jet Co", "industry": "aviation",
                                         "source": "website"})
    assert answer.status_code == 201  # created, then handed to an East region rep
    assert answer.json()["owner_id"] in (sales.east_1.id, sales.east_2.id)
    assert rep.get(f"/api/lead/{answer.json()['id']}").status_code == 404


def test_the_record_page_explains_the_assignment(sales: Sales) -> None:
    env = sales.env
    lead = web_lead(env, "aviation")
    pages = env.client()
    pages.headers["Accept"] = "text/html"
    assert sign_in(pages).status_code == 303
    panel = pages.get(f"/e/lead/{lead['id']}/automation")
    assert panel.status_code == 200
    assert "Assigned to east_1: round robin: turn 1 among 2 active users goes to east_1" \
        in panel.text
    env.users.set_locale(env.admin.id, "zh-CN")
    assert "已分配给 east_1" in pages.get(f"/e/lead/{lead['id']}/automation").text


def test_a_dry_run_says_who_would_get_the_lead_and_takes_no_turn(sales: Sales) -> None:
    env = sales.env
    lines = flow_test(env.records, "lead_assignment", "lead",
                      record={"company": "Dry", "industry": "aviation",
                              "source": "website"}).lines()
    assert any("assign to east_1: round robin: turn 1 among 2 active users" in line
               for line in lines), lines
    assert owner_name(env, web_lead(env, "aviation")) == "east_1"  # the turn was not kept

"""Flows at run time (engine/runtime/flows/hook.py): stage rules refuse moves through the
write pipeline, triggers run in the write's transaction, loops are bounded and explained,
stages are written to their history; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.runtime.errors import Invalid
from engine.runtime.records.unit import MAX_DEPTH, ChainTooDeep
from engine.runtime.schema.tables import (
    AUTOMATION_RUN_TABLE,
    NOTIFICATION_TABLE,
    STAGE_HISTORY_TABLE,
)
from tests.conftest import Env, EnvFactory

FLOW = """\
flow: test_pipeline
entity: opportunity
stages:
  field: stage
  transitions: {prospecting: [qualification, lost], qualification: [proposal, lost]}
  guards:
    - {to: won, when: 'amount > 1000', message: {en: A won deal is over 1000, zh: 赢单需超过1000}}
  require: {qualification: [close_date]}
triggers:
  - name: next_step_on_stage
    on: [stage]
    when: 'stage = "proposal"'
    actions:
      - set: {next_step: '"Send the proposal for " & name'}
      - create:
          entity: activity
          values: {subject: '"Proposal call: " & name', kind: '"call"', opportunity: 'id'}
      - notify: {to: owner, message: {en: Proposal stage, zh: 方案阶段}}
  - name: describe_on_next_step
    on: [update]
    when: 'NOT(ISBLANK(next_step))'
    actions:
      - set: {description: '"Next: " & next_step'}
"""

LOOP = """\
flow: loop
entity: opportunity
triggers:
  - name: bump
    on: [update]
    fields: [next_step]
    actions:
      - set: {next_step: 'next_step & "+"'}
"""


def flows_env(make_env: EnvFactory, config_dir: Path, *texts: str) -> Env:
    folder = config_dir / "flows"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()  # the shipped flows are tested on their own
    for n, text in enumerate(texts):
        (folder / f"f{n}.yaml").write_text(text, encoding="utf-8")
    return make_env(config_dir)


@pytest.fixture
def env_flows(make_env: EnvFactory, config_dir: Path) -> Env:
    return flows_env(make_env, config_dir, FLOW)


def opportunity(env: Env, **values: Any) -> dict[str, Any]:
    admin = env.admin.actor()
    account = env.records.create(admin, "account", {"name": f"Acme {values.get('name', '')}"})
    return env.records.create(admin, "opportunity",
                              {"name": "Deal", "account": account["id"], **values})


def count(env: Env, table: str, **where: Any) -> int:
    t = env.records.schema.table(table)
    with env.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t).where(
            *[t.c[k] == v for k, v in where.items()])).scalar_one()


def runs(env: Env, record_id: int) -> list[dict[str, Any]]:
    t = env.records.schema.table(AUTOMATION_RUN_TABLE)
    with env.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(t).where(t.c.entity == "opportunity", t.c.record_id == record_id)
            .order_by(t.c.id)).mappings()]


def test_a_move_outside_the_transitions_is_refused_and_changes_nothing(env_flows: Env) -> None:
    env = env_flows
    deal = opportunity(env, name="a")
    api = env.client(env.users.new_token("admin"))
    audit_before = count(env, "crm_audit")
    answer = api.patch(f"/api/opportunity/{deal['id']}",
                       json={"stage": "won", "amount": "5000", "version": deal["version"]})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid"
    assert "cannot move from prospecting to won (flow test_pipeline)" in error["message"]
    assert error["fields"]["stage"] == "prospecting may move only to: qualification, lost"
    got = env.records.get(env.admin.actor(), "opportunity", deal["id"])
    assert got["stage"] == "prospecting" and got["version"] == deal["version"]
    assert count(env, "crm_audit") == audit_before


def test_required_fields_and_guards_name_the_stage_and_the_rule(env_flows: Env) -> None:
    env, admin = env_flows, env_flows.admin.actor()
    deal = opportunity(env, name="b")
    with pytest.raises(Invalid) as caught:
        env.records.update(admin, "opportunity", deal["id"], {"stage": "qualification"},
                           deal["version"])
    assert caught.value.fields == {"close_date": "is required on entering qualification"}
    assert "without close_date" in caught.value.message
    # a new record's stage meets the guards of the stage it starts in
    account = env.records.create(admin, "account", {"name": "Guarded"})
    with pytest.raises(Invalid) as caught:
        env.records.create(admin, "opportunity", {"name": "W", "account": account["id"],
                                                  "stage": "won", "amount": "10"})
    assert caught.value.fields["stage"] == "A won deal is over 1000"
    assert "cannot move from (new) to won: A won deal is over 1000" in caught.value.message
    api = env.client(env.users.new_token("admin"))
    answer = api.post("/api/opportunity", json={"name": "W", "account": account["id"],
                                                "stage": "won", "amount": "10"},
                      headers={"Accept-Language": "zh-CN"})
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"]["stage"] == "赢单需超过1000"
    made = env.records.create(admin, "opportunity", {"name": "W", "account": account["id"],
                                                     "stage": "won", "amount": "1001"})
    assert made["stage"] == "won"


def test_triggers_run_in_the_write_and_explain_themselves(env_flows: Env) -> None:
    env, admin = env_flows, env_flows.admin.actor()
    deal = opportunity(env, name="c", close_date="2027-01-31")
    deal = env.records.update(admin, "opportunity", deal["id"], {"stage": "qualification"},
                              deal["version"])
    assert deal["next_step"] is None  # the trigger's when is false
    deal = env.records.update(admin, "opportunity", deal["id"], {"stage": "proposal"},
                              deal["version"])
    # set through the same unit: the answer already shows it, and what it set fired the
    # second trigger, whose own change then ran nothing again
    assert deal["next_step"] == "Send the proposal for c"
    assert deal["description"] == "Next: Send the proposal for c"
    t = env.records.schema.table("activity")
    with env.engine.connect() as conn:
        (act,) = conn.execute(select(t).where(t.c.opportunity == deal["id"])).mappings()
    assert act["subject"] == "Proposal call: c" and act["kind"] == "call"
    assert act["owner_id"] == deal["owner_id"]
    assert count(env, NOTIFICATION_TABLE, record_id=deal["id"]) == 1
    rows = runs(env, deal["id"])
    fired = [r for r in rows if r["result"] == "fired"]
    assert [r["rule"] for r in fired] == ["triggers.next_step_on_stage",
                                          "triggers.describe_on_next_step"]
    first, second = fired
    assert first["diff"] == {"next_step": [None, "Send the proposal for c"]}
    assert first["event"] == "stage" and first["cause_id"] is None
    assert second["cause_id"] == first["id"]  # the run whose set changed next_step
    assert [a["kind"] for a in first["actions"]] == ["set", "create", "notify"]
    assert first["config_hash"] and first["by_user"] == env.admin.id
    skipped = [r for r in rows if r["result"] == "skipped"]
    assert any("when is not true" in r["reason"] for r in skipped)
    # describe_on_next_step's own set is an update of the record: it was evaluated again
    # and written as skipped, with the reason
    assert any(r["rule"] == "triggers.describe_on_next_step" and "already ran on this "
               "record in this write; its watched fields (next_step) have not changed"
               in r["reason"] for r in skipped)
    passed = [r for r in rows if r["result"] == "passed"]
    # the moves a rule judged (a new record's first stage has no rule here)
    assert [r["inputs"]["stage"] for r in passed] == [["prospecting", "qualification"],
                                                      ["qualification", "proposal"]]
    # the audit names the user who made the change, the set fields included
    history = env.records.history(admin, "opportunity", deal["id"])
    assert any(h.get("field") == "next_step" for h in history)


def test_stage_history_records_entering_and_leaving(env_flows: Env) -> None:
    env, admin = env_flows, env_flows.admin.actor()
    deal = opportunity(env, name="d", close_date="2027-01-31")
    for stage in ("qualification", "lost"):
        deal = env.records.update(admin, "opportunity", deal["id"],
                                  {"stage": stage, "lost_reason": "price"}, deal["version"])
    t = env.records.schema.table(STAGE_HISTORY_TABLE)
    with env.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.record_id == deal["id"],
                                            t.c.entity == "opportunity")
                            .order_by(t.c.id)).mappings().all()
    assert [r["stage"] for r in rows] == ["prospecting", "qualification", "lost"]
    assert [r["left_at"] is None for r in rows] == [False, False, True]
    assert all(r["entered_by"] == env.admin.id for r in rows)
    assert rows[0]["left_at"] == rows[1]["entered_at"]


def test_a_trigger_loop_is_stopped_with_the_chain_named(make_env: EnvFactory,
                                                        config_dir: Path) -> None:
    env = flows_env(make_env, config_dir, LOOP)
    admin = env.admin.actor()
    deal = opportunity(env, name="e", next_step="go")
    runs_before = count(env, AUTOMATION_RUN_TABLE)
    with pytest.raises(ChainTooDeep) as caught:
        env.records.update(admin, "opportunity", deal["id"], {"next_step": "now"},
                           deal["version"])
    chain = f"opportunity {deal['id']} (update)"
    assert f"more than {MAX_DEPTH} rounds" in caught.value.message
    assert caught.value.message.count(chain) == MAX_DEPTH + 1
    got = env.records.get(admin, "opportunity", deal["id"])
    assert got["next_step"] == "go" and got["version"] == deal["version"]  # nothing stayed
    assert count(env, AUTOMATION_RUN_TABLE) == runs_before
    api = env.client(env.users.new_token("admin"))
    answer = api.patch(f"/api/opportunity/{deal['id']}",
                       json={"next_step": "later", "version": deal["version"]})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "hook_chain_too_deep"


def test_a_config_without_flows_installs_no_hook(make_env: EnvFactory,
                                                 config_dir: Path) -> None:
    env = flows_env(make_env, config_dir)
    assert "flows" not in env.records.hooks.names


OUTBOX = """\
flow: tell
entity: opportunity
triggers:
  - name: tell_on_win
    on: [update]
    fields: [stage]
    when: 'stage = "won"'
    actions:
      - email: {to: [owner], subject: '"Won: " & name', text: '"Amount " & TEXT(amount)'}
      - webhook: {url: 'https://hooks.example.org/deals', secret_env: DEALS_SECRET}
"""


def test_email_and_webhook_actions_go_through_the_outbox(make_env: EnvFactory,
                                                         config_dir: Path) -> None:
    from sqlalchemy import update

    from engine.runtime.flows.dryrun import flow_test
    from engine.runtime.flows.outbox import messages

    env = flows_env(make_env, config_dir, OUTBOX)
    with env.engine.begin() as conn:
        users = env.records.users
        conn.execute(update(users).where(users.c.id == env.admin.id)
                     .values(email="admin@example.org"))
    admin = env.admin.actor()
    deal = opportunity(env, name="f", amount="250")
    # a dry run says what it would queue, and queues nothing
    report = flow_test(env.records, "tell", "opportunity", record_id=deal["id"],
                       changes={"stage": "won"})
    (run,) = [r for r in report.runs if r.result == "fired"]
    assert [a["kind"] for a in run.actions] == ["email", "webhook"]
    assert run.actions[0]["to"] == ["admin@example.org"]
    assert "           webhook" in "\n".join(report.lines())
    assert report.queued.emails == [{"to": ["admin@example.org"], "subject": "Won: f"}]
    assert report.queued.webhooks == [{"url": "https://hooks.example.org/deals",
                                       "event": "update"}]
    assert "email    admin@example.org: Won: f" in report.lines()
    with env.engine.connect() as conn:
        assert messages(conn) == []
    env.records.update(admin, "opportunity", deal["id"], {"stage": "won"}, deal["version"])
    with env.engine.connect() as conn:
        queued = {m["kind"]: m for m in messages(conn)}
    assert set(queued) == {"email", "webhook"}
    email = queued["email"]["payload"]
    assert email["to"] == ["admin@example.org"] and email["subject"] == "Won: f"
    assert email["text"] == "Amount 250"
    hook = queued["webhook"]["payload"]
    assert hook["url"] == "https://hooks.example.org/deals"
    assert hook["secret_env"] == "DEALS_SECRET" and hook["event"] == "update"
    assert hook["body"]["record"]["stage"] == "won" and hook["body"]["id"] == deal["id"]
    # one idempotency key per action of the run
    assert queued["email"]["key"].startswith("flow:") and queued["webhook"]["key"].startswith(
        "flow:") and queued["email"]["key"] != queued["webhook"]["key"]


AMOUNT_LOOP = """\
flow: amount_loop
entity: opportunity
triggers:
  - name: bump
    on: [update]
    fields: [amount]
    actions:
      - set: {amount: 'amount + 1'}
"""


def test_a_loop_through_a_rolled_up_field_names_the_triggers_chain(
        make_env: EnvFactory, config_dir: Path) -> None:
    """The account's rollups change with each round too; the chain still names the
    opportunity updates that caused each other."""
    env = flows_env(make_env, config_dir, AMOUNT_LOOP)
    deal = opportunity(env, name="g", amount="1")
    with pytest.raises(ChainTooDeep) as caught:
        env.records.update(env.admin.actor(), "opportunity", deal["id"], {"amount": "2"},
                           deal["version"])
    chain = caught.value.message.split(": ", 1)[1].split(" → ")
    assert chain[:MAX_DEPTH] == [f"opportunity {deal['id']} (update)"] * MAX_DEPTH

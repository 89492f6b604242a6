"""`crm flow test` (engine/runtime/flows/dryrun.py): a change runs through the pipeline,
flows included, inside a dry run; the report says what fired, what was skipped and why and
what would change, and nothing is written; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine.cli import main
from engine.runtime.errors import BadRequest, NotFound
from engine.runtime.flows.dryrun import flow_test
from tests.conftest import Env, EnvFactory
from tests.test_flows_hook import FLOW, flows_env, opportunity

TABLES = ("opportunity", "activity", "account", "crm_audit", "crm_automation_run",
          "crm_stage_history", "crm_notification")


def snapshot(env: Env) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with env.engine.connect() as conn:
        for name in TABLES:
            t = env.records.schema.table(name)
            out[name] = conn.execute(select(func.count()).select_from(t)).scalar_one()
        t = env.records.schema.table("opportunity")
        out["rows"] = [dict(r) for r in conn.execute(select(t).order_by(t.c.id)).mappings()]
    return out


@pytest.fixture
def env_flows(make_env: EnvFactory, config_dir: Path) -> Env:
    return flows_env(make_env, config_dir, FLOW)


def test_the_command_reports_and_writes_nothing(env_flows: Env, config_dir: Path,
                                                db_url: str) -> None:
    env = env_flows
    deal = opportunity(env, name="q", close_date="2027-01-31")
    deal = env.records.update(env.admin.actor(), "opportunity", deal["id"],
                              {"stage": "qualification"}, deal["version"])
    before = snapshot(env)
    args = ["--config", str(config_dir), "--db", db_url, "flow", "test", "test_pipeline",
            "--entity", "opportunity"]
    out = CliRunner().invoke(main, [*args, "--id", str(deal["id"]),
                                    "--set", json.dumps({"stage": "proposal"})])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert f"passed   test_pipeline.stages on opportunity {deal['id']} (stage)" in lines
    assert (f"fired    test_pipeline.triggers.next_step_on_stage on opportunity {deal['id']} "
            "(stage)") in lines
    assert "           set next_step: None -> 'Send the proposal for q'" in lines
    assert any(line.startswith("           create activity") for line in lines)
    assert any(line.startswith("skipped  test_pipeline.triggers.describe_on_next_step")
               and "have not changed since" in line for line in lines)
    assert any(line.startswith(f"change   opportunity {deal['id']} (update) stage: "
                               "'qualification' -> 'proposal'") for line in lines)
    assert lines[-1] == "dry run: nothing was written"
    assert snapshot(env) == before
    # a refused move: the rule and its message, exit 1, nothing written
    out = CliRunner().invoke(main, [*args, "--id", str(deal["id"]),
                                    "--set", json.dumps({"stage": "won"})])
    assert out.exit_code == 1
    assert "refused  test_pipeline.stages.transitions" in out.output
    assert "           stage: qualification may move only to: proposal, lost" in out.output
    assert snapshot(env) == before
    # a new record from JSON
    out = CliRunner().invoke(main, [*args, "--record", json.dumps(
        {"name": "New", "account": deal["account"], "stage": "won", "amount": "5"})])
    assert out.exit_code == 1 and "A won deal is over 1000" in out.output
    assert snapshot(env) == before
    for bad, message in [(["--id", "1"], "give the change to test (--set)"),
                         (["--id", str(deal["id"]), "--set", '{"stage": "won", "nope": 1}'],
                          "no field 'nope' of opportunity"),
                         (["--record", "[1]"], "--record is a JSON object"),
                         (["--set", "{"], "--set is not JSON")]:
        out = CliRunner().invoke(main, [*args, *bad])
        assert out.exit_code == 1 and message in out.output, out.output


def test_the_service_refuses_what_it_cannot_test(env_flows: Env) -> None:
    records = env_flows.records
    with pytest.raises(NotFound):
        flow_test(records, "nope", "opportunity", record_id=1, changes={"stage": "won"})
    with pytest.raises(BadRequest, match="is about opportunity"):
        flow_test(records, "test_pipeline", "account", record_id=1, changes={"x": 1})
    with pytest.raises(BadRequest, match="not both"):
        flow_test(records, "test_pipeline", "opportunity", record_id=1, record={},
                  changes={"stage": "won"})
    with pytest.raises(NotFound):
        flow_test(records, "test_pipeline", "opportunity", record_id=999999,
                  changes={"stage": "won"})

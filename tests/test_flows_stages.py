"""Stage rules and history (engine/runtime/flows/stages.py) under random walks of moves: a
move is accepted exactly when the transitions allow it, a refused one changes nothing, and
the history always has one open row, the record's stage; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.metadata.flows import StageRules
from engine.runtime.errors import Invalid
from engine.runtime.schema.tables import STAGE_HISTORY_TABLE
from tests.conftest import Env, EnvFactory
from tests.test_flows_hook import flows_env, opportunity

STAGES = ["prospecting", "qualification", "proposal", "negotiation", "won", "lost"]
FLOW = """\
flow: walk
entity: opportunity
stages:
  field: stage
  transitions:
    prospecting: [qualification, lost]
    qualification: [proposal, prospecting, lost]
    proposal: [negotiation, lost]
    negotiation: [won, lost, proposal]
    won: []
    lost: [prospecting]
"""


def rules_of(env: Env) -> StageRules:
    (flow,) = [f for f in env.model.flows if f.name == "walk"]
    assert flow.stages is not None
    return flow.stages


def test_random_walks_follow_the_transitions(make_env: EnvFactory, config_dir: Path) -> None:
    env = flows_env(make_env, config_dir, FLOW)
    rules = rules_of(env)
    admin = env.admin.actor()
    history = env.records.schema.table(STAGE_HISTORY_TABLE)
    made = [0]

    @settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.sampled_from(STAGES), min_size=1, max_size=6))
    def walk(moves: list[str]) -> None:
        made[0] += 1
        deal = opportunity(env, name=f"walk {made[0]}", lost_reason="price")
        stage, entered = "prospecting", ["prospecting"]
        for target in moves:
            if target == stage:
                continue
            allowed = rules.allowed(stage, target)
            try:
                deal = env.records.update(admin, "opportunity", deal["id"],
                                          {"stage": target}, deal["version"])
            except Invalid as exc:
                assert not allowed, (stage, target, exc.fields)
                assert exc.fields["stage"].startswith(f"{stage} may move only to")
                continue
            assert allowed, (stage, target)
            stage = target
            entered.append(target)
        got = env.records.get(admin, "opportunity", deal["id"])
        assert got["stage"] == stage
        with env.engine.connect() as conn:
            rows = conn.execute(select(history.c.stage, history.c.left_at).where(
                history.c.entity == "opportunity", history.c.record_id == deal["id"])
                .order_by(history.c.id)).all()
        assert [r.stage for r in rows] == entered
        assert [r.stage for r in rows if r.left_at is None] == [stage]

    walk()

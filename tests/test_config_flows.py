"""The shipped flows (config/flows): the opportunity pipeline keeps each deal's stage
history, asks a lost deal's reason, and tells the owner when a deal is won or lost; on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.metadata import load_model
from engine.runtime.errors import Invalid
from engine.runtime.schema.tables import NOTIFICATION_TABLE, STAGE_HISTORY_TABLE
from tests.conftest import CONFIG, Env


def test_the_shipped_flows_load() -> None:
    flows = {f.name: f for f in load_model(CONFIG).flows}
    pipeline = flows["opportunity_pipeline"]
    assert pipeline.entity == "opportunity" and pipeline.stages is not None
    assert pipeline.stages.required("lost") == ("lost_reason",)
    assert [t.name for t in pipeline.triggers] == ["won_notice", "lost_notice"]


def test_the_opportunity_pipeline_runs_in_every_write(env: Env) -> None:
    admin = env.admin.actor()
    records = env.records
    account = records.create(admin, "account", {"name": "Pipeline Ltd"})
    deal = records.create(admin, "opportunity", {"name": "Big", "account": account["id"]})
    with pytest.raises(Invalid) as caught:
        records.update(admin, "opportunity", deal["id"], {"stage": "lost"}, deal["version"])
    assert "lost_reason" in caught.value.fields
    deal = records.update(admin, "opportunity", deal["id"], {"stage": "negotiation"},
                          deal["version"])
    deal = records.update(admin, "opportunity", deal["id"], {"stage": "won"}, deal["version"])
    history = records.schema.table(STAGE_HISTORY_TABLE)
    notices = records.schema.table(NOTIFICATION_TABLE)
    with env.engine.connect() as conn:
        stages = conn.execute(select(history.c.stage, history.c.left_at).where(
            history.c.entity == "opportunity", history.c.record_id == deal["id"])
            .order_by(history.c.id)).all()
        sent = conn.execute(select(notices.c.user_id, notices.c.message).where(
            notices.c.record_id == deal["id"])).all()
    assert [s.stage for s in stages] == ["prospecting", "negotiation", "won"]
    assert [s.left_at is None for s in stages] == [False, False, True]
    assert sent == [(env.admin.id, {"en": "A deal of yours is won", "zh": "您的商机已赢单"})]
    api = env.client(env.users.new_token("admin"))
    body = api.get(f"/api/opportunity/{deal['id']}/automation").json()
    fired = [r["rule"] for r in body["runs"] if r["result"] == "fired"]
    # newest first: the team action of entering won ran before the triggers
    assert fired == ["triggers.won_notice", "stages.on_enter.won"]
    assert [s["stage"] for s in body["stages"]] == ["prospecting", "negotiation", "won"]

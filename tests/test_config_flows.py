"""The shipped flows (config/flows): the opportunity pipeline keeps each deal's stage
history, asks a lost deal's reason, wins a deal only on an accepted quote or a contract,
gives a deal that moves on its new stage's probability and forecast category, and tells the
owner when a deal is won or lost; on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.metadata import load_model
from engine.runtime.errors import Invalid
from engine.runtime.schema.tables import NOTIFICATION_TABLE, STAGE_HISTORY_TABLE
from tests.conftest import CONFIG, Env
from tests.deals import accept_quote, win


def test_the_shipped_flows_load() -> None:
    flows = {f.name: f for f in load_model(CONFIG).flows}
    pipeline = flows["opportunity_pipeline"]
    assert pipeline.entity == "opportunity" and pipeline.stages is not None
    assert pipeline.stages.required("lost") == ("lost_reason",)
    assert [t.name for t in pipeline.triggers] == ["stage_defaults", "won_notice",
                                                   "lost_notice"]
    assert [g.to for g in pipeline.stages.guards] == ["won"]


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
    with pytest.raises(Invalid) as caught:  # no accepted quote, no contract
        records.update(admin, "opportunity", deal["id"], {"stage": "won"}, deal["version"])
    assert caught.value.fields == {"stage": "A won deal needs an accepted quote or a contract"}
    deal = win(records, admin, deal["id"])
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


def test_a_contract_wins_a_deal_too_and_a_deal_recorded_as_won_is_taken(env: Env) -> None:
    admin = env.admin.actor()
    records = env.records
    account = records.create(admin, "account", {"name": "Contract Ltd"})
    deal = records.create(admin, "opportunity", {"name": "Cranes", "account": account["id"],
                                                 "stage": "negotiation"})
    records.create(admin, "contract", {"name": "Cranes", "account": account["id"],
                                       "opportunity": deal["id"]})
    deal = records.get(admin, "opportunity", deal["id"])
    assert (deal["accepted_quotes"], deal["contracts"]) == (0, 1)
    assert records.update(admin, "opportunity", deal["id"], {"stage": "won"},
                          deal["version"])["stage"] == "won"
    # history and imports: a deal created won is taken as it is
    old = records.create(admin, "opportunity", {"name": "2019 fleet", "stage": "won",
                                                "account": account["id"]})
    assert (old["stage"], old["probability"], old["forecast_category"]) == (
        "won", 100, "closed")


def test_a_deal_that_moves_on_takes_its_new_stages_probability_and_category(
        env: Env) -> None:
    admin = env.admin.actor()
    records = env.records
    account = records.create(admin, "account", {"name": "Forecast Ltd"})
    deal = records.create(admin, "opportunity", {
        "name": "Buses", "account": account["id"], "amount": "1000", "stage": "proposal",
        "probability_override": "65", "forecast_override": "commit"})
    # the owner's judgement of this deal in proposal
    assert (deal["probability"], deal["forecast_category"], deal["weighted"]) == (
        65, "commit", Decimal("650.00"))
    deal = records.update(admin, "opportunity", deal["id"], {"stage": "negotiation"},
                          deal["version"])
    assert (deal["probability_override"], deal["forecast_override"]) == (None, None)
    assert (deal["probability"], deal["forecast_category"]) == (80, "commit")
    # moved and judged in one change: the new judgement stays
    deal = records.update(admin, "opportunity", deal["id"], {
        "stage": "proposal", "probability_override": "40"}, deal["version"])
    assert (deal["probability"], deal["forecast_category"]) == (40, "best_case")
    deal = accept_quote(records, deal["id"])
    deal = records.update(admin, "opportunity", deal["id"], {"stage": "won"},
                          deal["version"])
    assert (deal["probability"], deal["forecast_category"],
            deal["probability_override"]) == (100, "closed", None)

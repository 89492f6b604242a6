"""Deals in the tests as the opportunity pipeline (config/flows/opportunity_pipeline.yaml)
lets them be won: a deal moves to `won` on an accepted quote or a contract."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.runtime.access import SYSTEM, Actor
from engine.runtime.records import Records


def accept_quote(records: Records, deal_id: int) -> dict[str, Any]:
    """Give the deal an accepted quote (as the engine); the deal as it is then (its version
    moved on: it counts its quotes)."""
    deal = records.get(SYSTEM, "opportunity", deal_id)
    records.create(SYSTEM, "quote", {"name": f"Quote for {deal['name']}",
                                     "account": deal["account"], "opportunity": deal_id,
                                     "status": "accepted"})
    return records.get(SYSTEM, "opportunity", deal_id)


def win(records: Records, actor: Actor, deal_id: int, *,
        purge_quote: bool = False) -> dict[str, Any]:
    """Move the deal to won, on an accepted quote made for it first. `purge_quote`: then
    purge that quote, so that a test may purge the deal (a referenced record cannot be)."""
    deal = accept_quote(records, deal_id)
    won = records.update(actor, "opportunity", deal_id, {"stage": "won"}, deal["version"])
    if not purge_quote:
        return won
    quotes = records.schema.table("quote")
    with records.engine.connect() as conn:
        quote_ids = conn.execute(select(quotes.c.id).where(
            quotes.c.opportunity == deal_id)).scalars().all()
    for quote_id in quote_ids:
        records.delete(SYSTEM, "quote", quote_id)
        records.purge(SYSTEM, "quote", quote_id)
    return records.get(SYSTEM, "opportunity", deal_id)

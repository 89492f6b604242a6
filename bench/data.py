"""Deterministic benchmark rows: the same seed gives the same opportunities on every run."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

ACCOUNTS = 1_000
SEED = 20_240_601
# Stage shares of a sales funnel, widest at the top.
STAGES = ("prospecting", "qualification", "proposal", "negotiation", "won", "lost")
STAGE_WEIGHTS = (30, 22, 16, 10, 12, 10)
_PRODUCTS = ("Turbine overhaul", "Fleet telematics", "ERP rollout", "Spare parts frame",
             "Service contract", "Line automation", "Solar retrofit", "Data platform")
_FIRST_CLOSE = date(2024, 1, 1)


def account_rows(n: int = ACCOUNTS) -> list[dict[str, Any]]:
    """`n` accounts with unique names, for opportunities to point at."""
    return [{"name": f"Account {i:05d}", "country": "DE" if i % 3 else "CN"} for i in range(n)]


def opportunity_rows(n: int, account_ids: list[int], seed: int = SEED) -> Iterator[dict[str, Any]]:
    """`n` opportunities: name, account, amount (Decimal, 2 places), stage, close_date,
    lost_reason.

    >>> next(opportunity_rows(1, [7]))["account"]
    7
    """
    rnd = random.Random(seed)  # repeatable data, not secrets
    stages = rnd.choices(STAGES, STAGE_WEIGHTS, k=n)
    for i in range(n):
        yield {
            "name": f"{_PRODUCTS[i % len(_PRODUCTS)]} {i:07d}",
            "account": account_ids[rnd.randrange(len(account_ids))],
            "amount": Decimal(rnd.randrange(1_000_00, 5_000_000_00)).scaleb(-2),
            "stage": stages[i],
            "close_date": _FIRST_CLOSE + timedelta(days=rnd.randrange(3 * 365)),
            # The opportunity rule: a lost deal carries its reason (no random draw, so the
            # other values stay what they were before the rule existed).
            "lost_reason": "price" if stages[i] == "lost" else None,
        }

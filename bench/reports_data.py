"""Scratch databases for the report benchmark: N opportunities made by the database itself.

One set-based `INSERT … SELECT` per batch over a row-number series (a recursive CTE on
SQLite, generate_series on PostgreSQL) fills the table `apply_plan` created from config/:
a million rows in seconds, where `bulk_create` takes minutes. Every value is a function of
the row number, so both databases hold the same rows:

- stage by the funnel shares of bench/data.py (30, 22, 16, 10, 12, 10 %), a lost deal with
  its reason; the account one of the 1,000 benchmark accounts;
- amount 1,000.00 to 4,999,999.99; close date over three years from 2024-01-01;
- every seventh open deal with a probability override (5-94 %), every eleventh with a
  forecast category override;
- no owner and no department (the admin the benchmark runs as sees every row).

The rollup columns hold 0 as `bulk_create` leaves them (nothing points at these deals).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, text

BATCH = 100_000
STAMP = "2026-12-01 00:00:00"
_HASH = "((n * 2654435761) % 4294967296)"
# Each row's values from its number n and the hash h of it; stage from h % 100.
_STAGE = ("CASE WHEN s < 30 THEN 'prospecting' WHEN s < 52 THEN 'qualification' "
          "WHEN s < 68 THEN 'proposal' WHEN s < 78 THEN 'negotiation' "
          "WHEN s < 90 THEN 'won' ELSE 'lost' END")
_COLUMNS = ("version, created_at, updated_at, name, account, amount, stage, lost_reason, "
            "close_date, probability_override, forecast_override, quotes, accepted_quotes, "
            "contracts, contracted")


def _select(series: str, stamp: str, close_date: str, first_account: int,
            accounts: int) -> str:
    open_deal = "stage NOT IN ('won', 'lost')"
    return (
        f"SELECT 1, {stamp}, {stamp}, 'Opportunity ' || n, "
        f"{first_account} + (h / 7) % {accounts}, "
        "round(1000 + (h % 499900000) / 100.0, 2), stage, "
        "CASE WHEN stage = 'lost' THEN 'price' END, "
        f"{close_date}, "
        f"CASE WHEN n % 7 = 0 AND {open_deal} THEN 5 + h % 90 END, "
        f"CASE WHEN n % 11 = 0 AND {open_deal} THEN 'commit' END, 0, 0, 0, 0 "
        f"FROM (SELECT n, h, {_STAGE} AS stage FROM "
        f"(SELECT n, {_HASH} AS h, {_HASH} % 100 AS s FROM {series}) AS hashed) AS staged")


def insert_opportunities(engine: Engine, rows: int, first_account: int, accounts: int,
                         say: Callable[[str], None] = print) -> None:
    """Append `rows` opportunities numbered 1..rows, BATCH to a transaction; ANALYZE after."""
    pg = engine.dialect.name == "postgresql"
    for lo in range(1, rows + 1, BATCH):
        hi = min(lo + BATCH - 1, rows)
        if pg:
            series = f"generate_series({lo}::bigint, {hi}::bigint) AS g(n)"
            close = "DATE '2024-01-01' + ((n * 7919) % 1095)::int"
            sql = f"INSERT INTO opportunity ({_COLUMNS}) " + _select(
                series, f"TIMESTAMP '{STAMP}'", close, first_account, accounts)
        else:
            series = "numbers"
            close = "date('2024-01-01', '+' || ((n * 7919) % 1095) || ' days')"
            sql = (f"WITH RECURSIVE numbers(n) AS (SELECT {lo} UNION ALL SELECT n + 1 FROM "
                   f"numbers WHERE n < {hi}) INSERT INTO opportunity ({_COLUMNS}) "
                   + _select(series, f"'{STAMP}'", close, first_account, accounts))
        with engine.begin() as conn:
            conn.execute(text(sql))
        if hi % 500_000 == 0 or hi == rows:
            say(f"  {hi:,} opportunities")
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))

"""New children added to their parents' rollups in SQL (engine/runtime/rollups/increments.py),
on SQLite and PostgreSQL: the values equal a from-scratch recomputation for every additive
aggregate, whether the new children are one run of ids (an import's batch) or not; the
unit hears each parent's change, so a rollup of a rollup follows; concurrent imports into
the same parents lose nothing."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from engine.runtime.records import Records
from engine.runtime.rollups import increments
from engine.runtime.rollups.refresh import check_rollups
from tests.conftest import EnvFactory

# Every additive aggregate, besides the shipped count and sums (a sum of a formula, sums
# with a where): min and max of amounts and of dates, a count of non-blank values.
ADDITIVE = """
  biggest_deal:  {type: rollup, of: opportunity.amount, via: account, agg: max}
  smallest_won:  {type: rollup, of: opportunity.amount, via: account, agg: min,
                  where: 'stage = "won"'}
  dated_deals:   {type: rollup, of: opportunity.close_date, via: account, agg: count}
  first_close:   {type: rollup, of: opportunity.close_date, via: account, agg: min}
  last_close:    {type: rollup, of: opportunity.close_date, via: account, agg: max}
"""
# A rollup over an optional link: the opportunities that name a contact are not one run
# of ids when the others come between them.
CONTACT_DEALS = ("  deals:      {type: rollup, of: opportunity.amount, via: primary_contact, "
                 "agg: sum}\n")
LOST_REASON = {"lost_reason": "price"}  # a lost deal needs one (opportunity.yaml)


def _config(config_dir: Path) -> Path:
    account = config_dir / "entities" / "account.yaml"
    account.write_text(account.read_text(encoding="utf-8") + ADDITIVE, encoding="utf-8")
    contact = config_dir / "entities" / "contact.yaml"
    text = contact.read_text(encoding="utf-8")
    contact.write_text(text.replace("validations:\n", CONTACT_DEALS + "validations:\n", 1),
                       encoding="utf-8")
    return config_dir


@pytest.fixture
def records(make_env: EnvFactory, config_dir: Path) -> Records:
    env = make_env(_config(config_dir))
    return records_service(env.engine, env.model)


@pytest.fixture
def added(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The new children of each call of the SQL path (a spy: the path runs)."""
    calls: list[list[int]] = []
    real = increments.add_children

    def spy(records: Records, conn: Any, rfs: Any, children: Any) -> Any:
        calls.append(list(children))
        return real(records, conn, rfs, children)

    monkeypatch.setattr("engine.runtime.rollups.hook.add_children", spy)
    return calls


def _deals(accounts: list[int], contacts: list[int], n: int) -> list[dict[str, Any]]:
    stages = ("prospecting", "proposal", "negotiation", "won", "lost")
    return [{"name": f"Deal {i}", "account": accounts[i % len(accounts)],
             "amount": f"{100 + 37 * i}.{i % 10}5", "stage": stages[i % len(stages)],
             "close_date": None if i % 4 == 0 else f"2027-{1 + i % 12:02d}-{1 + i % 28:02d}",
             # every third deal names a contact: those are no run of ids
             "primary_contact": contacts[i % len(contacts)] if i % 3 == 0 else None,
             **LOST_REASON} for i in range(n)]


def _setup(records: Records) -> tuple[list[int], list[int]]:
    accounts = [records.create(SYSTEM, "account", {"name": f"A{i}"})["id"] for i in range(4)]
    contacts = [records.create(SYSTEM, "contact", {"full_name": f"C{i}", "account": a})["id"]
                for i, a in enumerate(accounts)]
    # stored values to add to: a small won deal that new ones must not replace as the
    # smallest, an early close date that stays the first
    records.create(SYSTEM, "opportunity", {"name": "Old", "account": accounts[0],
                                           "amount": "5.00", "stage": "won",
                                           "close_date": "2020-01-01",
                                           "primary_contact": contacts[0]})
    return accounts, contacts


@pytest.mark.parametrize("chunk", [increments.CHUNK, 2])
def test_an_import_adds_its_new_children_as_a_recomputation_would(
        records: Records, added: list[list[int]], monkeypatch: pytest.MonkeyPatch,
        chunk: int) -> None:
    monkeypatch.setattr(increments, "CHUNK", chunk)  # 2: children listed in many chunks
    accounts, contacts = _setup(records)
    result = records.bulk_create(SYSTEM, "opportunity", _deals(accounts, contacts, 40),
                                 batch_size=15)
    assert result.created == 40 and not result.errors
    # the SQL path ran, for runs of ids (account) and for lists (contact)
    assert any(ids[-1] - ids[0] + 1 == len(ids) > 1 for ids in added)
    assert any(ids[-1] - ids[0] + 1 > len(ids) for ids in added)
    assert check_rollups(records) == []
    first = records.get(SYSTEM, "account", accounts[0])
    assert first["smallest_won"] == Decimal("5.00")
    assert str(first["first_close"]) == "2020-01-01"
    assert first["biggest_deal"] == Decimal("1432.65")  # deal 36: 100 + 37 * 36, .65


def test_new_children_in_one_unit_are_added_once(records: Records, added: list[list[int]]) -> None:
    """Two imports in one unit of work: the hook sees both batches' children at once."""
    accounts, contacts = _setup(records)
    deals = _deals(accounts, contacts, 12)
    with records.unit(SYSTEM) as unit:
        records.bulk_create(SYSTEM, "opportunity", deals[:6], unit=unit)
        records.bulk_create(SYSTEM, "opportunity", deals[6:], unit=unit)
    assert check_rollups(records) == []
    assert records.get(SYSTEM, "account", accounts[1])["dated_deals"] == 3


def test_the_unit_hears_each_parents_change_and_a_dry_run_keeps_nothing(
        records: Records, added: list[list[int]]) -> None:
    accounts, _ = _setup(records)
    added.clear()
    deals = [{"name": "Big", "account": accounts[0], "amount": "250", "stage": "won"},
             {"name": "Small", "account": accounts[0], "amount": "1", "stage": "lost",
              **LOST_REASON},
             {"name": "Other", "account": accounts[1], "amount": "70", "stage": "won"}]
    run = records.dry_run(SYSTEM, lambda unit: records.bulk_create(
        SYSTEM, "opportunity", deals, unit=unit))
    assert [len(ids) for ids in added] == [3]
    rollup = {c.record_id: c for c in run.changes if c.action == "rollup"}
    assert set(rollup) == {accounts[0], accounts[1]}
    assert dict((n, (old, new)) for n, old, new in rollup[accounts[0]].changes) == {
        "won_amount": (Decimal("5.00"), Decimal("255.00")),
        "biggest_deal": (Decimal("5.00"), Decimal("250.00"))}
    assert dict((n, (old, new)) for n, old, new in rollup[accounts[1]].changes) == {
        "won_amount": (Decimal("0.00"), Decimal("70.00")),
        "biggest_deal": (None, Decimal("70.00")),
        "smallest_won": (None, Decimal("70.00"))}
    first = rollup[accounts[0]]
    assert first.before is not None and first.after is not None
    assert first.after == {**first.before, "won_amount": Decimal("255.00"),
                           "biggest_deal": Decimal("250.00")}
    assert not first.audited and first.cause is not None
    assert records.get(SYSTEM, "account", accounts[0])["won_amount"] == Decimal("5.00")
    assert check_rollups(records) == []


def test_a_rollup_of_a_rollup_follows_an_import(make_env: EnvFactory, config_dir: Path,
                                                added: list[list[int]]) -> None:
    path = config_dir / "entities" / "account.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "  won_amount:", "  group_won:     {type: rollup, of: account.won_amount, via: parent, "
        "agg: sum}\n  won_amount:"), encoding="utf-8")
    env = make_env(config_dir)
    records = records_service(env.engine, env.model)
    group = records.create(SYSTEM, "account", {"name": "Group"})["id"]
    plants = [records.create(SYSTEM, "account", {"name": f"Plant {i}", "parent": group})["id"]
              for i in range(3)]
    added.clear()  # the plants were added to the group's count
    records.bulk_create(SYSTEM, "opportunity", [
        {"name": f"D{i}", "account": plants[i % 3], "amount": f"{10 * (i + 1)}",
         "stage": "won"} for i in range(9)], batch_size=4)
    assert [len(ids) for ids in added] == [4, 4, 1]
    assert records.get(SYSTEM, "account", group)["group_won"] == Decimal("450.00")
    assert check_rollups(records) == []


def test_the_parents_of_a_run_of_new_children_are_locked_in_id_order(records: Records,
                                                                     db_url: str) -> None:
    accounts, contacts = _setup(records)
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(records.engine, "before_cursor_execute", capture)
    try:
        records.bulk_create(SYSTEM, "opportunity", _deals(accounts, contacts, 6))
    finally:
        event.remove(records.engine, "before_cursor_execute", capture)
    locks = [s for s in seen if "rollup_child0" in s and s.startswith("SELECT")]
    assert len(locks) == 1 and "ORDER BY account.id" in locks[0]
    if db_url.startswith("postgresql"):
        assert locks[0].rstrip().endswith("FOR NO KEY UPDATE OF account")


def test_concurrent_imports_into_the_same_parents_lose_nothing(records: Records,
                                                               db_url: str) -> None:
    accounts, contacts = _setup(records)
    engines = [open_engine(db_url) for _ in range(3)]
    services = [records_service(e, records.model) for e in engines]
    start = threading.Barrier(len(services))
    problems: list[BaseException] = []

    def load(service: Records, k: int) -> None:
        try:
            start.wait()
            for _ in range(3):  # each import touches every account, in its own order
                deals = _deals(accounts[k:] + accounts[:k], contacts, 8)
                service.bulk_create(SYSTEM, "opportunity", deals, batch_size=4)
        except BaseException as exc:  # reported below
            problems.append(exc)

    threads = [threading.Thread(target=load, args=(s, k)) for k, s in enumerate(services)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for e in engines:
        e.dispose()
    assert problems == []
    assert check_rollups(records) == []
    total = sum(records.get(SYSTEM, "account", a)["dated_deals"] for a in accounts)
    assert total == 1 + 3 * 3 * 6  # the old deal, and 6 of every 8 new ones have a date

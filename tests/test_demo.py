"""engine/runtime/demo: `fill_demo` fills every area consistently, on SQLite and PostgreSQL.

One small demo per database (module scope: it takes a few seconds), read back with plain
SQL: contracts' lines add up to their amounts, receipts ≤ invoices ≤ amount, installments
plan the whole amount, service times run in order, company names hold no user or role
name, Chinese accounts are Chinese, every entity has rows, the rollups have no drift, and
the same seed gives the same data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from starlette.testclient import TestClient

from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from engine.runtime.demo import DEMO_PASSWORD, DemoResult, fill_demo, is_empty
from engine.runtime.demo.context import money
from engine.runtime.demo.org_users import roles_to_staff
from engine.runtime.flows.timers import prepare, timer_table
from engine.runtime.records import Records
from engine.runtime.rollups.refresh import check_rollups
from engine.runtime.schema import apply_plan
from engine.runtime.users import Users
from engine.web.app import create_app
from tests.conftest import module_db_url, shipped_model
from tests.db_templates import TEST_HASHER
from tests.web_helpers import sign_in

SIZE = 12
CJK = re.compile(r"[\u4e00-\u9fff]")
# Entities the demo leaves empty on purpose, with the reason. None today.
LEFT_EMPTY: dict[str, str] = {}

pytestmark = pytest.mark.xdist_group("demo")
"""The demo is built once per database for this module: its tests run in one test process."""


@dataclass
class Built:
    engine: Engine
    records: Records
    users: Users
    result: DemoResult

    def rows(self, sql: str) -> list[tuple]:  # type: ignore[type-arg]
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]


def _build(url: str, seed: int = 7) -> Built:
    engine = open_engine(url)
    model = shipped_model()
    apply_plan(engine, model)
    records = records_service(engine, model)
    users = Users(engine, records.schema, hasher=TEST_HASHER)
    assert is_empty(records)
    return Built(engine, records, users, fill_demo(records, users, size=SIZE, seed=seed))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Built]:
    with module_db_url(request.param, tmp_path_factory, "demo") as url:
        b = _build(url)
        yield b
        b.engine.dispose()


def test_contract_lines_sum_to_the_amount(built: Built) -> None:
    contracts = built.rows("SELECT id, amount, cost_total FROM contract")
    assert contracts
    totals: dict[int, Decimal] = {}
    costs: dict[int, Decimal] = {}
    for cid, qty, price, discount, cost in built.rows(
            "SELECT contract, quantity, unit_price, discount, unit_cost FROM contract_line"):
        line = money(Decimal(str(qty)) * Decimal(str(price))
                     * (100 - Decimal(str(discount or 0))) / 100)
        totals[cid] = totals.get(cid, Decimal(0)) + line
        costs[cid] = costs.get(cid, Decimal(0)) + money(Decimal(str(qty)) * Decimal(str(cost)))
    for cid, amount, cost_total in contracts:
        assert cid in totals, f"contract {cid} has no lines"
        assert Decimal(str(amount)) == totals[cid], cid
        assert Decimal(str(cost_total)) == costs[cid], cid
    # the deal's amount is its contract's: the same basket
    deals = built.rows("SELECT c.amount, o.amount FROM contract c "
                       "JOIN opportunity o ON o.id = c.opportunity")
    assert deals and all(Decimal(str(a)) == Decimal(str(b)) for a, b in deals)


def test_receipts_never_exceed_invoices_nor_invoices_the_amount(built: Built) -> None:
    rows = built.rows(
        "SELECT c.id, c.amount, c.status,"
        " (SELECT COALESCE(SUM(i.amount), 0) FROM invoice i WHERE i.contract = c.id"
        "  AND i.status = 'issued'),"
        " (SELECT COALESCE(SUM(r.amount), 0) FROM receipt r WHERE r.contract = c.id"
        "  AND r.status <> 'cancelled'),"
        " (SELECT COALESCE(SUM(p.planned_amount), 0) FROM execution_plan_line p"
        "  WHERE p.contract = c.id AND p.kind = 'installment')"
        " FROM contract c")
    assert any(inv > 0 for _c, _a, _s, inv, _r, _p in rows)
    assert any(rec > 0 for _c, _a, _s, _i, rec, _p in rows)
    for cid, amount, status, invoiced, received, planned in rows:
        assert Decimal(str(received)) <= Decimal(str(invoiced)) <= Decimal(str(amount)), cid
        if status in ("signed", "executing", "completed"):
            assert Decimal(str(planned)) == Decimal(str(amount)), cid  # installments: all
        else:
            assert invoiced == 0 and planned == 0, cid


def test_service_times_run_in_order(built: Built) -> None:
    rows = built.rows("SELECT id, received_at, first_response_at, resolved_at, status "
                      "FROM service_request")
    assert rows and any(r[3] is not None for r in rows)
    for rid, received, responded, resolved, status in rows:
        if responded is not None:
            assert received <= responded, rid
        if resolved is not None:
            assert responded is not None and responded <= resolved, rid
        if status in ("resolved", "closed"):
            assert resolved is not None, rid
    orders = built.rows("SELECT id, started_at, completed_at FROM work_order "
                        "WHERE completed_at IS NOT NULL")
    assert orders and all(s <= c for _i, s, c in orders)


def test_company_names_hold_no_user_or_role_name(built: Built) -> None:
    people = _user_names(built)
    roles = list(built.records.model.roles.names)
    words = {w for w in people + roles if len(w) > 2}
    assert "admin" in words or roles
    for (name,) in built.rows("SELECT name FROM account") + built.rows(
            "SELECT company FROM lead"):
        lowered = name.lower()
        assert not any(w.lower() in lowered for w in words), name
        assert "(" not in name and "·" not in name, name


def _user_names(built: Built) -> list[str]:
    with built.engine.connect() as conn:
        return list(conn.execute(select(built.records.users.c.name)).scalars())


def test_chinese_accounts_are_chinese(built: Built) -> None:
    rows = built.rows("SELECT name, city, address, country FROM account")
    chinese = [r for r in rows if r[3] == "China"]
    assert chinese and len(chinese) < len(rows)  # both halves are there
    for name, city, address, _country in chinese:
        assert CJK.search(name) and CJK.search(city) and CJK.search(address), name
        assert name.endswith("公司"), name
    for name, _city, _address, _country in (r for r in rows if r[3] != "China"):
        assert not CJK.search(name), name
    contacts = built.rows("SELECT c.full_name, a.country FROM contact c "
                          "JOIN account a ON a.id = c.account")
    assert all(CJK.search(n) for n, country in contacts if country == "China")


def test_deals_are_named_for_what_they_sell(built: Built) -> None:
    names = [r[0] for r in built.rows("SELECT name FROM opportunity")]
    assert len(set(names)) > len(names) * 0.9  # not "Fleet deal 1" over and over
    sold = re.compile(r"tractor|loader|forklift|spare parts|contract|telematics"
                      r"|拖拉机|装载机|叉车|配件|服务|车联网", re.IGNORECASE)
    assert [n for n in names if not sold.search(n)] == []


def test_every_entity_has_rows(built: Built) -> None:
    with built.engine.connect() as conn:
        empty = [name for name in built.records.model.entity_names
                 if name not in LEFT_EMPTY and not conn.execute(
                     select(func.count()).select_from(built.records.schema.table(name))
                 ).scalar_one()]
    assert empty == []


def test_no_rollup_drift(built: Built) -> None:
    assert check_rollups(built.records) == []


def test_the_demo_sets_one_timer_per_record_and_rule(built: Built) -> None:
    """Yearly and stage-entry timers too: a contact's next birthday, a deal's current stage."""
    t = timer_table()
    with built.engine.connect() as conn:
        rows = conn.execute(select(t.c.record_id, t.c.data).where(
            t.c.kind == "flow", t.c.state == "pending")).all()
    rows = [(r, d) for r, d in rows if "timer" in d]  # not the schedules' (below)
    per_rule = Counter(f"{d['flow']}.{d['timer']}" for _, d in rows)
    assert max(Counter((r, d["flow"], d["timer"]) for r, d in rows).values()) == 1
    [(contacts,)] = built.rows("SELECT count(*) FROM contact WHERE birthday IS NOT NULL "
                               "AND deleted_at IS NULL")
    [(proposing,)] = built.rows("SELECT count(*) FROM opportunity WHERE deleted_at IS NULL "
                                "AND stage IN ('proposal', 'negotiation')")
    assert per_rule["birthday_care.birthday"] == contacts > 0
    assert per_rule["opportunity_pipeline.stalled"] <= proposing


def test_a_worker_pass_sets_one_timer_per_holiday_schedule(built: Built) -> None:
    """The holiday calendar's schedules (holiday care): one row each, however many passes
    and contacts; none while no write or worker pass has run."""
    t = timer_table()
    query = select(t.c.key, t.c.data).where(t.c.key.contains(":schedule:"))
    with built.engine.connect() as conn:
        assert conn.execute(query).all() == []
    now = built.records.clock()
    for _ in range(2):
        prepare(built.records, now)
    with built.engine.connect() as conn:
        rows = conn.execute(query).all()
    per_schedule = Counter(f"{d['flow']}.{d['schedule']}" for _, d in rows)
    expected = {"holiday_care.spring_festival", "holiday_care.mid_autumn"}
    assert set(per_schedule) <= expected and set(per_schedule.values()) <= {1}
    if now.date() < date(2030, 9, 9):  # the shipped calendar still has both ahead
        assert set(per_schedule) == expected


def test_history_spans_years_and_users_sign_in(built: Built) -> None:
    (oldest, newest), = built.rows("SELECT MIN(close_date), MAX(close_date) FROM opportunity "
                                   "WHERE stage = 'won' OR stage = 'lost'")
    assert (date.fromisoformat(str(newest)[:10]) - date.fromisoformat(str(oldest)[:10])
            ).days > 365
    assert built.users.check_password("admin", DEMO_PASSWORD) is not None
    names = _user_names(built)
    for role in set(roles_to_staff(built.users)):  # every role of roles.yaml has its people
        user = next(u for u in names if u.rsplit("_", 1)[0] == role)
        assert built.users.check_password(user, DEMO_PASSWORD) is not None, role


def test_the_same_seed_gives_the_same_data(built: Built, tmp_path: Path) -> None:
    if built.engine.dialect.name != "sqlite":
        pytest.skip("compared once, on SQLite")
    again = _build(f"sqlite:///{tmp_path / 'again.db'}")
    try:
        query = ("SELECT a.name, o.name, o.amount, o.stage FROM opportunity o "
                 "JOIN account a ON a.id = o.account ORDER BY o.id")
        assert again.rows(query) == built.rows(query)
        assert again.result.counts == built.result.counts
    finally:
        again.engine.dispose()
    other = _build(f"sqlite:///{tmp_path / 'other.db'}", seed=8)
    try:
        assert other.rows("SELECT name FROM account ORDER BY id") != built.rows(
            "SELECT name FROM account ORDER BY id")
    finally:
        other.engine.dispose()


def test_counts_match_the_tables(built: Built) -> None:
    with built.engine.connect() as conn:
        for entity, count in built.result.counts.items():
            table = built.records.schema.table(entity)
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == count


def test_every_list_and_record_page_shows_the_demo(built: Built) -> None:
    """The pages read what the demo wrote: each entity's list and its first record's page
    answer 200 as admin (a demo value a page cannot show would be a 500 here)."""
    app = create_app(built.records.model, built.engine, password_hasher=TEST_HASHER)
    with TestClient(app, raise_server_exceptions=False) as client:
        sign_in(client, "admin", DEMO_PASSWORD)
        with built.engine.connect() as conn:
            for name in built.records.model.entity_names:
                table = built.records.schema.table(name)
                first = conn.execute(select(func.min(table.c.id))).scalar_one()
                listed = client.get(f"/e/{name}")
                assert listed.status_code == 200, (name, listed.text[:300])
                shown = client.get(f"/e/{name}/{first}")
                assert shown.status_code == 200, (name, first, shown.text[:300])

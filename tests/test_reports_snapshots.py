"""Pipeline snapshots (engine/runtime/reports/snapshots.py): what one keeps, who may take one,
the worker's one snapshot per period of settings.yaml `pipeline_snapshots`, `crm snapshot`,
and the forecast history each viewer may read — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.cli import main
from engine.metadata.snapshots import SnapshotSchedule
from engine.runtime.access import SYSTEM
from engine.runtime.errors import Forbidden
from engine.runtime.flows.worker import Worker
from engine.runtime.reports.snapshots import (
    SCHEDULED,
    ScheduledSnapshots,
    forecast_history,
    list_snapshots,
    may_take,
    row_table,
    take,
)
from tests.access_helpers import user
from tests.conftest import CONFIG, Env
from tests.test_reports_waterfall import T1, World, build

D = Decimal


@pytest.fixture
def world(env: Env) -> World:
    return build(env)


def test_a_snapshot_keeps_every_open_deal_as_it_stood(world: World) -> None:
    env, ids = world.env, world.ids
    rows = row_table(env.records)
    with env.engine.connect() as conn:
        kept = {r.record_id: r for r in conn.execute(
            select(rows).where(rows.c.snapshot_id == world.first))}
    # d8 did not exist yet, d9 was won already
    assert set(kept) == {ids[k] for k in ("d1", "d2", "d3", "d4", "d5", "d6", "d7")}
    d3 = kept[ids["d3"]]
    assert (d3.stage, d3.amount, d3.probability, d3.weighted, d3.forecast_category,
            d3.close_date, d3.owner_id) == ("negotiation", D("3000.00"), D("80.00"),
                                            D("2400.00"), "commit", date(2027, 3, 20),
                                            world.b.id)
    assert kept[ids["d7"]].owner_id == world.a.id  # the owner then, not now
    later = env.records.get(SYSTEM, "opportunity", ids["d3"])
    assert later["amount"] == D("3500.00")  # the deal moved on; the snapshot did not


def test_the_forecast_as_of_each_snapshot(world: World) -> None:
    cells = forecast_history(world.env.records, world.env.admin.actor(),
                             [world.first, world.second])
    got = {(c.snapshot_id, c.month, c.category): (c.deals, c.amount, c.weighted)
           for c in cells}
    first, second = world.first, world.second
    assert got == {
        # as of the first snapshot: March is d1, d4 best case; d2, d5, d7 pipeline; d3 commit
        (first, "2027-03", "best_case"): (2, D("5000.00"), D("2500.00")),
        (first, "2027-03", "pipeline"): (3, D("7700.00"), D("1170.00")),
        (first, "2027-03", "commit"): (1, D("3000.00"), D("2400.00")),
        (first, "2027-04", "best_case"): (1, D("600.00"), D("300.00")),
        # as of the second: d4, d6, d8 best case; d7 pipeline; d3 commit; d5 in April
        (second, "2027-03", "best_case"): (3, D("4400.00"), D("2200.00")),
        (second, "2027-03", "pipeline"): (1, D("700.00"), D("70.00")),
        (second, "2027-03", "commit"): (1, D("3500.00"), D("2800.00")),
        (second, "2027-04", "pipeline"): (1, D("5000.00"), D("500.00")),
    }


def test_a_sales_rep_reads_only_their_deals_history(world: World) -> None:
    records = world.env.records
    cells = forecast_history(records, world.a, [world.first, world.second])
    got = {(c.snapshot_id, c.month, c.category): (c.deals, c.weighted) for c in cells}
    # rep_a's deals then: d1 (best case), d2, d5, d7 (pipeline); in the second only d5
    # (d7 is rep_b's now, in the snapshot's stored owner)
    assert got == {
        (world.first, "2027-03", "best_case"): (1, D("500.00")),
        (world.first, "2027-03", "pipeline"): (3, D("1170.00")),
        (world.second, "2027-04", "pipeline"): (1, D("500.00")),
    }
    counts = {s.id: s.deals for s in list_snapshots(records, world.a)}
    assert counts == {world.first: 4, world.second: 1}
    admin_counts = {s.id: s.deals for s in list_snapshots(records, SYSTEM)}
    assert admin_counts == {world.first: 7, world.second: 6}


def test_a_hidden_amount_hides_the_forecast_but_not_the_list(world: World) -> None:
    marketer = user(world.env, "mkt", "marketing")  # reads every deal; amount hidden
    with pytest.raises(Forbidden):
        forecast_history(world.env.records, marketer, [world.first])
    assert [s.deals for s in list_snapshots(world.env.records, marketer)] == [6, 7]
    outsider = user(world.env, "agent", "service_agent")  # no opportunities at all
    with pytest.raises(Forbidden):
        list_snapshots(world.env.records, outsider)


def test_who_may_take_one(env: Env) -> None:
    records = env.records
    rep = user(env, "rep", "sales_rep")
    manager = user(env, "boss", "sales_manager")
    assert may_take(records, env.admin.actor()) and may_take(records, manager)
    assert may_take(records, SYSTEM)
    assert not may_take(records, rep)
    with pytest.raises(Forbidden):
        take(records, rep)
    taken = take(records, manager)
    assert (taken.kind, taken.taken_by, taken.deals) == ("on_demand", manager.id, 0)


def test_the_worker_takes_one_snapshot_per_period(env: Env) -> None:
    records = env.records
    assert records.model.settings.pipeline_snapshots == SnapshotSchedule("week", "monday")
    header = records.schema.table("crm_pipeline_snapshot")

    def periods() -> list[tuple[str, str | None]]:
        with env.engine.connect() as conn:
            return [(r.kind, r.period) for r in conn.execute(
                select(header).order_by(header.c.id))]

    saturday = datetime(2026, 12, 5, 9, tzinfo=UTC)
    worker = Worker(records, {}, worker_id="w1")
    worker.run_once(saturday)
    worker.run_once(saturday)
    worker.run_once(datetime(2026, 12, 6, 23, tzinfo=UTC))  # Sunday: the same week
    Worker(records, {}, worker_id="w2").run_once(saturday)  # another worker: no second one
    assert periods() == [(SCHEDULED, "week:2026-11-30")]
    worker.run_once(datetime(2026, 12, 7, 0, 5, tzinfo=UTC))  # Monday: the next period
    worker.run_once(datetime(2026, 12, 8, tzinfo=UTC))
    assert periods() == [(SCHEDULED, "week:2026-11-30"), (SCHEDULED, "week:2026-12-07")]
    with pytest.raises(IntegrityError):  # two workers racing: the period is unique
        take(records, kind=SCHEDULED, period="week:2026-12-07")
    assert ScheduledSnapshots(records)(datetime(2026, 12, 9, tzinfo=UTC)) is None


def test_the_schedule_periods() -> None:
    monthly = SnapshotSchedule("month", day=15)
    assert monthly.period(date(2027, 1, 14)) == "month:2026-12-15"
    assert monthly.period(date(2027, 1, 15)) == "month:2027-01-15"
    assert SnapshotSchedule("week", "friday").period(date(2026, 12, 5)) == "week:2026-12-04"
    assert SnapshotSchedule("day").period(date(2026, 12, 5)) == "day:2026-12-05"


def test_crm_snapshot_takes_one_on_demand(env: Env, db_url: str) -> None:
    env.records.clock = lambda: T1
    result = CliRunner().invoke(main, ["--config", str(CONFIG), "--db", db_url, "snapshot"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("snapshot 1: 0 open deals at ")
    rows = row_table(env.records)
    with env.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rows)).scalar_one() == 0
    [taken] = list_snapshots(env.records, SYSTEM)
    assert (taken.kind, taken.taken_by) == ("on_demand", None)

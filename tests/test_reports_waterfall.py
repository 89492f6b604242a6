"""The pipeline waterfall between two snapshots (engine/runtime/reports/waterfall.py), by
time travel: a snapshot, then deals won, lost, raised, lowered, pushed out of the period,
pulled into it, added and handed to another rep, then another snapshot — every step checked
against hand-computed numbers, as an administrator and as each sales rep, on SQLite and
PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from engine.runtime.access import SYSTEM
from engine.runtime.errors import BadRequest, Forbidden, NotFound
from engine.runtime.reports.snapshots import period_range, take
from engine.runtime.reports.waterfall import STEPS, Waterfall, step_deals, waterfall
from tests.access_helpers import Person, departments, place, user
from tests.conftest import Env
from tests.deals import win

T1 = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
T2 = datetime(2027, 1, 11, 8, 0, tzinfo=UTC)
MARCH = period_range("2027-03")


@dataclass
class World:
    env: Env
    a: Person
    b: Person
    ids: dict[str, int]
    first: int
    second: int


def _deal(env: Env, account: int, owner: Person, name: str, amount: str, stage: str,
          close: str) -> int:
    return int(place(env, "opportunity", {"name": name, "account": account, "amount": amount,
                                          "stage": stage, "close_date": close},
                     owner=owner)["id"])


def _change(env: Env, deal: int, **values: Any) -> None:
    row = env.records.get(SYSTEM, "opportunity", deal)
    env.records.update(SYSTEM, "opportunity", deal, values, row["version"])


def build(env: Env) -> World:
    """Seven deals of two reps, a snapshot, the changes, a second snapshot a week later."""
    sh = departments(env)["SH"]
    a = user(env, "rep_a", "sales_rep", department=sh)
    b = user(env, "rep_b", "sales_rep", department=sh)
    account = int(place(env, "account", {"name": "Acme"})["id"])
    env.records.clock = lambda: T1
    ids = {
        "d1": _deal(env, account, a, "d1", "1000", "proposal", "2027-03-10"),
        "d2": _deal(env, account, a, "d2", "2000", "qualification", "2027-03-15"),
        "d3": _deal(env, account, b, "d3", "3000", "negotiation", "2027-03-20"),
        "d4": _deal(env, account, b, "d4", "4000", "proposal", "2027-03-25"),
        "d5": _deal(env, account, a, "d5", "5000", "prospecting", "2027-03-05"),
        "d6": _deal(env, account, b, "d6", "600", "proposal", "2027-04-02"),
        "d7": _deal(env, account, a, "d7", "700", "prospecting", "2027-03-01"),
        "d9": _deal(env, account, b, "d9", "900", "proposal", "2027-03-02"),
    }
    win(env.records, SYSTEM, ids["d9"])  # closed before the first snapshot: never in it
    first = take(env.records, at=T1).id
    env.records.clock = lambda: T2
    win(env.records, SYSTEM, ids["d1"])
    _change(env, ids["d2"], stage="lost", lost_reason="price")
    _change(env, ids["d3"], amount="3500")
    _change(env, ids["d4"], amount="3000")
    _change(env, ids["d5"], close_date="2027-04-10")
    _change(env, ids["d6"], close_date="2027-03-30")
    env.records.assign(SYSTEM, "opportunity", ids["d7"], owner=b.id, department=None)
    ids["d8"] = _deal(env, account, b, "d8", "800", "proposal", "2027-03-12")
    second = take(env.records, at=T2).id
    return World(env, a, b, ids, first, second)


@pytest.fixture
def world(env: Env) -> World:
    return build(env)


def D(text: str) -> Decimal:
    return Decimal(text)


def steps(w: Waterfall) -> dict[str, tuple[int, Decimal]]:
    """step → (deals, value), the steps no deal took left out; start and end included."""
    out = {"start": (w.starting.deals, w.starting.value)}
    out.update({s.step: (s.deals, s.value) for s in w.steps if s.deals})
    out["end"] = (w.ending.deals, w.ending.value)
    return out


def test_every_step_of_the_march_waterfall_by_hand(world: World) -> None:
    w = waterfall(world.env.records, world.env.admin.actor(), world.first, world.second,
                  period=MARCH)
    assert (w.start.id, w.end.id, w.measure) == (world.first, world.second, "amount")
    # start: d1 1000 + d2 2000 + d3 3000 + d4 4000 + d5 5000 + d7 700 (d6 is April's,
    # d9 was won already); end: d3 3500 + d4 3000 + d6 600 + d7 700 + d8 800.
    assert steps(w) == {
        "start": (6, D("15700.00")),
        "new": (1, D("800.00")),
        "increased": (1, D("500.00")),
        "decreased": (1, D("-1000.00")),
        "won": (1, D("-1000.00")),
        "lost": (1, D("-2000.00")),
        "moved_in": (1, D("600.00")),
        "moved_out": (1, D("-5000.00")),
        "end": (5, D("8600.00")),
    }
    assert w.starting.value + sum(s.value for s in w.steps) == w.ending.value
    assert [s.step for s in w.steps] == list(STEPS)


def test_each_step_drills_down_to_its_deals(world: World) -> None:
    records, admin, ids = world.env.records, world.env.admin.actor(), world.ids

    def drilled(step: str) -> list[tuple[int, Decimal | None, Decimal | None, Decimal]]:
        deals, more = step_deals(records, admin, world.first, world.second, step,
                                 period=MARCH)
        assert not more
        return [(d.id, d.before, d.after, d.change) for d in deals]

    assert drilled("won") == [(ids["d1"], D("1000.00"), None, D("-1000.00"))]
    assert drilled("lost") == [(ids["d2"], D("2000.00"), None, D("-2000.00"))]
    assert drilled("increased") == [(ids["d3"], D("3000.00"), D("3500.00"), D("500.00"))]
    assert drilled("decreased") == [(ids["d4"], D("4000.00"), D("3000.00"), D("-1000.00"))]
    # a deal that moved keeps its value in the other snapshot, outside the period
    assert drilled("moved_out") == [(ids["d5"], D("5000.00"), D("5000.00"), D("-5000.00"))]
    assert drilled("moved_in") == [(ids["d6"], D("600.00"), D("600.00"), D("600.00"))]
    assert drilled("new") == [(ids["d8"], None, D("800.00"), D("800.00"))]
    assert [d[0] for d in drilled("start")] == [ids[k] for k in ("d5", "d4", "d3", "d2",
                                                                 "d1", "d7")]
    assert {d[0] for d in drilled("end")} == {ids[k] for k in ("d3", "d4", "d6", "d7", "d8")}
    assert drilled("removed") == []


def test_weighted_waterfall_by_hand(world: World) -> None:
    w = waterfall(world.env.records, SYSTEM, world.first, world.second, period=MARCH,
                  measure="weighted")
    # probabilities: prospecting 10, qualification 30, proposal 50, negotiation 80
    assert steps(w) == {
        "start": (6, D("6070.00")),   # 500 + 600 + 2400 + 2000 + 500 + 70
        "new": (1, D("400.00")),
        "increased": (1, D("400.00")),   # 2400 → 2800
        "decreased": (1, D("-500.00")),  # 2000 → 1500
        "won": (1, D("-500.00")),
        "lost": (1, D("-600.00")),
        "moved_in": (1, D("300.00")),
        "moved_out": (1, D("-500.00")),
        "end": (5, D("5070.00")),        # 2800 + 1500 + 300 + 70 + 400
    }


def test_without_a_period_nothing_moves_in_or_out(world: World) -> None:
    w = waterfall(world.env.records, SYSTEM, world.first, world.second)
    # every open deal: start adds d6 (600) to March's 15700; end adds d5 (5000)
    assert steps(w) == {
        "start": (7, D("16300.00")),
        "new": (1, D("800.00")),
        "increased": (1, D("500.00")),
        "decreased": (1, D("-1000.00")),
        "won": (1, D("-1000.00")),
        "lost": (1, D("-2000.00")),
        "end": (6, D("13600.00")),
    }


def test_a_sales_rep_sees_only_their_deals_history(world: World) -> None:
    records = world.env.records
    # rep_a owned d1, d2, d5, d7 in the first snapshot; d7 is rep_b's in the second
    a = waterfall(records, world.a, world.first, world.second, period=MARCH)
    assert steps(a) == {
        "start": (4, D("8700.00")),
        "won": (1, D("-1000.00")),
        "lost": (1, D("-2000.00")),
        "moved_out": (1, D("-5000.00")),
        "transferred_out": (1, D("-700.00")),
        "end": (0, D("0.00")),
    }
    b = waterfall(records, world.b, world.first, world.second, period=MARCH)
    assert steps(b) == {
        "start": (2, D("7000.00")),
        "new": (1, D("800.00")),
        "increased": (1, D("500.00")),
        "decreased": (1, D("-1000.00")),
        "moved_in": (1, D("600.00")),
        "transferred_in": (1, D("700.00")),
        "end": (5, D("8600.00")),
    }
    deals, _ = step_deals(records, world.a, world.first, world.second, "start", period=MARCH)
    assert {d.id for d in deals} == {world.ids[k] for k in ("d1", "d2", "d5", "d7")}


def test_a_hidden_amount_refuses_the_waterfall(world: World) -> None:
    marketer = user(world.env, "mkt", "marketing")  # opportunity amount: hidden
    with pytest.raises(Forbidden) as refused:
        waterfall(world.env.records, marketer, world.first, world.second)
    assert "amount" not in str(refused.value.message)
    with pytest.raises(Forbidden):
        step_deals(world.env.records, marketer, world.first, world.second, "won",
                   measure="weighted")


def test_bad_arguments_are_4xx(world: World) -> None:
    records = world.env.records
    with pytest.raises(BadRequest):
        waterfall(records, SYSTEM, world.first, world.second, measure="probability")
    with pytest.raises(BadRequest):
        step_deals(records, SYSTEM, world.first, world.second, "gone")
    with pytest.raises(NotFound):
        waterfall(records, SYSTEM, world.first, 999_999)
    for bad in ("2027-13", "27-03", "2027-Q5", "March", ""):
        with pytest.raises(BadRequest):
            period_range(bad)
    assert period_range("2027") == (date(2027, 1, 1), date(2028, 1, 1))
    assert period_range("2027-12") == (date(2027, 12, 1), date(2028, 1, 1))
    assert period_range("2027-Q1") == (date(2027, 1, 1), date(2027, 4, 1))

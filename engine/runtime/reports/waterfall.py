"""The pipeline waterfall between two snapshots (docs/forecast.md): how the pipeline of a
close-date period went from what one snapshot held to what a later one holds.

    start  (the deals of `from` whose close date is in the period)
    + new          deals in `to`'s period that `from` did not hold (new, or reopened)
    + increases    deals in the period in both whose amount rose (by how much)
    - decreases    … whose amount fell
    - won, - lost  deals of `from`'s period that `to` no longer holds, as they stand now
    - removed      … that are neither won nor lost now (deleted, or open again)
    + moved in     deals `from` held outside the period whose close date moved into it
    - moved out    deals of `from`'s period whose close date moved out of it
    ± transferred  deals the viewer saw in one snapshot only, their owner or department
                   having changed (no step for a reader of every deal)
    = end   (the deals of `to` whose close date is in the period)

Each deal is in one step at most, and the steps add up: start + steps = end. Without a
period every close date counts (nothing moves in or out). The measure is the amount, or the
weighted amount.

ONE statement per answer: the two snapshots' rows, as the viewer may see them (the one
secure query over the snapshot rows: engine/runtime/reports/snapshots.py), are folded into
one row per deal by conditional aggregates (no FULL JOIN), each deal is given its step by a
CASE, and the steps are summed. A step's deals (`deals`) are the same statement filtered on
the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, and_, case, func, literal, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest
from engine.runtime.records import secure
from engine.runtime.reports.snapshots import (
    Snapshot,
    find_snapshot,
    in_period,
    money,
    seen_rows,
)

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

STEPS = ("new", "increased", "decreased", "won", "lost", "removed", "moved_in", "moved_out",
         "transferred_in", "transferred_out")
"""The steps between the start and the end, in the order they are shown."""
MEASURES = ("amount", "weighted")
DEALS_LIMIT = 1000


@dataclass(frozen=True)
class Step:
    step: str
    deals: int
    value: Decimal
    """What the step adds to the pipeline (negative: takes away)."""


@dataclass(frozen=True)
class Waterfall:
    start: Snapshot
    end: Snapshot
    period: tuple[date, date] | None
    measure: str
    starting: Step
    steps: tuple[Step, ...]
    ending: Step


@dataclass(frozen=True)
class StepDeal:
    id: int
    before: Decimal | None
    after: Decimal | None
    change: Decimal


def _check(measure: str, step: str | None = None) -> None:
    if measure not in MEASURES:
        raise BadRequest(msg("measure: %(value)s is not one of %(choices)s", value=measure,
                             choices=", ".join(MEASURES)))
    if step is not None and step not in (*STEPS, "start", "end"):
        raise BadRequest(msg("step: %(value)s is not one of %(choices)s", value=step,
                             choices=", ".join(("start", *STEPS, "end"))))


def _per_deal(records: Records, actor: Actor, a: int, b: int,
              period: tuple[date, date] | None, measure: str) -> Subquery:
    """One row per deal of either snapshot: in_a/in_b (held at all), vis_a/vis_b (as the
    actor may see it), per_a/per_b (seen, its close date in the period), va/vb (seen, the
    measure), and the deal's stage now — the deal's step and change as columns."""
    seen, view = seen_rows(records, actor, (a, b), reads=(measure, "close_date", "stage"))
    visible = seen.predicate if seen.predicate is not None else literal(True)
    one = literal(1, Integer)

    def flag(snap: int, *conds: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.max(case((and_(view.c.snapshot_id == snap, *conds), one), else_=0))

    def value(snap: int) -> ColumnElement[Any]:
        return func.max(case((and_(view.c.snapshot_id == snap, visible), view.c[measure])))

    inside = in_period(view.c.close_date, period)
    folded = select(
        view.c.id,
        flag(a).label("in_a"), flag(b).label("in_b"),
        flag(a, visible).label("vis_a"), flag(b, visible).label("vis_b"),
        flag(a, visible, inside).label("per_a"), flag(b, visible, inside).label("per_b"),
        value(a).label("va"), value(b).label("vb"),
    ).where(view.c.snapshot_id.in_((a, b))).group_by(view.c.id).subquery("folded")

    deals = records.schema.table("opportunity")
    now = select(deals.c.stage).where(deals.c.id == folded.c.id,
                                      deals.c.deleted_at.is_(None)).scalar_subquery()
    f = folded.c
    va, vb = func.coalesce(f.va, 0), func.coalesce(f.vb, 0)
    gone = case((now == "won", "won"), (now == "lost", "lost"), else_="removed")
    step = case(
        (and_(f.per_a == 1, f.in_b == 0), gone),
        (and_(f.per_a == 1, f.vis_b == 0), "transferred_out"),
        (and_(f.per_a == 1, f.per_b == 1, vb > va), "increased"),
        (and_(f.per_a == 1, f.per_b == 1, vb < va), "decreased"),
        (and_(f.per_a == 1, f.per_b == 1), "unchanged"),
        (f.per_a == 1, "moved_out"),
        (and_(f.per_b == 1, f.in_a == 0), "new"),
        (and_(f.per_b == 1, f.vis_a == 0), "transferred_in"),
        (f.per_b == 1, "moved_in"),
        else_=literal(None, String))
    change = case((f.per_a == 1, case((f.per_b == 1, vb - va), else_=-va)),
                  else_=case((f.per_b == 1, vb), else_=0))
    return select(f.id, f.per_a, f.per_b, f.va, f.vb, step.label("step"),
                  change.label("change")).subquery("steps")


def waterfall(records: Records, actor: Actor, start_id: int, end_id: int, *,
              period: tuple[date, date] | None = None, measure: str = "amount") -> Waterfall:
    """The waterfall from snapshot `start_id` to `end_id` as `actor` may see it."""
    _check(measure)
    start, end = find_snapshot(records, start_id), find_snapshot(records, end_id)
    per = _per_deal(records, actor, start_id, end_id, period, measure)
    starting = func.sum(case((per.c.per_a == 1, per.c.va), else_=0))
    ending = func.sum(case((per.c.per_b == 1, per.c.vb), else_=0))
    cols = [func.sum(per.c.per_a).label("n_start"), starting.label("v_start"),
            func.sum(per.c.per_b).label("n_end"), ending.label("v_end")]
    for s in STEPS:
        cols.append(func.sum(case((per.c.step == s, 1), else_=0)).label(f"n_{s}"))
        cols.append(func.sum(case((per.c.step == s, per.c.change), else_=0)).label(f"v_{s}"))
    with records.engine.connect() as conn:
        m = conn.execute(select(*cols)).mappings().one()

    def step(name: str) -> Step:
        return Step(name, int(m[f"n_{name}"] or 0), money(m[f"v_{name}"]))

    return Waterfall(start, end, period, measure, step("start"),
                     tuple(step(s) for s in STEPS), step("end"))


def step_deals(records: Records, actor: Actor, start_id: int, end_id: int, step: str, *,
               period: tuple[date, date] | None = None, measure: str = "amount",
               limit: int = DEALS_LIMIT) -> tuple[list[StepDeal], bool]:
    """The deals of one step (`start` and `end`: of the starting and ending pipeline), the
    largest change first; and whether there were more than `limit`."""
    _check(measure, step)
    find_snapshot(records, start_id)
    find_snapshot(records, end_id)
    per = _per_deal(records, actor, start_id, end_id, period, measure)
    if step == "start":
        where, order = per.c.per_a == 1, per.c.va.desc()
    elif step == "end":
        where, order = per.c.per_b == 1, per.c.vb.desc()
    else:
        where, order = per.c.step == step, func.abs(per.c.change).desc()
    stmt = select(per.c.id, per.c.va, per.c.vb, per.c.change).where(where) \
        .order_by(order, per.c.id).limit(limit + 1)
    with records.engine.connect() as conn:
        found = list(conn.execute(stmt).mappings())
    deals = [StepDeal(int(m["id"]), None if m["va"] is None else money(m["va"]),
                      None if m["vb"] is None else money(m["vb"]), money(m["change"]))
             for m in found[:limit]]
    return deals, len(found) > limit


def deal_names(records: Records, actor: Actor, ids: list[int]) -> dict[int, str]:
    """The names of those deals `actor` may read now (live ones), by id: a drill-down shows
    the others by number only."""
    if not ids:
        return {}
    seen = secure.rows(records, actor, "opportunity")
    entity = seen.entity
    if entity.title in seen.hidden or not entity.has_field(entity.title):
        return {}
    stmt = seen.select(seen.table.c.id, seen.column(entity.title)) \
        .where(seen.table.c.id.in_(ids))
    with records.engine.connect() as conn:
        return {int(i): str(name) for i, name in conn.execute(stmt) if name is not None}

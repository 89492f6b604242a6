"""New children added to the rollups their parents store, in SQL: the path of a wave of
creates (a single create, a batch of an import).

Where a wave only created children and every rollup it touches is additive (count, sum,
min, max), each parent's value is its stored one combined with the aggregate of its new
children — one UPDATE … FROM per child and link, which aggregates the new children, writes
the parents whose value changes, and returns their new values. A from-scratch computation
(compute.py) would give the same values; `crm rollup check` compares them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    Update,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    update,
)

from engine.runtime.rollups import compute
from engine.runtime.rollups.compute import RollupField, aggregate_of, chunks

if TYPE_CHECKING:
    from engine.runtime.records import Records

# Children listed by id (not one run of ids) per statement: SQLite's limit on bound
# parameters is far above it.
CHUNK = 1000


def lock_parents_of(records: Records, conn: Connection, parent: str,
                    links: Sequence[tuple[str, str]], children: Sequence[Sequence[int]],
                    columns: Sequence[str]) -> list[dict[str, Any]] | None:
    """compute.lock_parents for the parents that new children point to, found in SQL:
    `links` (child, link) each with its new `children` (sorted ids). None when the
    children of a link are not one run of ids (lock them by id instead): an import's
    batch is, and its parents then need not be listed in the statement one by one."""
    if not all(ids and ids[-1] - ids[0] + 1 == len(ids) for ids in children):
        return None

    def build() -> Select[Any]:
        t = records.schema.table(parent)
        new = [t.c.id.in_(select(c.c[via]).where(c.c.id.between(bindparam(f"low{i}"),
                                                                bindparam(f"high{i}"))))
               for i, (child, via) in enumerate(links)
               for c in [records.schema.table(child).alias(f"rollup_child{i}")]]
        return (select(*[t.c[n] for n in columns]).where(or_(*new)).order_by(t.c.id)
                .with_for_update(key_share=True, of=t))

    stmt = records.statement(("rollup lock new", parent, tuple(links), tuple(columns)), build)
    params = {k: v for i, ids in enumerate(children)
              for k, v in ((f"low{i}", ids[0]), (f"high{i}", ids[-1]))}
    result = conn.execute(stmt, params)
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result.all()]


def add_children(records: Records, conn: Connection, rfs: Sequence[RollupField],
                 children: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Add the new `children` (ids, of one child entity) to the rollups `rfs` of their
    parents (one parent entity, one child and link, additive aggregates); returns parent id
    → {rollup: new value} for the parents whose value changed. The parents must be locked
    already (compute.lock_parents), and hold their values from before."""
    ids = sorted(set(children))
    if not ids:
        return {}
    names = tuple(rf.name for rf in rfs)
    out: dict[int, dict[str, Any]] = {}
    if ids[-1] - ids[0] + 1 == len(ids):
        # one run of ids (an import's batch): the statement is the same for every batch
        stmt = records.statement(("rollup add run", rfs[0].parent.name, names),
                                 lambda: _add(records, rfs, run=True))
        runs: list[dict[str, Any]] = [{"low": ids[0], "high": ids[-1]}]
    else:
        stmt = records.statement(("rollup add list", rfs[0].parent.name, names),
                                 lambda: _add(records, rfs, run=False))
        runs = [{"ids": chunk} for chunk in chunks(ids, CHUNK)]
    for params in runs:
        for row in conn.execute(stmt, params).all():
            # a later chunk adds to what an earlier one wrote: its values are the newest
            out.setdefault(row[0], {}).update(zip(names, row[1:], strict=True))
    return out


def _add(records: Records, rfs: Sequence[RollupField], *, run: bool) -> Update:
    """UPDATE parent SET r = r combined with d.r … FROM (the new children's aggregates per
    parent) d WHERE parent.id = d.via AND some value changes RETURNING parent.id, r …"""
    child = records.schema.table(rfs[0].rollup.child).alias("rollup_child")
    parent: Table = records.schema.table(rfs[0].parent.name)
    via = child.c[rfs[0].rollup.via]
    columns: list[ColumnElement[Any]] = []
    live: list[ColumnElement[bool]] = []
    for i, rf in enumerate(rfs):
        value, condition, live = compute.parts(records, rf, child)
        if condition is not None:
            value = case((condition, literal(1) if value is None else value))
        columns.append(aggregate_of(rf, value).label(f"r{i}"))
    new = (child.c.id.between(bindparam("low"), bindparam("high")) if run
           else child.c.id.in_(bindparam("ids", expanding=True)))
    added = (select(via.label("via"), *columns)
             .where(new, *live, via.is_not(None))
             .group_by(via).subquery("rollup_added"))
    values = {rf.name: _combined(rf, parent.c[rf.name], added.c[f"r{i}"])
              for i, rf in enumerate(rfs)}
    changed = or_(*(v.is_distinct_from(parent.c[n]) for n, v in values.items()))
    return (update(parent).where(parent.c.id == added.c.via, changed).values(values)
            .returning(parent.c.id, *(parent.c[rf.name] for rf in rfs)))


def _combined(rf: RollupField, stored: ColumnElement[Any],
              added: ColumnElement[Any]) -> ColumnElement[Any]:
    """The stored value with the new children's aggregate `added` combined into it, as
    compute.combine does in Python."""
    agg = rf.rollup.agg
    if agg in ("count", "sum"):  # `added` is never NULL: count, or sum coalesced to 0
        return func.coalesce(stored, literal(0)) + added
    better = added < stored if agg == "min" else added > stored
    return case((added.is_(None), stored),
                (or_(stored.is_(None), better), added),
                else_=stored)

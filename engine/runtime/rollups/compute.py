"""The SQL of a rollup: the aggregate of a parent's child records, computed from scratch.

Every way a rollup is written — the hook after a child change, `crm migrate` for a new or
changed rollup, `crm rollup check --fix` — computes the value with the same expression, so
what the hook stores is exactly what a from-scratch recomputation finds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    bindparam,
    case,
    func,
    literal,
    select,
    type_coerce,
    update,
)

from engine.fieldtypes import FIELD_TYPES
from engine.metadata.model import Entity, Field, Rollup
from engine.runtime.access import SYSTEM
from engine.runtime.records import secure
from engine.types import NUMERIC_TYPES

if TYPE_CHECKING:
    from engine.runtime.records import Records


@dataclass(frozen=True)
class RollupField:
    """A rollup field of `parent`, with what it is computed from."""

    parent: Entity
    field: Field
    rollup: Rollup
    inputs: frozenset[str]
    """The child's stored fields and engine columns the value depends on: a change of one
    of them (or of the child's link to the parent) recomputes the parent."""

    @property
    def name(self) -> str:
        return self.field.name


def rollup_fields(records: Records) -> list[RollupField]:
    """Every rollup of the model, children before the parents that aggregate them (a
    rollup of a rollup comes after the one it reads)."""
    model = records.model
    found: list[RollupField] = []
    for parent in model.entities:
        for f in parent.fields:
            if f.rollup is not None:
                child = model.entity(f.rollup.child)
                found.append(RollupField(parent, f, f.rollup, _inputs(child, f.rollup)))
    order: list[RollupField] = []
    placed: set[tuple[str, str]] = set()
    while len(order) < len(found):
        progressed = False
        for rf in found:
            key = (rf.parent.name, rf.name)
            if key in placed:
                continue
            child = model.entity(rf.rollup.child)
            waits = {(child.name, n) for n in rf.inputs
                     if child.has_field(n) and child.field(n).rollup is not None}
            if waits <= placed:
                order.append(rf)
                placed.add(key)
                progressed = True
        if not progressed:  # a cycle: the configuration check refuses it; keep going
            order += [rf for rf in found if (rf.parent.name, rf.name) not in placed]
            break
    return order


def _inputs(child: Entity, rollup: Rollup) -> frozenset[str]:
    names = {rollup.via} | ({rollup.of} if rollup.of else set())
    if rollup.where_compiled is not None:
        names |= {p[0] for p in rollup.where_compiled.references}
    todo = list(names)
    while todo:  # through the child's formula fields, to the stored fields they read
        name = todo.pop()
        if child.has_field(name) and child.field(name).computed:
            compiled = child.field(name).compiled
            for path in compiled.references if compiled is not None else ():
                if path[0] not in names:
                    names.add(path[0])
                    todo.append(path[0])
    return frozenset(n for n in names
                     if not (child.has_field(n) and child.field(n).computed))


def _counted(records: Records, rf: RollupField) -> tuple[Any, ColumnElement[Any],
                                                         list[ColumnElement[bool]]]:
    """The child table (an alias: the child may be the parent's own entity), the
    aggregate over it, and the conditions every counted child meets."""
    t = records.schema.table(rf.rollup.child).alias("rollup_child")
    value, condition, where = parts(records, rf, t)
    if condition is not None:
        where.append(condition)
    return t, aggregate_of(rf, value), where


def parts(records: Records, rf: RollupField, t: Any
           ) -> tuple[ColumnElement[Any] | None, ColumnElement[bool] | None,
                      list[ColumnElement[bool]]]:
    """On the child alias `t`: the value aggregated (None: the records are counted),
    the rollup's own `where`, and the conditions of every counted child (live)."""
    rollup = rf.rollup
    child = records.model.entity(rollup.child)
    # the engine's rows: every live child record counts, read as the engine reads it
    counted = secure.rows(records, SYSTEM, child.name, table=t)
    value: ColumnElement[Any] | None = (
        None if rollup.of is None else counted.path((rollup.of,)))
    of = child.field(rollup.of) if rollup.of and child.has_field(rollup.of) else None
    if value is not None and of is not None and of.computed and of.type in NUMERIC_TYPES:
        # a formula's value counts as shown and stored everywhere else, rounded to its
        # field's places: a total the hook keeps by adding each new child's value (already
        # rounded) then equals one summed from scratch (unrounded, it could differ by cents)
        value = func.round(value, _places(of))
    condition = (None if rollup.where_compiled is None
                 else counted.condition(rollup.where_compiled))
    return value, condition, counted.where


def aggregate_of(rf: RollupField, value: ColumnElement[Any] | None) -> ColumnElement[Any]:
    agg = rf.rollup.agg
    if agg == "count":
        return func.count() if value is None else func.count(value)
    if agg == "sum":
        return func.coalesce(func.sum(value), literal(0))
    if agg == "avg":
        return func.round(func.avg(value), _places(rf.field))
    return getattr(func, agg)(value)  # type: ignore[no-any-return]


def aggregate(records: Records, rf: RollupField, parent_id: ColumnElement[Any]
              ) -> ColumnElement[Any]:
    """The value of `rf` for the parent whose id is `parent_id` (a column of an outer
    query, or a bound parameter), read back as the field's type reads it."""
    t, agg, where = _counted(records, rf)
    column = records.schema.table(rf.parent.name).c[rf.name]
    return type_coerce(select(agg).where(t.c[rf.rollup.via] == parent_id, *where)
                       .scalar_subquery(), column.type)


# The aggregates a batch of new children can be added to (avg needs the count as well).
ADDITIVE = frozenset({"count", "sum", "min", "max"})


def additions(records: Records, conn: Connection, rfs: Sequence[RollupField],
              children: Collection[int]) -> dict[int, dict[str, Any]]:
    """Parent id → {rollup: the aggregate of the new `children` alone that count toward
    it}, for rollups `rfs` of one parent over one child and link, in one query."""
    # built once per set of rollups (a rollup never reads the clock or an actor): building
    # it compiles the wheres and the formula fields they read, several times the cost of
    # running it for one new child
    stmt = records.statement(
        ("rollup additions", rfs[0].parent.name, tuple(rf.name for rf in rfs)),
        lambda: _additions(records, rfs))
    out: dict[int, dict[str, Any]] = {}
    for chunk in chunks(sorted(children), 1000):
        for row in conn.execute(stmt, {"ids": chunk}):
            out[row[0]] = {rf.name: row[i + 1] for i, rf in enumerate(rfs)}
    return out


def _additions(records: Records, rfs: Sequence[RollupField]) -> Select[Any]:
    """The aggregates of `rfs` per parent over the children whose ids are `ids` (an
    expanding parameter): each rollup's `where` folded into its aggregate (CASE), so the
    children are read once for all of them."""
    t = records.schema.table(rfs[0].rollup.child).alias("rollup_child")
    parent = records.schema.table(rfs[0].parent.name)
    via = t.c[rfs[0].rollup.via]
    columns: list[ColumnElement[Any]] = []
    live: list[ColumnElement[bool]] = []
    for rf in rfs:
        value, condition, live = parts(records, rf, t)
        if condition is not None:
            value = case((condition, literal(1) if value is None else value))
        columns.append(type_coerce(aggregate_of(rf, value), parent.c[rf.name].type))
    return (select(via, *columns)
            .where(t.c.id.in_(bindparam("ids", expanding=True)), *live, via.is_not(None))
            .group_by(via))


def combine(agg: str, old: Any, added: Any) -> Any:
    """A stored value with the aggregate of new children added to it."""
    if added is None:
        return old
    if old is None:
        return added
    if agg in ("count", "sum"):
        return old + added
    return min(old, added) if agg == "min" else max(old, added)


def _places(f: Field) -> int:
    """Decimal places of a number field (rollups aggregate and give numbers only)."""
    return FIELD_TYPES[f.type].scale or 0


def values_of(records: Records, conn: Connection, parent: Entity,
              fields: Collection[RollupField], ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """id → {field: value computed from scratch} for the parents `ids`."""
    t = records.schema.table(parent.name)

    def build() -> Select[Any]:
        return (select(t.c.id, *[aggregate(records, rf, t.c.id).label(rf.name)
                                 for rf in fields])
                .where(t.c.id.in_(bindparam("ids", expanding=True))))

    stmt = records.statement(("rollup values", parent.name, tuple(rf.name for rf in fields)),
                             build)  # built once per set of rollups, as in `additions`
    out: dict[int, dict[str, Any]] = {}
    for chunk in chunks(sorted(set(ids)), 500):
        for row in conn.execute(stmt, {"ids": chunk}).mappings():
            out[row["id"]] = {rf.name: row[rf.name] for rf in fields}
    return out


def recompute_range(records: Records, conn: Connection, rf: RollupField, low: int,
                    high: int) -> int:
    """Set `rf` from scratch on the parents with low <= id < high, in one statement;
    returns how many rows it set."""
    t: Table = records.schema.table(rf.parent.name)
    result = conn.execute(update(t).where(t.c.id >= low, t.c.id < high)
                          .values({rf.name: aggregate(records, rf, t.c.id)}))
    return result.rowcount


def lock_parents(conn: Connection, table: Table, ids: Iterable[int],
                 columns: Sequence[str] = ("id",)) -> list[dict[str, Any]]:
    """Lock the parent rows `ids` in id order and read their `columns`: a concurrent
    write of the same parent waits, then computes from what this one committed. FOR NO
    KEY UPDATE (SQLite, whose writers queue anyway, has no row locks: SQLAlchemy leaves
    the clause out): a child's foreign key already holds FOR KEY SHARE on its parent,
    which FOR UPDATE would wait for — two writers would deadlock."""
    locked = (select(*[table.c[n] for n in columns]).where(table.c.id.in_(sorted(ids)))
              .order_by(table.c.id).with_for_update(key_share=True))
    result = conn.execute(locked)
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def write_values(conn: Connection, table: Table, rows: list[dict[str, Any]],
                 names: Collection[str]) -> None:
    """Store rollup values: rows of {"_id": id, name: value, ...}; nothing else changes
    (neither version nor updated_at: a rollup is the engine's, not an edit)."""
    if rows:
        stmt = update(table).where(table.c.id == bindparam("_id")).values(
            {n: bindparam(n, type_=table.c[n].type) for n in names})
        conn.execute(stmt, rows)


def chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]

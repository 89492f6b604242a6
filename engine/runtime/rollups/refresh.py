"""Rollups over whole tables: computed by `crm migrate` when new or changed, and checked
against a from-scratch recomputation by `crm rollup check` (repaired with `--fix`).

A backfill is set-based (one UPDATE per batch of parent ids, each batch a unit of work of
its own) and records no per-record changes: a migration sets derived values, it is not an
edit anyone made, so no flow reacts to it. A rollup's signature (what it is computed from)
is stored in crm_rollup_state once every batch is done; an interrupted backfill is redone
whole by the next migrate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select

from engine.runtime.access import SYSTEM
from engine.runtime.rollups.compute import (
    RollupField,
    aggregate,
    lock_parents,
    recompute_range,
    rollup_fields,
    values_of,
    write_values,
)
from engine.runtime.schema.tables import ROLLUP_STATE_TABLE

if TYPE_CHECKING:
    from engine.runtime.records import Records

BATCH = 5_000
# How the engine computes rollups; 2: a formula field's values are rounded to its places
# before they are aggregated.
REVISION = 2
# (rollup "entity.field", parent rows done, parent rows in all)
Progress = Callable[[str, int, int], None]


def stale_rollups(records: Records) -> list[RollupField]:
    """The rollups whose column was never computed, or computed from something else."""
    state = records.schema.table(ROLLUP_STATE_TABLE)
    with records.engine.connect() as conn:
        known = {(r.entity, r.field): r.signature for r in conn.execute(select(state))}
    return [rf for rf in rollup_fields(records)
            if known.get((rf.parent.name, rf.name)) != signature(rf)]


def signature(rf: RollupField) -> str:
    """What a rollup's stored values were computed from: its definition, and how the
    engine computes (a new revision recomputes every rollup at the next migrate)."""
    return f"r{REVISION} {rf.rollup.signature}"


def refresh_rollups(records: Records, progress: Progress | None = None,
                    batch: int = BATCH) -> list[tuple[str, int]]:
    """Compute every stale rollup for every parent row (children's rollups before the
    parents that aggregate them); returns their names ("account.open_deals") with how many
    rows each was computed for."""
    done: list[tuple[str, int]] = []
    state = records.schema.table(ROLLUP_STATE_TABLE)
    for rf in stale_rollups(records):
        name = f"{rf.parent.name}.{rf.name}"
        t = records.schema.table(rf.parent.name)
        with records.engine.connect() as conn:
            low, high, total = conn.execute(
                select(func.min(t.c.id), func.max(t.c.id), func.count())).one()
        finished = 0
        if progress is not None:
            progress(name, 0, total)
        start = low if low is not None else 0
        while high is not None and start <= high:
            with records.unit(SYSTEM) as unit:
                finished += recompute_range(records, unit.conn, rf, start, start + batch)
            start += batch
            if progress is not None:
                progress(name, finished, total)
        with records.unit(SYSTEM) as unit:
            key = (state.c.entity == rf.parent.name, state.c.field == rf.name)
            unit.conn.execute(delete(state).where(*key))
            unit.conn.execute(insert(state).values(entity=rf.parent.name, field=rf.name,
                                                   signature=signature(rf),
                                                   computed_at=unit.now))
        done.append((name, total))
    return done


@dataclass(frozen=True)
class Drift:
    """A stored rollup value that differs from its recomputation."""

    entity: str
    record_id: int
    field: str
    stored: Any
    computed: Any


def check_rollups(records: Records, entity: str | None = None, *, fix: bool = False,
                  batch: int = BATCH) -> list[Drift]:
    """Every parent row's rollups recomputed from scratch and compared with what is stored
    (recycle bin included), stored and computed in one statement (one snapshot, so a
    concurrent write cannot show as drift); `fix`: the differing values are written."""
    drifts: list[Drift] = []
    by_parent: dict[str, list[RollupField]] = {}
    for rf in rollup_fields(records):
        if entity is None or rf.parent.name == entity:
            by_parent.setdefault(rf.parent.name, []).append(rf)
    for parent, rfs in by_parent.items():
        t = records.schema.table(parent)
        names = [rf.name for rf in rfs]
        stmt = select(t.c.id, *[t.c[n] for n in names],
                      *[aggregate(records, rf, t.c.id).label(f"fresh_{i}")
                        for i, rf in enumerate(rfs)]).order_by(t.c.id).limit(batch)
        last = 0
        while True:
            with records.engine.connect() as conn:
                rows = conn.execute(stmt.where(t.c.id > last)).mappings().all()
            if not rows:
                break
            last = rows[-1]["id"]
            found = [Drift(parent, r["id"], n, r[n], r[f"fresh_{i}"])
                     for r in rows for i, n in enumerate(names) if r[n] != r[f"fresh_{i}"]]
            drifts += found
            if fix and found:
                _repair(records, parent, rfs, {d.record_id for d in found})
    return drifts


def _repair(records: Records, parent: str, rfs: list[RollupField], ids: set[int]) -> None:
    """Write the rollups of `ids` afresh, their rows locked as the hook locks them."""
    t = records.schema.table(parent)
    with records.unit(SYSTEM) as unit:
        lock_parents(unit.conn, t, ids)
        fresh = values_of(records, unit.conn, records.model.entity(parent), rfs, ids)
        write_values(unit.conn, t, [{"_id": i, **v} for i, v in fresh.items()],
                     [rf.name for rf in rfs])

"""Bulk create (imports, demo data): validate every row, insert in batches, report the rest.

Rows with problems are skipped and reported by their index; each batch commits on its own,
with one `create` audit row per record holding all its values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.collector import batch_done, bulk_work
from engine.runtime.db import refresh_statistics
from engine.runtime.errors import Forbidden
from engine.runtime.records.autonumber import assign_numbers
from engine.runtime.records.bulk import Batch, drop_unlinked_and_taken
from engine.runtime.records.driver_insert import insert_mappings, new_ids
from engine.runtime.records.regarding import check_regarding
from engine.runtime.records.unique import unique_key
from engine.runtime.values import to_json

if TYPE_CHECKING:
    from engine.runtime.records.service import Compiled, Records
    from engine.runtime.records.unit import UnitOfWork

BULK_BATCH = 2_000
# An import this large changes the table's shape enough to refresh SQLite's statistics.
ANALYZE_AFTER = 10_000


@dataclass(frozen=True)
class BulkResult:
    created: int
    errors: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)


@bulk_work()  # a young collection every 100,000 containers, not 700 (runtime/collector.py)
def bulk_create(records: Records, actor: Actor, entity: str,
                rows: Iterable[Mapping[str, Any]], *, batch_size: int = BULK_BATCH,
                owner: Actor | None = None, unit: UnitOfWork | None = None,
                coerced: bool = False) -> BulkResult:
    """Validate and insert many rows; rows with problems are skipped and reported.

    Each batch is a unit of work of its own (records/unit.py) that commits on its own —
    or all go in `unit` when given. Returns the ids created, in input order. `owner`: whose
    records they become (an import on someone's behalf; administrators only), by default
    the actor's. `coerced`: the rows hold stored values already (made by the same
    coercers, as an import's RowCoercer does), so they are not coerced a second time.
    """
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "create")
    if owner is not None and owner != actor and not records.policy.is_admin(actor):
        raise Forbidden(msg("only an administrator may import records on someone's behalf"))
    mask = records.policy.mask(actor, c.entity)
    created: list[int] = []
    errors: list[tuple[int, dict[str, str]]] = []
    batch: list[tuple[int, dict[str, Any]]] = []
    seen_unique: dict[str, set[Any]] = {f.name: set() for f in c.entity.fields if f.unique}
    for index, data in enumerate(rows):
        problems: dict[str, str] = {}
        values = records.coerce(c, data, creating=True, errors=problems, mask=mask,
                                coerced=coerced)
        for name, seen in seen_unique.items():
            v = values.get(name)
            if v is not None and name not in problems:
                key = unique_key(c.entity, c.entity.field(name), v)
                if key in seen:
                    problems[name] = msg("%(value)s appears twice in this import",
                                         value=to_json(v))
                seen.add(key)
        if problems:
            errors.append((index, problems))
        else:
            batch.append((index, values))
        if len(batch) >= batch_size:
            created += _insert_batch(records, actor, c, batch, errors, owner or actor, unit)
            batch = []
            batch_done()
    if batch:
        created += _insert_batch(records, actor, c, batch, errors, owner or actor, unit)
    errors.sort(key=lambda e: e[0])  # batch-level problems arrive after row-level ones
    if unit is None and len(created) >= ANALYZE_AFTER:
        # (inside the caller's unit, the caller does it once that has committed: ANALYZE
        # writes, and SQLite's one write transaction is the caller's)
        refresh_statistics(records.engine, (entity,))
    return BulkResult(len(created), errors, created)

def _insert_batch(records: Records, actor: Actor, c: Compiled, batch: Batch,
                  errors: list[tuple[int, dict[str, str]]], owner: Actor,
                  unit: UnitOfWork | None) -> list[int]:
    names = [f.name for f in c.written]
    with records.unit(actor, unit) as work:
        conn, now = work.conn, work.now
        engine_values = records.engine_values(actor, owner, now)
        good = drop_unlinked_and_taken(conn, c.entity, c.table, c.links, batch, errors,
                                       lambda target: records.link_filter(actor, target))
        if c.regarding:
            good = _drop_unregarded(records, conn, actor, c, good, errors)
        if c.entity.validations or any(f.default_formula for f in c.entity.stored_fields):
            good = _bulk_formulas(records, conn, actor, c, good, errors, engine_values)
        if not good:
            return []
        assign_numbers(conn, records.counters, c.entity, [v for _, v in good], now,
                       records.model.settings.zone)
        blank, known = dict.fromkeys(names), set(names)
        written = [{**blank, **v} if v.keys() <= known else {n: v.get(n) for n in names}
                   for _, v in good]
        stored = [c.db_values(w) for w in written]
        # the batch's ids handed out first (records/driver_insert.py), then one driver
        # call: executemany on SQLite, COPY on PostgreSQL — the same stored values an
        # insert() would write, without its per-row parameter processing
        ids = new_ids(conn, c.table, len(stored))
        for rid, s in zip(ids, stored, strict=True):
            s["id"] = rid
        keys = list(stored[0])
        shared = {k: x for k, x in {**engine_values, **c.empty_rollups}.items()
                  if k not in stored[0]}
        insert_mappings(conn, c.table, keys, stored, constants=shared)
        entity = c.entity.name
        for rid, (_, v), w in zip(ids, good, written, strict=True):
            work.change(entity, rid, "create", after={**engine_values, **w, "id": rid},
                        changes=[(k, None, x) for k, x in v.items() if x is not None])
    return ids

def _drop_unregarded(records: Records, conn: Connection, actor: Actor, c: Compiled,
                     batch: Batch, errors: list[tuple[int, dict[str, str]]]) -> Batch:
    """The rows whose regarding values name records the importer may read (one query per
    row and field: imports of records regarding others are rarely large)."""
    good: list[tuple[int, dict[str, Any]]] = []
    for i, v in batch:
        problems: dict[str, str] = {}
        check_regarding(records, conn, actor, c, v, problems)
        if problems:
            errors.append((i, problems))
        else:
            good.append((i, v))
    return good


def _bulk_formulas(records: Records, conn: Connection, actor: Actor, c: Compiled,
                   batch: Batch, errors: list[tuple[int, dict[str, str]]],
                   engine_values: Mapping[str, Any]) -> Batch:
    """Fill formula defaults and drop rows that fail a validation rule (but those `actor`
    may override)."""
    good: list[tuple[int, dict[str, Any]]] = []
    for i, v in batch:
        problems: dict[str, str] = {}
        records.complete_new(conn, c, v, problems, engine_values, given=list(v), writer=actor)
        if problems:
            errors.append((i, problems))
        else:
            good.append((i, v))
    return good

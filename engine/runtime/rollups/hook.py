"""The before-commit hook that keeps rollups exact.

For each child change in the unit of work — create, update of a field the rollup reads or
of the link to the parent (both parents when it moves), delete to the recycle bin, restore,
purge, bulk create, assign, and a change of a rollup the parent's rollup aggregates — the
parents it touches are locked (in id order), their rollups computed from scratch in one
query, and the ones whose value differs written. Locking the parent rows first makes a
concurrent child write of the same parent wait, and then compute in a statement that sees
what the first one committed: no update is lost. A parent whose value changed is a change
of the unit ("rollup", not audited: the value is derived), so a rollup of that parent's
parent follows, and later flows can react to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine.runtime.records.unit import RecordChange, UnitOfWork
from engine.runtime.rollups.compute import RollupField, rollup_fields, values_of, write_values

if TYPE_CHECKING:
    from engine.runtime.records import Records

HOOK_NAME = "rollups"
_ALWAYS = frozenset({"create", "delete", "restore", "purge"})


class RollupHook:
    def __init__(self, records: Records) -> None:
        self.records = records
        self.by_child: dict[str, list[RollupField]] = defaultdict(list)
        for rf in rollup_fields(records):
            self.by_child[rf.rollup.child].append(rf)

    def of_parent(self, parent: str) -> list[RollupField]:
        return [rf for rfs in self.by_child.values() for rf in rfs if rf.parent.name == parent]

    def __call__(self, unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        # parent entity → field → parent ids to recompute
        todo: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for change in changes:
            for rf in self.by_child.get(change.entity, ()):
                ids = self._parents_of(unit, change, rf)
                if ids:
                    todo[rf.parent.name][rf.name] |= ids
        for parent, fields in todo.items():
            self._recompute(unit, parent, fields)

    def _parents_of(self, unit: UnitOfWork, change: RecordChange,
                    rf: RollupField) -> set[int]:
        via = rf.rollup.via
        if change.action not in _ALWAYS and not change.changed & rf.inputs:
            return set()
        found: set[int] = set()
        missing = False
        for values in (change.before, change.after):
            if values is None:
                continue
            if via in values:
                if values[via] is not None:
                    found.add(values[via])
            else:
                missing = True
        if missing:  # the path did not read the link (assign): read it now
            t = self.records.schema.table(change.entity)
            parent = unit.conn.execute(select(t.c[via]).where(t.c.id == change.record_id)
                                       ).scalar()
            if parent is not None:
                found.add(parent)
        return found

    def _recompute(self, unit: UnitOfWork, parent: str, fields: dict[str, set[int]]) -> None:
        records = self.records
        entity = records.model.entity(parent)
        t = records.schema.table(parent)
        ids = sorted(set().union(*fields.values()))
        # lock the parents first, in id order: a concurrent write of the same parent waits.
        # FOR NO KEY UPDATE: the child's foreign key already holds FOR KEY SHARE on the
        # parent, which FOR UPDATE would wait for — two writers would deadlock.
        locked = select(t).where(t.c.id.in_(ids)).order_by(t.c.id)
        if records.engine.dialect.name != "sqlite":
            locked = locked.with_for_update(key_share=True)
        current = {r["id"]: dict(r) for r in unit.conn.execute(locked).mappings()}
        rfs = [rf for rf in self.of_parent(parent) if rf.name in fields]
        fresh = values_of(records, unit.conn, entity, rfs, current)
        rows: list[dict[str, Any]] = []
        for pid, values in fresh.items():
            old = current[pid]
            changes = [(name, old[name], values[name]) for name in sorted(values)
                       if pid in fields[name] and old[name] != values[name]]
            if not changes:
                continue
            rows.append({"_id": pid, **{n: old[n] for n in values},
                         **{n: v for n, _, v in changes}})
            unit.change(parent, pid, "rollup", before=old,
                        after={**old, **{n: v for n, _, v in changes}}, changes=changes,
                        audited=False)
        write_values(unit.conn, t, rows, [rf.name for rf in rfs])


def install_rollups(records: Records) -> None:
    """Register the hook on a records service (when the app or the CLI assembles it)."""
    if HOOK_NAME in records.hooks.names:
        return
    hook = RollupHook(records)
    if hook.by_child:
        records.hooks.on_before_commit(HOOK_NAME, hook)

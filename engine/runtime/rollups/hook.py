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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine.runtime.records.unit import RecordChange, UnitOfWork
from engine.runtime.rollups.compute import (
    ADDITIVE,
    RollupField,
    additions,
    combine,
    lock_parents,
    rollup_fields,
    values_of,
    write_values,
)
from engine.runtime.rollups.increments import add_children, lock_parents_of

if TYPE_CHECKING:
    from engine.runtime.records import Records

HOOK_NAME = "rollups"
_ALWAYS = frozenset({"create", "delete", "restore", "purge"})


class RollupHook:
    def __init__(self, records: Records) -> None:
        self.records = records
        self.by_child: dict[str, list[RollupField]] = defaultdict(list)
        # parent → the columns a rollup change reads of it
        self.read: dict[str, list[str]] = {}
        found = rollup_fields(records)
        for rf in found:
            self.by_child[rf.rollup.child].append(rf)
        # child → the links its rollups go through
        self.links: dict[str, list[str]] = {
            child: sorted({rf.rollup.via for rf in rfs}) for child, rfs in self.by_child.items()}
        for parent in {rf.parent.name for rf in found}:
            table = records.schema.table(parent)
            names = {"id", *(rf.name for rf in found if rf.parent.name == parent)}
            names |= {n for rf in self.by_child.get(parent, ()) for n in rf.inputs
                      if n in table.c}
            self.read[parent] = sorted(names)

    def __call__(self, unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        plans: dict[str, dict[str, _Plan]] = defaultdict(dict)
        # (child, link) → the parents new children point to, and those children
        created: dict[tuple[str, str], tuple[set[int], set[int]]] = {}
        for change in changes:
            rfs = self.by_child.get(change.entity)
            if not rfs:
                continue
            if change.action == "create" and change.after is not None:
                # the common case, a million times in an import: the new child's parents,
                # once per link however many rollups go through it
                after, child = change.after, change.entity
                for via in self.links[child]:
                    parent = after.get(via)
                    if parent is not None:
                        found = created.get((child, via))
                        if found is None:
                            found = created[(child, via)] = (set(), set())
                        found[0].add(parent)
                        found[1].add(change.record_id)
                continue
            for rf in rfs:
                ids = self._parents_of(unit, change, rf)
                if ids:
                    plans[rf.parent.name].setdefault(rf.name, _Plan(rf)).full |= ids
        for (child, via), (parents, children) in created.items():
            for rf in self.by_child[child]:
                if rf.rollup.via != via:
                    continue
                plan = plans[rf.parent.name].setdefault(rf.name, _Plan(rf))
                if rf.rollup.agg in ADDITIVE:
                    plan.added |= parents
                    plan.children |= children
                else:
                    plan.full |= parents
        for parent in sorted(plans):  # the same order for every writer
            self._recompute(unit, parent, list(plans[parent].values()))

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

    def _recompute(self, unit: UnitOfWork, parent: str, plans: list[_Plan]) -> None:
        """Lock the parents, then compute their values: from scratch where a child
        changed, moved or left; by adding the new children where children were only
        created (an import of a million children adds each batch to what is stored,
        instead of counting every child again)."""
        # the rollups over one child and link read (or add) the new children at once
        groups: dict[tuple[str, str], list[_Plan]] = defaultdict(list)
        for p in plans:
            if p.added - p.full:
                groups[(p.rf.rollup.child, p.rf.rollup.via)].append(p)
        if not any(p.full for p in plans):
            self._add_new(unit, parent, groups)
            return
        records = self.records
        t = records.schema.table(parent)
        # lock the parents first, reading only what a rollup change must show: its
        # values, and what rollups over this entity read (a rollup of a rollup finds the
        # grandparent through it)
        ids = set().union(*(p.full | p.added for p in plans))
        current = {r["id"]: r for r in lock_parents(unit.conn, t, ids, self.read[parent])}
        new: dict[int, dict[str, Any]] = defaultdict(dict)
        full = [p for p in plans if p.full]
        fresh = values_of(records, unit.conn, records.model.entity(parent),
                          [p.rf for p in full], set().union(*(p.full for p in full)))
        for p in full:
            for pid in p.full & fresh.keys():
                new[pid][p.rf.name] = fresh[pid][p.rf.name]
        for group in groups.values():
            added = additions(records, unit.conn, [p.rf for p in group],
                              set().union(*(p.children for p in group)))
            for p in group:
                for pid in (p.added - p.full) & current.keys():
                    new[pid][p.rf.name] = combine(p.rf.rollup.agg, current[pid][p.rf.name],
                                                  added.get(pid, {}).get(p.rf.name))
        names = [p.rf.name for p in plans]
        rows = [{"_id": pid, **{n: after[n] for n in names}}
                for pid, after in self._changed(unit, parent, current, new)]
        write_values(unit.conn, t, rows, names)

    def _add_new(self, unit: UnitOfWork, parent: str,
                 groups: dict[tuple[str, str], list[_Plan]]) -> None:
        """Children were only created: lock their parents (found from the children in
        SQL when they are one run of ids, an import's batch), add the new children to
        the stored values in SQL (increments.py), and tell the unit what changed."""
        records = self.records
        columns = self.read[parent]
        links = list(groups)
        children = [sorted(set().union(*(p.children for p in groups[k]))) for k in links]
        locked = lock_parents_of(records, unit.conn, parent, links, children, columns)
        if locked is None:
            ids = set().union(*(p.added for ps in groups.values() for p in ps))
            locked = lock_parents(unit.conn, records.schema.table(parent), ids, columns)
        new: dict[int, dict[str, Any]] = defaultdict(dict)
        for key, new_children in zip(links, children, strict=True):
            added = add_children(records, unit.conn, [p.rf for p in groups[key]],
                                 new_children)
            for pid, values in added.items():
                new[pid].update(values)
        self._changed(unit, parent, {r["id"]: r for r in locked}, new)

    @staticmethod
    def _changed(unit: UnitOfWork, parent: str, current: dict[int, dict[str, Any]],
                 new: dict[int, dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
        """Record a rollup change for each locked parent whose values differ from what it
        held; returns them with their values after."""
        done: list[tuple[int, dict[str, Any]]] = []
        for pid, values in sorted(new.items()):
            old = current.get(pid)
            if old is None:  # purged meanwhile
                continue
            changes = [(n, old[n], v) for n, v in sorted(values.items()) if old[n] != v]
            if not changes:
                continue
            after = {**old, **{n: v for n, _, v in changes}}
            unit.change(parent, pid, "rollup", before=old, after=after, changes=changes,
                        audited=False)
            done.append((pid, after))
        return done


@dataclass
class _Plan:
    """What one rollup must do for the parents a wave of changes touched."""

    rf: RollupField
    full: set[int] = field(default_factory=set)
    """Parents to compute from scratch."""
    added: set[int] = field(default_factory=set)
    """Parents that only gained new children (`children`)."""
    children: set[int] = field(default_factory=set)


def install_rollups(records: Records) -> None:
    """Register the hook on a records service (when the app or the CLI assembles it)."""
    if HOOK_NAME in records.hooks.names:
        return
    hook = RollupHook(records)
    if hook.by_child:
        records.hooks.on_before_commit(HOOK_NAME, hook)

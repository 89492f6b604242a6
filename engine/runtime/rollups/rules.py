"""A parent's validation rules that read its rollups, judged when a child write changes them.

A contract's rule `invoiced <= amount` is about the contract, but what breaks it is an
invoice: the rollup hook changes the contract's `invoiced` inside the invoice's unit of
work, so this before-commit hook, shown those rollup changes in the next wave, judges the
contract's rules that read a rollup which changed. A rule the change breaks fails the
whole write (422), its message under the child's link field (the invoice's `contract`), so
a form shows it beside the field that leads to the parent. A rule the parent already broke
before the change is left alone (a record saved before the rule existed does not block
every write of its children), as is a rule the writer's roles may override.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine.messages import LabelMessage, joined, msg
from engine.metadata.model import Entity, Validation
from engine.runtime.errors import Invalid
from engine.runtime.records.computed import RECORD_KEY
from engine.runtime.records.unit import RecordChange, UnitOfWork

if TYPE_CHECKING:
    from engine.runtime.records import Records

HOOK_NAME = "rollup rules"


@dataclass(frozen=True)
class _Watched:
    """A rule of a parent entity and the rollups of it the rule reads."""

    index: int
    rule: Validation
    rollups: frozenset[str]


class ParentRules:
    def __init__(self, records: Records) -> None:
        self.records = records
        self.watched: dict[str, list[_Watched]] = {}
        for entity in records.model.entities:
            rollups = {f.name for f in entity.fields if f.rollup is not None}
            for n, v in enumerate(entity.validations):
                if v.compiled is None or not rollups:
                    continue
                # a computed field the rule reads may read rollups in turn
                read = _fields_read(entity, {p[0] for p in v.compiled.references})
                if read & rollups:
                    self.watched.setdefault(entity.name, []).append(
                        _Watched(n, v, frozenset(read & rollups)))

    def __call__(self, unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        roles = unit.actor.roles
        for change in changes:
            if change.action != "rollup" or change.before is None:
                continue
            rules = [w for w in self.watched.get(change.entity, ())
                     if w.rollups & change.changed and w.rule.binds(roles)]
            if rules:
                self._judge(unit, change, rules)

    def _judge(self, unit: UnitOfWork, change: RecordChange, rules: list[_Watched]) -> None:
        records = self.records
        c = records.compiled(change.entity)
        row = unit.conn.execute(select(c.table).where(c.table.c.id == change.record_id)
                                ).mappings().first()
        if row is None:
            return
        now: dict[str, Any] = dict(row)
        before = {**now, **{name: old for name, old, _ in change.changes}}
        ctx = records.record_context(unit.conn, c, now)
        prior = records.record_context(unit.conn, c, before)
        broken = [w for w in rules
                  if w.rule.compiled is not None and not w.rule.compiled.holds(ctx)
                  and w.rule.compiled.holds(prior)]
        if not broken:
            return
        key = _link_of(records, c.entity, change)
        raise Invalid(msg("%(entity)s is not valid", entity=change.entity), {key: joined([
            LabelMessage(w.rule.message, f"{change.entity}.validations.{w.index}")
            for w in broken])})


def _fields_read(entity: Entity, names: set[str]) -> set[str]:
    """`names` and, through computed fields, every field they read (transitively)."""
    out: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in out or not entity.has_field(name):
            continue
        out.add(name)
        f = entity.field(name)
        if f.computed and f.compiled is not None:
            todo.extend(p[0] for p in f.compiled.references)
    return out


def _link_of(records: Records, parent: Entity, change: RecordChange) -> str:
    """The field of the child whose write changed the parent's rollups (an invoice's
    `contract`), where the message goes; the record as a whole when it is not known."""
    cause = change.cause
    while cause is not None and cause.action == "rollup":
        cause = cause.cause
    if cause is None:
        return RECORD_KEY
    for f in parent.fields:
        if f.rollup is not None and f.rollup.child == cause.entity \
                and f.name in change.changed:
            return f.rollup.via
    return RECORD_KEY


def install_parent_rules(records: Records) -> None:
    """Register the hook (after the rollup hook: it judges the rollups' changes)."""
    if HOOK_NAME in records.hooks.names:
        return
    hook = ParentRules(records)
    if hook.watched:
        records.hooks.on_before_commit(HOOK_NAME, hook)

"""The write pipeline: one unit of work per transaction, for every write of records.

Every write path — create, update, delete, restore, purge, bulk create, assign (with its
cascades), team changes, transfer, and later imports and flow actions — opens a unit of
work (`Records.unit`) or joins the one it is given, and tells it what it changed: one
`RecordChange` per record. The order is fixed:

1. coercion and field checks (`Records.coerce`: types, unknown, hidden, read-only and
   required fields);
2. links and unique checks (references point to live records the writer may read; unique
   values are free);
3. defaults and validation rules (formula defaults, then the entity's rules on the record as
   it will be saved);
4. the write, and `UnitOfWork.record` of each record's change;
5. hooks **before commit**, in the same transaction (`settle`): each gets the changes not yet
   shown to hooks and may write further records through the unit (rollups now, flow
   triggers later); what they change is shown to the hooks in turn, so a change has a depth
   — the path's own changes 0, a change a hook made because of a depth-n change n + 1.
   Past `MAX_DEPTH` the whole write fails, with an error naming the chain;
6. the audit rows, written from the change set, in one shape for every path
   (`engine/runtime/audit.py` `audit_rows`), then the change log the changes feed reads
   (`engine/runtime/records/changelog.py`: one row per record, in commit order);
7. commit — or, in a dry run, roll back to a savepoint taken when the unit opened, and hand
   the change set back;
8. hooks **after commit** (an outbox for notifications and webhooks): they see what was
   committed; one that fails is logged and never undoes the write.

`records` never imports its hooks: the app and the CLI register them when they assemble the
service (engine/runtime/assembly.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.audit import AUDIT_COLUMNS, audit_rows
from engine.runtime.errors import Conflict
from engine.runtime.records.changelog import write_log
from engine.runtime.records.driver_insert import insert_mappings

if TYPE_CHECKING:
    from sqlalchemy import Engine, Table

log = logging.getLogger(__name__)

# How deep hooks may chain changes (a rollup of a rollup is depth 2).
MAX_DEPTH = 8

FieldChange = tuple[str, Any, Any]


@dataclass(frozen=True, slots=True)
class RecordChange:
    """What one write did to one record.

    `action`, which hooks dispatch on: create, update, delete, restore, purge, assign,
    team, rollup (a hook's derived value), deactivate (a user, by a transfer).
    `before`: the record's values before (None when created); `after`: after (None when
    purged); both hold the engine columns and stored fields the path read or wrote.
    `changes`: (field, old, new) of the fields that changed — for a team change the
    pseudo-field "team". `audited`: whether audit rows are written for it (a rollup's new
    value is derived, not audited). `cause`: the change whose hook made this one."""

    entity: str
    record_id: int
    action: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    changes: tuple[FieldChange, ...]
    actor: int | None
    at: datetime
    audited: bool = True
    cause: RecordChange | None = None
    depth: int = 0

    @property
    def changed(self) -> frozenset[str]:
        """The names of the fields that changed."""
        return frozenset(f for f, _, _ in self.changes)

    def described(self) -> str:
        return f"{self.entity} {self.record_id} ({self.action})"


BeforeCommit = Callable[["UnitOfWork", Sequence[RecordChange]], None]
AfterCommit = Callable[[Sequence[RecordChange]], None]


@dataclass
class Hooks:
    """What runs with every write. Registered once, when the service is assembled."""

    before_commit: list[tuple[str, BeforeCommit]] = field(default_factory=list)
    after_commit: list[tuple[str, AfterCommit]] = field(default_factory=list)

    def on_before_commit(self, name: str, hook: BeforeCommit) -> None:
        """`hook(unit, changes)` runs in the write's transaction, before its audit rows."""
        self.before_commit.append((name, hook))

    def on_after_commit(self, name: str, hook: AfterCommit) -> None:
        """`hook(changes)` runs once the write has committed (not in a dry run)."""
        self.after_commit.append((name, hook))

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.before_commit] + [n for n, _ in self.after_commit]


class ChainTooDeep(Conflict):
    code = "hook_chain_too_deep"


class UnitOfWork:
    """One transaction's writes: the connection, who writes, when, and the change set."""

    def __init__(self, conn: Connection, actor: Actor, now: datetime, hooks: Hooks,
                 audit: Table, *, dry_run: bool = False,
                 change_log: Table | None = None) -> None:
        self.conn = conn
        self.actor = actor
        self.now = now
        self.hooks = hooks
        self.dry_run = dry_run  # for hooks: nothing of this unit will stay
        self._audit = audit
        self._change_log = change_log  # None: no feed is kept (a bare unit in a test)
        self.changes: list[RecordChange] = []
        self._shown = 0  # changes[:_shown] have been shown to the before-commit hooks
        self._cause: RecordChange | None = None
        self._depth = 0

    def change(self, entity: str, record_id: int, action: str, *,
               before: Mapping[str, Any] | None = None,
               after: Mapping[str, Any] | None = None,
               changes: Sequence[FieldChange] = (), audited: bool = True) -> RecordChange:
        """Record one record's change, made now by the unit's actor; a change made inside
        a hook is caused by the change the hook is handling."""
        made = RecordChange(entity, record_id, action, before, after, tuple(changes),
                            self.actor.user_id, self.now, audited, self._cause, self._depth)
        self.changes.append(made)
        return made

    @contextmanager
    def caused_by(self, cause: RecordChange) -> Iterator[None]:
        """What the block changes is caused by `cause` (one level deeper), not by the wave's
        deepest change: for a hook that knows which change it is handling, so a chain
        names the changes that really led to each other."""
        outer = self._cause, self._depth
        self._cause, self._depth = cause, cause.depth + 1
        try:
            yield
        finally:
            self._cause, self._depth = outer

    def settle(self) -> None:
        """Run the before-commit hooks over the changes they have not seen, and over what
        they change in turn, until nothing new comes."""
        while self._shown < len(self.changes):
            wave = self.changes[self._shown:]
            self._shown = len(self.changes)
            # of the deepest changes, a write rather than a derived value (a rollup): the
            # chain named on failure is then the writes that led to each other
            deepest = max(wave, key=lambda c: (c.depth, c.audited))
            if deepest.depth >= MAX_DEPTH:
                raise ChainTooDeep(msg(
                    "the write set off more than %(limit)s rounds of automatic changes: "
                    "%(chain)s", limit=MAX_DEPTH, chain=_chain(deepest)))
            for _name, hook in self.hooks.before_commit:
                # a hook's write may settle its own changes (Records.update does): what the
                # hook changes after that keeps the depth of the wave it is handling
                outer = self._cause, self._depth
                self._cause, self._depth = deepest, deepest.depth + 1
                try:
                    hook(self, wave)
                finally:
                    self._cause, self._depth = outer

    def finish(self) -> None:
        """Hooks, then the audit rows of the whole change set, then its change-log rows
        (last: they take the lock that orders the log by commit, held until commit)."""
        self.settle()
        rows = [row for c in self.changes if c.audited
                for row in audit_rows(at=c.at, user_id=c.actor, entity=c.entity,
                                      record_id=c.record_id, action=c.action,
                                      changes=c.changes)]
        if rows:
            insert_mappings(self.conn, self._audit, AUDIT_COLUMNS, rows)
        if self._change_log is not None:
            write_log(self.conn, self._change_log, self.changes)

    def after_commit(self) -> None:
        for name, hook in self.hooks.after_commit:
            try:
                hook(self.changes)
            except Exception:  # the write is done: a failing follower must not undo it
                log.exception("after-commit hook %s failed", name)


def _chain(last: RecordChange) -> str:
    links: list[str] = []
    current: RecordChange | None = last
    while current is not None and len(links) <= MAX_DEPTH + 1:
        links.append(current.described())
        current = current.cause
    return " → ".join(reversed(links))


@contextmanager
def open_unit(writer: Engine, actor: Actor, now: datetime, hooks: Hooks, audit: Table,
              *, dry_run: bool = False,
              change_log: Table | None = None) -> Iterator[UnitOfWork]:
    """A new unit of work in a new write transaction; committed when the block ends, then
    the after-commit hooks run. When the block raises, nothing of it stays. A dry run does
    everything inside a savepoint, then rolls it and the transaction back."""
    with writer.connect() as conn, conn.begin() as transaction:
        savepoint = conn.begin_nested() if dry_run else None
        unit = UnitOfWork(conn, actor, now, hooks, audit, dry_run=dry_run,
                          change_log=change_log)
        yield unit
        unit.finish()
        if savepoint is not None:
            savepoint.rollback()
            transaction.rollback()
    if not dry_run:
        unit.after_commit()

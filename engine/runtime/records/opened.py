"""One record opened for reading with what hangs on it — the explanation of its sums, its
audit history, its team, the records linked to it, what the reader may do with it — on one
connection: a record's page makes one fetch and a few small queries, not a connection and a
fetch of the record per part.

The record is fetched once through the access policy (`Records.fetch`); each part then
reads only what belongs to that record, as the service's own methods do after their
check, hidden fields left out and linked records filtered by the policy too.

>>> with open_record(records, actor, "opportunity", 7) as opened:  # doctest: +SKIP
...     opened.record["name"], opened.allowed(("update", "delete"))
('Big deal', frozenset({'update'}))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, bindparam, select

from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.audit import read_history
from engine.runtime.records import secure
from engine.runtime.records.team import members

if TYPE_CHECKING:
    from engine.runtime.records.service import Compiled, Records


@contextmanager
def open_record(records: Records, actor: Actor, entity: str,
                record_id: int) -> Iterator[OpenedRecord]:
    """The live record `record_id` of `entity` as `actor` may see it; NotFound when it is
    not there or not theirs to read, Forbidden when they may not read `entity` at all."""
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    with records.engine.connect() as conn:
        yield OpenedRecord(records, actor, c, conn, records.fetch(conn, actor, c, record_id))


class OpenedRecord:
    """A record fetched for `actor` (`row`: every column; `record`: what they may see)."""

    def __init__(self, records: Records, actor: Actor, c: Compiled, conn: Connection,
                 row: dict[str, Any]) -> None:
        self.records = records
        self.actor = actor
        self.c = c
        self.conn = conn
        self.row = row
        self.id = int(row["id"])
        self.record = records.row_out(actor, c, row)

    def explain(self, name: str) -> dict[str, Any]:
        """Like `Records.explain`, from the row already read."""
        terms = self.records.sum_terms_of(self.actor, self.c, name)
        return self.records.explained(self.conn, self.c, self.row, self.record, name, terms,
                                      self.actor)

    def history(self) -> list[dict[str, Any]]:
        """Like `Records.history`: the audit rows of the fields the actor may see."""
        return read_history(self.conn, self.records.audit, self.records.users,
                            self.c.entity.name, self.id,
                            self.records.audited_fields(self.actor, self.c))

    def team(self) -> list[dict[str, Any]]:
        """Like `Records.team`."""
        return members(self.conn, self.records, self.c.entity.name, self.id)

    def allowed(self, actions: Iterable[str]) -> frozenset[str]:
        """Which of `actions` (update, delete…) the actor may take on this record: the
        policy's condition for each action asked of this row in one query (none when
        every scope is `all` or `none`)."""
        policy, t = self.records.policy, self.c.table
        conditions: dict[str, Any] = {}
        out: set[str] = set()
        for action in dict.fromkeys(actions):
            scope = policy.scope(self.actor, self.c.entity.name, action)
            if scope is Scope.NONE:
                continue
            cond = secure.rows(self.records, self.actor, self.c.entity.name, action,
                        deleted=None).predicate
            if cond is None:
                out.add(action)
            else:
                conditions[action] = cond
        if conditions:
            stmt = self.records.statement(
                ("allowed", self.c.entity.name, self.actor, *conditions),
                lambda: select(*(cond.label(a) for a, cond in conditions.items()))
                .where(t.c.id == bindparam("record_id")))
            found = self.conn.execute(stmt, {"record_id": self.id}).first()
            if found is not None:
                out |= {a for a, yes in zip(conditions, found, strict=True) if yes}
        return frozenset(out)

    def children(self, child: str, via: str, limit: int, sort: str = "-id"
                 ) -> tuple[list[dict[str, Any]], int]:
        """The first `limit` live records of `child` whose `via` points here that the actor
        may read, as `list_records` gives them (`?<via>=<id>&sort=<sort>`: a stored field,
        `-` for descending, ties newest first), and how many there are (`list_records`'
        total: exact up to its limit, estimated beyond)."""
        records = self.records
        c = records.compiled(child)
        records.policy.require(self.actor, c.entity, "read")
        t = c.table
        seen = secure.rows(records, self.actor, child)

        column = t.c[sort.removeprefix("-")]
        first = column.desc() if sort.startswith("-") else column.asc()

        def build() -> Select[Any]:
            return seen.select_records().where(t.c[via] == bindparam("parent")) \
                .order_by(first, t.c.id.desc()).limit(limit)

        stmt = build() if records.reads_clock(c) \
            else records.statement(("children", child, via, limit, sort, self.actor), build)
        rows = [dict(r) for r in self.conn.execute(stmt, {"parent": self.id}).mappings()]
        if len(rows) < limit:  # all of them: no need to count
            total = len(rows)
        else:
            where = [*seen.where, t.c[via] == self.id]
            total, _ = records.totals.count(self.conn, t, where,
                                            (child, self.actor, via, self.id))
        write = records.row_writer(self.actor, c)
        return [write(r) for r in rows], total

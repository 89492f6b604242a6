"""How long the change log keeps its rows (settings.yaml `changes.keep_days`; docs/api.md
"Changes feed").

Without the setting nothing is deleted and the feed reads from the very first change. With
it, `prune_log` (run by the worker, at most once an hour) deletes the rows older than that
many days, oldest first and a chunk per transaction, stopping at the first row young enough
to keep — so the log keeps at least that many days. Each transaction also moves the log's
*floor* (the table crm_change_floor): the highest `seq` deleted. A feed cursor below the
floor may have missed changes, so the feed answers it 410 (and a request without a cursor,
"from the start", as well): the client copies the records again and follows the feed from
its head (`since=now`). The floor moves in the transaction that deletes the rows, and the
feed reads it in the statement that reads the rows, so no reader sees rows gone without the
floor that says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import takewhile
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Select, Table, delete, insert, select, update

from engine.runtime.records.locks import hold
from engine.runtime.schema.tables import CHANGE_FLOOR_TABLE

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

PRUNE_CHUNK = 10_000
"""Rows deleted per transaction: a pass never holds the log for long."""
PRUNE_EVERY = timedelta(hours=1)
"""How often the worker prunes (a pass reads the oldest rows by the log's key)."""
_PRUNE_LOCK = ("crm_change", "prune")


def floor_table(records: Records) -> Table:
    return records.schema.table(CHANGE_FLOOR_TABLE)


def floor_seq(records: Records) -> Select[tuple[int]]:
    """The log's floor: the highest `seq` deleted (no row: nothing deleted)."""
    floor = floor_table(records)
    return select(floor.c.through_seq).where(floor.c.id == 1)


def prune_log(records: Records, now: datetime) -> int:
    """Delete the change log's rows from before `now` less `changes.keep_days` (nothing
    when the setting is not there); the number deleted. See the module."""
    days = records.model.settings.changes_keep_days
    if days is None:
        return 0
    cutoff = now - timedelta(days=days)
    log, floor = records.change_log, floor_table(records)
    deleted = 0
    while True:
        with records.writer.begin() as conn:
            hold(conn, *_PRUNE_LOCK)  # two workers: the second finds the rows gone
            rows = conn.execute(select(log.c.seq, log.c.at).order_by(log.c.seq)
                                .limit(PRUNE_CHUNK)).all()
            old = [seq for seq, _ in takewhile(lambda row: row.at < cutoff, rows)]
            if not old:
                return deleted
            conn.execute(delete(log).where(log.c.seq <= old[-1]))
            _move_floor(conn, floor, old[-1], now)
        deleted += len(old)
        if len(old) < PRUNE_CHUNK:
            return deleted


def _move_floor(conn: Connection, floor: Table, through: int, now: datetime) -> None:
    moved = conn.execute(update(floor).where(floor.c.id == 1)
                         .values(through_seq=through, pruned_at=now)).rowcount
    if not moved:
        conn.execute(insert(floor).values(id=1, through_seq=through, pruned_at=now))


def log_floor(records: Records) -> int:
    """The highest `seq` deleted from the log (0: none)."""
    with records.reading() as conn:
        return int(conn.execute(floor_seq(records)).scalar() or 0)

"""Links of an entity to itself (`account.parent`, `department.parent`,
`contact.reports_to`): a record may not end up under itself.

Writing A.parent = B is refused when A is already above B, found by following the link
upwards from B. Two writes at once — A.parent = B and B.parent = A — would each find the
other's chain still open and both pass; so the walk runs under a lock on the entity's link
(engine/runtime/records/locks.py): the second write waits, then sees the first one's change
and refuses. An update takes that lock first of all (`hold_links`), before it locks the
record's row: taken after, A's write (whose foreign key check must share-lock B's row)
and B's (holding B's row, waiting for the lock) would deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table, select

from engine.runtime.records.locks import hold


def would_circle(conn: Connection, table: Table, link: str, start: int, goal: int) -> bool:
    """Whether setting record `goal`'s `link` to `start` closes a circle: following `link`
    upwards from `start` arrives at `goal`. Holds the link's lock until the transaction
    ends, so no other write of it changes the answer before this one commits."""
    hold(conn, "tree", table.name, link)
    seen: set[int] = set()
    current: int | None = start
    while current is not None and current not in seen:
        if current == goal:
            return True
        seen.add(current)
        current = conn.execute(select(table.c[link]).where(table.c.id == current)).scalar()
    return False


def hold_links(conn: Connection, table: Table, links: Mapping[str, Table],
               values: Mapping[str, Any]) -> None:
    """Take the lock of every link of `table` to itself that `values` sets."""
    for name, target in links.items():
        if target is table and values.get(name) is not None:
            hold(conn, "tree", table.name, name)

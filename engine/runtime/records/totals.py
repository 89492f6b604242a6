"""The `total` of a list: exact while cheap, then an estimate, marked as such."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, func, or_, select

from engine.runtime.records.query import page_statement

EXACT_TOTAL_LIMIT = 10_000
ESTIMATE_SECONDS = 10.0
ESTIMATE_CACHE_SIZE = 1024


class Totals:
    """Counts matching rows: exactly up to EXACT_TOTAL_LIMIT, beyond that from id density.

    An estimate is reused for a few seconds for the same list (it is an estimate anyway);
    exact counts are always fresh.
    """

    def __init__(self) -> None:
        self._estimates: dict[tuple[Any, ...], tuple[float, int]] = {}

    def count(self, conn: Connection, t: Table, where: list[Any], key: tuple[Any, ...],
              branches: Sequence[ColumnElement[bool]] | None = None) -> tuple[int, bool]:
        """(total, exact) of the rows of `t` matching `where` and one of `branches` (None:
        no branch to match); `key` names this list."""
        cached = self._estimates.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], False
        total, exact = count_matching(conn, t, where, branches)
        if not exact:
            if len(self._estimates) >= ESTIMATE_CACHE_SIZE:
                self._estimates.clear()
            self._estimates[key] = (time.monotonic() + ESTIMATE_SECONDS, total)
        return total, exact


def count_matching(conn: Connection, t: Table, where: list[Any],
                   branches: Sequence[ColumnElement[bool]] | None = None) -> tuple[int, bool]:
    """(total, exact) without the cache.

    The first matching id and the (LIMIT+1)-th give the density of matches per id,
    spread over the ids from the first match to the table's last id. Both probes walk the
    id index from the start and stop early, so this stays cheap on large tables; with
    several branches each is probed apart (engine/runtime/records/query.py
    `page_statement`), the owner's along its (owner_id, id) index.
    """
    limit = EXACT_TOTAL_LIMIT

    def nth(offset: int) -> Select[Any]:
        return page_statement(select(t.c.id), t.c.id, where, branches, [t.c.id.asc()],
                              offset, 1)

    probe = conn.execute(nth(limit)).scalar()
    if probe is None:
        sub = select(t.c.id).where(*where, *([] if branches is None else [or_(*branches)]))
        return int(conn.execute(select(func.count()).select_from(sub.subquery()))
                   .scalar_one()), True
    first = conn.execute(nth(0)).scalar_one()
    last = conn.execute(select(func.max(t.c.id))).scalar_one()
    density = (limit + 1) / (probe - first + 1)
    return max(limit + 1, round(density * (last - first + 1))), False

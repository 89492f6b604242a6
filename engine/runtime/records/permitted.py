"""Which records of a page an actor may act on: the per-row actions of lists and the bin.

A list offers Edit and Delete on a row, and the recycle bin Restore, only where the access
policy allows that row. The answer comes from the same SQL predicate the policy applies to
the write itself (`SecureRows.predicate`, engine/runtime/records/secure.py), asked once for
the whole page, not once per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.db import connection
from engine.runtime.records import secure

if TYPE_CHECKING:
    from engine.runtime.records.service import Records


def permitted_ids(records: Records, actor: Actor, entity: str, ids: Iterable[int],
                  action: str, conn: Connection | None = None) -> frozenset[int]:
    """The ids among `ids` on which the actor may `action` (update, delete, assign…),
    deleted records included (restoring needs `delete`).

    A user whose role gives `own` scope for delete gets only the records they own back;
    one with `all`, every id; one with `none`, no id and no query. `conn`: read through it.
    """
    wanted = sorted({int(i) for i in ids})
    c = records.compiled(entity)
    scope = records.policy.scope(actor, entity, action)
    if not wanted or scope is Scope.NONE:
        return frozenset()
    t = c.table
    condition = secure.rows(records, actor, entity, action, deleted=None).predicate
    if condition is None:
        return frozenset(wanted)
    with connection(records.engine, conn) as db:
        found = db.execute(select(t.c.id).where(t.c.id.in_(wanted), condition)).scalars()
        return frozenset(int(i) for i in found)

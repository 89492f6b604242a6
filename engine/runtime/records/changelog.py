"""The change log the changes feed reads (engine/runtime/records/feed.py): written by the
unit of work as the last thing before commit, one row per record the unit changed.

Which changes are logged, and as what (docs/api.md "Changes feed"):

- create, update, delete, restore and purge as themselves;
- assign (owner or department changed, by hand, a cascade or a transfer) and team changes
  as `update`: who may see the record changed, and an ERP copy follows the record;
- rollup (a derived value of a parent changed by a child's write) as `update` of the
  parent: the value is part of the record as an ERP copies it;
- nothing else (attachments' contents, users deactivated: not records of an entity).

One row per record and unit: the record's first logged action, except that a later
delete, restore or purge wins (the record's state at commit is what the feed answers
with), so a create followed by its rollups is one `create`.

Order: the rows' `seq` is the order in which their transactions commit. PostgreSQL hands
out sequence values when asked, so a transaction that took 5 may commit after one that took
6 — a reader could then see 6, move its cursor past 5, and miss it for good. `write_log`
therefore takes one transaction-level advisory lock right before the insert; it is held
until commit (or rollback), so no other writer can take values from the sequence until
this transaction's rows are visible: a reader that sees N sees every row below N. Only the
very end of each writing transaction is serialised (the insert and the commit). SQLite runs
one write transaction at a time (BEGIN IMMEDIATE), which gives the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from engine.runtime.records.driver_insert import insert_mappings
from engine.runtime.records.locks import hold

if TYPE_CHECKING:
    from sqlalchemy import Table

    from engine.runtime.records.unit import RecordChange

# unit action → the feed's action
FEED_ACTIONS = {"create": "create", "update": "update", "delete": "delete",
                "restore": "restore", "purge": "purge", "assign": "update",
                "team": "update", "rollup": "update"}
# actions that say what state the record ends in: the last of them wins over the first action
_FINAL = frozenset({"delete", "restore", "purge"})
# the one lock every writer of the log takes (engine/runtime/records/locks.py)
LOG_LOCK = ("crm_change", "commit order")
_COLUMNS = ("entity", "record_id", "action", "at", "owner_id", "department_id")


def log_rows(changes: Sequence[RecordChange]) -> list[dict[str, Any]]:
    """The change-log rows of a unit's change set, in the order the records first changed
    (`seq` is added by the database)."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for c in changes:
        action = FEED_ACTIONS.get(c.action)
        if action is None or c.entity.startswith("crm_"):
            continue
        key = (c.entity, c.record_id)
        row = rows.get(key)
        if row is None:
            seen = _access_values(c.before, c.after)
            rows[key] = {"entity": c.entity, "record_id": c.record_id, "action": action,
                         "at": c.at, "owner_id": seen.get("owner_id"),
                         "department_id": seen.get("department_id")}
        elif action in _FINAL:
            row["action"] = action
    return list(rows.values())


def _access_values(before: Mapping[str, Any] | None,
                   after: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The owner and department the record had before the change (after, for a create):
    who could see the record at the time, which decides who hears of the change once the
    record has left their sight (engine/runtime/records/feed.py)."""
    if before is not None and "owner_id" in before:
        return before
    return after or {}


def write_log(conn: Connection, table: Table, changes: Sequence[RecordChange]) -> None:
    """Insert the log rows of `changes` (one statement), in commit order: see above."""
    rows = log_rows(changes)
    if not rows:
        return
    hold(conn, *LOG_LOCK)  # held until commit: sequence order = commit order
    insert_mappings(conn, table, _COLUMNS, rows)

"""Autonumbers: the number each new record of an autonumber field gets.

A counter per (entity, field, period) lives in the crm_autonumber table. A create takes the
next number with ONE statement that inserts the counter or adds to it and returns the new
last number (`INSERT … ON CONFLICT DO UPDATE SET last_number = last_number + n RETURNING`):
on PostgreSQL the counter's row stays locked until the write commits or rolls back, so two
creates at once wait for each other and never get the same number; SQLite runs one write
transaction at a time anyway (BEGIN IMMEDIATE, engine/runtime/db.py). A bulk create takes
the block of numbers its batch needs in that one statement and numbers the batch in order.

The number is taken in the create's unit of work (engine/runtime/records/unit.py), after
the defaults and validation rules and just before the INSERT, so a refused or dry-run
create takes none: its transaction (or savepoint) is rolled back with the counter.
A write that fails after the number was taken (a unique clash, a hook refusing it) rolls
the counter back too; only a number given to a record that is later deleted leaves a gap,
and numbers are never given twice.

The period is the creation day in the organisation's time zone (settings.yaml `time_zone`,
as TODAY() reads it): in Shanghai the year's first numbers go to records created from
midnight on 1 January there, not from 08:00 (midnight UTC).

`number_existing` gives numbers to the records that have none yet (a field added to an
entity with records), in id order, each in the period of its creation day: `crm migrate`
runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.metadata.model import Entity, Field
from engine.runtime.access import SYSTEM
from engine.runtime.schema.tables import AUTONUMBER_TABLE

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

BATCH = 5_000
# (field "entity.field", records numbered so far, records to number)
Progress = Callable[[str, int, int], None]


def numbered_fields(entity: Entity) -> tuple[Field, ...]:
    """The autonumber fields of `entity`."""
    return tuple(f for f in entity.fields if f.number_format is not None)


def take_numbers(conn: Connection, counters: Table, entity: str, field: str, period: str,
                 count: int) -> int:
    """Reserve `count` consecutive numbers of one counter; returns the first of them.

    One statement: it creates the counter at `count`, or adds `count` to it, and returns
    the new last number; the counter's row is locked until the transaction ends.
    """
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    new = make(counters).values(entity=entity, field=field, period=period,
                                last_number=count)
    stmt = new.on_conflict_do_update(
        index_elements=[counters.c.entity, counters.c.field, counters.c.period],
        set_={"last_number": counters.c.last_number + new.excluded.last_number},
    ).returning(counters.c.last_number)
    last = int(conn.execute(stmt).scalar_one())
    return last - count + 1


def creation_day(at: datetime, zone: tzinfo) -> date:
    """The day a record created at `at` (aware, or naive meaning UTC: SQLite's) is numbered
    in: its date in `zone`, the organisation's time zone.

    >>> from zoneinfo import ZoneInfo
    >>> creation_day(datetime(2026, 12, 31, 16, 30), ZoneInfo("Asia/Shanghai"))
    datetime.date(2027, 1, 1)
    """
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(zone).date()


def assign_numbers(conn: Connection, counters: Table, entity: Entity,
                   rows: Sequence[dict[str, Any]], now: datetime, zone: tzinfo) -> None:
    """Set every autonumber field of `rows` (new records of `entity` created at `now`, in
    the order they are inserted): one statement per field for the whole batch. The period
    is `now`'s day in `zone` (the organisation's time zone)."""
    if not rows:
        return
    day = creation_day(now, zone)
    for f in numbered_fields(entity):
        fmt = f.number_format
        assert fmt is not None
        first = take_numbers(conn, counters, entity.name, f.name, fmt.period_key(day),
                             len(rows))
        for i, row in enumerate(rows):
            row[f.name] = fmt.render(first + i, day)


def number_existing(records: Records, progress: Progress | None = None,
                    batch: int = BATCH) -> list[tuple[str, int]]:
    """Number the records (recycle bin included) whose autonumber field is blank, in id
    order, each in the period of the day it was created; returns the fields numbered
    ("quote.number") with how many records each.

    A migration fills a value nobody edited: no change is recorded, no hook runs, no audit
    row is written (as for a rollup computed by `crm migrate`)."""
    done: list[tuple[str, int]] = []
    counters = records.schema.table(AUTONUMBER_TABLE)
    for entity in records.model.entities:
        t = records.schema.table(entity.name)
        for f in numbered_fields(entity):
            name = f"{entity.name}.{f.name}"
            total = _number_blank(records, counters, entity, t, f, name, progress, batch)
            if total:
                done.append((name, total))
    return done


def _number_blank(records: Records, counters: Table, entity: Entity, t: Table, f: Field,
                  name: str, progress: Progress | None, batch: int) -> int:
    fmt = f.number_format
    assert fmt is not None
    column = t.c[f.name]
    blank = select(t.c.id, t.c.created_at).where(column.is_(None)).order_by(t.c.id)
    with records.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).where(column.is_(None))).scalar_one())
    if not total:
        return 0
    write = update(t).where(t.c.id == bindparam("_id")).values(
        {f.name: bindparam("_number")})
    finished = 0
    while True:
        with records.unit(SYSTEM) as unit:
            rows = unit.conn.execute(blank.limit(batch)).all()
            if not rows:
                return finished
            params: list[dict[str, Any]] = []
            for period, group in _by_period(fmt.period_key, rows,
                                            records.model.settings.zone):
                first = take_numbers(unit.conn, counters, entity.name, f.name, period,
                                     len(group))
                params += [{"_id": rid, "_number": fmt.render(first + i, day)}
                           for i, (rid, day) in enumerate(group)]
            unit.conn.execute(write, params)
        finished += len(rows)
        if progress is not None:
            progress(name, finished, total)


def _by_period(period_key: Callable[[date], str], rows: Iterable[Any], zone: tzinfo
               ) -> list[tuple[str, list[tuple[int, date]]]]:
    """(id, created_at) rows, in id order, grouped by the counter period of their
    creation day in `zone`; each group keeps id order."""
    groups: dict[str, list[tuple[int, date]]] = {}
    for rid, created_at in rows:
        day = creation_day(created_at, zone)
        groups.setdefault(period_key(day), []).append((rid, day))
    return list(groups.items())

"""Grouped totals: per value of one field, how many records and the sums of some numbers.

The pipeline board's column totals. Like every list, they count only the records the actor
may read (the access policy's predicate is part of the WHERE clause), and a field hidden from
the actor can be neither grouped on, summed nor filtered on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, select

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import NotFound
from engine.runtime.records.query import Condition, condition_sql
from engine.types import DECIMAL_SHAPES, NUMERIC_TYPES

if TYPE_CHECKING:
    from engine.runtime.records.service import Records


@dataclass(frozen=True)
class GroupTotals:
    count: int
    sums: dict[str, Decimal | None]
    """Field name → the sum over the group's records (None when every value is blank)."""


def grouped_totals(records: Records, actor: Actor, entity: str, group: str,
                   sums: Sequence[str], conditions: Sequence[Condition] = ()
                   ) -> dict[Any, GroupTotals]:
    """Value of `group` → totals of the live records the actor can read that match
    `conditions` (blank values of `group` come under None)."""
    c = records.compiled(entity)
    policy = records.policy
    policy.require(actor, c.entity, "read")
    for name in (group, *sums, *(cond.field for cond in conditions)):
        if policy.reads_hidden(actor, c.entity, (name,)):
            raise NotFound(msg("no field '%(field)s' of %(entity)s", field=name, entity=entity))
    for name in sums:
        if not c.entity.has_field(name) or c.entity.field(name).type not in NUMERIC_TYPES:
            raise NotFound(msg("no number field '%(field)s' of %(entity)s", field=name,
                               entity=entity))
    t = c.table
    cols = records.sql_fields(actor).columns(c.entity, t)
    if group not in cols:
        raise NotFound(msg("no field '%(field)s' of %(entity)s", field=group, entity=entity))
    where: list[ColumnElement[bool]] = [t.c.deleted_at.is_(None)]
    predicate = policy.read_filter(actor, c.entity, t)
    if predicate is not None:
        where.append(predicate)
    where += [condition_sql(cols, cond, records.engine.dialect.name) for cond in conditions]
    key = t.c[group] if group in t.c else cols[group]
    stmt = (select(key.label("group_value"), func.count().label("n"),
                   *[func.sum(cols[s]).label(f"sum_{i}") for i, s in enumerate(sums)])
            .where(*where).group_by(key))
    out: dict[Any, GroupTotals] = {}
    with records.engine.connect() as conn:
        for row in conn.execute(stmt):
            values = {s: _decimal(row[2 + i], _places(records, entity, s))
                      for i, s in enumerate(sums)}
            out[row[0]] = GroupTotals(int(row[1]), values)
    return out


def _places(records: Records, entity: str, name: str) -> int | None:
    shape = DECIMAL_SHAPES.get(records.field_of(entity, name).type)
    return shape[1] if shape else 0


def _decimal(value: Any, places: int | None) -> Decimal | None:
    """A sum as an exact Decimal: SQLite adds REALs, so round to the field's places."""
    if value is None:
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value))
        return number if places is None else number.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:
        return None

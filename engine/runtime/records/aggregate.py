"""Grouped totals: per value of one field, how many records and the sums of some numbers.

The pipeline board's column totals. Like every list, they count only the records the actor
may read, through the one secure query (engine/runtime/records/secure.py): a field hidden
from the actor can be neither grouped on, summed nor filtered on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import func

from engine.fieldtypes import FIELD_TYPES
from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import NotFound
from engine.runtime.records import secure
from engine.runtime.records.query import Condition
from engine.types import NUMERIC_TYPES

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
    seen = secure.rows(records, actor, entity)
    records.policy.require(actor, seen.entity, "read")
    key = seen.column(group)  # NotFound for a field hidden from the actor, as for none
    summed = [seen.column(name) for name in sums]
    for name in sums:
        if not seen.entity.has_field(name) or seen.entity.field(name).type not in NUMERIC_TYPES:
            raise NotFound(msg("no number field '%(field)s' of %(entity)s", field=name,
                               entity=entity))
    where = seen.conditions(conditions)
    stmt = seen.grouped(key, func.count().label("n"),
                        *[func.sum(s).label(f"sum_{i}") for i, s in enumerate(summed)]
                        ).where(*where)
    out: dict[Any, GroupTotals] = {}
    with records.engine.connect() as conn:
        for row in conn.execute(stmt):
            values = {s: _decimal(row[2 + i], _places(records, entity, s))
                      for i, s in enumerate(sums)}
            out[row[0]] = GroupTotals(int(row[1]), values)
    return out


def _places(records: Records, entity: str, name: str) -> int | None:
    return FIELD_TYPES[records.field_of(entity, name).type].scale or 0


def _decimal(value: Any, places: int | None) -> Decimal | None:
    """A sum as an exact Decimal: SQLite adds REALs, so round to the field's places."""
    if value is None:
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value))
        return number if places is None else number.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:
        return None

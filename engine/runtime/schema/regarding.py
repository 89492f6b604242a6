"""The two columns of a regarding field, and the one value a query reads them as.

A regarding field `regarding` is stored as `regarding_entity` (the entity's name) and
`regarding_id` (the record's id), indexed together: "which activities concern account 12"
is one index range. Everything that reads records reads the field as one expression, the
two joined as "account:12" (NULL when blank), typed so that a row gives a
`Regarding`; a write splits a Regarding back into the two columns (`split`).

>>> split("regarding", Regarding.of("account", 12))
{'regarding_entity': 'account', 'regarding_id': 12}
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Dialect,
    FromClause,
    String,
    cast,
    or_,
    type_coerce,
)
from sqlalchemy.types import TypeDecorator

from engine.fieldtypes import Regarding
from engine.metadata.model import Field
from engine.types import FieldType

ENTITY_LENGTH = 63


class RegardingText(TypeDecorator[Regarding]):
    """The joined text "entity:id" of a regarding field, read back as a Regarding."""

    impl = String
    cache_ok = True

    def __init__(self, pair: tuple[ColumnElement[Any], ColumnElement[Any]] | None = None
                 ) -> None:
        super().__init__()
        self.pair = pair
        """The (entity, id) columns it joins, for a condition that reads their index."""

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Regarding | None:
        return None if value is None else Regarding(value)


def entity_column(name: str) -> str:
    return f"{name}_entity"


def id_column(name: str) -> str:
    return f"{name}_id"


def regarding_columns(name: str) -> list[Column[Any]]:
    """The two columns of regarding field `name`."""
    return [Column(entity_column(name), String(ENTITY_LENGTH), nullable=True),
            Column(id_column(name), BigInteger(), nullable=True)]


def is_regarding(f: Field) -> bool:
    return f.type is FieldType.REGARDING


def joined(table: FromClause, name: str) -> ColumnElement[Any]:
    """The field `name` of `table` as one value: "account:12", NULL when blank."""
    entity, rid = table.c[entity_column(name)], table.c[id_column(name)]
    return type_coerce(entity + ":" + cast(rid, String), RegardingText((entity, rid)))


def regarding_condition(col: ColumnElement[Any], op: str, value: Any
                        ) -> ColumnElement[bool] | None:
    """`col` = / <> a regarding value as a condition on its two columns (which reads their
    index), when `col` is a regarding field's joined value; None otherwise."""
    pair = col.type.pair if isinstance(col.type, RegardingText) else None
    if pair is None or op not in ("eq", "ne") or not isinstance(value, str):
        return None
    target = Regarding(value)
    hit = (pair[0] == target.entity) & (pair[1] == target.id)
    return hit if op == "eq" else or_(~hit, pair[1].is_(None))


def points_at(table: FromClause, name: str, entity: str, record_id: int | ColumnElement[Any]
              ) -> ColumnElement[bool]:
    """Field `name` of `table` points at record `record_id` of `entity` (reads the index)."""
    return (table.c[entity_column(name)] == entity) & (table.c[id_column(name)] == record_id)


def split(name: str, value: Any) -> dict[str, Any]:
    """A regarding value as the values of its two columns."""
    if value is None:
        return {entity_column(name): None, id_column(name): None}
    r = value if isinstance(value, Regarding) else Regarding(value)
    return {entity_column(name): r.entity, id_column(name): r.id}


def column_names(f: Field) -> tuple[str, ...]:
    """The columns of stored field `f`: its name, or a regarding field's two."""
    return (entity_column(f.name), id_column(f.name)) if is_regarding(f) else (f.name,)


def field_column(table: FromClause, f: Field) -> ColumnElement[Any]:
    """The stored field `f` of `table` as one expression (its column, or a regarding
    field's two columns joined)."""
    return joined(table, f.name) if is_regarding(f) else table.c[f.name]

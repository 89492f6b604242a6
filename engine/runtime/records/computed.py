"""Computed fields at run time: as SQL for lists, and one record as a formula reads it.

Computed fields are selected as SQL expressions (a dotted path such as
`account.credit_limit` becomes a correlated scalar subquery, nested per hop), so lists
sort and filter on them in the database. Validation rules, default formulas and the
explanation of a score are evaluated in Python on one record (`RecordContext`), reading
referenced records through the caller's connection.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, FromClause, select

from engine.formula import Path
from engine.messages import LabelMessage, joined
from engine.metadata.formula_checks import ENGINE_FIELDS, ENGINE_LINKS, engine_link
from engine.metadata.model import Entity, Field, Model
from engine.runtime.schema.regarding import field_column
from engine.runtime.schema.tables import Schema
from engine.types import DECIMAL_SHAPES, FieldType


class RecordsClock:
    """The records service's clock (a function giving an aware datetime) as a formula Clock:
    TODAY() is the date in `zone`, the organisation's time zone (settings.yaml), in Python
    and in SQL alike (it is bound as a parameter)."""

    def __init__(self, now: Callable[[], datetime], zone: tzinfo = UTC) -> None:
        self._now = now
        self.zone = zone

    def now(self) -> datetime:
        return self._now()

    def today(self) -> date:
        return self._now().astimezone(self.zone).date()


_CLOCK_FUNCTIONS = frozenset({"TODAY", "NOW", "HOURS_SINCE"})


Readable = Callable[[Entity, FromClause], ColumnElement[bool] | None]
"""The records of an entity (on a table or an alias of it) a reader may read, as a
condition; None for all."""

_CACHE_SIZE = 4096


class SqlFields:
    """SQL expressions of an entity's fields, computed ones included, for one query.

    Build one per query: TODAY() and NOW() are bound from the clock when built.
    `readable`: the reader's read condition; a computed field that reads another record
    (`account.credit_limit`) then reads only records the reader may read, and is blank past
    one they cannot. `reader`: who that is, as a key of the shared cache (expressions
    differ per reader).
    """

    def __init__(self, schema: Schema, dialect: str, clock: RecordsClock,
                 cache: dict[tuple[Any, ...], ColumnElement[Any]] | None = None,
                 readable: Readable | None = None, reader: Hashable = None) -> None:
        self.schema = schema
        self.model = schema.model
        self.dialect = dialect
        self.clock = clock
        self.readable = readable
        self._reader = reader if readable is not None else None
        # Expressions of computed fields that read no clock, built once per Records: the
        # formula compiler is not cheap, and a list would otherwise pay it on every query.
        self._cache = cache if cache is not None else {}

    def columns(self, entity: Entity, table: FromClause) -> dict[str, ColumnElement[Any]]:
        """name → expression for every stored column and every SQL-capable computed field.

        A computed field comes labelled with its name: when the query also selects it as
        `field(…).label(name)` (the same expression, cached), ORDER BY names the selected
        column instead of computing the formula a second time per row; elsewhere (WHERE,
        or a query that does not select it) the label renders as the expression itself.
        """
        out: dict[str, ColumnElement[Any]] = dict(table.c.items())
        for f in entity.stored_fields:
            if f.type is FieldType.REGARDING:
                out[f.name] = field_column(table, f)
        for f in entity.fields:
            if f.computed and f.compiled is not None and f.compiled.sql_capable:
                out[f.name] = self.field(entity, table, f).label(f.name)
        return out

    def field(self, entity: Entity, table: FromClause, f: Field) -> ColumnElement[Any]:
        if f.compiled is None or not f.computed:
            return field_column(table, f)
        base = table is self.schema.table(entity.name)
        # Only a formula that reads another record differs from reader to reader.
        key = (self._reader if self._reads_records(entity, f) else None, entity.name, f.name)
        if base and key in self._cache:
            return self._cache[key]
        expr = f.compiled.to_sql(lambda path: self.path(entity, table, path),
                                 self.dialect, self.clock)
        if base and not self._reads_clock(entity, f, set()):
            if len(self._cache) >= _CACHE_SIZE:  # one set of expressions per reader
                self._cache.clear()
            self._cache[key] = expr
        return expr

    def _reads_records(self, entity: Entity, f: Field,
                       seen: set[str] | None = None) -> bool:
        """Whether `f`'s formula, or a computed field of the entity it reads, follows a
        reference (a few paths to look at: cheaper than caching the answer)."""
        seen = set() if seen is None else seen
        if f.compiled is None or f.name in seen:
            return False
        seen.add(f.name)
        return any(len(path) > 1 or (entity.has_field(path[0]) and self._reads_records(
            entity, entity.field(path[0]), seen)) for path in f.compiled.references)

    def reads_clock(self, entity: Entity) -> bool:
        """Whether a computed field of `entity` the database runs reads the clock: a query
        selecting its fields is then good for this moment only."""
        return any(self._reads_clock(entity, f, set()) for f in entity.fields
                   if f.computed and f.compiled is not None and f.compiled.sql_capable)

    def _reads_clock(self, entity: Entity, f: Field, seen: set[tuple[str, str]]) -> bool:
        """Whether `f`'s formula, or a computed field it reads, uses TODAY, NOW or similar."""
        if f.compiled is None or (entity.name, f.name) in seen:
            return False
        seen.add((entity.name, f.name))
        if f.compiled.functions & _CLOCK_FUNCTIONS:
            return True
        for path in f.compiled.references:
            current: Entity | None = entity
            for i, name in enumerate(path):
                if current is None or not current.has_field(name):
                    break
                field = current.field(name)
                if i == len(path) - 1:
                    if field.computed and self._reads_clock(current, field, seen):
                        return True
                else:
                    target = field.target
                    current = self.model.entity(target) if target and \
                        self.model.has_entity(target) else None
        return False

    def path(self, entity: Entity, table: FromClause, path: Path) -> ColumnElement[Any]:
        name = path[0]
        link = None if entity.has_field(name) else engine_link(self.model.entities, name)
        column = link[0] if link else name
        if len(path) == 1:
            if entity.has_field(name):
                return self.field(entity, table, entity.field(name))
            return table.c[column]
        target_name = link[1] if link else entity.field(name).target
        assert target_name is not None  # the checker only follows references
        target = self.model.entity(target_name)
        alias = self.schema.table(target_name).alias()
        inner = self.path(target, alias, path[1:])
        where = [alias.c.id == table.c[column]]
        allowed = self.readable(target, alias) if self.readable is not None else None
        if allowed is not None:
            where.append(allowed)
        return select(inner).where(*where).scalar_subquery()


def field_value(f: Field, value: Any) -> Any:
    """A formula result as the field's type stores it: numbers rounded to its places."""
    return value_rounder(f.type)(value)


WHOLE_LIMIT = 10**27
"""Integers below this in size quantize in the default Decimal context without a problem
(value_rounder leaves them as they are; json_rows' fused step does the same)."""


def unrounded(value: Any) -> Any:
    """value_rounder of a type it does not round: the value as it is."""
    return value


@cache
def value_rounder(kind: FieldType) -> Callable[[Any], Any]:
    """`field_value` for a field of type `kind`, its rounding step worked out once (for
    many rows): numbers rounded to the type's places, other values as they are."""
    places = 0 if kind is FieldType.INTEGER else DECIMAL_SHAPES.get(kind, (0, None))[1]
    if places is None:
        return unrounded
    quantum = Decimal(1).scaleb(-places)
    integer = kind is FieldType.INTEGER

    def rounded(value: Any) -> Any:
        if integer and type(value) is int and -WHOLE_LIMIT < value < WHOLE_LIMIT:  # not a bool
            return value
        if value is None or not isinstance(value, (Decimal, int)) or isinstance(value, bool):
            return value
        try:
            out = Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return None
        return int(out) if integer else out

    return rounded


class RecordContext:
    """One record as a formula reads it in Python (the EvalContext protocol).

    `values` are stored values (engine columns included when known); computed fields are
    evaluated from their formulas; a dotted path loads the referenced record through
    `conn`. `prior` is the record before the save (None on create). `readable`: the
    reader's read condition (SqlFields); a record they may not read is not loaded, and a
    path through it is blank.
    """

    def __init__(self, model: Model, schema: Schema, conn: Connection | None, entity: Entity,
                 values: Mapping[str, Any], clock: RecordsClock, *,
                 prior: Mapping[str, Any] | None = None, is_new: bool = False,
                 cache: dict[tuple[str, int], RecordContext | None] | None = None,
                 readable: Readable | None = None) -> None:
        self.readable = readable
        self.model = model
        self.schema = schema
        self.conn = conn
        self.entity = entity
        self.values = values
        self._clock = clock
        self.prior_values = prior
        self._is_new = is_new
        self._cache: dict[tuple[str, int], RecordContext | None] = \
            cache if cache is not None else {}

    @property
    def clock(self) -> RecordsClock:
        return self._clock

    @property
    def is_new(self) -> bool:
        return self._is_new

    def get(self, path: Path) -> object:
        name = path[0]
        if len(path) == 1:
            return self._own(name)
        ref = self._own(name)
        if ref is None:
            return None
        link = None if self.entity.has_field(name) else engine_link(self.model.entities, name)
        target = link[1] if link else self.entity.field(name).target
        other = self._load(target or "", int(ref))  # type: ignore[call-overload]
        return None if other is None else other.get(path[1:])

    def _own(self, name: str) -> object:
        if self.entity.has_field(name):
            f = self.entity.field(name)
            if f.computed and f.compiled is not None:
                return field_value(f, f.compiled.evaluate(self))
            return self.values.get(name)
        if name in ENGINE_LINKS:
            return self.values.get(ENGINE_LINKS[name])
        return self.values.get(name)

    def _load(self, entity_name: str, record_id: int) -> RecordContext | None:
        key = (entity_name, record_id)
        if key not in self._cache:
            self._cache[key] = None
            if self.conn is not None and self.model.has_entity(entity_name):
                entity = self.model.entity(entity_name)
                t = self.schema.table(entity_name)
                names = [f.name for f in entity.stored_fields] + list(ENGINE_FIELDS) \
                    + list(ENGINE_LINKS.values())
                where = [t.c.id == record_id]
                allowed = self.readable(entity, t) if self.readable is not None else None
                if allowed is not None:
                    where.append(allowed)
                row = self.conn.execute(select(*[
                    field_column(t, entity.field(n)).label(n) if entity.has_field(n)
                    else t.c[n] for n in names])
                                        .where(*where)).mappings().first()
                if row is not None:
                    self._cache[key] = RecordContext(
                        self.model, self.schema, self.conn, entity, dict(row), self._clock,
                        cache=self._cache, readable=self.readable)
        return self._cache[key]

    def _prior_context(self) -> RecordContext | None:
        if self.prior_values is None:
            return None
        return RecordContext(self.model, self.schema, self.conn, self.entity,
                             self.prior_values, self._clock, cache=self._cache,
                             readable=self.readable)

    def prior(self, path: Path) -> object:
        before = self._prior_context()
        return None if before is None else before.get(path)

    def changed(self, path: Path) -> bool:
        if self._is_new or self.prior_values is None:
            return False
        return self.get(path) != self.prior(path)


RECORD_KEY = "_record"
"""Where a broken rule's message goes unless the rule reads a single field of the record."""


def failing_rules(entity: Entity, ctx: RecordContext,
                  skip: Collection[str] = (), *, roles: Collection[str] = ()) -> dict[str, str]:
    """The messages of the validation rules the record does not satisfy, by field: under the
    rule's `field:` when it names one, else under the one field it reads (`amount > 0`), else
    under `_record`. Several messages for one key become one. A rule that reads a field in
    `skip` (its input was refused already) is not judged on a value that is not there, nor
    is a rule that the writer's `roles` may override (`overridable_by`)."""
    out: dict[str, list[str]] = {}
    for n, v in enumerate(entity.validations):
        if v.compiled is None or not v.binds(roles):
            continue
        paths = v.compiled.references
        if any(p[0] in skip for p in paths) or v.compiled.holds(ctx):
            continue
        key = v.field or (next(iter(paths))[0] if len(paths) == 1
                          and len(next(iter(paths))) == 1 else RECORD_KEY)
        rule = f"{entity.name}.validations.{n}"
        out.setdefault(key, []).append(LabelMessage(v.message, rule))
    return {k: joined(m) for k, m in out.items()}

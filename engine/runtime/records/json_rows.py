"""Driver rows of whole records straight to the API's JSON, worked out once per column.

The API answers a record as `record_json` of what `Records.row_writer` makes of its row,
which SQLAlchemy made of the driver's row. Each value goes through up to three steps:

1. the column type's result processor (the driver's value as a typed value: a Decimal to the
   column's places, an instant in UTC, a date, a bool, a Regarding);
2. a computed field's rounding to its type's places (`value_rounder`);
3. `to_json` (exact decimals as strings, dates and instants in ISO 8601 UTC).

For a page of a thousand records those steps are most of the time, taken field by field
through generic functions that look at each value's type. `RecordJson` takes the same steps
on the driver's row as it comes (a statement whose columns are typed NullType: `raw_select`),
each column's steps chosen and composed once: the processor is the one SQLAlchemy itself
would run (the column type's `result_processor` for the dialect and the driver's type code),
the rounding and the JSON form are the generic path's own functions. A few hot cases are
written out as one step (`_fused`: exact decimals, instants, dates and computed numbers);
tests/test_json_rows.py checks them against the composed steps on both dialects, and the
whole against the generic path over every field type on both databases. The changes feed
(engine/runtime/records/feed.py) answers through it.

What the reader may see is the writer's choice as in `row_writer`: the engine columns (the
recycle-bin pair only when the record is in the bin), then the fields the actor may read, in
field order. A regarding value stays a `Regarding` (step 1 alone): `titled` then gives it
its title, as the API does before `record_json`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Date, DateTime, Integer, Select, String, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.types import TypeDecorator, TypeEngine

from engine.formula.sqlcompile import NumberResult
from engine.runtime.records.computed import WHOLE_LIMIT, unrounded, value_rounder
from engine.runtime.schema.types import ExactDecimal, UtcDateTime
from engine.runtime.values import to_json
from engine.types import DECIMAL_SHAPES, ENGINE_COLUMNS, FieldType

if TYPE_CHECKING:
    from engine.runtime.access import Actor
    from engine.runtime.records.service import Compiled, Records

Convert = Callable[[Any], Any]
Row = Sequence[Any]

_INFINITE = (float("inf"), float("-inf"))
# Column types whose driver values are their own JSON form when no processor is set
_AS_DRIVEN: tuple[type[TypeEngine[Any]], ...] = (Integer, String, Boolean)


def raw_select(stmt: Select[Any]) -> Select[Any]:
    """`stmt` with each selected column typed NullType: the same SQL, the driver's values
    come back untouched (no result processor runs)."""
    return stmt.with_only_columns(
        *(type_coerce(col, NullType()).label(col.name)
          for col in stmt.selected_columns),
        maintain_column_froms=False)


def column_types(stmt: Select[Any]) -> tuple[tuple[str, TypeEngine[Any]], ...]:
    """The name and type of each column `stmt` selects (before `raw_select`)."""
    return tuple((col.name, col.type)
                 for col in stmt.selected_columns)


def processor(kind: TypeEngine[Any], dialect: Dialect, coltype: Any) -> Convert | None:
    """The result processor SQLAlchemy runs on a column of type `kind` whose driver type
    code is `coltype` (None: the driver's value is the value)."""
    return kind.dialect_impl(dialect).result_processor(dialect, coltype)


def column_json(kind: TypeEngine[Any], dialect: Dialect, coltype: Any,
                computed: FieldType | None = None) -> Convert | None:
    """The steps of one column from the driver's value to JSON (see the module), composed
    once; `computed`: the type of the computed field it holds (rounded to its places).
    None: the driver's value is its JSON form. Not called for None (each step keeps None as
    None)."""
    proc = processor(kind, dialect, coltype)
    rounder = None if computed is None else value_rounder(computed)
    if rounder is unrounded:  # a type value_rounder does not round
        rounder = computed = None
    if proc is None and rounder is None and isinstance(kind.dialect_impl(dialect),
                                                       _AS_DRIVEN):
        return None
    fused = _fused(kind, dialect, coltype, computed)
    if fused is not None:
        return fused
    return composed(proc, rounder)


def composed(proc: Convert | None, rounder: Convert | None) -> Convert:
    """processor, then rounding, then `to_json`: the generic path, one value."""
    if proc is not None and rounder is not None:
        return lambda v: to_json(rounder(proc(v)))
    if proc is not None:
        return lambda v: to_json(proc(v))
    if rounder is not None:
        return lambda v: to_json(rounder(v))
    return to_json


# -- the hot columns in one step: the same functions as the composed steps, fewer calls ----

def _fused(kind: TypeEngine[Any], dialect: Dialect, coltype: Any,
           computed: FieldType | None) -> Convert | None:
    """One step doing the composed steps of a hot column (see the module), or None."""
    impl = kind.dialect_impl(dialect)
    if computed is None and isinstance(impl, ExactDecimal):
        return _exact_decimal(impl, dialect, _inner(impl, dialect, coltype))
    if computed is None and isinstance(impl, UtcDateTime):
        return _utc_instant(impl, dialect, _inner(impl, dialect, coltype))
    if computed is None and isinstance(impl, Date) and not isinstance(impl, DateTime):
        return _day(processor(kind, dialect, coltype))
    if computed is not None and isinstance(impl, NumberResult):
        return _number_result(impl, dialect, computed)
    return None


def _inner(impl: TypeDecorator[Any], dialect: Dialect, coltype: Any) -> Convert | None:
    """The processor of the type a TypeDecorator wraps, which runs before its own
    `process_result_value` (as TypeDecorator.result_processor composes them)."""
    return impl.impl_instance.result_processor(dialect, coltype)


def _exact_decimal(impl: ExactDecimal, dialect: Dialect, inner: Convert | None) -> Convert:
    """ExactDecimal's value (to its places) as its exact string, as `to_json` gives it. A
    Decimal from the driver (PostgreSQL) is quantized as it is: the Decimal of its string,
    which ExactDecimal makes, is the same number with the same exponent."""
    typed = impl.process_result_value
    quantum = Decimal(1).scaleb(-impl.scale)

    def convert(value: Any) -> Any:
        if inner is not None:
            value = inner(value)
        if type(value) is Decimal:
            return str(value.quantize(quantum))
        return str(typed(value, dialect))
    return convert


def _utc_instant(impl: UtcDateTime, dialect: Dialect, inner: Convert | None) -> Convert:
    """UtcDateTime's value in ISO 8601 UTC (json_datetime). A naive time read back is UTC:
    its ISO form with "Z" is that of the UTC time with "+00:00" made "Z"; an aware one is
    made UTC, as UtcDateTime does (already UTC: the same time), and shown."""
    typed = impl.process_result_value

    def convert(value: Any) -> Any:
        read = value if inner is None else inner(value)
        if type(read) is datetime:
            if read.tzinfo is None:
                return read.isoformat() + "Z"
            if read.tzinfo is not UTC:
                read = read.astimezone(UTC)
            return read.isoformat().replace("+00:00", "Z")
        return to_json(typed(read, dialect))
    return convert


def _day(proc: Convert | None) -> Convert:
    """A date column's value in ISO 8601 (json_date)."""
    def convert(value: Any) -> Any:
        read = value if proc is None else proc(value)
        return read.isoformat() if type(read) is date else to_json(read)
    return convert


def _number_result(impl: NumberResult, dialect: Dialect, computed: FieldType) -> Convert:
    """A computed number (NumberResult: a Decimal, from a float by its repr) rounded to its
    field's places half up (`value_rounder`: an integer field's as an int) as JSON. Driver
    values other than int, finite float and Decimal take the composed steps."""
    typed = impl.process_result_value
    rounder = value_rounder(computed)
    integer = computed is FieldType.INTEGER
    places = 0 if integer else DECIMAL_SHAPES[computed][1]
    quantum = Decimal(1).scaleb(-places)

    def slow(value: Any) -> Any:
        return to_json(rounder(typed(value, dialect)))

    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is Decimal:
            exact = value
        elif kind is int:
            if integer and -WHOLE_LIMIT < value < WHOLE_LIMIT:
                return value  # Decimal(value) quantized to 1 and made int again: the same
            exact = Decimal(value)
        elif kind is float and value == value and value not in _INFINITE:
            exact = Decimal(repr(value))
        else:
            return slow(value)
        try:
            out = exact.quantize(quantum, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return None
        return int(out) if integer else str(out)
    return convert


class RecordJson:
    """A driver row of whole records (`record_columns`, raw) as the API's JSON of the
    record, for one entity and the fields one reader may see (see the module)."""

    def __init__(self, records: Records, actor: Actor, c: Compiled,
                 columns: Sequence[tuple[str, TypeEngine[Any]]], coltypes: Sequence[Any]
                 ) -> None:
        dialect = records.engine.dialect
        index = {name: i for i, (name, _kind) in enumerate(columns)}
        hidden = records.policy.hidden_fields(actor, c.entity)
        shown = [f for f in c.entity.fields if f.name not in hidden]
        computed = {f.name: f.type for f in shown if f.computed}
        regarding = {f.name for f in shown if f.type is FieldType.REGARDING}
        names = [k for k in ENGINE_COLUMNS if k in index]
        names += [f.name for f in shown]
        # a computed field the row does not carry: a formula the database cannot run, which
        # Python reads from the typed row (its place in the answer kept: filled afterwards)
        self._lazy = tuple(f.name for f in shown if f.computed and f.name not in index)
        place = {**index, **dict.fromkeys(self._lazy, 0)}
        if self._lazy:
            self._records, self._compiled = records, c
            self._typed = [(name, processor(kind, dialect, coltypes[i]))
                           for i, (name, kind) in enumerate(columns)]
        steps: dict[str, Convert] = {}
        for name in dict.fromkeys(names):
            if name in self._lazy:
                continue
            i = index[name]
            kind = columns[i][1]
            step = (processor(kind, dialect, coltypes[i]) if name in regarding
                    else column_json(kind, dialect, coltypes[i], computed.get(name)))
            if step is not None:
                steps[name] = step
        live = [n for n in names if n not in ("deleted_at", "deleted_by")]
        self._deleted = index.get("deleted_at")
        self._live = (tuple(live), _getter([place[n] for n in live]))
        self._binned = (tuple(names), _getter([place[n] for n in names]))
        self._steps = tuple((name, index[name], step) for name, step in steps.items())

    def __call__(self, row: Row) -> dict[str, Any]:
        names, take = (self._live if self._deleted is None or row[self._deleted] is None
                       else self._binned)
        out = dict(zip(names, take(row), strict=True))
        for name, i, step in self._steps:
            value = row[i]
            if value is not None:  # (deleted_at is None whenever the pair is left out)
                out[name] = step(value)
        if self._lazy:
            self._add_lazy(row, out)
        return out

    def _add_lazy(self, row: Row, out: dict[str, Any]) -> None:
        typed = {name: value if proc is None or value is None else proc(value)
                 for (name, proc), value in zip(self._typed, row, strict=True)}
        context = self._records.record_context(None, self._compiled, typed)
        for name in self._lazy:
            out[name] = to_json(context.get((name,)))


def _getter(indexes: Sequence[int]) -> Callable[[Row], tuple[Any, ...]]:
    """The values at `indexes` of a row, as a tuple (itemgetter gives a bare value for
    one index)."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda row: (row[only],)
    return itemgetter(*indexes)

"""A detail report (a report with `columns:`, engine/metadata/reports.py) as ONE SQL
statement, within the viewer's access: a row per record, not per group.

    WITH base AS (SELECT <column values>, <aggregated values> FROM the viewer's rows
                  WHERE <the report's filter>)
    SELECT base.c0, ..., <names of linked records>, totals.a0, ...
      FROM base CROSS JOIN (SELECT <aggregates> FROM base) AS totals
     ORDER BY <sort> LIMIT n+1

Each column is a field path or a formula compiled to SQL on the one secure query
(engine/runtime/records/secure.py), as a grouped report's groups are; the report's
aggregates, if any, are computed over ALL its rows (not only the first `limit`) in the same
statement and make its totals row. No aggregate: the totals row has no values.

The answer is a ReportResult (engine/runtime/reports/compiler.py) of detail rows: each at
`level` 1 with its column values in `keys` and the names of the records they link to in
`names` (both in the order of `report.columns`) and no `values`; the totals row at level 0
with the aggregates in `values`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, case, literal, select
from sqlalchemy.sql.elements import ColumnElement

from engine.fieldtypes import FIELD_TYPES, FieldType
from engine.formula import CompiledFormula, FType
from engine.metadata.model import Field
from engine.metadata.reports import Report, ReportColumn
from engine.runtime.access import Actor
from engine.runtime.query_limit import QueryTimeLimit
from engine.runtime.records.names import name_column
from engine.runtime.reports.compiler import (
    ReportResult,
    ReportRow,
    ReportTimeLimit,
    aggregate_sql,
    aggregate_value,
    read_value,
    secured,
)
from engine.runtime.reports.params import ParamValue, conditions, resolve

if TYPE_CHECKING:
    from sqlalchemy import Select

    from engine.runtime.records.service import Records


def detail_statement(records: Records, actor: Actor, report: Report,
                     action: str = "read",
                     values: Sequence[ParamValue] | None = None) -> Select[Any]:
    """The one statement of the detail report `report` as `actor` may run it (Forbidden if
    they may not); `action` export: over the rows they may export. `values`: of its
    parameters (None: their defaults)."""
    seen = secured(records, actor, report, action)
    if values is None:
        values = resolve(records, actor, report, {})

    def sql(formula: CompiledFormula) -> ColumnElement[Any]:
        return formula.to_sql(seen.path, seen.sql.dialect, seen.sql.clock)

    base_cols: list[ColumnElement[Any]] = [sql(c.compiled).label(f"c{i}")
                                           for i, c in enumerate(report.columns)]
    for j, a in enumerate(report.aggregates):
        read = read_value(a, seen, sql)
        if read is not None:
            base_cols.append(read.label(f"v{j}"))
    base_cols.append(seen.table.c.id.label("row_id"))  # a stable order among equal rows
    stmt = seen.select(*base_cols)
    if report.filter_compiled is not None:
        stmt = stmt.where(seen.condition(report.filter_compiled))
    narrowed = conditions(records, actor, report, seen, values)
    if narrowed:
        stmt = stmt.where(*narrowed)
    base = stmt.cte("report_base")

    cols: list[ColumnElement[Any]] = [base.c[f"c{i}"] for i in range(len(report.columns))]
    for i, c in enumerate(report.columns):
        shown = name_column(records, actor, c.target, base.c[f"c{i}"]) \
            if c.target is not None else None
        cols.append((shown if shown is not None else literal(None, String)).label(f"n{i}"))
    stmt = select(*cols)
    if report.aggregates:
        totals = select(*[aggregate_sql(a, base.c.get(f"v{j}")).label(f"a{j}")
                          for j, a in enumerate(report.aggregates)]).select_from(base) \
            .subquery("report_totals")
        stmt = stmt.add_columns(*totals.c).select_from(base.join(totals, literal(1, Integer)
                                                                 == literal(1, Integer)))
    else:
        stmt = stmt.select_from(base)
    by_name = {c.name: i for i, c in enumerate(report.columns)}
    order: list[ColumnElement[Any]] = []
    for s in report.sort:
        column = report.columns[by_name[s.key]]
        key = order_key(column.ends_on, base.c[f"c{by_name[s.key]}"])
        order.append((key.desc() if s.descending else key.asc()).nulls_last())
    order.append(base.c.row_id.asc())
    return stmt.order_by(*order).limit(report.limit + 1)


def run_detail(records: Records, actor: Actor, report: Report,
               action: str = "read",
               values: Sequence[ParamValue] | None = None) -> ReportResult:
    """The rows of the detail report `report` as `actor` may see them (`action` export: may
    export them), with its parameters' `values` (None: their defaults), its totals row
    last."""
    if values is None:
        values = resolve(records, actor, report, {})
    stmt = detail_statement(records, actor, report, action, values)
    try:
        with records.engine.connect() as conn:
            fetched = list(conn.execute(stmt).mappings())
    except QueryTimeLimit as exc:
        period = report.parameter("period")
        raise ReportTimeLimit(exc.seconds, period.name if period else None) from None
    n = len(report.columns)
    rows = tuple(ReportRow(level=1,
                           keys=tuple(cell(c, m[f"c{i}"]) for i, c in enumerate(report.columns)),
                           names=tuple(m[f"n{i}"] for i in range(n)), values={})
                 for m in fetched[:report.limit])
    if fetched and report.aggregates:
        first = fetched[0]
        counted = {a.name: aggregate_value(a, first[f"a{j}"])
                   for j, a in enumerate(report.aggregates)}
    else:  # no rows: nothing counted
        counted = {a.name: aggregate_value(a, None) for a in report.aggregates}
    totals = ReportRow(level=0, keys=(None,) * n, names=(None,) * n, values=counted)
    return ReportResult(report, rows, totals, len(fetched) > report.limit, tuple(values))


def cell(column: ReportColumn, raw: Any) -> Any:
    """A column's value as the database gave it, typed: a number as a Decimal (a field's
    to its scale, an integer as an int, a formula's to the cent), a date as a date, a
    yes/no as a bool."""
    if raw is None:
        return None
    if column.type is FType.NUMBER:
        try:
            number = Decimal(repr(raw) if isinstance(raw, float) else str(raw))
        except InvalidOperation:
            return None
        f = column.ends_on
        if f is not None and f.type in FIELD_TYPES:
            places = FIELD_TYPES[f.type].scale or 0
            if places == 0:  # an integer (a count, a position): an int, as records give it
                return int(number)
            return number.quantize(Decimal(1).scaleb(-places))
        return number.quantize(Decimal("0.01"))  # a formula's number: to the cent
    if column.type is FType.BOOLEAN:
        return bool(raw)
    if column.type is FType.DATE and isinstance(raw, str):
        return date.fromisoformat(raw[:10])
    if column.type is FType.DATETIME and isinstance(raw, str):
        return datetime.fromisoformat(raw)
    return raw


def order_key(f: Field | None, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A choice field in the order of its options; any other value as it sorts."""
    if f is not None and f.type is FieldType.CHOICE and f.options:
        return case(*[(column == option, n) for n, option in enumerate(f.options)],
                    else_=len(f.options))
    return column

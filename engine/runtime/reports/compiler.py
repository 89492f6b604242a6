"""A report (engine/metadata/reports.py) as ONE SQL statement, within the viewer's access.

The statement is built on the one secure query (engine/runtime/records/secure.py):

    WITH base AS (SELECT <group values>, <aggregated values> FROM the viewer's rows
                  WHERE <the report's filter>)
    SELECT levels.*, <names of linked records> FROM (
        SELECT ... FROM base GROUP BY ROLLUP (g0, g1)             -- PostgreSQL
      | SELECT ... GROUP BY g0, g1 UNION ALL ... GROUP BY g0 UNION ALL ... (no GROUP BY)
                                                                   -- SQLite, the same rows
    ) AS levels ORDER BY <the grand total first, each subtotal after its group> LIMIT n+1

`base` computes each row's group values (a date bucket as text: 2026-03-02 for a week's
Monday, 2026-03, 2026-Q1, 2026) and the values each aggregate reads (a conditional
aggregate reads `CASE WHEN <where> THEN value END`); the levels aggregate those plain
columns, so no expression with parameters has to be matched between SELECT and GROUP BY.
Every row of the answer carries `lvl`, how many groups it is keyed on: all of them for a
group row, fewer for a subtotal, 0 for the grand total. Nothing is aggregated in Python.

A viewer who may not read the entity gets the Forbidden a list gets; a report reading a
field hidden from the viewer (a field mask of their role) is refused without naming it.
Datetime buckets are taken in UTC, like the formula date functions. Quarter and year
buckets follow the fiscal year (settings.yaml `fiscal_year_start`,
engine/runtime/reports/fiscal.py). The report's parameters (engine/runtime/reports/params.py)
narrow `base` like its filter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    case,
    cast,
    distinct,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from engine.fieldtypes import FIELD_TYPES, FieldType
from engine.formula import CompiledFormula, FType, SystemClock
from engine.messages import msg
from engine.metadata.reports import Report, ReportAggregate, ReportGroup
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import Forbidden
from engine.runtime.query_limit import QueryTimeLimit
from engine.runtime.records import secure
from engine.runtime.records.names import name_column
from engine.runtime.records.secure import SecureRows
from engine.runtime.reports import crosstab, fiscal
from engine.runtime.reports.crosstab import AcrossValue
from engine.runtime.reports.params import ParamValue, conditions, resolve

if TYPE_CHECKING:
    from engine.runtime.records.service import Records


class ReportTimeLimit(QueryTimeLimit):
    """A report ran past the request's query time limit: the report, not the server, is at
    fault, so the answer is a 4xx naming the limit."""

    status = 422
    code = "report_time_limit"

    def __init__(self, seconds: float, period: str | None = None) -> None:
        super().__init__(seconds)
        if period is None:
            self.message = msg("the report ran longer than the %(limit)s s limit "
                               "(settings.yaml query_time_limit) and was stopped; "
                               "narrow its filter", limit=f"{seconds:g}")
        else:
            self.message = msg("the report ran longer than the %(limit)s s limit "
                               "(settings.yaml query_time_limit) and was stopped; "
                               "choose a shorter period (its parameter %(param)s) or "
                               "narrow its filter", limit=f"{seconds:g}", param=period)


@dataclass(frozen=True)
class ReportRow:
    level: int
    """How many groups the row is keyed on: all for a group row, fewer for a subtotal, 0
    for the grand total."""
    keys: tuple[Any, ...]
    """The group values, outermost first (None past `level`; None within it is blank)."""
    names: tuple[str | None, ...]
    """The names of linked records the keys point to (None: no name to show)."""
    values: dict[str, Any]
    """Aggregate name → value (an int count, a Decimal, a date or text for min/max)."""
    across: tuple[dict[str, Any], ...] = ()
    """A cross-tab's cells: per column (ReportResult.columns, in order) aggregate name →
    value, as `values` holds the row's totals."""


@dataclass(frozen=True)
class ReportResult:
    report: Report
    rows: tuple[ReportRow, ...]
    """Group rows and subtotals in order, each subtotal after its group's rows."""
    totals: ReportRow
    truncated: bool
    """More rows than the report's limit: the first `limit` are shown."""
    parameters: tuple[ParamValue, ...] = ()
    """The values of the report's parameters the rows were computed with."""
    across_values: tuple[AcrossValue, ...] = ()
    """A cross-tab's columns: the values of its `across` field (engine/runtime/reports/
    crosstab.py); empty for a report without one."""


def may_run(records: Records, actor: Actor, report: Report) -> bool:
    """Whether `actor` may run `report`: they read its entity and every field it reads."""
    if report.sources:
        from engine.runtime.reports import blended

        return blended.may_run(records, actor, report)
    entity = records.model.entity(report.entity)
    policy = records.policy
    if policy.scope(actor, entity.name, "read") is Scope.NONE:
        return False
    return not any(policy.reads_hidden(actor, entity, p) for p in report.references)


def secured(records: Records, actor: Actor, report: Report,
            action: str = "read") -> SecureRows:
    """The rows the report reads, after its access checks. `action` export: the rows of
    the actor's export scope (an export of the report; Forbidden without it)."""
    seen = secure.rows(records, actor, report.entity, action)
    records.policy.require(actor, seen.entity, "read")
    if action != "read":
        records.policy.require(actor, seen.entity, action)
    if any(records.policy.reads_hidden(actor, seen.entity, p) for p in report.references):
        raise Forbidden(msg("this report reads fields you may not see"))
    return seen


def report_statement(records: Records, actor: Actor, report: Report,
                     action: str = "read",
                     values: Sequence[ParamValue] | None = None) -> Select[Any]:
    """The one statement of `report` as `actor` may run it (Forbidden if they may not);
    `action` export: over the rows they may export. `values`: of its parameters (None:
    their defaults)."""
    if report.columns:
        from engine.runtime.reports.detail import detail_statement  # it builds on this module
        return detail_statement(records, actor, report, action, values)
    return _compiled(records, actor, report, action, values)[0]


def _compiled(records: Records, actor: Actor, report: Report, action: str = "read",
              values: Sequence[ParamValue] | None = None,
              ) -> tuple[Select[Any], tuple[AcrossValue, ...]]:
    """The statement, and a cross-tab's columns (read by its first query)."""
    dialect = records.engine.dialect.name
    pg = dialect == "postgresql"
    if report.sources:
        from engine.runtime.reports import blended

        base = blended.base_cte(records, actor, report, action)
    else:
        base = _base(records, actor, report, action, values, pg)
    columns: tuple[AcrossValue, ...] = ()
    if report.across is not None:
        try:
            with records.engine.connect() as conn:
                columns = crosstab.fetch_values(records, actor, report, base, conn)
        except QueryTimeLimit as exc:
            period = report.parameter("period")
            raise ReportTimeLimit(exc.seconds, period.name if period else None) from None

    n = len(report.groups)
    aggs = [_aggregate(a, base.c.get(f"v{j}")).label(f"a{j}")
            for j, a in enumerate(report.aggregates) if a.computed_compiled is None]
    if report.across is not None:
        x = base.c[crosstab.ACROSS]
        aggs += [_aggregate(a, crosstab.within(x, c.value, base.c.get(f"v{j}")))
                 .label(f"c{k}_{j}")
                 for k, c in enumerate(columns) for j, a in enumerate(report.aggregates)
                 if a.computed_compiled is None]
    keys = [base.c[f"g{i}"] for i in range(n)]
    if n == 0:
        levels = select(literal(0, Integer).label("lvl"), *aggs).select_from(base).subquery()
    elif pg:
        rolled = sum((func.grouping(k) for k in keys[1:]), func.grouping(keys[0]))
        levels = select((literal(n, Integer) - rolled).label("lvl"),
                        *[k.label(f"g{i}") for i, k in enumerate(keys)], *aggs) \
            .select_from(base).group_by(func.rollup(*keys)).subquery()
    elif _rolls_up(report):
        levels = _levels_from_finest(report, base, keys, aggs)
    else:
        parts = []
        for lvl in range(n, -1, -1):
            cols = [keys[i].label(f"g{i}") if i < lvl
                    else cast(literal(None), _sql_type(report.groups[i])).label(f"g{i}")
                    for i in range(n)]
            part = select(literal(lvl, Integer).label("lvl"), *cols, *aggs).select_from(base)
            parts.append(part.group_by(*keys[:lvl]) if lvl else part)
        levels = union_all(*parts).subquery()

    names = []
    names += _formulas(report, levels.c, len(columns), dialect)
    for i, g in enumerate(report.groups):
        shown = name_column(records, actor, g.target, levels.c[f"g{i}"]) \
            if g.target is not None else None
        names.append((shown if shown is not None else literal(None, String)).label(f"n{i}"))
    order: list[ColumnElement[Any]] = [case((levels.c.lvl == 0, 0), else_=1)]
    by_key = {s.key: s.descending for s in report.sort}
    for i, g in enumerate(report.groups):
        order.append(case((levels.c.lvl < i + 1, 1), else_=0))
        if i == n - 1:
            for s in report.sort:
                at = next((j for j, a in enumerate(report.aggregates) if a.name == s.key),
                          None)
                if at is not None:
                    col = _formula_column(report, levels.c, at, None, dialect)
                    order.append((col.desc() if s.descending else col.asc()).nulls_last())
        key = _order_key(g, levels.c[f"g{i}"])
        order.append((key.desc() if by_key.get(g.path) else key.asc()).nulls_last())
    return select(levels, *names).order_by(*order).limit(report.limit + 1), columns


def _base(records: Records, actor: Actor, report: Report, action: str,
          values: Sequence[ParamValue] | None, pg: bool) -> CTE:
    """The report's rows as a CTE: g<i> per group, v<j> per aggregate reading a value,
    x the cross-tab's value."""
    seen = secured(records, actor, report, action)
    if values is None:
        values = resolve(records, actor, report, {})
    start = records.model.settings.fiscal_year_start

    def sql(formula: CompiledFormula) -> ColumnElement[Any]:
        return formula.to_sql(seen.path, seen.sql.dialect, seen.sql.clock)

    base_cols: list[ColumnElement[Any]] = []
    for i, g in enumerate(report.groups):
        base_cols.append(group_value(g, seen, pg, start).label(f"g{i}"))
    for j, a in enumerate(report.aggregates):
        read = _read_value(a, seen, sql)
        if read is not None:
            base_cols.append(read.label(f"v{j}"))
    if report.across is not None:
        base_cols.append(group_value(report.across, seen, pg, start).label(crosstab.ACROSS))
    stmt = seen.select(*base_cols) if base_cols else seen.select(literal(1).label("one"))
    if report.filter_compiled is not None:
        stmt = stmt.where(seen.condition(report.filter_compiled))
    narrowed = conditions(records, actor, report, seen, values)
    if narrowed:
        stmt = stmt.where(*narrowed)
    return stmt.cte("report_base")


def group_value(g: ReportGroup, seen: SecureRows, pg: bool,
                fiscal_start: int = 1) -> ColumnElement[Any]:
    """A group's (or cross-tab field's) value per row: bucketed, for a date."""
    value = g.compiled.to_sql(seen.path, seen.sql.dialect, seen.sql.clock)
    if g.bucket is not None:
        value = _bucket(value, g.bucket, g.compiled.type, pg, fiscal_start)
    return value


def sql_type(g: ReportGroup) -> Any:
    """The SQL type of a group's value (for a blank one of the same type)."""
    return _sql_type(g)


def _formulas(report: Report, c: Any, columns: int, dialect: str) -> list[ColumnElement[Any]]:
    """The `computed` aggregates over the other aggregates' columns: f<j> per row, and
    fc<k>_<j> per cross-tab column k."""
    out: list[ColumnElement[Any]] = []
    for j, a in enumerate(report.aggregates):
        if a.computed_compiled is not None:
            out.append(_formula_column(report, c, j, None, dialect).label(f"f{j}"))
            out += [_formula_column(report, c, j, k, dialect).label(f"fc{k}_{j}")
                    for k in range(columns)]
    return out


def _formula_column(report: Report, c: Any, j: int, k: int | None,
                    dialect: str) -> ColumnElement[Any]:
    """Aggregate j's column in the levels (`c`): read, or computed by its formula."""
    a = report.aggregates[j]
    if a.computed_compiled is None:
        read: ColumnElement[Any] = c[f"a{j}"] if k is None else c[f"c{k}_{j}"]
        return read
    at = {b.name: i for i, b in enumerate(report.aggregates[:j])}

    def column(path: tuple[str, ...]) -> ColumnElement[Any]:
        return _formula_column(report, c, at[path[0]], k, dialect)

    return a.computed_compiled.to_sql(column, dialect, SystemClock())


def run_report(records: Records, actor: Actor, report: Report,
               action: str = "read",
               values: Sequence[ParamValue] | None = None) -> ReportResult:
    """The rows of `report` as `actor` may see them (`action` export: may export them),
    with its parameters' `values` (None: their defaults). A detail report (`columns`) runs
    as engine/runtime/reports/detail.py builds it."""
    if values is None:
        values = resolve(records, actor, report, {})
    if report.columns:
        from engine.runtime.reports.detail import run_detail  # it builds on this module
        return run_detail(records, actor, report, action, values)
    stmt, columns = _compiled(records, actor, report, action, values)
    n = len(report.groups)
    try:
        with records.engine.connect() as conn:
            fetched = list(conn.execute(stmt).mappings())
    except QueryTimeLimit as exc:
        period = report.parameter("period")
        raise ReportTimeLimit(exc.seconds, period.name if period else None) from None
    rows: list[ReportRow] = []
    totals: ReportRow | None = None
    for m in fetched:
        lvl = int(m["lvl"])
        row = ReportRow(
            level=lvl,
            keys=tuple(m[f"g{i}"] if i < lvl else None for i in range(n)),
            names=tuple(m[f"n{i}"] if i < lvl else None for i in range(n)),
            values={a.name: _value(a, m[_key(a, j, None)])
                    for j, a in enumerate(report.aggregates)},
            across=tuple({a.name: _value(a, m[_key(a, j, k)])
                          for j, a in enumerate(report.aggregates)}
                         for k in range(len(columns))))
        if lvl == 0 and totals is None:
            totals = row
        else:
            rows.append(row)
    truncated = len(fetched) > report.limit
    if truncated:
        rows = rows[:report.limit - 1]
    assert totals is not None  # the grand total row is always there, and first
    return ReportResult(report, tuple(rows), totals, truncated, tuple(values), columns)


def _key(a: ReportAggregate, j: int, k: int | None) -> str:
    """The answer's column of aggregate j (in cross-tab column k)."""
    if a.computed_compiled is not None:
        return f"f{j}" if k is None else f"fc{k}_{j}"
    return f"a{j}" if k is None else f"c{k}_{j}"


def _read_value(a: ReportAggregate, seen: SecureRows,
                sql: Callable[[CompiledFormula], ColumnElement[Any]]
                ) -> ColumnElement[Any] | None:
    """What the aggregate reads from each row (a conditional one: the value, or 1, when
    its condition holds); None: it counts every row."""
    value = sql(a.compiled) if a.compiled is not None else None
    if a.where_compiled is None:
        return value
    condition = seen.condition(a.where_compiled)
    return case((condition, value if value is not None else literal(1, Integer)))


_ROLLING: dict[str, Any] = {"count": func.sum, "sum": func.sum, "min": func.min, "max": func.max}
"""How a subtotal of each aggregate is computed from the finest groups' values."""


def _rolls_up(report: Report) -> bool:
    """Whether every aggregate's subtotal follows from the finest groups' values (counts
    and sums add up, minima and maxima of minima and maxima; not averages or distinct
    counts)."""
    return all(a.computed_compiled is not None or a.agg in _ROLLING
               for a in report.aggregates)


def _levels_from_finest(report: Report, base: Any, keys: Sequence[ColumnElement[Any]],
                        aggs: Sequence[Any]) -> Any:
    """SQLite's levels when the aggregates roll up: the finest groups from the rows once,
    each coarser level from them — rather than every level from the rows (the rows'
    CTE would then be materialised and read once per level)."""
    n = len(keys)
    finest = select(*[k.label(f"g{i}") for i, k in enumerate(keys)], *aggs) \
        .select_from(base).group_by(*keys).cte("report_finest")
    kinds = {f"a{j}": a.agg for j, a in enumerate(report.aggregates)}
    names = [a.name for a in aggs]  # a<j>, and c<k>_<j> for a cross-tab's columns

    def rolled(name: str) -> ColumnElement[Any]:
        kind = kinds[name if name.startswith("a") else f"a{name.rsplit('_', 1)[1]}"]
        out: ColumnElement[Any] = _ROLLING[kind](finest.c[name]).label(name)
        return out

    parts = [select(literal(n, Integer).label("lvl"), *[finest.c[f"g{i}"] for i in range(n)],
                    *[finest.c[name] for name in names])]
    for lvl in range(n - 1, -1, -1):
        cols = [finest.c[f"g{i}"] if i < lvl
                else cast(literal(None), _sql_type(report.groups[i])).label(f"g{i}")
                for i in range(n)]
        part = select(literal(lvl, Integer).label("lvl"), *cols,
                      *[rolled(name) for name in names]).select_from(finest)
        parts.append(part.group_by(*[finest.c[f"g{i}"] for i in range(lvl)]) if lvl else part)
    return union_all(*parts).subquery()


def _aggregate(a: ReportAggregate, value: ColumnElement[Any] | None) -> ColumnElement[Any]:
    if value is None:
        return func.count()
    if a.agg == "count":
        return func.count(value)
    if a.agg == "count_distinct":
        return func.count(distinct(value))
    if a.agg == "sum":
        return func.sum(value)
    if a.agg == "avg":
        return func.avg(value)
    return func.min(value) if a.agg == "min" else func.max(value)


def _bucket(x: ColumnElement[Any], bucket: str, kind: FType, pg: bool,
            fiscal_start: int = 1) -> ColumnElement[Any]:
    """A date or datetime as the text of its bucket; datetimes in UTC; quarters and years
    of a fiscal year that does not start in January as FY2026-Q1, FY2026."""
    if pg and kind is FType.DATETIME:
        x = func.timezone(literal_column("'UTC'"), x)
    if fiscal_start != 1 and bucket in ("quarter", "year"):
        return fiscal.bucket_sql(x, bucket, fiscal_start, pg)
    if pg:
        if bucket == "week":
            return func.to_char(func.date_trunc(literal_column("'week'"), x),
                                literal_column("'YYYY-MM-DD'"))
        fmt = {"day": "'YYYY-MM-DD'", "month": "'YYYY-MM'", "quarter": "'YYYY-\"Q\"Q'",
               "year": "'YYYY'"}[bucket]
        return func.to_char(x, literal_column(fmt))
    if bucket == "day":
        return func.date(x)
    if bucket == "week":  # the Monday of its week
        return func.date(x, literal_column("'weekday 0'"), literal_column("'-6 days'"))
    if bucket == "month":
        return func.strftime(literal_column("'%Y-%m'"), x)
    if bucket == "year":
        return func.strftime(literal_column("'%Y'"), x)
    quarter = (cast(func.strftime(literal_column("'%m'"), x), Integer) + 2) / 3
    return func.strftime(literal_column("'%Y'"), x).op("||")(literal_column("'-Q'")) \
        .op("||")(cast(quarter, Integer))


def _sql_type(g: ReportGroup) -> Any:
    if g.bucket is None and g.type in (FType.NUMBER, FType.REFERENCE):
        return Integer if g.type is FType.REFERENCE else String
    return String


def _order_key(g: ReportGroup, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A choice field in the order of its options; any other value as it sorts."""
    f = g.ends_on
    if g.bucket is None and f is not None and f.type is FieldType.CHOICE and f.options:
        return case(*[(column == option, n) for n, option in enumerate(f.options)],
                    else_=len(f.options))
    return column


def _value(a: ReportAggregate, raw: Any) -> Any:
    if raw is None:
        return 0 if a.agg in ("count", "count_distinct") else None
    if a.agg in ("count", "count_distinct"):
        return int(raw)
    if a.type is not FType.NUMBER:
        return raw
    places = _places(a)
    try:
        number = Decimal(repr(raw) if isinstance(raw, float) else str(raw))
    except InvalidOperation:
        return None
    if a.agg == "avg":
        places = (places or 0) + 2
    if a.computed_compiled is not None:
        places = 2
    return number if places is None else number.quantize(Decimal(1).scaleb(-places))


def _places(a: ReportAggregate) -> int | None:
    f = a.ends_on
    if f is None:  # a formula's number: to the cent, as money
        return 2 if a.formula is not None else None
    return FIELD_TYPES[f.type].scale or 0


read_value = _read_value
"""What an aggregate reads from each row (for engine/runtime/reports/detail.py)."""
aggregate_sql = _aggregate
aggregate_value = _value

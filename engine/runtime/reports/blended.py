"""A blended report's base rows (`sources:`, engine/metadata/report_sources.py): each
source's rows read through the one secure query of its own entity, combined by UNION ALL
into the report's base CTE before the one grouping (engine/runtime/reports/compiler.py).

    WITH report_base AS (
        SELECT <target's groups> AS g0.., target_value AS v0, NULL AS v1 FROM <targets the
               viewer reads> WHERE <its filter>
      UNION ALL
        SELECT <contract line's groups> AS g0.., NULL AS v0, line_total AS v1 FROM <lines
               the viewer reads> WHERE <its filter>)

Every aggregate reads a column of its own source and NULL in the others' rows (a plain
count reads 1), so `SUM(v1)` adds the actuals and `COUNT(v0)` counts the targets. A source
the viewer may not read, or one reading a field hidden from them, refuses the whole report
(403 naming no field): a report never shows a target without its actual silently missing.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Date, DateTime, Integer, Numeric, String, cast, literal, union_all
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from engine.formula import CompiledFormula, FType
from engine.messages import msg
from engine.metadata.reports import Report, ReportAggregate, ReportSource
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import Forbidden
from engine.runtime.records import secure
from engine.runtime.records.secure import SecureRows
from engine.runtime.reports.compiler import group_value, read_value, sql_type

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

_NULLS = {FType.DATE: Date, FType.DATETIME: DateTime, FType.TEXT: String}


def may_run(records: Records, actor: Actor, report: Report) -> bool:
    """Whether `actor` reads every source's entity and every field each source reads."""
    policy = records.policy
    for source in report.sources:
        entity = records.model.entity(source.entity)
        if policy.scope(actor, entity.name, "read") is Scope.NONE:
            return False
        if any(policy.reads_hidden(actor, entity, p) for p in source.references):
            return False
    return True


def secured(records: Records, actor: Actor, source: ReportSource,
            action: str = "read") -> SecureRows:
    """The rows of one source, after the access checks a one-entity report has."""
    seen = secure.rows(records, actor, source.entity, action)
    records.policy.require(actor, seen.entity, "read")
    if action != "read":
        records.policy.require(actor, seen.entity, action)
    if any(records.policy.reads_hidden(actor, seen.entity, p) for p in source.references):
        raise Forbidden(msg("this report reads fields you may not see"))
    return seen


def base_cte(records: Records, actor: Actor, report: Report, action: str) -> CTE:
    """The sources' rows as one CTE: g<i> per group, v<j> per aggregate (not formulas)."""
    pg = records.engine.dialect.name == "postgresql"
    start = records.model.settings.fiscal_year_start
    parts = []
    for source in report.sources:
        seen = secured(records, actor, source, action)
        own = {a.name: a for a in source.aggregates}
        cols: list[ColumnElement[Any]] = []
        for i, (g, shared) in enumerate(zip(source.groups, report.groups, strict=True)):
            value = group_value(g, seen, pg, start) if g is not None \
                else cast(literal(None), sql_type(shared))
            cols.append(value.label(f"g{i}"))
        for j, a in enumerate(report.aggregates):
            if a.computed_compiled is not None:
                continue
            mine = own.get(a.name)
            read = read_value(mine, seen, partial(_sql, seen)) if mine is not None else None
            if mine is not None and read is None:
                read = literal(1, Integer)  # a plain count: one per row of this source
            cols.append((read if read is not None else _null(a)).label(f"v{j}"))
        stmt = seen.select(*cols)
        if source.filter_compiled is not None:
            stmt = stmt.where(seen.condition(source.filter_compiled))
        parts.append(stmt)
    return union_all(*parts).cte("report_base")


def _sql(seen: SecureRows, formula: CompiledFormula) -> ColumnElement[Any]:
    return formula.to_sql(seen.path, seen.sql.dialect, seen.sql.clock)


def _null(a: ReportAggregate) -> ColumnElement[Any]:
    if a.agg in ("min", "max"):
        return cast(literal(None), _NULLS.get(a.type, Numeric)())
    return cast(literal(None), Numeric())

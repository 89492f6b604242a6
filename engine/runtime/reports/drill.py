"""Drill-down: the list of the records behind a row or a cell of a report.

A row of a report (a group, a subtotal, the totals) stands for the records meeting the
report's filter, its parameters' conditions and the row's group keys; a cell of an
aggregate with a `where` for those meeting it too. `drill_query` writes them as the query
of the entity's list page (`/e/<entity>?…`, engine/web/pages/lists.py), which reads them
through the same secure query:

- `filter`: one formula — the report's filter, a period's range (the text the report's own
  condition was compiled from: engine/runtime/reports/params.py), the keys of the groups
  that are not references (`stage = "won"`, a bucket as its date range
  `AND(close_date >= DATE(2026, 1, 1), close_date < DATE(2026, 4, 1))`, a blank key as
  `ISBLANK(stage)`), and the aggregate's `where`;
- a reference key as a list condition on its column (`owner_id=7`, `account=12`,
  `account__blank=true`), which the formula cannot compare; the department parameter as
  `department_id__in=…`, the owner parameter as `owner_id=…`.

None when a row cannot be written so (a group on a reference reached through another one,
`account.owner`; a datetime group without a bucket; a formula past the list's limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from engine.formula import FType
from engine.metadata.formula_checks import ENGINE_LINKS
from engine.metadata.reports import Report, ReportAggregate, ReportGroup
from engine.runtime.reports.compiler import ReportRow
from engine.runtime.reports.fiscal import key_range
from engine.runtime.reports.params import ParamValue, range_formula
from engine.runtime.views import MAX_FORMULA


def drill_query(report: Report, values: Sequence[ParamValue], row: ReportRow,
                fiscal_start: int, aggregate: ReportAggregate | None = None
                ) -> dict[str, str] | None:
    """The list query of the records `row` (and `aggregate`'s cell of it) counts."""
    parts: list[str] = []
    params: dict[str, str] = {}
    if report.filter:
        parts.append(report.filter)
    for v in values:
        if v.formula is not None:
            parts.append(v.formula)
        elif v.ids:
            if v.parameter.kind == "department":
                params["department_id__in"] = ",".join(map(str, v.ids))
            else:
                params["owner_id"] = str(v.ids[0])
    for g, key in zip(report.groups[:row.level], row.keys, strict=False):
        if g.target is not None and g.bucket is None:
            if "." in g.path:
                return None
            column = ENGINE_LINKS.get(g.path, g.path)
            if key is None:
                params[f"{column}__blank"] = "true"
            else:
                params[column] = str(key)
            continue
        condition = key_formula(g, key, fiscal_start)
        if condition is None:
            return None
        parts.append(condition)
    if aggregate is not None:
        if aggregate.where:
            parts.append(aggregate.where)
        if aggregate.path is not None and aggregate.agg in ("count", "count_distinct"):
            parts.append(f"NOT(ISBLANK({aggregate.path}))")
    if parts:
        formula = parts[0] if len(parts) == 1 else \
            "AND(" + ", ".join(f"({p})" for p in parts) + ")"
        if len(formula) > MAX_FORMULA:
            return None
        params = {"filter": formula, **params}
    return params


def key_formula(g: ReportGroup, key: Any, fiscal_start: int) -> str | None:
    """The condition of one group key that is not a reference, as a formula."""
    if key is None:
        return f"ISBLANK({g.path})"
    if g.bucket is not None:
        span = key_range(g.bucket, str(key), fiscal_start)
        if span is None:
            return None
        return range_formula(g.path, g.compiled.type, *span)
    kind = g.compiled.type
    if kind is FType.TEXT:
        text = str(key).replace("\\", "\\\\").replace('"', '\\"')
        return f'{g.path} = "{text}"'
    if kind is FType.NUMBER and isinstance(key, (int, Decimal, float)) \
            and not isinstance(key, bool):
        number = Decimal(repr(key)) if isinstance(key, float) else Decimal(key)
        return f"{g.path} = {number:f}"
    if kind is FType.BOOLEAN:
        return f"{g.path} = {'TRUE' if key else 'FALSE'}"
    if kind is FType.DATE:
        day = key if isinstance(key, date) else _day(str(key))
        if day is None:
            return None
        return f"{g.path} = DATE({day.year}, {day.month}, {day.day})"
    return None


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None

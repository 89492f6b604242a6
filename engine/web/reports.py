"""Reports in the JSON API (engine/runtime/reports; docs/reports.md, docs/api.md).

`GET /api/reports` lists the reports the caller may run (they read the report's entity and
every field it reads); `GET /api/reports/<name>` runs one:

    {"report": "sales_funnel", "label": {"en": ..., "zh": ...}, "entity": "opportunity",
     "columns": [{"key": "stage", "kind": "group", "label": {...}, "type": "text"},
                 {"key": "deals", "kind": "aggregate", "agg": "count", "label": {...},
                  "type": "number"}],
     "rows": [{"kind": "group", "level": 1, "values": {"stage": "won", "deals": 3},
               "names": {}}, ...],
     "totals": {"kind": "total", "level": 0, "values": {"stage": null, "deals": 7}, ...},
     "truncated": false, "parameters": {"period": {"value": "this_year",
     "from": "2026-01-01", "to": "2026-12-31"}, "owner": {"value": "any"}}}

A cross-tab (`across:`) adds `"across": {"key", "label", "type", "values": [{"value",
"name"?}]}` and, per row, `"across": [{aggregate: value}, ...]` in the order of the values;
a blended report (`sources:`) adds `"sources": [entity, ...]` (docs/reports.md).

A row's `level` is how many groups it is keyed on; a subtotal (`kind: subtotal`) follows its
group's rows. A detail report (`columns:`) answers a row per record (`kind: detail`, level
1) with its columns (`kind: column`) in `values`, and its aggregates in `totals`. `names`
holds the names of linked records (owner, queue) by group (or column) key. Amounts
are decimal strings, as in records. A report the caller may not run is a 403 that names no
field; an unknown one a 404.

The report's parameters are read from the query string (`?period=this_year`,
`?period=custom&period_from=2026-01-01&period_to=2026-03-31`, `?department=mine`,
`?owner=7`; engine/runtime/reports/params.py), a missing one taking its default; the answer
echoes the values used under `parameters`. A value a parameter does not take is a 422
naming the parameter and the values it takes.

`?format=csv|xlsx` writes the same rows, subtotals and the total row as a file through the
one export writer (engine/runtime/export.py): a first column marks each row's kind (group,
subtotal, total); the rows are those of the caller's `export` scope (403 without one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.messages import localize, msg
from engine.metadata import Model
from engine.metadata.report_params import parameters_schema
from engine.metadata.reports import Report
from engine.runtime import export
from engine.runtime.access import Actor
from engine.runtime.errors import NotFound
from engine.runtime.records import Records
from engine.runtime.reports import ReportResult, ReportRow, may_run, run_report
from engine.runtime.reports.exported import report_export, row_kind
from engine.runtime.reports.params import resolve
from engine.runtime.reports.saved import SavedReports
from engine.web.errors import api_language
from engine.web.exports import (
    EXPORT_FILES,
    EXPORT_FORMAT,
    currency_format,
    export_format,
    export_response,
)
from engine.web.i18n import translations

ActorOf = Callable[[Request], Awaitable[Actor]]


def find_report(model: Model, name: str) -> Report:
    report = model.report(name)
    if report is None:
        raise NotFound(msg("no report '%(report)s'", report=name))
    return report


def report_for(records: Records, actor: Actor, name: str) -> Report:
    """The report named `name` as `actor` may ask for it: a file of config/reports, or a
    saved report's address (`saved-<id>`, engine/runtime/reports/saved.py) they see."""
    saved = SavedReports(records).report(actor, name)
    return saved if saved is not None else find_report(records.model, name)


def runnable(records: Records, actor: Actor) -> list[Report]:
    """The reports `actor` may run: the files' in the order of their names, then the saved
    reports they see (their own and the shared ones), by name."""
    saved = [s.report for s in SavedReports(records).visible(actor)
             if s.report is not None and may_run(records, actor, s.report)]
    return [r for r in records.model.reports if may_run(records, actor, r)] + saved


def parameter_query(request: Request) -> dict[str, str]:
    """The query string of a report's address, but its `format`: the parameters' values."""
    return {k: v for k, v in request.query_params.items() if k != "format"}


def parameters_json(report: Report) -> list[dict[str, Any]]:
    """The report's parameters as `GET /api/reports` lists them."""
    return [{"name": p.name, "kind": p.kind, "label": p.label.as_dict(), "default": p.default,
             **({"field": p.field} if p.field else {})} for p in report.parameters]


def columns_json(report: Report) -> list[dict[str, Any]]:
    """A detail report's columns (kind `column`; a formula's with its `formula`), then its
    aggregates; a grouped report's groups, then its aggregates."""
    cols: list[dict[str, Any]] = [
        {"key": c.name, "kind": "column", "label": c.label.as_dict(), "type": c.type.value,
         **({"formula": c.formula} if c.formula else {})} for c in report.columns]
    cols += [
        {"key": g.path, "kind": "group", "label": g.label.as_dict(), "type": g.type.value,
         **({"bucket": g.bucket} if g.bucket else {})} for g in report.groups]
    cols += [{"key": a.name, "kind": "aggregate", "agg": a.agg, "label": a.label.as_dict(),
              "type": a.type.value, **({"computed": a.computed} if a.computed else {})}
             for a in report.aggregates]
    return cols


def across_json(result: ReportResult) -> dict[str, Any]:
    """A cross-tab's column field and its values, in the order of each row's `across`."""
    across = result.report.across
    assert across is not None
    return {"key": across.path, "label": across.label.as_dict(), "type": across.type.value,
            **({"bucket": across.bucket} if across.bucket else {}),
            "values": [{"value": _plain(c.value),
                        **({"name": c.name} if c.name is not None else {})}
                       for c in result.across_values]}


def result_json(result: ReportResult) -> dict[str, Any]:
    report = result.report

    keyed = [g.path for g in report.groups] or [c.name for c in report.columns]

    def row(r: ReportRow) -> dict[str, Any]:
        values: dict[str, Any] = {key: _plain(k) for key, k in zip(keyed, r.keys, strict=True)}
        values.update({k: _plain(v) for k, v in r.values.items()})
        names = {key: name for key, name in zip(keyed, r.names, strict=True)
                 if name is not None}
        out = {"kind": row_kind(report, r), "level": r.level, "values": values,
               "names": names}
        if report.across is not None:
            out["across"] = [{k: _plain(v) for k, v in cells.items()} for cells in r.across]
        return out

    out = {"report": report.name, "label": report.label.as_dict(), "entity": report.entity,
           "columns": columns_json(report), "rows": [row(r) for r in result.rows],
           "totals": row(result.totals), "truncated": result.truncated,
           "parameters": {v.name: v.as_json() for v in result.parameters}}
    if report.across is not None:
        out["across"] = across_json(result)
    if report.sources:
        out["sources"] = [s.entity for s in report.sources]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


class ReportsApi:
    def __init__(self, records: Records, actor_of: ActorOf) -> None:
        self.records = records
        self.actor_of = actor_of

    def routes(self) -> list[Route]:
        """Before the entity routes (`/api/{entity}` would take these paths)."""
        return [
            Route("/api/reports", self.list, methods=["GET"]),
            Route("/api/reports/{report}", self.one, methods=["GET"]),
        ]

    async def list(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        reports = await run_in_threadpool(runnable, self.records, actor)
        return JSONResponse({"items": [
            {"report": r.name, "label": r.label.as_dict(), "entity": r.entity,
             "columns": columns_json(r), "parameters": parameters_json(r)}
            for r in reports]})

    async def one(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        report = await run_in_threadpool(report_for, self.records, actor,
                                         str(request.path_params["report"]))
        params = {k: v for k, v in request.query_params.items() if k == "format"}
        fmt = export_format(params)
        if fmt is not None:
            return await self._export(request, actor, report, fmt)
        given = parameter_query(request)

        def run() -> ReportResult:
            values = resolve(self.records, actor, report, given)
            return run_report(self.records, actor, report, values=values)

        result = await run_in_threadpool(run)
        return JSONResponse(result_json(result))

    async def _export(self, request: Request, actor: Actor, report: Report,
                      fmt: str) -> Response:
        records = self.records
        language = api_language(request)
        money = currency_format(records.model.settings.currency)
        gettext = translations()[language].gettext

        def word(text: str) -> str:
            return localize(msg(text), gettext, language)

        given = parameter_query(request)

        def write(target: Any) -> None:
            values = resolve(records, actor, report, given)
            result = run_report(records, actor, report, "export", values)
            columns, rows = report_export(result, language, word)
            export.write(fmt, target, columns, rows, money=money)

        return await export_response(fmt, report.name, write)


# -- /openapi.json ----------------------------------------------------------------------

_LABEL = {"type": "object", "additionalProperties": {"type": "string"},
          "description": "per language: {\"en\": ..., \"zh\": ...}"}
_COLUMN = {"type": "object", "required": ["key", "kind", "label", "type"], "properties": {
    "key": {"type": "string", "description": "a group's field path, a detail report's "
                                            "column or an aggregate's name"},
    "kind": {"enum": ["group", "column", "aggregate"]},
    "formula": {"type": "string", "description": "a formula column's formula"},
    "agg": {"enum": ["count", "count_distinct", "sum", "avg", "min", "max", "computed"]},
    "computed": {"type": "string",
                 "description": "agg computed: a formula over the row's other aggregates"},
    "bucket": {"enum": ["day", "week", "month", "quarter", "year"]},
    "label": _LABEL, "type": {"type": "string"}}}
_ROW = {"type": "object", "required": ["kind", "level", "values", "names"], "properties": {
    "kind": {"enum": ["group", "subtotal", "total", "detail"]},
    "level": {"type": "integer", "minimum": 0,
              "description": "how many groups the row is keyed on (0: the grand total)"},
    "values": {"type": "object", "description": "column key → value (amounts as decimal "
                                                "strings; a rolled-up group is null)"},
    "names": {"type": "object", "additionalProperties": {"type": "string"},
              "description": "group key → the name of the linked record (owner, queue)"},
    "across": {"type": "array", "items": {"type": "object"},
               "description": "a cross-tab's cells: per value of `across.values`, in "
                              "order, aggregate key → value (`values` holds the row's "
                              "totals)"}}}
_ACROSS = {"type": "object", "required": ["key", "label", "type", "values"], "properties": {
    "key": {"type": "string", "description": "the cross-tab field's path"},
    "label": _LABEL, "type": {"type": "string"},
    "bucket": {"enum": ["day", "week", "month", "quarter", "year"]},
    "values": {"type": "array", "items": {"type": "object", "required": ["value"],
                                          "properties": {"value": {},
                                                         "name": {"type": "string"}}},
               "description": "the columns: the field's values (a choice's options in "
                              "order; linked records with their names), at most 50"}}}
REPORT_SCHEMAS: dict[str, Any] = {
    "ReportColumn": _COLUMN,
    "ReportRow": _ROW,
    "ReportList": {"type": "object", "required": ["items"], "properties": {"items": {
        "type": "array", "items": {"type": "object", "required": [
            "report", "label", "entity", "columns"], "properties": {
            "report": {"type": "string"}, "label": _LABEL, "entity": {"type": "string"},
            "columns": {"type": "array",
                        "items": {"$ref": "#/components/schemas/ReportColumn"}},
            "parameters": {"type": "array", "items": {
                "type": "object", "required": ["name", "kind", "label", "default"],
                "properties": {"name": {"type": "string"},
                               "kind": {"enum": ["period", "department", "owner"]},
                               "label": _LABEL, "default": {"type": "string"},
                               "field": {"type": "string"}}}}}}}}},
    "ReportResult": {"type": "object", "required": [
        "report", "label", "entity", "columns", "rows", "totals", "truncated"], "properties": {
        "report": {"type": "string"}, "label": _LABEL, "entity": {"type": "string"},
        "columns": {"type": "array", "items": {"$ref": "#/components/schemas/ReportColumn"}},
        "rows": {"type": "array", "items": {"$ref": "#/components/schemas/ReportRow"}},
        "totals": {"$ref": "#/components/schemas/ReportRow"},
        "truncated": {"type": "boolean",
                      "description": "more rows than the report's limit"},
        "parameters": parameters_schema(),
        "across": {"$ref": "#/components/schemas/ReportAcross"},
        "sources": {"type": "array", "items": {"type": "string"},
                    "description": "a blended report's entities, in order"}}},
    "ReportAcross": _ACROSS,
}


_PARAMS = {"name": "params", "in": "query", "required": False, "style": "form",
           "explode": True, "schema": {"type": "object",
                                       "additionalProperties": {"type": "string"}},
           "description": "the report's parameters: `<name>=<value>` (a period preset or "
                          "custom with `<name>_from`/`<name>_to` as YYYY-MM-DD; mine, all or "
                          "a department id; me, any or a user id)"}


def report_paths() -> dict[str, Any]:
    """The report routes (every caller may ask; each answers within their access)."""
    def ref(name: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(c): {"description": "Error", "content": ref("Error")} for c in codes}

    tag = ["reports"]
    return {
        "/api/reports": {"get": {
            "tags": tag, "operationId": "list_reports",
            "summary": "The reports you may run",
            "responses": {"200": {"description": "The reports", "content": ref("ReportList")},
                          **errors(401)}}},
        "/api/reports/{report}": {"get": {
            "tags": tag, "operationId": "run_report",
            "summary": "Run a report: its groups, subtotals and totals within your access",
            "parameters": [{"name": "report", "in": "path", "required": True,
                            "schema": {"type": "string"},
                            "description": "the report's name (its file's name)"},
                           EXPORT_FORMAT, _PARAMS],
            "responses": {"200": {"description": "The report's rows; with `format`, the file "
                                                 "(a first column marks group, subtotal and "
                                                 "total rows)",
                                  "content": {**ref("ReportResult"), **EXPORT_FILES}},
                          **errors(400, 401, 403, 404, 422, 503)}}},
    }

"""The report pages: `/reports` lists the reports the viewer may run, `/reports/<name>` shows
one as a table — a row per group, a subtotal after each group of an outer level, the totals
last — in the viewer's language, numbers formatted as lists format them (engine/web/i18n.py).

Each report runs as one SQL statement within the viewer's access (engine/runtime/reports):
one they may not run is the 403 page naming no field, an unknown one the 404 page.

The report's parameters are a GET form above the table (the query string holds their
values: `?period=this_year&owner=me`; a bad one is the page again with the form, its
message and 422); every row, subtotal and cell links to the list of its records
(engine/runtime/reports/drill.py); administrators get `/reports/<name>/sql`, its SQL and
the database's plan for it (engine/runtime/reports/explain.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import IO, Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.fieldtypes import FieldType
from engine.formula import FType
from engine.metadata.reports import Report, ReportAggregate, ReportGroup
from engine.metadata.roles import Scope
from engine.runtime import export
from engine.runtime.access import Actor
from engine.runtime.errors import Forbidden, Invalid
from engine.runtime.records import Records
from engine.runtime.reports import ReportResult, ReportRow, run_report
from engine.runtime.reports.drill import drill_query
from engine.runtime.reports.explain import explain
from engine.runtime.reports.exported import across_title, report_export, row_kind
from engine.runtime.reports.params import ParamValue, resolve
from engine.runtime.reports.saved import SavedReports, saved_id
from engine.runtime.reports.snapshots import reads_history
from engine.web.exports import currency_format, export_format, export_response
from engine.web.i18n import N_, formatters, translations
from engine.web.pages.report_detail import detail_table
from engine.web.pages.report_form import parameter_form
from engine.web.reports import parameter_query, report_for, runnable
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

BLANK = N_("(blank)")


@dataclass(frozen=True)
class ShownRow:
    kind: str
    """group, subtotal or total"""
    level: int
    cells: tuple[str, ...]
    """The group cells (empty past the row's level), then the aggregates, as text."""
    links: tuple[str | None, ...] = ()
    """Per cell, the list of the records it stands for (None: no link): the innermost
    group cell of the row, and each aggregate."""


class ReportPages(PageFamily):
    def routes(self) -> list[Route]:
        return [
            Route("/reports", self.index, methods=["GET"]),
            Route("/reports/{report}", self.one, methods=["GET"]),
            Route("/reports/{report}/export", self.export, methods=["GET"]),
            Route("/reports/{report}/sql", self.sql, methods=["GET"]),
        ]

    async def export(self, request: Request) -> Response:
        """`/reports/<name>/export?format=csv|xlsx`: the report's rows as a file, within the
        viewer's export scope (as `GET /api/reports/<name>?format=`)."""
        viewer = require_viewer(request)
        actor = viewer.user.actor()
        report = await run_in_threadpool(report_for, self.records, actor,
                                         str(request.path_params["report"]))
        fmt = export_format(dict(request.query_params)) or "csv"
        records = self.records
        language = viewer.language
        money = currency_format(self.model.settings.currency)
        gettext = translations()[language].gettext
        given = parameter_query(request)

        def write(target: IO[bytes]) -> None:
            values = resolve(records, actor, report, given)
            result = run_report(records, actor, report, "export", values)
            columns, rows = report_export(result, language, gettext)
            export.write(fmt, target, columns, rows, money=money)

        return await export_response(fmt, report.name, write)

    async def index(self, request: Request) -> Response:
        viewer = require_viewer(request)
        reports = await run_in_threadpool(runnable, self.records, viewer.user.actor())
        return self.ui.page(request, "reports.html", {
            "reports": reports,
            "forecast_history": reads_history(self.records, viewer.user.actor())})

    async def one(self, request: Request) -> Response:
        viewer = require_viewer(request)
        report = await run_in_threadpool(report_for, self.records, viewer.user.actor(),
                                         str(request.path_params["report"]))
        given = parameter_query(request)
        if report.columns:  # a detail report: a row per record
            context = await run_in_threadpool(partial(self._detail, viewer, report, given))
            return self.ui.page(request, "report_detail.html", context,
                                status=422 if context["problem"] else 200)
        context = await run_in_threadpool(partial(self._view, viewer, report, given))
        context.update(await run_in_threadpool(self._saved, viewer, report))
        return self.ui.page(request, "report.html", context,
                            status=422 if context["problem"] else 200)

    def _saved(self, viewer: Viewer, report: Report) -> dict[str, Any]:
        """A saved report's links: edit and delete (its author, an administrator), its YAML
        (an administrator); engine/web/pages/report_builder.py."""
        report_id = saved_id(report.name)
        if report_id is None:
            return {}
        actor = viewer.user.actor()
        store = SavedReports(self.records)
        saved = store.get(actor, report_id)
        return {"saved": saved, "may_edit": store.may_edit(actor, saved),
                "may_export_yaml": self.records.policy.is_admin(actor)}

    def _detail(self, viewer: Viewer, report: Report,
                given: Mapping[str, str]) -> dict[str, Any]:
        """A detail report's page (engine/web/pages/report_detail.py), with its parameters'
        form and values from the query (a 422 with the form's message over their defaults
        when they are not valid), as a grouped report's page."""
        actor = viewer.user.actor()
        records = self.records
        values, problem = _resolved(records, actor, report, given)
        result = run_report(records, actor, report, values=values)
        settings = self.model.settings
        shown = _Shown(report, viewer.language, settings.currency, settings.time_zone)
        may_export = records.policy.scope(actor, report.entity, "export") is not Scope.NONE
        return {"report": report, "may_export": may_export, "truncated": result.truncated,
                "problem": problem, "query": _query(values),
                "form": parameter_form(records, actor, values, viewer.language),
                "may_see_sql": records.policy.is_admin(actor),
                "table": detail_table(result, viewer.language, settings.currency,
                                      settings.time_zone, shown.value)}

    def _view(self, viewer: Viewer, report: Report,
              given: Mapping[str, str]) -> dict[str, Any]:
        actor = viewer.user.actor()
        records = self.records
        values, problem = _resolved(records, actor, report, given)
        result = run_report(records, actor, report, values=values)
        shown = _Shown(report, viewer.language, self.model.settings.currency,
                       self.model.settings.time_zone)
        fiscal = self.model.settings.fiscal_year_start
        may_export = records.policy.scope(actor, report.entity, "export") is not Scope.NONE
        query = _query(values)
        return {"report": report, "entity": self.model.entity(report.entity),
                "may_export": may_export, "problem": problem,
                "across": [across_title(report, c, viewer.language) for c in result.across_values],
                "form": parameter_form(records, actor, values, viewer.language),
                "query": query, "may_see_sql": records.policy.is_admin(actor),
                "rows": [shown.row(r, _links(report, values, r, fiscal))
                         for r in result.rows],
                "totals": shown.row(result.totals,
                                    _links(report, values, result.totals, fiscal)),
                "truncated": result.truncated, "chart": _chart(report, result, viewer.language,
                                                                self.model.settings)}

    async def sql(self, request: Request) -> Response:
        """`/reports/<name>/sql`: the report's statement as the viewer runs it, with the
        parameters' values, and the database's plan for it; administrators only."""
        viewer = require_viewer(request)
        actor = viewer.user.actor()
        if not self.records.policy.is_admin(actor):
            raise Forbidden(ONLY_ADMINS)
        report = await run_in_threadpool(report_for, self.records, actor,
                                         str(request.path_params["report"]))
        given = parameter_query(request)

        def load() -> dict[str, Any]:
            values = resolve(self.records, actor, report, given)
            return {"report": report, "explained": explain(self.records, actor, report,
                                                           values),
                    "query": _query(values)}

        context = await run_in_threadpool(load)
        return self.ui.page(request, "report_sql.html", context)


ONLY_ADMINS = N_("Only administrators may see a report's SQL.")


def _query(values: Sequence[ParamValue]) -> str:
    """The parameters' values as a query string ("" for none), for the page's links."""
    out: dict[str, str] = {}
    for v in values:
        out.update(v.query())
    return urlencode(out)


def _links(report: Report, values: Sequence[ParamValue], row: ReportRow,
           fiscal: int) -> tuple[str | None, ...]:
    """The drill-down links of a row's cells (engine/runtime/reports/drill.py)."""
    def link(params: dict[str, str] | None) -> str | None:
        if params is None:
            return None
        return f"/e/{report.entity}" + (f"?{urlencode(params)}" if params else "")

    whole = link(drill_query(report, values, row, fiscal))
    cells: list[str | None] = [whole if i == row.level - 1 else None
                               for i in range(len(report.groups))]
    cells += [link(drill_query(report, values, row, fiscal, a)) if a.where or (
        a.path is not None and a.agg in ("count", "count_distinct")) else whole
        for a in report.aggregates]
    return tuple(cells)


def _resolved(records: Records, actor: Actor, report: Report, given: Mapping[str, str]
              ) -> tuple[tuple[ParamValue, ...], Invalid | None]:
    """The report's parameter values from the query; values it does not take give the
    form again with its message, over the defaults."""
    try:
        return resolve(records, actor, report, given), None
    except Invalid as exc:
        return resolve(records, actor, report, {}), exc


class _Shown:
    """Values of a report's rows as the page shows them."""

    def __init__(self, report: Report, language: str, currency: str, zone: str) -> None:
        self.report = report
        self.language = language
        self.fmt = formatters(language, currency, zone)
        self.gettext = translations()[language].gettext

    def row(self, r: ReportRow, links: tuple[str | None, ...] = ()) -> ShownRow:
        cells = [self.key(g, k, name) if i < r.level else ""
                 for i, (g, k, name) in enumerate(zip(self.report.groups, r.keys, r.names,
                                                      strict=True))]
        for across in r.across:
            cells += [self.value(a, across[a.name]) for a in self.report.aggregates]
        if self.report.sources:  # a blended report's rows are not one entity's list
            links = ()
        elif r.across and links:  # a cross-tab's column cells have no drill-down (yet)
            n = len(self.report.groups)
            links = (*links[:n], *(None,) * (len(cells) - len(links)), *links[n:])
        cells += [self.value(a, r.values[a.name]) for a in self.report.aggregates]
        return ShownRow(row_kind(self.report, r), r.level, tuple(cells), links)

    def key(self, g: ReportGroup, value: Any, name: str | None) -> str:
        if value is None:
            return self.gettext(BLANK)
        f = g.ends_on
        if g.bucket is not None:
            return str(value)
        if g.target is not None:
            return name if name else f"#{value}"
        if f is not None and f.type is FieldType.CHOICE:
            labels = dict(f.option_labels)
            return labels[value].get(self.language) if value in labels else str(value)
        if g.type is FType.BOOLEAN:
            return self.gettext("Yes") if value else self.gettext("No")
        if g.type is FType.DATE or isinstance(value, date):
            return self.fmt["date"](value)
        if g.type is FType.NUMBER:
            return self.fmt["number"](value)
        return str(value)

    def value(self, a: ReportAggregate, value: Any) -> str:
        if value is None:
            return ""
        if a.agg in ("count", "count_distinct"):
            return self.fmt["number"](value)
        if a.type is FType.NUMBER:
            kind = a.ends_on.type if a.ends_on is not None else None
            if kind is FieldType.MONEY:
                return self.fmt["money"](value)
            if kind is FieldType.PERCENT:
                return self.fmt["percent"](value)
            return self.fmt["number"](value)
        if a.type is FType.DATE:
            return self.fmt["date"](value)
        return str(value)


def _chart(report: Report, result: ReportResult, language: str, settings: Any) -> Any:
    """The report's chart above its table (engine/web/charts), from the same result."""
    from engine.web.charts import chart_svg  # the charts format values with _Shown below

    return chart_svg(report, result, language, settings.currency, zone=settings.time_zone)

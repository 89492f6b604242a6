"""What a role's dashboard (config/dashboards, engine/metadata/dashboards.py) shows a viewer.

The home page (`/`, engine/web/home.py) shows the dashboard of the viewer's roles
(Model.dashboard_of: the first, by file name, naming one of them) above their own open
records. The page itself runs no report: it lays out one placeholder per widget whose report
the viewer may run (engine/runtime/reports may_run: they read its entity and every field it
reads — a widget of any other report is left out, naming nothing), and each placeholder
fetches its widget with htmx (`hx-trigger="load"`, engine/web/pages/dashboards.py). So the
page shows at once, each widget is its own request within the query time limit
(settings.yaml `query_time_limit`), and a widget whose report runs past it shows a short
message in its place while the others show their numbers.

A widget runs its report as the viewer, like the report page: the rows they may read, in
their language.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from engine.metadata.dashboards import FORECAST_TREND, Dashboard, Widget
from engine.metadata.reports import Report, ReportAggregate
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import Forbidden
from engine.runtime.records import Records
from engine.runtime.reports import ReportTimeLimit, may_run, run_report
from engine.runtime.reports.exported import across_title
from engine.runtime.reports.params import resolve
from engine.runtime.reports.snapshots import supported
from engine.web.charts import chart_svg
from engine.web.i18n import N_
from engine.web.pages.forecast import trend_chart
from engine.web.pages.report_detail import DetailTable, detail_table
from engine.web.pages.reports import ShownRow
from engine.web.pages.reports import _Shown as Shown

TIME_LIMIT = N_("This report took too long to run here; open it to narrow it down.")
TOO_FEW_SNAPSHOTS = N_("The trend shows once two pipeline snapshots have been taken.")
FORECAST_PAGE = "/reports/forecast_history"


@dataclass(frozen=True)
class PlacedWidget:
    """A widget the viewer may run, where the page puts it."""

    index: int
    """Its position in the dashboard file (the address of its fragment)."""
    widget: Widget
    report: Report | None
    """None for the forecast trend (FORECAST_TREND), which is not a report file."""
    href: str
    """The full report."""
    src: str
    """The widget's own fragment, which runs the report."""


@dataclass(frozen=True)
class Figure:
    label: str
    value: str


@dataclass(frozen=True)
class WidgetView:
    """A widget's content after running its report as the viewer."""

    widget: Widget
    report: Report | None
    href: str
    failed: str | None = None
    """A msgid shown in place of the numbers (the report ran past the time limit)."""
    notice: str | None = None
    """A msgid shown in place of a chart that has nothing to draw yet (not a failure)."""
    rows: tuple[ShownRow, ...] = ()
    """table: the first `limit` rows (groups and subtotals)."""
    totals: ShownRow | None = None
    more: bool = False
    """table: the report has more rows than the widget shows."""
    figures: tuple[Figure, ...] = ()
    """total: each aggregate of the totals row (one, large, for a KPI)."""
    chart: str | None = None
    """chart: the rendered SVG (None: the chart falls back to its table)."""
    across: tuple[str, ...] = ()
    """table of a cross-tab: the titles of its column values (each with every aggregate)."""
    detail: DetailTable | None = None
    """table of a detail report (`columns`): a row per record, the first `limit`."""

    @property
    def shown_as(self) -> str:
        """How the widget is drawn: table, total or chart (a chart without an SVG renderer
        is drawn as its table)."""
        if self.widget.show == "chart" and self.chart is None:
            return "table"
        return self.widget.show


def placed_widgets(records: Records, actor: Actor,
                   dashboard: Dashboard) -> tuple[PlacedWidget, ...]:
    """The widgets of `dashboard` whose report `actor` may run, in the file's order."""
    placed: list[PlacedWidget] = []
    for i, w in enumerate(dashboard.widgets):
        src = f"/dashboards/{dashboard.name}/widgets/{i}"
        if w.report == FORECAST_TREND:
            if _sees_forecast(records, actor):
                placed.append(PlacedWidget(i, w, None, FORECAST_PAGE, src))
            continue
        report = records.model.report(w.report)
        if report is None or not may_run(records, actor, report):
            continue
        placed.append(PlacedWidget(i, w, report, report_href(w), src))
    return tuple(placed)


def _sees_forecast(records: Records, actor: Actor) -> bool:
    """Whether `actor` sees a forecast in the snapshots: the configuration keeps them, and
    they read opportunities and their amount."""
    if not supported(records.model):
        return False
    entity = records.model.entity("opportunity")
    policy = records.policy
    return policy.scope(actor, entity.name, "read") is not Scope.NONE and not any(
        policy.reads_hidden(actor, entity, (f,)) for f in ("amount", "weighted"))


def report_href(widget: Widget) -> str:
    """The full report, with the widget's parameter values."""
    query = f"?{urlencode(widget.parameters)}" if widget.parameters else ""
    return f"/reports/{widget.report}{query}"


def widget_view(records: Records, actor: Actor, widget: Widget, language: str) -> WidgetView:
    """Run the widget's report as `actor` (Forbidden if they may not) and shape its result;
    past the query time limit, a view saying so instead of an error."""
    model = records.model
    if widget.report == FORECAST_TREND:
        if not _sees_forecast(records, actor):
            raise Forbidden(N_("You may not see the forecast."))
        chart = trend_chart(records, actor, language)
        return WidgetView(widget, None, FORECAST_PAGE, chart=chart,
                          notice=None if chart is not None else TOO_FEW_SNAPSHOTS)
    report = model.report(widget.report)
    assert report is not None  # the loader checked the name
    href = report_href(widget)
    try:
        values = resolve(records, actor, report, dict(widget.parameters))
        result = run_report(records, actor, report, values=values)
    except ReportTimeLimit:
        return WidgetView(widget, report, href, failed=TIME_LIMIT)
    shown = Shown(report, language, model.settings.currency, model.settings.time_zone)
    if widget.show == "total":
        aggregates: tuple[ReportAggregate, ...] = tuple(
            a for a in report.aggregates
            if widget.aggregate is None or a.name == widget.aggregate)
        figures = tuple(Figure(a.label.get(language),
                               shown.value(a, _total(a, result.totals.values[a.name])))
                        for a in aggregates)
        return WidgetView(widget, report, href, figures=figures)
    chart = None
    if widget.show == "chart":  # the report's chart (engine/web/charts), else its table
        chart = chart_svg(report, result, language, model.settings.currency,
                          zone=model.settings.time_zone,
                          ident=f"widget-{widget.loc.line}-{widget.loc.col}-{report.name}")
    more = result.truncated or len(result.rows) > widget.limit
    if report.columns:  # a detail report: a row per record
        table = detail_table(result, language, model.settings.currency,
                             model.settings.time_zone, shown.value)
        table = replace(table, rows=table.rows[:widget.limit])
        return WidgetView(widget, report, href, detail=table, more=more, chart=chart)
    rows = tuple(shown.row(r) for r in result.rows[:widget.limit])
    across = tuple(across_title(report, c, language) for c in result.across_values)
    return WidgetView(widget, report, href, rows=rows, totals=shown.row(result.totals),
                      more=more, chart=chart, across=across)


def _total(a: ReportAggregate, value: Any) -> Any:
    """A figure's value: a count or sum over no rows is 0 (SQL's SUM of none is NULL); an
    average, minimum or maximum of none stays blank."""
    if value is None and a.agg in ("count", "count_distinct", "sum"):
        return Decimal(0) if a.agg == "sum" else 0
    return value

"""Report charts as server-rendered SVG (no JavaScript): bar, stacked bar, line, pie, funnel
and Gantt, drawn from a report's group rows as its table shows them.

The one entry point, stable for the report page and dashboard widgets:

    chart_svg(report, result, language, currency, *, zone="UTC", ident=None) -> Markup | None

- `report`: an engine.metadata.reports.Report; `result`: the ReportResult of running it
  (engine.runtime.reports.run_report) — the chart reads its group rows, never its subtotals
  or totals, and runs no query of its own.
- `language`, `currency` (and the organisation's time `zone`): the viewer's, for the
  labels and the values of the tooltips, formatted as the report's table formats them.
- `ident`: the id of the chart's <figure> (default `chart-<report name>`); give each chart of
  a page its own.
- Returns None when the report has no `chart:`; else a <figure class="chart"> holding the
  stylesheet link (/static/charts.css: the palette), an <svg role="img"> with a <title>
  and a <desc>, a <title> tooltip on every bar, slice and point ("label: value"), and a
  legend when there are several series. Every text is escaped (ui_templates/chart.html).
"""

from __future__ import annotations

from datetime import date
from functools import cache

from babel.dates import format_skeleton
from babel.numbers import format_compact_decimal
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from engine.metadata.labels import Label
from engine.metadata.reports import Report
from engine.runtime.reports import ReportResult
from engine.web.charts.cartesian import cartesian
from engine.web.charts.data import Categorical, Shown, chart_data
from engine.web.charts.funnel import funnel
from engine.web.charts.gantt import gantt
from engine.web.charts.pie import pie
from engine.web.charts.shapes import Drawing
from engine.web.i18n import babel_locale, translations
from engine.web.ui import TEMPLATES

__all__ = ["chart_svg", "drawing"]

STYLESHEET = "/static/charts.css"


def chart_svg(report: Report, result: ReportResult, language: str, currency: str, *,
              zone: str = "UTC", ident: str | None = None) -> Markup | None:
    """The report's chart as an SVG figure (see the module's docstring); None without one."""
    chart = report.chart
    if chart is None:
        return None
    _ = translations()[language].gettext
    drawn = drawing(report, result, language, currency, zone)
    assert drawn is not None
    x_label = (chart.x_label or next(g.label for g in report.groups
                                     if g.path == chart.x)).get(language)
    names = {a.name: a.label.get(language) for a in report.aggregates}
    if chart.y_label is not None:
        values = chart.y_label.get(language)
    elif chart.type == "gantt":
        values = _("Dates")
    else:
        values = ("、" if language.startswith("zh") else ", ").join(names[n] for n in chart.y)
    kinds = {"bar": _("Bar chart"), "stacked_bar": _("Stacked bar chart"),
             "line": _("Line chart"), "pie": _("Pie chart"), "funnel": _("Funnel chart"),
             "gantt": _("Gantt chart")}
    desc = _("%(chart)s: %(values)s by %(by)s") % {
        "chart": kinds[chart.type], "values": values, "by": x_label}
    ident = ident or f"chart-{report.name}"
    template = _environment().get_template("chart.html")
    return Markup(template.render(  # noqa: S704 - the template autoescapes every value
        drawing=drawn, chart=chart, ident=ident, title=report.label.get(language),
        desc=desc, empty=_("No data to chart.") if not drawn.shapes else "",
        stylesheet=STYLESHEET))


def drawing(report: Report, result: ReportResult, language: str, currency: str,
            zone: str = "UTC") -> Drawing | None:
    """The shapes of the report's chart (None without one): what chart_svg writes out."""
    chart = report.chart
    if chart is None:
        return None
    _ = translations()[language].gettext
    data = chart_data(report, chart, result, Shown(report, language, currency, zone))
    if isinstance(data, Categorical):
        if not data.categories:
            return Drawing(height=80)
        if chart.type == "pie":
            return pie(data)
        if chart.type == "funnel":
            return funnel(data)
        locale = babel_locale(language)
        return cartesian(chart.type, data,
                         lambda v: format_compact_decimal(v, locale=locale, fraction_digits=1),
                         _axis_label(chart.x_label, language), _axis_label(chart.y_label,
                                                                           language))
    if not data.bars:
        return Drawing(height=80)
    locale = babel_locale(language)

    def day_text(day: date, with_year: bool) -> str:
        return format_skeleton("yMMM" if with_year and day.day == 1 else
                               "yMMMd" if with_year else "MMMd", day, locale=locale)

    words = {"actual": _("Actual"), "planned": _("Planned"), "late": _("late"),
             "not_finished": _("not finished"), "finished_late": _("Finished late"),
             "unfinished": _("Not finished")}
    return gantt(data, day_text, words)


def _axis_label(label: Label | None, language: str) -> str:
    return label.get(language) if label is not None else ""


@cache
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES),
                       autoescape=select_autoescape(("html", "svg"), default=True))

"""config/dashboards/*.yaml: a home page of report widgets for some roles (docs/dashboards.md).

```yaml
dashboard: sales_manager               # the file's name
label: {en: Sales manager, zh: 销售经理}
roles: [sales_manager]                 # roles of roles.yaml this dashboard is the home of
widgets:                               # in the order shown, left to right on a 3-column grid
  - {report: sales_funnel, show: table, width: 2}
  - {report: sales_funnel, aggregate: weighted, show: total,     # a KPI: one number, large
     label: {en: Weighted pipeline, zh: 加权管道金额}}
  - {report: pipeline_by_owner, show: chart, width: 3, limit: 12}
  - {report: sales_funnel, aggregate: amount, show: total,       # the report's parameters
     parameters: {period: this_quarter, owner: me}}
```

A widget names a report of config/reports (or `forecast_history`: the trend chart of the
pipeline snapshots, docs/forecast.md) and how to show it: `table` (its rows, the first
`limit` of them, and its totals), `total` (its totals row; with `aggregate`, that one number)
or `chart`, with values for the report's `parameters` (its defaults otherwise). Every name is
checked when the configuration loads: a dashboard naming an unknown role, report, aggregate,
parameter or parameter value is refused by `crm check` at `file:line:col`.

Which dashboard a user sees: the first, in the order of the files' names, whose `roles`
holds one of the user's roles (engine/web/dashboards.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as attr
from typing import Any

from engine.metadata.errors import ConfigError, SourceLoc, did_you_mean
from engine.metadata.labels import Label
from engine.metadata.reports import Report
from engine.metadata.yamlio import PathPart, YamlDoc

SHOWS = ("table", "chart", "total")
WIDTHS = (1, 2, 3)
DEFAULT_ROWS = 10
"""Rows a table widget shows when it names no `limit`."""
FORECAST_TREND = "forecast_history"
"""Not a report file: the forecast history page's trend chart (docs/forecast.md), over the
pipeline snapshots the viewer may see."""
FORECAST_LABEL = Label.of({"en": "Forecast trend", "zh": "预测趋势"}, "Forecast trend")


@dataclass(frozen=True)
class Widget:
    """One report on a dashboard."""

    report: str
    show: str
    """table, chart or total"""
    label: Label
    """Its heading: the widget's own label, else the report's."""
    width: int
    """Columns of the dashboard's 3-column grid it spans."""
    limit: int
    """Rows a table (or a chart falling back to its table) shows at most."""
    aggregate: str | None = None
    """With show total: the one aggregate shown large (a KPI); None shows every one."""
    parameters: tuple[tuple[str, str], ...] = ()
    """Values of the report's parameters (name, value: a preset, mine, all, me or any); the
    others take their defaults."""
    loc: SourceLoc = attr(default=SourceLoc("", 0, 0), compare=False, repr=False)


@dataclass(frozen=True)
class Dashboard:
    name: str
    label: Label
    roles: tuple[str, ...]
    widgets: tuple[Widget, ...]
    file: str
    loc: SourceLoc = attr(default=SourceLoc("", 0, 0), compare=False, repr=False)


def build_dashboard(doc: YamlDoc, stem: str, reports: Sequence[Report],
                    roles: Sequence[str], errors: list[ConfigError]) -> Dashboard | None:
    """The dashboard of a schema-valid dashboard file, its roles and reports checked."""
    data: dict[str, Any] = doc.data
    before = len(errors)
    if data["dashboard"] != stem:
        errors.append(doc.error(["dashboard"], f"dashboard: {data['dashboard']!r} must be "
                                               f"the file's name ({stem!r})"))
    for i, role in enumerate(data["roles"]):
        if role not in roles:
            errors.append(doc.error(["roles", i], f"roles.{i}: no role {role!r} in roles.yaml"
                                                  f"{did_you_mean(role, roles)}"))
    by_name = {r.name: r for r in reports}
    widgets: list[Widget] = []
    for i, spec in enumerate(data["widgets"]):
        widget = _widget(doc, i, spec, by_name, errors)
        if widget is not None:
            widgets.append(widget)
    if len(errors) > before:
        return None
    name = data["dashboard"]
    return Dashboard(name=name,
                     label=Label.of(data.get("label"), name.replace("_", " ").capitalize()),
                     roles=tuple(data["roles"]), widgets=tuple(widgets), file=doc.file,
                     loc=doc.loc(["dashboard"]))


def _widget(doc: YamlDoc, i: int, spec: dict[str, Any], reports: dict[str, Report],
            errors: list[ConfigError]) -> Widget | None:
    at = f"widgets.{i}"
    if spec["report"] == FORECAST_TREND:
        return _forecast_widget(doc, i, spec, errors)
    report = reports.get(spec["report"])
    if report is None:
        errors.append(doc.error(["widgets", i, "report"],
                                f"{at}.report: no report {spec['report']!r} in config/reports"
                                f"{did_you_mean(spec['report'], reports)}"))
        return None
    if spec["show"] == "total" and not report.aggregates:
        errors.append(doc.error(["widgets", i, "show"],
                                f"{at}.show: report {report.name!r} has no aggregates to "
                                "total; show it as a table"))
        return None
    aggregate = spec.get("aggregate")
    if aggregate is not None:
        names = [a.name for a in report.aggregates]
        if spec["show"] != "total":
            errors.append(doc.error(["widgets", i, "aggregate"],
                                    f"{at}.aggregate: only a widget with show: total shows "
                                    "one aggregate"))
            return None
        if aggregate not in names:
            errors.append(doc.error(["widgets", i, "aggregate"],
                                    f"{at}.aggregate: report {report.name!r} has no aggregate "
                                    f"{aggregate!r}{did_you_mean(aggregate, names)}"))
            return None
    parameters = _parameters(doc, i, report, spec.get("parameters", {}), errors)
    if parameters is None:
        return None
    label = Label.of(spec["label"], report.label.get()) if "label" in spec else report.label
    return Widget(report=report.name, show=spec["show"], label=label,
                  width=spec.get("width", 1), limit=spec.get("limit", DEFAULT_ROWS),
                  aggregate=aggregate, parameters=parameters, loc=doc.loc(["widgets", i]))


def _forecast_widget(doc: YamlDoc, i: int, spec: dict[str, Any],
                     errors: list[ConfigError]) -> Widget | None:
    """The forecast trend of the pipeline snapshots (not a report file): a chart only."""
    for key in ("aggregate", "parameters", "limit"):
        if key in spec:
            errors.append(doc.error(["widgets", i, key],
                                    f"widgets.{i}.{key}: the {FORECAST_TREND} widget has no "
                                    f"{key}: it draws the forecast trend"))
            return None
    if spec["show"] != "chart":
        errors.append(doc.error(["widgets", i, "show"],
                                f"widgets.{i}.show: the {FORECAST_TREND} widget is a chart "
                                "(show: chart)"))
        return None
    label = Label.of(spec["label"], "Forecast trend") if "label" in spec else FORECAST_LABEL
    return Widget(report=FORECAST_TREND, show="chart", label=label,
                  width=spec.get("width", 1), limit=DEFAULT_ROWS, loc=doc.loc(["widgets", i]))


def _parameters(doc: YamlDoc, i: int, report: Report, given: dict[str, str],
                errors: list[ConfigError]) -> tuple[tuple[str, str], ...] | None:
    """The widget's values of the report's parameters, each a named value of its kind (a
    period preset; mine or all; me or any): ids and custom ranges differ between
    databases and days, so a dashboard does not name them."""
    before = len(errors)
    known = {p.name: p for p in report.parameters}
    for name, value in given.items():
        at: list[PathPart] = ["widgets", i, "parameters", name]
        p = known.get(name)
        if p is None:
            errors.append(doc.error(at, f"widgets.{i}.parameters: report {report.name!r} has "
                                        f"no parameter {name!r}{did_you_mean(name, known)}",
                                    key=True))
        elif value not in p.choices:
            errors.append(doc.error(at, f"widgets.{i}.parameters.{name}: {value!r} is not a "
                                        f"value of kind {p.kind}; one of "
                                        f"{', '.join(p.choices)}"
                                        f"{did_you_mean(value, p.choices)}"))
    return tuple(given.items()) if len(errors) == before else None

"""The `chart:` of a report file (docs/reports.md, "chart"): what the report page draws above
its table, from the report's group rows.

```yaml
chart:
  type: stacked_bar          # bar | stacked_bar | line | pie | funnel | gantt
  x: owner                   # a group of the report: one bar (slice, point) per value
  series: stage              # stacked_bar, line: the report's other group, one colour each
  y: [amount]                # aggregates of the report (numbers); pie and funnel: one
  x_label: {en: Owner, zh: 负责人}
  y_label: {en: Amount, zh: 金额}
---
chart:                       # a Gantt chart: one bar per group row, from start to end
  type: gantt
  x: stage                   # the innermost group
  start: actual_start        # aggregates giving a date (min/max of a date field)
  end: actual_end
  planned_start: planned_start   # optional, both or neither: the plan drawn under the actual
  planned_end: planned_end
```

A chart draws each group row once, so its groups are the report's groups: `x` alone, or `x`
and `series` (a Gantt chart's bars are the rows, labelled by all their groups). Checked when
the configuration loads, each mistake at its `file:line:col`.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as attr
from typing import Any

from engine.formula import FType
from engine.metadata.errors import ConfigError, SourceLoc, did_you_mean
from engine.metadata.labels import Label
from engine.metadata.yamlio import PathPart, YamlDoc

CHART_TYPES = ("bar", "stacked_bar", "line", "pie", "funnel", "gantt")
WITH_SERIES = frozenset({"stacked_bar", "line"})
ONE_Y = frozenset({"pie", "funnel"})
GANTT_KEYS = ("start", "end", "planned_start", "planned_end")
_DATES = frozenset({FType.DATE, FType.DATETIME})


@dataclass(frozen=True)
class ReportChart:
    type: str
    """bar, stacked_bar, line, pie, funnel or gantt"""
    x: str
    """A group's path: the categories (a Gantt chart: the innermost group)."""
    y: tuple[str, ...] = ()
    """Aggregate names, the values drawn (not for gantt)."""
    series: str | None = None
    """stacked_bar, line: the other group's path, a colour (a line) per value."""
    x_label: Label | None = None
    y_label: Label | None = None
    start: str | None = None
    """gantt: the aggregates giving each bar's first and last day, and optionally the plan."""
    end: str | None = None
    planned_start: str | None = None
    planned_end: str | None = None
    loc: SourceLoc = attr(default=SourceLoc("", 0, 0), compare=False, repr=False)


def build_chart(doc: YamlDoc, groups: list[str], aggregates: dict[str, FType],
                errors: list[ConfigError]) -> ReportChart | None:
    """The chart of a schema-valid report file (None without `chart:` or when it has a
    mistake, added to `errors`), given the report's group paths (outermost first) and its
    aggregates' names and types."""
    spec: dict[str, Any] | None = doc.data.get("chart")
    if spec is None:
        return None
    before = len(errors)

    def error(path: list[PathPart], message: str) -> None:
        where = ".".join(map(str, ["chart", *path]))
        errors.append(doc.error(["chart", *path], f"{where}: {message}"))

    kind = spec["type"]
    x = spec["x"]
    if x not in groups:
        error(["x"], f"{x!r} is not a group of this report{did_you_mean(x, groups)}")

    def aggregate(path: list[PathPart], name: str, types: frozenset[FType], what: str) -> None:
        if name not in aggregates:
            error(path, f"{name!r} is not an aggregate of this report"
                        f"{did_you_mean(name, aggregates)}")
        elif aggregates[name] not in types:
            error(path, f"{name!r} is {aggregates[name].value}: a {kind} chart needs {what}")

    if kind == "gantt":
        for key in ("y", "series"):
            if key in spec:
                error([key], "a gantt chart has no y or series: it draws start to end")
        for key in ("start", "end"):
            if key not in spec:
                error([], f"a gantt chart needs {key}: the aggregate giving each bar's "
                          f"{'first' if key == 'start' else 'last'} day")
        if ("planned_start" in spec) != ("planned_end" in spec):
            error([], "planned_start and planned_end go together (the plan's first and "
                      "last day)")
        for key in GANTT_KEYS:
            if key in spec:
                aggregate([key], spec[key], _DATES, "a date (min or max of a date field)")
        if x in groups and groups and x != groups[-1]:
            error(["x"], f"a gantt chart's bars are the group rows: x must be the innermost "
                         f"group ({groups[-1]!r})")
    else:
        for key in GANTT_KEYS:
            if key in spec:
                error([key], f"{key} is for a gantt chart; a {kind} chart draws y")
        ys: list[str] = spec.get("y", [])
        if not ys:
            error([], f"a {kind} chart needs y: the aggregates it draws")
        for i, name in enumerate(ys):
            aggregate(["y", i], name, frozenset({FType.NUMBER}), "a number")
        if kind in ONE_Y and len(ys) > 1:
            error(["y"], f"a {kind} chart draws one aggregate, not {len(ys)}")
        series = spec.get("series")
        if series is not None:
            if kind not in WITH_SERIES:
                error(["series"], f"a {kind} chart has no series (stacked_bar and line "
                                  "have)")
            elif series == x or series not in groups:
                error(["series"], f"{series!r} is not another group of this report"
                                  f"{did_you_mean(series, [g for g in groups if g != x])}")
            elif len(ys) > 1:
                error(["y"], "a chart with series draws one aggregate")
        drawn = {x} | ({series} if series is not None else set())
        others = [g for g in groups if g not in drawn]
        if others and x in groups:
            error([], f"the report also groups by {others[0]!r}: a chart draws each group "
                      "row once, so its x (and series) must be all the report's groups")
    if len(errors) > before:
        return None
    return ReportChart(
        type=kind, x=x, y=tuple(spec.get("y", ())), series=spec.get("series"),
        x_label=Label.of(spec["x_label"], "") if "x_label" in spec else None,
        y_label=Label.of(spec["y_label"], "") if "y_label" in spec else None,
        start=spec.get("start"), end=spec.get("end"), planned_start=spec.get("planned_start"),
        planned_end=spec.get("planned_end"), loc=doc.loc(["chart"]))

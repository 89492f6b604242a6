"""What a chart draws, read from a report's group rows (never its subtotals or totals) and
shown as the report's table shows it: the labels and formatted values of the ReportResult
the page already has — no second query.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from engine.fieldtypes import FieldType
from engine.metadata.labels import Label
from engine.metadata.report_charts import ReportChart
from engine.metadata.reports import Report, ReportAggregate, ReportGroup
from engine.runtime.reports import ReportResult, ReportRow


@dataclass(frozen=True)
class Series:
    name: str
    """The legend's text: a series group's value, or an aggregate's label."""
    values: tuple[float | None, ...]
    """One per category (None: no value, drawn as nothing)."""
    shown: tuple[str, ...]
    """The values as the table shows them (money in the viewer's currency)."""


@dataclass(frozen=True)
class Categorical:
    """bar, stacked_bar, line, pie, funnel: values per category, one series or more."""

    categories: tuple[str, ...]
    series: tuple[Series, ...]


@dataclass(frozen=True)
class GanttBar:
    label: str
    start: date | None
    end: date | None
    planned_start: date | None
    planned_end: date | None
    shown: tuple[str, str, str, str]
    """start, end, planned start, planned end as the table shows them ('' when blank)."""


@dataclass(frozen=True)
class Gantt:
    bars: tuple[GanttBar, ...]


class Shown:
    """Labels and values formatted as the report page's table formats them."""

    def __init__(self, report: Report, language: str, currency: str, zone: str) -> None:
        from engine.web.pages.reports import _Shown  # the page imports the charts

        self._shown = _Shown(report, language, currency, zone)
        self.language = language

    def text(self, label: Label) -> str:
        return label.get(self.language)

    def key(self, group: ReportGroup, row: ReportRow, index: int) -> str:
        return self._shown.key(group, row.keys[index], row.names[index])

    def value(self, aggregate: ReportAggregate, value: Any) -> str:
        return self._shown.value(aggregate, value)


def chart_data(report: Report, chart: ReportChart, result: ReportResult,
               shown: Shown) -> Categorical | Gantt:
    groups = [g.path for g in report.groups]
    rows = [r for r in result.rows if r.level == len(groups) and groups]
    aggregates = {a.name: a for a in report.aggregates}
    if chart.type == "gantt":
        return Gantt(tuple(_gantt_bar(report, chart, r, shown, aggregates) for r in rows))
    xi = groups.index(chart.x)
    x_order = _Order(report.groups[xi], inner=xi > 0)
    for r in rows:
        x_order.see(r.keys[xi], shown.key(report.groups[xi], r, xi))
    categories = x_order.ordered()
    at = {k: i for i, k in enumerate(categories)}
    labels = tuple(x_order.labels[k] for k in categories)
    if chart.series is None:
        series = []
        for name in chart.y:
            a = aggregates[name]
            values: list[float | None] = [None] * len(categories)
            texts = [""] * len(categories)
            for r in rows:
                i = at[r.keys[xi]]
                values[i] = _number(r.values[name])
                texts[i] = shown.value(a, r.values[name])
            series.append(Series(shown.text(a.label), tuple(values), tuple(texts)))
        return Categorical(labels, tuple(series))
    si = groups.index(chart.series)
    s_order = _Order(report.groups[si], inner=True)
    for r in rows:
        s_order.see(r.keys[si], shown.key(report.groups[si], r, si))
    a = aggregates[chart.y[0]]
    by_series: dict[Hashable, tuple[list[float | None], list[str]]] = {
        k: ([None] * len(categories), [""] * len(categories)) for k in s_order.ordered()}
    for r in rows:
        values_, texts_ = by_series[r.keys[si]]
        i = at[r.keys[xi]]
        values_[i] = _number(r.values[a.name])
        texts_[i] = shown.value(a, r.values[a.name])
    return Categorical(labels, tuple(
        Series(s_order.labels[k], tuple(v), tuple(t)) for k, (v, t) in by_series.items()))


class _Order:
    """A group's values in the order the chart shows them: the outer group's in the order
    the report's rows give them (its sort); an inner group's (or a series') gathered across
    the outer groups, so put in order here: choices in the order of their options, linked
    records by name, other values (date buckets, numbers, text) by value, blank last."""

    def __init__(self, group: ReportGroup, inner: bool) -> None:
        f = group.ends_on
        self.inner = inner
        self.by_name = group.target is not None
        self.options = list(f.options) if (group.bucket is None and f is not None
                                           and f.type is FieldType.CHOICE and f.options) else []
        self.labels: dict[Hashable, str] = {}

    def see(self, key: Hashable, label: str) -> None:
        self.labels.setdefault(key, label)

    def ordered(self) -> list[Hashable]:
        seen = list(self.labels)
        if not self.inner:
            return seen
        if self.options:
            rank: dict[Hashable, int] = {o: i for i, o in enumerate(self.options)}
            return sorted(seen, key=lambda k: (rank.get(k, len(rank)), seen.index(k)))
        present = [k for k in seen if k is not None]
        blank = [k for k in seen if k is None]
        try:
            if self.by_name:
                return sorted(present, key=lambda k: self.labels[k]) + blank
            return sorted(present) + blank  # type: ignore[type-var]
        except TypeError:  # values that do not compare: as the rows give them
            return seen


def _gantt_bar(report: Report, chart: ReportChart, row: ReportRow, shown: Shown,
               aggregates: dict[str, ReportAggregate]) -> GanttBar:
    label = " · ".join(shown.key(g, row, i) for i, g in enumerate(report.groups))
    names = (chart.start, chart.end, chart.planned_start, chart.planned_end)
    days = [_day(row.values[n]) if n is not None else None for n in names]
    texts = [shown.value(aggregates[n], row.values[n]) if n is not None else ""
             for n in names]
    return GanttBar(label, days[0], days[1], days[2], days[3],
                    (texts[0], texts[1], texts[2], texts[3]))


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None

"""A detail report's page (a report with `columns:`, docs/reports.md "Detail reports"): a
row per record, its columns formatted as lists format them, a totals row under the columns
of the same name when the report has aggregates (the others after the columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from engine.fieldtypes import FieldType
from engine.formula import FType
from engine.metadata.labels import Label
from engine.metadata.reports import Report, ReportColumn
from engine.runtime.reports import ReportResult, ReportRow
from engine.web.i18n import formatters, translations


@dataclass(frozen=True)
class Header:
    label: Label
    number: bool
    """Right-aligned (a number)."""


@dataclass(frozen=True)
class DetailTable:
    headers: tuple[Header, ...]
    rows: tuple[tuple[str, ...], ...]
    totals: tuple[str, ...] | None
    """The totals row (None: the report has no aggregates)."""


def detail_table(result: ReportResult, language: str, currency: str, zone: str,
                 aggregate_text: Any) -> DetailTable:
    """The table of a detail report's result; `aggregate_text(aggregate, value)` formats a
    total as the grouped report's page does."""
    report = result.report
    shown = _Cells(report, language, currency, zone)
    named = {c.name for c in report.columns}
    extra = [a for a in report.aggregates if a.name not in named]
    headers = [Header(c.label, c.type is FType.NUMBER and c.target is None)
               for c in report.columns]
    headers += [Header(a.label, True) for a in extra]
    rows = tuple(shown.row(r) + ("",) * len(extra) for r in result.rows)
    totals = None
    if report.aggregates:
        by_name = {a.name: a for a in report.aggregates}
        values = result.totals.values
        totals = tuple(aggregate_text(by_name[c.name], values[c.name]) if c.name in by_name
                       else "" for c in report.columns) \
            + tuple(aggregate_text(a, values[a.name]) for a in extra)
    return DetailTable(tuple(headers), rows, totals)


class _Cells:
    def __init__(self, report: Report, language: str, currency: str, zone: str) -> None:
        self.report = report
        self.language = language
        self.fmt = formatters(language, currency, zone)
        self.gettext = translations()[language].gettext

    def row(self, r: ReportRow) -> tuple[str, ...]:
        return tuple(self.cell(c, v, n) for c, v, n in zip(self.report.columns, r.keys,
                                                          r.names, strict=True))

    def cell(self, c: ReportColumn, value: Any, name: str | None) -> str:
        if value is None:
            return ""
        f = c.ends_on
        if c.target is not None:
            return name if name else f"#{value}"
        if f is not None and f.type is FieldType.CHOICE:
            labels = dict(f.option_labels)
            return labels[value].get(self.language) if value in labels else str(value)
        if c.type is FType.BOOLEAN:
            return self.gettext("Yes") if value else self.gettext("No")
        if isinstance(value, datetime):
            return self.fmt["datetime"](value)
        if isinstance(value, date):
            return self.fmt["date"](value)
        if c.type is FType.NUMBER:
            kind = f.type if f is not None else None
            if kind is FieldType.MONEY:
                return self.fmt["money"](value)
            if kind is FieldType.PERCENT:
                return self.fmt["percent"](value)
            return self.fmt["number"](value)
        return str(value)

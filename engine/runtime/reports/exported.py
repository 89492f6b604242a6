"""A report's rows as an export writes them (engine/runtime/export.py): the group rows,
each subtotal after its group's rows, then the total row, each marked by its kind in a
first column. Which rows: run_report(..., "export"), the caller's export scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.fieldtypes import FieldType
from engine.formula import FType
from engine.messages import N_
from engine.metadata.reports import Report
from engine.runtime.export import Column
from engine.runtime.reports.compiler import ReportResult, ReportRow
from engine.runtime.reports.crosstab import AcrossValue


def row_kind(report: Report, row: ReportRow) -> str:
    """group, subtotal (keyed on fewer groups) or total (on none); detail: a row of a
    detail report (engine/runtime/reports/detail.py)."""
    if row.level == 0:
        return "total"
    if report.columns:
        return "detail"
    return "group" if row.level == len(report.groups) else "subtotal"


KIND = "__kind"
KIND_WORDS = {"group": N_("Group"), "subtotal": N_("Subtotal"), "total": N_("Total"),
              "detail": N_("Record")}
_FTYPES = {FType.NUMBER: FieldType.DECIMAL, FType.DATE: FieldType.DATE,
           FType.DATETIME: FieldType.DATETIME, FType.BOOLEAN: FieldType.BOOLEAN}
_NUMBERS = (FieldType.MONEY, FieldType.PERCENT, FieldType.INTEGER)


def report_export(result: ReportResult, language: str, word: Callable[[str], str] = str
                  ) -> tuple[list[Column], list[dict[str, Any]]]:
    """The columns and rows of a report's export: a first column naming each row's kind
    (group, subtotal, total; `word` puts an English word in the reader's language),
    the groups (headers and choice labels in `language`; linked records by name, buckets
    as text), then the aggregates typed as their fields (money as
    money, a count as an integer)."""
    report = result.report
    columns = [Column(KIND, word(N_("Row")))]
    for c in report.columns:  # a detail report: a column per column, as groups are
        on = c.ends_on
        typed: FieldType | None = None  # a linked record's name: text
        if c.target is None:
            typed = (on.type if on is not None and on.type in (
                *_NUMBERS, FieldType.DATE, FieldType.DATETIME) else _FTYPES.get(c.type))
        columns.append(Column(c.name, c.label.get(language), typed,
                              {o: on.option_label(o, language) for o in on.options}
                              if on is not None and on.options else {}))
    for g in report.groups:
        field = g.ends_on
        kind: FieldType | None = None  # a bucket, a linked record's name: text
        if g.bucket is None and g.target is None:
            kind = (field.type if field is not None and field.type in _NUMBERS
                    else _FTYPES.get(g.type))
        options = ({o: field.option_label(o, language) for o in field.options}
                   if field is not None and field.options else {})
        columns.append(Column(g.path, g.label.get(language), kind, options))
    shown = {c.name for c in report.columns}
    heads = [(f"@{k}", across_title(report, c, language)) for k, c in
             enumerate(result.across_values)]
    if heads:
        heads.append(("", word(N_("Total"))))
    for suffix, head in heads or [("", "")]:
        for a in report.aggregates:
            if a.name in shown:  # a detail report's total under its column of the same name
                continue
            field = a.ends_on
            if a.agg in ("count", "count_distinct"):
                kind = FieldType.INTEGER
            elif field is not None and field.type in (*_NUMBERS, FieldType.DATE,
                                                       FieldType.DATETIME):
                kind = field.type
            else:
                kind = _FTYPES.get(a.type)
            title = a.label.get(language)
            columns.append(Column(a.name + suffix, f"{head} · {title}" if head else title,
                                  kind))

    def row(r: ReportRow) -> dict[str, Any]:
        out: dict[str, Any] = {KIND: word(KIND_WORDS[row_kind(report, r)])}
        keyed = [g.path for g in report.groups] or [c.name for c in report.columns]
        for path, key, name in zip(keyed, r.keys, r.names, strict=True):
            out[path] = name if name is not None and key is not None else key
        for k, cells in enumerate(r.across):
            out.update({f"{name}@{k}": value for name, value in cells.items()})
        out.update(r.values)
        return out

    return columns, [*(row(r) for r in result.rows), row(result.totals)]


def across_title(report: Report, column: AcrossValue, language: str) -> str:
    """A cross-tab column's title: a choice's label in `language`, a linked record's name
    (`#id` when the reader may not see it), a bucket or other value as text."""
    across = report.across
    assert across is not None
    field = across.ends_on
    if across.target is not None:
        return column.name if column.name else f"#{column.value}"
    if across.bucket is None and field is not None and field.options:
        return field.option_label(column.value, language)
    return str(column.value)

"""A report's `chart:` (engine/metadata/report_charts.py): the shipped charts load, and a
chart that does not fit its report is refused at file:line:col."""

from __future__ import annotations

import pytest

from engine.metadata.errors import ConfigError
from engine.metadata.loader import validate_against_schema
from engine.metadata.report_charts import ReportChart
from engine.metadata.reports import Report, build_report
from engine.metadata.yamlio import parse_yaml
from tests.conftest import shipped_model

REPORT = """\
report: deals
entity: opportunity
groups: [owner, stage]
aggregates:
  - {name: deals, agg: count}
  - {name: amount, agg: sum, field: amount}
  - {name: first_close, agg: min, field: close_date}
  - {name: last_close, agg: max, field: close_date}
chart:
"""
STACKED = REPORT + """\
  type: stacked_bar
  x: owner
  series: stage
  y: [amount]
  x_label: {en: Owner, zh: 负责人}
"""
GANTT = REPORT + """\
  type: gantt
  x: stage
  start: first_close
  end: last_close
"""


def test_the_shipped_charts_load() -> None:
    model = shipped_model()
    charts = {r.name: r.chart for r in model.reports}
    assert charts["sales_funnel"] == ReportChart(type="funnel", x="stage", y=("amount",),
                                                 x_label=charts["sales_funnel"].x_label,
                                                 y_label=charts["sales_funnel"].y_label)
    assert charts["pipeline_by_owner"] is not None
    assert (charts["pipeline_by_owner"].type, charts["pipeline_by_owner"].series) == (
        "stacked_bar", "stage")
    assert charts["lost_reasons"] is not None and charts["lost_reasons"].type == "pie"
    assert charts["service_requests_by_queue"] is not None
    gantt = charts["stage_plan_gantt"]
    assert gantt is not None and (gantt.type, gantt.x, gantt.start, gantt.end,
                                  gantt.planned_start, gantt.planned_end) == (
        "gantt", "stage", "actual_start", "actual_end", "planned_start", "planned_end")


def built(text: str) -> tuple[Report | None, list[str]]:
    """The report of a report file's text and its errors, as the loader checks it: the
    schema first, then the report's own checks."""
    doc = parse_yaml(text.encode(), "deals.yaml")
    assert not isinstance(doc, ConfigError)
    errors, _ = validate_against_schema(doc, "report")
    report = None
    if not errors:
        report = build_report(doc, "deals", list(shipped_model().entities), errors)
    return report, [str(e) for e in errors]


def test_a_chart_loads() -> None:
    report, errors = built(STACKED)
    assert errors == [] and report is not None and report.chart is not None
    assert (report.chart.x, report.chart.series, report.chart.y) == ("owner", "stage",
                                                                     ("amount",))
    assert report.chart.x_label is not None and report.chart.x_label.get("zh") == "负责人"
    report, errors = built(GANTT)
    assert errors == [] and report is not None and report.chart is not None
    assert (report.chart.start, report.chart.end) == ("first_close", "last_close")


@pytest.mark.parametrize(("text", "expected"), [
    (STACKED.replace("x: owner", "x: ownr"),
     "deals.yaml:11:6: chart.x: 'ownr' is not a group of this report (did you mean 'owner'?)"),
    (STACKED.replace("y: [amount]", "y: [amont]"),
     "deals.yaml:13:7: chart.y.0: 'amont' is not an aggregate of this report "
     "(did you mean 'amount'?)"),
    (STACKED.replace("y: [amount]", "y: [first_close]"),
     "chart.y.0: 'first_close' is date: a stacked_bar chart needs a number"),
    (STACKED.replace("  series: stage\n", ""),
     "deals.yaml:10:3: chart: the report also groups by 'stage'"),
    (STACKED.replace("stacked_bar", "pie"), "chart.series: a pie chart has no series"),
    (STACKED.replace("series: stage", "series: owner"),
     "chart.series: 'owner' is not another group of this report"),
    (STACKED.replace("y: [amount]", "y: [amount, deals]"),
     "chart.y: a chart with series draws one aggregate"),
    (REPORT.replace("[owner, stage]", "[stage]") + "  type: funnel\n  x: stage\n"
     "  y: [amount, deals]\n", "chart.y: a funnel chart draws one aggregate, not 2"),
    (STACKED.replace("  y: [amount]\n", ""), "chart: a stacked_bar chart needs y"),
    (STACKED.replace("  y: [amount]\n", "  y: [amount]\n  start: first_close\n"),
     "chart.start: start is for a gantt chart"),
    (GANTT.replace("start: first_close", "start: amount"),
     "deals.yaml:12:10: chart.start: 'amount' is number: a gantt chart needs a date"),
    (GANTT.replace("  end: last_close\n", ""), "chart: a gantt chart needs end"),
    (GANTT + "  planned_start: first_close\n",
     "chart: planned_start and planned_end go together"),
    (GANTT.replace("x: stage", "x: owner"),
     "chart.x: a gantt chart's bars are the group rows: x must be the innermost group "
     "('stage')"),
    (GANTT + "  y: [amount]\n", "chart.y: a gantt chart has no y or series"),
    (STACKED.replace("type: stacked_bar", "type: radar"), "deals.yaml:10:9:"),
    (STACKED + "  colour: red\n", "unknown key 'colour'"),
])
def test_a_chart_that_does_not_fit_is_refused_at_its_place(text: str, expected: str) -> None:
    report, errors = built(text)
    assert report is None and any(expected in e for e in errors), errors

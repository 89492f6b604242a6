"""Report charts (engine/web/charts): the SVG drawn for fixed report results — bars
proportional to their values, hostile labels escaped, blank, negative, single and many
values, pie, funnel, line and Gantt — and the report page showing the chart above its table.
"""

# ruff: noqa: RUF001 - Chinese text and date ranges, written with their own punctuation
from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.metadata.report_charts import ReportChart
from engine.metadata.reports import Report
from engine.runtime.reports import ReportResult, ReportRow
from engine.web.charts import chart_svg, drawing
from engine.web.charts.shapes import Drawing, Shape
from engine.web.charts.ticks import date_ticks, nice_ticks
from tests.access_helpers import place
from tests.conftest import Env, shipped_model
from tests.test_reports import deals
from tests.test_web_reports import browser

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script>'


def report(name: str, chart: ReportChart | None = None) -> Report:
    found = shipped_model().report(name)
    assert found is not None
    return found if chart is None else dataclasses.replace(found, chart=chart)


def funnel_result(r: Report, amounts: list[tuple[Any, Any]]) -> ReportResult:
    """sales_funnel's rows (by stage): a group row per (stage, amount), a totals row."""
    rows = tuple(ReportRow(1, (stage,), (None,), {"deals": 1, "amount": amount,
                                                    "weighted": amount})
                 for stage, amount in amounts)
    total = ReportRow(0, (None,), (None,), {"deals": len(rows), "amount": Decimal(999999),
                                            "weighted": None})
    return ReportResult(r, rows, total, False)


def bar_chart(amounts: list[tuple[Any, Any]], kind: str = "bar") -> tuple[Report, ReportResult]:
    r = report("sales_funnel", ReportChart(type=kind, x="stage", y=("amount",)))
    return r, funnel_result(r, amounts)


def heights(d: Drawing) -> list[float]:
    return [float(s.attr("height")) for s in d.of("rect", "chart-bar")]


def zero_line(d: Drawing) -> Shape:
    (zero,) = d.of("line", "chart-zero")
    return zero


def parsed(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def test_bars_are_proportional_to_their_values_from_zero() -> None:
    r, result = bar_chart([("prospecting", Decimal("1000.00")), ("proposal", Decimal("2000.00")),
                           ("won", Decimal("4000.00"))])
    d = drawing(r, result, "en", "CNY")
    assert d is not None
    one, two, four = heights(d)
    assert two == pytest.approx(2 * one, abs=0.2) and four == pytest.approx(4 * one, abs=0.2)
    zero = float(zero_line(d).attr("y1"))
    for bar in d.of("rect", "chart-bar"):  # every bar stands on the zero line
        assert float(bar.attr("y")) + float(bar.attr("height")) == pytest.approx(zero, abs=0.2)
    ticks = [s.text for s in d.of("text", "chart-tick")]
    assert ticks[0] == "0" and ticks[-1] == "4K"
    titles = [s.title for s in d.of("rect", "chart-bar")]
    assert titles == ["Prospecting: ¥1,000.00", "Proposal: ¥2,000.00", "Won: ¥4,000.00"]


def test_the_total_row_and_subtotals_are_not_drawn() -> None:
    r, result = bar_chart([("won", Decimal(5))])
    d = drawing(r, result, "en", "CNY")
    assert d is not None and [s.attr("data-value") for s in d.of("rect")] == ["5"]


def test_the_svg_is_accessible_and_in_the_viewers_language() -> None:
    r, result = bar_chart([("proposal", Decimal("1234.50")), ("won", Decimal("20000"))])
    markup = chart_svg(r, result, "zh-CN", "CNY")
    assert markup is not None
    figure = parsed(markup)
    svg = figure.find(f"{SVG}svg")
    assert svg is not None and svg.get("role") == "img"
    title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
    assert title is not None and title.text == "销售漏斗"
    assert desc is not None and desc.text == "柱状图：按阶段统计的金额"
    assert svg.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    tips = [t.text for t in svg.iter(f"{SVG}title")][1:]
    assert tips == ["方案报价: ¥1,234.50", "赢单: ¥20,000.00"]
    english = chart_svg(r, result, "en", "USD")
    assert english is not None and "Proposal: $1,234.50" in english
    assert 'href="/static/charts.css"' in english


def test_a_hostile_label_is_escaped() -> None:
    r, result = bar_chart([(HOSTILE, Decimal(1)), ("won", Decimal(2))])
    markup = chart_svg(r, result, "en", "CNY")
    assert markup is not None
    assert "<script" not in markup and "&lt;script&gt;" in markup
    texts = [t.text for t in parsed(markup).iter(f"{SVG}title")]
    assert f"{HOSTILE}: ¥1.00" in texts  # shown as text, whole, in its tooltip


def test_an_empty_result_says_so() -> None:
    r, result = bar_chart([])
    markup = chart_svg(r, result, "en", "CNY")
    assert markup is not None and "<svg" not in markup and "No data to chart." in markup
    assert "没有可绘制图表的数据。" in str(chart_svg(r, result, "zh-CN", "CNY"))
    for kind in ("pie", "funnel", "line", "stacked_bar"):
        r2, result2 = bar_chart([], kind)
        assert "No data to chart." in str(chart_svg(r2, result2, "en", "CNY"))


def test_a_report_without_a_chart_has_none() -> None:
    r, result = bar_chart([("won", Decimal(1))])
    bare = dataclasses.replace(r, chart=None)
    assert chart_svg(bare, result, "en", "CNY") is None


def test_negative_values_hang_below_the_zero_line() -> None:
    r, result = bar_chart([("proposal", Decimal(300)), ("lost", Decimal(-600)),
                           ("won", None)])
    d = drawing(r, result, "en", "CNY")
    assert d is not None
    up, down = d.of("rect", "chart-bar")  # a blank value draws no bar
    zero = float(zero_line(d).attr("y1"))
    assert float(up.attr("y")) + float(up.attr("height")) == pytest.approx(zero, abs=0.2)
    assert float(down.attr("y")) == pytest.approx(zero, abs=0.2)
    assert float(down.attr("height")) == pytest.approx(2 * float(up.attr("height")), abs=0.2)
    ticks = [s.text for s in d.of("text", "chart-tick")]
    assert ticks[0].startswith("-") and "0" in ticks


def test_one_value_and_all_zero() -> None:
    r, result = bar_chart([("won", Decimal(7))])
    d = drawing(r, result, "en", "CNY")
    assert d is not None and len(heights(d)) == 1 and heights(d)[0] > 100
    r, result = bar_chart([("won", Decimal(0)), ("lost", Decimal(0))])
    d = drawing(r, result, "en", "CNY")
    assert d is not None and heights(d) == [0.0, 0.0]


def test_many_categories_keep_every_bar_and_thin_the_labels() -> None:
    r, result = bar_chart([(f"stage {i}", Decimal(i)) for i in range(200)])
    d = drawing(r, result, "en", "CNY")
    assert d is not None
    bars = d.of("rect", "chart-bar")
    assert len(bars) == 200 and bars[-1].title == "stage 199: ¥199.00"
    labels = d.of("text", "chart-label")
    assert 0 < len(labels) <= 50 and all("rotate" in s.attr("transform") for s in labels)
    right = max(float(b.attr("x")) + float(b.attr("width")) for b in bars)
    assert right <= d.width


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-10**12, max_value=10**12), min_size=1, max_size=30))
def test_bars_follow_any_values(values: list[int]) -> None:
    r, result = bar_chart([(f"s{i}", Decimal(v)) for i, v in enumerate(values)])
    d = drawing(r, result, "en", "CNY")
    assert d is not None
    bars = d.of("rect", "chart-bar")
    assert len(bars) == len(values)
    biggest = max(abs(v) for v in values)
    if biggest == 0:
        return
    scale = max(float(b.attr("height")) for b in bars) / biggest
    for bar, v in zip(bars, values, strict=True):
        assert float(bar.attr("height")) == pytest.approx(abs(v) * scale, abs=0.3)
        top = float(bar.attr("y"))
        assert top >= 0 and top + float(bar.attr("height")) <= d.height


def test_a_stacked_bar_stacks_each_series() -> None:
    r = report("pipeline_by_owner")  # stacked_bar: x owner, series stage, y amount
    rows = (ReportRow(2, (1, "proposal"), ("Ann", None), {"deals": 1, "amount": Decimal(200),
                                                          "weighted": None}),
            ReportRow(2, (1, "prospecting"), ("Ann", None), {"deals": 1,
                                                             "amount": Decimal(100),
                                                             "weighted": None}),
            ReportRow(1, (1, None), ("Ann", None), {"deals": 2, "amount": Decimal(300),
                                                    "weighted": None}),
            ReportRow(2, (2, "proposal"), ("Bo", None), {"deals": 1, "amount": Decimal(300),
                                                         "weighted": None}))
    total = ReportRow(0, (None, None), (None, None), {"deals": 3, "amount": Decimal(600),
                                                      "weighted": None})
    d = drawing(r, ReportResult(r, rows, total, False), "en", "CNY")
    assert d is not None
    ann_prospecting, ann_proposal, bo_proposal = d.of("rect", "chart-bar")
    # the series in the order of the stage's options, each with its own colour
    assert ann_prospecting.title == "Ann · Prospecting: ¥100.00"
    assert ann_proposal.title == "Ann · Proposal: ¥200.00"
    assert "chart-c1" in ann_proposal.attr("class") and "chart-c1" in bo_proposal.attr("class")
    assert float(ann_proposal.attr("y")) + float(ann_proposal.attr("height")) == \
        pytest.approx(float(ann_prospecting.attr("y")), abs=0.2)
    assert float(ann_proposal.attr("y")) == pytest.approx(float(bo_proposal.attr("y")), abs=0.2)
    assert d.legend == [("chart-c0", "Prospecting"), ("chart-c1", "Proposal")]


def test_a_line_per_series_with_a_point_per_value() -> None:
    r, result = bar_chart([("prospecting", Decimal(1)), ("proposal", None),
                           ("won", Decimal(3)), ("lost", Decimal(2))], "line")
    d = drawing(r, result, "en", "CNY")
    assert d is not None
    (line,) = d.of("polyline")  # the blank value breaks the line: one run of two points
    assert len(line.attr("points").split()) == 2
    assert [p.title for p in d.of("circle")] == ["Prospecting: ¥1.00", "Won: ¥3.00",
                                                 "Lost: ¥2.00"]


def test_a_pie_has_a_slice_per_positive_value() -> None:
    r = report("lost_reasons")
    rows = tuple(ReportRow(1, (reason,), (None,), {"deals": 1, "amount": amount})
                 for reason, amount in [("price", Decimal(300)), ("timing", Decimal(100)),
                                        ("other", Decimal(-5)), ("budget", None)])
    total = ReportRow(0, (None,), (None,), {"deals": 4, "amount": Decimal(395)})
    d = drawing(r, ReportResult(r, rows, total, False), "en", "CNY")
    assert d is not None
    price, timing = d.of("path", "chart-slice")
    assert price.title.endswith("¥300.00 (75%)") and timing.title.endswith("¥100.00 (25%)")
    assert " 1 1 " in price.attr("d") or " 0 1 " in price.attr("d")
    assert [text for _, text in d.legend][1].endswith("(25%)")
    whole = drawing(r, ReportResult(r, rows[:1], total, False), "en", "CNY")
    assert whole is not None and len(whole.of("circle", "chart-slice")) == 1


def test_a_funnel_narrows_with_its_values() -> None:
    r = report("sales_funnel")  # funnel of amount by stage
    result = funnel_result(r, [("prospecting", Decimal(4000)), ("proposal", Decimal(2000)),
                               ("won", Decimal(0))])
    d = drawing(r, result, "en", "CNY")
    assert d is not None
    wide, narrow = d.of("rect", "chart-bar")
    assert float(narrow.attr("width")) == pytest.approx(float(wide.attr("width")) / 2, abs=0.2)
    centre = float(wide.attr("x")) + float(wide.attr("width")) / 2
    assert float(narrow.attr("x")) + float(narrow.attr("width")) / 2 == pytest.approx(centre)
    assert [s.text for s in d.of("text", "chart-value")] == ["¥4,000.00", "¥2,000.00", "¥0.00"]


def gantt_result(r: Report, stages: list[tuple[str, Any, Any, Any, Any]]) -> ReportResult:
    rows = tuple(ReportRow(2, (7, stage), ("Big deal", None),
                           {"planned_start": ps, "planned_end": pe, "actual_start": s,
                            "actual_end": e, "days_late": None})
                 for stage, ps, pe, s, e in stages)
    total = ReportRow(0, (None, None), (None, None), dict.fromkeys(
        ("planned_start", "planned_end", "actual_start", "actual_end", "days_late")))
    return ReportResult(r, rows, total, False)


def test_a_gantt_chart_draws_actual_over_plan() -> None:
    r = report("stage_plan_gantt")
    result = gantt_result(r, [
        ("prospecting", date(2026, 1, 5), date(2026, 1, 20), date(2026, 1, 5),
         date(2026, 1, 18)),
        ("qualification", date(2026, 1, 21), date(2026, 2, 10), date(2026, 1, 19),
         date(2026, 2, 20)),
        ("proposal", date(2026, 2, 11), date(2026, 3, 1), date(2026, 2, 21), None),
        ("negotiation", date(2026, 3, 2), date(2026, 3, 31), None, None)])
    d = drawing(r, result, "en", "CNY")
    assert d is not None
    plans = d.of("rect", "chart-plan")
    actual = d.of("rect", "chart-actual")
    assert len(plans) == 4 and len(actual) == 3  # negotiation has not started
    on_time, late, running = actual
    assert "chart-late" not in on_time.attr("class") and "chart-late" in late.attr("class")
    assert "chart-open" in running.attr("class")
    assert late.title == ("Big deal · Qualification · Actual: Jan 19, 2026 – Feb 20, 2026 "
                          "(late); Planned: Jan 21, 2026 – Feb 10, 2026")
    assert "not finished" in running.title
    # days left to right: the plan of a later stage starts further right
    assert [float(p.attr("x")) for p in plans] == sorted(float(p.attr("x")) for p in plans)
    assert [s.text for s in d.of("text", "chart-tick")] == ["Feb 1", "Mar 1"]
    zh = chart_svg(r, result, "zh-CN", "CNY")
    assert zh is not None and "甘特图" in zh and "实际" in zh and "计划" in zh


def test_ticks() -> None:
    assert nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(5, 5) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert nice_ticks(-7, -7)[-1] == 0.0
    assert date_ticks(date(2026, 3, 1), date(2026, 3, 4)) == [
        date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    assert date_ticks(date(2020, 1, 1), date(2026, 1, 1))[0] == date(2020, 1, 1)


def test_the_report_page_shows_the_chart_above_the_table(env: Env) -> None:
    deals(env)
    client = browser(env)
    page = client.get("/reports/pipeline_by_owner")
    assert page.status_code == 200
    text = page.text
    assert text.index('<figure class="chart chart-kind-stacked_bar"') < text.index(
        '<table class="report"')
    figure = parsed(re.search(r"<figure.*?</figure>", text, re.DOTALL)[0])  # type: ignore[index]
    tips = [t.text for t in figure.iter(f"{SVG}title")]
    assert tips == ["Pipeline by owner", "rep_a · Prospecting: ¥1,000.00",
                    "rep_a · Proposal: ¥2,000.00", "rep_b · Proposal: ¥3,000.00"]
    assert client.get("/static/charts.css").status_code == 200
    assert "No data to chart." in client.get("/reports/stage_plan_gantt").text
    env.users.set_locale(env.admin.id, "zh-CN")
    zh = client.get("/reports/sales_funnel").text
    assert "漏斗图：按阶段统计的金额" in zh and "潜在: ¥1,000.00" in zh


def test_the_stage_plan_gantt_over_real_records(env: Env) -> None:
    account = place(env, "account", {"name": "Acme"})["id"]
    deal = place(env, "opportunity", {"name": "Acme <renewal>", "account": account,
                                      "amount": "1000", "stage": "proposal"})["id"]
    for stage, ps, pe, s, e in [
            ("prospecting", "2026-01-05", "2026-01-20", "2026-01-05", "2026-01-25"),
            ("qualification", "2026-01-21", "2026-02-10", "2026-01-26", None)]:
        data = {"opportunity": deal, "stage": stage, "planned_start": ps, "planned_end": pe,
                "actual_start": s}
        if e:
            data["actual_end"] = e
        place(env, "opportunity_stage_plan", data)
    page = browser(env).get("/reports/stage_plan_gantt")
    assert page.status_code == 200
    figure = parsed(re.search(r"<figure.*?</figure>", page.text, re.DOTALL)[0])  # type: ignore[index]
    tips = [t.text for t in figure.iter(f"{SVG}title")]
    assert tips[0] == "Stage plan vs actual"
    assert ("Acme <renewal> · Prospecting · Actual: Jan 5, 2026 – Jan 25, 2026 (late); "
            "Planned: Jan 5, 2026 – Jan 20, 2026") in tips
    assert any(t.startswith("Acme <renewal> · Qualification · Actual: Jan 26, 2026 – (not "
                            "finished)") for t in tips)
    assert "Acme &lt;renewal&gt;" in page.text and "<renewal>" not in page.text


def test_an_inner_x_is_put_in_order_across_the_outer_groups() -> None:
    """A line per owner over the stages (groups [owner, stage], x the inner stage): the
    stages in the order of their options though each owner's rows list only theirs, the
    owners (linked users) by name."""
    r = report("pipeline_by_owner", ReportChart(type="line", x="stage", y=("amount",),
                                                series="owner"))
    rows = (ReportRow(2, (1, "proposal"), ("Ann", None), {"amount": Decimal(2)}),
            ReportRow(2, (2, "prospecting"), ("Bo", None), {"amount": Decimal(1)}),
            ReportRow(2, (3, "negotiation"), ("Al", None), {"amount": Decimal(3)}))
    total = ReportRow(0, (None, None), (None, None), {"amount": Decimal(6)})
    d = drawing(r, ReportResult(r, rows, total, False), "en", "CNY")
    assert d is not None
    assert [s.text for s in d.of("text", "chart-label")] == [
        "Prospecting", "Proposal", "Negotiation"]
    assert [text for _, text in d.legend] == ["Al", "Ann", "Bo"]  # owners by name

"""A Gantt chart: a row per group row (an opportunity's stage), the actual dates as a bar
from start to end over the planned dates drawn thinner beneath it; a stage that ended after
its planned end is marked late, one started and not finished runs to the chart's last day
and is marked open. Dates run left to right with calendar ticks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

from engine.web.charts.data import Gantt
from engine.web.charts.shapes import WIDTH, Drawing, fit
from engine.web.charts.ticks import date_ticks

LABELS = 200
RIGHT = 16
TOP = 24
ROW = 28
DASH = "\u2013"  # an en dash between a bar's first and last day


def gantt(data: Gantt, day_text: Callable[[date, bool], str],
          words: Mapping[str, str]) -> Drawing:
    """`day_text(day, with_year)` writes a tick; `words` are the tooltip's and legend's
    words in the viewer's language (actual, planned, late, not_finished, finished_late,
    unfinished)."""
    days = [x for b in data.bars for x in (b.start, b.end, b.planned_start, b.planned_end)
            if x is not None]
    d = Drawing(height=TOP + ROW * len(data.bars) + 8)
    if not days:
        return d
    lo, hi = min(days), max(days)
    span = max((hi - lo).days, 1)
    area = WIDTH - LABELS - RIGHT

    def x(day: date) -> float:
        return LABELS + (day - lo).days / span * area

    def x_end(day: date) -> float:  # the end of the day: a one-day stage has a width
        return LABELS + min((day - lo).days + 1, span) / span * area if span else x(day)

    ticks = date_ticks(lo, hi)
    with_year = lo.year != hi.year or len(ticks) < 2
    for t in ticks:
        d.add("line", x1=x(t), x2=x(t), y1=TOP - 4, y2=d.height - 4, class_="chart-grid")
        d.add("text", day_text(t, with_year), x=x(t), y=TOP - 8, text_anchor="middle",
              class_="chart-tick")
    for i, b in enumerate(data.bars):
        top = TOP + ROW * i
        d.add("text", fit(b.label, LABELS - 12), x=LABELS - 8, y=top + ROW / 2 + 4,
              text_anchor="end", class_="chart-label")
        planned = ""
        if b.planned_start is not None and b.planned_end is not None:
            planned = f"{words['planned']}: {b.shown[2]} {DASH} {b.shown[3]}"
            left = x(b.planned_start)
            d.add("rect", title=f"{b.label} · {planned}", x=left, y=top + 17,
                  width=max(x_end(b.planned_end) - left, 2), height=6, class_="chart-plan")
        if b.start is None:
            continue
        end = b.end if b.end is not None else hi
        css = "chart-actual"
        if b.end is None:
            css += " chart-open"
            actual = f"{words['actual']}: {b.shown[0]} {DASH} ({words['not_finished']})"
        else:
            actual = f"{words['actual']}: {b.shown[0]} {DASH} {b.shown[1]}"
        if b.end is not None and b.planned_end is not None and b.end > b.planned_end:
            css += " chart-late"
            actual += f" ({words['late']})"
        left = x(b.start)
        title = f"{b.label} · {actual}" + (f"; {planned}" if planned else "")
        d.add("rect", title=title, x=left, y=top + 4, width=max(x_end(end) - left, 2),
              height=12, class_=css)
    d.legend = [("chart-actual", words["actual"]), ("chart-plan", words["planned"]),
                ("chart-actual chart-late", words["finished_late"]),
                ("chart-actual chart-open", words["unfinished"])]
    return d

"""A funnel chart: a centred bar per category (stage), top to bottom in the report's order,
its width proportional to its value; the label at the left, the value at the right."""

from __future__ import annotations

from engine.web.charts.data import Categorical
from engine.web.charts.shapes import WIDTH, Drawing, colour, fit

LABELS = 150
VALUES = 130
ROW = 36


def funnel(data: Categorical) -> Drawing:
    s = data.series[0]
    n = len(data.categories)
    d = Drawing(height=max(ROW * n + 8, 48))
    widest = max([v for v in s.values if v is not None and v > 0], default=0.0)
    area = WIDTH - LABELS - VALUES
    centre = LABELS + area / 2
    for i, name in enumerate(data.categories):
        v = s.values[i]
        top = 4 + ROW * i
        d.add("text", fit(name, LABELS - 12), x=LABELS - 8, y=top + ROW / 2 + 4,
              text_anchor="end", class_="chart-label")
        d.add("text", s.shown[i], x=WIDTH - 4, y=top + ROW / 2 + 4, text_anchor="end",
              class_="chart-value")
        if v is None or v <= 0 or widest <= 0:
            continue
        width = max(area * v / widest, 1.0)
        d.add("rect", title=f"{name}: {s.shown[i]}", x=centre - width / 2, y=top + 2,
              width=width, height=ROW - 4, class_=f"chart-bar {colour(i)}",
              data_value=f"{v:g}")
    return d

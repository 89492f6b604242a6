"""A pie chart: a slice per category, its angle proportional to its share of the total.
Values below zero or blank have no slice (a share of a whole cannot be negative); the legend
lists each slice with its value and share."""

from __future__ import annotations

import math

from engine.web.charts.data import Categorical
from engine.web.charts.shapes import Drawing, colour

SIZE = 320
R = 140


def pie(data: Categorical) -> Drawing:
    d = Drawing(width=SIZE, height=SIZE)
    s = data.series[0]
    drawn = [(i, v) for i, v in enumerate(s.values) if v is not None and v > 0]
    total = sum(v for _, v in drawn)
    c = SIZE / 2
    angle = -math.pi / 2  # from twelve o'clock, clockwise
    for k, (i, v) in enumerate(drawn):
        share = v / total
        title = f"{data.categories[i]}: {s.shown[i]} ({share:.0%})"
        css = f"chart-slice {colour(k)}"
        d.legend.append((colour(k), f"{data.categories[i]}: {s.shown[i]} ({share:.0%})"))
        if share >= 1 - 1e-9:
            d.add("circle", title=title, cx=c, cy=c, r=R, class_=css, data_value=f"{v:g}")
            continue
        end = angle + share * 2 * math.pi
        x0, y0 = c + R * math.cos(angle), c + R * math.sin(angle)
        x1, y1 = c + R * math.cos(end), c + R * math.sin(end)
        large = 1 if share > 0.5 else 0
        d.add("path", title=title, d=f"M{c:.1f},{c:.1f} L{x0:.2f},{y0:.2f} "
                                       f"A{R},{R} 0 {large} 1 {x1:.2f},{y1:.2f} Z",
              class_=css, data_value=f"{v:g}")
        angle = end
    return d

"""Bar, stacked bar and line charts: categories along the bottom, a value axis with round
ticks at the left (zero included, so a bar's height is proportional to its value), a bar (a
point) per category and series."""

from __future__ import annotations

from collections.abc import Callable

from engine.web.charts.data import Categorical
from engine.web.charts.shapes import HEIGHT, WIDTH, Drawing, colour, fit
from engine.web.charts.ticks import nice_ticks

LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 64


def cartesian(kind: str, data: Categorical, tick_text: Callable[[float], str],
              x_label: str, y_label: str) -> Drawing:
    """`kind` bar, stacked_bar or line."""
    d = Drawing()
    n = len(data.categories)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    lo, hi = _extent(kind, data)
    ticks = nice_ticks(lo, hi)
    t0, t1 = ticks[0], ticks[-1]

    def y(v: float) -> float:
        return TOP + (t1 - v) / (t1 - t0) * plot_h

    for t in ticks:
        d.add("line", x1=LEFT, x2=WIDTH - RIGHT, y1=y(t), y2=y(t),
              class_="chart-zero" if t == 0 else "chart-grid")
        d.add("text", tick_text(t), x=LEFT - 6, y=y(t) + 4, text_anchor="end",
              class_="chart-tick")
    band = plot_w / max(n, 1)
    rotate = band < 56
    every = max(1, round(n / 40)) if n > 40 else 1
    for i, name in enumerate(data.categories):
        cx = LEFT + band * (i + 0.5)
        if i % every:
            continue
        if rotate:
            d.add("text", fit(name, BOTTOM - 8), x=cx, y=HEIGHT - BOTTOM + 14,
                  text_anchor="end", transform=f"rotate(-40 {cx:.1f} {HEIGHT - BOTTOM + 14})",
                  class_="chart-label")
        else:
            d.add("text", fit(name, band - 4), x=cx, y=HEIGHT - BOTTOM + 18,
                  text_anchor="middle", class_="chart-label")
    if kind == "line":
        _lines(d, data, band, y)
    else:
        _bars(d, kind, data, band, y)
    if y_label:
        d.add("text", fit(y_label, plot_h), x=14, y=TOP + plot_h / 2, text_anchor="middle",
              transform=f"rotate(-90 14 {TOP + plot_h / 2:.1f})", class_="chart-axis-label")
    if x_label:
        d.add("text", fit(x_label, plot_w), x=LEFT + plot_w / 2, y=HEIGHT - 4,
              text_anchor="middle", class_="chart-axis-label")
    if len(data.series) > 1:
        d.legend = [(colour(j), s.name) for j, s in enumerate(data.series)]
    return d


def _extent(kind: str, data: Categorical) -> tuple[float, float]:
    if kind == "stacked_bar":
        ups = [sum(v for s in data.series if (v := s.values[i]) is not None and v > 0)
               for i in range(len(data.categories))]
        downs = [sum(v for s in data.series if (v := s.values[i]) is not None and v < 0)
                 for i in range(len(data.categories))]
        return min([0.0, *downs]), max([0.0, *ups])
    values = [v for s in data.series for v in s.values if v is not None]
    return min([0.0, *values]), max([0.0, *values])


def _title(data: Categorical, i: int, j: int) -> str:
    s = data.series[j]
    name = data.categories[i] if len(data.series) == 1 else f"{data.categories[i]} · {s.name}"
    return f"{name}: {s.shown[i]}"


def _bars(d: Drawing, kind: str, data: Categorical, band: float,
          y: Callable[[float], float]) -> None:
    k = len(data.series)
    inner = min(band * 0.7, 56.0 * (1 if kind == "stacked_bar" else max(k, 1)))
    width = inner if kind == "stacked_bar" else inner / max(k, 1)
    for i in range(len(data.categories)):
        left = LEFT + band * i + (band - inner) / 2
        up = down = 0.0
        for j, s in enumerate(data.series):
            v = s.values[i]
            if v is None:
                continue
            if kind == "stacked_bar":
                base = up if v >= 0 else down
                top, bottom = (base + v, base) if v >= 0 else (base, base + v)
                if v >= 0:
                    up += v
                else:
                    down += v
                x = left
            else:
                top, bottom = max(v, 0.0), min(v, 0.0)
                x = left + width * j
            d.add("rect", title=_title(data, i, j), x=x, y=y(top), width=max(width - 1, 1),
                  height=y(bottom) - y(top), class_=f"chart-bar {colour(j)}",
                  data_value=f"{v:g}")


def _lines(d: Drawing, data: Categorical, band: float, y: Callable[[float], float]) -> None:
    for j, s in enumerate(data.series):
        run: list[str] = []
        points = []
        for i, v in enumerate(s.values):
            if v is None:
                points.append(run)
                run = []
                continue
            run.append(f"{LEFT + band * (i + 0.5):.1f},{y(v):.1f}")
        points.append(run)
        for part in points:
            if len(part) > 1:
                d.add("polyline", points=" ".join(part), class_=f"chart-line {colour(j)}")
        for i, v in enumerate(s.values):
            if v is not None:
                d.add("circle", title=_title(data, i, j), cx=LEFT + band * (i + 0.5), cy=y(v),
                      r=4, class_=f"chart-point {colour(j)}", data_value=f"{v:g}")

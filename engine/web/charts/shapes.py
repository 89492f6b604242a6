"""The SVG a chart is drawn with: shapes (an element, its attributes, its text and its
tooltip) that ui_templates/chart.html writes out, escaping every text and attribute."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from dataclasses import field as attr

WIDTH = 640
HEIGHT = 320
PALETTE_SIZE = 8
"""Colours chart-c0 … chart-c7 of static/charts.css; series beyond them cycle."""


@dataclass(frozen=True)
class Shape:
    tag: str
    """rect, path, line, polyline, circle or text"""
    attrs: tuple[tuple[str, str], ...]
    text: str = ""
    title: str = ""
    """The tooltip (an SVG <title>): the label and the formatted value."""

    def attr(self, name: str) -> str:
        return dict(self.attrs)[name]


@dataclass
class Drawing:
    width: int = WIDTH
    height: int = HEIGHT
    shapes: list[Shape] = attr(default_factory=list)
    legend: list[tuple[str, str]] = attr(default_factory=list)
    """(colour class, text) per series, written under the chart."""

    def add(self, tag: str, text: str = "", title: str = "", **attrs: float | str) -> Shape:
        shape = Shape(tag, tuple((k.rstrip("_").replace("_", "-"), _num(v))
                                 for k, v in attrs.items()), text, title)
        self.shapes.append(shape)
        return shape

    def of(self, tag: str, css: str | None = None) -> list[Shape]:
        """The shapes of a kind (and class): what tests look at."""
        return [s for s in self.shapes if s.tag == tag
                and (css is None or css in dict(s.attrs).get("class", "").split())]


def colour(i: int) -> str:
    return f"chart-c{i % PALETTE_SIZE}"


def text_width(text: str, size: float = 12) -> float:
    """About how wide `text` is written at `size` px: a Chinese character about a square, a
    Latin letter a bit over half."""
    wide = sum(1 for c in text if unicodedata.east_asian_width(c) in ("W", "F"))
    return (wide + (len(text) - wide) * 0.6) * size


def fit(text: str, width: float, size: float = 12) -> str:
    """`text`, cut with … to about `width` px."""
    if text_width(text, size) <= width:
        return text
    out = text
    while out and text_width(out + "…", size) > width:
        out = out[:-1]
    return out + "…"


def _num(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.1f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))

"""The forecast history page (`/reports/forecast_history`; docs/forecast.md): what the
pipeline snapshots forecast, and how the pipeline moved between two of them.

- "What did we forecast for month M as of date D": for the chosen close month, the weighted
  amount per forecast category as of each snapshot;
- the trend: the weighted forecast of each close month as of each snapshot;
- the waterfall between two snapshots (default: the last two) for a close-date period, each
  step linked to its deals (`/reports/forecast_history/deals?step=…`);
- a button to take a snapshot now, for those who may (POST, CSRF like every form).

Everything within the viewer's read scope of opportunities as each snapshot stored it
(engine/runtime/reports/snapshots.py). A viewer from whom the amount is hidden sees the
snapshots and their deal counts, and no amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache, partial
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_skeleton
from babel.numbers import format_compact_decimal
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.runtime.access import Actor
from engine.runtime.errors import Forbidden
from engine.runtime.records import Records
from engine.runtime.reports.snapshots import (
    ForecastCell,
    Snapshot,
    list_snapshots,
    may_take,
    supported,
    take,
)
from engine.runtime.reports.waterfall import (
    MEASURES,
    deal_names,
    step_deals,
    waterfall,
)
from engine.web.auth import read_form
from engine.web.charts.cartesian import cartesian
from engine.web.charts.data import Categorical, Series
from engine.web.i18n import N_, babel_locale, formatters, translations
from engine.web.pipeline import WaterfallAsk, history, waterfall_ask
from engine.web.ui import TEMPLATES, PageFamily
from engine.web.viewer import Viewer, require_viewer

PAGE = "/reports/forecast_history"
STEP_LABELS = {
    "start": N_("Starting pipeline"),
    "new": N_("New deals"),
    "increased": N_("Amounts raised"),
    "decreased": N_("Amounts lowered"),
    "won": N_("Won"),
    "lost": N_("Lost"),
    "removed": N_("Deleted or reopened"),
    "moved_in": N_("Moved into the period"),
    "moved_out": N_("Moved out of the period"),
    "transferred_in": N_("Handed to you"),
    "transferred_out": N_("Handed to others"),
    "end": N_("Ending pipeline"),
}
MEASURE_LABELS = {"amount": N_("Amount"), "weighted": N_("Weighted amount")}
KIND_LABELS = {"scheduled": N_("Scheduled"), "on_demand": N_("On demand")}
NO_DATE = N_("No close date")
TREND_MONTHS = 18


@dataclass(frozen=True)
class ShownStep:
    step: str
    label: str
    deals: int
    value: str
    link: str


class ForecastPages(PageFamily):
    def routes(self) -> list[Route]:
        """Before the report pages (`/reports/{report}` would take these paths)."""
        return [
            Route(PAGE, self.page, methods=["GET"]),
            Route(f"{PAGE}/snapshots", self.take, methods=["POST"]),
            Route(f"{PAGE}/deals", self.deals, methods=["GET"]),
        ]

    async def page(self, request: Request) -> Response:
        viewer = require_viewer(request)
        params = dict(request.query_params)
        context = await run_in_threadpool(partial(self._view, viewer, params))
        return self.ui.page(request, "forecast_history.html", context)

    async def take(self, request: Request) -> Response:
        viewer = require_viewer(request)
        await read_form(request)
        await run_in_threadpool(partial(take, self.records, viewer.user.actor()))
        return RedirectResponse(PAGE, status_code=303)

    async def deals(self, request: Request) -> Response:
        viewer = require_viewer(request)
        params = dict(request.query_params)
        context = await run_in_threadpool(partial(self._deals, viewer, params))
        return self.ui.page(request, "forecast_deals.html", context)

    # -- the views -------------------------------------------------------------------------

    def _shown(self, viewer: Viewer) -> tuple[dict[str, Any], Any]:
        settings = self.model.settings
        return formatters(viewer.language, settings.currency, settings.time_zone), \
            translations()[viewer.language].gettext

    def _view(self, viewer: Viewer, params: dict[str, str]) -> dict[str, Any]:
        if not supported(self.model):
            raise Forbidden(N_("There are no pipeline snapshots in this configuration."))
        actor = viewer.user.actor()
        fmt, gettext = self._shown(viewer)
        h = _history(self.records, actor, viewer.language, params.get("month"))
        snapshots, cells, hidden = h.snapshots, h.cells, h.hidden
        month, months, categories = h.month, h.months, h.categories
        when = {s.id: fmt["datetime"](s.taken_at) for s in snapshots}
        context: dict[str, Any] = {
            "snapshots": [(s, when[s.id], gettext(KIND_LABELS.get(s.kind, s.kind)))
                          for s in snapshots],
            "may_take": may_take(self.records, actor), "hidden": hidden,
            "month": month, "months": months, "categories": categories,
            "by_category": _by_category(snapshots, cells, month, [c for c, _ in categories],
                                        fmt["money"]),
            "trend_months": _trend_months(months, month),
            "waterfall": None, "waterfall_error": None,
            "measures": [(m, gettext(MEASURE_LABELS[m])) for m in MEASURES],
        }
        context["chart"] = _trend_chart(snapshots, cells, month, categories, viewer.language,
                                        fmt["money"], gettext)
        context["trend"] = _trend(snapshots, cells, context["trend_months"], fmt["money"])
        context["trend_months_shown"] = [m if m else gettext(NO_DATE)
                                         for m in context["trend_months"]]
        if hidden or (len(snapshots) < 2 and not (params.get("from") and params.get("to"))):
            return context
        ask = waterfall_ask(self.records, actor, params)
        w = waterfall(self.records, actor, ask.start, ask.end, period=ask.period,
                      measure=ask.measure)
        base = {"from": ask.start, "to": ask.end, "measure": ask.measure,
                **({"period": ask.period_text} if ask.period_text else {})}

        def shown(step: str, deals: int, value: Any) -> ShownStep:
            link = f"{PAGE}/deals?" + urlencode({**base, "step": step})
            return ShownStep(step, gettext(STEP_LABELS[step]), deals, fmt["money"](value), link)

        context["waterfall"] = {
            "ask": ask,
            "start": shown("start", w.starting.deals, w.starting.value),
            "steps": [shown(s.step, s.deals, s.value) for s in w.steps if s.deals],
            "end": shown("end", w.ending.deals, w.ending.value),
            "from_when": fmt["datetime"](w.start.taken_at),
            "to_when": fmt["datetime"](w.end.taken_at),
        }
        return context

    def _deals(self, viewer: Viewer, params: dict[str, str]) -> dict[str, Any]:
        actor = viewer.user.actor()
        fmt, gettext = self._shown(viewer)
        ask: WaterfallAsk = waterfall_ask(self.records, actor, params)
        step = ask.step or "start"
        found, more = step_deals(self.records, actor, ask.start, ask.end, step,
                                 period=ask.period, measure=ask.measure)
        names = deal_names(self.records, actor, [d.id for d in found])

        def money(value: Any) -> str:
            return "" if value is None else str(fmt["money"](value))

        rows = [{"id": d.id, "name": names.get(d.id), "before": money(d.before),
                 "after": money(d.after), "change": money(d.change)} for d in found]
        back = PAGE + "?" + urlencode({"from": ask.start, "to": ask.end,
                                       "measure": ask.measure,
                                       **({"period": ask.period_text}
                                          if ask.period_text else {})})
        return {"step_label": gettext(STEP_LABELS.get(step, step)), "rows": rows,
                "truncated": more, "back": back, "ask": ask}


@dataclass(frozen=True)
class _History:
    """The latest snapshots as the viewer may see them, and the close month shown."""

    snapshots: list[Snapshot]
    cells: list[ForecastCell]
    hidden: bool
    """Amounts are hidden from the viewer: the snapshots without their forecast."""
    month: str
    months: list[str]
    categories: list[tuple[str, str]]
    """The forecast categories present, in the field's order, with their labels."""


def _history(records: Records, actor: Actor, language: str, month: str | None) -> _History:
    hidden = False
    try:
        snapshots, cells = history(records, actor, 12)
    except Forbidden:
        # amounts hidden from the viewer (a viewer who may not read deals at all is
        # refused by the listing itself)
        snapshots, cells, hidden = list_snapshots(records, actor, 12), [], True
    today = records.clock().astimezone(records.model.settings.zone)
    months = sorted({c.month for c in cells if c.month is not None})
    category_field = records.model.entity("opportunity").field("forecast_category")
    labels = dict(category_field.option_labels)
    present = {c.category for c in cells}
    categories = [(c, labels[c].get(language) if c in labels else c)
                  for c in category_field.options if c in present]
    return _History(snapshots, cells, hidden, month or _nearest(months, f"{today:%Y-%m}"),
                    months, categories)


def trend_chart(records: Records, actor: Actor, language: str) -> Markup | None:
    """The forecast page's trend chart — the nearest close month's weighted forecast per
    category over the latest snapshots — for a dashboard widget (engine/web/dashboards.py);
    None with fewer than two snapshots or amounts hidden from `actor`. Forbidden when the
    configuration keeps no snapshots or `actor` may not read opportunities."""
    if not supported(records.model):
        raise Forbidden(N_("There are no pipeline snapshots in this configuration."))
    h = _history(records, actor, language, None)
    if h.hidden:
        return None
    settings = records.model.settings
    fmt = formatters(language, settings.currency, settings.time_zone)
    return _trend_chart(h.snapshots, h.cells, h.month, h.categories, language, fmt["money"],
                        translations()[language].gettext)


def _nearest(months: list[str], current: str) -> str:
    """The current month when some deal closes in it or later: the first such; else the
    last month there is (or the current one, with none)."""
    later = [m for m in months if m >= current]
    if later:
        return later[0]
    return months[-1] if months else current


def _trend_months(months: list[str], month: str) -> list[str]:
    """At most TREND_MONTHS close months around the chosen one."""
    if len(months) <= TREND_MONTHS:
        return months
    at = months.index(month) if month in months else 0
    start = max(0, min(at - TREND_MONTHS // 3, len(months) - TREND_MONTHS))
    return months[start:start + TREND_MONTHS]


def _by_category(snapshots: list[Snapshot], cells: list[ForecastCell], month: str,
                 categories: list[str], money: Any) -> list[dict[str, Any]]:
    """Per snapshot (newest first): the weighted forecast of `month` per category, and
    its total."""
    rows = []
    for s in snapshots:
        mine = [c for c in cells if c.snapshot_id == s.id and c.month == month]
        per = {c.category: c.weighted for c in mine}
        total = sum((c.weighted for c in mine), start=_zero())
        rows.append({"snapshot": s, "cells": [money(per[c]) if c in per else ""
                                              for c in categories],
                     "total": money(total), "deals": sum(c.deals for c in mine)})
    return rows


def _trend(snapshots: list[Snapshot], cells: list[ForecastCell], months: list[str],
           money: Any) -> list[dict[str, Any]]:
    """Per snapshot (newest first): the weighted forecast of each close month."""
    rows = []
    for s in snapshots:
        per: dict[str, Any] = {}
        for c in cells:
            if c.snapshot_id == s.id and c.month is not None:
                per[c.month] = per.get(c.month, _zero()) + c.weighted
        rows.append({"snapshot": s, "cells": [money(per[m]) if m in per else ""
                                              for m in months]})
    return rows


def _zero() -> Decimal:
    return Decimal("0.00")


@dataclass(frozen=True)
class _LineChart:
    type: str = "line"


def _trend_chart(snapshots: list[Snapshot], cells: list[ForecastCell], month: str,
                 categories: list[tuple[str, str]], language: str, money: Any,
                 gettext: Any) -> Markup | None:
    """The forecast of `month` over the snapshots, oldest first: a line per forecast
    category and one for the total (engine/web/charts: server-rendered SVG, no
    JavaScript). None with fewer than two snapshots."""
    if len(snapshots) < 2:
        return None
    ordered = list(reversed(snapshots))
    locale = babel_locale(language)
    days = tuple(format_skeleton("MMMd", s.taken_at, locale=locale) for s in ordered)

    def line(name: str, keep: Any) -> Series:
        values = []
        for s in ordered:
            mine = [c.weighted for c in cells
                    if c.snapshot_id == s.id and c.month == month and keep(c)]
            values.append(sum(mine, start=_zero()))
        return Series(name, tuple(float(v) for v in values),
                      tuple(str(money(v)) for v in values))

    series = [line(text, lambda c, key=key: c.category == key) for key, text in categories]
    series.append(line(gettext("Total"), lambda c: True))
    drawn = cartesian("line", Categorical(days, tuple(series)),
                      lambda v: format_compact_decimal(v, locale=locale, fraction_digits=1),
                      gettext("Snapshot"), gettext("Weighted amount"))
    title = gettext("Forecast for %(month)s as of each snapshot") % {"month": month}
    return Markup(_charts().get_template("chart.html").render(  # noqa: S704 - autoescaped
        drawing=drawn, chart=_LineChart(), ident="forecast-trend-chart", title=title,
        desc=title, empty="", stylesheet="/static/charts.css"))


@cache
def _charts() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES),
                       autoescape=select_autoescape(("html", "svg"), default=True))

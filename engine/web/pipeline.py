"""Pipeline snapshots, the forecast history and the waterfall in the JSON API
(engine/runtime/reports/snapshots.py, waterfall.py; docs/forecast.md, docs/api.md):

- `GET /api/pipeline/snapshots`: the snapshots, newest first, each with the number of its
  deals the caller may see; `may_take`: whether the caller may take one.
- `POST /api/pipeline/snapshots`: take one now (administrators, and readers of more than
  their own opportunities) → 201.
- `GET /api/pipeline/forecast?limit=N`: what the latest N snapshots (default 12) forecast,
  per close month and forecast category.
- `GET /api/pipeline/waterfall?from=<id>&to=<id>&period=2027-03&measure=amount|weighted`:
  the waterfall between two snapshots (default: the last two); `&step=won` adds that step's
  deals.

Everything within the caller's read scope of opportunities, applied to the owner and
department each snapshot stored; a hidden amount is a 403 naming no field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest, NotFound
from engine.runtime.records import Records
from engine.runtime.reports.snapshots import (
    ForecastCell,
    Snapshot,
    forecast_history,
    list_snapshots,
    may_take,
    period_range,
    take,
)
from engine.runtime.reports.waterfall import (
    MEASURES,
    STEPS,
    StepDeal,
    Waterfall,
    step_deals,
    waterfall,
)

ActorOf = Callable[[Request], Awaitable[Actor]]
HISTORY_DEFAULT = 12
HISTORY_MAX = 200


@dataclass(frozen=True)
class WaterfallAsk:
    """The waterfall asked for: two snapshots, a period, a measure and perhaps a step."""

    start: int
    end: int
    period_text: str | None
    period: tuple[date, date] | None
    measure: str
    step: str | None


def number(params: dict[str, str], key: str, default: int | None = None) -> int | None:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest(msg("%(key)s must be a whole number", key=key),
                         {key: msg("must be a whole number")})
    return int(raw)


def waterfall_ask(records: Records, actor: Actor, params: dict[str, str]) -> WaterfallAsk:
    """The waterfall `params` ask for; `from`/`to` default to the two latest snapshots
    (NotFound when there are fewer than two)."""
    start, end = number(params, "from"), number(params, "to")
    if start is None or end is None:
        latest = list_snapshots(records, actor, limit=2)
        if len(latest) < 2:
            raise NotFound(msg("there are not two pipeline snapshots to compare yet"))
        start = latest[1].id if start is None else start
        end = latest[0].id if end is None else end
    period_text = params.get("period") or None
    period = period_range(period_text) if period_text else None
    measure = params.get("measure") or "amount"
    step = params.get("step") or None
    return WaterfallAsk(start, end, period_text, period, measure, step)


def plain(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def waterfall_json(w: Waterfall, ask: WaterfallAsk) -> dict[str, Any]:
    return {"from": w.start.as_json(), "to": w.end.as_json(), "period": ask.period_text,
            "measure": w.measure,
            "start": {"deals": w.starting.deals, "value": str(w.starting.value)},
            "steps": [{"step": s.step, "deals": s.deals, "value": str(s.value)}
                      for s in w.steps],
            "end": {"deals": w.ending.deals, "value": str(w.ending.value)}}


def deals_json(deals: list[StepDeal]) -> list[dict[str, Any]]:
    return [{"id": d.id, "from": plain(d.before), "to": plain(d.after),
             "change": str(d.change)} for d in deals]


def cells_json(cells: list[ForecastCell]) -> list[dict[str, Any]]:
    return [{"snapshot": c.snapshot_id, "month": c.month, "category": c.category,
             "deals": c.deals, "amount": str(c.amount), "weighted": str(c.weighted)}
            for c in cells]


def history(records: Records, actor: Actor,
            limit: int) -> tuple[list[Snapshot], list[ForecastCell]]:
    """The latest `limit` snapshots and what they forecast, as `actor` may see them."""
    snapshots = list_snapshots(records, actor, limit=limit)
    return snapshots, forecast_history(records, actor, [s.id for s in snapshots])


class PipelineApi:
    def __init__(self, records: Records, actor_of: ActorOf) -> None:
        self.records = records
        self.actor_of = actor_of

    def routes(self) -> list[Route]:
        """Before the entity routes (`/api/{entity}` would take these paths)."""
        return [
            Route("/api/pipeline/snapshots", self.snapshots, methods=["GET", "POST"]),
            Route("/api/pipeline/forecast", self.forecast, methods=["GET"]),
            Route("/api/pipeline/waterfall", self.waterfall, methods=["GET"]),
        ]

    async def snapshots(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        records = self.records
        if request.method == "POST":
            taken = await run_in_threadpool(partial(take, records, actor))
            return JSONResponse(taken.as_json(), status_code=201)
        found = await run_in_threadpool(list_snapshots, records, actor)
        return JSONResponse({"items": [s.as_json() for s in found],
                             "may_take": may_take(records, actor)})

    async def forecast(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        params = dict(request.query_params)
        limit = number(params, "limit", HISTORY_DEFAULT) or HISTORY_DEFAULT
        limit = min(limit, HISTORY_MAX)
        snapshots, cells = await run_in_threadpool(history, self.records, actor, limit)
        return JSONResponse({"snapshots": [s.as_json() for s in snapshots],
                             "cells": cells_json(cells)})

    async def waterfall(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        params = dict(request.query_params)
        records = self.records

        def answer() -> dict[str, Any]:
            ask = waterfall_ask(records, actor, params)
            w = waterfall(records, actor, ask.start, ask.end, period=ask.period,
                          measure=ask.measure)
            out = waterfall_json(w, ask)
            if ask.step is not None:
                deals, more = step_deals(records, actor, ask.start, ask.end, ask.step,
                                         period=ask.period, measure=ask.measure)
                out.update({"step": ask.step, "deals": deals_json(deals), "truncated": more})
            return out

        return JSONResponse(await run_in_threadpool(answer))


# -- /openapi.json ----------------------------------------------------------------------

_MONEY = {"type": "string", "format": "decimal"}
_SNAPSHOT = {"type": "object", "required": ["id", "taken_at", "taken_by", "kind", "period",
                                            "deals"], "properties": {
    "id": {"type": "integer"},
    "taken_at": {"type": "string", "format": "date-time"},
    "taken_by": {"type": ["integer", "null"],
                 "description": "the user who took it; null: the worker or `crm snapshot`"},
    "kind": {"enum": ["scheduled", "on_demand"]},
    "period": {"type": ["string", "null"],
               "description": "a scheduled one's period (week:2026-11-30)"},
    "deals": {"type": "integer", "minimum": 0,
              "description": "its deals you may see"}}}
_TOTAL = {"type": "object", "required": ["deals", "value"], "properties": {
    "deals": {"type": "integer", "minimum": 0}, "value": _MONEY}}
PIPELINE_SCHEMAS: dict[str, Any] = {
    "PipelineSnapshot": _SNAPSHOT,
    "PipelineSnapshotList": {"type": "object", "required": ["items", "may_take"],
                             "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/PipelineSnapshot"}},
        "may_take": {"type": "boolean"}}},
    "PipelineForecast": {"type": "object", "required": ["snapshots", "cells"], "properties": {
        "snapshots": {"type": "array",
                      "items": {"$ref": "#/components/schemas/PipelineSnapshot"}},
        "cells": {"type": "array", "items": {
            "type": "object", "required": ["snapshot", "month", "category", "deals",
                                           "amount", "weighted"], "properties": {
                "snapshot": {"type": "integer"},
                "month": {"type": ["string", "null"],
                          "description": "the close month (2027-03); null: no close date"},
                "category": {"type": ["string", "null"]},
                "deals": {"type": "integer"}, "amount": _MONEY, "weighted": _MONEY}}}}},
    "PipelineWaterfall": {"type": "object", "required": [
        "from", "to", "period", "measure", "start", "steps", "end"], "properties": {
        "from": {"$ref": "#/components/schemas/PipelineSnapshot"},
        "to": {"$ref": "#/components/schemas/PipelineSnapshot"},
        "period": {"type": ["string", "null"]},
        "measure": {"enum": list(MEASURES)},
        "start": _TOTAL,
        "steps": {"type": "array", "items": {
            "type": "object", "required": ["step", "deals", "value"], "properties": {
                "step": {"enum": list(STEPS)}, "deals": {"type": "integer", "minimum": 0},
                "value": {**_MONEY, "description": "what the step adds (negative: takes "
                                                  "away)"}}}},
        "end": _TOTAL,
        "step": {"type": "string"},
        "deals": {"type": "array", "items": {
            "type": "object", "required": ["id", "from", "to", "change"], "properties": {
                "id": {"type": "integer"}, "from": {"type": ["string", "null"]},
                "to": {"type": ["string", "null"]}, "change": _MONEY}}},
        "truncated": {"type": "boolean"}}},
}


def pipeline_paths() -> dict[str, Any]:
    """The pipeline routes (every caller may ask; each answers within their access)."""
    def ref(name: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(c): {"description": "Error", "content": ref("Error")} for c in codes}

    def query(name: str, description: str, schema: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False,
                "schema": schema or {"type": "string"}, "description": description}

    tag = ["pipeline"]
    return {
        "/api/pipeline/snapshots": {
            "get": {"tags": tag, "operationId": "list_pipeline_snapshots",
                    "summary": "The pipeline snapshots, newest first",
                    "responses": {"200": {"description": "The snapshots",
                                          "content": ref("PipelineSnapshotList")},
                                  **errors(401, 403)}},
            "post": {"tags": tag, "operationId": "take_pipeline_snapshot",
                     "summary": "Take a pipeline snapshot now (administrators, managers)",
                     "responses": {"201": {"description": "The snapshot taken",
                                           "content": ref("PipelineSnapshot")},
                                   **errors(401, 403)}}},
        "/api/pipeline/forecast": {"get": {
            "tags": tag, "operationId": "pipeline_forecast_history",
            "summary": "What the latest snapshots forecast, per close month and category",
            "parameters": [query("limit", "how many snapshots (default 12, at most 200)",
                                 {"type": "integer", "minimum": 1})],
            "responses": {"200": {"description": "The forecast history",
                                  "content": ref("PipelineForecast")},
                          **errors(400, 401, 403)}}},
        "/api/pipeline/waterfall": {"get": {
            "tags": tag, "operationId": "pipeline_waterfall",
            "summary": "How the pipeline moved between two snapshots",
            "parameters": [
                query("from", "the earlier snapshot (default: the one before the latest)",
                      {"type": "integer"}),
                query("to", "the later snapshot (default: the latest)", {"type": "integer"}),
                query("period", "close dates in this month (2027-03), quarter (2027-Q1) or "
                                "year (2027); default: every close date"),
                query("measure", "amount (default) or weighted", {"enum": list(MEASURES)}),
                query("step", "also list this step's deals (start, end or a step)")],
            "responses": {"200": {"description": "The waterfall",
                                  "content": ref("PipelineWaterfall")},
                          **errors(400, 401, 403, 404)}}},
    }

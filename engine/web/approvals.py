"""Approvals in the JSON API (engine/runtime/flows/approvals.py; docs/api.md#approvals).

- `GET /api/approvals` → `{"items": [...]}`: the caller's pending approval tasks, oldest
  first, each with the record's title when the caller may read the record (else null).
- `GET /api/approvals/count` → `{"pending": n}`.
- `POST /api/approvals/<task>/approve` and `.../reject` with `{"comment": "..."}` (a
  rejection needs one): 200 with the approval's new state; 404 for a task that is not the
  caller's; 409 once it is settled.
- `GET|PUT|DELETE /api/approvals/delegation`: who decides the caller's approvals while they
  are away (`{"delegate": name, "starts_on": date, "ends_on": date}`).
- `GET /api/<entity>/<id>/approvals`: the record's approvals and their tasks (404 unless the
  caller may read the record).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.messages import msg
from engine.runtime.errors import BadRequest, NotFound
from engine.runtime.flows.approvals import Approvals
from engine.runtime.values import to_json
from engine.web.api import Api
from engine.web.numbers import whole_number

MAX_ID = 2**63 - 1


class ApprovalsApi:
    def __init__(self, approvals: Approvals | None, api: Api) -> None:
        self.approvals = approvals
        self.api = api

    def routes(self) -> list[Route]:
        return [
            Route("/api/approvals", self.inbox, methods=["GET"]),
            Route("/api/approvals/count", self.count, methods=["GET"]),
            Route("/api/approvals/delegation", self.delegation,
                  methods=["GET", "PUT", "DELETE"]),
            Route("/api/approvals/{task}/approve", self.approve, methods=["POST"]),
            Route("/api/approvals/{task}/reject", self.reject, methods=["POST"]),
            Route("/api/{entity}/{record_id}/approvals", self.of_record, methods=["GET"]),
        ]

    def _service(self) -> Approvals:
        if self.approvals is None:
            raise NotFound(msg("no approvals are configured"))
        return self.approvals

    async def inbox(self, request: Request) -> Response:
        actor = await self.api._actor(request)
        items = await run_in_threadpool(self._service().inbox, actor)
        return JSONResponse({"items": [_json(i) for i in items]})

    async def count(self, request: Request) -> Response:
        actor = await self.api._actor(request)
        n = 0 if self.approvals is None else await run_in_threadpool(self.approvals.count,
                                                                      actor)
        return JSONResponse({"pending": n})

    async def approve(self, request: Request) -> Response:
        return await self._decide(request, "approve")

    async def reject(self, request: Request) -> Response:
        return await self._decide(request, "reject")

    async def _decide(self, request: Request, decision: str) -> Response:
        actor = await self.api._actor(request)
        task = whole_number(request.path_params["task"])
        if task is None or not 0 < task <= MAX_ID:
            raise NotFound(msg("no approval task %(id)s of yours",
                               id=str(request.path_params["task"])[:20]))
        empty = request.headers.get("content-length") == "0" or (
            "content-length" not in request.headers
            and "transfer-encoding" not in request.headers)
        body = {} if empty else await self.api._body(request)
        unknown = sorted(set(body) - {"comment"})
        if unknown:
            raise BadRequest(msg("unknown key '%(key)s'", key=unknown[0]),
                             {unknown[0]: msg("not a key of this request")})
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise BadRequest(msg("the comment must be text"), {"comment": msg("must be text")})
        service = self._service()
        out = await run_in_threadpool(
            lambda: service.decide(actor, task, approve=decision == "approve",
                                   comment=comment))
        return JSONResponse(out)

    async def delegation(self, request: Request) -> Response:
        actor = await self.api._actor(request)
        service = self._service()
        today = service.today()
        if request.method == "GET":
            found = await run_in_threadpool(service.delegation, actor, today)
            return JSONResponse({"delegation": found})
        if request.method == "DELETE":
            await run_in_threadpool(service.set_delegation, actor, None, None, None)
            return Response(status_code=204)
        body = await self.api._body(request)
        unknown = sorted(set(body) - {"delegate", "starts_on", "ends_on"})
        if unknown:
            raise BadRequest(msg("unknown key '%(key)s'", key=unknown[0]),
                             {unknown[0]: msg("not a key of this request")})
        delegate = body.get("delegate")
        if not isinstance(delegate, str) or not delegate.strip():
            raise BadRequest(msg("the delegation is not valid"),
                             {"delegate": msg("a user name is required")})
        starts, ends = _date(body, "starts_on"), _date(body, "ends_on")
        made = await run_in_threadpool(service.set_delegation, actor, delegate.strip(),
                                       starts, ends)
        return JSONResponse({"delegation": made})

    async def of_record(self, request: Request) -> Response:
        actor = await self.api._actor(request)
        entity = self.api._entity(request)
        self.api.records.compiled(entity)
        record_id = self.api._id(request)
        if self.approvals is None:
            await run_in_threadpool(self.api.records.get, actor, entity, record_id)
            return JSONResponse({"items": []})
        items = await run_in_threadpool(self.approvals.of_record, actor, entity, record_id)
        return JSONResponse({"items": [_json(i) for i in items]})


def _date(body: dict[str, Any], key: str) -> date | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise BadRequest(msg("the delegation is not valid"),
                         {key: msg("a date as YYYY-MM-DD")}) from None


def _json(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in item.items():
        if isinstance(v, list):
            out[k] = [_json(x) if isinstance(x, dict) else to_json(x) for x in v]
        elif isinstance(v, dict):
            out[k] = v
        else:
            out[k] = to_json(v)
    return out

"""`POST /api/<entity>/bulk`: up to 1,000 creates, updates or upserts in one request, all
or nothing (engine/runtime/imports/upsert.py; docs/api.md "Bulk writes").

    {"items": [{...}, ...], "key": "external_id"}   (key optional)

→ 200 `{"items": [{"index", "id", "version", "action": "created"|"updated"}]}`, or 422
(409 when every refused item is a stale version) with each refused item's problem by its
index under `error.items`, and nothing written.
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.messages import localize, msg
from engine.runtime.errors import Invalid, RecordError
from engine.runtime.imports.upsert import MAX_ITEMS, Duplicate, ItemsRefused, write_many
from engine.runtime.records import Records
from engine.web.errors import api_language, error_response, field_messages
from engine.web.i18n import translations

if TYPE_CHECKING:
    from engine.web.api import Api

MAX_BULK_BODY = 16 * 1024 * 1024
"""The largest bulk request body: 1,000 items of up to about 16 KB each."""


class TooManyItems(RecordError):
    status = 413
    code = "too_large"


class BulkApi:
    def __init__(self, records: Records, api: Api) -> None:
        self.records = records
        self.api = api

    def routes(self) -> list[Route]:
        return [Route("/api/{entity}/bulk", self.bulk, methods=["POST"])]

    async def bulk(self, request: Request) -> Response:
        actor = await self.api._actor(request)
        entity = str(request.path_params["entity"])
        self.records.compiled(entity)  # 404 for an unknown entity
        body = await self.api._body(request, MAX_BULK_BODY)
        unknown = sorted(set(body) - {"items", "key"})
        if unknown:
            raise Invalid(msg("unknown key '%(key)s'; send %(allowed)s", key=unknown[0],
                              allowed="items, key"), {k: msg("unknown key") for k in unknown})
        items = body.get("items")
        if not isinstance(items, list):
            raise Invalid(msg("send the records to write as items: a list of objects"),
                          {"items": msg("required: a list of objects")})
        if len(items) > MAX_ITEMS:
            raise TooManyItems(msg("at most %(max)s items per request; this one has "
                                   "%(count)s", max=MAX_ITEMS, count=len(items)),
                               {"items": msg("at most %(max)s", max=MAX_ITEMS)})
        key = body.get("key")
        if key is not None and not isinstance(key, str):
            raise Invalid(msg("key names a field: the external id or a unique field"),
                          {"key": msg("must be a field name")})
        allow = request.query_params.get("allow_duplicate", "0").lower() in ("1", "true")
        try:
            written = await run_in_threadpool(partial(write_many, allow_duplicate=allow),
                                              self.records, actor, entity, items, key)
        except ItemsRefused as exc:
            return refused_response(exc, api_language(request))
        return JSONResponse({"items": [w.json() for w in written]})


def refused_response(exc: ItemsRefused, language: str) -> Response:
    """The error answer with each refused item's code, message and field problems."""
    base = error_response(exc.status, exc.message, None, exc.code, language=language)
    body: dict[str, Any] = json.loads(bytes(base.body))
    gettext = translations()[language].gettext
    body["error"]["items"] = {
        str(i): {"code": e.code, "message": localize(e.message, gettext, language),
                 "fields": {k: localize(v, gettext, language) for k, v in e.fields.items()},
                 "field_messages": {k: field_messages(v, gettext, language)
                                    for k, v in e.fields.items()},
                 **({"candidates": e.candidates} if isinstance(e, Duplicate) else {})}
        for i, e in exc.items.items()}
    return JSONResponse(body, status_code=exc.status, headers={"Content-Language": language})

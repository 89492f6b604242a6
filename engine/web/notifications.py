"""The caller's notifications in the JSON API (engine/runtime/notifications.py).

`GET /api/notifications[?unread=1&page_size=&cursor=]` lists them newest first
(`{"items", "next_cursor"}`), `GET /api/notifications/count` says how many are unread
(`{"unread": n}`), `POST /api/notifications/<id>/read` marks one read (404 for an id that is
not the caller's, as for one that does not exist) and `POST /api/notifications/read` marks
all read (`{"marked": n}`). Every answer is about the caller's own notifications only; a
record is named (with its title) only when the caller may read it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest
from engine.runtime.notifications import (
    MAX_PAGE,
    PAGE,
    Notifications,
    cursor_of,
    notification_id,
    page_size_of,
)

ActorOf = Callable[[Request], Awaitable[Actor]]
_KNOWN = frozenset({"unread", "page_size", "cursor"})


class NotificationsApi:
    def __init__(self, inbox: Notifications, actor_of: ActorOf) -> None:
        self.inbox = inbox
        self.actor_of = actor_of

    def routes(self) -> list[Route]:
        """Before the entity routes (`/api/{entity}` would take these paths)."""
        return [
            Route("/api/notifications", self.list, methods=["GET"]),
            Route("/api/notifications/count", self.count, methods=["GET"]),
            Route("/api/notifications/read", self.read_all, methods=["POST"]),
            Route("/api/notifications/{notification_id}/read", self.read_one,
                  methods=["POST"]),
        ]

    async def list(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        params = _params(request)
        page = await run_in_threadpool(partial(
            self.inbox.page, actor, unread_only=unread_flag(params.get("unread")),
            cursor=cursor_of(params.get("cursor")),
            limit=page_size_of(params.get("page_size"))))
        return JSONResponse({"items": [n.as_json() for n in page.items],
                             "next_cursor": page.next_cursor})

    async def count(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        return JSONResponse({"unread": await run_in_threadpool(self.inbox.unread, actor)})

    async def read_one(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        number = notification_id(str(request.path_params["notification_id"]))
        await run_in_threadpool(self.inbox.mark_read, actor, number)
        return JSONResponse({"id": number, "unread": False})

    async def read_all(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        marked = await run_in_threadpool(self.inbox.mark_all_read, actor)
        return JSONResponse({"marked": marked})


def unread_flag(raw: str | None) -> bool:
    """`unread=1|true` lists only unread notifications; `0|false` or none, all of them."""
    if raw is None or raw == "":
        return False
    if raw.lower() not in ("1", "0", "true", "false"):
        raise BadRequest(msg("unread must be true or false"),
                         {"unread": msg("must be true or false")})
    return raw.lower() in ("1", "true")


def _params(request: Request) -> dict[str, str]:
    """The query parameters this list takes, each at most once."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in _KNOWN:
            raise BadRequest(msg("unknown parameter '%(key)s'", key=key[:40]),
                             {key[:40]: msg("unknown parameter")})
        if key in params:
            raise BadRequest(msg("parameter '%(key)s' is given twice", key=key),
                             {key: msg("given twice")})
        params[key] = value
    return params


# -- /openapi.json ----------------------------------------------------------------------

NOTIFICATION_SCHEMAS: dict[str, Any] = {
    "Notification": {"type": "object", "required": [
        "id", "message", "record", "created_at", "read_at", "unread"], "properties": {
        "id": {"type": "integer"},
        "message": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "the flow's message per language: {\"en\": ..., "
                                   "\"zh\": ...}"},
        "record": {"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["entity", "id", "title"], "properties": {
                "entity": {"type": "string"}, "id": {"type": "integer"},
                "title": {"type": "string"}}}],
            "description": "the record it is about, when the caller may read it; null "
                           "otherwise (or for none)"},
        "created_at": {"type": "string", "format": "date-time"},
        "read_at": {"type": ["string", "null"], "format": "date-time"},
        "unread": {"type": "boolean"}}},
    "NotificationPage": {"type": "object", "required": ["items", "next_cursor"],
                         "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}},
        "next_cursor": {"type": ["string", "null"],
                        "description": "`cursor` of the next page; null on the last"}}},
    "NotificationCount": {"type": "object", "required": ["unread"],
                          "properties": {"unread": {"type": "integer", "minimum": 0}}},
    "NotificationsMarked": {"type": "object", "required": ["marked"],
                            "properties": {"marked": {"type": "integer", "minimum": 0}}},
    "NotificationRead": {"type": "object", "required": ["id", "unread"],
                         "properties": {"id": {"type": "integer"},
                                        "unread": {"const": False}}},
}


def notification_paths() -> dict[str, Any]:
    """The routes of the caller's own notifications (every caller has an inbox)."""
    def ref(name: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(c): {"description": "Error", "content": ref("Error")} for c in codes}

    tag = ["notifications"]
    return {
        "/api/notifications": {"get": {
            "tags": tag, "operationId": "list_notifications",
            "summary": "Your notifications, newest first",
            "parameters": [
                {"name": "unread", "in": "query", "schema": {"enum": ["1", "0", "true",
                                                                    "false"]},
                 "description": "1: only the unread ones"},
                {"name": "page_size", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                            "default": PAGE}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"},
                 "description": "the next_cursor of the page before"}],
            "responses": {"200": {"description": "A page of notifications",
                                  "content": ref("NotificationPage")},
                          **errors(400, 401)}}},
        "/api/notifications/count": {"get": {
            "tags": tag, "operationId": "count_notifications",
            "summary": "How many of your notifications are unread",
            "responses": {"200": {"description": "The unread count",
                                  "content": ref("NotificationCount")}, **errors(401)}}},
        "/api/notifications/read": {"post": {
            "tags": tag, "operationId": "read_all_notifications",
            "summary": "Mark all your notifications read",
            "responses": {"200": {"description": "How many were unread",
                                  "content": ref("NotificationsMarked")}, **errors(401)}}},
        "/api/notifications/{notification_id}/read": {"post": {
            "tags": tag, "operationId": "read_notification",
            "summary": "Mark one of your notifications read (404: not yours or none)",
            "parameters": [{"name": "notification_id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": {"description": "Marked read",
                                  "content": ref("NotificationRead")},
                          **errors(401, 404)}}},
    }

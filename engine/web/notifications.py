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

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest
from engine.runtime.notifications import (
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

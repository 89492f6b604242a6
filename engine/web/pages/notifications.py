"""The notifications page (`/notifications`): the signed-in user's inbox.

Newest first, the unread ones highlighted, each message in the viewer's language, its time
in the organisation's zone, and its record linked by title when the viewer may read that
record (the one secure query, engine/runtime/notifications.py) — otherwise the record is not
named. `?unread=1` shows only the unread ones; `?cursor=` the next page.

`POST /notifications/<id>/read` marks one read and `POST /notifications/read` all of them
(CSRF like every form). With htmx the list is swapped in place and the header's count with
it (out of band); without JavaScript the form goes back to the page.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.metadata import Model
from engine.runtime.notifications import HEADER_CAP, Notifications, cursor_of, page_size_of
from engine.runtime.records import Records
from engine.web.auth import read_form
from engine.web.notifications import unread_flag
from engine.web.ui import PageFamily, Ui
from engine.web.viewer import Viewer, require_viewer


class NotificationPages(PageFamily):
    def __init__(self, model: Model, records: Records, ui: Ui, inbox: Notifications) -> None:
        super().__init__(model, records, ui)
        self.inbox = inbox

    def routes(self) -> list[Route]:
        return [
            Route("/notifications", self.page, methods=["GET"]),
            Route("/notifications/read", self.read_all, methods=["POST"]),
            Route("/notifications/{notification_id:id}/read", self.read_one,
                  methods=["POST"]),
        ]

    async def page(self, request: Request) -> Response:
        viewer = require_viewer(request)
        params = request.query_params
        unread_only = unread_flag(params.get("unread"))
        context = await run_in_threadpool(partial(
            self._view, viewer, unread_only=unread_only, cursor=cursor_of(params.get("cursor")),
            limit=page_size_of(params.get("page_size"))))
        return self.ui.page(request, "notifications.html", context)

    def _view(self, viewer: Viewer, *, unread_only: bool, cursor: int | None = None,
              limit: int | None = None) -> dict[str, Any]:
        actor = viewer.user.actor()
        page = self.inbox.page(actor, unread_only=unread_only, cursor=cursor,
                               **({"limit": limit} if limit else {}))
        unread = min(self.inbox.unread(actor), HEADER_CAP)
        query = {"unread": "1"} if unread_only else {}
        older = None if page.next_cursor is None else "/notifications?" + urlencode(
            {**query, "cursor": page.next_cursor})
        return {"notifications": page.items, "unread_only": unread_only, "older": older,
                "unread_count": unread, "first_page": cursor is None}

    async def read_one(self, request: Request) -> Response:
        viewer = require_viewer(request)
        form = await read_form(request)
        await run_in_threadpool(self.inbox.mark_read, viewer.user.actor(),
                                int(request.path_params["notification_id"]))
        return await self._answer(request, viewer, form)

    async def read_all(self, request: Request) -> Response:
        viewer = require_viewer(request)
        form = await read_form(request)
        await run_in_threadpool(self.inbox.mark_all_read, viewer.user.actor())
        return await self._answer(request, viewer, form)

    async def _answer(self, request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
        """htmx swaps the list (and the header's count) in place; a plain form goes back."""
        unread_only = form.get("unread") == "1"
        if "hx-request" not in request.headers:
            return RedirectResponse("/notifications" + ("?unread=1" if unread_only else ""),
                                    status_code=303)
        context = await run_in_threadpool(partial(self._view, viewer,
                                                  unread_only=unread_only))
        return self.ui.page(request, "notifications_list.html", {**context, "oob": True})

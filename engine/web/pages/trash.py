"""Deleting with confirmation, and the recycle bin with restore.

`GET /e/<entity>/<id>/delete` asks first; its form posts the record's version, so a record
changed since the page was shown is not deleted unseen (409: the page asks again with the
new version). Deleting moves a record to the recycle bin (`/e/<entity>/trash`), from which
anyone who may delete it may restore it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.messages import msg
from engine.metadata.model import Entity
from engine.metadata.roles import Scope
from engine.runtime.access.bulk import require_page_size
from engine.runtime.errors import BadRequest, Conflict
from engine.runtime.records.permitted import permitted_ids
from engine.runtime.records.query import ListQuery, Page, SortKey, parse_list_params
from engine.web.auth import read_form
from engine.web.numbers import whole_number
from engine.web.pages.fields import entity_of
from engine.web.pages.lists import (
    NOTICES,
    PAGE_SIZES,
    Header,
    column_title,
    link_index,
    page_numbers,
)
from engine.web.pages.table import Row, build_rows, title_of, visible_columns
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer


@dataclass
class TrashView:
    entity: Entity
    title: str
    headers: list[Header] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    page: Page | None = None
    pages: list[int | None] = field(default_factory=list)
    page_count: int = 1
    page_size: int = 50
    can_restore: bool = False
    restorable: frozenset[int] = frozenset()
    """Ids of the rows the viewer may restore (the policy's delete predicate, one query)."""
    link_index: int = 0

    def url(self, page: int | None = None, page_size: int | None = None) -> str:
        size = page_size or self.page_size
        params = [("page", str(page))] if page and page > 1 else []
        if size != 50:
            params.append(("page_size", str(size)))
        query = "&".join(f"{k}={v}" for k, v in params)
        return f"/e/{self.entity.name}/trash" + (f"?{query}" if query else "")


class Trash(PageFamily):
    def routes(self) -> list[Route]:
        return [
            Route("/e/{entity}/trash", self.trash_page, methods=["GET"]),
            Route("/e/{entity}/{record_id:id}/delete", self.confirm, methods=["GET"]),
            Route("/e/{entity}/{record_id:id}/delete", self.delete, methods=["POST"]),
            Route("/e/{entity}/{record_id:id}/restore", self.restore, methods=["POST"]),
        ]

    # -- delete --------------------------------------------------------------------------

    async def confirm(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        record = await run_in_threadpool(self._deletable, viewer, entity, record_id)
        return self._confirm_page(request, entity, record)

    def _deletable(self, viewer: Viewer, entity: Entity, record_id: int) -> dict[str, Any]:
        """The record, when the viewer may read it (404) and may delete it (403)."""
        actor = viewer.user.actor()
        record = self.records.get(actor, entity.name, record_id)
        with self.records.reading() as conn:  # 403 before asking to confirm
            self.records.allowed(conn, actor, self.records.compiled(entity.name), record_id,
                                 "delete")
        return record

    def _confirm_page(self, request: Request, entity: Entity, record: dict[str, Any], *,
                      conflict: bool = False) -> Response:
        return self.ui.page(request, "confirm_delete.html", {
            "entity": entity, "record": record, "record_title": title_of(entity, record),
            "conflict": conflict}, status=409 if conflict else 200)

    async def delete(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        form = await read_form(request)
        version = _version(form.get("version", ""))
        try:
            await run_in_threadpool(self.records.delete, viewer.user.actor(), entity.name,
                                    record_id, version)
        except Conflict:
            # Changed since the page was shown: show it again, with its new version.
            record = await run_in_threadpool(self._deletable, viewer, entity, record_id)
            return self._confirm_page(request, entity, record, conflict=True)
        return RedirectResponse(f"/e/{entity.name}?notice=deleted", status_code=303)

    # -- the recycle bin -----------------------------------------------------------------

    async def trash_page(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        params = {k: v for k, v in request.query_params.items()
                  if k in ("page", "page_size") and v.strip()}
        view = await run_in_threadpool(self._load, viewer, entity, params)
        notice = NOTICES.get(request.query_params.get("notice", ""))
        return self.ui.page(request, "trash.html", {"trash": view, "notice": notice,
                                                    "page_sizes": PAGE_SIZES})

    def _load(self, viewer: Viewer, entity: Entity, params: dict[str, str]) -> TrashView:
        actor = viewer.user.actor()
        policy = self.records.policy
        policy.require(actor, entity, "read")
        parsed = parse_list_params(entity, params)  # 400 page for a bad page number
        require_page_size(policy, actor, entity, parsed.page_size)
        # Deleting sets updated_at, so this is "most recently deleted first".
        query = ListQuery(sort=(SortKey("updated_at", True),), page=parsed.page,
                          page_size=parsed.page_size, deleted=True)
        page = self.records.list_records(actor, entity.name, query)
        columns = visible_columns(self.records, actor, entity)
        view = TrashView(entity, entity.plural.get(viewer.language), page=page,
                         page_size=parsed.page_size)
        view.can_restore = policy.scope(actor, entity.name, "delete") is not Scope.NONE
        view.headers = [Header(column_title(c, viewer.language), c.numeric, None, None)
                        for c in columns]
        view.link_index = link_index(entity, columns)
        view.rows = build_rows(self.records, actor, entity, columns, page.items,
                               viewer.language)
        view.restorable = permitted_ids(self.records, actor, entity.name,
                                        [row.id for row in view.rows], "delete")
        view.page_count = max(1, math.ceil(page.total / page.page_size))
        view.pages = page_numbers(page.page, view.page_count)
        return view

    async def restore(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        form = await read_form(request)
        await run_in_threadpool(self.records.restore, viewer.user.actor(), entity.name,
                                record_id)
        if form.get("then") == "unmerged":  # the merge notice's Undo button
            return RedirectResponse(f"/e/{entity.name}/{record_id}?done=unmerged",
                                    status_code=303)
        return RedirectResponse(f"/e/{entity.name}/trash?notice=restored", status_code=303)


def _version(raw: str) -> int:
    version = whole_number(raw, 12)
    if version is None:
        raise BadRequest(msg("the form lost the record's version; reload the page"),
                         {"version": msg("must be a whole number")})
    return version


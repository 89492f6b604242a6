"""The Attachments panel of a record page, and downloads for signed-in users.

The detail page of an entity with `attachments: true` loads the panel with htmx
(`GET /e/<entity>/<id>/attachments`): the files with name, size, who added them and when,
a download link each, a remove button and an upload form for those who may update the
record. The upload form posts multipart with htmx, which sends the page's CSRF token in its
`X-CSRF-Token` header (so the guard does not read the file); without JavaScript the form's
own `csrf_token` field is checked, for files up to the guard's 4 MB. `GET /files/<aid>`
downloads a file field's file from any page.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.metadata import Model
from engine.runtime.access import Actor
from engine.runtime.errors import RecordError
from engine.runtime.files.attachments import Attachments
from engine.runtime.records import Records
from engine.runtime.records.opened import open_record
from engine.types import FieldType
from engine.web.attachments import download, upload
from engine.web.pages.fields import entity_of
from engine.web.ui import PageFamily, Ui
from engine.web.viewer import require_viewer


class AttachmentPages(PageFamily):
    def __init__(self, model: Model, records: Records, ui: Ui,
                 attachments: Attachments) -> None:
        super().__init__(model, records, ui)
        self.attachments = attachments

    def routes(self) -> list[Route]:
        base = "/e/{entity}/{record_id:id}/attachments"
        return [
            Route(base, self.panel, methods=["GET"]),
            Route(base, self.add, methods=["POST"]),
            Route(base + "/{attachment_id:id}", self.download, methods=["GET"]),
            Route(base + "/{attachment_id:id}/remove", self.remove, methods=["POST"]),
            Route("/files/{attachment_id:id}", self.download_file, methods=["GET"]),
        ]

    async def panel(self, request: Request, error: RecordError | None = None) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        context = await run_in_threadpool(self._panel, viewer.user.actor(), entity.name,
                                          record_id)
        return self.ui.page(request, "attachments_panel.html",
                            {**context, "error": error.message if error else None},
                            status=error.status if error else 200)

    def _panel(self, actor: Actor, entity: str, record_id: int) -> dict[str, Any]:
        files = self.attachments.list_files(actor, entity, record_id)
        with open_record(self.records, actor, entity, record_id) as opened:
            can_update = "update" in opened.allowed(("update",))
        e = self.model.entity(entity)
        mask = self.records.policy.mask(actor, e)
        file_fields = [f for f in e.fields if f.type is FieldType.FILE
                       and f.name not in mask.hidden and f.name not in mask.readonly]
        return {"entity": e, "record_id": record_id, "files": files,
                "can_update": can_update, "file_fields": file_fields,
                "max_size": f"{self.attachments.settings.max_size_mb:.2f}".rstrip("0")
                .rstrip("."),
                "accept": ",".join(self.attachments.settings.allowed_types),
                "base": f"/e/{entity}/{record_id}/attachments"}

    async def add(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        try:
            await upload(self.attachments, request, viewer.user.actor(), entity.name,
                         record_id)
        except RecordError as exc:
            if exc.status == 404:
                raise
            return await self._answer(request, exc)
        return await self._answer(request)

    async def remove(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        try:
            await run_in_threadpool(self.attachments.remove, viewer.user.actor(),
                                    entity.name, record_id,
                                    int(request.path_params["attachment_id"]))
        except RecordError as exc:
            if exc.status == 404:
                raise
            return await self._answer(request, exc)
        return await self._answer(request)

    async def _answer(self, request: Request, error: RecordError | None = None) -> Response:
        """htmx swaps the panel in place; a plain form goes back to the record's page."""
        if "hx-request" in request.headers:
            return await self.panel(request, error)
        if error is not None:
            raise error
        path = f"/e/{request.path_params['entity']}/{request.path_params['record_id']}"
        return RedirectResponse(path + "#attachments", status_code=303)

    async def download(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        found, content = await run_in_threadpool(
            self.attachments.open, viewer.user.actor(), entity.name,
            int(request.path_params["record_id"]), int(request.path_params["attachment_id"]))
        return download(found, content)

    async def download_file(self, request: Request) -> Response:
        viewer = require_viewer(request)
        actor = viewer.user.actor()
        attachment_id = int(request.path_params["attachment_id"])

        def opened() -> Response:
            entity, record_id = self.attachments.by_id(actor, attachment_id)
            return download(*self.attachments.open(actor, entity, record_id, attachment_id))

        return await run_in_threadpool(opened)

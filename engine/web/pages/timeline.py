"""The Timeline panel of every record page, and its "add a note" box.

The detail page loads the panel with htmx (`GET /e/<entity>/<id>/timeline`): the newest
items of the record's timeline (engine/runtime/records/timeline.py: records that concern it,
its changes, its files, and the same for its children one level down), each access-filtered
for the viewer, and a "More" button that fetches the next page (`?before=<cursor>`, which
answers the next items alone, swapped in place of the button). Above them, for a viewer who
may create notes, a box that posts a note about this record
(`POST /e/<entity>/<id>/notes`, CSRF-checked like every form): htmx swaps the panel in place,
a plain form goes back to the record's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.messages import joined, msg
from engine.metadata.model import Entity
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import Forbidden, RecordError
from engine.runtime.records.timeline import CHANGE, FILE, TimelineItem, TimelinePage, timeline
from engine.types import FieldType
from engine.web.i18n import N_
from engine.web.pages.fields import Display, Shown, entity_of
from engine.web.pages.forms import first_value, read_posted
from engine.web.pages.records import ACTIONS, ENGINE_LABELS
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

NOTE = "note"
"""The entity the note box creates: its required text field and its regarding field."""
FILE_ADDED = N_("File added")
ATTACHMENTS_FIELD = "attachments"


@dataclass(frozen=True)
class ItemView:
    kind: str
    at: datetime
    who: str
    what: str
    """The action or the kind of record, in the viewer's language."""
    subject: Shown
    """The record (or file) the item is, as a link."""
    about: Shown | None
    """The child of the page's record it concerns, when not the record itself."""
    fields: str


class TimelinePages(PageFamily):
    def routes(self) -> list[Route]:
        base = "/e/{entity}/{record_id:id}"
        return [
            Route(base + "/timeline", self.panel, methods=["GET"]),
            Route(base + "/notes", self.add_note, methods=["POST"]),
        ]

    async def panel(self, request: Request, error: str | None = None,
                    status: int = 200) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        before = request.query_params.get("before") or None
        context = await run_in_threadpool(self._context, viewer, entity, record_id, before)
        template = "timeline_items.html" if before else "timeline_panel.html"
        return self.ui.page(request, template, {**context, "error": error}, status=status)

    def _context(self, viewer: Viewer, entity: Entity, record_id: int,
                 before: str | None) -> dict[str, Any]:
        actor = viewer.user.actor()
        page = timeline(self.records, actor, entity.name, record_id, before=before)
        base = f"/e/{entity.name}/{record_id}"
        return {"items": self._views(viewer, page), "base": base,
                "more": f"{base}/timeline?before={page.next_cursor}"
                if page.next_cursor else None,
                "note": self._note_field(actor, entity)}

    def _note_field(self, actor: Actor, entity: Entity) -> str | None:
        """The regarding field of a note the viewer may create about `entity`, or None."""
        if not self.model.has_entity(NOTE) or \
                self.records.policy.scope(actor, NOTE, "create") is Scope.NONE:
            return None
        note = self.model.entity(NOTE)
        mask = self.records.policy.mask(actor, note)
        if not note.has_field("body") or "body" in mask.hidden | mask.readonly:
            return None
        return next((f.name for f in note.fields if f.type is FieldType.REGARDING
                     and (not f.targets or entity.name in f.targets)
                     and f.name not in mask.hidden | mask.readonly), None)

    def _views(self, viewer: Viewer, page: TimelinePage) -> list[ItemView]:
        display = Display(self.model, self.records, viewer.user.actor(), viewer.language)
        abouts = [(e, int(i)) for item in page.items if item.about
                  for e, _, i in [item.about.partition(":")]]
        display.load(abouts)
        return [self._view(viewer, display, item) for item in page.items]

    def _view(self, viewer: Viewer, display: Display, item: TimelineItem) -> ItemView:
        language = viewer.language
        e = self.model.entity(item.entity)
        about = None
        if item.about:
            child, _, rid = item.about.partition(":")
            shown = display.title(child, int(rid))
            about = Shown(f"{self.model.entity(child).label.get(language)} {shown.text}",
                          shown.href)
        if item.kind == CHANGE:
            names = [display.gettext(ENGINE_LABELS[n]) if n in ENGINE_LABELS
                     else e.field(n).label.get(language) if e.has_field(n)
                     else display.gettext(N_("Attachments")) if n == ATTACHMENTS_FIELD
                     else n for n in item.fields]
            return ItemView(item.kind, item.at, item.user or "",
                            display.gettext(ACTIONS.get(item.action or "", item.action or "")),
                            Shown(""), about, ", ".join(names))
        if item.kind == FILE:
            href = f"/e/{item.entity}/{item.record_id}/attachments/{item.file_id}"
            return ItemView(item.kind, item.at, item.user or "", display.gettext(FILE_ADDED),
                            Shown(item.title or "", href), about, "")
        return ItemView(item.kind, item.at, item.user or "", e.label.get(language),
                        Shown(item.title or f"#{item.record_id}",
                              f"/e/{item.entity}/{item.record_id}"), about, "")

    async def add_note(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        posted = await read_posted(request)
        body = first_value(posted, "body") or ""
        actor = viewer.user.actor()
        field = self._note_field(actor, entity)
        error: RecordError | None = None
        try:
            if field is None:
                raise Forbidden(msg("you may not add notes here"))
            await run_in_threadpool(self.records.create, actor, NOTE, {
                "body": body, field: f"{entity.name}:{record_id}"})
        except RecordError as exc:
            if exc.status == 404:
                raise
            error = exc
        if "hx-request" in request.headers:
            message = None if error is None else (
                joined(list(error.fields.values())) if error.fields else error.message)
            return await self.panel(request, message, error.status if error else 200)
        if error is not None:
            raise error
        return RedirectResponse(f"/e/{entity.name}/{record_id}#timeline", status_code=303)

"""The merge page: GET /e/<entity>/<id>/merge, and POST to merge.

The record of the address survives. Without `?other=` the page asks for the other record
(the record picker, `_merge`: records of the same entity the viewer may read); with it, the
two side by side — every field the viewer may see, a radio on each that differs (this
record's value checked) — and how many records of each kind will move to this one (those
the viewer may read), then Merge. The POST (CSRF-checked like every form) merges
(engine/runtime/imports/merge.py) and lands on this record's page with a notice and an Undo
button, which restores the other record (restoring undoes the merge). A problem shows the
page again with it; a record changed since it was compared is a 409 with the page reloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.messages import joined
from engine.metadata import Model
from engine.metadata.model import Entity, Field
from engine.runtime.access import Actor
from engine.runtime.errors import STALE_VERSION, Conflict, Forbidden, NotFound, RecordError
from engine.runtime.imports.duplicates import Candidate, find_duplicates
from engine.runtime.imports.merge import children, merge
from engine.runtime.org import DEPARTMENT
from engine.runtime.records import Records
from engine.web.i18n import N_
from engine.web.pages.fields import Display, Shown, entity_of
from engine.web.pages.forms import first_value, read_posted, whole
from engine.web.pages.table import title_of
from engine.web.pages.widgets import Widget
from engine.web.ui import PageFamily, Ui
from engine.web.viewer import Viewer, require_viewer

MERGED = N_("The records were merged; the other one is in the recycle bin.")
STALE = N_("One of the records changed after you compared them. Compare them again.")
PICK = "_merge"


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    mine: Shown
    theirs: Shown
    differs: bool
    choosable: bool


@dataclass
class MergeView:
    entity: Entity
    record: dict[str, Any]
    title: str
    picker: Widget
    other: dict[str, Any] | None = None
    other_title: str = ""
    rows: list[Row] = field(default_factory=list)
    moving: list[tuple[str, int]] = field(default_factory=list)
    """(label of an entity, how many of its records move) — those the viewer may read."""
    duplicates: list[Candidate] = field(default_factory=list)
    """Records the entity's duplicate rules match (engine/runtime/imports/duplicates.py)."""


class MergePages(PageFamily):
    def __init__(self, model: Model, records: Records, ui: Ui) -> None:
        super().__init__(model, records, ui)

    def routes(self) -> list[Route]:
        base = "/e/{entity}/{record_id:id}/merge"
        return [Route(base, self.page, methods=["GET"]),
                Route(base, self.merge, methods=["POST"])]

    async def page(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request)
        record_id = int(request.path_params["record_id"])
        other = whole(request.query_params.get("other") or request.query_params.get(PICK))
        view = await run_in_threadpool(self._view, viewer, entity, record_id, other)
        return self.ui.page(request, "merge.html", {"m": view})

    def _entity(self, request: Request) -> Entity:
        entity = entity_of(self.model, request.path_params["entity"])
        if entity.name == DEPARTMENT:
            raise NotFound(N_("There is no page at this address."))
        return entity

    def _view(self, viewer: Viewer, entity: Entity, record_id: int,
              other_id: int | None) -> MergeView:
        actor = viewer.user.actor()
        c = self.records.compiled(entity.name)
        record = self.records.get(actor, entity.name, record_id)
        with self.records.reading() as conn:
            self.records.allowed(conn, actor, c, record_id, "update")
        view = MergeView(entity, record, title_of(entity, record), Widget(
            name=PICK, label="", kind="picker", pick_url=f"/e/{entity.name}/pick/{PICK}"))
        if other_id is None or other_id == record_id:
            view.duplicates = possible_duplicates(self.records, actor, entity, record)
            return view
        other = self.records.get(actor, entity.name, other_id)
        with self.records.reading() as conn:
            self.records.allowed(conn, actor, c, other_id, "delete")
        view.other, view.other_title = other, title_of(entity, other)
        display = Display(self.model, self.records, actor, viewer.language)
        display.load_rows(entity, [record, other])
        mask = self.records.policy.mask(actor, entity)
        for f in entity.fields:
            if f.name in mask.hidden or f.name not in record:
                continue
            mine, theirs = record.get(f.name), other.get(f.name)
            view.rows.append(Row(f.name, f.label.get(viewer.language), display.show(f, mine),
                                 display.show(f, theirs), mine != theirs,
                                 _choosable(f, c.plain) and f.name not in mask.readonly))
        view.moving = [(self.model.entity(e).plural.get(viewer.language), n) for e, n in
                       sorted(children(self.records, actor, entity.name, other_id).items())]
        return view

    async def merge(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request)
        record_id = int(request.path_params["record_id"])
        posted = await read_posted(request)
        loser = whole(first_value(posted, "loser"))
        versions = {rid: v for rid, v in (
            (record_id, whole(first_value(posted, "version"))),
            (loser, whole(first_value(posted, "loser_version")))) if rid and v}
        take = {key.removeprefix("take-"): values[0] for key, values in posted.items()
                if key.startswith("take-") and values}
        return await run_in_threadpool(self._merge, request, viewer, entity, record_id,
                                       loser, versions, take)

    def _merge(self, request: Request, viewer: Viewer, entity: Entity, record_id: int,
               loser: int | None, versions: dict[int, int], take: dict[str, str]) -> Response:
        actor = viewer.user.actor()
        try:
            if loser is None:
                raise NotFound(N_("There is no page at this address."))
            merge(self.records, actor, entity.name, record_id, loser, take=take,
                  versions=versions)
        except (Forbidden, NotFound):
            raise
        except RecordError as exc:
            stale = isinstance(exc, Conflict) and exc.fields.get("version") == STALE_VERSION
            problem = STALE if stale else joined([exc.message, *exc.fields.values()])
            return self._again(request, viewer, entity, record_id, loser, problem,
                               exc.status)
        return RedirectResponse(f"/e/{entity.name}/{record_id}?done=merged&loser={loser}",
                                status_code=303)

    def _again(self, request: Request, viewer: Viewer, entity: Entity, record_id: int,
               loser: int | None, problem: str, status: int) -> Response:
        try:
            view = self._view(viewer, entity, record_id, loser)
        except RecordError:  # the other record is gone since: choose again
            view = self._view(viewer, entity, record_id, None)
        return self.ui.page(request, "merge.html", {"m": view, "error": problem},
                            status=status)


def _choosable(f: Field, plain: frozenset[str]) -> bool:
    """Whether the survivor can take the other record's value of `f`."""
    return f.name in plain


_MERGE_WORDS = {"into": N_("into #%(id)s"), "from": N_("merged #%(id)s into this record")}
KEPT = N_("kept as changed since: %(fields)s")


def audit_text(value: dict[str, Any], entity: Entity, display: Display) -> str:
    """A merge's audit value (`{"into": id}`, `{"from": id}`, with `"kept"` fields when
    undone) in the viewer's words."""
    out = [display.gettext(text) % {"id": value[key]} for key, text in _MERGE_WORDS.items()
           if isinstance(value.get(key), int)]
    kept = value.get("kept")
    if kept:
        names = ", ".join(entity.field(n).label.get(display.language)
                          if entity.has_field(n) else str(n) for n in kept)
        out.append(display.gettext(KEPT) % {"fields": names})
    return "; ".join(out)


def possible_duplicates(records: Records, actor: Actor, entity: Entity,
                        record: dict[str, Any]) -> list[Candidate]:
    """The live records `actor` may read that the entity's duplicate rules match with
    `record` (as the actor reads it); none for an entity without rules."""
    if not entity.duplicates:
        return []
    with records.reading() as conn:
        found = find_duplicates(conn, records, actor, entity.name, record,
                                exclude_id=int(record["id"]))
    return [c for c in found if c.id is not None]


def undo_of(records: Records, actor: Actor, entity: Entity, loser: int | None
            ) -> int | None:
    """The merged-away record the viewer may restore (undo) after `?done=merged`."""
    if loser is None:
        return None
    try:
        records.get(actor, entity.name, loser, deleted=True)
        with records.reading() as conn:
            records.allowed(conn, actor, records.compiled(entity.name), loser, "delete")
    except RecordError:
        return None
    return loser

"""Create and edit pages, the live preview of computed fields, and the record pickers.

Routes: GET|POST /e/<entity>/new, GET|POST /e/<entity>/<id>/edit, POST /e/<entity>/preview,
GET /e/<entity>/pick/<field>?q= (matching records by their title, through the list service
with the viewer's access) and GET /e/<entity>/pick/<field>/choose?id= (the picker holding
that choice). Saving goes through Records.create/update; what it refuses comes back as the
form again, with each problem beside its field and what was typed kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.messages import msg
from engine.metadata.model import Entity
from engine.runtime.errors import STALE_VERSION, BadRequest, Conflict, Invalid, NotFound
from engine.runtime.imports.guard import DuplicateFound, create_unless_duplicate
from engine.runtime.records.computed import RECORD_KEY
from engine.runtime.records.lines import LINES_KEY, save_with_lines
from engine.web.auth import safe_next
from engine.web.i18n import N_, translations
from engine.web.numbers import whole_number
from engine.web.pages.duplicates import ALLOW_FIELD, DuplicateItem, duplicate_items, live_hint
from engine.web.pages.fields import entity_of, link_target, titles
from engine.web.pages.line_grid import ORDER_KEY, GridView, LineGridForm, slot_field
from engine.web.pages.pickers import OTHERS, SUGGESTED, Hit, Pickers, include_for
from engine.web.pages.widgets import FormModel, SectionView, State, Typed, Widget, posted_lists
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

MAX_QUERY = 200
# Pickers outside a record's own fields (the assign and team forms): name -> what it picks.
PSEUDO_PICKS = {"_owner": "user", "_department": "department", "_member": "user"}
PSEUDO_LABELS = {"_owner": N_("Owner"), "_department": N_("Department"),
                 "_member": N_("User"), "_merge": N_("Record")}
SAME_ENTITY_PICK = "_merge"
"""The merge page's picker (engine/web/pages/merging.py): a record of the same entity."""

_RECORD_PAGE = re.compile(r"/e/[a-z][a-z0-9_]*/[0-9]+")
NEW_TITLE = N_("New %(entity)s")
EDIT_TITLE = N_("Edit %(entity)s")


@dataclass
class FormView:
    entity: Entity
    heading: str
    action: str
    cancel_url: str
    sections: list[SectionView]
    record_id: int | None = None
    record_title: str = ""
    """The edited record's title as stored (the breadcrumb names it, not its number)."""
    version: int | None = None
    next_url: str = ""
    top_errors: list[str] = field(default_factory=list)
    conflict: bool = False
    status: int = 200
    grid: GridView | None = None
    """The line-item grid (engine/web/pages/line_grid.py), when the form has one."""
    duplicates: list[DuplicateItem] = field(default_factory=list)
    """A new record matching others: the warning's candidates (engine/web/pages/duplicates.py)."""
    hint: bool = False
    """A new record of an entity with duplicate rules: the form has a live duplicate hint."""


class FormPages(PageFamily):
    def routes(self) -> list[Route]:
        return [
            Route("/e/{entity}/new", self.new, methods=["GET", "POST"]),
            Route("/e/{entity}/preview", self.preview, methods=["POST"]),
            Route("/e/{entity}/pick/{field}", self.pick),
            Route("/e/{entity}/pick/{field}/choose", self.choose),
            Route("/e/{entity}/{record_id:id}/edit", self.edit, methods=["GET", "POST"]),
        ]

    # -- pages -------------------------------------------------------------------------

    async def new(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        if request.method == "GET":
            posted = posted_lists(list(request.query_params.multi_items()))
        else:
            posted = await read_posted(request)
        result = await run_in_threadpool(self._new, viewer, entity, posted,
                                         request.method == "POST")
        return self._answer(request, result)

    async def edit(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        # A GET may bring typed values back (a form kept over a sign-in, engine/web/auth.py).
        posted = await read_posted(request) if request.method == "POST" else posted_lists(
            list(request.query_params.multi_items()))
        result = await run_in_threadpool(self._edit, viewer, entity, record_id, posted,
                                         request.method == "POST")
        return self._answer(request, result)

    def _answer(self, request: Request, result: FormView | str) -> Response:
        if isinstance(result, str):
            return RedirectResponse(result, status_code=303)
        return self.ui.page(request, "form.html", {"form": result}, status=result.status)

    def _new(self, viewer: Viewer, entity: Entity, posted: dict[str, list[str]],
             saving: bool) -> FormView | str:
        actor = viewer.user.actor()
        self.records.policy.require(actor, entity, "create")
        fm = FormModel(self.model, self.records, actor, viewer.language, entity)
        typed = fm.typed_of(posted)
        next_url = safe_next(first_value(posted, "next")) or ""
        errors: dict[str, str] = {}
        status = 200
        conflict = ""
        duplicates: list[DuplicateItem] = []
        grid = LineGridForm.of(self.model, self.records, actor, viewer.language, entity, None)
        if grid is not None:
            grid.read_rows(posted, from_post=saving or ORDER_KEY in posted)
        ev = fm.evaluate(None, typed, grid.totals() if grid is not None else None)
        if saving:
            try:
                values = fm.submitted(typed, ev.states, creating=True)
                allow = first_value(posted, ALLOW_FIELD) == "1"
                created = save_with_lines(self.records, actor, entity.name, None, values, None,
                                          grid.edits()) if grid is not None \
                    else create_unless_duplicate(self.records, actor, entity.name, values,
                                                 allow_duplicate=allow)
                return after_save(next_url, f"/e/{entity.name}/{created['id']}",
                                  "created", entity.name)
            except Invalid as exc:
                errors, status = self._refused(exc, grid), 422
            except DuplicateFound as exc:
                duplicates, status = duplicate_items(entity, exc.candidates,
                                                     viewer.language), 409
            except Conflict as exc:
                self._refused(exc, grid)
                conflict, status = exc.message, 409
        name = entity.label.get(viewer.language)
        view = FormView(entity, _t(viewer, NEW_TITLE) % {"entity": name},
                        f"/e/{entity.name}/new", next_url or f"/e/{entity.name}",
                        fm.sections(ev, typed, errors), next_url=next_url, status=status)
        view.top_errors = self._top_errors(fm, view, errors, viewer) + ([conflict] if conflict
                                                                        else [])
        view.grid = grid.view(viewer.language) if grid is not None else None
        view.duplicates = duplicates
        view.hint = bool(entity.duplicates)
        return view

    def _edit(self, viewer: Viewer, entity: Entity, record_id: int,
              posted: dict[str, list[str]], saving: bool) -> FormView | str:
        actor = viewer.user.actor()
        stored = self.records.get(actor, entity.name, record_id)
        with self.records.reading() as conn:  # 403 before showing a form to fill
            self.records.allowed(conn, actor, self.records.compiled(entity.name), record_id,
                                 "update")
        fm = FormModel(self.model, self.records, actor, viewer.language, entity)
        typed = fm.typed_of(posted, stored)
        next_url = safe_next(first_value(posted, "next")) or ""
        version = whole(first_value(posted, "version")) if saving else None
        if saving and version is None:  # without it the save could overwrite a change unseen
            raise BadRequest(msg("the form did not say which version of the record it changes"),
                             {"version": msg("is not a number")})
        errors: dict[str, str] = {}
        status, stale, conflict = 200, False, ""
        grid = LineGridForm.of(self.model, self.records, actor, viewer.language, entity,
                               record_id)
        if grid is not None:
            grid.read_rows(posted, from_post=saving or ORDER_KEY in posted)
        ev = fm.evaluate(stored, typed, grid.totals() if grid is not None else None)
        if saving:
            try:
                values = fm.submitted(typed, ev.states, creating=False)
                base = version if version is not None else stored["version"]
                if grid is not None:
                    save_with_lines(self.records, actor, entity.name, record_id, values, base,
                                    grid.edits())
                else:
                    self.records.update(actor, entity.name, record_id, values, base)
                return after_save(next_url, f"/e/{entity.name}/{record_id}", "saved",
                                  entity.name)
            except Invalid as exc:
                errors, status = self._refused(exc, grid), 422
            except Conflict as exc:
                self._refused(exc, grid)
                status = 409
                stale = exc.fields.get("version") == STALE_VERSION
                conflict = "" if stale else exc.message
        name = entity.label.get(viewer.language)
        detail = f"/e/{entity.name}/{record_id}"
        view = FormView(entity, _t(viewer, EDIT_TITLE) % {"entity": name},
                        f"{detail}/edit", next_url or detail, fm.sections(ev, typed, errors),
                        record_id=record_id, next_url=next_url, status=status, conflict=stale,
                        record_title=str(stored.get(entity.title) or f"#{record_id}"),
                        # After a conflict the form keeps the version it was opened with,
                        # so sending it again cannot overwrite the other change unseen.
                        version=version if saving and version is not None
                        else whole(first_value(posted, "version")) or stored["version"])
        view.top_errors = self._top_errors(fm, view, errors, viewer) + ([conflict] if conflict
                                                                        else [])
        view.grid = grid.view(viewer.language) if grid is not None else None
        return view

    @staticmethod
    def _refused(exc: Invalid | Conflict, grid: LineGridForm | None) -> dict[str, str]:
        """The record's problems of a refused save; the lines' go to the grid."""
        if grid is None:
            return exc.fields
        grid.refused(exc)
        return {k: v for k, v in exc.fields.items() if k != LINES_KEY}

    def _top_errors(self, fm: FormModel, view: FormView, errors: dict[str, str],
                    viewer: Viewer) -> list[str]:
        """Problems with no widget to stand beside: the record's rules, hidden fields."""
        shown = {w.name for s in view.sections for w in s.widgets if w.state != "hidden"}
        out: list[str] = []
        for key, message in errors.items():
            if key == RECORD_KEY:
                out.append(message)
            elif key not in shown:
                label = fm.entity.field(key).label if fm.entity.has_field(key) else key
                out.append(msg("%(field)s: %(problem)s", field=label, problem=message))
        return out

    # -- live preview ------------------------------------------------------------------

    async def preview(self, request: Request) -> Response:
        """Computed fields and condition-driven fields for the values being typed, as htmx
        out-of-band swaps: outputs `computed-<name>`, and each `field-<name>` whose state
        (shown, hidden, readonly) differs from the one the page posts in `_state`."""
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        posted = await read_posted(request)
        computed, changed = await run_in_threadpool(self._preview, viewer, entity, posted)
        hint = None
        if first_value(posted, "record_id") is None:  # a new record: does it exist already?
            hint = await run_in_threadpool(live_hint, self.records, viewer.user.actor(),
                                           entity, posted, viewer.language)
        return self.ui.page(request, "form_preview.html",
                            {"computed": computed, "changed": changed, "hint": hint,
                             "entity": entity})

    def _preview(self, viewer: Viewer, entity: Entity,
                 posted: dict[str, list[str]]) -> tuple[list[Widget], list[Widget]]:
        actor = viewer.user.actor()
        record_id = whole(first_value(posted, "record_id"))
        stored = None
        if record_id is not None:
            stored = self.records.get(actor, entity.name, record_id)
        else:
            self.records.policy.require(actor, entity, "create")
        fm = FormModel(self.model, self.records, actor, viewer.language, entity)
        typed = fm.typed_of(posted, stored)
        grid = LineGridForm.of(self.model, self.records, actor, viewer.language, entity,
                               record_id)
        rolled: set[str] = set()
        if grid is not None:
            grid.read_rows(posted, from_post=True)
            rolled = {f.name for f in grid.rolled()}
        ev = fm.evaluate(stored, typed, grid.totals() if grid is not None else None)
        before: dict[str, str] = {}
        for item in posted.get("_state", []):
            name, _, state = item.partition(":")
            before[name] = state
        computed: list[Widget] = []
        changed: list[Widget] = []
        for s in fm.sections(ev, typed, {}):
            for w in s.widgets:
                if w.conditional and before.get(w.name) != w.state:
                    changed.append(w)
                elif w.kind == "computed" and w.state != "hidden" and (
                        entity.field(w.name).computed or w.name in rolled):
                    computed.append(w)  # a rollup changes here only over the grid's lines
        if grid is not None:
            computed += grid.preview_cells()
        return computed, changed

    # -- pickers -----------------------------------------------------------------------

    async def pick(self, request: Request) -> Response:
        """Records (or active users) matching `q` by their title, as buttons that choose."""
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        name = request.path_params["field"]
        text = request.query_params.get("q", "").strip()[:MAX_QUERY]
        posted = posted_lists(list(request.query_params.multi_items()))
        hits = await run_in_threadpool(self._hits, viewer, entity, name, text, posted)
        return self.ui.page(request, "picker.html", {
            "hits": hits, "name": name, "q": text, "groups": (SUGGESTED, OTHERS),
            "choose_url": f"/e/{entity.name}/pick/{name}/choose"})

    def _target(self, viewer: Viewer, entity: Entity, name: str) -> str:
        """What the picker `name` of `entity` picks; 404 for anything else."""
        if name in PSEUDO_PICKS:
            return PSEUDO_PICKS[name]
        if name == SAME_ENTITY_PICK:
            return entity.name
        name = slot_field(name)  # a picker in a line grid's row: lines-3-product
        mask = self.records.policy.mask(viewer.user.actor(), entity)
        target = link_target(entity.field(name)) if entity.has_field(name) else None
        if target is None or name in mask.hidden:
            raise NotFound(msg("no field '%(field)s' of %(entity)s to pick from", field=name,
                                   entity=entity.name))
        return target

    def _hits(self, viewer: Viewer, entity: Entity, name: str, text: str,
              posted: dict[str, list[str]]) -> list[Hit]:
        target = self._target(viewer, entity, name)
        pickers = Pickers(self.model, self.records)
        actor = viewer.user.actor()
        if name == "_owner":
            return pickers.assignable_users(actor, entity, text)
        if name == "_department":
            return pickers.assignable_departments(actor, entity, text)
        if target == "user":
            return pickers.users(actor, text)
        if name == SAME_ENTITY_PICK:
            return pickers.titled(actor, viewer.language, entity, text)
        return pickers.references(actor, viewer.language, entity, slot_field(name), text,
                                  posted)

    async def choose(self, request: Request) -> Response:
        """The picker widget holding the record `id` (or nothing), if the viewer may read it;
        its `crm-picked` event makes the form's preview run again."""
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        name = request.path_params["field"]
        chosen = whole(request.query_params.get("id"))
        widget = await run_in_threadpool(self._chosen, viewer, entity, name, chosen)
        return self.ui.page(request, "picker_widget.html", {"w": widget, "focus": True},
                            headers={"HX-Trigger-After-Swap": "crm-picked"})

    def _chosen(self, viewer: Viewer, entity: Entity, name: str,
                chosen: int | None) -> Widget:
        target = self._target(viewer, entity, name)
        w = Widget(name=name, label="", kind="picker",
                   pick_url=f"/e/{entity.name}/pick/{name}",
                   pick_include=include_for(self.model, entity, slot_field(name)))
        if chosen is None:
            return w
        if target == "user":
            shown = Pickers(self.model, self.records).chosen_user(viewer.user.actor(), entity,
                                                                  name, chosen)
        else:
            shown = titles(self.model, self.records, viewer.user.actor(), target,
                           [chosen]).get(chosen)
        if shown is not None:
            w.value, w.display = str(chosen), shown
        return w


def picker_label(name: str) -> str:
    """The msgid labelling a pseudo-field picker (assign and team forms)."""
    return PSEUDO_LABELS[name]


async def read_posted(request: Request) -> dict[str, list[str]]:
    async with request.form() as form:
        return posted_lists([(k, v) for k, v in form.multi_items() if isinstance(v, str)])


def after_save(next_url: str, detail: str, done: str, what: str) -> str:
    """Where a saved form goes, telling the page to show its notice (`done`): the record's
    page, or `next` when the form was given one. Only a record's page (`/e/<entity>/<id>`)
    shows notices, so another `next` is left as it is.

    >>> after_save("", "/e/contact/7", "created", "contact")
    '/e/contact/7?done=created'
    >>> after_save("/e/account/3", "/e/contact/7", "created", "contact")
    '/e/account/3?done=created&what=contact'
    >>> after_save("/e/contact?account=3", "/e/contact/7", "created", "contact")
    '/e/contact?account=3'
    """
    if not next_url:
        return f"{detail}?done={done}"
    if _RECORD_PAGE.fullmatch(next_url):
        return f"{next_url}?" + urlencode({"done": done, "what": what})
    return next_url


def first_value(posted: dict[str, list[str]], key: str) -> str | None:
    items = posted.get(key)
    return items[0] if items else None


def whole(raw: str | None) -> int | None:
    """A positive whole number from a form, or None."""
    number = whole_number(raw.strip() if raw is not None else None, 18)
    return number if number else None


def _t(viewer: Viewer, message: str) -> str:
    return translations()[viewer.language].gettext(message)


__all__ = ["FormPages", "State", "Typed", "picker_label"]


def _unused(_: Any) -> None:  # pragma: no cover
    pass

"""Detail pages: GET /e/<entity>/<id>, and the actions posted from them.

The page shows the form's sections read-only (formatted for the viewer's language, computed
fields included, fields hidden from the viewer left out, `hidden` conditions applied), the
explanation of a computed sum, the related lists with an "add" link, the audit history,
the team, and the assign form. Actions: POST .../assign, .../team and
.../team/<user_id>/remove; each goes back to the page (303) or shows it with the problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.formula import FormulaError, sum_terms
from engine.messages import joined, localize, msg
from engine.metadata import Model
from engine.metadata.model import Entity, Field, RelatedList
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import STALE_VERSION, Conflict, NotFound, RecordError
from engine.runtime.flows.conversions import convert, offered
from engine.runtime.records import Records
from engine.runtime.records.assign import assign_outcome
from engine.runtime.records.opened import OpenedRecord, open_record
from engine.runtime.records.team import TEAM_ACCESS
from engine.runtime.values import ValueProblem
from engine.web.i18n import N_
from engine.web.pages.assigning import AssignOrder
from engine.web.pages.fields import Display, Shown, entity_of, link_target
from engine.web.pages.forms import first_value, read_posted, whole
from engine.web.pages.merging import MERGED, audit_text, possible_duplicates, undo_of
from engine.web.pages.recycled import recycled_page, restorable
from engine.web.pages.tree import tree_shape
from engine.web.pages.widgets import FormModel, Widget
from engine.web.ui import PageFamily, Ui
from engine.web.viewer import Viewer, require_viewer

RELATED_ROWS = 20
ACTIONS = {"create": N_("Created"), "update": N_("Changed"),
           "delete": N_("Moved to the recycle bin"), "restore": N_("Restored"),
           "assign": N_("Assigned"), "team": N_("Team changed"),
           "purge": N_("Deleted for good"), "attachment": N_("Files changed"),
           "merge": N_("Merged"), "unmerge": N_("Merge undone")}
ENGINE_LABELS = {"owner_id": N_("Owner"), "department_id": N_("Department"),
                 "team": N_("Team"), "attachments": N_("Attachments"), "merge": N_("Merge")}
ACCESS_LABELS = {"read": N_("Can read"), "edit": N_("Can edit")}
NOTICES = {"assigned": N_("The record was assigned."), "merged": MERGED,
           "unmerged": N_("The merge was undone: this record is back, with the records that "
                          "referred to it."),
           "team": N_("The team was updated."),
           "saved": N_("Changes saved.")}
# A related list's newest rows and how many there are in all.
Children = tuple[list[dict[str, Any]], int]
STALE = N_("Someone else changed this record after you opened it. Nothing was changed.")


@dataclass(frozen=True)
class Item:
    name: str
    label: str
    shown: Shown
    terms: tuple[tuple[str, Shown], ...] = ()


@dataclass(frozen=True)
class SectionOut:
    label: str
    columns: int
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Related:
    entity: Entity
    via: str
    label: str
    columns: tuple[tuple[str, str], ...]
    rows: tuple[tuple[int, tuple[Shown, ...]], ...]
    total: int
    add_url: str | None
    all_url: str
    tree_url: str | None


@dataclass(frozen=True)
class Change:
    at: datetime | None
    who: str
    action: str
    field: str
    old: str
    new: str


@dataclass
class DetailView:
    entity: Entity
    record: dict[str, Any]
    title: str
    sections: list[SectionOut]
    engine: list[tuple[str, Shown]]
    related: list[Related]
    history: list[Change]
    team: list[dict[str, Any]]
    can_update: bool
    can_delete: bool
    can_assign: bool
    pickers: dict[str, Widget] = field(default_factory=dict)
    conversions: list[tuple[str, str]] = field(default_factory=list)
    """(name, label) of the flows' conversions the viewer may run on the record now."""
    access_labels: Mapping[str, str] = field(default_factory=lambda: ACCESS_LABELS)


class RecordPages(PageFamily):
    def __init__(self, model: Model, records: Records, ui: Ui) -> None:
        super().__init__(model, records, ui)
        # Computed fields that are a sum (a + b + c) get their terms shown on the page.
        self.sums: dict[tuple[str, str], bool] = {}
        for e in model.entities:
            for f in e.fields:
                if f.formula is not None:
                    try:
                        self.sums[(e.name, f.name)] = sum_terms(f.formula) is not None
                    except FormulaError:
                        self.sums[(e.name, f.name)] = False

    def routes(self) -> list[Route]:
        base = "/e/{entity}/{record_id:id}"
        return [
            Route(base, self.detail),
            Route(f"{base}/assign", self.assign, methods=["POST"]),
            Route(f"{base}/team", self.add_member, methods=["POST"]),
            Route(base + "/team/{user_id:id}/remove", self.remove_member, methods=["POST"]),
            Route(base + "/actions/{action}", self.convert, methods=["POST"]),
        ]

    # -- the page ----------------------------------------------------------------------

    async def detail(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        try:
            view = await run_in_threadpool(self._detail, viewer, entity, record_id)
        except NotFound:  # in the recycle bin? said only to those who may restore it
            binned = await run_in_threadpool(restorable, self.records, viewer, entity,
                                             record_id)
            if binned is None:
                raise
            return await run_in_threadpool(recycled_page, self.ui, self.records, request,
                                           viewer, entity, binned)
        done = request.query_params.get("done", "")
        notice = self._notice(entity, done, request.query_params.get("what", ""))
        undo = None if done != "merged" else await run_in_threadpool(
            undo_of, self.records, viewer.user.actor(), entity,
            whole(request.query_params.get("loser")))
        duplicates = [] if not (view.can_update and view.can_delete) else \
            await run_in_threadpool(possible_duplicates, self.records, viewer.user.actor(),
                                    entity, view.record)
        return self.ui.page(request, "detail.html", {"d": view, "notice": notice,
                                                     "undo_merge": undo,
                                                     "duplicates": duplicates})

    def _notice(self, entity: Entity, done: str, what: str) -> str:
        """`?done=` after a redirect → its notice (a fixed set: nothing typed is echoed).
        `created` names the kind of record made: `what`, when the form returned to another
        record's page (a related list's "Add"), else this page's entity."""
        if done == "converted" and what and self.model.has_entity(what):
            return msg("Made from a %(entity)s by its conversion.",
                       entity=self.model.entity(what).label)
        if done == "created":
            made = self.model.entity(what) if what and self.model.has_entity(what) else entity
            return msg("%(entity)s created.", entity=made.label)
        return NOTICES.get(done, "")

    def _page(self, request: Request, viewer: Viewer, entity: Entity, record_id: int,
              error: str, status: int) -> Response:
        view = self._detail(viewer, entity, record_id)
        return self.ui.page(request, "detail.html",
                            {"d": view, "error": error, "reload": status == 409},
                            status=status)

    def _detail(self, viewer: Viewer, entity: Entity, record_id: int) -> DetailView:
        """Everything the page reads, on one connection (`open_record`); then the titles of
        every linked record and user on it, one query per kind; then the page."""
        actor = viewer.user.actor()
        language = viewer.language
        fm = FormModel(self.model, self.records, actor, language, entity)
        display = fm.display
        with open_record(self.records, actor, entity.name, record_id) as opened:
            record = opened.record
            conditioned = fm.hidden_on(opened.conn, record)
            shown = [[entity.field(ff.name) for ff in section.fields
                      if entity.has_field(ff.name) and ff.name not in fm.mask.hidden
                      and ff.name not in conditioned] for section in fm.form.sections]
            explained = {f.name: terms for f in chain.from_iterable(shown)
                         if (terms := self._explained(opened, f)) is not None}
            children = self._children(actor, entity, opened)
            audit = opened.history()
            team = opened.team()
            allowed = opened.allowed(("update", "delete"))
            conversions = [(cv.name, cv.label.get(language)) for cv in
                           offered(self.records, actor, entity.name, record, opened.conn)]
            # The titles of linked records and users, on the page's own connection.
            display.load_rows(entity, [record], conn=opened.conn)
            display.load([("user", record.get(n))
                          for n in ("owner_id", "created_by", "updated_by")]
                         + [("department", record.get("department_id"))]
                         + [link for child, names, (items, _) in children
                            for link in _links(self.model.entity(child.entity), items, names)]
                         + self._history_links(entity, audit), opened.conn)
        sections: list[SectionOut] = []
        for section, fields in zip(fm.form.sections, shown, strict=True):
            items = tuple(self._item(viewer, record, f, display, explained.get(f.name))
                          for f in fields)
            if items:
                sections.append(SectionOut(section.label.get(language) if section.label
                                           else "", section.columns, items))
        engine = [(ENGINE_LABELS["owner_id"], display.title("user", record["owner_id"])
                   if record.get("owner_id") else Shown("")),
                  (ENGINE_LABELS["department_id"], display.title(
                      "department", record["department_id"])
                   if record.get("department_id") else Shown(""))]
        view = DetailView(
            entity, record, str(record.get(entity.title) or f"#{record_id}"), sections,
            engine, self._related(viewer, entity, record_id, children, display),
            self._history(viewer, entity, audit, display), team,
            can_update="update" in allowed, can_delete="delete" in allowed,
            can_assign=self.records.policy.scope(actor, entity.name, "assign") is not Scope.NONE)
        view.conversions = conversions
        for name in ("_owner", "_department", "_member"):
            view.pickers[name] = Widget(name=name, label="", kind="picker",
                                        pick_url=f"/e/{entity.name}/pick/{name}")
        return view

    def _explained(self, opened: OpenedRecord, f: Field) -> list[tuple[Any, Any]] | None:
        """(answers, value) of each term of a sum field, or None (not a sum, or not for
        this viewer)."""
        if not self.sums.get((opened.c.entity.name, f.name)):
            return None
        try:
            explained = opened.explain(f.name)
        except RecordError:
            return None
        return [(t["answers"], t["value"]) for t in explained["terms"]]

    def _item(self, viewer: Viewer, record: Mapping[str, Any], f: Field, display: Display,
              terms: list[tuple[Any, Any]] | None) -> Item:
        item = Item(f.name, f.label.get(viewer.language), display.show(f, record.get(f.name)))
        if terms is None:
            return item
        # Each answer in words ("Budget: Confirmed"), in the viewer's language; not the formula.
        return Item(item.name, item.label, item.shown,
                    tuple((localize(answers, display.gettext, viewer.language),
                           display.show(f, value)) for answers, value in terms))

    def _children(self, actor: Actor, parent: Entity,
                  opened: OpenedRecord) -> list[tuple[RelatedList, list[str], Children]]:
        """The rows of each related list the viewer may read, with the columns they may
        see: (the list, its columns, (its newest RELATED_ROWS rows, how many in all))."""
        out: list[tuple[RelatedList, list[str], Children]] = []
        for rl in self.model.form(parent.name).related:
            child = self.model.entity(rl.entity)
            if self.records.policy.scope(actor, child.name, "read") is Scope.NONE:
                continue
            hidden = self.records.policy.hidden_fields(actor, child)
            if rl.via in hidden:
                continue
            names = [n for n in rl.columns if n not in hidden and child.has_field(n)] \
                or [child.title]
            sort = rl.sort if rl.sort.removeprefix("-") not in hidden else "-id"
            try:
                page = opened.children(child.name, rl.via, RELATED_ROWS, sort)
            except RecordError:
                continue
            out.append((rl, names, page))
        return out

    def _related(self, viewer: Viewer, parent: Entity, record_id: int,
                 children: list[tuple[RelatedList, list[str], Children]],
                 display: Display) -> list[Related]:
        actor = viewer.user.actor()
        out: list[Related] = []
        for rl, names, (items, total) in children:
            child = self.model.entity(rl.entity)
            hidden = self.records.policy.hidden_fields(actor, child)
            rows = tuple((int(r["id"]), tuple(display.show(child.field(n), r.get(n))
                                              for n in names)) for r in items)
            here = f"/e/{parent.name}/{record_id}"
            may_add = self.records.policy.scope(actor, child.name, "create") is not Scope.NONE \
                and rl.via not in self.records.policy.mask(actor, child).readonly
            # a tree when the children also hang under each other through another link
            # (contacts under their manager), not when the list is that link itself
            shape = tree_shape(self.model, parent, child.name)
            self_ref = shape is not None and shape.via == rl.via \
                and shape.parent_link not in hidden
            out.append(Related(
                child, rl.via, rl.label.get(viewer.language),
                tuple((n, child.field(n).label.get(viewer.language)) for n in names),
                rows, total,
                f"/e/{child.name}/new?" + urlencode({rl.via: record_id, "next": here})
                if may_add else None,
                f"/e/{child.name}?" + urlencode(
                    {rl.via: record_id} | ({"sort": rl.sort} if rl.sort != "-id"
                                          and rl.sort.removeprefix("-") not in hidden else {})),
                f"{here}/tree/{child.name}" if self_ref else None))
        return out

    def _history_links(self, entity: Entity,
                       rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        """The users and linked records the history names, for `Display.load`."""
        links: list[tuple[str, Any]] = [("user", r["user_id"]) for r in rows]
        for r in rows:
            target = self._target_of(entity, r["field"])
            if target is not None:
                links += [(target, r["old"]), (target, r["new"])]
        return links

    def _history(self, viewer: Viewer, entity: Entity, rows: list[dict[str, Any]],
                 display: Display) -> list[Change]:
        changes: list[Change] = []
        for r in reversed(rows):  # newest first
            name = r["field"]
            label = (display.gettext(ENGINE_LABELS[name]) if name in ENGINE_LABELS
                     else entity.field(name).label.get(viewer.language)
                     if name and entity.has_field(name) else name or "")
            if r["action"] == "create" and isinstance(r["new"], dict):
                new = "; ".join(
                    f"{entity.field(k).label.get(viewer.language)}: "
                    f"{self._audit_value(entity, k, v, display)}"
                    for k, v in r["new"].items() if entity.has_field(k))
                old = ""
            else:
                old = self._audit_value(entity, name, r["old"], display)
                new = self._audit_value(entity, name, r["new"], display)
            who = display.title("user", r["user_id"]).text if r["user_id"] else ""
            changes.append(Change(_when(r["at"]), who, ACTIONS.get(r["action"], r["action"]),
                                  label, old, new))
        return changes

    def _target_of(self, entity: Entity, name: str | None) -> str | None:
        if name == "owner_id":
            return "user"
        if name == "department_id":
            return "department"
        if name and entity.has_field(name):
            return link_target(entity.field(name))
        return None

    def _audit_value(self, entity: Entity, name: str | None, value: Any,
                     display: Display) -> str:
        """An audited (JSON) value as the page shows the field's values."""
        if value is None or name is None:
            return ""
        if name == "team" and isinstance(value, dict):
            return f"{value.get('user', '')} ({value.get('access', '')})"
        if name == "attachments" and isinstance(value, dict):  # a file added or removed
            return str(value.get("file_name", ""))
        if name == "merge" and isinstance(value, dict):  # engine/runtime/imports/merge.py
            return audit_text(value, entity, display)
        target = self._target_of(entity, name)
        if target is not None and name in ("owner_id", "department_id"):
            return display.title(target, value).text if isinstance(value, int) else str(value)
        if entity.has_field(name):
            f = entity.field(name)
            try:
                typed = self.records.compiled(entity.name).coercers[name](value) \
                    if not f.computed else value
            except (ValueProblem, KeyError):
                return str(value)
            return display.show(f, typed).text
        return str(value)

    # -- actions -----------------------------------------------------------------------

    async def assign(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        order = AssignOrder.of(await read_posted(request))
        return await run_in_threadpool(
            self._act, request, viewer, entity, record_id, "assigned",
            lambda: self._assign(request, viewer, entity, record_id, order))

    def _assign(self, request: Request, viewer: Viewer, entity: Entity, record_id: int,
                order: AssignOrder) -> Response | None:
        """Assign; first, when the record would leave the viewer's sight, the page again with
        a warning to confirm; after such an assignment, the list with a notice."""
        actor = viewer.user.actor()
        if not order.confirmed and not assign_outcome(
                self.records, actor, entity.name, record_id, owner=order.owner,
                department=order.department):
            return self.ui.page(request, "detail.html", {
                "d": self._detail(viewer, entity, record_id), "away": order})
        done = self.records.assign(actor, entity.name, record_id, owner=order.owner,
                                   department=order.department, version=order.version)
        if done["visible"]:
            return None
        return RedirectResponse(f"/e/{entity.name}?notice={order.away_key()}", status_code=303)

    async def convert(self, request: Request) -> Response:
        """Run a flow's conversion (engine/runtime/flows/conversions.py) from its button;
        then the main record it made, with a notice; or this page with the problem."""
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        action = str(request.path_params["action"])
        await read_posted(request)  # the CSRF check reads the form

        def run() -> Response:
            done = convert(self.records, viewer.user.actor(), entity.name, record_id, action)
            main = done.records[done.main]
            return RedirectResponse(f"/e/{main.entity}/{main.id}?done=converted&what="
                                    f"{entity.name}", status_code=303)

        return await run_in_threadpool(self._act, request, viewer, entity, record_id,
                                       "converted", run)

    async def add_member(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        posted = await read_posted(request)
        member = whole(first_value(posted, "_member"))
        access = first_value(posted, "access") or "read"
        if access not in TEAM_ACCESS:
            access = "read"
        return await run_in_threadpool(
            self._act, request, viewer, entity, record_id, "team",
            lambda: self.records.set_team_member(viewer.user.actor(), entity.name, record_id,
                                                 member or 0, access))

    async def remove_member(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        record_id = int(request.path_params["record_id"])
        user_id = int(request.path_params["user_id"])
        return await run_in_threadpool(
            self._act, request, viewer, entity, record_id, "team",
            lambda: self.records.remove_team_member(viewer.user.actor(), entity.name,
                                                    record_id, user_id))

    def _act(self, request: Request, viewer: Viewer, entity: Entity, record_id: int,
             done: str, run: Any) -> Response:
        """Run an action; back to the page with a notice, or the page with the problem
        (a 404 or 403 is the error page, as for any request)."""
        try:
            answer = run()
        except Conflict as exc:
            stale = exc.fields.get("version") == STALE_VERSION
            return self._page(request, viewer, entity, record_id,
                              STALE if stale else exc.message, 409)
        except RecordError as exc:
            if exc.status in (403, 404):
                raise
            problems = joined(list(exc.fields.values())) if exc.fields else exc.message
            return self._page(request, viewer, entity, record_id, problems, exc.status)
        if isinstance(answer, Response):
            return answer
        return RedirectResponse(f"/e/{entity.name}/{record_id}?done={done}", status_code=303)


def _links(entity: Entity, rows: Iterable[Mapping[str, Any]],
           names: Iterable[str]) -> list[tuple[str, Any]]:
    """The (target, id) pairs of the link fields `names` of `rows`, for `Display.load`."""
    linked = [(f.name, t) for n in names if entity.has_field(n)
              and (t := link_target(f := entity.field(n))) is not None]
    return [(t, row.get(n)) for row in rows for n, t in linked]


def _when(at: Any) -> datetime | None:
    if isinstance(at, datetime):
        return at
    try:
        return datetime.fromisoformat(str(at))
    except ValueError:
        return None

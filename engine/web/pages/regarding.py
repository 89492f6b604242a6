"""The regarding field's input: choose the kind of record, then the record.

A regarding widget (ui_templates/form_fields.html `regarding`) holds the value "entity:id"
in a hidden input named after the field, a select of the entities the field may point to
that the viewer may read, and a picker of that entity's records:

- GET /e/<entity>/regard/<field>?target=<e>: the widget again, empty, for kind <e> (the
  select's change);
- GET /e/<entity>/regard/<field>/<e>?q=: records of <e> whose title contains the text, as
  any picker offers them (the viewer's access, through the list service);
- GET /e/<entity>/regard/<field>/<e>/choose?id=: the widget holding <e>:<id>, if the
  viewer may read that record (else empty).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.fieldtypes import Regarding
from engine.messages import msg
from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import NotFound, RecordError
from engine.runtime.records import Records
from engine.runtime.records.query import parse_list_params
from engine.types import FieldType
from engine.web.pages.fields import Display, entity_of, titles
from engine.web.pages.forms import whole
from engine.web.pages.pickers import PICK_LIMIT, Hit
from engine.web.pages.widgets import Widget
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

MAX_QUERY = 200


def kinds(records: Records, actor: Actor, f: Field, language: str) -> list[tuple[str, str]]:
    """(entity, label) of the entities regarding field `f` may point to that `actor` may
    read, in the field's order (the configuration's when it names none)."""
    names = f.targets or records.model.entity_names
    return [(n, records.model.entity(n).label.get(language)) for n in names
            if records.model.has_entity(n)
            and records.policy.scope(actor, n, "read") is not Scope.NONE]


def fill(w: Widget, records: Records, actor: Actor, entity: Entity, f: Field,
         value: Any, display: Display) -> None:
    """Make `w` the regarding widget of field `f` holding `value` (a Regarding or None)."""
    w.kind = "regarding"
    w.options = tuple(kinds(records, actor, f, display.language))
    target = value.entity if isinstance(value, Regarding) \
        else (w.options[0][0] if w.options else "")
    w.chosen = (target,)
    w.pick_url = f"/e/{entity.name}/regard/{f.name}/{target}"
    if isinstance(value, Regarding):
        w.value = str(value)
        display.load([(value.entity, value.id)])
        w.display = display.regarding(value).text


class RegardingPickers(PageFamily):
    def routes(self) -> list[Route]:
        base = "/e/{entity}/regard/{field}"
        return [
            Route(base, self.kind),
            Route(base + "/{target}", self.pick),
            Route(base + "/{target}/choose", self.choose),
        ]

    def _field(self, viewer: Viewer, request: Request) -> tuple[Entity, Field]:
        entity = entity_of(self.model, request.path_params["entity"])
        name = request.path_params["field"]
        mask = self.records.policy.mask(viewer.user.actor(), entity)
        if not entity.has_field(name) or entity.field(name).type is not FieldType.REGARDING \
                or name in mask.hidden:
            raise NotFound(msg("no field '%(field)s' of %(entity)s to pick from", field=name,
                               entity=entity.name))
        return entity, entity.field(name)

    def _target(self, viewer: Viewer, f: Field, target: str) -> str:
        allowed = {n for n, _ in kinds(self.records, viewer.user.actor(), f, viewer.language)}
        if target not in allowed:
            raise NotFound(msg("no entity %(name)s", name=repr(target[:63])))
        return target

    def _widget(self, viewer: Viewer, entity: Entity, f: Field, target: str,
                value: Regarding | None) -> Widget:
        actor = viewer.user.actor()
        w = Widget(name=f.name, label="", kind="regarding")
        fill(w, self.records, actor, entity, f, value,
             Display(self.model, self.records, actor, viewer.language))
        if value is None:
            w.chosen = (target,)
            w.pick_url = f"/e/{entity.name}/regard/{f.name}/{target}"
        return w

    async def kind(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity, f = self._field(viewer, request)
        target = self._target(viewer, f, request.query_params.get("target", ""))
        w = await run_in_threadpool(self._widget, viewer, entity, f, target, None)
        return self.ui.page(request, "regarding_widget.html", {"w": w, "focus": True})

    async def pick(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity, f = self._field(viewer, request)
        target = self._target(viewer, f, request.path_params["target"])
        text = request.query_params.get("q", "").strip()[:MAX_QUERY]
        hits = await run_in_threadpool(self._hits, viewer.user.actor(), target, text)
        return self.ui.page(request, "picker.html", {
            "hits": hits, "name": f.name, "q": text, "groups": ("", ""),
            "choose_url": f"/e/{entity.name}/regard/{f.name}/{target}/choose"})

    def _hits(self, actor: Actor, target: str, text: str) -> list[Hit]:
        other = self.model.entity(target)
        params = {"page_size": str(PICK_LIMIT)}
        if other.has_field(other.title):
            params["sort"] = other.title
            if text:
                params[f"{other.title}__contains"] = text
        try:
            rows = self.records.list_records(actor, target,
                                             parse_list_params(other, params)).items
        except RecordError:  # a title that cannot be searched or sorted on
            return []
        return [Hit(int(r["id"]), str(r.get(other.title) or f"#{r['id']}")) for r in rows]

    async def choose(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity, f = self._field(viewer, request)
        target = self._target(viewer, f, request.path_params["target"])
        chosen = whole(request.query_params.get("id"))

        def widget() -> Widget:
            value = None
            if chosen is not None and titles(self.model, self.records, viewer.user.actor(),
                                             target, [chosen]).get(chosen) is not None:
                value = Regarding.of(target, chosen)
            return self._widget(viewer, entity, f, target, value)

        w = await run_in_threadpool(widget)
        return self.ui.page(request, "regarding_widget.html", {"w": w, "focus": True},
                            headers={"HX-Trigger-After-Swap": "crm-picked"})

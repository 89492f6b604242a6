"""The "Why did this change?" panel of a record page: the record's stage history and the
automation runs of its flows (engine/runtime/flows/explain.py), as the viewer may see them.

The detail page loads it with htmx (`GET /e/<entity>/<id>/automation`); an entity no flow
is about answers an empty fragment, which removes the placeholder.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from engine.runtime.flows.explain import automation
from engine.web.pages.fields import entity_of
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer


class AutomationPages(PageFamily):
    def routes(self) -> list[Route]:
        return [Route("/e/{entity}/{record_id:id}/automation", self.panel, methods=["GET"])]

    async def panel(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        if not any(f.entity == entity.name for f in self.model.flows):
            return HTMLResponse("")
        record_id = int(request.path_params["record_id"])
        context = await run_in_threadpool(self._context, viewer, entity.name, record_id)
        return self.ui.page(request, "automation_panel.html", context)

    def _context(self, viewer: Viewer, entity: str, record_id: int) -> dict[str, Any]:
        found = automation(self.records, viewer.user.actor(), entity, record_id)
        e = self.model.entity(entity)
        language = viewer.language

        def label(name: str) -> str:
            return e.field(name).label.get(language) if e.has_field(name) else name

        def option(name: str, value: Any) -> Any:
            if isinstance(value, str) and e.has_field(name) and e.field(name).options:
                return e.field(name).option_label(value, language)
            return "—" if value is None else value

        stages = [{**s, "field_label": label(s["field"]),
                   "stage_label": option(s["field"], s["stage"])} for s in found["stages"]]
        runs = [{**r, "changes": [(label(k), option(k, v[0]), option(k, v[1]))
                                  for k, v in r["diff"].items()
                                  if isinstance(v, list) and len(v) == 2]}
                for r in found["runs"]]
        return {"stages": stages, "runs": runs}

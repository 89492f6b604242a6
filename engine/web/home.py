"""The dashboard (`/`): the user's home page (engine/web/dashboard.py) and the records per
entity they may read; the global search is engine/web/pages/search.py."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.runtime.errors import RecordError
from engine.runtime.records.query import parse_list_params
from engine.web.dashboard import home_view
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer


class Home(PageFamily):
    def routes(self) -> list[Route]:
        return [Route("/", self.dashboard)]

    async def dashboard(self, request: Request) -> Response:
        viewer = require_viewer(request)
        counts = await run_in_threadpool(self._counts, viewer)
        home = await run_in_threadpool(home_view, self.records, viewer.user.actor())
        return self.ui.page(request, "dashboard.html", {"counts": counts, "home": home})

    def _counts(self, viewer: Viewer) -> dict[str, int]:
        """Records per entity the viewer may see; an entity they may not list is left out."""
        actor = viewer.user.actor()
        counts: dict[str, int] = {}
        readable = self.ui.readable(actor)
        for e in self.model.entities:
            if e.name not in readable:
                continue
            try:
                page = self.records.list_records(
                    actor, e.name, parse_list_params(e, {"page_size": "1"}))
            except RecordError:
                continue
            counts[e.name] = page.total
        return counts

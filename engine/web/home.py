"""The dashboard (`/`): the dashboard of the user's roles (config/dashboards,
engine/web/dashboards.py) if one names them, the user's home page (engine/web/dashboard.py)
and the records per entity they may read; the global search is engine/web/pages/search.py."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.runtime.errors import RecordError
from engine.runtime.records.query import parse_list_params
from engine.web.dashboard import home_view
from engine.web.dashboards import placed_widgets
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer


class Home(PageFamily):
    def routes(self) -> list[Route]:
        return [Route("/", self.dashboard)]

    async def dashboard(self, request: Request) -> Response:
        viewer = require_viewer(request)
        counts = await run_in_threadpool(self._counts, viewer)
        actor = viewer.user.actor()
        home = await run_in_threadpool(home_view, self.records, actor)
        mine = self.model.dashboard_of(actor.roles)
        widgets = await run_in_threadpool(placed_widgets, self.records, actor, mine) \
            if mine is not None else ()
        return self.ui.page(request, "dashboard.html", {
            "counts": counts, "home": home, "role_dashboard": mine if widgets else None,
            "role_widgets": widgets})

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

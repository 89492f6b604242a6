"""The dashboard pages (engine/web/dashboards.py): `/dashboards/<name>` shows one dashboard's
widgets the viewer may run (the home page shows the viewer's own), and
`/dashboards/<name>/widgets/<n>` is the fragment of its n-th widget (from 0, in the file's
order) that each placeholder loads with htmx: the widget's report run as the viewer.

A widget of a report the viewer may not run is the 403 of the report page, naming no field;
an unknown dashboard or widget the 404 page.
"""

from __future__ import annotations

from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.messages import msg
from engine.metadata.dashboards import Dashboard
from engine.metadata.model import Model
from engine.runtime.errors import NotFound
from engine.web.dashboards import placed_widgets, widget_view
from engine.web.ui import PageFamily
from engine.web.viewer import require_viewer


def find_dashboard(model: Model, name: str) -> Dashboard:
    dashboard = model.dashboard(name)
    if dashboard is None:
        raise NotFound(msg("no dashboard '%(dashboard)s'", dashboard=name))
    return dashboard


class DashboardPages(PageFamily):
    def routes(self) -> list[Route]:
        return [
            Route("/dashboards/{dashboard}", self.one, methods=["GET"]),
            Route("/dashboards/{dashboard}/widgets/{widget:int}", self.widget,
                  methods=["GET"]),
        ]

    async def one(self, request: Request) -> Response:
        viewer = require_viewer(request)
        dashboard = find_dashboard(self.model, str(request.path_params["dashboard"]))
        placed = await run_in_threadpool(placed_widgets, self.records, viewer.user.actor(),
                                         dashboard)
        return self.ui.page(request, "dashboard_page.html",
                            {"dashboard": dashboard, "widgets": placed})

    async def widget(self, request: Request) -> Response:
        viewer = require_viewer(request)
        dashboard = find_dashboard(self.model, str(request.path_params["dashboard"]))
        n = int(request.path_params["widget"])
        if not 0 <= n < len(dashboard.widgets):
            raise NotFound(msg("no widget %(widget)s on dashboard '%(dashboard)s'",
                               widget=n, dashboard=dashboard.name))
        view = await run_in_threadpool(partial(widget_view, self.records, viewer.user.actor(),
                                               dashboard.widgets[n], viewer.language))
        return self.ui.page(request, "dashboard_widget.html", {"view": view})

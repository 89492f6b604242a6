"""The dashboard (`/`) and the global search (`/search?q=`) over every entity's title."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.runtime.errors import RecordError
from engine.runtime.records.query import parse_list_params
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

MAX_QUERY = 200
HITS_PER_ENTITY = 10


@dataclass(frozen=True)
class Hit:
    id: int
    title: str


@dataclass(frozen=True)
class EntityHits:
    entity: str
    label: str
    hits: tuple[Hit, ...]
    total: int


class Home(PageFamily):
    def routes(self) -> list[Route]:
        return [Route("/", self.dashboard), Route("/search", self.search)]

    async def dashboard(self, request: Request) -> Response:
        viewer = require_viewer(request)
        counts = await run_in_threadpool(self._counts, viewer)
        return self.ui.page(request, "dashboard.html", {"counts": counts})

    def _counts(self, viewer: Viewer) -> dict[str, int]:
        """Records per entity the viewer may see; an entity they may not list is left out."""
        actor = viewer.user.actor()
        counts: dict[str, int] = {}
        for e in self.model.entities:
            try:
                page = self.records.list_records(
                    actor, e.name, parse_list_params(e, {"page_size": "1"}))
            except RecordError:
                continue
            counts[e.name] = page.total
        return counts

    async def search(self, request: Request) -> Response:
        viewer = require_viewer(request)
        query = request.query_params.get("q", "").strip()[:MAX_QUERY]
        results = await run_in_threadpool(self._search, viewer, query) if query else []
        return self.ui.page(request, "search.html", {"q": query, "results": results})

    def _search(self, viewer: Viewer, text: str) -> list[EntityHits]:
        """Records whose title contains `text` (any case), per entity, through the same
        list service (and so the same access rules) as every list."""
        actor = viewer.user.actor()
        out: list[EntityHits] = []
        for e in self.model.entities:
            params = {f"{e.title}__contains": text, "page_size": str(HITS_PER_ENTITY),
                      "sort": e.title}
            try:
                query = parse_list_params(e, params)
                page = self.records.list_records(actor, e.name, query)
            except RecordError:  # a title that cannot be searched, or an entity not shown
                continue
            if page.items:
                hits = tuple(Hit(int(r["id"]), str(r.get(e.title) or f"#{r['id']}"))
                             for r in page.items)
                out.append(EntityHits(e.name, e.plural.get(viewer.language), hits, page.total))
        return out

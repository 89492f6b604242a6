"""Global search (`GET /search?q=`): records of every kind the viewer may read whose title or
`search: true` fields hold every word typed, grouped by entity, each hit with one line of
context; `&entity=<name>` pages through one entity's hits.

A hit's context line is the searched field that matched and its value ("Email:
zhang@example.com"), or, when only the title matched, the first of the list columns that
has a value ("Account: Acme"). Hidden fields are never matched nor shown
(engine/runtime/records/search.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.messages import msg
from engine.metadata.model import Entity
from engine.runtime.errors import BadRequest
from engine.runtime.records.search import MAX_TEXT, SearchHit, SearchPage, search_records
from engine.web.numbers import whole_number
from engine.web.pages.fields import Display, Shown, entity_of
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

HITS_PER_ENTITY = 10
PAGE_SIZE = 50
MAX_PAGE = 100


@dataclass(frozen=True)
class Piece:
    """Part of a text; `mark`: it is a word that was searched for."""

    text: str
    mark: bool = False


@dataclass(frozen=True)
class HitView:
    href: str
    title: tuple[Piece, ...]
    context_label: str
    context: tuple[Piece, ...]
    context_href: str | None = None


@dataclass
class Group:
    entity: str
    label: str
    kind: str
    """What one hit is (the entity's label): "Contact"."""
    hits: list[HitView] = field(default_factory=list)
    more_url: str | None = None


@dataclass
class SearchView:
    q: str
    groups: list[Group] = field(default_factory=list)
    entity: Entity | None = None
    """Set when the search pages through one entity's hits."""
    page: int = 1
    next_url: str | None = None
    prev_url: str | None = None
    all_url: str = ""


class Search(PageFamily):
    def routes(self) -> list[Route]:
        return [Route("/search", self.search, methods=["GET"])]

    async def search(self, request: Request) -> Response:
        viewer = require_viewer(request)
        params = request.query_params
        q = params.get("q", "").strip()
        entity = entity_of(self.model, params["entity"]) if params.get("entity") else None
        page = whole_number(params.get("page") or "1", 4)
        context = {"q": q, "max_text": MAX_TEXT}
        try:
            if page is None or not 1 <= page <= MAX_PAGE:
                problem = msg("The page must be a whole number from 1 to %(max)s.", max=MAX_PAGE)
                raise BadRequest(problem, {"page": problem})
            view = await run_in_threadpool(self._search, viewer, q, entity, page) \
                if q else SearchView(q)
        except BadRequest as exc:
            return self.ui.page(request, "search.html", {**context, "error": exc.message,
                                                         "view": SearchView(q)}, status=400)
        return self.ui.page(request, "search.html", {**context, "view": view})

    def _search(self, viewer: Viewer, q: str, only: Entity | None, page: int) -> SearchView:
        actor = viewer.user.actor()
        view = SearchView(q, entity=only, page=page, all_url=_url(q))
        display = Display(self.model, self.records, actor, viewer.language)
        if only is not None:
            self.records.policy.require(actor, only, "read")
        entities = [only] if only is not None else list(self.model.entities)
        found: list[SearchPage] = []
        for e in entities:
            context = [n for n in self.model.form(e.name).list_columns if n != e.title]
            result = search_records(
                self.records, actor, e.name, q, context=context,
                page_size=PAGE_SIZE if only else HITS_PER_ENTITY, page=page)
            if result is not None and result.hits:
                found.append(result)
                display.load_rows(e, [h.row for h in result.hits], context)
        for result in found:
            e = result.entity
            group = Group(e.name, e.plural.get(viewer.language), e.label.get(viewer.language))
            group.hits = [self._hit(display, e, hit, q, viewer.language) for hit in result.hits]
            if only is None and result.more:
                group.more_url = _url(q, e.name)
            view.groups.append(group)
        if only is not None and found:
            view.next_url = _url(q, only.name, page + 1) if found[0].more else None
        if only is not None and page > 1:
            view.prev_url = _url(q, only.name, page - 1)
        return view

    def _hit(self, display: Display, e: Entity, hit: SearchHit, q: str,
             language: str) -> HitView:
        title = hit.row.get(e.title) if e.has_field(e.title) else None
        words = [w.lower() for w in q.split()]
        label, shown = "", Shown("")
        names = [hit.matched] if hit.matched else \
            [n for n in self.model.form(e.name).list_columns if n in hit.row and n != e.title]
        for name in names:
            if name is None:
                continue
            candidate = display.show(e.field(name), hit.row.get(name))
            if candidate.text:
                label, shown = e.field(name).label.get(language), candidate
                break
        return HitView(
            f"/e/{e.name}/{hit.id}", marked(str(title) if title else f"#{hit.id}", words),
            label, marked(shown.text, words) if hit.matched else (Piece(shown.text),),
            shown.href if shown.href and not shown.href.startswith("mailto:") else None)


def marked(text: str, words: list[str]) -> tuple[Piece, ...]:
    """`text` cut into pieces, the searched words (any case) marked.

    >>> [(p.text, p.mark) for p in marked("Zhang Wei", ["wei"])]
    [('Zhang ', False), ('Wei', True)]
    """
    low = text.lower()
    if len(low) != len(text):  # a case mapping that changes lengths: show it unmarked
        return (Piece(text),)
    marks = [False] * len(text)
    for w in words:
        start = low.find(w)
        while w and start >= 0:
            marks[start:start + len(w)] = [True] * len(w)
            start = low.find(w, start + len(w))
    pieces: list[Piece] = []
    for ch, mark in zip(text, marks, strict=True):
        if pieces and pieces[-1].mark == mark:
            pieces[-1] = Piece(pieces[-1].text + ch, mark)
        else:
            pieces.append(Piece(ch, mark))
    return tuple(pieces)


def _url(q: str, entity: str | None = None, page: int = 1) -> str:
    params: list[tuple[str, str]] = [("q", q)]
    if entity:
        params.append(("entity", entity))
    if page > 1:
        params.append(("page", str(page)))
    return "/search?" + urlencode(params)

"""List pages (`/e/<entity>`): columns, sorting, filters, paging and saved views.

The query string is the whole state of a list (filters, `sort`, `page`, `page_size`,
`mine`, the `filter` formula), so any list can be bookmarked or saved as a view. Links and
the filter form work as plain GET requests; with htmx they replace only the results
(`#list-results`, answered with the list_table.html fragment) and push the URL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode

from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.messages import by_field, msg
from engine.metadata import Model
from engine.metadata.model import Entity
from engine.metadata.roles import Scope
from engine.runtime import export
from engine.runtime.access import Actor
from engine.runtime.access.bulk import require_page_size
from engine.runtime.errors import BadRequest, Invalid, NotFound, RecordError
from engine.runtime.records import Records
from engine.runtime.records.exported import export_list
from engine.runtime.records.permitted import permitted_ids
from engine.runtime.records.query import Condition, ListQuery, Page
from engine.runtime.views import (
    HAS,
    ListState,
    SavedView,
    SavedViews,
    clean_params,
    parse_state,
    state_query,
)
from engine.types import NUMERIC_TYPES, TEXT_TYPES, FieldType
from engine.web.auth import read_form
from engine.web.exports import currency_format, export_format, export_response
from engine.web.i18n import N_, translations
from engine.web.pages.assigning import AWAY, away_notice
from engine.web.pages.fields import entity_of
from engine.web.pages.table import Column, Row, build_rows, links_of, visible_columns
from engine.web.ui import PageFamily, Ui
from engine.web.viewer import Viewer, require_viewer

PAGE_SIZES = (10, 25, 50, 100, 200)
RESULTS_ID = "list-results"
NOTICES: dict[str, str] = {
    "deleted": N_("The record was moved to the recycle bin."),
    "restored": N_("The record was restored from the recycle bin."),
    "view-saved": N_("The view was saved."),
    "view-deleted": N_("The view was deleted."),
}
"""`?notice=` after a redirect → its message (a fixed set: nothing typed is echoed)."""
_FORMULA_LABEL = N_("Filter formula")


@dataclass(frozen=True)
class Filter:
    """One field's input(s) in the filter bar."""

    name: str
    title: str
    widget: str
    """text (contains), choice, boolean, range."""
    key: str
    value: str
    key_to: str = ""
    value_to: str = ""
    input_type: str = "text"
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Header:
    title: str
    numeric: bool
    href: str | None
    """Where a click sorts by this column (None: not sortable)."""
    sort: str | None
    """"ascending" / "descending" when the list is sorted by this column."""
    link: bool = False
    """Whether this column's value links to the record (ListView.link_index)."""


@dataclass
class ListView:
    entity: Entity
    title: str
    params: dict[str, str]
    headers: list[Header] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    page: Page | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)
    views: list[SavedView] = field(default_factory=list)
    pages: list[int | None] = field(default_factory=list)
    page_count: int = 1
    can_create: bool = False
    can_delete: bool = False
    can_update: bool = False
    can_export: bool = False
    """Whether the viewer's roles grant `export` on the entity (the export links show)."""
    editable: frozenset[int] = frozenset()
    """Ids of the rows the viewer may edit (the policy's update predicate, one query)."""
    deletable: frozenset[int] = frozenset()
    """Ids of the rows the viewer may delete."""
    link_index: int = 0
    """The column whose value links to the record: the title's, else the first."""
    status: int = 200
    rows_html: list[Markup] = field(default_factory=list)
    """Each row (`<tr>`) as HTML, aligned with `rows` (see `rows_html`)."""

    def url(self, **changes: str | None) -> str:
        """This list with some parameters changed (None removes one)."""
        params = dict(self.params)
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        query = state_query(params)
        return f"/e/{self.entity.name}" + (f"?{query}" if query else "")

    def export_url(self, fmt: str) -> str:
        """This list's records (its filters and sort, not its page) as a CSV or XLSX file."""
        query = state_query({**self.params, "format": fmt}, drop=("page", "page_size"))
        return f"/e/{self.entity.name}/export?{query}"

    def page_url(self, number: int) -> str:
        return self.url(page=str(number) if number > 1 else None)

    def size_url(self, size: int) -> str:
        return self.url(page_size=str(size), page=None)

    def cleared(self) -> str:
        """This list without its filters (sort and page size kept)."""
        return self.url(**{k: None for k in self.params if k not in ("sort", "page_size")})

    @property
    def view_query(self) -> str:
        """`?…` with this list's filters, for its other views (the calendar): without the
        sort and the paging, which they have not; "" for none."""
        query = state_query(self.params, drop=("page", "page_size", "sort"))
        return f"?{query}" if query else ""

    @property
    def query(self) -> str:
        """The state to save as a view (without the page number)."""
        return state_query(self.params, drop=("page",))

    @property
    def row_actions(self) -> bool:
        """Whether the table has a column of per-row actions (some row may have one)."""
        return self.can_update or self.can_delete

    @property
    def filtered(self) -> bool:
        return any(k not in ("sort", "page", "page_size") for k in self.params)


class Lists(PageFamily):
    def __init__(self, model: Model, records: Records, ui: Ui) -> None:
        super().__init__(model, records, ui)
        self.views = SavedViews(records.engine, records.schema)

    def routes(self) -> list[Route]:
        return [
            Route("/e/{entity}", self.list_page, methods=["GET"]),
            Route("/e/{entity}/export", self.export, methods=["GET"]),
            Route("/e/{entity}/views", self.save_view, methods=["POST"]),
            Route("/e/{entity}/views/{view_id:id}/delete", self.delete_view,
                  methods=["POST"]),
        ]

    # -- the list ------------------------------------------------------------------------

    async def list_page(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        raw = {k: v for k, v in request.query_params.items()
               if k not in ("cursor", "deleted")}  # paging by number; the bin is /trash
        fragment = request.headers.get("hx-target") == RESULTS_ID
        if not fragment and any(not v.strip() for v in raw.values()):
            # An empty filter box is sent as `x=`: answer with the clean address instead.
            query = state_query(raw)
            return RedirectResponse(f"/e/{entity.name}" + (f"?{query}" if query else ""),
                                    status_code=303)
        # The queries and the rendering in one trip to the thread pool (each trip costs).
        return await run_in_threadpool(self._page, request, viewer, entity, raw, fragment)

    def _page(self, request: Request, viewer: Viewer, entity: Entity, raw: Mapping[str, str],
              fragment: bool) -> Response:
        view = self.load(viewer, entity, raw, not fragment)
        notice_key = request.query_params.get("notice", "")
        notice = NOTICES.get(notice_key)
        if notice is None and AWAY.match(notice_key):  # after assigning out of sight
            notice = away_notice(self.model, self.records, viewer.user.actor(),
                                 viewer.language, notice_key)
        context = {"list": view, "notice": notice, "notice_key": notice_key,
                   "results_id": RESULTS_ID,
                   "page_sizes": PAGE_SIZES, "formula_label": _FORMULA_LABEL}
        headers = {"Vary": "HX-Request, HX-Target"}
        if fragment:
            # htmx swaps only 2xx answers by default, so a problem comes back as 200.
            headers["HX-Push-Url"] = view.url()
            return self.ui.page(request, "list_table.html", context, headers=headers)
        return self.ui.page(request, "list.html", context, status=view.status, headers=headers)

    def load(self, viewer: Viewer, entity: Entity, raw: Mapping[str, str],
             with_views: bool = True) -> ListView:
        """The list of `raw` parameters for the viewer; `with_views`: read their saved
        views too (the whole page shows them, an htmx swap of the results does not)."""
        actor = viewer.user.actor()
        policy = self.records.policy
        policy.require(actor, entity, "read")  # 403 page when the viewer may not list these
        language = viewer.language
        view = ListView(entity, entity.plural.get(language), clean_params(raw))
        view.can_create = policy.scope(actor, entity.name, "create") is not Scope.NONE
        view.can_delete = policy.scope(actor, entity.name, "delete") is not Scope.NONE
        view.can_update = policy.scope(actor, entity.name, "update") is not Scope.NONE
        view.can_export = policy.scope(actor, entity.name, "export") is not Scope.NONE
        columns = visible_columns(self.records, actor, entity)
        view.link_index = link_index(entity, columns)
        gettext = translations()[language].gettext
        # The rows, their links' names and the saved views: one connection for all.
        with self.records.reading() as conn:
            try:
                state = parse_state(entity, view.params,
                                    policy.hidden_fields(actor, entity),
                                    zone=self.model.settings.zone)
                require_page_size(policy, actor, entity, state.query.page_size)
                # Only what the table shows (its columns and the rows' titles).
                page = self.records.list_records(actor, entity.name,
                                                 self.query_of(actor, entity, state),
                                                 fields={entity.title,
                                                         *(c.key for c in columns)},
                                                 conn=conn, links=links_of(columns))
            except (BadRequest, NotFound) as exc:  # NotFound: a field hidden from the viewer
                view.errors = _problems(exc, gettext)
                view.status = 400
                state = None
            view.headers = headers(view, columns, state, language)
            view.filters = filters(view, columns, language)
            if state is not None:
                view.page = page
                view.rows = build_rows(self.records, actor, entity, columns, page.items,
                                       viewer.language, conn, page)
                ids = [row.id for row in view.rows]
                view.editable = permitted_ids(self.records, actor, entity.name, ids, "update",
                                              conn)
                view.deletable = permitted_ids(self.records, actor, entity.name, ids, "delete",
                                               conn)
                view.rows_html = rows_html(view, gettext)
                view.page_count = max(1, math.ceil(page.total / page.page_size))
                view.pages = page_numbers(page.page, view.page_count)
            if with_views:
                view.views = self.views.list(viewer.user.id, entity.name, conn)
        return view

    async def export(self, request: Request) -> Response:
        """`/e/<entity>/export?format=csv|xlsx&<the list's filters and sort>`: the list's
        records as a file, within the viewer's export scope (engine/web/exports.py); the
        same as `GET /api/<entity>?format=` for a signed-in viewer."""
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        raw = {k: v for k, v in request.query_params.items()
               if k not in ("cursor", "deleted", "page", "page_size")}
        fmt = export_format(raw) or "csv"
        actor = viewer.user.actor()
        records = self.records
        money = currency_format(self.model.settings.currency)

        def write(target: IO[bytes]) -> None:
            state = parse_state(entity, clean_params(raw),
                                records.policy.hidden_fields(actor, entity),
                                zone=self.model.settings.zone)
            found = export_list(records, actor, entity.name,
                                self.query_of(actor, entity, state), locale=viewer.language)
            export.write(fmt, target, found.columns, found.rows, money=money)

        return await export_response(fmt, entity.name, write)

    def query_of(self, actor: Actor, entity: Entity, state: ListState) -> ListQuery:
        return list_query(self.records, actor, entity, state)

    # -- saved views ---------------------------------------------------------------------

    async def save_view(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        form = await read_form(request)
        query = form.get("query", "")
        saved = await run_in_threadpool(self._save, viewer, entity, form.get("name", ""),
                                        query)
        return RedirectResponse(f"/e/{entity.name}?" + urlencode(
            [*parse_qsl(saved.query), ("notice", "view-saved")]), status_code=303)

    def _save(self, viewer: Viewer, entity: Entity, name: str, query: str) -> SavedView:
        actor = viewer.user.actor()
        self.records.policy.require(actor, entity, "read")
        try:  # the formula too, which SavedViews does not compile
            self.query_of(actor, entity, parse_state(
                entity, dict(parse_qsl(query)),
                self.records.policy.hidden_fields(actor, entity),
                zone=self.model.settings.zone))
        except BadRequest as exc:
            raise Invalid(msg("the view is not valid"), {
                "query": by_field(exc.fields) if exc.fields else exc.message}) from None
        return self.views.save(viewer.user.id, entity, name, query)

    async def delete_view(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        view_id = int(request.path_params["view_id"])
        await run_in_threadpool(self.views.delete, viewer.user.id, entity.name, view_id)
        return RedirectResponse(f"/e/{entity.name}?notice=view-deleted", status_code=303)


def list_query(records: Records, actor: Actor, entity: Entity,
               state: ListState) -> ListQuery:
    """The records query of a list state: "my records" and the formula added (the list,
    and the calendar narrowed by the same filters: engine/web/pages/calendar.py)."""
    query = state.query
    if state.mine:
        query = replace(query, conditions=(
            *query.conditions, Condition("owner_id", "eq", actor.user_id)))
    parts = [f'INCLUDES({name}, "{option}")' for name, option in state.has]
    if state.formula:
        # Checked alone first, so an error's line:col points into what was typed.
        records.compile_filter(entity.name, state.formula, actor)
        parts.append(f"(\n{state.formula}\n)")
    if parts:
        query = replace(query, filter=records.compile_filter(
            entity.name, " AND ".join(parts), actor))
    return query


def _problems(exc: RecordError, gettext: Any) -> list[tuple[str, str]]:
    """What was wrong with a list's parameters, as (what, message) lines."""
    if not exc.fields:
        return [("", exc.message)]
    return [(gettext(_FORMULA_LABEL) if key == "filter" else key, message)
            for key, message in exc.fields.items()]


_TITLE = "%(title)s"
"""Where a row's title goes in its actions' labels."""
_CELL_GAP = "\n        "
"""What list_table.html wrote after each cell (its loop body's trailing whitespace)."""


def rows_html(view: ListView, gettext: Callable[[str], str]) -> list[Markup]:
    """Each row of the table (`<tr>`: its cells, then its edit and delete links where the
    viewer may use them), every value escaped, built here in one pass: one Jinja expression
    per cell was most of the page's rendering time (bench/pages.py)."""
    # What _() in the template gives: the translation, trusted as markup, %-formatted.
    yes_text, no_text, edit_text, delete_text = (
        str(Markup(gettext(m)) % {})  # noqa: S704 (the catalog's own text)
        for m in (N_("Yes"), N_("No"), N_("Edit"), N_("Delete")))
    # The labels with a blank for each row's (escaped) title, as _(…, title=…) would give.
    edit_label, delete_label = (str(Markup(gettext(m)) % {"title": _TITLE})  # noqa: S704
                                for m in (N_("Edit %(title)s"), N_("Delete %(title)s")))
    yes = f'<span aria-hidden="true">✓</span><span class="visually-hidden">{yes_text}</span>'
    no = f'<span aria-hidden="true">—</span><span class="visually-hidden">{no_text}</span>'
    heads = view.headers
    opens = [f' data-label="{escape(h.title)}"' + (' data-card="title"><a href="'
                                                   if h.link else ">") for h in heads]
    base = f"/e/{view.entity.name}/"
    out: list[Markup] = []
    for row in view.rows:
        parts: list[str] = ["<tr>\n        "]
        add = parts.append
        title = escape(row.title)
        for cell, h, opened in zip(row.cells, heads, opens, strict=True):
            add(f'<td class="{cell.css}"' if cell.css else "<td")  # a class of ours
            add(opened)
            if h.link:
                add(f'{row.href}">')  # ours: /e/<entity name>/<id>
            if h.link and (cell.kind == "blank" or cell.href):
                add(title)
            elif cell.kind == "bool":
                add(yes if cell.value else no)
            elif cell.href:
                add(f'<a href="{cell.href}">{escape(cell.text)}</a>')  # href: ours
            else:
                add(escape(cell.text))
            add("</a></td>" + _CELL_GAP if h.link else "</td>" + _CELL_GAP)
        if view.row_actions:
            add('<td class="row-actions">')
            if row.id in view.editable:
                add(f'<a href="{base}{row.id}/edit" aria-label="'
                    f'{edit_label.replace(_TITLE, title)}">{edit_text}</a>')
            if row.id in view.deletable:
                add(f' <a href="{base}{row.id}/delete" aria-label="'
                    f'{delete_label.replace(_TITLE, title)}">{delete_text}</a>')
            add("</td>")
        add("\n      </tr>")
        out.append(Markup("".join(parts)))  # noqa: S704 (every value above is escaped)
    return out


def link_index(entity: Entity, columns: Sequence[Column]) -> int:
    return next((i for i, c in enumerate(columns) if c.name == entity.title), 0)


def column_title(column: Column, language: str) -> str:
    if column.label is not None:
        return column.label.get(language)
    return translations()[language].gettext(column.msgid)


def headers(view: ListView, columns: Sequence[Column], state: ListState | None,
            language: str) -> list[Header]:
    first = state.query.sort[0] if state is not None and state.query.sort else None
    out: list[Header] = []
    for i, c in enumerate(columns):
        sorted_here = first is not None and first.field == c.key
        href = None
        if c.sortable:
            desc_next = sorted_here and first is not None and not first.descending
            href = view.url(sort=("-" if desc_next else "") + c.key, page=None)
        sort = None
        if sorted_here and first is not None:
            sort = "descending" if first.descending else "ascending"
        out.append(Header(column_title(c, language), c.numeric, href, sort,
                          i == view.link_index))
    return out


def filters(view: ListView, columns: Sequence[Column], language: str) -> list[Filter]:
    """The filter bar: one input (or a from-to pair) per filterable list column."""
    p = view.params
    out: list[Filter] = []
    for c in columns:
        f = c.field
        if f is None and c.type is not FieldType.DATETIME:
            continue  # owner has the "my records" box; department needs a picker
        if f is not None and f.computed and (f.compiled is None or not f.compiled.sql_capable):
            continue
        title = column_title(c, language)
        name, t = c.key, c.type
        if t in TEXT_TYPES:
            key = f"{name}__contains"
            out.append(Filter(name, title, "text", key, p.get(key, "")))
        elif t is FieldType.CHOICE and f is not None:
            out.append(Filter(name, title, "choice", name, p.get(name, ""),
                              options=tuple((o, f.option_label(o, language))
                                            for o in f.options)))
        elif t is FieldType.MULTICHOICE and f is not None:
            key = name + HAS
            out.append(Filter(name, title, "choice", key, p.get(key, ""),
                              options=tuple((o, f.option_label(o, language))
                                            for o in f.options)))
        elif t is FieldType.BOOLEAN:
            out.append(Filter(name, title, "boolean", name, p.get(name, "")))
        elif t in (FieldType.DATE, FieldType.DATETIME) or t in NUMERIC_TYPES:
            lo, hi = f"{name}__gte", f"{name}__lte"
            kind = "number" if t in NUMERIC_TYPES else "date"
            out.append(Filter(name, title, "range", lo, p.get(lo, ""), hi, p.get(hi, ""),
                              input_type=kind))
    return out


def page_numbers(current: int, count: int, around: int = 2) -> list[int | None]:
    """Page links: the first, the last and a few around the current one; None is a gap.

    >>> page_numbers(6, 12)
    [1, None, 4, 5, 6, 7, 8, None, 12]
    """
    shown = sorted({1, count, *range(max(1, current - around),
                                     min(count, current + around) + 1)})
    out: list[int | None] = []
    for n in shown:
        if out and n - (out[-1] or 0) > 1:
            out.append(None)
        out.append(n)
    return out

"""The calendar view: records placed on their `calendar: true` date or datetime.

`GET /e/<entity>/calendar?field=&view=month|week&date=YYYY-MM-DD` draws a month (whole
weeks) or a week (seven day columns; a datetime in its hour's row, a date in the all-day
row), its days in the organisation's time zone (settings.yaml `time_zone`) and weeks
starting on the reader's first day of the week (calendar_grid.py). The other parameters
are a list's filters (`mine=1`, `status=planned`, `filter=<formula>`…), so a list opens
as a calendar with the same records. The records come from the one secure query, as a list
reads them, at most MAX_ITEMS per grid (past that the page says so and links to the list).
Previous / next / today and the month / week switch are plain links; with htmx they
replace only the grid (`#calendar-grid`, the calendar_grid.html fragment).

`POST /e/<entity>/<id>/reschedule` (field, date, optional hour, version; the grid's
parameters in the query string) moves a record to another day, keeping a datetime's time
of day (or setting its hour, dropped on a week view's hour). It is an ordinary
`Records.update`: the version check, access, validation rules and the audit all apply;
a field the form shows read-only on that record is refused as the edit form would ignore
it. static/calendar.js drags items and posts the move; the answer is the grid again, with
the refusal on it when there is one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as attribute
from datetime import date, datetime, time
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_date, format_interval, format_skeleton, format_time, get_day_names
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.messages import joined, localize, msg
from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.access.bulk import ORDINARY_PAGE_SIZE
from engine.runtime.errors import STALE_VERSION, BadRequest, Invalid, NotFound, RecordError
from engine.runtime.records.permitted import permitted_ids
from engine.runtime.records.query import Condition, ListQuery, SortKey
from engine.runtime.views import parse_state
from engine.types import FieldType
from engine.web.auth import read_form
from engine.web.i18n import N_, babel_locale, translations
from engine.web.numbers import whole_number
from engine.web.pages.board import MAX_ID
from engine.web.pages.calendar_grid import VIEWS, Grid, View, first_weekday, grid, moved_datetime
from engine.web.pages.fields import entity_of
from engine.web.pages.lists import list_query
from engine.web.pages.widgets import FormModel
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

GRID_ID = "calendar-grid"
MAX_ITEMS = ORDINARY_PAGE_SIZE
"""The most records one grid shows: a page any reader may read (more is a bulk read)."""
OWN_PARAMS = ("field", "view", "date")
"""The calendar's own parameters; every other one is a list filter."""
IGNORED = frozenset({"sort", "page", "page_size", "cursor", "deleted", "notice"})
"""List parameters that mean nothing to a calendar (it shows every record of its days)."""
TONES = 8
"""How many colours the status options cycle through (calendar.css .cal-tone-N)."""
NO_CALENDAR = N_("This entity has no calendar.")
BAD_VIEW = N_("Choose month or week.")
BAD_DAY = N_("Give a day as YYYY-MM-DD.")
BAD_HOUR = N_("Give an hour from 0 to 23.")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
FIRST_YEAR, LAST_YEAR = 1900, 9998
"""The years a calendar opens on (records hold 1900-9999; a grid reaches a week past)."""


def calendar_fields(entity: Entity, hidden: frozenset[str] = frozenset()) -> tuple[Field, ...]:
    """The fields an entity's calendar can show: `calendar: true` dates and datetimes the
    reader may see (a computed one is shown, never moved)."""
    return tuple(f for f in entity.fields
                 if f.calendar and f.type in (FieldType.DATE, FieldType.DATETIME)
                 and f.name not in hidden
                 and not (f.computed and (f.compiled is None or not f.compiled.sql_capable)))


def status_field(entity: Entity, hidden: frozenset[str]) -> Field | None:
    """The choice field that colours the items: the board's, else the first with `closed`
    options (activity status), else none."""
    choices = [f for f in entity.fields if f.type is FieldType.CHOICE and f.name not in hidden]
    return next((f for f in choices if f.board), None) \
        or next((f for f in choices if f.closed), None)


def parse_day(raw: str) -> date:
    """A day as YYYY-MM-DD within the years a calendar shows; BadRequest otherwise."""
    try:
        if _ISO_DAY.fullmatch(raw):
            day = date.fromisoformat(raw)
            if FIRST_YEAR <= day.year <= LAST_YEAR:
                return day
    except ValueError:
        pass
    raise BadRequest(BAD_DAY, {"date": BAD_DAY})


def parse_hour(raw: str) -> int | None:
    if not raw.strip():
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 2 and 0 <= int(raw) <= 23:
        return int(raw)
    raise BadRequest(BAD_HOUR, {"hour": BAD_HOUR})


@dataclass(frozen=True)
class Item:
    """One record on the grid."""

    id: int
    version: int
    title: str
    day: date
    hour: int | None
    """The local hour of a datetime (None for a date: the all-day row)."""
    time: str
    """The local time as the reader writes it ("2:30 PM", "14:30"); "" for a date."""
    status: str
    tone: int | None
    closed: bool
    movable: bool


@dataclass(frozen=True)
class Day:
    day: date
    label: str
    """The whole date as the reader writes it (a cell's accessible name)."""
    in_month: bool
    today: bool


@dataclass
class CalendarView:
    entity: Entity
    field: Field
    fields: tuple[Field, ...]
    grid: Grid
    language: str
    filters: dict[str, str]
    today: date
    title: str = ""
    items: list[Item] = attribute(default_factory=list)
    total: int = 0
    movable: bool = False
    """Whether the viewer may move any record of this field at all."""
    errors: list[str] = attribute(default_factory=list)
    status: int = 200
    notice: str = ""
    """What the last move did (an accessible status message)."""
    error: str = ""
    """Why the last move was refused."""

    @property
    def timed(self) -> bool:
        return self.field.type is FieldType.DATETIME

    @property
    def more(self) -> bool:
        return self.total > len(self.items)

    @property
    def state(self) -> dict[str, str]:
        return {"field": self.field.name, "view": self.grid.view,
                "date": self.grid.anchor.isoformat(), **self.filters}

    @property
    def state_query(self) -> str:
        return urlencode(self.state)

    def url(self, **changes: str) -> str:
        return f"/e/{self.entity.name}/calendar?" + urlencode({**self.state, **changes})

    @property
    def list_url(self) -> str:
        """The list of the records of these days, with the same filters."""
        name = self.field.name
        if self.timed:
            span = {f"{name}__gte": self.grid.start.isoformat(),
                    f"{name}__lt": self.grid.end.isoformat()}
        else:
            span = {f"{name}__gte": self.grid.first_day.isoformat(),
                    f"{name}__lte": self.grid.last_day.isoformat()}
        return f"/e/{self.entity.name}?" + urlencode({**self.filters, **span,
                                                      "sort": name})

    @property
    def filter_list_url(self) -> str:
        """The list with this calendar's filters, to narrow them."""
        return f"/e/{self.entity.name}" + (f"?{urlencode(self.filters)}"
                                           if self.filters else "")

    @property
    def days(self) -> list[Day]:
        locale = babel_locale(self.language)
        return [Day(d, format_date(d, "full", locale=locale), self.grid.in_month(d),
                    d == self.today) for d in self.grid.days]

    @property
    def weekdays(self) -> list[tuple[str, str]]:
        """The heads of the day columns: (short name, full name), in the grid's order."""
        locale = babel_locale(self.language)
        short = get_day_names("abbreviated", locale=locale)
        wide = get_day_names("wide", locale=locale)
        return [(short[d.weekday()], wide[d.weekday()]) for d in self.grid.days[:7]]

    @property
    def hours(self) -> list[tuple[int, str]]:
        locale = babel_locale(self.language)
        return [(h, format_time(time(h), "short", locale=locale)) for h in range(24)]

    def on(self, day: date, hour: int | None = None) -> list[Item]:
        """The items of one day (of one hour of it, in a week view of datetimes)."""
        return self._placed.get((day, hour), [])

    @cached_property
    def _placed(self) -> dict[tuple[date, int | None], list[Item]]:
        """Items by (day, None) and by (day, hour): made once, when the grid is drawn."""
        out: dict[tuple[date, int | None], list[Item]] = {}
        for i in self.items:
            out.setdefault((i.day, None), []).append(i)
            if i.hour is not None:
                out.setdefault((i.day, i.hour), []).append(i)
        return out

    @property
    def time_zone(self) -> str:
        return self.grid.zone.key


class Calendar(PageFamily):
    def routes(self) -> list[Route]:
        return [Route("/e/{entity}/calendar", self.calendar, methods=["GET"]),
                Route("/e/{entity}/{record_id:id}/reschedule", self.reschedule,
                      methods=["POST"])]

    # -- lookups -----------------------------------------------------------------------

    def _field(self, actor: Actor, entity: Entity, name: str) -> tuple[Field, tuple[Field, ...]]:
        """The calendar field `name` names (blank: the first) and every one the viewer
        may see; 404 when the entity has none (or not that one)."""
        fields = calendar_fields(entity, self.records.policy.hidden_fields(actor, entity))
        chosen = next((f for f in fields if f.name == name), None) if name \
            else (fields[0] if fields else None)
        if chosen is None:
            raise NotFound(NO_CALENDAR)
        return chosen, fields

    def _grid(self, viewer: Viewer, params: Mapping[str, str]) -> Grid:
        view = params.get("view", "") or "month"
        if view not in VIEWS:
            raise BadRequest(BAD_VIEW, {"view": BAD_VIEW})
        zone = self.model.settings.zone
        raw = params.get("date", "")
        anchor = parse_day(raw) if raw else self.records.clock().astimezone(zone).date()
        chosen: View = "week" if view == "week" else "month"
        return grid(chosen, anchor, first_weekday(viewer.language), zone)

    @staticmethod
    def _filters(params: Mapping[str, str]) -> dict[str, str]:
        return {k: v for k, v in params.items()
                if k not in OWN_PARAMS and k not in IGNORED and v.strip()}

    # -- the page ----------------------------------------------------------------------

    async def calendar(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        params = dict(request.query_params)
        fragment = request.headers.get("hx-target") == GRID_ID
        view = await run_in_threadpool(self.load, viewer, entity, params)
        headers = {"Vary": "HX-Request, HX-Target"}
        if fragment:
            headers["HX-Push-Url"] = view.url()
            return self.ui.page(request, "calendar_grid.html", {"cal": view},
                                headers=headers)
        return self.ui.page(request, "calendar.html", {"cal": view}, status=view.status,
                            headers=headers)

    def load(self, viewer: Viewer, entity: Entity, params: Mapping[str, str]) -> CalendarView:
        """The grid of `params` with the records of its days, as the viewer may see them."""
        actor = viewer.user.actor()
        policy = self.records.policy
        policy.require(actor, entity, "read")
        chosen, fields = self._field(actor, entity, params.get("field", ""))
        the_grid = self._grid(viewer, params)
        zone = the_grid.zone
        view = CalendarView(entity, chosen, fields, the_grid, viewer.language,
                            self._filters(params),
                            self.records.clock().astimezone(zone).date())
        view.title = self.title(the_grid, viewer.language)
        mask = policy.mask(actor, entity)
        view.movable = (not chosen.derived and chosen.name not in mask.readonly
                        and policy.scope(actor, entity.name, "update") is not Scope.NONE)
        hidden = mask.hidden
        status = status_field(entity, hidden)
        try:
            state = parse_state(entity, view.filters, hidden, zone=self.model.settings.zone)
            query = list_query(self.records, actor, entity, state)
        except (BadRequest, NotFound) as exc:  # NotFound: a field hidden from the viewer
            view.errors = self.problems(viewer.language, entity, exc)
            view.status = 400
            return view
        name = chosen.name
        span: tuple[Condition, ...] = (
            (Condition(name, "gte", the_grid.start), Condition(name, "lt", the_grid.end))
            if view.timed else
            (Condition(name, "gte", the_grid.first_day), Condition(name, "lte", the_grid.last_day)))
        query = ListQuery(conditions=(*query.conditions, *span), sort=(SortKey(name, False),),
                          page_size=MAX_ITEMS, filter=query.filter)
        locked = self.locking_conditions(entity, chosen)
        wanted = None if locked else {entity.title, name, *([status.name] if status else [])}
        with self.records.reading() as conn:
            page = self.records.list_records(actor, entity.name, query, fields=wanted,
                                             conn=conn)
            ids = [int(r["id"]) for r in page.items]
            may_update = permitted_ids(self.records, actor, entity.name, ids, "update", conn) \
                if view.movable else frozenset()
            if locked and may_update:
                c = self.records.compiled(entity.name)
                for row in page.items:
                    ctx = self.records.record_context(conn, c, dict(row), prior=row,
                                                      reader=actor)
                    if any(cond.holds(ctx) for cond in locked):
                        may_update -= {int(row["id"])}
        locale = babel_locale(viewer.language)
        for row in page.items:
            value = row.get(name)
            if value is None:
                continue
            hour: int | None = None
            shown = ""
            if isinstance(value, datetime):
                local = the_grid.local(value)
                day, hour = local.date(), local.hour
                shown = format_time(local.time(), "short", locale=locale)
            else:
                day = value
            option = row.get(status.name) if status is not None else None
            title = row.get(entity.title)
            view.items.append(Item(
                int(row["id"]), int(row["version"]),
                str(title) if title not in (None, "") else f"#{row['id']}", day, hour, shown,
                status.option_label(option, viewer.language) if status and option else "",
                status.options.index(option) % TONES
                if status and option in status.options else None,
                bool(status and option in status.closed),
                int(row["id"]) in may_update))
        view.total = page.total
        return view

    def locking_conditions(self, entity: Entity, f: Field) -> list[Any]:
        """The form's conditions that make `f` read-only (or hide it) on a record."""
        form_field = next((ff for ff in self.model.form(entity.name).fields
                           if ff.name == f.name), None)
        if form_field is None:
            return []
        return [c for c in (form_field.readonly_compiled, form_field.hidden_compiled)
                if c is not None]

    @staticmethod
    def title(the_grid: Grid, language: str) -> str:
        locale = babel_locale(language)
        if the_grid.view == "week":
            return str(format_interval(the_grid.first_day, the_grid.last_day, "yMMMd",
                                       locale=locale))
        return str(format_skeleton("yMMMM", the_grid.anchor, locale=locale))

    def problems(self, language: str, entity: Entity, exc: RecordError) -> list[str]:
        gettext = translations()[language].gettext
        if not exc.fields:
            return [localize(exc.message, gettext, language)]
        return [f"{key}: {localize(p, gettext, language)}" for key, p in exc.fields.items()]

    # -- moving a record ---------------------------------------------------------------

    async def reschedule(self, request: Request) -> Response:
        """Move one record to another day; for a script (`HX-Request`) the grid again (with
        the refusal and its status when refused), for a plain form back to the calendar."""
        viewer = require_viewer(request)
        entity = entity_of(self.model, request.path_params["entity"])
        actor = viewer.user.actor()
        record_id = int(request.path_params["record_id"])
        if not 0 < record_id <= MAX_ID:
            raise NotFound(msg("no %(entity)s %(id)s", entity=entity.name, id=record_id))
        form = await read_form(request)
        params = dict(request.query_params)
        name = form.get("field", "") or params.get("field", "")
        chosen, _ = self._field(actor, entity, name)
        params["field"] = chosen.name
        fragment = "hx-request" in request.headers
        error: RecordError | None = None
        moved: tuple[str, date] | None = None
        try:
            day = parse_day(form.get("date", ""))
            hour = parse_hour(form.get("hour", "")) if chosen.type is FieldType.DATETIME \
                else None
            version = parse_version(form.get("version", ""))
            title = await run_in_threadpool(self.save, viewer, entity, chosen, record_id, day,
                                            hour, version)
            moved = (title, day)
        except RecordError as exc:
            if not fragment:
                raise
            error = exc
        if not fragment:
            return RedirectResponse(f"/e/{entity.name}/calendar?{urlencode(params)}", 303)
        view = await run_in_threadpool(self.load, viewer, entity, params)
        if error is not None:
            view.error = self.error_text(viewer.language, entity, error)
        elif moved is not None:
            gettext = translations()[viewer.language].gettext
            view.notice = gettext(N_("Moved “%(title)s” to %(day)s.")) % {
                "title": moved[0],
                "day": format_date(moved[1], "full", locale=babel_locale(viewer.language))}
        status = error.status if error else 200
        return self.ui.page(request, "calendar_grid.html", {"cal": view}, status=status)

    def save(self, viewer: Viewer, entity: Entity, f: Field, record_id: int, day: date,
             hour: int | None, version: int) -> str:
        """The move as one update of `f`; the record's title. A record the viewer may not
        read is not found; a field its form shows read-only (or hides) there is refused."""
        actor = viewer.user.actor()
        stored = self.records.get(actor, entity.name, record_id)
        value: date | datetime = day
        if f.type is FieldType.DATETIME:
            old = stored.get(f.name)
            value = moved_datetime(old if isinstance(old, datetime) else None, day, hour,
                                   self.model.settings.zone)
        form = FormModel(self.model, self.records, actor, viewer.language, entity)
        states = form.evaluate(stored, {f.name: value.isoformat()}).states
        if states.get(f.name, "shown") != "shown" and stored.get("version") == version:
            problem = msg("is read-only on this record")
            raise Invalid(msg("%(entity)s is not valid", entity=entity.name), {f.name: problem})
        self.records.update(actor, entity.name, record_id, {f.name: value}, version)
        title = stored.get(entity.title)
        return str(title) if title not in (None, "") else f"#{record_id}"

    def error_text(self, language: str, entity: Entity, exc: RecordError) -> str:
        """A refused move in the reader's language: the field problems, or the message."""
        gettext = translations()[language].gettext
        if exc.fields and exc.fields.get("version") != STALE_VERSION:
            texts = [msg("%(field)s: %(problem)s", field=entity.field(key).label, problem=p)
                     if entity.has_field(key) else p for key, p in exc.fields.items()]
            return localize(joined(texts), gettext, language)
        return localize(exc.message, gettext, language)


def parse_version(raw: str) -> int:
    version = whole_number(raw, 18)
    if version is None:
        raise BadRequest(msg("version must be a whole number"),
                         {"version": msg("is not a number")})
    return version

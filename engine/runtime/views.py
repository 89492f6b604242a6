"""Saved list views: a user's named query strings for one entity's list page.

A list page's whole state is its query string (`?stage=won&sort=-amount&mine=1`), so a
saved view is just a name for one. Besides the parameters of `parse_list_params`, the
list pages read a few of their own (`LIST_UI_PARAMS`, `<multichoice>__has=<option>`);
`parse_state` checks all of them, and a view is saved only when its query parses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.messages import by_field, msg
from engine.metadata.model import Entity
from engine.runtime.db import WRITE, connection
from engine.runtime.errors import BadRequest, Conflict, Invalid, NotFound
from engine.runtime.records.query import ENGINE_SORTABLE, ListQuery, parse_list_params
from engine.runtime.schema.tables import SAVED_VIEW_TABLE, Schema
from engine.types import FieldType

MAX_NAME = 80
MAX_QUERY = 2000
MAX_VIEWS = 50
"""Views one user may keep per entity."""
MAX_FORMULA = 2000
LIST_UI_PARAMS = frozenset({"filter", "mine"})
"""List-page parameters beyond parse_list_params: the filter formula, "my records"."""
TRANSIENT_PARAMS = frozenset({"notice"})
"""Parameters that are not list state: a one-off message after a redirect."""
HAS = "__has"
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BOUNDS = frozenset({"gt", "gte", "lt", "lte"})
_TRUE = ("1", "true")


@dataclass(frozen=True)
class ListState:
    """A list page's query string, checked: the records query and the page's own parts."""

    query: ListQuery
    formula: str
    """The `filter` formula as typed ("" for none); compiled by the caller."""
    mine: bool
    has: tuple[tuple[str, str], ...]
    """(multichoice field, option) pairs the records must include."""


def clean_params(params: Mapping[str, str]) -> dict[str, str]:
    """The list state of a query: blank values and transient parameters dropped."""
    return {k: v for k, v in params.items() if v.strip() and k not in TRANSIENT_PARAMS}


def parse_state(entity: Entity, params: Mapping[str, str],
                hidden: frozenset[str] = frozenset(), *, zone: tzinfo = UTC) -> ListState:
    """Check a list page's parameters; BadRequest names every parameter with a problem.
    `hidden`: the fields hidden from the viewer, answered like fields that do not exist.
    `zone`: the organisation's time zone, whose days a date bound of a datetime means."""
    params = clean_params(params)
    problems: dict[str, str] = {}
    has: list[tuple[str, str]] = []
    core: dict[str, str] = {}
    for key, raw in params.items():
        if key in LIST_UI_PARAMS:
            continue
        if key.endswith(HAS):
            name = key[: -len(HAS)]
            f = entity.field(name) if entity.has_field(name) and name not in hidden else None
            if f is None or f.type is not FieldType.MULTICHOICE:
                problems[key] = msg("'%(field)s' is not a multichoice field of %(entity)s",
                                    field=name, entity=entity.name)
            elif raw not in f.options or '"' in raw or "\\" in raw:
                problems[key] = msg("%(value)s is not an option of %(field)s", value=repr(raw),
                                    field=name)
            else:
                has.append((name, raw))
            continue
        name, _, op = key.partition("__")
        if op in _BOUNDS and _DATE_ONLY.match(raw) and _is_datetime(entity, name, hidden):
            # A date as a bound of a datetime range is that day in the organisation's time
            # zone: from its midnight there, and as the end (lte) the whole of that day.
            try:
                day = date.fromisoformat(raw)
                if op == "lte":
                    op, day = "lt", day + timedelta(days=1)
                core[f"{name}__{op}"] = local_midnight(day, zone).isoformat()
            except (ValueError, OverflowError):
                core[key] = raw  # parse_list_params names the problem
            continue
        core[key] = raw
    mine = params.get("mine", "").lower()
    if mine and mine not in _TRUE:
        problems["mine"] = msg("must be 1 (my records) or left out")
    formula = params.get("filter", "").strip()
    if len(formula) > MAX_FORMULA:
        problems["filter"] = msg("must be at most %(limit)s characters", limit=MAX_FORMULA)
    try:
        query = parse_list_params(entity, core, hidden=hidden)
    except BadRequest as exc:
        problems.update(exc.fields)
        query = ListQuery()
    if problems:
        raise BadRequest(msg("invalid list parameters"), problems)
    return ListState(query, formula, mine in _TRUE, tuple(has))


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The instant (in UTC) `day` begins in `zone`.

    >>> from zoneinfo import ZoneInfo
    >>> local_midnight(date(2026, 3, 9), ZoneInfo("Asia/Shanghai")).isoformat()
    '2026-03-08T16:00:00+00:00'
    """
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def _is_datetime(entity: Entity, name: str, hidden: frozenset[str]) -> bool:
    """Whether `name` is a datetime field (or engine column) the viewer may filter on."""
    if name in hidden:
        return False
    if entity.has_field(name):
        return entity.field(name).type is FieldType.DATETIME
    return ENGINE_SORTABLE.get(name) is FieldType.DATETIME


def state_query(params: Mapping[str, str], *, drop: tuple[str, ...] = ()) -> str:
    """The query string of a list state, blank values and `drop` left out."""
    return urlencode([(k, v) for k, v in clean_params(params).items() if k not in drop])


@dataclass(frozen=True)
class SavedView:
    id: int
    entity: str
    name: str
    query: str
    created_at: datetime


class SavedViews:
    def __init__(self, engine: Engine, schema: Schema) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**WRITE)
        self.table = schema.table(SAVED_VIEW_TABLE)

    def save(self, user_id: int, entity: Entity, name: str, query: str) -> SavedView:
        """Save (or, under a name the user already gave a view, replace) a view."""
        name = " ".join(name.split())
        problems: dict[str, str] = {}
        if not 1 <= len(name) <= MAX_NAME:
            problems["name"] = msg("give the view a name of 1 to %(limit)s characters",
                                       limit=MAX_NAME)
        elif any(ord(c) < 32 or ord(c) == 127 for c in name):
            problems["name"] = msg("must not contain control characters")
        if len(query) > MAX_QUERY:
            problems["query"] = msg("must be at most %(limit)s characters", limit=MAX_QUERY)
        params = dict(parse_qsl(query, keep_blank_values=True)) if not problems else {}
        query = state_query(params, drop=("page", "cursor"))
        if not problems:
            try:
                parse_state(entity, params)
            except BadRequest as exc:
                problems["query"] = by_field(exc.fields)
        if problems:
            raise Invalid(msg("the view is not valid"), problems)
        t = self.table
        now = datetime.now(UTC)
        with self.writer.begin() as conn:
            mine = (t.c.user_id == user_id) & (t.c.entity == entity.name)
            found = conn.execute(select(t.c.id).where(mine, t.c.name == name)).first()
            if found is not None:
                conn.execute(update(t).where(t.c.id == found.id).values(query=query))
                view_id = int(found.id)
            else:
                count = conn.execute(select(func.count()).select_from(t).where(mine)).scalar()
                if (count or 0) >= MAX_VIEWS:
                    raise Invalid(msg("too many views"), {
                        "name": msg("you have %(count)s views of this list; delete one first",
                                    count=MAX_VIEWS)})
                try:
                    view_id = int(conn.execute(insert(t).values(
                        user_id=user_id, entity=entity.name, name=name, query=query,
                        created_at=now).returning(t.c.id)).scalar_one())
                except IntegrityError:  # saved under this name since the check above
                    raise Conflict(msg("a view named '%(name)s' was just saved; try again",
                                       name=name),
                                   {"name": msg("already exists")}) from None
            row = conn.execute(select(t).where(t.c.id == view_id)).one()
        return _view(row)

    def list(self, user_id: int, entity: str,
             conn: Connection | None = None) -> list[SavedView]:
        """The user's views of `entity`, by name (read through `conn` when given)."""
        t = self.table
        stmt = select(t).where(t.c.user_id == user_id, t.c.entity == entity) \
            .order_by(t.c.name, t.c.id)
        with connection(self.engine, conn) as c:
            return [_view(r) for r in c.execute(stmt).all()]

    def delete(self, user_id: int, entity: str, view_id: int) -> None:
        """Delete one of the user's views; another user's view is not found."""
        t = self.table
        with self.writer.begin() as conn:
            gone = conn.execute(delete(t).where(t.c.id == view_id, t.c.user_id == user_id,
                                                t.c.entity == entity)).rowcount
        if gone != 1:
            raise NotFound(msg("no saved view %(id)s of %(entity)s", id=view_id, entity=entity))


def _view(row: object) -> SavedView:
    r = row._mapping  # type: ignore[attr-defined]
    return SavedView(int(r["id"]), str(r["entity"]), str(r["name"]), str(r["query"]),
                     r["created_at"])

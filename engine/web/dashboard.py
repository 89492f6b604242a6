"""The home page of one user (`/`): what is theirs to work on, and what they may create.

Nothing here names an entity; the configuration says what counts:

- **My open records**: for each entity with a pipeline board field (`board: true`) whose
  `closed` options say when the work ends (opportunity stage: won, lost), the records the
  user owns holding another option: how many, and the sums of the board's amount and
  weighted amount (the same money fields as the board, engine/web/pages/board.py).
- **Due this week**: for each entity with a `calendar: true` date (activity `due_at`), the
  user's own records dated Monday to Sunday of this week, open by the `closed` options of
  the entity's choice fields (activity status: not done, not cancelled). The week is the
  organisation's (settings.yaml `time_zone`): it begins at midnight on Monday there, and a
  datetime falls in it by its local day.
- **Quick create**: a "New …" button per entity the user may create.

Every number and row comes through the records service with the user's access (the
policy's read predicate is in every query), so a record or field they may not see counts
for nothing and shows nowhere; an entity they may not read has no section.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import RecordError
from engine.runtime.records import Records
from engine.runtime.records.aggregate import grouped_totals
from engine.runtime.records.query import Condition
from engine.runtime.views import parse_state
from engine.types import FieldType
from engine.web.nav import AREAS
from engine.web.pages.board import board_fields, board_numbers

DUE_ROWS = 20


@dataclass(frozen=True)
class Pipeline:
    """The user's open records of one entity."""

    entity: Entity
    count: int
    amount: Field | None
    """The money field summed as the amount (None: the user may not see one)."""
    amount_sum: Decimal
    weighted: Field | None
    weighted_sum: Decimal
    href: str
    """The list of exactly these records."""


@dataclass(frozen=True)
class DueRecord:
    id: int
    title: str
    href: str
    when: date | datetime


@dataclass(frozen=True)
class Due:
    """The user's open records of one entity dated this week, earliest first."""

    entity: Entity
    field: Field
    records: tuple[DueRecord, ...]
    total: int
    href: str


@dataclass(frozen=True)
class HomeView:
    pipelines: tuple[Pipeline, ...]
    due: tuple[Due, ...]
    creatable: tuple[Entity, ...]
    week: tuple[date, date]
    """Monday and Sunday of this week."""


def week_of(today: date) -> tuple[date, date]:
    """Monday and Sunday of the week holding `today`.

    >>> week_of(date(2025, 3, 13))
    (datetime.date(2025, 3, 10), datetime.date(2025, 3, 16))
    """
    monday = today - timedelta(days=today.weekday())
    return monday, monday + timedelta(days=6)


def local_today(records: Records) -> date:
    """Today in the organisation's time zone (settings.yaml `time_zone`), by the records
    service's clock."""
    return records.clock().astimezone(records.model.settings.zone).date()


def open_options(f: Field) -> tuple[str, ...]:
    """The options of a choice field that leave a record open (all but the `closed` ones)."""
    return tuple(o for o in f.options if o not in f.closed)


def home_view(records: Records, actor: Actor) -> HomeView:
    model = records.model
    policy = records.policy
    readable = [e for e in model.entities
                if policy.scope(actor, e.name, "read") is not Scope.NONE]
    pipelines: list[Pipeline] = []
    due: list[Due] = []
    for entity in readable:
        hidden = policy.hidden_fields(actor, entity)
        for f in board_fields(entity):
            if f.closed and f.name not in hidden:
                found = _pipeline(records, actor, entity, f, hidden)
                if found is not None:
                    pipelines.append(found)
        for f in entity.fields:
            if f.calendar and not f.computed and f.name not in hidden:
                listed = _due(records, actor, entity, f, hidden)
                if listed is not None:
                    due.append(listed)
    menu = list(AREAS)  # in the side menu's order: by area, then as configured
    creatable = tuple(sorted(
        (e for e in model.entities
         if e.menu and policy.scope(actor, e.name, "create") is not Scope.NONE),
        key=lambda e: menu.index(e.area) if e.area in menu else len(menu)))
    return HomeView(tuple(pipelines), tuple(due), creatable, week_of(local_today(records)))


def _pipeline(records: Records, actor: Actor, entity: Entity, f: Field,
              hidden: frozenset[str]) -> Pipeline | None:
    """Count and sums of the actor's own records holding an open option of `f`."""
    options = open_options(f)
    if not options:
        return None
    numbers = board_numbers(entity, hidden)
    mine = Condition("owner_id", "eq", actor.user_id)
    try:
        groups = grouped_totals(records, actor, entity.name, f.name, numbers.sums,
                                (mine, Condition(f.name, "in", list(options))))
    except RecordError:  # nothing to show rather than a broken home page
        return None
    count = sum(g.count for g in groups.values())

    def total(name: str | None) -> Decimal:
        return sum((g.sums.get(name) or Decimal(0) for g in groups.values()), Decimal(0)) \
            if name else Decimal(0)

    href = f"/e/{entity.name}?" + urlencode({"mine": "1", f"{f.name}__in": ",".join(options)})
    return Pipeline(entity, count,
                    entity.field(numbers.amount) if numbers.amount else None,
                    total(numbers.amount),
                    entity.field(numbers.weighted) if numbers.weighted else None,
                    total(numbers.weighted), href)


def _due(records: Records, actor: Actor, entity: Entity, f: Field,
         hidden: frozenset[str]) -> Due | None:
    """The actor's own open records of `entity` whose `f` falls in this week."""
    monday, sunday = week_of(local_today(records))
    params: dict[str, Any] = {f"{f.name}__gte": monday.isoformat(),
                              f"{f.name}__lte": sunday.isoformat(), "sort": f"{f.name},id"}
    for status in entity.fields:
        if status.type is FieldType.CHOICE and status.closed and status.name not in hidden:
            if not open_options(status):
                return None
            params[f"{status.name}__in"] = ",".join(open_options(status))
    try:
        # as the list the section links to reads them: a datetime by the organisation's
        # days, Monday 00:00 to Sunday 24:00 there
        query = parse_state(entity, {**params, "page_size": str(DUE_ROWS)},
                            zone=records.model.settings.zone).query
        query = replace(query, conditions=(*query.conditions,
                                           Condition("owner_id", "eq", actor.user_id)))
        page = records.list_records(actor, entity.name, query)
    except RecordError:
        return None
    rows = tuple(DueRecord(int(r["id"]), str(r.get(entity.title) or f"#{r['id']}"),
                           f"/e/{entity.name}/{r['id']}", r[f.name])
                 for r in page.items)
    href = f"/e/{entity.name}?" + urlencode({"mine": "1", **params})
    return Due(entity, f, rows, page.total, href)

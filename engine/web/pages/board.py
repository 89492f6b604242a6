"""The pipeline board: records as cards in one column per option of a `board: true` field.

`GET /e/<entity>/board/<field>` draws the columns with their totals; a card moves with
`POST /e/<entity>/<id>/move` (field, value, version), which is an ordinary
`Records.update`: validation rules, the version check and access all apply. A refused move
comes back as the card with the reason written on it, or, when the records service names
fields the viewer may write ("a lost opportunity needs a lost reason"), with a small form
asking for them; sending it saves those values and the move together (static/board.js drags
cards, puts a refused one back and handles that form; each card's small "Move" menu does the
same from the keyboard, or as a plain form without script).

What a card and a column show: "amount" is the entity's first stored money field, "weighted"
its first computed money field, each only when the viewer may see it; a card also shows the
first reference and the first date among the form's list columns (an opportunity's account
and close date). The board can be narrowed to one owner or department (`owner_id`,
`department_id`, as lists filter) and to the viewer's own records (`mine=1`): board_filters.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.messages import joined, localize, msg
from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import STALE_VERSION, BadRequest, Invalid, NotFound, RecordError
from engine.runtime.records.aggregate import GroupTotals, grouped_totals
from engine.runtime.records.query import Condition, ListQuery, SortKey
from engine.types import FieldType
from engine.web.i18n import N_, translations
from engine.web.numbers import whole_number
from engine.web.pages.board_filters import FILTER_KEYS, Choice, Filters, parse_filters
from engine.web.pages.fields import titles, user_names
from engine.web.pages.widgets import FormModel, Widget, posted_lists
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

CARDS_PER_COLUMN = 50
MAX_ID = 2**63 - 1
NOT_A_BOARD = N_("This field has no board.")
BAD_VALUE = N_("Choose one of the columns of the board.")
SET = "set."
"""Prefix of the values a move's form sends besides the column (`set.lost_reason=price`)."""
INLINE_KINDS = frozenset({"text", "email", "tel", "url", "textarea", "integer", "decimal",
                          "money", "percent", "date", "datetime", "select", "checks",
                          "checkbox"})
"""Widget kinds a card can ask for in place (a picker needs the record's own form)."""


def board_fields(entity: Entity) -> tuple[Field, ...]:
    return tuple(f for f in entity.fields if f.board and f.type is FieldType.CHOICE)


@dataclass(frozen=True)
class Numbers:
    """The money fields a board shows, as the viewer may see them (None: not shown)."""

    amount: str | None
    weighted: str | None

    @property
    def sums(self) -> tuple[str, ...]:
        return tuple(n for n in (self.amount, self.weighted) if n is not None)


def board_numbers(entity: Entity, hidden: frozenset[str]) -> Numbers:
    money = [f for f in entity.fields if f.type is FieldType.MONEY and f.name not in hidden]
    amount = next((f.name for f in money if not f.derived), None)
    weighted = next((f.name for f in money if f.computed and f.compiled is not None
                     and f.compiled.sql_capable), None)
    return Numbers(amount, weighted)


@dataclass(frozen=True)
class Details:
    """The other fields a card shows (None: not shown): the first reference and the first
    date among the form's list columns that the viewer may see."""

    reference: str | None
    date: str | None


def card_details(entity: Entity, columns: tuple[str, ...], hidden: frozenset[str]) -> Details:
    shown = [entity.field(n) for n in columns if entity.has_field(n) and n not in hidden]
    return Details(next((f.name for f in shown if f.type is FieldType.REFERENCE), None),
                   next((f.name for f in shown if f.type is FieldType.DATE), None))


@dataclass(frozen=True)
class Card:
    id: int
    version: int
    value: str | None
    title: str
    amount: Decimal | None
    owner: str
    reference: str = ""
    date: date | None = None


@dataclass(frozen=True)
class Column:
    index: int
    value: str | None
    label: str
    count: int
    amount: Decimal | None
    weighted: Decimal | None
    cards: tuple[Card, ...] = ()
    more_href: str | None = None


@dataclass(frozen=True)
class Prompt:
    """What a refused move asks for on the card: the fields the records service wants
    filled that the viewer may write, sent again together with the move."""

    value: str
    """The column the card is being moved to."""
    label: str
    widgets: tuple[Widget, ...]
    problems: tuple[str, ...] = ()
    """What else the service said (a rule about the whole record), in the viewer's language."""


@dataclass(frozen=True)
class BoardView:
    entity: Entity
    field: Field
    numbers: Numbers
    details: Details
    columns: tuple[Column, ...]
    movable: bool
    filters: Filters
    language: str
    owners: tuple[Choice, ...] = ()
    departments: tuple[Choice, ...] = ()

    @property
    def options(self) -> tuple[tuple[str, str], ...]:
        return tuple((o, self.field.option_label(o, self.language)) for o in self.field.options)

    @property
    def mine(self) -> bool:
        return self.filters.mine


class Board(PageFamily):
    def routes(self) -> list[Route]:
        return [Route("/e/{entity}/board/{field}", self.board, methods=["GET"]),
                Route("/e/{entity}/{record_id:id}/move", self.move, methods=["POST"])]

    # -- lookups -----------------------------------------------------------------------------

    def _entity(self, request: Request) -> Entity:
        name = str(request.path_params["entity"])
        if not self.model.has_entity(name):
            raise NotFound(msg("no entity %(name)s", name=repr(name[:80])))
        return self.model.entity(name)

    def _board_field(self, actor: Actor, entity: Entity, name: str) -> Field:
        field = next((f for f in board_fields(entity) if f.name == name), None)
        if field is None or name in self.records.policy.hidden_fields(actor, entity):
            raise NotFound(NOT_A_BOARD)
        return field

    # -- the board ---------------------------------------------------------------------------

    async def board(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request)
        actor = viewer.user.actor()
        field = self._board_field(actor, entity, str(request.path_params["field"]))
        params = request.query_params
        if any(k in params and not params[k].strip() for k in (*FILTER_KEYS, "mine")):
            # An emptied filter is sent as `owner_id=`: answer with the clean address.
            clean = parse_filters(params).query
            return RedirectResponse(f"/e/{entity.name}/board/{field.name}{clean}", 303)
        filters = parse_filters(params)
        view = await run_in_threadpool(self.load, viewer, entity, field, filters)
        return self.ui.page(request, "board.html", {"board": view})

    def load(self, viewer: Viewer, entity: Entity, field: Field, filters: Filters, *,
             choices: bool = True) -> BoardView:
        """Every column with its totals and its most valuable cards, as the viewer sees them;
        with `choices`, the owners and departments the filters offer."""
        actor = viewer.user.actor()
        policy = self.records.policy
        mask = policy.mask(actor, entity)
        numbers = board_numbers(entity, mask.hidden)
        details = card_details(entity, self.model.form(entity.name).list_columns, mask.hidden)
        base = filters.conditions(actor)
        totals = grouped_totals(self.records, actor, entity.name, field.name, numbers.sums,
                                base)
        values: list[str | None] = list(field.options)
        # Values no longer among the options (config changed), then blanks, get columns of
        # their own after the options, so that no record drops off the board.
        values += sorted(v for v in totals if v is not None and v not in field.options)
        if None in totals:
            values.append(None)
        sort: tuple[SortKey, ...] = (SortKey(numbers.amount, True),) if numbers.amount else ()
        if entity.title not in mask.hidden:
            sort += (SortKey(entity.title, False),)
        raw: list[tuple[int, str | None, GroupTotals, list[dict[str, Any]]]] = []
        for index, value in enumerate(values):
            group = totals.get(value, GroupTotals(0, {}))
            items: list[dict[str, Any]] = []
            if group.count:
                where = Condition(field.name, "blank", True) if value is None \
                    else Condition(field.name, "eq", value)
                page = self.records.list_records(actor, entity.name, ListQuery(
                    conditions=(*base, where), sort=sort, page_size=CARDS_PER_COLUMN))
                items = page.items
            raw.append((index, value, group, items))
        names = self.card_names(actor, entity, details, [r for *_, items in raw for r in items])
        columns = []
        for index, value, group, items in raw:
            cards = tuple(self.card(entity, field, numbers, details, r, names) for r in items)
            more = None
            if group.count > len(cards):
                params = {field.name: value} if value is not None \
                    else {f"{field.name}__blank": "true"}
                params |= filters.params
                if numbers.amount:
                    params["sort"] = f"-{numbers.amount}"
                more = f"/e/{entity.name}?{urlencode(params)}"
            columns.append(Column(
                index, value, field.option_label(value, viewer.language) if value else "",
                group.count,
                group.sums.get(numbers.amount) if numbers.amount else None,
                group.sums.get(numbers.weighted) if numbers.weighted else None,
                cards, more))
        movable = (field.name not in mask.readonly
                   and policy.scope(actor, entity.name, "update") is not Scope.NONE)
        owners: tuple[Choice, ...] = ()
        departments: tuple[Choice, ...] = ()
        if choices:
            owners = self.filter_choices(actor, entity, "owner_id", filters.owner)
            if self.model.has_entity("department"):
                departments = self.filter_choices(actor, entity, "department_id",
                                                  filters.department)
        return BoardView(entity, field, numbers, details, tuple(columns), movable, filters,
                         viewer.language, owners, departments)

    def filter_choices(self, actor: Actor, entity: Entity, column: str,
                       chosen: int | None) -> tuple[Choice, ...]:
        """The owners (or departments) of the records the viewer can read, by name, each
        with how many of those records it has; a department the viewer may not read shows
        as its number, as in lists. Counted by the same grouped query as the totals."""
        try:
            counts = grouped_totals(self.records, actor, entity.name, column, ())
        except NotFound:  # the column is hidden from the viewer
            return ()
        ids = {int(v) for v in counts if v is not None}
        if chosen is not None:
            ids.add(chosen)
        names = user_names(self.records, ids) if column == "owner_id" \
            else titles(self.model, self.records, actor, "department", ids)
        found = [Choice(i, str(names.get(i, f"#{i}")),
                        counts[i].count if i in counts else 0) for i in ids]
        return tuple(sorted(found, key=lambda c: (c.text.casefold(), c.value)))

    def card_names(self, actor: Actor, entity: Entity, details: Details,
                   rows: list[dict[str, Any]]) -> dict[str, dict[int, str]]:
        """Owner names and reference titles of some cards, in one query each."""
        owners = {r["owner_id"] for r in rows if isinstance(r.get("owner_id"), int)}
        out: dict[str, dict[int, str]] = {"owner_id": user_names(self.records, owners)}
        ref = details.reference
        if ref is not None:
            target = entity.field(ref).target
            ids = {r[ref] for r in rows if isinstance(r.get(ref), int)}
            out[ref] = titles(self.model, self.records, actor, target, ids) \
                if target and ids else {}
        return out

    def card(self, entity: Entity, field: Field, numbers: Numbers, details: Details,
             row: Mapping[str, Any], names: Mapping[str, Mapping[int, str]]) -> Card:
        title = row.get(entity.title)
        owner_id = row.get("owner_id")
        reference = ""
        if details.reference is not None and isinstance(row.get(details.reference), int):
            linked = int(row[details.reference])  # a record the viewer may not read: #id
            reference = names.get(details.reference, {}).get(linked, f"#{linked}")
        when = row.get(details.date) if details.date else None
        return Card(int(row["id"]), int(row["version"]), row.get(field.name),
                    str(title) if title not in (None, "") else f"#{row['id']}",
                    row.get(numbers.amount) if numbers.amount else None,
                    names.get("owner_id", {}).get(owner_id, "")
                    if isinstance(owner_id, int) else "",
                    reference, when if isinstance(when, date) else None)

    # -- moving a card -----------------------------------------------------------------------

    async def move(self, request: Request) -> Response:
        """Move one card; for a script (`HX-Request`), the card and the column totals as an
        HTML fragment (with the reason on the card when refused, or the fields to fill, and
        the refusal's status); for a plain form, back to the board or an error page."""
        viewer = require_viewer(request)
        entity = self._entity(request)
        actor = viewer.user.actor()
        record_id = int(request.path_params["record_id"])
        if not 0 < record_id <= MAX_ID:
            raise NotFound(msg("no %(entity)s %(id)s", entity=entity.name, id=record_id))
        async with request.form() as form:
            items = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        data = {k: v for k, v in items if not k.startswith(SET)}
        extra = posted_lists([(k[len(SET):], v) for k, v in items if k.startswith(SET)])
        field = self._board_field(actor, entity, data.get("field", ""))
        filters = parse_filters(data)
        fragment = "hx-request" in request.headers
        error: RecordError | None = None
        value = data.get("value", "")
        try:
            if value not in field.options:
                raise BadRequest(BAD_VALUE, {field.name: BAD_VALUE})
            version = _version(data.get("version", ""))
            await run_in_threadpool(self.save_move, viewer, entity, field, record_id, value,
                                    version, extra)
        except RecordError as exc:
            if not fragment:
                raise
            error = exc
        if not fragment:
            return RedirectResponse(f"/e/{entity.name}/board/{field.name}{filters.query}", 303)
        refusal = (value, extra, error) if isinstance(error, Invalid) else None
        view, card, prompt = await run_in_threadpool(self.after_move, viewer, entity, field,
                                                     filters, record_id, refusal)
        message = None
        if error is not None and prompt is None:
            message = self.error_text(viewer.language, entity, error)
        return self.ui.page(request, "board_card.html", {
            "board": view, "moved": card, "error": message, "prompt": prompt,
            "status_code": error.status if error else 200},
            status=error.status if error else 200)

    def save_move(self, viewer: Viewer, entity: Entity, field: Field, record_id: int,
                  value: str, version: int, extra: Mapping[str, list[str]]) -> None:
        """The move as one update, with the values the card's form asked for: only fields
        the viewer may write and that the record's form shows (its conditions evaluated on
        the moved record), as the edit form would save them."""
        actor = viewer.user.actor()
        data: dict[str, Any] = {field.name: value}
        if extra:
            form = FormModel(self.model, self.records, actor, viewer.language, entity)
            stored = self.records.get(actor, entity.name, record_id)
            typed = form.typed_of(extra, stored)
            typed.pop(field.name, None)
            states = form.evaluate(stored, {**typed, field.name: value}).states
            data |= form.submitted(typed, states, creating=False)
        self.records.update(actor, entity.name, record_id, data, version)

    def after_move(self, viewer: Viewer, entity: Entity, field: Field, filters: Filters,
                   record_id: int,
                   refusal: tuple[str, Mapping[str, list[str]], Invalid] | None
                   ) -> tuple[BoardView, Card | None, Prompt | None]:
        """The board's totals after a move, the card as it now is (None: not visible), and
        for a refused move what the card may ask for in place."""
        actor = viewer.user.actor()
        view = self.load(viewer, entity, field, filters, choices=False)
        try:
            row = self.records.get(actor, entity.name, record_id)
        except RecordError:
            return view, None, None
        names = self.card_names(actor, entity, view.details, [row])
        card = self.card(entity, field, view.numbers, view.details, row, names)
        prompt = None
        if refusal is not None:
            prompt = self.prompt(viewer, entity, field, row, *refusal)
        return view, card, prompt

    def prompt(self, viewer: Viewer, entity: Entity, field: Field, row: Mapping[str, Any],
               value: str, extra: Mapping[str, list[str]], error: Invalid) -> Prompt | None:
        """The fields a refused move can ask for on the card: those the service named that
        the viewer may write and the form shows once moved. None when there are none (the
        refusal is then only shown: a rule about the whole record, a read-only field)."""
        language = viewer.language
        form = FormModel(self.model, self.records, viewer.user.actor(), language, entity)
        typed = form.typed_of(extra, row)
        typed.pop(field.name, None)
        moved = form.evaluate(row, {**typed, field.name: value})
        widgets: list[Widget] = []
        for name, problem in error.fields.items():
            if name == field.name or not form.writable(name) \
                    or moved.states.get(name, "shown") != "shown":
                continue
            widget = form.widget(entity.field(name), moved, typed,
                                 self.problem_text(language, entity, problem),
                                 conditional=False)
            if widget.kind in INLINE_KINDS:
                widgets.append(widget)
        if not widgets:
            return None
        asked = {w.name for w in widgets}
        others = tuple(self.problem_text(language, entity, p)
                       for k, p in error.fields.items() if k not in asked)
        return Prompt(value, field.option_label(value, language), tuple(widgets), others)

    def error_text(self, language: str, entity: Entity, exc: RecordError) -> str:
        """What a refused move tells the user: the field problems (validation rules in the
        user's language), or the service's message."""
        if exc.fields and exc.fields.get("version") != STALE_VERSION:
            texts = [msg("%(field)s: %(problem)s", field=entity.field(key).label, problem=p)
                     if entity.has_field(key) else p for key, p in exc.fields.items()]
            return self.problem_text(language, entity, joined(texts))
        return self.problem_text(language, entity, exc.message)

    def problem_text(self, language: str, entity: Entity, problem: str) -> str:
        """One message of the records service in `language` (from its id and parameters)."""
        return localize(problem, translations()[language].gettext, language)


def _version(raw: str) -> int:
    version = whole_number(raw, 18)
    if version is None:
        raise BadRequest(msg("version must be a whole number"),
                         {"version": msg("is not a number")})
    return version




"""The pipeline board: records as cards in one column per option of a `board: true` field.

`GET /e/<entity>/board/<field>` draws the columns with their totals; a card moves with
`POST /e/<entity>/<id>/move` (field, value, version), which is an ordinary
`Records.update`: validation rules, the version check and access all apply, and a refused
move comes back as the card with the error written on it (static/board.js drags cards and
puts a refused one back; the "Move to" select on each card does the same from the keyboard,
or as a plain form without script).

Which numbers a card and a column show: "amount" is the entity's first stored money field,
"weighted" its first computed money field, each only when the viewer may see it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest, NotFound, RecordError
from engine.runtime.records.aggregate import GroupTotals, grouped_totals
from engine.runtime.records.query import Condition, ListQuery, SortKey
from engine.types import FieldType
from engine.web.i18n import N_
from engine.web.numbers import whole_number
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

CARDS_PER_COLUMN = 50
MAX_ID = 2**63 - 1
NOT_A_BOARD = N_("This field has no board.")
BAD_VALUE = N_("Choose one of the columns of the board.")


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
    amount = next((f.name for f in money if not f.computed), None)
    weighted = next((f.name for f in money if f.computed and f.compiled is not None
                     and f.compiled.sql_capable), None)
    return Numbers(amount, weighted)


@dataclass(frozen=True)
class Card:
    id: int
    version: int
    value: str | None
    title: str
    amount: Decimal | None
    owner: str


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
class BoardView:
    entity: Entity
    field: Field
    numbers: Numbers
    columns: tuple[Column, ...]
    movable: bool
    mine: bool
    language: str

    @property
    def options(self) -> tuple[tuple[str, str], ...]:
        return tuple((o, self.field.option_label(o, self.language)) for o in self.field.options)


class Board(PageFamily):
    def routes(self) -> list[Route]:
        return [Route("/e/{entity}/board/{field}", self.board, methods=["GET"]),
                Route("/e/{entity}/{record_id:id}/move", self.move, methods=["POST"])]

    # -- lookups -----------------------------------------------------------------------------

    def _entity(self, request: Request) -> Entity:
        name = str(request.path_params["entity"])
        if not self.model.has_entity(name):
            raise NotFound(f"no entity {name[:80]!r}")
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
        mine = request.query_params.get("mine") == "1"
        view = await run_in_threadpool(self.load, viewer, entity, field, mine)
        return self.ui.page(request, "board.html", {"board": view})

    def load(self, viewer: Viewer, entity: Entity, field: Field, mine: bool) -> BoardView:
        """Every column with its totals and its most valuable cards, as the viewer sees them."""
        actor = viewer.user.actor()
        policy = self.records.policy
        mask = policy.mask(actor, entity)
        numbers = board_numbers(entity, mask.hidden)
        base: tuple[Condition, ...] = (
            (Condition("owner_id", "eq", actor.user_id),) if mine else ())
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
        owners = self.user_names({r["owner_id"] for *_, items in raw for r in items
                                  if r.get("owner_id") is not None})
        columns = []
        for index, value, group, items in raw:
            cards = tuple(self.card(entity, field, numbers, r, owners) for r in items)
            more = None
            if group.count > len(cards):
                params = {field.name: value} if value is not None \
                    else {f"{field.name}__blank": "true"}
                if mine:
                    params["mine"] = "1"
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
        return BoardView(entity, field, numbers, tuple(columns), movable, mine, viewer.language)

    def card(self, entity: Entity, field: Field, numbers: Numbers, row: Mapping[str, Any],
             owners: Mapping[int, str]) -> Card:
        title = row.get(entity.title)
        owner_id = row.get("owner_id")
        return Card(int(row["id"]), int(row["version"]), row.get(field.name),
                    str(title) if title not in (None, "") else f"#{row['id']}",
                    row.get(numbers.amount) if numbers.amount else None,
                    owners.get(owner_id, "") if isinstance(owner_id, int) else "")

    def user_names(self, ids: set[int]) -> dict[int, str]:
        """Display names of users (who owns a card is shown to everyone who sees the card)."""
        if not ids:
            return {}
        u = self.records.users
        with self.records.engine.connect() as conn:
            rows = conn.execute(select(u.c.id, u.c.display_name, u.c.name)
                                .where(u.c.id.in_(sorted(ids))))
            return {int(r.id): str(r.display_name or r.name) for r in rows}

    # -- moving a card -----------------------------------------------------------------------

    async def move(self, request: Request) -> Response:
        """Move one card; for a script (`HX-Request`), the card and the column totals as an
        HTML fragment (with the error on the card when refused, and the refusal's status);
        for a plain form, back to the board or an error page."""
        viewer = require_viewer(request)
        entity = self._entity(request)
        actor = viewer.user.actor()
        record_id = int(request.path_params["record_id"])
        if not 0 < record_id <= MAX_ID:
            raise NotFound(f"no {entity.name} {record_id}")
        async with request.form() as form:
            data = {k: v for k, v in form.items() if isinstance(v, str)}
        field = self._board_field(actor, entity, data.get("field", ""))
        fragment = "hx-request" in request.headers
        error: RecordError | None = None
        try:
            value = data.get("value", "")
            if value not in field.options:
                raise BadRequest(BAD_VALUE, {field.name: BAD_VALUE})
            version = _version(data.get("version", ""))
            await run_in_threadpool(self.records.update, actor, entity.name, record_id,
                                    {field.name: value}, version)
        except RecordError as exc:
            if not fragment:
                raise
            error = exc
        mine = data.get("mine") == "1"
        if not fragment:
            query = "?mine=1" if mine else ""
            return RedirectResponse(f"/e/{entity.name}/board/{field.name}{query}", 303)
        view, card = await run_in_threadpool(self.after_move, viewer, entity, field, mine,
                                             record_id)
        message = self.error_text(request, entity, error) if error is not None else None
        return self.ui.page(request, "board_card.html", {
            "board": view, "moved": card, "error": message,
            "status_code": error.status if error else 200},
            status=error.status if error else 200)

    def after_move(self, viewer: Viewer, entity: Entity, field: Field, mine: bool,
                   record_id: int) -> tuple[BoardView, Card | None]:
        """The board's totals after a move, and the card as it now is (None: not visible)."""
        actor = viewer.user.actor()
        view = self.load(viewer, entity, field, mine)
        try:
            row = self.records.get(actor, entity.name, record_id)
        except RecordError:
            return view, None
        owners = self.user_names({row["owner_id"]} if row.get("owner_id") else set())
        return view, self.card(entity, field, view.numbers, row, owners)

    def error_text(self, request: Request, entity: Entity, exc: RecordError) -> str:
        """What a refused move tells the user: the field problems (validation rules in the
        user's language), or the service's message."""
        language = self.ui.language_of(request)
        if exc.fields and exc.fields.get("version") != "stale":
            texts = []
            for key, problem in exc.fields.items():
                text = self.ui.gettext(request, _localize(entity, str(problem), language))
                if entity.has_field(key):
                    text = f"{entity.field(key).label.get(language)}: {text}"
                texts.append(text)
            return "; ".join(texts)
        return self.ui.gettext(request, exc.message)


def _version(raw: str) -> int:
    version = whole_number(raw, 18)
    if version is None:
        raise BadRequest("version must be a whole number", {"version": "is not a number"})
    return version


def _localize(entity: Entity, message: str, language: str) -> str:
    """A validation rule's message in `language` (the service reports the English one)."""
    for rule in entity.validations:
        english = rule.message.get("en")
        if english and english in message:
            message = message.replace(english, rule.message.get(language))
    return message

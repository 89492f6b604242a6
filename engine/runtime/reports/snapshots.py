"""Pipeline snapshots (docs/forecast.md): every open opportunity as it stood at a moment —
stage, amount, probability, weighted amount, forecast category, close date, owner and
department — kept without a time limit, so the forecast can be compared over time.

Taking one is a header row and ONE `INSERT … SELECT` of the open deals, in one transaction:
the deals never pass through Python. Computed fields (probability, weighted amount,
forecast category) are computed by the database, as lists compute them, at that moment.
The worker takes one per period of settings.yaml `pipeline_snapshots` (the period's key is
unique, so two workers never take two); `crm snapshot`, `POST /api/pipeline/snapshots` and
the forecast page's button take one on demand.

Reading them goes through the one secure query: the snapshot's rows are presented as the
opportunity's rows (`id` the deal's id, its STORED owner and department), so the viewer's
read scope of opportunities (own, department, department tree, all; teams by the deal's
team today) applies to the owner and department the deal had when the snapshot was taken.
A reading that needs a field hidden from the viewer (amount, and the weighted amount that
reads it) is refused, naming no field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Integer,
    String,
    Table,
    and_,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from engine.messages import msg
from engine.metadata import Model
from engine.metadata.roles import Scope
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import BadRequest, Forbidden, NotFound
from engine.runtime.records import secure
from engine.runtime.records.secure import SecureRows
from engine.runtime.schema.tables import SNAPSHOT_ROW_TABLE, SNAPSHOT_TABLE

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

ENTITY = "opportunity"
FIELDS = ("stage", "amount", "probability", "weighted", "forecast_category", "close_date")
"""The deal's fields a snapshot keeps (with its owner and department)."""
SCHEDULED = "scheduled"
ON_DEMAND = "on_demand"
TAKERS = (Scope.DEPARTMENT, Scope.DEPARTMENT_TREE, Scope.ALL)
"""Read scopes of opportunities that may take a snapshot on demand (managers, executives;
administrators always): wider than their own deals. A snapshot holds every open deal, but a
reader sees only their scope of it, so taking one reveals nothing."""


@dataclass(frozen=True)
class Snapshot:
    id: int
    taken_at: datetime
    taken_by: int | None
    kind: str
    period: str | None
    deals: int
    """The deals of the snapshot the asker may see (all of them for the one who took it
    through the engine)."""

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "taken_at": self.taken_at.isoformat(),
                "taken_by": self.taken_by, "kind": self.kind, "period": self.period,
                "deals": self.deals}


def supported(model: Model) -> bool:
    """Whether the configuration has the opportunity fields a snapshot keeps."""
    if not model.has_entity(ENTITY):
        return False
    entity = model.entity(ENTITY)
    return all(entity.has_field(f) for f in FIELDS)


def _require_supported(model: Model) -> None:
    if not supported(model):
        raise NotFound(msg("pipeline snapshots need the opportunity entity with its stage, "
                           "amount and forecast fields"))


def header_table(records: Records) -> Table:
    return records.schema.table(SNAPSHOT_TABLE)


def row_table(records: Records) -> Table:
    return records.schema.table(SNAPSHOT_ROW_TABLE)


# -- taking ----------------------------------------------------------------------------------


def may_take(records: Records, actor: Actor) -> bool:
    """Whether `actor` may take a snapshot on demand: an administrator, or a reader of
    opportunities beyond their own (TAKERS)."""
    if not supported(records.model):
        return False
    policy = records.policy
    return policy.is_admin(actor) or policy.scope(actor, ENTITY, "read") in TAKERS


def take(records: Records, actor: Actor = SYSTEM, *, kind: str = ON_DEMAND,
         period: str | None = None, at: datetime | None = None) -> Snapshot:
    """Take a snapshot of every open deal now (`at`, the service's clock by default): the
    header and one INSERT … SELECT, in one transaction. Forbidden unless `may_take`;
    IntegrityError when `period` already has its snapshot."""
    _require_supported(records.model)
    if not may_take(records, actor):
        raise Forbidden(msg("you may not take pipeline snapshots"))
    taken_at = records.clock() if at is None else at
    header, rows = header_table(records), row_table(records)
    seen = secure.rows(records, SYSTEM, ENTITY)  # every live deal, as the engine reads it
    entity = seen.entity
    stage = entity.field("stage")
    values = [seen.column(name) for name in FIELDS]
    with records.engine.begin() as conn:
        snapshot_id = int(conn.execute(insert(header).values(
            taken_at=taken_at, taken_by=actor.user_id, kind=kind, period=period)
            .returning(header.c.id)).scalar_one())
        chosen = seen.select(literal(snapshot_id, Integer), seen.table.c.id, *values,
                             seen.table.c.owner_id, seen.table.c.department_id)
        if stage.closed:
            chosen = chosen.where(seen.column("stage").not_in(stage.closed)
                                  | seen.column("stage").is_(None))
        conn.execute(insert(rows).from_select(
            ["snapshot_id", "record_id", *FIELDS, "owner_id", "department_id"], chosen))
        # counted, not the cursor's rowcount: a request's time-limited connection (PostgreSQL)
        # does not report it
        deals = conn.execute(select(func.count()).select_from(rows)
                             .where(rows.c.snapshot_id == snapshot_id)).scalar_one()
    return Snapshot(snapshot_id, taken_at, actor.user_id, kind, period, int(deals))


class ScheduledSnapshots:
    """The worker's part: at each pass, the snapshot of the current period of settings.yaml
    `pipeline_snapshots`, unless it is there (its period is unique: of two workers one
    takes it). The period last seen taken is kept, so a pass asks the database once a
    period."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.schedule = records.model.settings.pipeline_snapshots
        self._done: str | None = None

    def __call__(self, now: datetime) -> Snapshot | None:
        """The snapshot taken now, None when none was due."""
        if self.schedule is None or not supported(self.records.model):
            return None
        today = now.astimezone(self.records.model.settings.zone).date()
        period = self.schedule.period(today)
        if period == self._done:
            return None
        header = header_table(self.records)
        with self.records.engine.connect() as conn:
            there = conn.execute(select(header.c.id).where(header.c.period == period)).first()
        if there is None:
            try:
                taken = take(self.records, SYSTEM, kind=SCHEDULED, period=period, at=now)
            except IntegrityError:  # another worker took it first
                taken = None
        else:
            taken = None
        self._done = period
        return taken


# -- reading ---------------------------------------------------------------------------------


def reads_history(records: Records, actor: Actor) -> bool:
    """Whether `actor` may read snapshots at all: they read opportunities (no query)."""
    return supported(records.model) and \
        records.policy.scope(actor, ENTITY, "read") is not Scope.NONE


def seen_rows(records: Records, actor: Actor, snapshot_ids: Sequence[int] | None = None,
              *, reads: Sequence[str] = ()) -> tuple[SecureRows, Subquery]:
    """The snapshot rows `actor` may see, as the one secure query of the opportunity over
    the rows presented as deals (`id` the deal, `owner_id`/`department_id` as stored).
    `reads`: the fields the caller reads; Forbidden when one is hidden from the actor, or
    when they may not read opportunities at all."""
    _require_supported(records.model)
    r = row_table(records)
    view = select(r.c.record_id.label("id"), r.c.snapshot_id, *[r.c[f] for f in FIELDS],
                  r.c.owner_id, r.c.department_id,
                  null().label("deleted_at"))  # never in a recycle bin: history
    if snapshot_ids is not None:
        view = view.where(r.c.snapshot_id.in_(list(snapshot_ids)))
    table = view.subquery("snapshot_deals")
    seen = secure.rows(records, actor, ENTITY, deleted=None, table=table)
    records.policy.require(actor, seen.entity, "read")
    if any(name in seen.hidden for name in reads):
        raise Forbidden(msg("this report reads fields you may not see"))
    return seen, table


def list_snapshots(records: Records, actor: Actor, limit: int = 1000) -> list[Snapshot]:
    """The snapshots, newest first, each with the number of its deals `actor` may see."""
    seen, view = seen_rows(records, actor)
    header = header_table(records)
    counts = seen.select(view.c.snapshot_id, func.count().label("deals")) \
        .group_by(view.c.snapshot_id).subquery("counts")
    stmt = select(header, func.coalesce(counts.c.deals, 0).label("deals")) \
        .select_from(header.outerjoin(counts, counts.c.snapshot_id == header.c.id)) \
        .order_by(header.c.taken_at.desc(), header.c.id.desc()).limit(limit)
    with records.engine.connect() as conn:
        return [Snapshot(int(m["id"]), m["taken_at"], m["taken_by"], m["kind"], m["period"],
                         int(m["deals"])) for m in conn.execute(stmt).mappings()]


def find_snapshot(records: Records, snapshot_id: int) -> Snapshot:
    """The header of one snapshot (its `deals` 0: not counted); NotFound."""
    header = header_table(records)
    with records.engine.connect() as conn:
        m = conn.execute(select(header).where(header.c.id == snapshot_id)).mappings().first()
    if m is None:
        raise NotFound(msg("no pipeline snapshot %(id)s", id=str(snapshot_id)))
    return Snapshot(int(m["id"]), m["taken_at"], m["taken_by"], m["kind"], m["period"], 0)


def month_of(records: Records, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A date as the text of its month (2026-03), in SQL."""
    if records.engine.dialect.name == "postgresql":
        return func.to_char(value, literal_column("'YYYY-MM'"), type_=String)
    return func.strftime(literal_column("'%Y-%m'"), value, type_=String)


@dataclass(frozen=True)
class ForecastCell:
    snapshot_id: int
    month: str | None
    """The close month (2026-03); None: no close date."""
    category: str | None
    deals: int
    amount: Decimal
    weighted: Decimal


def forecast_history(records: Records, actor: Actor,
                     snapshot_ids: Sequence[int]) -> list[ForecastCell]:
    """What the snapshots forecast: per snapshot, close month and forecast category, the
    deals, their amount and weighted amount, as `actor` may see them — one grouped
    statement."""
    if not snapshot_ids:
        return []
    seen, view = seen_rows(records, actor, snapshot_ids,
                           reads=("amount", "weighted", "forecast_category", "close_date"))
    month = month_of(records, view.c.close_date).label("month")
    stmt = seen.select(view.c.snapshot_id, month, view.c.forecast_category,
                       func.count().label("deals"), func.sum(view.c.amount).label("amount"),
                       func.sum(view.c.weighted).label("weighted")) \
        .group_by(view.c.snapshot_id, month, view.c.forecast_category)
    with records.engine.connect() as conn:
        return [ForecastCell(int(m["snapshot_id"]), m["month"], m["forecast_category"],
                             int(m["deals"]), money(m["amount"]), money(m["weighted"]))
                for m in conn.execute(stmt).mappings()]


def money(raw: Any) -> Decimal:
    """A sum as a Decimal of two places (SQLite sums floats; blank is 0)."""
    if raw is None:
        return Decimal("0.00")
    return Decimal(repr(raw) if isinstance(raw, float) else str(raw)).quantize(Decimal("0.01"))


def period_range(text: str) -> tuple[date, date]:
    """A close-date period as [start, end): `2026-03` a month, `2026-Q1` a quarter, `2026`
    a year; BadRequest otherwise.

    >>> period_range("2026-Q4")
    (datetime.date(2026, 10, 1), datetime.date(2027, 1, 1))
    """
    try:
        if len(text) == 4 and text.isdigit():
            year = int(text)
            return date(year, 1, 1), date(year + 1, 1, 1)
        year_text, _, rest = text.partition("-")
        year = int(year_text)
        if len(year_text) == 4 and rest[:1] in ("Q", "q") and rest[1:] in ("1", "2", "3", "4"):
            first = (int(rest[1:]) - 1) * 3 + 1
            start = date(year, first, 1)
        elif len(year_text) == 4 and len(rest) == 2 and rest.isdigit():
            start = date(year, int(rest), 1)
            first = start.month
            end = date(year + (first == 12), first % 12 + 1, 1)
            return start, end
        else:
            raise ValueError(text)
        last = first + 3
        return start, date(year + (last > 12), (last - 1) % 12 + 1, 1)
    except ValueError:
        raise BadRequest(msg("period: %(value)s is not a month (2026-03), a quarter (2026-Q1) "
                             "or a year (2026)", value=text)) from None


def in_period(value: ColumnElement[Any], span: tuple[date, date] | None
              ) -> ColumnElement[bool]:
    """Whether a close date falls in the period (any date, blank too, without one)."""
    if span is None:
        return literal(True)
    return and_(value >= span[0], value < span[1])

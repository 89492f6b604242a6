"""What every area of the demo shares: the records service, the seeded randomness, the
clock the history is spread back from, and the people and records made so far."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from faker import Faker

from engine.runtime.access import SYSTEM, Actor
from engine.runtime.records import Records
from engine.runtime.users import User

YEARS = 3
"""How far back the demo's history goes: close dates, signing, receipts, service times."""
CENT = Decimal("0.01")


def money(value: Decimal | int | float) -> Decimal:
    """Rounded to the cent, half up, as the formulas round."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Account:
    """A demo customer as the later areas need it."""

    id: int
    lang: str  # "en" or "zh": the language its names, people and deals are in
    short: str  # what people call it in a deal's name: "Jinan Logistics", "济南恒通"
    owner: User
    industry: str
    tier: str
    credit_limit: Decimal | None
    status: str = "customer"
    opening: Decimal = Decimal(0)  # its opening receivable
    contacts: list[int] = field(default_factory=list)
    contracted: Decimal = Decimal(0)  # what its signed contracts add up to so far


@dataclass
class Product:
    id: int
    code: str
    en: str
    zh: str
    family: str
    line: str  # the product line's code
    price: Decimal
    cost: Decimal
    unit_en: str  # "unit", "kit", "year": how a quantity of it reads in a deal's name
    unit_zh: str


@dataclass
class Item:
    """One line of what a deal sells: the same on its quote and its contract."""

    product: Product
    quantity: int
    discount: int  # percent

    @property
    def total(self) -> Decimal:
        """As the lines' formula computes it: ROUND(quantity * unit_price * (100 - discount)
        / 100, 2)."""
        return money(self.quantity * self.product.price * (100 - self.discount) / 100)


@dataclass
class Deal:
    """An opportunity and what it sells."""

    id: int
    account: Account
    name: str
    stage: str
    close_date: date
    items: list[Item]
    contact: int
    quote: int | None = None  # its last quote, once made
    # the competitor met on the deal: (competitor id, their product id or None)
    rival: tuple[int, int | None] | None = None

    @property
    def amount(self) -> Decimal:
        return sum((i.total for i in self.items), Decimal(0))


@dataclass
class Demo:
    """The state one `fill_demo` run builds up, area after area."""

    records: Records
    seed: int
    say: Callable[[str], None]
    rnd: random.Random
    fakers: dict[str, Faker]
    today: date
    now: datetime
    zone: tzinfo  # the organisation's (settings.yaml time_zone): its working hours
    counts: dict[str, int] = field(default_factory=dict)
    admin: User | None = None
    staff: list[User] = field(default_factory=list)
    departments: dict[str, list[int]] = field(default_factory=dict)  # by kind
    department_of: dict[int, int] = field(default_factory=dict)  # user id -> department
    display: dict[int, str] = field(default_factory=dict)  # user id -> their name
    product_lines: dict[str, int] = field(default_factory=dict)  # code -> id
    products: list[Product] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    campaigns: list[int] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    ids: dict[str, list[int]] = field(default_factory=dict)  # entity -> ids made, in order

    @classmethod
    def start(cls, records: Records, seed: int,
              progress: Callable[[str], None] | None) -> Demo:
        fakers = {"en": Faker("en_US"), "zh": Faker("zh_CN")}
        for i, f in enumerate(fakers.values()):
            f.seed_instance(seed + i)
        now = datetime.now(UTC).replace(microsecond=0)
        zone = records.model.settings.zone
        return cls(records=records, seed=seed, say=progress or (lambda _msg: None),
                   rnd=random.Random(seed),  # noqa: S311 - repeatable demo data, not secrets
                   fakers=fakers, today=now.astimezone(zone).date(), now=now, zone=zone)

    def stream(self, salt: int) -> random.Random:
        """A sequence of its own, so one area's draws do not shift another's."""
        return random.Random(self.seed * 1_000 + salt)  # noqa: S311 - repeatable demo data

    def bulk(self, owner: Actor, entity: str, rows: list[dict[str, Any]]) -> list[int]:
        """Create `rows` through the records service's bulk create as the engine, owned by
        `owner` (SYSTEM: the engine's own). A value for a field the entity does not have
        (a config without it) is left out; a refused row is a bug in the demo: it raises."""
        if not rows:
            return []
        model = self.records.model.entity(entity)
        rows = [{k: v for k, v in row.items() if model.has_field(k)} for row in rows]
        result = self.records.bulk_create(SYSTEM, entity, rows,
                                          owner=None if owner is SYSTEM else owner)
        if result.errors:
            raise RuntimeError(f"demo data for {entity} was refused: {result.errors[:3]}")
        self.counts[entity] = self.counts.get(entity, 0) + result.created
        self.ids.setdefault(entity, []).extend(result.ids)
        return result.ids

    def bulk_owned(self, entity: str, rows: list[tuple[User, dict[str, Any]]]) -> list[int]:
        """`bulk` for rows of several owners: one bulk create per owner; ids in input order."""
        by_owner: dict[int, list[int]] = {}
        owners: dict[int, User] = {}
        for n, (owner, _row) in enumerate(rows):
            by_owner.setdefault(owner.id, []).append(n)
            owners[owner.id] = owner
        ids = [0] * len(rows)
        for owner_id, positions in by_owner.items():
            made = self.bulk(owners[owner_id].actor(), entity,
                             [rows[n][1] for n in positions])
            for n, rid in zip(positions, made, strict=True):
                ids[n] = rid
        return ids

    def update(self, entity: str, record_id: int, values: dict[str, Any]) -> dict[str, Any]:
        """One record's change through the service, as the engine."""
        current = self.records.get(SYSTEM, entity, record_id)
        return self.records.update(SYSTEM, entity, record_id, values, current["version"])

    def has(self, *entities: str) -> bool:
        """Whether the config has all these entities (an area runs only when it does)."""
        return all(self.records.model.has_entity(e) for e in entities)

    # -- people ---------------------------------------------------------------------------

    def with_role(self, *roles: str) -> list[User]:
        return [u for u in self.staff if u.roles[0] in roles]

    @property
    def sellers(self) -> list[User]:
        return self.with_role("sales_rep", "sales_manager", "partner")

    # -- time -----------------------------------------------------------------------------

    def past_day(self, rnd: random.Random, *, newest: int = 1,
                 oldest: int = YEARS * 365) -> date:
        """A day `newest`..`oldest` days ago, more of them recent (a growing company)."""
        span = oldest - newest
        back = newest + int(span * (1 - rnd.random() ** 0.8))
        return self.today - timedelta(days=back)

    def at(self, day: date, rnd: random.Random, *, start: int = 8, end: int = 18) -> datetime:
        """A moment of `day` between the hours `start` and `end` where the organisation is
        (its working hours by default), in UTC, never in the future."""
        moment = datetime.combine(day, time(rnd.randrange(start, end), rnd.randrange(60)),
                                  self.zone).astimezone(UTC)
        return min(moment, self.now - timedelta(minutes=5))

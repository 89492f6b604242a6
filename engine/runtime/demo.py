"""Realistic, consistent demo data (Faker, English and Chinese) through the records service."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from faker import Faker
from sqlalchemy import func, select

from engine.metadata.model import Entity
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.org import DEPARTMENT, seed_org
from engine.runtime.records import Records
from engine.runtime.users import User, Users

DEMO_PASSWORD = "metacrm-demo"
# Share of opportunities per stage: a funnel, widest at the top.
FUNNEL = [("prospecting", 30), ("qualification", 22), ("proposal", 16), ("negotiation", 10),
          ("won", 12), ("lost", 10)]
# Opportunities a presales engineer joins (every 5th, up to this many), so that role has work.
PRESALES_TEAMS = 40
ROLES = ["executive", "sales_manager", "sales_rep", "sales_rep", "sales_rep", "presales",
         "marketing", "service_manager", "service_agent", "partner"]


@dataclass(frozen=True)
class DemoResult:
    admin: User
    counts: dict[str, int]


def existing_data(records: Records) -> dict[str, int]:
    """What a database holds beyond what the engine seeds itself: users, and records per entity.

    The departments that `crm migrate` seeds from config/org.yaml are the engine's (created by
    the system, no user), so a migrated database with only those is still empty: {}.
    """
    found: dict[str, int] = {}
    with records.engine.connect() as conn:
        users = conn.execute(select(func.count()).select_from(records.users)).scalar_one()
        if users:
            found["users"] = int(users)
        for name in records.model.entity_names:
            table = records.schema.table(name)
            query = select(func.count()).select_from(table)
            if name == DEPARTMENT:
                query = query.where(table.c.created_by.is_not(None))
            count = conn.execute(query).scalar_one()
            if count:
                found[name] = int(count)
    return found


def is_empty(records: Records) -> bool:
    """True when no user exists and no record was made by anyone but the engine's seeding."""
    return not existing_data(records)


def fill_demo(records: Records, users: Users, size: int = 200, seed: int = 7,
              progress: Callable[[str], None] | None = None) -> DemoResult:
    """Create a department tree, users per role and `size` accounts with their pipeline."""
    rnd = random.Random(seed)  # noqa: S311 - repeatable demo data, not secrets
    fakers = {"en": Faker("en_US"), "zh": Faker("zh_CN")}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(seed + i)
    say = progress or (lambda _msg: None)
    counts: dict[str, int] = {}

    def bulk(actor: Actor, entity: str, rows: list[dict[str, Any]]) -> list[int]:
        # The engine imports on the seller's behalf: their records, whatever their role may
        # write by hand (a sales rep cannot set an account's tier, but demo accounts have one).
        owner = None if actor is SYSTEM else actor
        result = records.bulk_create(SYSTEM, entity, rows, owner=owner)
        if result.errors:
            raise RuntimeError(f"demo data for {entity} was refused: {result.errors[:3]}")
        counts[entity] = counts.get(entity, 0) + result.created
        return result.ids

    say("departments")
    seed_org(records)  # `crm migrate` may have seeded config/org.yaml already; then it is kept
    if not _departments_by_kind(records):
        hq = bulk(SYSTEM, "department", [{"name": "Headquarters", "code": "HQ",
                                          "kind": "headquarters"}])[0]
        regions = bulk(SYSTEM, "department", [
            {"name": "North region", "code": "N", "kind": "region", "parent": hq},
            {"name": "华东大区", "code": "E", "kind": "region", "parent": hq}])
        bulk(SYSTEM, "department", [
            {"name": "Northern branch", "code": "N1", "kind": "branch", "parent": regions[0]},
            {"name": "上海分公司", "code": "E1", "kind": "branch", "parent": regions[1]},
            {"name": "Dealer partner", "code": "P1", "kind": "partner", "parent": regions[0]}])
    kinds = _departments_by_kind(records)
    counts["department"] = sum(len(v) for v in kinds.values())
    hq = kinds["headquarters"][0]
    branches = kinds["branch"]
    partner_dept = (kinds.get("partner") or branches)[0]

    say("users")
    admin = users.add("admin", ["admin"], password=DEMO_PASSWORD, department_id=hq,
                      display_name="Administrator")
    staff: list[User] = []
    for i, role in enumerate(ROLES):
        lang = "zh" if i % 2 else "en"
        dept = (hq if role in ("executive", "marketing") else
                partner_dept if role == "partner" else branches[i % len(branches)])
        staff.append(users.add(f"{role}_{i + 1}", [role], password=DEMO_PASSWORD,
                               department_id=dept, display_name=fakers[lang].name()))
    sellers = [u for u in staff if u.roles[0] in ("sales_rep", "sales_manager", "partner")]

    say("products")
    families = ["equipment", "spare_part", "service", "software", "financing"]
    bulk(SYSTEM, "product", [
        {"name": f"{fam.replace('_', ' ').title()} {n}", "code": f"{fam[:3].upper()}-{n:03d}",
         "family": fam, "list_price": Decimal(rnd.randrange(500, 900_000)),
         "unit": "year" if fam == "software" else "piece"}
        for fam in families for n in range(1, 5)])

    say("accounts")
    industries = ["manufacturing", "aviation", "automotive", "energy", "construction",
                  "logistics", "healthcare", "public_sector", "other"]
    owner_of: dict[int, User] = {}
    account_ids: list[int] = []
    for seller in sellers:
        share = size // len(sellers) + (1 if seller is sellers[0] else 0) * (size % len(sellers))
        rows = []
        used: set[str] = set()
        for _ in range(share):
            lang = rnd.choice(["en", "en", "zh"])
            fk = fakers[lang]
            name = fk.company()
            while name in used:
                name = f"{fk.company()} {rnd.randrange(100)}"
            used.add(name)
            rows.append({
                "name": f"{name} ({seller.name})" if lang == "en" else f"{name}·{seller.id}",
                "industry": rnd.choice(industries),
                "tier": rnd.choices(["strategic", "key", "standard"], [1, 3, 8])[0],
                "status": rnd.choices(["prospect", "customer", "former"], [4, 5, 1])[0],
                "country": "China" if lang == "zh" else fk.country()[:80],
                "city": fk.city()[:80], "phone": _phone(rnd),
                "website": f"https://www.example{rnd.randrange(10**6)}.com",
                "employees": rnd.randrange(20, 20_000),
                "annual_revenue": Decimal(rnd.randrange(1, 5_000)) * 100_000,
            })
        ids = bulk(seller.actor(), "account", rows)
        for rid in ids:
            owner_of[rid] = seller
        account_ids += ids

    say("contacts")
    buying = random.Random(seed + 1)  # noqa: S311 - its own sequence, as `answers` below
    roles_titles = ["CEO", "CFO", "Purchasing manager", "Chief engineer", "Operations manager"]
    contacts_of: dict[int, list[int]] = {}
    for account in account_ids:
        seller = owner_of[account]
        lang = rnd.choice(["en", "zh"])
        fk = fakers[lang]
        head = bulk(seller.actor(), "contact", [{
            "full_name": fk.name(), "account": account, "title": roles_titles[0],
            "email": f"ceo{account}@example.com", "phone": _phone(rnd), "is_primary": True,
            "buying_role": "decider", "influence": 5}])[0]
        team = bulk(seller.actor(), "contact", [
            {"full_name": fk.name(), "account": account, "title": t, "reports_to": head,
             "email": f"c{account}.{n}@example.com", "phone": _phone(rnd),
             "buying_role": buying.choice(["buyer", "user", "influencer", "gatekeeper"]),
             "influence": buying.randrange(1, 5)}
            for n, t in enumerate(roles_titles[1 : 1 + rnd.randrange(1, 4)])])
        contacts_of[account] = [head, *team]

    say("opportunities")
    answers = random.Random(seed)  # noqa: S311 - its own sequence: the rest stays as it was
    opportunity = records.model.entity("opportunity")
    today = date.today()
    stages, weights = zip(*FUNNEL, strict=True)
    opportunity_ids: list[int] = []
    for seller in sellers:
        rows = []
        for account in [a for a in account_ids if owner_of[a] is seller]:
            for n in range(rnd.randrange(1, 4)):
                stage = rnd.choices(stages, weights)[0]
                closed = stage in ("won", "lost")
                close = today + timedelta(days=rnd.randrange(-700, 0) if closed
                                          else rnd.randrange(7, 270))
                rows.append({
                    "name": f"{rnd.choice(['Fleet', 'Line', 'Service', 'Upgrade'])} deal {n + 1}",
                    "account": account, "primary_contact": rnd.choice(contacts_of[account]),
                    "amount": Decimal(rnd.randrange(20, 4_000)) * 1_000,
                    "stage": stage, "close_date": close,
                    "lost_reason": rnd.choice(["price", "product", "relationship", "timing"])
                    if stage == "lost" else None,
                    "competitor": rnd.choice([None, "Competitor A", "Competitor B"]),
                    "source": rnd.choice(["lead", "existing_customer", "partner", "tender"]),
                    **_bant(answers, opportunity),
                })
        opportunity_ids += bulk(seller.actor(), "opportunity", rows)

    say("opportunity teams")
    presales = [u for u in staff if u.roles[0] == "presales"]
    for i, rid in enumerate(opportunity_ids[::5][:PRESALES_TEAMS] if presales else []):
        records.set_team_member(SYSTEM, "opportunity", rid, presales[i % len(presales)].id,
                                "edit")

    say("activities")
    now = datetime.now(UTC)
    for seller in sellers:
        rows = []
        for account in [a for a in account_ids if owner_of[a] is seller]:
            for i in range(rnd.randrange(2, 6)):
                # the first is coming up in the next days, so a seller's week has work in it
                due = now + timedelta(days=rnd.randrange(0, 7), hours=rnd.randrange(1, 24)) \
                    if i == 0 else \
                    now - timedelta(days=rnd.randrange(-30, 730), hours=rnd.randrange(24))
                rows.append({
                    "subject": rnd.choice(["Intro call", "Site visit", "Demo", "Price review",
                                           "Contract follow-up"]),
                    "kind": rnd.choice(["call", "meeting", "email", "visit", "demo"]),
                    "status": "done" if due < now else "planned", "due_at": due,
                    "duration_minutes": rnd.choice([15, 30, 60, 90]), "account": account,
                    "contact": rnd.choice(contacts_of[account])})
        bulk(seller.actor(), "activity", rows)

    say("leads")
    bulk(SYSTEM, "lead", [
        {"company": fakers["en" if i % 3 else "zh"].company(),
         "contact_name": fakers["en" if i % 3 else "zh"].name(),
         "email": f"lead{i}@example.com",
         "source": rnd.choice(["website", "trade_show", "referral", "campaign"]),
         "status": rnd.choice(["new", "working", "qualified", "disqualified"]),
         "interests": rnd.sample(["equipment", "service", "parts", "financing"], 2),
         "estimated_value": Decimal(rnd.randrange(10, 900)) * 1000,
         "received_at": now - timedelta(days=rnd.randrange(365))}
        for i in range(max(10, size // 2))])
    return DemoResult(admin, counts)


def _departments_by_kind(records: Records) -> dict[str, list[int]]:
    t = records.schema.table("department")
    out: dict[str, list[int]] = {}
    with records.engine.connect() as conn:
        for row in conn.execute(select(t.c.id, t.c.kind).order_by(t.c.id)):
            out.setdefault(row.kind, []).append(row.id)
    return out


def _phone(rnd: random.Random) -> str:
    return f"+86 {rnd.randrange(130, 190)} {rnd.randrange(1000, 9999)} {rnd.randrange(1000, 9999)}"


# Qualification answers (budget, authority, need, timeline), where the entity asks them.
_BANT = ("budget", "authority", "need", "timeline")


def _bant(rnd: random.Random, entity: Entity) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _BANT:
        if entity.has_field(name):
            f = entity.field(name)
            out[name] = rnd.choice([None, *f.options])
    return out

"""Realistic, consistent demo data (English and Chinese) through the records service.

`fill_demo` builds a company selling tractors, loaders, forklifts, parts, service and
telematics, area by area (one module each): departments and users, the catalogue,
customers, sales, quotes and contracts with their execution, service, everyday work, and
knowledge. Every record goes through the records service (bulk create, or an update where a
user would move a record on), so rollups, autonumbers, validation and audit are real.

History: the service stamps created_at with the time of the run, so the three years of
history live in the business dates — close, quote, signing, plan, invoice and receipt
dates, service times, activity due times, expense dates and campaign dates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from engine.runtime.demo.catalogue import make_catalogue
from engine.runtime.demo.context import Demo
from engine.runtime.demo.customers import make_customers
from engine.runtime.demo.knowledge import make_knowledge
from engine.runtime.demo.org_users import DEMO_PASSWORD, ROLES, make_org, make_users
from engine.runtime.demo.quotes_contracts import make_quotes_and_contracts
from engine.runtime.demo.sales import make_sales
from engine.runtime.demo.service import make_service
from engine.runtime.demo.work import make_work
from engine.runtime.org import DEPARTMENT
from engine.runtime.records import Records
from engine.runtime.users import User, Users

# The areas that run only when the config has their entities.
SERVICE = ("service_queue", "service_queue_member", "service_request", "service_plan",
           "work_order", "work_order_part")
KNOWLEDGE = ("knowledge_article", "knowledge_article_product", "announcement",
             "announcement_target", "announcement_read")

__all__ = ["DEMO_PASSWORD", "ROLES", "DemoResult", "existing_data", "fill_demo", "is_empty"]


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
    """Create the department tree, users per role, the catalogue and `size` accounts with
    their history: pipeline, quotes, contracts and their execution, service, work."""
    demo = Demo.start(records, seed, progress)
    make_org(demo)
    make_users(demo, users)
    make_catalogue(demo)
    make_customers(demo, size)
    make_sales(demo, size, records.model.entity("opportunity"))
    make_quotes_and_contracts(demo)
    if demo.has(*SERVICE):
        make_service(demo)
    make_work(demo)
    if demo.has(*KNOWLEDGE):
        make_knowledge(demo)
    assert demo.admin is not None
    return DemoResult(demo.admin, demo.counts)

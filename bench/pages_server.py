"""The two apps of the page benchmark, each served alone by uvicorn on 127.0.0.1.

    BENCH_PAGES_SECRET=S python -m bench.pages_server --app engine --db URL --port P
    BENCH_PAGES_SECRET=S python -m bench.pages_server --app hand --db URL --port P

`engine` is `create_app` with its cookies signed by the key S (so the benchmark can make
a session cookie). `hand` is what one would write by hand with Starlette, SQLAlchemy Core
and Jinja: the same session cookie checked with one query, then

- `GET /hand/opportunity?page=N`: 50 live opportunities by amount descending (blanks last),
  id descending, with the list's columns (name, account, stage, amount, weighted, close
  date, owner), names joined in the same query, computed columns written in SQL;
- `GET /hand/opportunity/<id>`: one opportunity with every field the detail page shows, its
  20 newest activities and their count, its team and its audit history.

Both render autoescaped Jinja templates and format numbers, money (in the currency of
config/settings.yaml) and dates with Babel.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import Environment, FileSystemLoader
from ruamel.yaml import YAML
from sqlalchemy import Engine, func, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bench.api_server import _computed_by_hand, hand_order
from bench.env import BENCH_DIR, CONFIG, ENTITY
from engine.metadata import load_model
from engine.runtime.db import open_engine
from engine.runtime.schema.tables import (
    AUDIT_TABLE,
    SESSION_TABLE,
    TEAM_TABLE,
    USER_TABLE,
    build_schema,
)
from engine.settings import WebSettings
from engine.web.asgi import freeze_startup
from engine.web.security import Signer

HAND_LIST = f"/hand/{ENTITY}"
TEMPLATES = BENCH_DIR / "hand_templates"
PAGE_SIZE = 50
RELATED_ROWS = 20
SESSION_COOKIE = "crm_session"
SECRET_ENV = "BENCH_PAGES_SECRET"
"""Where the server finds the key that signs session cookies (not on the command line)."""
IDLE = timedelta(minutes=720)
LIFETIME = timedelta(days=7)
# opportunity.score's terms (config/entities/opportunity.yaml), shown under the score.
SCORE_TERMS = ('CASE(budget, "confirmed", 30, "estimated", 15, 0)',
               'IF(authority = "decision_maker", 25, IF(authority = "influencer", 10, 0))',
               'CASE(need, "urgent", 25, "planned", 10, 0)',
               'CASE(timeline, "this_quarter", 20, "this_year", 10, 0)')


def _currency(config: Path) -> str:
    """config/settings.yaml's `currency` (the engine's pages show amounts in it)."""
    path = config / "settings.yaml"
    settings = YAML(typ="safe").load(path.read_text()) if path.exists() else None
    return str((settings or {}).get("currency", "CNY"))


def _money_in(currency: str) -> Any:
    def money(value: Any) -> str:
        return "" if value is None else format_currency(value, currency, locale="en")

    return money


def _number(value: Any) -> str:
    return "" if value is None else format_decimal(value, locale="en")


def _date(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):  # SQLite hands computed and plain dates back as text
        value = date.fromisoformat(value)
    return format_date(value, format="medium", locale="en")


def _datetime(value: Any) -> str:
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return format_datetime(value, format="medium", tzinfo=UTC, locale="en")


def _choice(value: Any) -> str:
    """The English option label: every shipped label is the option with spaces, capitalised."""
    return "" if value is None else str(value).replace("_", " ").capitalize()


def _score_terms(o: Any) -> list[tuple[str, int]]:
    return list(zip(SCORE_TERMS, (
        {"confirmed": 30, "estimated": 15}.get(o["budget"], 0),
        {"decision_maker": 25, "influencer": 10}.get(o["authority"], 0),
        {"urgent": 25, "planned": 10}.get(o["need"], 0),
        {"this_quarter": 20, "this_year": 10}.get(o["timeline"], 0)), strict=True))


def _history_text(value: str | None) -> str:
    if value is None:
        return ""
    loaded = json.loads(value)
    if isinstance(loaded, dict):
        return "; ".join(f"{k}: {v}" for k, v in loaded.items() if v is not None)
    return str(loaded)


class HandPages:
    """The hand-written list and detail pages over one engine."""

    def __init__(self, engine: Engine, config: str, secret: bytes) -> None:
        schema = build_schema(load_model(config))
        t = schema.table(ENTITY)
        account, contact, activity = (schema.table(n) for n in ("account", "contact",
                                                                "activity"))
        department = schema.table("department")
        users, sessions = schema.table(USER_TABLE), schema.table(SESSION_TABLE)
        self.team, self.audit = schema.table(TEAM_TABLE), schema.table(AUDIT_TABLE)
        self.engine = engine
        self.signer = Signer(secret)
        self.sessions, self.users, self.activity = sessions, users, activity
        self.t = t
        probability, weighted, score = _computed_by_hand(t)
        owner = users.alias("owner")
        self.listing = (
            select(t.c.id, t.c.name, t.c.account, account.c.name.label("account_name"),
                   t.c.stage, t.c.amount, weighted, t.c.close_date,
                   owner.c.name.label("owner_name"))
            .select_from(t.outerjoin(account, (account.c.id == t.c.account)
                                     & account.c.deleted_at.is_(None))
                         .outerjoin(owner, owner.c.id == t.c.owner_id))
            .where(t.c.deleted_at.is_(None))
            .order_by(*hand_order(engine, t)).limit(PAGE_SIZE))
        self.record = (
            select(t, account.c.name.label("account_name"),
                   contact.c.full_name.label("contact_name"), owner.c.name.label("owner_name"),
                   department.c.name.label("department_name"), probability, weighted, score)
            .select_from(t.outerjoin(account, (account.c.id == t.c.account)
                                     & account.c.deleted_at.is_(None))
                         .outerjoin(contact, (contact.c.id == t.c.primary_contact)
                                    & contact.c.deleted_at.is_(None))
                         .outerjoin(owner, owner.c.id == t.c.owner_id)
                         .outerjoin(department, department.c.id == t.c.department_id))
            .where(t.c.deleted_at.is_(None)))
        env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                          auto_reload=False)  # as the engine's Ui: templates ship with the code
        env.filters.update(money=_money_in(_currency(Path(config))), number=_number,
                           date=_date, datetime=_datetime, choice=_choice)
        self.list_template = env.get_template("list.html")
        self.detail_template = env.get_template("detail.html")

    def _user(self, conn: Any, cookie: str | None) -> str | None:
        """The signed-in user's name for a session cookie, or None."""
        token = self.signer.unsign("session", cookie)
        if token is None:
            return None
        s, u = self.sessions, self.users
        now = datetime.now(UTC)
        return conn.execute(
            select(u.c.name).select_from(s.join(u, u.c.id == s.c.user_id))
            .where(s.c.token_hash == hashlib.sha256(token.encode()).hexdigest(),
                   s.c.ended_at.is_(None), u.c.active.is_(True),
                   s.c.last_seen_at > now - IDLE, s.c.created_at > now - LIFETIME)).scalar()

    def list_html(self, cookie: str | None, page: int) -> str | None:
        with self.engine.connect() as conn:
            user = self._user(conn, cookie)
            if user is None:
                return None
            rows = conn.execute(self.listing.offset((page - 1) * PAGE_SIZE)).mappings().all()
        return self.list_template.render(user=user, rows=rows, page=page, page_size=PAGE_SIZE)

    def detail_html(self, cookie: str | None, record_id: int) -> str | None:
        a, team, audit, users = self.activity, self.team, self.audit, self.users
        with self.engine.connect() as conn:
            user = self._user(conn, cookie)
            if user is None:
                return None
            o = conn.execute(self.record.where(self.t.c.id == record_id)).mappings().first()
            if o is None:
                return ""
            live = (a.c.opportunity == record_id, a.c.deleted_at.is_(None))
            count = conn.execute(select(func.count()).select_from(a).where(*live)).scalar()
            activities = conn.execute(
                select(a.c.id, a.c.subject, a.c.kind, a.c.due_at, a.c.status).where(*live)
                .order_by(a.c.id.desc()).limit(RELATED_ROWS)).mappings().all()
            members = conn.execute(
                select(users.c.name, team.c.access)
                .select_from(team.join(users, users.c.id == team.c.user_id))
                .where(team.c.entity == ENTITY, team.c.record_id == record_id)
                .order_by(users.c.name)).mappings().all()
            audited = conn.execute(
                select(audit, users.c.name.label("user"))
                .select_from(audit.outerjoin(users, users.c.id == audit.c.user_id))
                .where(audit.c.entity == ENTITY, audit.c.record_id == record_id)
                .order_by(audit.c.id.desc())).mappings().all()
        history = [{"at": h["at"], "user": h["user"], "action": h["action"],
                    "field": h["field"], "old": _history_text(h["old_value"]),
                    "new": _history_text(h["new_value"])} for h in audited]
        return self.detail_template.render(
            user=user, o=o, terms=_score_terms(o), activity_count=count,
            activities=activities, team=members, history=history)

    async def list_page(self, request: Request) -> Response:
        raw = request.query_params.get("page", "1")
        page = int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1
        html = await run_in_threadpool(self.list_html, request.cookies.get(SESSION_COOKIE),
                                       page)
        if html is None:
            return RedirectResponse("/login", status_code=303)
        return HTMLResponse(html)

    async def detail_page(self, request: Request) -> Response:
        record_id = int(request.path_params["record_id"])
        html = await run_in_threadpool(self.detail_html,
                                       request.cookies.get(SESSION_COOKIE), record_id)
        if html is None:
            return RedirectResponse("/login", status_code=303)
        if not html:
            return HTMLResponse("<!doctype html><title>Not found</title>", status_code=404)
        return HTMLResponse(html)


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def build(app: str, url: str, config: str, secret: bytes) -> Starlette:
    engine = open_engine(url)
    if app == "engine":
        from engine.web.app import create_app

        return create_app(load_model(config), engine, WebSettings(secret_key=secret))
    hand = HandPages(engine, config, secret)
    return Starlette(routes=[
        Route("/health", _health),
        Route(HAND_LIST, hand.list_page),
        Route(HAND_LIST + "/{record_id:int}", hand.detail_page),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", choices=("engine", "hand"), required=True)
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    secret = os.environ[SECRET_ENV].encode()
    app = build(args.app, args.db, args.config, secret)
    # Both apps' startup objects out of the collector's sight, as engine.web.asgi.build does
    # for the shipped entry point (the same for both apps: the comparison stays even).
    freeze_startup()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()

"""The app under test for the API benchmark: `create_app` plus one hand-written route.

`python -m bench.api_server --db URL --port P` serves, on 127.0.0.1, the generated API and
`GET /hand/opportunity?page_size=50`: the same list (live rows by amount descending with
blanks last, id descending) written directly with SQLAlchemy Core, as one would by hand.
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

import uvicorn
from sqlalchemy import Engine, case, func, select, type_coerce
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.env import CONFIG, ENTITY
from engine.metadata import load_model
from engine.runtime.db import open_engine
from engine.runtime.schema.tables import TOKEN_TABLE, USER_TABLE, build_schema
from engine.runtime.schema.types import ExactDecimal
from engine.runtime.values import to_json
from engine.types import ENGINE_COLUMNS

HAND_PATH = f"/hand/{ENTITY}"



def _computed_by_hand(t: Any) -> list[Any]:
    """opportunity's probability, weighted and score (config/entities/opportunity.yaml),
    written by hand in SQL so the baseline returns the same items as the generated route."""
    probability = case(*[(t.c.stage == s, p) for s, p in (
        ("prospecting", 10), ("qualification", 30), ("proposal", 50), ("negotiation", 80),
        ("won", 100))], else_=0)
    weighted = func.round(t.c.amount * probability / 100, 2)
    score = (case((t.c.budget == "confirmed", 30), (t.c.budget == "estimated", 15), else_=0)
             + case((t.c.authority == "decision_maker", 25),
                    (t.c.authority == "influencer", 10), else_=0)
             + case((t.c.need == "urgent", 25), (t.c.need == "planned", 10), else_=0)
             + case((t.c.timeline == "this_quarter", 20), (t.c.timeline == "this_year", 10),
                    else_=0))
    return [type_coerce(probability, ExactDecimal(9, 4)).label("probability"),
            type_coerce(weighted, ExactDecimal(15, 2)).label("weighted"),
            score.label("score")]


def hand_order(engine: Engine, t: Any) -> list[Any]:
    """Amount descending with blanks last, then id descending: the generated list's order.

    SQLite sorts NULL as the smallest value, so plain DESC already puts blanks last; on
    PostgreSQL NULL is the largest, so plain DESC would put them first, and the amount index
    (built `ASC NULLS FIRST`, engine/runtime/schema/tables.py) only serves a backward scan
    for `DESC NULLS LAST`.
    """
    if engine.dialect.name == "sqlite":
        return [t.c.amount.desc(), t.c.id.desc()]
    return [t.c.amount.desc().nulls_last(), t.c.id.desc()]


class HandList:
    """GET HAND_PATH: bearer token check and the top rows by amount, in one connection."""

    def __init__(self, engine: Engine, config: str) -> None:
        schema = build_schema(load_model(config))
        t, users, tokens = (schema.table(n) for n in (ENTITY, USER_TABLE, TOKEN_TABLE))
        entity = schema.model.entity(ENTITY)
        cols = [t.c[n] for n in ENGINE_COLUMNS if n not in ("deleted_at", "deleted_by")]
        cols += [t.c[f.name] for f in entity.stored_fields]
        cols += _computed_by_hand(t)
        self.engine = engine
        self.tokens = tokens
        self.auth = (select(users.c.id)
                     .select_from(tokens.join(users, users.c.id == tokens.c.user_id))
                     .where(tokens.c.revoked_at.is_(None), users.c.active.is_(True)))
        self.listing = (select(*cols).where(t.c.deleted_at.is_(None))
                        .order_by(*hand_order(engine, t)))

    def fetch(self, token: str, limit: int) -> list[dict[str, Any]] | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self.engine.connect() as conn:
            if conn.execute(self.auth.where(self.tokens.c.token_hash == digest)).first() is None:
                return None
            rows = conn.execute(self.listing.limit(limit)).mappings().all()
        return [{k: to_json(v) for k, v in r.items()} for r in rows]

    async def endpoint(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        raw_size = request.query_params.get("page_size", "50")
        if scheme.lower() != "bearer" or not token.strip():
            return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= 500:
            return JSONResponse({"error": {"code": "bad_request"}}, status_code=400)
        items = await run_in_threadpool(self.fetch, token.strip(), int(raw_size))
        if items is None:
            return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
        return JSONResponse({"items": items})

    def route(self) -> Route:
        return Route(HAND_PATH, self.endpoint, methods=["GET"])


def build(url: str, config: str) -> Starlette:
    from engine.web.app import create_app

    engine = open_engine(url)
    app = create_app(load_model(config), engine)
    app.router.routes.insert(0, HandList(engine, config).route())
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.db, args.config), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()


"""The Starlette application: JSON API, OpenAPI and a start page, built from one Model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from engine.metadata.model import Model
from engine.runtime.errors import RecordError
from engine.runtime.records import Records
from engine.runtime.users import Users
from engine.web.api import Api
from engine.web.errors import on_http_error, on_record_error, on_unexpected
from engine.web.openapi import build_openapi

TEMPLATES = Path(__file__).resolve().parents[2] / "ui_templates"


@dataclass(frozen=True)
class Services:
    model: Model
    engine: Engine
    records: Records
    users: Users


def create_app(model: Model, engine: Engine) -> Starlette:
    records = Records(engine, model)
    users = Users(engine, records.schema)
    services = Services(model, engine, records, users)
    openapi = build_openapi(model)
    jinja = Environment(loader=FileSystemLoader(TEMPLATES),
                        autoescape=select_autoescape(default=True, default_for_string=True))

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    async def index(request: Request) -> Response:
        html = jinja.get_template("index.html").render(model=model)
        return HTMLResponse(html)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "config": model.config_hash[:12]})

    routes = [
        Route("/", index),
        Route("/health", health),
        Route("/openapi.json", openapi_json),
        *Api(records, users).routes(),
    ]
    handlers: dict[Any, Any] = {
        RecordError: on_record_error,
        HTTPException: on_http_error,
        Exception: on_unexpected,
    }
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.services = services
    return app

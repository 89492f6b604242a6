"""The Starlette application: pages, JSON API and OpenAPI, built from one Model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from engine.metadata.model import Model
from engine.runtime.assembly import records_service
from engine.runtime.errors import RecordError
from engine.runtime.files.attachments import Attachments
from engine.runtime.files.store import DiskStore
from engine.runtime.flows.hook import approvals_of
from engine.runtime.idempotency import IdempotencyKeys
from engine.runtime.notifications import Notifications, unread_column
from engine.runtime.query_limit import ConnectionsBusy
from engine.runtime.records import Records
from engine.runtime.sessions import LoginThrottle, SessionPolicy, Sessions
from engine.runtime.users import PASSWORD_HASHER, Users
from engine.settings import WebSettings
from engine.web.api import Api
from engine.web.approvals import ApprovalsApi
from engine.web.attachments import AttachmentsApi
from engine.web.auth import WebAuth, throttle_policy
from engine.web.bulk_api import BulkApi
from engine.web.errors import http_message, on_http_error, on_record_error, on_unexpected
from engine.web.headers import SecurityHeaders
from engine.web.home import Home
from engine.web.i18n import N_
from engine.web.idempotency import IdempotencyGuard
from engine.web.limits import RequestLimits
from engine.web.notifications import NotificationsApi
from engine.web.pages.admin import AccessAdmin
from engine.web.pages.approvals import ApprovalPages
from engine.web.pages.attachments import AttachmentPages
from engine.web.pages.automation import AutomationPages
from engine.web.pages.board import Board
from engine.web.pages.calendar import Calendar
from engine.web.pages.dashboards import DashboardPages
from engine.web.pages.flows_admin import FlowsAdmin
from engine.web.pages.forecast import ForecastPages
from engine.web.pages.forms import FormPages
from engine.web.pages.imports import ImportPages
from engine.web.pages.lists import Lists
from engine.web.pages.merging import MergePages
from engine.web.pages.notifications import NotificationPages
from engine.web.pages.records import RecordPages
from engine.web.pages.regarding import RegardingPickers
from engine.web.pages.report_builder import ReportBuilder
from engine.web.pages.reports import ReportPages
from engine.web.pages.search import Search
from engine.web.pages.timeline import TimelinePages
from engine.web.pages.trash import Trash
from engine.web.pages.tree import Tree
from engine.web.pipeline import PipelineApi
from engine.web.reports import ReportsApi
from engine.web.static import StaticAssets
from engine.web.ui import STATIC, Ui, wants_html
from engine.web.viewer import LoginRequired

_TITLES = {400: N_("Bad request"), 401: N_("Sign-in needed"), 403: N_("Not allowed"),
           404: N_("Not found"), 405: N_("Not allowed"), 409: N_("Changed by someone else"),
           413: N_("Too large"), 422: N_("Not valid"), 429: N_("Too many requests"),
           503: N_("Try again later")}
_MESSAGES = {404: N_("There is no page at this address."),
             405: N_("This page cannot be used that way.")}


@dataclass(frozen=True)
class Services:
    model: Model
    engine: Engine
    records: Records
    users: Users
    sessions: Sessions
    throttle: LoginThrottle


class _App(Starlette):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's error middleware, so that a 500 carries the headers too.
        return SecurityHeaders(super().build_middleware_stack())


def create_app(model: Model, engine: Engine, settings: WebSettings | None = None, *,
               password_hasher: PasswordHasher = PASSWORD_HASHER) -> Starlette:
    """The app. Without `settings`, cookies are signed with a key made for this process:
    enough for one process (tests); `crm serve` passes WebSettings.from_env().
    `password_hasher` is the product's unless a test passes a cheap one."""
    settings = settings or WebSettings.ephemeral()
    store = DiskStore(settings.files_dir)
    records = records_service(engine, model, files=store)
    users = Users(engine, records.schema, hasher=password_hasher)
    attachments = Attachments(records, store)
    api = Api(records, users)
    inbox = Notifications(records)
    sessions = Sessions(engine, records.schema, SessionPolicy(
        idle=_minutes(settings.session_idle_minutes), lifetime=_minutes(
            settings.session_days * 24 * 60)),
        counts={"notifications": partial(unread_column, inbox.table)})
    throttle = LoginThrottle(engine, records.schema, throttle_policy(settings))
    services = Services(model, engine, records, users, sessions, throttle)
    ui = Ui(model, policy=records.policy)
    imports = ImportPages(model, records, ui, Path(settings.files_dir) / "imports")
    auth = WebAuth(users, sessions, throttle, ui, settings)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "config": model.config_hash[:12]})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not wants_html(request):
            return await on_http_error(request, exc)
        status = exc.status_code
        message = _MESSAGES.get(status) or http_message(request, exc)
        return ui.error_page(request, status, _TITLES.get(status, N_("Error")), message,
                             headers=dict(exc.headers) if exc.headers else None)

    async def record_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RecordError)
        if not wants_html(request):
            return await on_record_error(request, exc)
        return ui.error_page(request, exc.status, _TITLES.get(exc.status, N_("Error")),
                             exc.message)

    async def pool_busy(request: Request, exc: Exception) -> Response:
        # Waiting requests outnumbered the pool's connections for its whole timeout: the
        # server is overloaded, which is no bug (503, not 500).
        return await record_error(request, ConnectionsBusy())

    async def unexpected(request: Request, exc: Exception) -> Response:
        response = await on_unexpected(request, exc)  # logs it
        if not wants_html(request):
            return response
        return ui.error_page(request, 500, N_("Something went wrong"),
                             N_("The error has been logged. Try again, or go back."))

    routes = [
        *Home(model, records, ui).routes(),
        *Search(model, records, ui).routes(),
        *Trash(model, records, ui).routes(), *Lists(model, records, ui).routes(),
        *Board(model, records, ui).routes(), *Tree(model, records, ui).routes(),
        *Calendar(model, records, ui).routes(),
        *AccessAdmin(model, records, users, ui).routes(),
        *FlowsAdmin(model, records, ui).routes(),
        *imports.routes(),  # before /e/{entity}/{record_id}
        *FormPages(model, records, ui).routes(), *RecordPages(model, records, ui).routes(),
        *MergePages(model, records, ui).routes(),
        *AttachmentPages(model, records, ui, attachments).routes(),
        *TimelinePages(model, records, ui).routes(),
        *AutomationPages(model, records, ui).routes(),
        *ApprovalPages(model, records, ui, approvals_of(records)).routes(),
        *RegardingPickers(model, records, ui).routes(),
        *NotificationPages(model, records, ui, inbox).routes(),
        *ReportBuilder(model, records, ui).routes(),  # before /reports/{report}
        *ForecastPages(model, records, ui).routes(),  # before /reports/{report}
        *ReportPages(model, records, ui).routes(),
        *DashboardPages(model, records, ui).routes(),
        *auth.routes(),
        Route("/health", health),
        Mount("/static", StaticAssets(directory=STATIC), name="static"),
        *AttachmentsApi(attachments, api._actor).routes(),
        *ApprovalsApi(approvals_of(records), api).routes(),
        *NotificationsApi(inbox, api._actor).routes(),  # before /api/{entity}
        *ReportsApi(records, api._actor).routes(),  # before /api/{entity}
        *PipelineApi(records, api._actor).routes(),  # before /api/{entity}
        *BulkApi(records, api).routes(),  # before /api/{entity}/{record_id}
        *api.routes(),
    ]
    handlers: dict[Any, Any] = {
        LoginRequired: auth.on_login_required,
        RecordError: record_error,
        HTTPException: http_error,
        PoolTimeout: pool_busy,
        Exception: unexpected,
    }
    limits = Middleware(RequestLimits, time_limit=model.settings.query_time_limit,
                        per_user=model.settings.requests_per_user)
    idempotency = Middleware(IdempotencyGuard, keys=IdempotencyKeys(engine), users=users)
    app = _App(routes=routes, exception_handlers=handlers,
               middleware=[limits, auth.guard(), idempotency])
    app.state.services = services
    app.state.imports = imports.runner
    return app


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)

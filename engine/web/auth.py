"""Sign-in pages: /login, /logout, /account/password and /account/language.

A record form sent after its session ended is not lost: when it carries the CSRF token of
that session (so it came from this site, from that user's page), its fields, less passwords
and the token, are kept as a draft for that user (engine/runtime/drafts.py) and the browser
goes to sign in; signing in as the same user brings the form back filled in, unsaved.

Passwords are checked by Users (argon2); sessions and throttling live in
engine/runtime/sessions.py. Signing in always starts a new session (the old one, if any,
ends), so a session id planted before sign-in is worthless afterwards. A password change
ends every session of the user, then starts a new one for the browser that changed it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.runtime.db import is_sqlite
from engine.runtime.drafts import FormDrafts, keepable
from engine.runtime.sessions import LoginThrottle, Sessions, ThrottlePolicy
from engine.runtime.users import Users
from engine.settings import WebSettings
from engine.web.i18n import LANGUAGES, N_, supported
from engine.web.security import (
    CSRF_FIELD,
    RESTORE_PARAM,
    CookieNames,
    SessionGuard,
    Signer,
    tokens_match,
)
from engine.web.ui import Ui
from engine.web.viewer import LoginRequired, Viewer, require_viewer, viewer_of

MAX_NAME = 80
MAX_PASSWORD = 1000
MIN_PASSWORD = 8
MAX_DRAFT_ID = 100
RESTORABLE = re.compile(r"^/e/[a-z][a-z0-9_]{0,62}/(new|[0-9]{1,19}/edit)$")
"""The pages whose forms are kept when they arrive after the session ended: record forms."""

WRONG_CREDENTIALS = N_("The user name or password is not right.")
THROTTLED = N_("Too many failed sign-ins. Wait a few minutes, then try again.")


def safe_next(raw: object) -> str | None:
    """A local path to go to after signing in, or None: never another site.

    >>> safe_next("/e/account?page=2"), safe_next("//evil.example/"), safe_next("https://x")
    ('/e/account?page=2', None, None)
    """
    if not isinstance(raw, str) or not raw.startswith("/") or len(raw) > 2000:
        return None
    if raw.startswith(("//", "/\\")) or any(c in raw for c in "\\\r\n\t\x00"):
        return None
    if raw.split("?")[0] in ("/login", "/logout"):
        return None
    return raw


def login_url(next_url: str | None) -> str:
    return "/login" if not next_url or next_url == "/" else "/login?" + urlencode(
        {"next": next_url})


async def read_form(request: Request) -> dict[str, str]:
    """The text fields of a posted form (first value of each); uploaded files are closed
    and dropped, since no sign-in page takes files."""
    async with request.form() as form:
        fields: dict[str, str] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(key, value)
        return fields


def _text(form: dict[str, str], key: str, limit: int) -> str:
    # No database stores NUL (PostgreSQL refuses it): such a name can match no user.
    return form.get(key, "")[:limit].replace("\x00", "")


def throttle_policy(settings: WebSettings) -> ThrottlePolicy:
    """Sign-in throttling from the web settings (docs/ui.md, "Signing in")."""
    window = timedelta(minutes=settings.login_window_minutes)
    return ThrottlePolicy(free_per_name=settings.login_max_failures,
                          free_per_address=4 * settings.login_max_failures,
                          max_wait=window, forget_after=4 * window)


def _address(request: Request) -> str:
    # The connection's peer, unless `crm serve` was told of proxies (CRM_TRUSTED_PROXIES):
    # then uvicorn has put the address the trusted proxy forwarded in its place.
    return request.client.host if request.client else "unknown"


class WebAuth:
    def __init__(self, users: Users, sessions: Sessions, throttle: LoginThrottle, ui: Ui,
                 settings: WebSettings) -> None:
        self.users = users
        self.sessions = sessions
        self.throttle = throttle
        self.ui = ui
        self.settings = settings
        self.drafts = FormDrafts(sessions.engine, sessions.schema)
        self.signer = Signer(settings.secret_key)
        self.cookies = CookieNames.for_(settings.cookie_secure)

    # -- the guard in front of every page -------------------------------------------------

    async def resolve(self, session_id: str) -> Viewer | None:
        """The viewer of a session cookie's id: the session and its user, one query.

        On SQLite the query runs right here: a primary-key read of a local file costs
        less than the trip to a worker thread and back, which on a busy server is a good
        part of a page's time (bench/pages.py). Only the read: recording the visit is a
        write that may wait for another writer, so it goes to a thread (once a minute per
        session). A database server is always asked from a thread (the network waits)."""
        if is_sqlite(self.sessions.engine):
            found = self.sessions.signed_in(session_id, touch=False)
            if found is not None and found.touch_due:
                await run_in_threadpool(self.sessions.touch, found.session.id)
        else:
            found = await run_in_threadpool(self.sessions.signed_in, session_id)
        if found is None or found.user is None or not found.user.active:
            return None
        return Viewer(found.user, found.session, supported(found.user.locale), found.counts)

    def guard(self) -> Middleware:
        return Middleware(SessionGuard, signer=self.signer, cookies=self.cookies,
                          secure=self.settings.cookie_secure, resolve=self.resolve,
                          reject=self._refuse_csrf, expired=self._keep_draft,
                          restore=self._restore_draft)

    async def _keep_draft(self, request: Request, session_id: str,
                          given: str | None) -> Response | None:
        """A record form sent with the cookie of an ended session: keep what was typed and
        send the browser to sign in. None (refused as usual) unless the form carries that
        session's CSRF token."""
        path = request.url.path
        if request.method != "POST" or not RESTORABLE.match(path):
            return None
        former = await run_in_threadpool(self.sessions.former, session_id)
        if former is None or not tokens_match(former.csrf_token, given):
            return None
        async with request.form() as form:
            fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        draft_id = await run_in_threadpool(self.drafts.keep, former.user_id, path,
                                           keepable(fields, (CSRF_FIELD,)))
        query = {"next": path} | ({"draft": draft_id} if draft_id else {})
        return self._to_login("/login?" + urlencode(query), request)

    async def _restore_draft(self, viewer: Viewer, draft_id: str, path: str) -> bytes | None:
        draft = await run_in_threadpool(self.drafts.peek, draft_id, viewer.user.id)
        if draft is None or draft.path != path:
            return None
        await run_in_threadpool(self.drafts.take, draft_id, viewer.user.id)
        return urlencode(draft.fields).encode()

    async def _refuse_csrf(self, request: Request, why: str) -> Response:
        return self.ui.error_page(request, 403, N_("Request refused"), why)

    async def on_login_required(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return self._to_login(login_url(safe_next(exc.next_url)), request)

    def _to_login(self, url: str, request: Request) -> Response:
        if "hx-request" in request.headers:  # htmx swaps fragments; make it load the page
            return Response(status_code=401, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)

    # -- cookies --------------------------------------------------------------------------

    def _set_session(self, response: Response, token: str) -> None:
        response.set_cookie(self.cookies.session, self.signer.sign("session", token),
                            max_age=self.settings.session_days * 86400, httponly=True,
                            samesite="lax", secure=self.settings.cookie_secure, path="/")
        response.delete_cookie(self.cookies.csrf, path="/", secure=self.settings.cookie_secure,
                               httponly=True, samesite="lax")

    def _clear_session(self, response: Response) -> None:
        response.delete_cookie(self.cookies.session, path="/",
                               secure=self.settings.cookie_secure, httponly=True,
                               samesite="lax")

    # -- routes ---------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/account/password", self.password, methods=["GET", "POST"]),
            Route("/account/language", self.language, methods=["POST"]),
        ]

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            next_url = safe_next(request.query_params.get("next"))
            if viewer_of(request) is not None:
                return RedirectResponse(next_url or "/", status_code=303)
            draft = _text(dict(request.query_params), "draft", MAX_DRAFT_ID)
            return self.ui.page(request, "login.html", {"next": next_url or "", "username": "",
                                                        "draft": draft})
        form = await read_form(request)
        name = _text(form, "username", MAX_NAME).strip()
        password = _text(form, "password", MAX_PASSWORD)
        next_url = safe_next(form.get("next"))
        draft_id = _text(form, "draft", MAX_DRAFT_ID)
        address = _address(request)
        context = {"next": next_url or "", "username": name, "draft": draft_id}
        # Counted before the password is checked (one step, so guesses sent at once cannot
        # all pass), and the same way whether or not the user exists.
        wait = await run_in_threadpool(self.throttle.attempt, name, address)
        if wait is not None:
            return self.ui.page(request, "login.html", {**context, "error": THROTTLED},
                                status=429, headers={"Retry-After": str(wait)})
        user = await run_in_threadpool(self.users.check_password, name, password)
        if user is None:
            return self.ui.page(request, "login.html", {**context, "error": WRONG_CREDENTIALS},
                                status=400)
        await run_in_threadpool(self.throttle.succeeded, name, address)
        previous = viewer_of(request)
        if previous is not None:
            await run_in_threadpool(self.sessions.end, previous.session.id)
        started = await run_in_threadpool(self.sessions.start, user.id)
        kept = await run_in_threadpool(self.drafts.peek, draft_id, user.id) if draft_id \
            else None
        if kept is not None:  # only its own user gets a draft back
            next_url = kept.path + "?" + urlencode({RESTORE_PARAM: draft_id})
        response = RedirectResponse(next_url or "/", status_code=303)
        self._set_session(response, started.token)
        return response

    async def logout(self, request: Request) -> Response:
        viewer = viewer_of(request)
        if viewer is not None:
            await run_in_threadpool(self.sessions.end, viewer.session.id)
        response = RedirectResponse("/login", status_code=303)
        self._clear_session(response)
        return response

    async def password(self, request: Request) -> Response:
        viewer = require_viewer(request)
        if request.method == "GET":
            return self.ui.page(request, "password.html",
                                {"changed": request.query_params.get("changed") == "1",
                                 "errors": {}})
        form = await read_form(request)
        current = _text(form, "current_password", MAX_PASSWORD)
        new = _text(form, "new_password", MAX_PASSWORD)
        confirm = _text(form, "confirm_password", MAX_PASSWORD)
        errors: dict[str, str] = {}
        if len(new) < MIN_PASSWORD:
            errors["new_password"] = N_("Use at least 8 characters.")
        elif new != confirm:
            errors["confirm_password"] = N_("The two new passwords are not the same.")
        name, address = viewer.user.name, _address(request)
        # Someone at an unlocked screen could guess the current password here: same limit.
        wait = await run_in_threadpool(self.throttle.attempt, name, address)
        if wait is not None:
            return self.ui.page(request, "password.html", {"changed": False, "errors": {},
                                                           "error": THROTTLED},
                                status=429, headers={"Retry-After": str(wait)})
        if await run_in_threadpool(self.users.check_password, name, current) is None:
            errors["current_password"] = N_("This is not your current password.")
        else:
            await run_in_threadpool(self.throttle.succeeded, name, address)
        if errors:
            return self.ui.page(request, "password.html", {"changed": False, "errors": errors},
                                status=400)
        await run_in_threadpool(self.users.set_password, viewer.user.id, new)
        await run_in_threadpool(self.sessions.end_all, viewer.user.id)
        started = await run_in_threadpool(self.sessions.start, viewer.user.id)
        response = RedirectResponse("/account/password?changed=1", status_code=303)
        self._set_session(response, started.token)
        return response

    async def language(self, request: Request) -> Response:
        viewer = require_viewer(request)
        form = await read_form(request)
        language = _text(form, "language", 20)
        if language not in LANGUAGES:
            return self.ui.error_page(request, 400, N_("Unknown language"),
                                      N_("Choose one of the languages in the menu."))
        await run_in_threadpool(self.users.set_locale, viewer.user.id, language)
        return RedirectResponse(safe_next(form.get("next")) or "/", status_code=303)

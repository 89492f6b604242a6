"""Signed cookies and the session guard: who is asking, and CSRF on every state change.

Cookies are signed with HMAC-SHA256 under the app's secret key (WebSettings.secret_key),
with a purpose in the signed text so a value signed for one cookie is refused by another.
The session cookie carries a random id whose digest is looked up in crm_session; the
signature only lets a worker refuse a forged or truncated cookie without a query.

The guard is a pure ASGI middleware in front of every HTML route (not /api, whose Bearer
tokens are not ambient credentials, nor /static). It resolves the session once per request
and, for POST/PUT/PATCH/DELETE, requires the CSRF token of the session (or, signed out, of
the CSRF cookie) in the `X-CSRF-Token` header or the `csrf_token` form field. A form sent
with the cookie of a session that has ended goes to `expired` (kept for the next sign-in,
engine/web/auth.py), and a GET with `?restore=<draft>` is shown with the kept fields.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request, cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.web.i18n import N_
from engine.web.viewer import ANON_CSRF_KEY, VIEWER_KEY, Viewer

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 4 * 1024 * 1024
UNGUARDED_PREFIXES = ("/api/", "/static/")
UNGUARDED_PATHS = frozenset({"/api", "/health"})
CSRF_FAILED = N_("This form has expired or did not come from this site. Go back, reload the "
                 "page and try again.")
FORM_TOO_LARGE = N_("The form is too large to be sent.")


class Signer:
    """HMAC-SHA256 signatures for cookie values.

    >>> s = Signer(b"k" * 32)
    >>> s.unsign("session", s.sign("session", "abc"))
    'abc'
    >>> s.unsign("csrf", s.sign("session", "abc")) is None
    True
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, value: str) -> str:
        mac = hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, purpose: str, value: str) -> str:
        return f"{value}.{self._mac(purpose, value)}"

    def unsign(self, purpose: str, signed: str | None) -> str | None:
        if not signed or len(signed) > 400:
            return None
        value, dot, mac = signed.rpartition(".")
        if not dot or not hmac.compare_digest(mac, self._mac(purpose, value)):
            return None
        return value


@dataclass(frozen=True)
class CookieNames:
    session: str
    csrf: str

    @classmethod
    def for_(cls, secure: bool) -> CookieNames:
        # The __Host- prefix makes browsers refuse the cookie from a sibling subdomain or
        # over plain HTTP; it needs Secure, so it is used only when cookies are Secure.
        prefix = "__Host-" if secure else ""
        return cls(f"{prefix}crm_session", f"{prefix}crm_csrf")


def tokens_match(expected: str, given: str | None) -> bool:
    return bool(expected) and given is not None and hmac.compare_digest(
        expected.encode(), given.encode())


Resolve = Callable[[str], Awaitable[Viewer | None]]
Reject = Callable[[Request, str], Awaitable[Response]]
Expired = Callable[[Request, str, str | None], Awaitable[Response | None]]
"""Answers a state change sent with the cookie of a session that has ended (given the
session id and the token sent), or None to refuse it like any other."""
Restore = Callable[[Viewer, str, str], Awaitable[bytes | None]]
"""The query string that brings back a kept form (given the viewer, the draft id and the
path asked for), or None."""
RESTORE_PARAM = "restore"


class SessionGuard:
    """ASGI middleware: puts the Viewer (or None) in request.state, checks CSRF tokens."""

    def __init__(self, app: ASGIApp, *, signer: Signer, cookies: CookieNames, secure: bool,
                 resolve: Resolve, reject: Reject, expired: Expired | None = None,
                 restore: Restore | None = None) -> None:
        self.app = app
        self.signer = signer
        self.cookies = cookies
        self.secure = secure
        self.resolve = resolve
        self.reject = reject
        self.expired = expired
        self.restore = restore

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or path in UNGUARDED_PATHS
                or path.startswith(UNGUARDED_PREFIXES)):
            await self.app(scope, receive, send)
            return
        jar = _cookies(scope)
        state = scope.setdefault("state", {})
        session_id = self.signer.unsign("session", jar.get(self.cookies.session))
        viewer = await self.resolve(session_id) if session_id else None
        state[VIEWER_KEY] = viewer
        anon = self.signer.unsign("csrf", jar.get(self.cookies.csrf))
        new_anon = None
        if viewer is None and anon is None:
            anon = new_anon = secrets.token_urlsafe(32)
        state[ANON_CSRF_KEY] = anon or ""
        if viewer is not None and scope["method"] == "GET" and self.restore is not None:
            draft_id = _query_value(scope, RESTORE_PARAM)
            if draft_id is not None:  # the page is shown as if opened with the kept fields
                query = await self.restore(viewer, draft_id, path)
                if query is not None:
                    scope = {**scope, "query_string": query}
        if scope["method"] not in SAFE_METHODS:
            expected = [viewer.session.csrf_token] if viewer else []
            if anon and (viewer is None or path == "/login"):
                # A sign-in form rendered before the session began carries the cookie token.
                expected.append(anon)
            receive, given = await _given_token(scope, receive)
            if not any(tokens_match(e, given) for e in expected):
                request = Request(scope, receive)
                response = None
                if (viewer is None and session_id and self.expired is not None
                        and given != _TOO_LARGE):
                    response = await self.expired(request, session_id, given)
                if response is None:
                    why = FORM_TOO_LARGE if given == _TOO_LARGE else CSRF_FAILED
                    response = await self.reject(request, why)
                await self._with_cookie(response, new_anon)(scope, receive, send)
                return
        if new_anon is None:
            await self.app(scope, receive, send)
            return
        cookie = self._anon_cookie(new_anon)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", cookie)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _anon_cookie(self, token: str) -> bytes:
        response = Response()
        response.set_cookie(self.cookies.csrf, self.signer.sign("csrf", token), httponly=True,
                            samesite="lax", secure=self.secure, path="/")
        return response.headers["set-cookie"].encode("latin-1")

    def _with_cookie(self, response: Response, token: str | None) -> Response:
        if token is not None:
            response.raw_headers.append((b"set-cookie", self._anon_cookie(token)))
        return response


def _cookies(scope: Scope) -> dict[str, str]:
    jar: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar.update(cookie_parser(value.decode("latin-1")))  # lenient: never raises
    return jar


def _query_value(scope: Scope, name: str) -> str | None:
    raw = scope.get("query_string", b"").decode("latin-1")
    return next((v for k, v in parse_qsl(raw, keep_blank_values=True) if k == name), None)


_TOO_LARGE = "\x00too-large"


async def _given_token(scope: Scope, receive: Receive) -> tuple[Receive, str | None]:
    """The token the request sends: the header, else the form field. A form body is read
    here and replayed to the route, which then reads it as if untouched. A URL-encoded body
    is held to MAX_FORM_BYTES whichever way the token comes (htmx sends it as a header;
    a multipart body is bounded by its parser per field and spools its files)."""
    header: str | None = None
    ctype = ""
    for key, value in scope.get("headers", []):
        if key == CSRF_HEADER.encode():
            header = value.decode("latin-1")
        elif key == b"content-type":
            ctype = value.decode("latin-1").split(";")[0].strip().lower()
    if header is not None and ctype != "application/x-www-form-urlencoded":
        return receive, header
    if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return receive, None
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return receive, None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return receive, _TOO_LARGE
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    token: str | None
    if header is not None:
        token = header
    elif ctype == "application/x-www-form-urlencoded":
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        token = next((v for k, v in pairs if k == CSRF_FIELD), None)
    else:
        try:
            async with Request(scope, _replay(body, receive)).form() as form:  # closes uploads
                value = form.get(CSRF_FIELD)
                token = value if isinstance(value, str) else None
        except (HTTPException, MultiPartException):  # a malformed body carries no token
            token = None
    return _replay(body, receive), token


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

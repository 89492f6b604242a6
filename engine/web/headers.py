"""Security headers on every answer: pages, API JSON, errors, 404s and static files.

A pure ASGI middleware: it only adds headers to the `http.response.start` message, so a
streamed or cancelled answer behaves as without it (Starlette's BaseHTTPMiddleware would
run the app in a task of its own). The app wraps it around everything, Starlette's error
middleware included, so that a 500 carries the headers too (engine/web/app.py).

The policy allows scripts, styles and requests from this site only: no inline script, no
inline style, no eval (htmx is configured for it in ui_templates/base.html), no framing.
Everything but /static/ is `Cache-Control: no-store`, so a page or API answer seen behind
sign-in is never kept by the browser or a proxy (the back button after signing out shows
nothing); static files keep their validators and stay cacheable.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "connect-src 'self'", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'",
    "object-src 'none'"))
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),  # frame-ancestors for browsers that predate it
    ("Referrer-Policy", "same-origin"),  # record addresses and filters never leave the site
)
NO_STORE = ("Cache-Control", "no-store")
CACHEABLE_PREFIX = "/static/"

_ALWAYS = tuple((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS)
_NO_STORE = (NO_STORE[0].lower().encode(), NO_STORE[1].encode())


def headers_for(path: str) -> tuple[tuple[bytes, bytes], ...]:
    """The headers an answer to `path` gets (raw ASGI pairs, names in lower case).

    >>> dict(headers_for("/e/account"))[b"cache-control"]
    b'no-store'
    >>> b"cache-control" in dict(headers_for("/static/app.css"))
    False
    """
    return _ALWAYS if path.startswith(CACHEABLE_PREFIX) else (*_ALWAYS, _NO_STORE)


class SecurityHeaders:
    """Sets SECURITY_HEADERS (and no-store, see headers_for) on every HTTP answer,
    replacing any value the app gave them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ours = headers_for(scope["path"])
        names = {name for name, _ in ours}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(name, value) for name, value in message.get("headers", ())
                        if name.lower() not in names]
                message = {**message, "headers": [*kept, *ours]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

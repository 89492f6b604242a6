"""Who is asking: the signed-in user of a page request, resolved once per request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.requests import Request

from engine.runtime.sessions import Session
from engine.runtime.users import User
from engine.web.limits import admit

VIEWER_KEY = "crm_viewer"
ANON_CSRF_KEY = "crm_anon_csrf"


@dataclass(frozen=True)
class Viewer:
    user: User
    session: Session
    language: str
    """The UI language tag (a key of engine.web.i18n.LANGUAGES)."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """The page header's counts, read with the session (`notifications`: unread ones, up
    to engine.runtime.notifications.HEADER_CAP)."""

    @property
    def display_name(self) -> str:
        return self.session.display_name


class LoginRequired(Exception):
    """Raised by a page that needs a signed-in user; answered with a redirect to /login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def viewer_of(request: Request) -> Viewer | None:
    """The signed-in user of this request, as the session guard found it (or None)."""
    found = request.scope.get("state", {}).get(VIEWER_KEY)
    return found if isinstance(found, Viewer) else None


def require_viewer(request: Request) -> Viewer:
    """The signed-in user, or LoginRequired carrying this page's path and query.

    Every page but /login calls this first: `viewer = require_viewer(request)`. It counts
    the request against the user's share of running requests (engine/web/limits.py).
    """
    viewer = viewer_of(request)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    admit(request, viewer.user.id)
    return viewer


def csrf_token_of(request: Request) -> str:
    """The token forms and htmx requests of this page must send back."""
    viewer = viewer_of(request)
    if viewer is not None:
        return viewer.session.csrf_token
    return str(request.scope.get("state", {}).get(ANON_CSRF_KEY, ""))

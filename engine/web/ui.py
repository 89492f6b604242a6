"""Rendering pages: one Jinja2 environment per UI language, the layout's shared context.

Every page template extends ui_templates/base.html and is rendered with `Ui.page`, which
adds what the layout needs: the viewer, the CSRF token, the navigation and the languages.
Templates translate with `{{ _('...') }}` (jinja2.ext.i18n, new style: `%` in a message is
written `%%`), show YAML labels with `{{ label(entity.label) }}` and format values with the
filters `number`, `money` (in the currency of config/settings.yaml), `percent`, `date`,
`datetime` (engine.web.i18n.formatters).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.messages import Message
from engine.metadata import Model
from engine.metadata.labels import Label
from engine.metadata.roles import Scope
from engine.runtime.access import AccessPolicy, Actor
from engine.runtime.records import Records
from engine.web.i18n import LANGUAGES, formatters, negotiate, translations
from engine.web.nav import NavArea, navigation, readable_only
from engine.web.security import CSRF_FIELD
from engine.web.viewer import Viewer, csrf_token_of, viewer_of

TEMPLATES = Path(__file__).resolve().parents[2] / "ui_templates"
STATIC = Path(__file__).resolve().parents[2] / "static"


def htmx_file() -> str:
    """The vendored htmx script's file name (its version is part of the name)."""
    names = sorted(p.name for p in STATIC.glob("htmx-*.min.js"))
    if not names:
        raise RuntimeError(f"no htmx-<version>.min.js in {STATIC}")
    return names[-1]


class PageFamily:
    """What every family of pages holds: the model, the records service (every read and
    write through the access policy) and the renderer."""

    def __init__(self, model: Model, records: Records, ui: Ui) -> None:
        self.model = model
        self.records = records
        self.ui = ui


class Ui:
    def __init__(self, model: Model, templates: Path = TEMPLATES,
                 policy: AccessPolicy | None = None, *, auto_reload: bool = False) -> None:
        self.model = model
        self.policy = policy
        """The access policy that trims each user's menu to what they may read (None: all)."""
        self.htmx = htmx_file()
        self.auto_reload = auto_reload
        """Whether Jinja checks the template files for changes on every page (a stat of
        each file per render); off by default: the templates ship with the code."""
        self.envs = {lang: self._environment(templates, lang) for lang in LANGUAGES}
        self.nav = {lang: navigation(model, lang) for lang in LANGUAGES}

    def _environment(self, templates: Path, language: str) -> Environment:
        env = Environment(loader=FileSystemLoader(templates),
                          autoescape=select_autoescape(default=True, default_for_string=True),
                          extensions=["jinja2.ext.i18n"], auto_reload=self.auto_reload)
        env.install_gettext_translations(  # type: ignore[attr-defined]
            translations()[language], newstyle=True)
        env.filters.update(formatters(language, self.model.settings.currency,
                                      self.model.settings.time_zone))

        def label(value: Label | str | None) -> str:
            if value is None:
                return ""
            return value if isinstance(value, str) else value.get(language)

        # tr(): a msgid held in a variable (marked with N_ where defined). Unlike _(), its
        # result is plain text, so it is escaped like any other value.
        catalog = translations()[language]

        def tr(message: str) -> str:
            if isinstance(message, Message):  # a server message: its id and parameters
                return message.render(catalog.gettext, language)
            return catalog.gettext(message) if message else ""  # gettext("") is the header

        def finalize(value: Any) -> Any:
            # Every {{ value }} that is a server message shows in the page's language.
            return value.render(catalog.gettext, language) if isinstance(value, Message) \
                else value

        env.finalize = finalize

        env.globals.update(tr=tr,
                           label=label, language=language, languages=LANGUAGES,
                           csrf_field=CSRF_FIELD, csrf_header="X-CSRF-Token",
                           htmx_file=self.htmx)
        return env

    def language_of(self, request: Request) -> str:
        viewer = viewer_of(request)
        if viewer is not None:
            return viewer.language
        return negotiate(request.headers.get("accept-language", ""))

    def gettext(self, request: Request, message: str) -> str:
        """`message` in the request's language: a Message from its id, else a msgid."""
        language = self.language_of(request)
        catalog = translations()[language]
        if isinstance(message, Message):
            return message.render(catalog.gettext, language)
        return catalog.gettext(message)

    def page(self, request: Request, template: str, context: Mapping[str, Any] | None = None,
             *, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
        """Render a page template with the layout's context (context keys win)."""
        language = self.language_of(request)
        viewer = viewer_of(request)
        base: dict[str, Any] = {
            "request": request,
            "viewer": viewer,
            "csrf_token": csrf_token_of(request),
            "nav": self.nav_of(viewer, language),
            "viewer_is_admin": self.is_admin(viewer),
            "current_path": request.url.path,
            # Where the language switch returns to: this page, query string included.
            "current_url": request.url.path + (f"?{request.url.query}"
                                               if request.url.query else ""),
        }
        base.update(context or {})
        html = self.envs[language].get_template(template).render(base)
        return HTMLResponse(html, status_code=status, headers=dict(headers or {}))

    def nav_of(self, viewer: Viewer | None, language: str) -> tuple[NavArea, ...]:
        """The side menu of `viewer`: the entities their roles may read."""
        if viewer is None:
            return ()
        if self.policy is None:
            return self.nav[language]
        return readable_only(self.nav[language], self.readable(viewer.user.actor()))

    def is_admin(self, viewer: Viewer | None) -> bool:
        """Whether the menu shows `viewer` the administrators' pages (no database query)."""
        if viewer is None or self.policy is None:
            return False
        return self.policy.is_admin(viewer.user.actor())

    def readable(self, actor: Actor) -> frozenset[str]:
        """Names of the entities the actor's roles may read (no database query)."""
        policy = self.policy
        if policy is None:
            return frozenset(e.name for e in self.model.entities)
        return frozenset(e.name for e in self.model.entities
                         if policy.scope(actor, e.name, "read") is not Scope.NONE)

    def error_page(self, request: Request, status: int, title: str, message: str,
                   headers: Mapping[str, str] | None = None) -> HTMLResponse:
        """An error as a page; `title` and `message` are catalog msgids, or plain text."""
        return self.page(request, "error.html", {"status": status, "title": title,
                                                 "message": message},
                         status=status, headers=headers)


def wants_html(request: Request) -> bool:
    """A page request (a browser or htmx), not an API client: errors become pages."""
    path = request.url.path
    if path == "/api" or path.startswith("/api/") or path == "/openapi.json":
        return False
    return "text/html" in request.headers.get("accept", "") or "hx-request" in request.headers


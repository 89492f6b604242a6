"""One error shape for every route: {"error": {"code", "message", "fields"}}."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.messages import localize
from engine.runtime.errors import RecordError
from engine.web.i18n import negotiate, translations

log = logging.getLogger("engine.web")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large",
          415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests"}


def error_response(status: int, message: str, fields: dict[str, str] | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code or _CODES.get(status, "error"), "message": message,
                      "fields": fields or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def api_language(request: Request) -> str:
    """The language of API messages: English unless Accept-Language asks for another."""
    return negotiate(request.headers.get("accept-language", ""))


async def on_record_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RecordError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    language = api_language(request)
    gettext = translations()[language].gettext
    fields = {k: localize(v, gettext, language) for k, v in exc.fields.items()}
    headers = {**(headers or {}), "Content-Language": language}
    return error_response(exc.status, localize(exc.message, gettext, language), fields,
                          exc.code, headers)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, str(exc.detail), headers=headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error; it has been logged", code="internal")

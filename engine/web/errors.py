"""One error shape for every route:

    {"error": {"code", "message", "fields", "message_id", "params", "field_messages"}}

`message` and the `fields` texts are rendered in the reader's language; `message_id` and
`params` are the message as the server built it (engine/messages.py `structured`), and
`field_messages` gives, per field, each of its problems the same way (a validation rule's
with its `rule` id), so a client can act on a problem or render it itself without reading
the English text. docs/api.md describes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.messages import Gettext, Message, localize, msg, parts, structured
from engine.runtime.errors import RecordError
from engine.runtime.records.lines import line_problems
from engine.web.i18n import negotiate, translations

log = logging.getLogger("engine.web")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 410: "gone", 413: "too_large",
          415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests"}


def error_response(status: int, message: str, fields: Mapping[str, str] | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None,
                   language: str = "en",
                   lines: Mapping[int, Mapping[str, str]] | None = None,
                   extra: Mapping[str, Any] | None = None) -> JSONResponse:
    """The error answer: `message` and `fields` (Message values, or plain text) rendered in
    `language`, with their ids and parameters beside them; `lines`: a save with line items,
    the problems of each line by its row (engine/runtime/records/lines.py), the same way."""
    gettext = translations()[language].gettext
    fields = fields or {}
    body = {"error": {
        "code": code or _CODES.get(status, "error"),
        "message": localize(message, gettext, language),
        "fields": {k: localize(v, gettext, language) for k, v in fields.items()},
        **structured(message, gettext, language),
        "field_messages": {k: field_messages(v, gettext, language)
                           for k, v in fields.items()},
    }}
    if lines:
        body["error"]["lines"] = {str(row): {k: localize(v, gettext, language)
                                             for k, v in problems.items()}
                                  for row, problems in sorted(lines.items())}
        body["error"]["line_messages"] = {
            str(row): {k: field_messages(v, gettext, language) for k, v in problems.items()}
            for row, problems in sorted(lines.items())}
    if extra:  # what an error carries besides (a duplicate's candidates)
        body["error"].update(extra)
    headers = {**(headers or {}), "Content-Language": language}
    return JSONResponse(body, status_code=status, headers=headers)


def field_messages(text: str, gettext: Gettext, language: str) -> list[dict[str, Any]]:
    """Each problem of one field, structured: a field's problems joined into one text (its
    value checks and the rules about it) come apart again."""
    return [structured(part, gettext, language) for part in parts(text)]


def api_language(request: Request) -> str:
    """The language of API messages: English unless Accept-Language asks for another."""
    return negotiate(request.headers.get("accept-language", ""))


async def on_record_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RecordError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.message, exc.fields, exc.code, headers,
                          api_language(request), line_problems(exc),
                          getattr(exc, "extra", None))


def http_message(request: Request, exc: HTTPException) -> Message:
    """The message of an HTTP error the router (or Starlette) raised: an unknown address, a
    method the address does not take, a body Starlette could not read."""
    if isinstance(exc.detail, Message):
        return exc.detail
    # The English text stays Starlette's; the parameters say what was asked.
    path = request.url.path[:200]
    if exc.status_code == 404:
        return msg("Not Found", path=path)
    if exc.status_code == 405:
        return msg("Method Not Allowed", method=request.method, path=path,
                   allowed=(exc.headers or {}).get("Allow", ""))
    return msg("the request was refused (HTTP %(status)s: %(detail)s)",
               status=exc.status_code, detail=str(exc.detail)[:200])


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, http_message(request, exc), headers=headers,
                          language=api_language(request))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, msg("internal error; it has been logged"), code="internal",
                          language=api_language(request))

"""Errors of the runtime services; each knows its HTTP status and error code."""

from __future__ import annotations

from engine.messages import msg


class RecordError(Exception):
    """`message` and the `fields` texts are engine.messages.Message values (plain str is
    accepted for text from outside the engine); the web edge renders them per language."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class BadRequest(RecordError):
    status = 400
    code = "bad_request"


class Unauthorized(RecordError):
    status = 401
    code = "unauthorized"


class Forbidden(RecordError):
    status = 403
    code = "forbidden"


class NotFound(RecordError):
    status = 404
    code = "not_found"


class Conflict(RecordError):
    status = 409
    code = "conflict"


class Gone(RecordError):
    """What was asked for is no longer kept (a changes cursor older than the change log)."""

    status = 410
    code = "cursor_expired"


class Invalid(RecordError):
    """One or more fields (or the record as a whole) failed validation."""

    status = 422
    code = "invalid"


def stale_version(entity: str, record_id: int, current: int | None, given: int) -> Conflict:
    """The 409 of an optimistic-concurrency check: someone saved the record since `given`."""
    if current is None:
        message = msg("%(entity)s %(id)s was changed by someone else since version %(given)s; "
                      "reload it and apply your change again",
                      entity=entity, id=record_id, given=given)
    else:
        message = msg("%(entity)s %(id)s was changed by someone else since version %(given)s "
                      "(current version is %(current)s); reload it and apply your change again",
                      entity=entity, id=record_id, given=given, current=current)
    return Conflict(message, {"version": STALE_VERSION})


STALE_VERSION = "stale"
"""The `version` field's problem when a save was overtaken: a code clients test for."""

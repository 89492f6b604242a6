"""Export answers: `?format=csv|xlsx` on a list or a report, as an attachment.

The file is written by the one export writer (engine/runtime/export.py) in the threadpool
into a spooled temporary file (on disk past 1 MB: memory stays flat in the row count), then
streamed back with a safe file name in Content-Disposition.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from engine.messages import msg
from engine.runtime.errors import BadRequest
from engine.runtime.export import CHUNK, FORMATS, MEDIA_TYPES, file_name, money_format
from engine.web.i18n import home_symbol

SPOOL = 1024 * 1024

EXPORT_FORMAT: dict[str, Any] = {
    "name": "format", "in": "query", "schema": {"enum": ["json", "csv", "xlsx"]},
    "description": "csv or xlsx: the whole answer as a file (Content-Disposition: attachment) "
                   "instead of JSON, with the rows and fields your export scope (roles.yaml "
                   "`export`) allows, else 403; a list keeps its filters and sort, no paging, "
                   "at most 1,000,000 rows (more: 413). Text cells starting with = + - @, a "
                   "tab or a carriage return get a leading '. Another format: 400."}
EXPORT_FILES: dict[str, Any] = {
    "text/csv": {"schema": {"type": "string", "format": "binary"},
                 "example": "\ufeffID,Name\r\n1,Acme\r\n"},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "format": "binary"}},
}
"""The files `?format=csv|xlsx` answers with (engine/web/exports.py)."""

Writer = Callable[[IO[bytes]], None]
"""Writes the export (its rows read in the same thread) into a binary file."""


def export_format(params: dict[str, str]) -> str | None:
    """The `format` parameter: None (JSON), csv or xlsx; BadRequest naming any other."""
    fmt = params.pop("format", None)
    if fmt is None or fmt == "json":
        return None
    if fmt not in FORMATS:
        raise BadRequest(msg("unknown format '%(format)s': use csv or xlsx", format=fmt[:40]),
                         {"format": msg("unknown format '%(format)s'", format=fmt[:40])})
    return fmt


def currency_format(currency: str) -> str:
    """The Excel number format of money in the install's currency."""
    return money_format(home_symbol(currency) or currency)


async def export_response(fmt: str, base: str, write: Writer) -> StreamingResponse:
    """Run `write` in the threadpool into a temporary file and stream the file back as
    `base`.`fmt`. Errors `write` raises before its first row (Forbidden, too many rows)
    become the usual error answers."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115
    try:
        await run_in_threadpool(write, spool)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    name = file_name(base, fmt)
    return StreamingResponse(_read(spool), media_type=MEDIA_TYPES[fmt],
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "Cache-Control": "no-store"},
                             background=BackgroundTask(spool.close))


def _read(spool: IO[bytes]) -> Iterator[bytes]:
    while chunk := spool.read(CHUNK):
        yield chunk

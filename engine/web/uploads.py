"""Reading an uploaded file from a multipart/form-data request as it streams in.

Starlette's form parser spools every file to a temporary file with no bound; an upload is
instead parsed here chunk by chunk (python-multipart's streaming parser), its file part
written straight into a blob writer of the file store, which stops it at the size limit
(413) before reading on. A Content-Length already past the limit is refused before a byte
is read. Text fields are few and short (the file field's name, the CSRF token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from engine.messages import msg
from engine.runtime.errors import BadRequest, RecordError
from engine.runtime.files.store import BlobWriter, TooLarge
from engine.web.numbers import whole_number

FILE_PART = "file"
MAX_FIELDS = 8
MAX_FIELD_BYTES = 1024
ENVELOPE = 64 * 1024
"""Room for the multipart boundaries, part headers and text fields around the file."""


class NotMultipart(RecordError):
    status = 415
    code = "unsupported_media_type"


@dataclass
class Upload:
    """What a multipart request sent: its text fields, and its one file (name, blob writer)."""

    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    blob: BlobWriter | None = None

    def discard(self) -> None:
        if self.blob is not None:
            self.blob.discard()


@dataclass
class _Part:
    name: str = ""
    file_name: str | None = None
    text: bytearray = field(default_factory=bytearray)
    header: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)


async def read_upload(request: Request, receive: Callable[[], BlobWriter], limit: int,
                      too_large: Callable[[], RecordError]) -> Upload:
    """The upload of `request`: its file goes into `receive()`'s writer under `limit`
    bytes (`too_large()` is raised past it). The caller discards the writer when done."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise NotMultipart(msg("send the file as multipart/form-data, in a part named "
                               "'%(part)s'", part=FILE_PART))
    declared = whole_number(request.headers.get("content-length", "") or "")
    if declared is not None and declared > limit + ENVELOPE:
        raise too_large()
    upload = Upload()
    part = _Part()
    problems: list[RecordError] = []

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.header += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part.value += data[start:end]

    def on_header_end() -> None:
        part.headers[part.header.decode("latin-1").lower()] = bytes(part.value)
        part.header, part.value = bytearray(), bytearray()

    def on_headers_finished() -> None:
        _, options = parse_options_header(part.headers.get("content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        raw = options.get(b"filename")
        if raw is not None:
            # browsers (WHATWG multipart) write ", CR and LF of a name as %22, %0D, %0A
            part.file_name = raw.decode("utf-8", "replace").replace("%22", '"') \
                .replace("%0D", "\r").replace("%0A", "\n")
            if part.name != FILE_PART or upload.blob is not None:
                problems.append(BadRequest(msg("send one file, in the part named "
                                               "'%(part)s'", part=FILE_PART)))
                return
            upload.file_name = part.file_name
            upload.blob = receive()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if problems:
            return
        if part.file_name is not None:
            if upload.blob is not None:
                upload.blob.write(data[start:end])
            return
        part.text += data[start:end]
        if len(part.text) > MAX_FIELD_BYTES:
            problems.append(BadRequest(msg("the form field '%(name)s' is too long",
                                           name=part.name[:80])))

    def on_part_end() -> None:
        if part.file_name is None and not problems:
            if len(upload.fields) >= MAX_FIELDS:
                problems.append(BadRequest(msg("the form has too many fields")))
            else:
                upload.fields[part.name] = part.text.decode("utf-8", "replace")

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if problems:
                raise problems[0]
        parser.finalize()
    except TooLarge:
        upload.discard()
        raise too_large() from None
    except RecordError:
        upload.discard()
        raise
    except Exception:  # a malformed body: python-multipart raises its own errors
        upload.discard()
        raise BadRequest(msg("the multipart body is malformed")) from None
    if problems:
        upload.discard()
        raise problems[0]
    if upload.blob is None:
        raise BadRequest(msg("send the file in the part named '%(part)s'", part=FILE_PART),
                         {FILE_PART: msg("is required")})
    return upload

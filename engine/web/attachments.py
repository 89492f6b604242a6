"""The attachments of a record in the JSON API, and how a file is sent back.

`GET /api/<entity>/<id>/attachments` lists them, `POST` (multipart/form-data, the file in
the part `file`, optionally `field`: a file field it becomes the value of) adds one (201),
`GET .../attachments/<aid>` downloads one and `DELETE` removes it (204). Who may do what is
the records service's (engine/runtime/files/attachments.py).

A download is always sent as an attachment (`Content-Disposition: attachment`, the name in
RFC 5987 form so any language survives), with the content type sniffed when it was uploaded
(never HTML or SVG, which are not taken) and `X-Content-Type-Options: nosniff`, so a browser
saves it rather than runs it; like every answer outside /static/ it is `Cache-Control:
no-store` (engine/web/headers.py), which keeps it out of shared caches and the browser's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, BinaryIO
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import NotFound
from engine.runtime.files.attachments import Attachment, Attachments
from engine.runtime.values import to_json
from engine.web.numbers import whole_number
from engine.web.uploads import read_upload

CHUNK = 64 * 1024
MAX_ID = 2**63 - 1
ActorOf = Callable[[Request], Awaitable[Actor]]


def attachment_json(a: Attachment) -> dict[str, Any]:
    return {k: to_json(v) for k, v in a.as_json().items()}


def content_disposition(file_name: str) -> str:
    """`attachment` with the name twice: plain ASCII for old clients, and RFC 5987.

    >>> content_disposition('报价 "v2".pdf')
    'attachment; filename="__ _v2_.pdf"; filename*=UTF-8\\'\\'%E6%8A%A5%E4%BB%B7%20%22v2%22.pdf'
    """
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;%' else "_"
                       for ch in file_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def download(found: Attachment, content: BinaryIO) -> Response:
    """The response that sends an attachment's content as a file to save."""
    media = found.content_type
    if media.startswith("text/"):
        media += "; charset=utf-8"

    def chunks() -> Iterator[bytes]:
        with content:
            while chunk := content.read(CHUNK):
                yield chunk

    return StreamingResponse(chunks(), media_type=media, headers={
        "Content-Disposition": content_disposition(found.file_name),
        "Content-Length": str(found.size),
        "X-Content-Type-Options": "nosniff"})


def path_id(request: Request, key: str) -> int:
    raw = str(request.path_params[key])
    number = whole_number(raw)
    if number is None or not 0 < number <= MAX_ID:
        raise NotFound(msg("no record %(id)s", id=repr(raw[:40])))
    return number


async def upload(attachments: Attachments, request: Request, actor: Actor, entity: str,
                 record_id: int) -> Attachment:
    """Receive the request's file and attach it (the file field named by `field`, if any)."""
    await run_in_threadpool(attachments.check_add, actor, entity, record_id)
    got = await read_upload(request, attachments.receive, attachments.settings.max_bytes,
                            attachments.too_large)
    blob = got.blob
    assert blob is not None and got.file_name is not None
    field = got.fields.get("field") or None
    try:
        return await run_in_threadpool(
            lambda: attachments.add(actor, entity, record_id, got.file_name or "", blob,
                                    field=field))
    finally:
        got.discard()


class AttachmentsApi:
    def __init__(self, attachments: Attachments, actor_of: ActorOf) -> None:
        self.attachments = attachments
        self.actor_of = actor_of

    def routes(self) -> list[Route]:
        base = "/api/{entity}/{record_id}/attachments"
        return [Route(base, self.list_or_add, methods=["GET", "POST"]),
                Route(base + "/{attachment_id}", self.one, methods=["GET", "DELETE"])]

    async def list_or_add(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        entity = str(request.path_params["entity"])
        record_id = path_id(request, "record_id")
        if request.method == "POST":
            added = await upload(self.attachments, request, actor, entity, record_id)
            return JSONResponse(attachment_json(added), status_code=201, headers={
                "Location": f"/api/{entity}/{record_id}/attachments/{added.id}"})
        found = await run_in_threadpool(self.attachments.list_files, actor, entity, record_id)
        return JSONResponse({"items": [attachment_json(a) for a in found],
                             "total": len(found)})

    async def one(self, request: Request) -> Response:
        actor = await self.actor_of(request)
        entity = str(request.path_params["entity"])
        record_id = path_id(request, "record_id")
        attachment_id = path_id(request, "attachment_id")
        if request.method == "DELETE":
            await run_in_threadpool(self.attachments.remove, actor, entity, record_id,
                                    attachment_id)
            return Response(status_code=204)
        found, content = await run_in_threadpool(self.attachments.open, actor, entity,
                                                  record_id, attachment_id)
        return download(found, content)


# -- OpenAPI ------------------------------------------------------------------------------

ATTACHMENT_SCHEMAS: dict[str, Any] = {
    "Attachment": {"type": "object", "required": ["id", "file_name", "content_type", "size"],
                   "properties": {
        "id": {"type": "integer"},
        "field": {"type": ["string", "null"],
                  "description": "the file field it is the value of; null: the list"},
        "file_name": {"type": "string"},
        "content_type": {"type": "string", "description": "read from the file's bytes"},
        "size": {"type": "integer", "description": "bytes"},
        "sha256": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "created_by": {"type": ["integer", "null"]},
        "created_by_name": {"type": ["string", "null"]}}},
    "Attachments": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
        "total": {"type": "integer"}}},
    "Upload": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"},
        "field": {"type": "string", "description": "a file field the file becomes the value of"}}},
}


def attachment_paths(entity: str, label: str, actions: frozenset[str] | set[str]
                     ) -> dict[str, Any]:
    """The attachment routes of `entity` the caller's `actions` allow (read, update)."""
    def ref(name: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(c): {"description": "Error", "content": ref("Error")} for c in codes}

    rid = {"name": "record_id", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1}}
    aid = {"name": "attachment_id", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1}}
    tag = [entity]
    many: dict[str, Any] = {}
    one: dict[str, Any] = {}
    if "read" in actions:
        many["get"] = {"tags": tag, "operationId": f"attachments_{entity}",
                       "summary": f"Files of a {label}", "parameters": [rid],
                       "responses": {"200": {"description": "The files",
                                             "content": ref("Attachments")},
                                     **errors(401, 404)}}
        one["get"] = {"tags": tag, "operationId": f"download_attachment_{entity}",
                      "summary": "Download a file", "parameters": [rid, aid],
                      "responses": {"200": {"description": "The file, as an attachment",
                                            "content": {"application/octet-stream": {
                                                "schema": {"type": "string",
                                                           "format": "binary"}}}},
                                    **errors(401, 404)}}
    if "update" in actions:
        many["post"] = {"tags": tag, "operationId": f"add_attachment_{entity}",
                        "summary": "Upload a file", "parameters": [rid],
                        "requestBody": {"required": True, "content": {
                            "multipart/form-data": {
                                "schema": {"$ref": "#/components/schemas/Upload"}}}},
                        "responses": {"201": {"description": "Attached",
                                              "content": ref("Attachment")},
                                      **errors(400, 401, 403, 404, 413, 415, 422)}}
        one["delete"] = {"tags": tag, "operationId": f"remove_attachment_{entity}",
                         "summary": "Remove a file", "parameters": [rid, aid],
                         "responses": {"204": {"description": "Removed"},
                                       **errors(401, 403, 404)}}
    base = f"/api/{entity}/{{record_id}}/attachments"
    return {path: item for path, item in ((base, many), (base + "/{attachment_id}", one))
            if item}

"""`Idempotency-Key` on every API POST: a retry gets the first answer, never a second write.

An ASGI middleware in front of the routes (after the request limits, so its queries run
under the request's time limit). For a `POST /api/...` carrying the header it:

1. checks the key (1 to 255 visible ASCII characters, one header: 400 otherwise) and finds
   the caller from the Bearer token (without a valid token the route answers 401 as usual,
   and nothing is kept);
2. reads the body (spooled to disk past 1 MB) and hashes the request: method, path, query,
   media type and body — a multipart body with its boundary replaced by a fixed token, so a
   client that rebuilds the same upload with a new boundary sends the same request;
3. claims the key (engine/runtime/idempotency.py): a stored answer is sent again with
   `Idempotent-Replayed: true`; another request with the key is a 422; one still running a
   409 `idempotency_in_progress`;
4. runs the route holding the claim, so its writes mark the key in their own transaction;
5. stores the answer before sending it (a retry that comes as soon as the client has the
   answer gets it again); a 5xx answer is not stored.

Errors here are rendered like every API error (engine/web/errors.py), since the exception
handlers sit inside the middleware.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from typing import IO, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.messages import msg
from engine.runtime.errors import BadRequest, RecordError
from engine.runtime.idempotency import (
    HEADER,
    Claim,
    IdempotencyKeys,
    Replay,
    holding,
    valid_key,
)
from engine.runtime.users import Users
from engine.web.errors import on_record_error

log = logging.getLogger("engine.web")

HEADER_LOWER = HEADER.lower().encode("latin-1")
REPLAYED = "Idempotent-Replayed"
SPOOL = 1024 * 1024
CHUNK = 64 * 1024
MAX_BODY = 1024 * 1024 * 1024
"""A keyed request's body, at most (an attachment is bounded lower by its own route)."""
_NOT_KEPT = frozenset({"set-cookie", "date", "server"})


class IdempotencyGuard:
    """ASGI middleware: idempotency keys of `POST /api/...` (module docstring)."""

    def __init__(self, app: ASGIApp, keys: IdempotencyKeys, users: Users) -> None:
        self.app = app
        self.keys = keys
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" \
                or not str(scope["path"]).startswith("/api/"):
            await self.app(scope, receive, send)
            return
        given = [v for k, v in scope["headers"] if k.lower() == HEADER_LOWER]
        if not given:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            key = _key(given)
            user_id = await self._caller(request)
            if user_id is None:  # the route answers 401
                await self.app(scope, receive, send)
                return
            with tempfile.SpooledTemporaryFile(max_size=SPOOL) as body:
                digest = await _read_body(scope, receive, body)
                if digest is None:
                    return  # the client left while sending
                found = await run_in_threadpool(self.keys.claim, user_id, key, digest)
                if isinstance(found, Replay):
                    await _replay(found, send)
                    return
                await self._run(found, scope, _replaying(body, receive), send)
        except RecordError as exc:
            response = await on_record_error(request, exc)
            await response(scope, receive, send)

    async def _caller(self, request: Request) -> int | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        user = await run_in_threadpool(self.users.by_token, token.strip())
        return None if user is None else user.id

    async def _run(self, claim: Claim, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        chunks: list[bytes] = []
        settled = False

        async def keep(message: Message) -> None:
            nonlocal start, settled
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(bytes(message.get("body", b"")))
            if message.get("more_body"):
                return
            status = int(start["status"])
            body = b"".join(chunks)
            claim.active = False
            try:
                if status >= 500:
                    await run_in_threadpool(self.keys.release, claim)
                else:
                    headers = [(k.decode("latin-1"), v.decode("latin-1"))
                               for k, v in start.get("headers", [])
                               if k.decode("latin-1").lower() not in _NOT_KEPT]
                    await run_in_threadpool(self.keys.store, claim, status, headers, body)
            except Exception:  # the answer is still the client's; a retry then gets a 409
                log.exception("could not keep the answer of an Idempotency-Key")
            settled = True
            await send(start)
            await send({"type": "http.response.body", "body": body})

        try:
            with holding(claim):
                await self.app(scope, receive, keep)
        finally:
            claim.active = False
            if not settled:  # the route raised, or the request was cancelled
                try:
                    await run_in_threadpool(self.keys.release, claim)
                except Exception:
                    log.exception("could not release an Idempotency-Key")


def _key(given: list[bytes]) -> str:
    if len(given) > 1:
        raise BadRequest(msg("send one Idempotency-Key header, not %(n)s", n=len(given)),
                         {HEADER: msg("given more than once")})
    key = given[0].decode("latin-1")
    if not valid_key(key):
        raise BadRequest(msg("the Idempotency-Key header takes 1 to 255 visible ASCII "
                             "characters (no spaces)"),
                         {HEADER: msg("1 to 255 visible ASCII characters")})
    return key


async def _read_body(scope: Scope, receive: Receive, into: IO[bytes]) -> str | None:
    """Read the whole body into `into` and hash the request; None when the client left."""
    headers = Headers(scope=scope)
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:  # refused before a byte is read
        raise _TooLarge()
    media, _, params = headers.get("content-type", "").partition(";")
    media = media.strip().lower()
    hashed = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode(
            "latin-1"), media):
        hashed.update(str(part).encode("utf-8", "surrogateescape") + b"\0")
    canon = _Canonical(hashed, _boundary(params) if media.startswith("multipart/") else None)
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge()
        into.write(chunk)
        canon.update(chunk)
        if not message.get("more_body"):
            break
    canon.finish()
    into.seek(0)
    return hashed.hexdigest()


class _TooLarge(RecordError):
    status = 413
    code = "too_large"

    def __init__(self) -> None:
        super().__init__(msg("request body is larger than %(limit)s bytes", limit=MAX_BODY))


def _boundary(params: str) -> bytes | None:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary" and value.strip().strip('"'):
            return b"--" + value.strip().strip('"').encode("latin-1")
    return None


class _Canonical:
    """Feeds a body to a hash with every `--boundary` delimiter replaced by one token."""

    TOKEN = b"\0boundary\0"

    def __init__(self, hashed: Any, delimiter: bytes | None) -> None:
        self.hashed = hashed
        self.delimiter = delimiter
        self.carry = b""

    def update(self, chunk: bytes) -> None:
        if self.delimiter is None:
            self.hashed.update(chunk)
            return
        parts = (self.carry + chunk).split(self.delimiter)
        for part in parts[:-1]:
            self.hashed.update(part + self.TOKEN)
        last = parts[-1]
        keep = len(self.delimiter) - 1
        self.hashed.update(last[:-keep] if len(last) > keep else b"")
        self.carry = last[-keep:] if len(last) > keep else last

    def finish(self) -> None:
        self.hashed.update(self.carry)
        self.carry = b""


def _replaying(body: IO[bytes], receive: Receive) -> Receive:
    """The body again, chunk by chunk; then the client's own messages (its disconnect)."""
    done = False

    async def again() -> Message:
        nonlocal done
        if done:
            return await receive()
        chunk = body.read(CHUNK)
        more = body.tell() < _size(body)
        if not more:
            done = True
        return {"type": "http.request", "body": chunk, "more_body": more}

    return again


def _size(body: IO[bytes]) -> int:
    here = body.tell()
    end = body.seek(0, 2)
    body.seek(here)
    return end


async def _replay(found: Replay, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in found.headers]
    headers.append((REPLAYED.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": found.status, "headers": headers})
    await send({"type": "http.response.body", "body": found.body})

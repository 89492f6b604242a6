"""Bounds on what one request may take: time, and one user's share of the server.

`RequestLimits` is the outermost middleware. Each HTTP request runs under a `QueryLimit`
(settings.yaml `query_time_limit`, engine/runtime/query_limit.py): each of its queries stops
at the limit (503 `query_time_limit`), and at once when the client disconnects or the
server stops (the request task is cancelled), so no query outlives its request. A signed-in user
may have `requests_per_user` requests running at once; `admit(request, user_id)` (called
where the user becomes known: the page guard's `require_viewer`, the API's token check)
answers 429 beyond that, so a few expensive requests of one user cannot take every worker
thread from everyone else.
"""

from __future__ import annotations

import asyncio
import threading

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.messages import msg
from engine.runtime.errors import RecordError
from engine.runtime.query_limit import QueryLimit, limited

LIMITS_KEY = "crm_limits"
_DISCONNECT: Message = {"type": "http.disconnect"}


class TooBusy(RecordError):
    """The user already has as many requests running as one user may."""

    status = 429
    code = "too_many_requests"

    def __init__(self, limit: int) -> None:
        super().__init__(msg("you already have %(limit)s requests running, the most one user "
                             "may (settings.yaml requests_per_user); wait for one to finish",
                             limit=limit))
        self.limit = limit


class Running:
    """How many requests each user has running (one per process)."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._lock = threading.Lock()
        self._counts: dict[int, int] = {}

    def claim(self, user_id: int) -> None:
        with self._lock:
            count = self._counts.get(user_id, 0)
            if count >= self.per_user:
                raise TooBusy(self.per_user)
            self._counts[user_id] = count + 1

    def release(self, user_id: int) -> None:
        with self._lock:
            count = self._counts.pop(user_id, 0) - 1
            if count > 0:
                self._counts[user_id] = count

    def of(self, user_id: int) -> int:
        with self._lock:
            return self._counts.get(user_id, 0)


class _Admission:
    """One request's claim on its user's share, released when the request ends."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.user_id: int | None = None
        self._lock = threading.Lock()

    def admit(self, user_id: int) -> None:
        with self._lock:
            if self.user_id is not None:
                return
            self.running.claim(user_id)
            self.user_id = user_id

    def release(self) -> None:
        with self._lock:
            if self.user_id is not None:
                self.running.release(self.user_id)
                self.user_id = None


def admit(request: Request, user_id: int) -> None:
    """Count this request against `user_id`'s share (once per request); TooBusy beyond it.
    Does nothing for an app built without RequestLimits."""
    admission = request.scope.get(LIMITS_KEY)
    if isinstance(admission, _Admission):
        admission.admit(user_id)


class RequestLimits:
    """ASGI middleware: a query time limit per HTTP request, cancelled when the client
    leaves or the request is cancelled, and the per-user count of running requests."""

    def __init__(self, app: ASGIApp, time_limit: float, per_user: int) -> None:
        self.app = app
        self.time_limit = time_limit
        self.running = Running(per_user)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        admission = _Admission(self.running)
        scope = {**scope, LIMITS_KEY: admission}
        try:
            with limited(QueryLimit(self.time_limit)) as limit:
                await _Watched(self.app, limit).run(scope, receive, send)
        finally:
            admission.release()


class _Watched:
    """Runs one request while a task reads its receive channel ahead of the app (at most
    a body chunk ahead) to see the client disconnect while the app is busy (in a thread)."""

    def __init__(self, app: ASGIApp, limit: QueryLimit) -> None:
        self.app = app
        self.limit = limit
        self.answered = False  # the response is complete: a disconnect now is normal
        self.finished = False
        self.disconnected = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        sender, receiver = anyio.create_memory_object_stream[Message](1)

        async def app_receive() -> Message:
            if self.disconnected:
                try:
                    return receiver.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    return _DISCONNECT
            return await receiver.receive()

        async def app_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.answered = True
            await send(message)

        # A plain asyncio task, not an anyio task group: a fifth of the cost per request, and
        # uvicorn runs on asyncio. Its cancellation reaches the request task itself.
        with sender, receiver:
            pump = asyncio.get_running_loop().create_task(self._pump(receive, sender))
            try:
                await self.app(scope, app_receive, app_send)
            except Exception:
                self.finished = True
                pump.cancel()
                raise
            except BaseException:
                # The request itself is cancelled (the server stops): so are its queries,
                # before the server exits (uvicorn then re-raises SIGTERM on itself).
                self.limit.cancel(wait=True)
                pump.cancel()
                raise
            self.finished = True
            pump.cancel()

    async def _pump(self, receive: Receive, sender: MemoryObjectSendStream[Message]) -> None:
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.disconnected = True
                    if not self.answered:
                        self.limit.cancel()
                    await sender.send(message)
                    return
                await sender.send(message)
        except asyncio.CancelledError:
            if not self.finished:  # cancelled with the request, not after it
                self.limit.cancel(wait=True)
            raise


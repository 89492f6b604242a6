"""Import jobs run in the background of the server process (the import page's runner).

The import page (engine/web/pages/imports.py) starts a job here and answers at once; a
thread of this process runs it with `run_job` (engine/runtime/imports/jobs.py), which
commits in batches and records its progress in the job's row, so any process can show the
progress and a job whose server stopped is resumed by running it again.

Bounds: one running import per user and `per_server` at a time (default 3); one more is
refused with `ImportBusy` (429) and a message saying why, never queued out of sight. The
runner keeps, per job, when it started and how many rows were done then, for rows/s and the
ETA; `stop` asks every running job to stop at its next batch (the server is going down),
and the job is left resumable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import RecordError

log = logging.getLogger(__name__)

DEFAULT_PER_SERVER = 3
"""Imports one server process runs at a time: each takes a database connection and a core
for its batches, and the machine keeps serving pages beside them."""


class ImportBusy(RecordError):
    status = 429
    code = "import_busy"


RunJob = Callable[[Actor, int, Callable[[int], None], Callable[[], bool]], object]
"""Runs job `id` for the actor to its end: (actor, job id, progress(rows done),
should_stop()) — the records service's `run_job` with its first argument bound."""


@dataclass
class Running:
    """A job this process runs: its user, thread, and the clock for rows/s."""

    job_id: int
    user_id: int | None
    started: float
    done_at_start: int | None = None
    done: int = 0
    sampled: float = 0.0
    thread: threading.Thread | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Rate:
    """Rows per second since the run started here, and seconds left at that rate."""

    rows_per_s: float | None
    eta_s: float | None


class ImportRunner:
    """Runs import jobs in threads of this process, bounded per user and per server."""

    def __init__(self, run: RunJob, *, per_server: int = DEFAULT_PER_SERVER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._run = run
        self.per_server = per_server
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[int, Running] = {}
        self._stop = threading.Event()

    def running(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._running

    def start(self, actor: Actor, job_id: int) -> None:
        """Run job `job_id` in a new thread; ImportBusy when the actor has one running or
        the server its `per_server`. A job already running here is left alone."""
        with self._lock:
            if job_id in self._running:
                return
            if any(r.user_id == actor.user_id for r in self._running.values()):
                raise ImportBusy(msg("you have an import running already: wait for it to "
                                     "finish, then start the next one"))
            if len(self._running) >= self.per_server:
                raise ImportBusy(msg("the server is running %(n)s imports already: try "
                                     "again in a few minutes", n=self.per_server))
            entry = Running(job_id, actor.user_id, self._clock())
            thread = threading.Thread(target=self._body, args=(actor, entry),
                                      name=f"import-{job_id}", daemon=True)
            entry.thread = thread
            self._running[job_id] = entry
        thread.start()

    def _body(self, actor: Actor, entry: Running) -> None:
        def progress(done: int) -> None:
            with self._lock:
                if entry.done_at_start is None:
                    entry.done_at_start = done
                    entry.started = self._clock()
                entry.done = done
                entry.sampled = self._clock()

        try:
            self._run(actor, entry.job_id, progress, self._stop.is_set)
        except Exception:
            # The job's row keeps its progress: the page shows it interrupted (resumable).
            log.exception("import job %s failed", entry.job_id)
        finally:
            with self._lock:
                self._running.pop(entry.job_id, None)

    def rate(self, job_id: int, done: int, total: int | None) -> Rate:
        """Rows/s and the ETA of a job running here, from `done` rows now of `total`."""
        with self._lock:
            entry = self._running.get(job_id)
            if entry is None or entry.done_at_start is None:
                return Rate(None, None)
            elapsed = self._clock() - entry.started
            rows = done - entry.done_at_start
        if elapsed <= 0 or rows <= 0:
            return Rate(None, None)
        speed = rows / elapsed
        eta = max(total - done, 0) / speed if total is not None else None
        return Rate(speed, eta)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every running job to stop at its next batch and wait for them (a job left
        this way is resumable)."""
        self._stop.set()
        with self._lock:
            threads = [r.thread for r in self._running.values() if r.thread is not None]
        for thread in threads:
            thread.join(timeout)

    def wait(self, job_id: int, timeout: float = 60.0) -> bool:
        """Wait until job `job_id` no longer runs here (tests); whether it ended in time."""
        with self._lock:
            entry = self._running.get(job_id)
        if entry is None or entry.thread is None:
            return True
        entry.thread.join(timeout)
        return not entry.thread.is_alive()

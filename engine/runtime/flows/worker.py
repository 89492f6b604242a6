"""The flows worker (`crm worker`): passes of due timers, then the outbox.

Each pass sets the timers that come from no write (the next date of each flow schedule on
the holiday calendar: engine/runtime/flows/schedules.py), runs the timers due now
(engine/runtime/flows/timers.py: their database effects exactly once, each in its own
transaction), then delivers the outbox messages due now
(engine/runtime/flows/outbox.py: after commit, at least once) — so an email or webhook a
timer enqueued goes out in the same pass. A pass also takes the pipeline snapshot of the
current period when settings.yaml `pipeline_snapshots` asks for one and it is not there
(engine/runtime/reports/snapshots.py), and once an hour deletes the change log's rows older
than settings.yaml `changes.keep_days` (engine/runtime/records/retention.py). Between
passes the worker sleeps `interval` seconds, unless a pass took a full batch (more is
waiting). Any number of workers may run: they claim rows, never share one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from engine.metadata.settings import SiteSettings
from engine.runtime.flows.email import EmailSender
from engine.runtime.flows.outbox import EMAIL, WEBHOOK, DeliveryRun, Sender, deliver_due
from engine.runtime.flows.timers import TimerKinds, TimerRun, prepare, run_due_timers
from engine.runtime.flows.webhooks import WebhookSender
from engine.runtime.records import Records
from engine.runtime.records.retention import PRUNE_EVERY, prune_log
from engine.runtime.reports.snapshots import ScheduledSnapshots

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
"""Seconds between two passes that found less than a batch to do."""
DEFAULT_BATCH = 100


def default_worker_id() -> str:
    """The host name and process id: what `claimed_by` shows without `--id`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def senders_for(settings: SiteSettings,
                environ: Mapping[str, str] | None = None) -> dict[str, Sender]:
    """The senders settings.yaml makes possible: webhooks always (to public targets and the
    allow-list); email only when `smtp` is set — otherwise emails wait in the outbox."""
    env = os.environ if environ is None else environ
    senders: dict[str, Sender] = {WEBHOOK: WebhookSender(settings.webhooks, environ=env)}
    if settings.smtp is not None:
        senders[EMAIL] = EmailSender(settings.smtp, environ=env)
    return senders


@dataclass(frozen=True)
class Pass:
    """What one pass did."""

    timers: TimerRun
    deliveries: DeliveryRun
    batch: int

    @property
    def busy(self) -> bool:
        """Whether a batch was full: more may be due right away."""
        return self.timers.claimed >= self.batch or self.deliveries.claimed >= self.batch

    def describe(self) -> str:
        t, d = self.timers, self.deliveries
        return (f"timers: {t.done} done, {t.failed} failed; outbox: {d.sent} sent, "
                f"{d.retrying} to retry, {d.exhausted} exhausted")


class Worker:
    """Runs passes for one records service. `clock`: the time of each pass (the records
    service's by default, which tests travel with)."""

    def __init__(self, records: Records, senders: Mapping[str, Sender] | None = None, *,
                 worker_id: str | None = None, batch: int = DEFAULT_BATCH,
                 kinds: TimerKinds | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.records = records
        self.senders = dict(senders_for(records.model.settings) if senders is None
                            else senders)
        self.worker_id = worker_id or default_worker_id()
        self.batch = batch
        self.kinds = kinds
        self.clock = clock or (lambda: records.clock())
        self.snapshots = ScheduledSnapshots(records)
        self.pruned_at: datetime | None = None
        """When this worker last pruned the change log (once an hour: PRUNE_EVERY)."""

    def run_once(self, now: datetime | None = None) -> Pass:
        """One pass: the timers that come from no write set (a flow's next holiday
        dates), the due timers, then the due outbox messages."""
        at = self.clock() if now is None else now
        prepare(self.records, at, self.kinds)
        taken = self.snapshots(at)  # settings.yaml pipeline_snapshots: once per period
        if taken is not None:
            log.info("worker %s: pipeline snapshot %s taken (%s deals)", self.worker_id,
                     taken.id, taken.deals)
        self._prune(at)
        timers = run_due_timers(self.records, at, worker_id=self.worker_id, batch=self.batch,
                                kinds=self.kinds)
        deliveries = deliver_due(self.records.engine, at, self.senders,
                                 worker_id=self.worker_id, batch=self.batch)
        return Pass(timers, deliveries, self.batch)

    def _prune(self, at: datetime) -> None:
        if self.pruned_at is not None and at - self.pruned_at < PRUNE_EVERY:
            return
        deleted = prune_log(self.records, at)
        self.pruned_at = at
        if deleted:
            log.info("worker %s: %s change log rows older than %s days deleted",
                     self.worker_id, deleted, self.records.model.settings.changes_keep_days)

    def run(self, stop: threading.Event, interval: float = DEFAULT_INTERVAL,
            on_pass: Callable[[Pass], None] | None = None) -> int:
        """Passes until `stop` is set (checked between passes); the number of passes. A
        pass that fails (the database is away) is logged, and the next one tries again."""
        passes = 0
        while not stop.is_set():
            busy = False
            try:
                done = self.run_once()
            except Exception:
                log.exception("worker %s: the pass failed; trying again in %s s",
                              self.worker_id, interval)
            else:
                busy = done.busy
                if on_pass is not None:
                    on_pass(done)
            passes += 1
            if not busy:
                stop.wait(interval)
        return passes

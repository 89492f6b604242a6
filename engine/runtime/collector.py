"""Bulk work and Python's cycle collector.

An import allocates a few containers per row (the row's values, its audit and change-log
rows, its record change) and frees nearly all of them by reference counting. The cycle
collector does not know that: by default it runs a young collection every 700 net new
containers, and every so often a full one that walks every object the process holds (the
model, the schema, SQLAlchemy's caches: well over 100,000). Over a million rows that was a
fifth of the import's CPU time (bench/RESULTS.md).

While bulk work runs, `bulk_work()` lets the youngest generation grow to `BULK_THRESHOLD`
net new containers before a collection. Cycles are still collected, in fewer, larger
passes. What the threshold holds back is garbage in cycles only, and bulk work makes a
little of it per batch, not per row: SQLAlchemy statements built for the batch (their bound
parameters hold the batch's lists of ids). So few new containers stay behind per batch
that the threshold would not be reached in millions of rows, and those lists would pile up
(a 1,000,000-row import's peak RSS grew by a fifth): `batch_done()` collects the young
generations after each batch, a pass over the little that is new. The peak RSS of an
import is measured in bench/, and stays flat in the file's size.

The setting is the process's: with several bulk jobs at once (the server's background
imports), the first to start raises it and the last to end puts back what was there before.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 100_000

_lock = threading.Lock()
_running = 0
_saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def bulk_work() -> Iterator[None]:
    """The cycle collector's youngest generation at `BULK_THRESHOLD` (or the process's own
    setting, when that is higher) while the block runs."""
    global _running, _saved
    with _lock:
        if _running == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], BULK_THRESHOLD), *_saved[1:])
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                gc.set_threshold(*_saved)


def batch_done() -> None:
    """After a batch of bulk work: collect what it left in cycles (the young generations
    only: they hold what is new since the last batch)."""
    gc.collect(1)

"""Bulk work and the cycle collector (engine/runtime/collector.py): the youngest
generation's threshold is raised while bulk work runs, put back after it, and kept raised
while any bulk work still runs; an import's batches and a bulk create run under it."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.runtime.collector import BULK_THRESHOLD, batch_done, bulk_work
from tests.conftest import Env
from tests.test_imports_jobs import customers, run, write_csv


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """The process's thresholds, put back after the test whatever it did."""
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_bulk_work_raises_the_young_threshold_and_puts_it_back(
        thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 11, 12)
    with bulk_work():
        assert gc.get_threshold() == (BULK_THRESHOLD, 11, 12)
    assert gc.get_threshold() == (700, 11, 12)


def test_a_higher_threshold_of_the_process_is_kept(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(BULK_THRESHOLD * 2, 10, 10)
    with bulk_work():
        assert gc.get_threshold() == (BULK_THRESHOLD * 2, 10, 10)
    assert gc.get_threshold() == (BULK_THRESHOLD * 2, 10, 10)


def test_put_back_after_a_failure(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), bulk_work():
        raise RuntimeError("the batch failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_bulk_work_in_two_threads_puts_back_once_both_end(
        thresholds: tuple[int, int, int]) -> None:
    """Two imports of the server at once: the first to end must not lower the threshold
    under the other, and the last puts back the process's own."""
    gc.set_threshold(700, 10, 10)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def first() -> None:
        with bulk_work():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with bulk_work():
            second_in.set()
            first_out.wait(5)
            seen["after the first ended"] = gc.get_threshold()[0]

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after the first ended": BULK_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)


def test_an_import_and_a_bulk_create_run_under_it(
        env: Env, tmp_path: Path, thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    seen: list[int] = []

    def watch(unit: Any, changes: Sequence[Any]) -> None:
        seen.append(gc.get_threshold()[0])

    env.records.hooks.on_before_commit("watch", watch)
    a = env.admin.actor()
    job = run(env, write_csv(tmp_path / "accounts.csv", customers(10)), batch_size=4)
    assert (job.status, job.created) == ("done", 10)
    assert seen == [BULK_THRESHOLD] * 3  # the three batches
    assert gc.get_threshold() == (700, 10, 10)

    seen.clear()
    result = env.records.bulk_create(a, "account", [{"name": f"批量 {i}"} for i in range(3)])
    assert result.created == 3
    assert seen == [BULK_THRESHOLD]
    assert gc.get_threshold() == (700, 10, 10)

    seen.clear()
    env.records.create(a, "account", {"name": "一个"})  # a single write: the process's own
    assert seen == [700]


class Knot:
    """An object in a cycle of its own: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_batch_done_frees_what_a_batch_left_in_cycles(
        thresholds: tuple[int, int, int]) -> None:
    with bulk_work():
        knot = Knot()
        gone = weakref.ref(knot)
        del knot
        assert gone() is not None  # the raised threshold collects nothing by itself
        batch_done()
        assert gone() is None


def test_an_import_frees_each_batch_s_cycles_before_the_next_batch(
        env: Env, tmp_path: Path, thresholds: tuple[int, int, int]) -> None:
    """What a batch leaves in cycles (SQLAlchemy statements holding the batch's lists of
    ids) is freed after it: with the raised threshold alone it would stay to the end of
    the import, and a large import's memory would grow with its file."""
    left: list[weakref.ref[Knot]] = []
    alive_at_next_batch: list[bool] = []

    def leave_a_knot(unit: Any, changes: Sequence[Any]) -> None:
        if left:
            alive_at_next_batch.append(left[-1]() is not None)
        left.append(weakref.ref(Knot()))

    env.records.hooks.on_before_commit("knot", leave_a_knot)
    a = env.admin.actor()
    assert run(env, write_csv(tmp_path / "accounts.csv", customers(12)),
               batch_size=4).created == 12
    assert alive_at_next_batch == [False, False]

    left.clear()
    alive_at_next_batch.clear()
    assert env.records.bulk_create(a, "account", [{"name": f"批量 {i}"} for i in range(6)],
                                   batch_size=2).created == 6
    assert alive_at_next_batch == [False, False]

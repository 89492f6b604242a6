"""The flows worker's throughput: N due timers, each updating one record, vs the same
updates in a plain loop through the records service.

One fresh SQLite database of the shipped schema (as the app assembles the service: rollups,
flows) with 2N activities. The worker side schedules N timers and runs `Worker.run_once`
passes until none is due: each timer is claimed, its handler reads its activity and updates
it through the unit of work, and the row is marked done — one transaction per timer. The
plain side reads and updates the other N activities the same way, one `Records.update`
transaction each. Prints both rates and their ratio (target >= 0.5); never asserts a timing.

    .venv/bin/python -m bench.flows_worker [N]      # default 10,000; the issue's figure: 100000
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.env import load_text, machine_info
from bench.report import Row, Section
from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from engine.runtime.flows.timers import Timer, TimerKinds, schedule
from engine.runtime.flows.worker import Worker
from engine.runtime.records import Records
from engine.runtime.records.unit import UnitOfWork
from engine.runtime.schema import apply_plan

NAME = "flows_worker"
TARGET = 0.5
CONFIG = Path(__file__).resolve().parents[1] / "config"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def close(records: Records, activity: int, unit: UnitOfWork | None = None) -> None:
    current = records.get(SYSTEM, "activity", activity)
    records.update(SYSTEM, "activity", activity, {"status": "done"}, current["version"],
                   unit=unit)


def run(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        model = load_model(CONFIG)
        engine = open_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        apply_plan(engine, model)
        records = records_service(engine, model)
        made = records.bulk_create(SYSTEM, "activity", [
            {"subject": f"Call {n}", "kind": "call"} for n in range(2 * count)])
        timed_ids, plain_ids = made.ids[:count], made.ids[count:]
        with records.unit(SYSTEM) as unit:
            for n, activity in enumerate(timed_ids):
                schedule(unit.conn, f"bench:{n}", NOW, kind="close", entity="activity",
                         record_id=activity)

        def handle(unit: UnitOfWork, timer: Timer) -> None:
            assert timer.record_id is not None
            close(records, timer.record_id, unit)

        worker = Worker(records, {}, worker_id="bench", batch=1000,
                        kinds=TimerKinds({"close": handle}))
        start = time.perf_counter()
        done = 0
        while (ran := worker.run_once(NOW).timers.done):
            done += ran
        worker_s = time.perf_counter() - start
        assert done == count

        start = time.perf_counter()
        for activity in plain_ids:
            close(records, activity)
        plain_s = time.perf_counter() - start
        engine.dispose()
    return {"worker": count / worker_s, "plain": count / plain_s}


def section(count: int, say: Callable[[str], None] = print) -> Section:
    """The figures for bench/RESULTS.md (`python -m bench.run --only flows_worker`)."""
    load_before = load_text()
    say(f"flows worker: {count:,} due timers, then {count:,} plain updates")
    rates = run(count)
    ratio = rates["worker"] / rates["plain"]
    row = Row(f"flows worker, {count:,} due timers each updating one activity, SQLite "
              "(updates/s)", f"{rates['worker']:,.0f}", f"{rates['plain']:,.0f}",
              f"{ratio:.2f} (worker / plain loop)", f"≥ {TARGET}", ratio >= TARGET)
    say(f"  {row.benchmark}: ours {row.ours}, baseline {row.baseline}, ratio {row.ratio}")
    notes = [
        "ours: `Worker.run_once` passes until nothing is due; each timer is claimed, its "
        "handler reads its activity and updates it through the unit of work, and the timer "
        "is marked done, one transaction per timer (exactly once for database effects). "
        "baseline: the same read and Records.update of other activities in a plain loop.",
        f"The machine is shared: load average {load_before} before, {load_text()} after."]
    return Section(name=NAME, title="Flows worker: due timers against a plain update loop",
                   rows=[row], notes=notes, machine=machine_info(),
                   data={"timers": count, "rates": rates})


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rates = run(count)
    ratio = rates["worker"] / rates["plain"]
    print(f"flows worker, SQLite, {count:,} due timers each updating one activity: "
          f"worker {rates['worker']:.0f}/s, plain records.update loop {rates['plain']:.0f}/s, "
          f"ratio {ratio:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()

"""Flows' cost: an opportunity update with the shipped flows vs the same update without them.

Two fresh SQLite databases of the shipped schema, each with the same opportunities; one
records service has the flows hook (as the app assembles it), the other the same model with
no flows. Each update moves a deal's stage and amount (what the pipeline's rules and triggers
watch), in its own transaction through `Records.update`. The sides take turns, ROUND updates
each, so load on the shared machine falls on both alike. Prints the medians and the ratio
(target ≤ 1.3); never asserts a timing.

    .venv/bin/python -m bench.flows [UPDATES]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.env import load_text, machine_info
from bench.report import Row, Section
from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from engine.runtime.records import Records
from engine.runtime.schema import apply_plan

NAME = "flows"
TARGET = 1.3
CONFIG = Path(__file__).resolve().parents[1] / "config"
DEALS = 200
ROUND = 50
STAGES = ("qualification", "proposal", "negotiation", "won")


def service(path: Path, flows: bool) -> tuple[Records, list[int]]:
    model = load_model(CONFIG)
    if not flows:
        model = replace(model, flows=())
    engine = open_engine(f"sqlite:///{path}")
    apply_plan(engine, model)
    records = records_service(engine, model)
    account = records.create(SYSTEM, "account", {"name": "Bench"})["id"]
    ids = [records.create(SYSTEM, "opportunity", {"name": f"Deal {n}", "account": account,
                                                  "amount": "1000"})["id"]
           for n in range(DEALS)]
    # each deal has its accepted quote, on both sides: the pipeline's guard lets it be won
    records.bulk_create(SYSTEM, "quote", [
        {"name": f"Quote {n}", "account": account, "opportunity": deal, "status": "accepted"}
        for n, deal in enumerate(ids)])
    return records, ids


def run(updates: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        sides = {"flows": service(Path(folder) / "on.db", True),
                 "no flows": service(Path(folder) / "off.db", False)}
        assert "flows" in sides["flows"][0].hooks.names
        assert "flows" not in sides["no flows"][0].hooks.names
        times: dict[str, list[float]] = {name: [] for name in sides}
        done = 0
        while done < updates:
            for name, (records, ids) in sides.items():
                for n in range(done, done + ROUND):
                    deal = ids[n % len(ids)]
                    current = records.get(SYSTEM, "opportunity", deal)
                    stage = STAGES[(n // len(ids)) % len(STAGES)]
                    start = time.perf_counter()
                    records.update(SYSTEM, "opportunity", deal,
                                   {"stage": stage, "amount": str(1000 + n)},
                                   current["version"])
                    times[name].append(time.perf_counter() - start)
            done += ROUND
        return {name: statistics.median(t) * 1000 for name, t in times.items()}


def section(updates: int, say: Callable[[str], None] = print) -> Section:
    """The figures for bench/RESULTS.md (`python -m bench.run --only flows`)."""
    load_before = load_text()
    say(f"flows: {updates:,} opportunity updates per side, taking turns")
    medians = run(updates)
    ratio = medians["flows"] / medians["no flows"]
    row = Row(f"opportunity update with the shipped flows vs flows off, SQLite, {updates:,} "
              "updates per side, median (ms)", f"{medians['flows']:.2f}",
              f"{medians['no flows']:.2f}", f"{ratio:.2f} (flows / off)", f"≤ {TARGET}",
              ratio <= TARGET)
    say(f"  {row.benchmark}: ours {row.ours}, baseline {row.baseline}, ratio {row.ratio}")
    notes = [
        "Both sides are the records service as the app assembles it (rollups and the other "
        "hooks); the baseline's model has no flows. Each update moves a deal's stage and "
        "amount in its own transaction (Records.update), what config/flows/"
        "opportunity_pipeline.yaml watches: stage rules (the won guard reads the deal's "
        "accepted quotes: every deal has one, on both sides), stage history, the "
        "stage_defaults and won/lost triggers, the team action on entering won and a "
        "crm_automation_run row per rule evaluation.",
        f"The sides take turns, {ROUND} updates each; the machine is shared: load average "
        f"{load_before} before, {load_text()} after."]
    return Section(name=NAME, title="Flows: an opportunity update with and without flows",
                   rows=[row], notes=notes, machine=machine_info(),
                   data={"updates": updates, "median_ms": medians})


def main() -> None:
    updates = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    medians = run(updates)
    ratio = medians["flows"] / medians["no flows"]
    print(f"opportunity update, SQLite, {updates} updates per side, median (ms): "
          f"flows {medians['flows']:.2f}, no flows {medians['no flows']:.2f}, "
          f"ratio {ratio:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()

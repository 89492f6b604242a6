"""Add a field: a new plain field on the loaded opportunity table, through `apply_plan`.

Runs on a copy of the loaded database, three times (three new fields, one per round), and
checks that no round rebuilt the table: the table's and its indexes' root pages stay put and
the file does not grow by a copy of the data. The baseline is SQLite's own
`ALTER TABLE … ADD COLUMN` on another copy.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML

from bench.env import (
    BENCH_DIR,
    CONFIG,
    ENTITY,
    checkpoint,
    count_rows,
    loaded_env,
    machine_info,
    raw_connect,
    remove_db,
    sqlite_url,
)
from bench.report import Row, Section
from engine.metadata import load_model
from engine.runtime.db import open_engine
from engine.runtime.schema import apply_plan, plan_schema

NAME = "add_field"
ROUNDS = 3
LIMIT_S = 1.0


def _add_field(config: Path, name: str) -> None:
    """Append a plain text field to the opportunity entity of the config copy."""
    yaml = YAML()
    path = config / "entities" / f"{ENTITY}.yaml"
    doc = yaml.load(path.read_text())
    doc["fields"][name] = {"type": "text", "max_length": 100,
                           "label": {"en": f"Bench {name}"}}
    with path.open("w") as fh:
        yaml.dump(doc, fh)


def _layout(path: Path) -> tuple[dict[str, int], int]:
    """Root page of the table and of each of its indexes, and the file's page count."""
    conn = sqlite3.connect(path)
    try:
        roots = dict(conn.execute("SELECT name, rootpage FROM sqlite_master "
                                  "WHERE tbl_name = ?", (ENTITY,)).fetchall())
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        return roots, pages
    finally:
        conn.close()


def _copy(source: Path, target: Path) -> None:
    remove_db(target)
    shutil.copyfile(source, target)


def run(n_rows: int, say: Callable[[str], None] = print) -> Section:
    env = loaded_env(n_rows, say)
    env.engine.dispose()
    assert env.path is not None  # loaded_env is the SQLite file
    checkpoint(env.path)
    ours_path = BENCH_DIR / f"addfield-{n_rows}.db"
    raw_path = BENCH_DIR / f"addfield-raw-{n_rows}.db"
    say("copying the loaded database (not timed)")
    _copy(env.path, ours_path)
    _copy(env.path, raw_path)

    ours: list[float] = []
    plan_only: list[float] = []
    raw: list[float] = []
    problems: list[str] = []
    growth: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config"
        shutil.copytree(CONFIG, config)
        engine = open_engine(sqlite_url(ours_path))
        with engine.connect() as conn:  # open the pool's connection outside the timing
            conn.exec_driver_sql("SELECT 1")
        raw_conn = raw_connect(raw_path)
        try:
            for k in range(1, ROUNDS + 1):
                name = f"bench_note_{k}"
                _add_field(config, name)
                model = load_model(config)
                say(f"round {k}: apply_plan adding {ENTITY}.{name}")
                before, pages_before = _layout(ours_path)
                start = time.perf_counter()
                planned = plan_schema(engine, model)
                plan_only.append(time.perf_counter() - start)
                start = time.perf_counter()
                plan = apply_plan(engine, model)
                ours.append(time.perf_counter() - start)
                after, pages_after = _layout(ours_path)
                growth.append(pages_after - pages_before)
                kinds = [(s.kind, s.table, s.column) for s in plan.steps]
                if kinds != [("add_column", ENTITY, name)] or planned.steps != plan.steps:
                    problems.append(f"round {k}: unexpected plan {kinds}")
                moved = {n: (before.get(n), r) for n, r in after.items() if before.get(n) != r}
                if moved:
                    problems.append(f"round {k}: root pages moved (table rebuilt?): {moved}")

                start = time.perf_counter()
                raw_conn.execute("BEGIN IMMEDIATE")
                raw_conn.execute(f"ALTER TABLE {ENTITY} ADD COLUMN {name} VARCHAR(100)")
                raw_conn.execute("COMMIT")
                raw.append(time.perf_counter() - start)
            rows_after = count_rows(engine, ENTITY)
        finally:
            raw_conn.close()
            engine.dispose()
    if rows_after != n_rows:
        problems.append(f"{rows_after} rows after the rounds, expected {n_rows}")
    remove_db(ours_path)
    remove_db(raw_path)

    median, worst, raw_median = statistics.median(ours), max(ours), statistics.median(raw)
    label = f"{n_rows:,}"
    return Section(
        name=NAME,
        title=f"Add a field to the {label}-row opportunity table",
        rows=[Row(f"add a field to {label}-row table (apply_plan, s)",
                  f"{median:.3f} (max {worst:.3f})", f"{raw_median:.4f}",
                  f"{median / raw_median:.0f} x (ours / raw)",
                  "< 1 s, no rebuild", worst < LIMIT_S and not problems)],
        notes=[
            f"ours: `apply_plan(engine, model)` (plan and apply in one write transaction) "
            f"after adding `{ENTITY}.bench_note_k: {{type: text, max_length: 100}}` to a copy "
            f"of config/, {ROUNDS} rounds (one new field each): "
            + ", ".join(f"{t:.3f} s" for t in ours)
            + ". Loading the YAML (`load_model`) is not in the figure.",
            "planning alone (a separate `plan_schema` call just before each apply; it "
            "reflects every table and runs Alembic's comparison) took "
            + ", ".join(f"{t:.3f} s" for t in plan_only)
            + "; the time does not depend on the row count.",
            "baseline: `ALTER TABLE opportunity ADD COLUMN … VARCHAR(100)` through plain "
            "sqlite3 on another copy of the same file: "
            + ", ".join(f"{t * 1000:.1f} ms" for t in raw) + ".",
            "no rebuild: " + ("; ".join(problems) if problems else
                              "the root pages of the table and its 7 indexes were unchanged "
                              "after every round, the row count stayed "
                              f"{n_rows:,}, and the file grew by "
                              + ", ".join(str(g) for g in growth)
                              + " pages per round (a rebuild would copy every row)."),
        ],
        machine=machine_info(),
        data={"rows": n_rows, "ours_s": ours, "plan_s": plan_only, "raw_s": raw,
              "page_growth": growth, "problems": problems},
    )

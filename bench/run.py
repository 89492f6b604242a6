"""Run the benchmarks and rewrite bench/RESULTS.md.

    python -m bench.run [--rows N] [--only NAME[,NAME]] [--requests N] [--dry-run]

Default: every benchmark at 1,000,000 rows; api_list_pg runs when PostgreSQL answers at
CRM_TEST_PG_URL (its data is kept in the schema bench_<rows> for the next run). Each
finished benchmark replaces its section of bench/results.json and RESULTS.md at once, so an
interrupted run keeps what it measured. single_create also measures the checkout named by
CRM_BENCH_BEFORE (a git worktree of an older commit) when it is set.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable

from bench import (
    access_list,
    add_field,
    api_list,
    bulk_insert,
    changes,
    expensive_filters,
    flows,
    flows_worker,
    formula,
    pages,
    reports,
    single_create,
)
from bench.env import REPO, now_text
from bench.report import Section, load, save

DEFAULT_ROWS = 1_000_000
Benchmark = Callable[[argparse.Namespace, Callable[[str], None]], Section | None]

BENCHMARKS: dict[str, Benchmark] = {
    bulk_insert.NAME: lambda a, say: bulk_insert.run(a.rows, say),
    # --rows caps the creates (2,000 by default) for a quick check
    single_create.NAME: lambda a, say: single_create.run(min(a.rows, single_create.CREATES),
                                                         say),
    add_field.NAME: lambda a, say: add_field.run(a.rows, say),
    api_list.NAME: lambda a, say: api_list.run(a.rows, say, a.requests),
    api_list.NAME_PG: lambda a, say: api_list.run_pg(a.rows, say, a.requests),
    formula.NAME: lambda a, say: formula.run(a.rows, say),
    access_list.NAME: lambda a, say: access_list.run(a.rows, say, a.requests),
    access_list.NAME_PG: lambda a, say: access_list.run_pg(a.rows, say, a.requests),
    pages.NAME: lambda a, say: pages.run(a.rows, say),
    expensive_filters.NAME: lambda a, say: expensive_filters.run(a.rows, say),
    # --rows caps the updates (2,000) and the timers (the 100,000)
    flows.NAME: lambda a, say: flows.section(min(a.rows, 2_000), say),
    flows_worker.NAME: lambda a, say: flows_worker.section(min(a.rows, 100_000), say),
    reports.NAME: lambda a, say: reports.run(a.rows, say),
    # --rows below 1,000,000: the export at a tenth of it and at it
    reports.NAME_EXPORT: lambda a, say: reports.section_export(a.rows, say),
    # bench/import.py (a keyword as a name: loaded by importlib)
    "import": lambda a, say: importlib.import_module("bench.import").run(a.rows, say),
    "import_pg": lambda a, say: importlib.import_module("bench.import").run_pg(a.rows, say),
    changes.NAME: lambda a, say: changes.run(a.rows, say),
}


def checkout() -> str:
    """The commit the benchmarks run (`+ uncommitted changes` when engine/, bench/ or
    config/ differ from it, the results aside): figures of a shared checkout say what code
    they measured."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "engine", "bench",
                "config", ":(exclude)bench/results.json", ":(exclude)bench/RESULTS.md")
    return f"commit {commit}" + (" + uncommitted changes" if dirty else "")


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help="opportunities in the table (default 1,000,000)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--requests", type=int, default=api_list.REQUESTS,
                        help="timed requests per route in api_list (default 300)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the figures only; leave RESULTS.md and results.json alone")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    if args.rows < 1 or args.requests < 20:
        parser.error("--rows must be at least 1 and --requests at least 20")
    command = shlex.join(["python", "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)])
    before = os.environ.get(single_create.BEFORE_ENV)
    if before and single_create.NAME in names:
        command = f"{single_create.BEFORE_ENV}={shlex.quote(before)} {command}"
    code = checkout()
    for name in names:
        _say(f"{name}: {args.rows:,} rows")
        section = BENCHMARKS[name](args, _say)
        if section is None:
            continue
        section.command = command
        section.date = f"{now_text()}, {code}"
        if not args.dry_run:
            sections = load()  # another run may have saved its sections meanwhile
            sections[name] = section
            save(sections, list(BENCHMARKS))
        for row in section.rows:
            _say(f"  {row.benchmark}: ours {row.ours}, baseline {row.baseline}, "
                 f"ratio {row.ratio}, target {row.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

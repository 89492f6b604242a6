"""Benchmark results: kept in bench/results.json, rendered into bench/RESULTS.md.

Each benchmark's section is replaced when it runs again, so `--only NAME` refreshes one
section and keeps the others with the command and machine that produced them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.env import BENCH_DIR

RESULTS_JSON = BENCH_DIR / "results.json"
RESULTS_MD = BENCH_DIR / "RESULTS.md"


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: informational, no target


@dataclass
class Section:
    """What one benchmark measured, how, and on which machine."""

    name: str
    title: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    command: str = ""
    date: str = ""
    machine: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # raw figures, for later comparison

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Section:
        rows = [Row(**r) for r in raw.pop("rows")]
        return cls(rows=rows, **raw)


def load(path: Path = RESULTS_JSON) -> dict[str, Section]:
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {name: Section.from_json(s) for name, s in raw.items()}


def save(sections: dict[str, Section], order: list[str], json_path: Path = RESULTS_JSON,
         md_path: Path = RESULTS_MD) -> None:
    ordered = {n: sections[n] for n in order if n in sections}
    ordered |= {n: s for n, s in sections.items() if n not in ordered}
    json_path.write_text(json.dumps({n: asdict(s) for n, s in ordered.items()},
                                    indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(render(list(ordered.values())))


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def render(sections: list[Section]) -> str:
    out = ["# Benchmark results", "",
           "Written by `python -m bench.run` (`make bench`); do not edit by hand. Figures are "
           "from one machine and are quoted as ratios against a raw baseline measured in the "
           "same run on the same machine. Tests never assert timings.", "",
           "| benchmark | ours | baseline | ratio | target | met? |",
           "| --- | --- | --- | --- | --- | --- |"]
    for s in sections:
        for r in s.rows:
            out.append(f"| {r.benchmark} | {r.ours} | {r.baseline} | {r.ratio} | {r.target} "
                       f"| {_met(r.met)} |")
    machines = {json.dumps(s.machine, sort_keys=True) for s in sections}
    if len(machines) == 1 and sections:
        out += ["", "## Machine", "", *_machine_lines(sections[0].machine)]
    for s in sections:
        out += ["", f"## {s.title}", "", f"Command: `{s.command}` ({s.date})", ""]
        if len(machines) > 1:
            out += ["Machine:", "", *_machine_lines(s.machine), ""]
        out += [f"- {n}" for n in s.notes]
    return "\n".join(out) + "\n"


def _machine_lines(machine: dict[str, str]) -> list[str]:
    return [f"- {k}: {v}" for k, v in machine.items()]

"""Expensive filters: 40 at once from one user must not stall everyone else's pages.

A real `crm serve` (uvicorn, one worker, the shipped config) over the api_list database
(bench/opportunity-<rows>.db). One user sends a short, legal, expensive filter
(`?filter=LEN(SUBSTITUTE(SUBSTITUTE(SUBSTITUTE(name, "e", 20 e's)...))) > 0`, seconds of work
per thousand rows) from 40 clients at once, each asking again as soon as it is answered,
for DURATION seconds; meanwhile a second user asks for the list page of the API benchmark
(`GET /api/opportunity?page_size=50&sort=-amount`) every PAUSE seconds. Measured: that
user's latency (target: every answer within 1 s), what the 40 clients got (429 beyond the
user's share, 503 at the time limit), and how long the server takes to stop on SIGTERM
while the expensive queries run. Run twice: with the shipped settings (query_time_limit 10,
requests_per_user 8) and, for comparison, with the per-user share lifted
(requests_per_user: 1000), where the 40 requests take the whole thread pool.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.env import (
    CONFIG,
    ENTITY,
    free_port,
    load_text,
    loaded_env,
    machine_info,
    percentile,
    wait_healthy,
)
from bench.report import Row, Section
from engine.runtime.errors import NotFound
from engine.runtime.users import Users

NAME = "expensive_filters"
CLIENTS = 40
DURATION = 30.0
PAUSE = 0.25
TARGET_MS = 1000.0
MIN_SAMPLES = 5
_MANY_E = "e" * 20
EXPENSIVE = (f'LEN(SUBSTITUTE(SUBSTITUTE(SUBSTITUTE(name, "e", "{_MANY_E}"), "e", "{_MANY_E}"), '
             f'"e", "{_MANY_E}")) = 0')  # no row matches: every query scans them all
NORMAL = f"/api/{ENTITY}?page_size=50&sort=-amount"
CRM = str(Path(sys.executable).parent / "crm")


@dataclass
class Phase:
    label: str
    idle_ms: list[float] = field(default_factory=list)
    busy_ms: list[float] = field(default_factory=list)
    normal_failed: Counter[str] = field(default_factory=Counter)
    heavy: Counter[str] = field(default_factory=Counter)
    stop_seconds: float = 0.0


def _tokens(env_url_rows: int, say: Callable[[str], None]) -> tuple[str, str]:
    env = loaded_env(env_url_rows, say)
    users = Users(env.engine, env.records.schema)
    for name in ("heavy", "normal"):
        try:
            users.by_name(name)
        except NotFound:
            users.add(name, ["admin"])
    tokens = users.new_token("heavy", label="bench"), users.new_token("normal", label="bench")
    env.engine.dispose()
    return tokens


@contextmanager
def _served(db_url: str, config: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    environ = {**os.environ, "CRM_CONFIG": str(config), "CRM_DATABASE_URL": db_url,
               "CRM_SECRET_KEY": "bench-secret-key-" + "x" * 32}
    with log.open("wb") as out:
        proc = subprocess.Popen([CRM, "serve", "--port", str(port)], env=environ,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, "crm serve", 120)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _normal_get(client: httpx.Client, base: str, phase: Phase, into: list[float]) -> None:
    start = time.perf_counter()
    try:
        response = client.get(base + NORMAL)
        status = str(response.status_code)
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    into.append((time.perf_counter() - start) * 1000)
    if status != "200":
        phase.normal_failed[status] += 1


def _attack(base: str, token: str, stop: threading.Event, phase: Phase,
            lock: threading.Lock) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        while not stop.is_set():
            try:
                status = str(client.get(f"{base}/api/{ENTITY}",
                                        params={"filter": EXPENSIVE}).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if stop.is_set():
                return  # answers after the window are the shutdown's, not counted here
            with lock:
                phase.heavy[status] += 1
            if status == "429":
                time.sleep(0.05)  # a client told to wait, waiting a little


def _run_phase(label: str, db_url: str, config: Path, tokens: tuple[str, str],
               logs: Path, say: Callable[[str], None]) -> Phase:
    phase = Phase(label)
    heavy_token, normal_token = tokens
    log = logs / f"serve-{time.time_ns()}.log"
    with _served(db_url, config, log) as (base, proc), httpx.Client(
            headers={"Authorization": f"Bearer {normal_token}"}, timeout=120) as normal:
        for _ in range(5):  # warm-up
            _normal_get(normal, base, phase, [])
        phase.normal_failed.clear()
        for _ in range(40):
            _normal_get(normal, base, phase, phase.idle_ms)
            time.sleep(PAUSE)
        say(f"  {label}: idle p50 {_percentile(phase.idle_ms, 50):.1f} ms; "
            f"{CLIENTS} expensive clients for {DURATION:.0f} s")
        stop = threading.Event()
        lock = threading.Lock()
        attackers = [threading.Thread(target=_attack, args=(base, heavy_token, stop, phase, lock),
                                      daemon=True) for _ in range(CLIENTS)]
        for t in attackers:
            t.start()
        time.sleep(1.0)  # let them fill the server
        end = time.monotonic() + DURATION
        # At least MIN_SAMPLES answers: without the share, each can take most of the window.
        while time.monotonic() < end or (len(phase.busy_ms) < MIN_SAMPLES
                                         and time.monotonic() < end + 3 * DURATION):
            _normal_get(normal, base, phase, phase.busy_ms)
            time.sleep(PAUSE)
        # Stop the server while the expensive queries still run (no new ones are sent).
        stop.set()
        started = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=120)
        phase.stop_seconds = time.perf_counter() - started
        for t in attackers:
            t.join(timeout=30)
    errors = [line for line in log.read_text(errors="replace").splitlines()
              if "Error" in line or "unexpected" in line]
    if errors:
        say(f"  {label}: the server logged errors:\n" + "\n".join(errors[-20:]))
    say(f"  {label}: busy p50 {_percentile(phase.busy_ms, 50):.1f} ms, max "
        f"{max(phase.busy_ms):.1f} ms, failed {dict(phase.normal_failed)}; expensive answers "
        f"{dict(phase.heavy)}; stopped in {phase.stop_seconds:.1f} s")
    return phase


def _percentile(values: list[float], p: int) -> float:
    return percentile(values, p) if len(values) > 1 else max(values, default=0.0)


def _config_with(tmp: Path, **settings: object) -> Path:
    config = tmp / "config"
    shutil.copytree(CONFIG, config)
    with (config / "settings.yaml").open("a", encoding="utf-8") as f:
        for key, value in settings.items():
            f.write(f"{key}: {value}\n")
    return config


def _rows(phase: Phase, n_rows: int, target: bool) -> list[Row]:
    busy = phase.busy_ms
    worst = max(busy)
    met = worst <= TARGET_MS and not phase.normal_failed
    heavy = ", ".join(f"{n} x {s}" for s, n in sorted(phase.heavy.items()))
    return [
        Row(f"{NORMAL} of another user, every {PAUSE} s while {CLIENTS} expensive filters run "
            f"at once for {DURATION:.0f} s, {n_rows:,} rows, SQLite, {phase.label}: "
            f"p50 / p95 / max (ms)",
            f"{_percentile(busy, 50):.1f} / {_percentile(busy, 95):.1f} / {worst:.1f} "
            f"({len(busy)} requests, {sum(phase.normal_failed.values())} failed)",
            f"{_percentile(phase.idle_ms, 50):.1f} (p50 idle)",
            f"{worst / _percentile(phase.idle_ms, 50):.0f} x (max / idle p50)",
            f"every answer ≤ {TARGET_MS:.0f} ms" if target else "comparison",
            met if target else None),
        Row(f"same, {phase.label}: the expensive requests' answers", heavy, "—", "—",
            "429 beyond the share, 503 at the limit" if target else "informational", None),
        Row(f"same, {phase.label}: SIGTERM to exit while they run (s)",
            f"{phase.stop_seconds:.1f}", "—", "—", "a few seconds" if target else "informational",
            phase.stop_seconds <= 10 if target else None),
    ]


def run(n_rows: int, say: Callable[[str], None] = print) -> Section:
    env = loaded_env(n_rows, say)
    db_url = env.url
    env.engine.dispose()
    tokens = _tokens(n_rows, say)
    with tempfile.TemporaryDirectory() as tmp:
        shipped = _run_phase("shipped settings (query_time_limit 10 s, requests_per_user 8)",
                             db_url, CONFIG, tokens, Path(tmp), say)
        lifted = _run_phase("per-user share lifted (requests_per_user 1000)", db_url,
                            _config_with(Path(tmp), requests_per_user=1000), tokens, Path(tmp),
                            say)
    notes = [
        f"One `crm serve` worker on the api_list database; {CLIENTS} threads of one admin user "
        f"send `?filter={EXPENSIVE[:60]}…` (each runs past the 10 s limit) and ask again when "
        "answered; another admin user's list is timed. Machine load at the end: "
        f"{load_text()}.",
        "Without the share, the 40 requests hold all 40 threads of the pool (anyio's default) "
        "and all 15 pooled database connections, and the list waits for one of them to reach "
        "its time limit; requests that wait out the pool's 30 s timeout answer 503 busy.",
    ]
    return Section(NAME, "Expensive filters against the thread pool and shutdown",
                   _rows(shipped, n_rows, True) + _rows(lifted, n_rows, False), notes,
                   machine=machine_info(),
                   data={"shipped_busy_ms": shipped.busy_ms, "lifted_busy_ms": lifted.busy_ms,
                         "shipped_stop_s": shipped.stop_seconds,
                         "lifted_stop_s": lifted.stop_seconds})

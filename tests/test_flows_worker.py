"""The flows worker (engine/runtime/flows/worker.py) and `crm worker` / `crm webhook`: a pass
runs the due timers, then sends what they enqueued; the loop stops when told; the senders
follow settings.yaml; the CLI runs a pass, lists the delivery log and replays. Both
databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result

from engine.cli import main
from engine.metadata.delivery import SmtpSettings, WebhookSettings
from engine.metadata.settings import SiteSettings
from engine.runtime.access import SYSTEM
from engine.runtime.flows.email import EmailSender
from engine.runtime.flows.outbox import EMAIL, SENT, WEBHOOK, messages
from engine.runtime.flows.timers import DONE, Timer, TimerKinds, schedule, timer_table
from engine.runtime.flows.webhooks import (
    IDEMPOTENCY_HEADER,
    WebhookSender,
    enqueue_webhook,
    verify,
)
from engine.runtime.flows.worker import Worker, senders_for
from engine.runtime.records.unit import UnitOfWork
from tests.conftest import Env, EnvFactory
from tests.test_flows_webhooks import Receiver, receiver  # noqa: F401 (a fixture)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def escalate_kinds(env: Env, url: str) -> TimerKinds:
    """A timer that changes its record and tells another system, as an escalation does."""
    records = env.records

    def escalate(unit: UnitOfWork, timer: Timer) -> None:
        assert timer.entity is not None and timer.record_id is not None
        row = records.get(SYSTEM, timer.entity, timer.record_id)
        after = records.update(SYSTEM, timer.entity, timer.record_id,
                               {"status": "done"}, row["version"], unit=unit)
        enqueue_webhook(unit.conn, f"{timer.key}:webhook", url, after,
                        event="activity.escalated", secret_env="CRM_HOOK_SECRET", now=unit.now)

    return TimerKinds({"escalate": escalate})


def test_a_pass_runs_the_timer_then_sends_what_it_enqueued(env: Env,
                                                           receiver: Receiver) -> None:  # noqa: F811
    a = env.admin.actor()
    call = env.records.create(a, "activity", {"subject": "Call back", "kind": "call"})
    with env.records.unit(SYSTEM) as unit:
        schedule(unit.conn, f"escalate:{call['id']}", T0, kind="escalate",
                 entity="activity", record_id=call["id"])
    env.records.clock = lambda: T0  # the worker's time is the service's
    hooks = WebhookSender(WebhookSettings(allow=("127.0.0.1",)),
                          environ={"CRM_HOOK_SECRET": "k"})
    worker = Worker(env.records, {WEBHOOK: hooks}, worker_id="w1",
                    kinds=escalate_kinds(env, receiver.url))

    done = worker.run_once()
    assert (done.timers.done, done.deliveries.sent) == (1, 1) and not done.busy
    assert done.describe() == ("timers: 1 done, 0 failed; outbox: 1 sent, 0 to retry, "
                               "0 exhausted")
    assert env.records.get(a, "activity", call["id"])["status"] == "done"
    [(_, headers, body)] = receiver.got
    assert headers[IDEMPOTENCY_HEADER] == f"escalate:{call['id']}:webhook"
    assert verify(b"k", body, headers["X-MetaCRM-Signature"])
    assert b'"status":"done"' in body
    again = worker.run_once()
    assert (again.timers.claimed, again.deliveries.claimed) == (0, 0)
    assert len(receiver.got) == 1


def test_the_loop_runs_until_stopped(env: Env) -> None:
    kinds = TimerKinds({"log": lambda unit, timer: None})
    worker = Worker(env.records, {}, worker_id="loop", kinds=kinds, batch=2)
    stop = threading.Event()
    seen: list[int] = []
    thread = threading.Thread(target=worker.run, args=(stop, 0.05),
                              kwargs={"on_pass": lambda p: seen.append(p.timers.done)})
    thread.start()
    try:
        with env.engine.begin() as conn:
            for i in range(5):
                schedule(conn, f"k{i}", datetime.now(UTC) - timedelta(seconds=1), kind="log")
        deadline = time.monotonic() + 30
        while sum(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert sum(seen) == 5
    t = timer_table()
    with env.engine.connect() as conn:
        assert set(conn.execute(t.select().with_only_columns(t.c.state)).scalars()) == {DONE}


def test_senders_follow_the_settings() -> None:
    plain = senders_for(SiteSettings(), environ={})
    assert set(plain) == {WEBHOOK}  # no smtp: emails wait in the outbox
    smtp = SmtpSettings(host="mail", sender="crm@example.com")
    both = senders_for(SiteSettings(smtp=smtp, webhooks=WebhookSettings(("10.0.0.0/8",))),
                       environ={})
    assert set(both) == {WEBHOOK, EMAIL}
    email = both[EMAIL]
    webhook = both[WEBHOOK]
    assert isinstance(email, EmailSender) and email.settings == smtp
    assert isinstance(webhook, WebhookSender)
    assert webhook.settings.allow == ("10.0.0.0/8",)


# -- crm worker, crm webhook ---------------------------------------------------------------


def crm(config: Path, db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), "--db", db_url, *args])


def test_crm_worker_once_sends_lists_and_replays(config_dir: Path, make_env: EnvFactory,
                                                 db_url: str,
                                                 receiver: Receiver) -> None:  # noqa: F811
    settings = config_dir / "settings.yaml"
    settings.write_text(settings.read_text(encoding="utf-8")
                        + "webhooks:\n  allow: [127.0.0.1]\n", encoding="utf-8")
    env = make_env(config_dir)
    with env.engine.begin() as conn:
        enqueue_webhook(conn, "deal:1:won", receiver.url, {"id": 1, "stage": "won"})

    ran = crm(config_dir, db_url, "worker", "--once", "--id", "cli-1")
    assert ran.exit_code == 0, ran.output
    assert "outbox: 1 sent, 0 to retry, 0 exhausted" in ran.output
    assert len(receiver.got) == 1
    with env.engine.connect() as conn:
        [message] = messages(conn)
    assert message["state"] == SENT and message["claimed_by"] == "cli-1"

    listed = crm(config_dir, db_url, "webhook", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith(f"{message['id']}\tsent\t1\tdeal:1:won\t{receiver.url}\t")
    assert crm(config_dir, db_url, "webhook", "list", "--state", "exhausted").output == (
        "no webhooks\n")

    replayed = crm(config_dir, db_url, "webhook", "replay", str(message["id"]))
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output == f"webhook {message['id']}: pending; `crm worker` sends it\n"
    again = crm(config_dir, db_url, "webhook", "replay", str(message["id"]))
    assert again.exit_code == 1 and "is pending already" in again.output
    missing = crm(config_dir, db_url, "webhook", "replay", "999")
    assert missing.exit_code == 1 and "no webhook 999" in missing.output
    assert crm(config_dir, db_url, "worker", "--once").exit_code == 0
    assert len(receiver.got) == 2
    assert receiver.got[0][2] == receiver.got[1][2]  # the same body, the same key
    assert receiver.got[1][1][IDEMPOTENCY_HEADER] == "deal:1:won"


CRM = str(Path(sys.executable).with_name("crm"))


def test_crm_worker_loops_until_sigterm(config_dir: Path, make_env: EnvFactory, db_url: str,
                                        tmp_path: Path,
                                        receiver: Receiver) -> None:  # noqa: F811
    settings = config_dir / "settings.yaml"
    settings.write_text(settings.read_text(encoding="utf-8")
                        + "webhooks:\n  allow: [127.0.0.1]\n", encoding="utf-8")
    env = make_env(config_dir)
    environ = {**os.environ, "CRM_CONFIG": str(config_dir), "CRM_DATABASE_URL": db_url}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([CRM, "worker", "--id", "looping", "--interval", "0.2"],
                                cwd=tmp_path, env=environ, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b"every 0.2 s" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with env.engine.begin() as conn:  # enqueued while it runs: the next pass sends it
            enqueue_webhook(conn, "late", receiver.url, {"n": 1})
        while not receiver.got:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "worker looping: every 0.2 s; SIGTERM or Ctrl-C stops" in text
    assert "outbox: 1 sent, 0 to retry, 0 exhausted" in text
    assert text.rstrip().endswith("worker looping: stopped")
    assert len(receiver.got) == 1

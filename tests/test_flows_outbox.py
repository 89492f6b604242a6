"""The outbox (engine/runtime/flows/outbox.py): messages enqueued in the write's transaction
(gone with a rollback, one per key), delivered after commit at least once, retried with
exponential backoff, exhausted past the bound or at once when refused, replayed; a claimed
message is leased, so two workers do not send it twice and a dead worker's claim comes
back. Both databases."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from engine.runtime.access import SYSTEM
from engine.runtime.flows import outbox
from engine.runtime.flows.outbox import (
    EMAIL,
    EXHAUSTED,
    LEASE,
    PENDING,
    SENT,
    WEBHOOK,
    Delivery,
    PermanentFailure,
    deliver_due,
    enqueue,
    messages,
    replay,
)
from tests.conftest import Env

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Inbox:
    """A sender that keeps what it was given, failing while told to."""

    def __init__(self) -> None:
        self.got: list[Delivery] = []
        self.failing: Exception | None = None
        self.lock = threading.Lock()

    def __call__(self, delivery: Delivery) -> None:
        with self.lock:
            self.got.append(delivery)
        if self.failing is not None:
            raise self.failing


def log(env: Env) -> dict[str, dict[str, Any]]:
    with env.engine.connect() as conn:
        return {m["key"]: m for m in messages(conn, limit=10_000)}


def test_enqueue_keeps_one_message_per_key_in_the_writes_transaction(env: Env) -> None:
    with env.records.unit(SYSTEM) as unit:
        assert enqueue(unit.conn, WEBHOOK, "k1", {"url": "http://x", "body": {
            "amount": Decimal("12.50"), "close": date(2026, 3, 1), "at": T0, "tags": ("a",)}},
            now=T0)
        assert not enqueue(unit.conn, WEBHOOK, "k1", {"url": "http://other"}, now=T0)
        assert enqueue(unit.conn, EMAIL, "k2", {"to": ["a@example.com"]}, now=T0)
    with pytest.raises(RuntimeError), env.records.unit(SYSTEM) as unit:
        enqueue(unit.conn, WEBHOOK, "lost", {}, now=T0)
        raise RuntimeError("the write fails")
    got = log(env)
    assert set(got) == {"k1", "k2"}
    # the record's values as the JSON API writes them: exact decimals, ISO dates
    assert got["k1"]["payload"] == {"url": "http://x", "body": {
        "amount": "12.50", "close": "2026-03-01", "at": "2026-03-02T09:00:00Z", "tags": ["a"]}}
    assert got["k1"]["state"] == PENDING and got["k1"]["attempts"] == 0
    assert got["k1"]["created_at"] == T0 and got["k1"]["next_attempt_at"] == T0
    with pytest.raises(ValueError, match="unknown outbox kind 'sms'"), env.engine.begin() as c:
        enqueue(c, "sms", "k3", {})


def test_due_messages_are_sent_once_with_their_key_by_kind(env: Env) -> None:
    with env.engine.begin() as conn:
        enqueue(conn, WEBHOOK, "w1", {"n": 1}, now=T0)
        enqueue(conn, WEBHOOK, "w2", {"n": 2}, now=T0 + timedelta(minutes=5))
        enqueue(conn, EMAIL, "e1", {"n": 3}, now=T0)
    hooks = Inbox()
    run = deliver_due(env.engine, T0, {WEBHOOK: hooks}, worker_id="w")
    assert (run.sent, run.retrying, run.exhausted) == (1, 0, 0)
    assert [(d.key, d.kind, d.payload, d.attempts) for d in hooks.got] == [
        ("w1", WEBHOOK, {"n": 1}, 0)]
    got = log(env)
    assert got["w1"]["state"] == SENT and got["w1"]["sent_at"] == T0
    assert got["w1"]["attempts"] == 1 and got["w1"]["next_attempt_at"] is None
    assert got["e1"]["state"] == PENDING  # no email sender here: it waits
    assert deliver_due(env.engine, T0, {WEBHOOK: hooks}).claimed == 0
    assert deliver_due(env.engine, T0 + timedelta(minutes=5), {WEBHOOK: hooks}).sent == 1
    mails = Inbox()
    assert deliver_due(env.engine, T0, {EMAIL: mails}).sent == 1
    assert [d.key for d in hooks.got] == ["w1", "w2"] and [d.key for d in mails.got] == ["e1"]


def test_failures_back_off_exponentially_then_exhaust_and_replay_delivers(env: Env) -> None:
    with env.engine.begin() as conn:
        enqueue(conn, WEBHOOK, "w", {"n": 1}, now=T0)
    hooks = Inbox()
    hooks.failing = ConnectionError("receiver down")
    at = T0
    for attempt in range(1, 4):
        run = deliver_due(env.engine, at, {WEBHOOK: hooks}, max_attempts=4)
        assert run.retrying == 1
        row = log(env)["w"]
        assert row["attempts"] == attempt and row["state"] == PENDING
        assert row["last_error"] == "ConnectionError: receiver down"
        wait = timedelta(minutes=2 ** (attempt - 1))  # 1, 2, 4 minutes
        assert row["next_attempt_at"] == at + wait
        assert deliver_due(env.engine, at + wait - timedelta(seconds=1),
                           {WEBHOOK: hooks}).claimed == 0
        at += wait
    assert deliver_due(env.engine, at, {WEBHOOK: hooks}, max_attempts=4).exhausted == 1
    row = log(env)["w"]
    assert row["state"] == EXHAUSTED and row["attempts"] == 4 and row["next_attempt_at"] is None
    assert deliver_due(env.engine, at + timedelta(days=9), {WEBHOOK: hooks}).claimed == 0
    assert len(hooks.got) == 4 and {d.key for d in hooks.got} == {"w"}

    hooks.failing = None
    with env.engine.begin() as conn:
        assert replay(conn, row["id"], now=at)
        assert not replay(conn, row["id"], now=at)  # pending already
    row = log(env)["w"]
    assert row["state"] == PENDING and row["attempts"] == 0 and row["last_error"] is None
    assert deliver_due(env.engine, at, {WEBHOOK: hooks}).sent == 1
    assert log(env)["w"]["state"] == SENT
    with env.engine.begin() as conn:  # a sent message can be sent again on purpose
        assert replay(conn, row["id"], now=at)
    assert deliver_due(env.engine, at, {WEBHOOK: hooks}).sent == 1
    assert len(hooks.got) == 6


def test_a_permanent_failure_exhausts_at_once(env: Env) -> None:
    with env.engine.begin() as conn:
        enqueue(conn, WEBHOOK, "w", {}, now=T0)
    hooks = Inbox()
    hooks.failing = PermanentFailure("target refused")
    assert deliver_due(env.engine, T0, {WEBHOOK: hooks}).exhausted == 1
    row = log(env)["w"]
    assert (row["state"], row["attempts"], row["last_error"]) == (EXHAUSTED, 1, "target refused")


def test_a_claim_is_leased_and_comes_back_when_its_worker_dies(env: Env) -> None:
    with env.engine.begin() as conn:
        enqueue(conn, WEBHOOK, "w", {}, now=T0)
        claimed = outbox._claim(conn, T0, [WEBHOOK], "dead", 10)  # then the worker dies
    assert [d.key for d in claimed] == ["w"]
    hooks = Inbox()
    assert deliver_due(env.engine, T0 + LEASE - timedelta(seconds=1), {WEBHOOK: hooks}).claimed == 0
    assert deliver_due(env.engine, T0 + LEASE, {WEBHOOK: hooks}, worker_id="alive").sent == 1
    row = log(env)["w"]
    assert row["state"] == SENT and row["claimed_by"] == "alive" and row["attempts"] == 1


def test_two_workers_deliver_each_message_once(env: Env) -> None:
    count = 200
    with env.engine.begin() as conn:
        for i in range(count):
            enqueue(conn, WEBHOOK, f"w{i}", {"n": i}, now=T0)
    hooks = Inbox()
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(name: str) -> None:
        try:
            start.wait()
            while deliver_due(env.engine, T0, {WEBHOOK: hooks}, worker_id=name,
                              batch=10).claimed:
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Counter(d.key for d in hooks.got) == Counter({f"w{i}": 1 for i in range(count)})
    assert {m["state"] for m in log(env).values()} == {SENT}


def test_messages_lists_newest_first_by_kind_and_state(env: Env) -> None:
    with env.engine.begin() as conn:
        enqueue(conn, WEBHOOK, "a", {}, now=T0)
        enqueue(conn, EMAIL, "b", {}, now=T0)
        enqueue(conn, WEBHOOK, "c", {}, now=T0)
        assert [m["key"] for m in messages(conn)] == ["c", "b", "a"]
        assert [m["key"] for m in messages(conn, kind=WEBHOOK)] == ["c", "a"]
        assert [m["key"] for m in messages(conn, state=SENT)] == []
        assert [m["key"] for m in messages(conn, limit=1)] == ["c"]


def test_a_dry_run_leaves_no_message_and_no_timer(env: Env) -> None:
    from engine.runtime.flows.timers import schedule, timer_table

    def work(unit: Any) -> bool:
        schedule(unit.conn, "would-remind", T0, kind="log")
        return enqueue(unit.conn, WEBHOOK, "would-send", {"n": 1}, now=T0)

    assert env.records.dry_run(SYSTEM, work).result is True
    assert log(env) == {}
    with env.engine.connect() as conn:
        assert conn.execute(timer_table().select()).first() is None
    assert deliver_due(env.engine, T0, {WEBHOOK: Inbox()}).claimed == 0

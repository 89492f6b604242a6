"""Links of an entity to itself (engine/runtime/records/trees.py): no record ends up under
itself, also when two writes race. SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from sqlalchemy import event

from engine.runtime.errors import Invalid
from tests.conftest import Env


def test_a_record_cannot_go_under_its_own_descendant(env: Env) -> None:
    admin = env.admin.actor()
    top = env.records.create(admin, "account", {"name": "Top"})
    mid = env.records.create(admin, "account", {"name": "Mid", "parent": top["id"]})
    low = env.records.create(admin, "account", {"name": "Low", "parent": mid["id"]})
    with pytest.raises(Invalid) as info:
        env.records.update(admin, "account", top["id"], {"parent": low["id"]}, top["version"])
    assert "circle" in info.value.fields["parent"]


def test_two_updates_closing_a_circle_at_once_leave_no_circle(env: Env) -> None:
    """A.parent = B and B.parent = A in two threads, each held just before its write until
    the other one has checked too (or has waited long enough: then it is blocked behind the
    first, which is the point). Exactly one succeeds; the other is refused as a circle, on
    both databases. Before the fix both passed their checks on PostgreSQL."""
    admin = env.admin.actor()
    a = env.records.create(admin, "account", {"name": "Race A"})
    b = env.records.create(admin, "account", {"name": "Race B"})
    both_checked = threading.Barrier(2, timeout=3)
    workers: set[int] = set()

    def hold_before_writing(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The UPDATE of the account comes after every check of the write.
        if threading.get_ident() in workers and statement.lstrip().upper().startswith(
                "UPDATE ACCOUNT"):
            # Broken barrier: the other write waits for this one (it cannot check yet).
            with contextlib.suppress(threading.BrokenBarrierError):
                both_checked.wait()

    outcomes: dict[str, str] = {}

    def write(name: str, record: dict[str, Any], parent: dict[str, Any]) -> None:
        workers.add(threading.get_ident())
        try:
            env.records.update(admin, "account", record["id"], {"parent": parent["id"]},
                               record["version"])
            outcomes[name] = "ok"
        except Invalid as exc:
            outcomes[name] = exc.fields.get("parent", str(exc.fields))

    event.listen(env.engine, "before_cursor_execute", hold_before_writing)
    try:
        threads = [threading.Thread(target=write, args=("a", a, b)),
                   threading.Thread(target=write, args=("b", b, a))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        event.remove(env.engine, "before_cursor_execute", hold_before_writing)
    assert sorted(outcomes) == ["a", "b"], outcomes
    assert "ok" in outcomes.values(), outcomes
    refused = [v for v in outcomes.values() if v != "ok"]
    assert len(refused) == 1 and "circle" in refused[0], outcomes
    parents = {r["id"]: r["parent"] for r in (env.records.get(admin, "account", a["id"]),
                                              env.records.get(admin, "account", b["id"]))}
    assert not (parents[a["id"]] == b["id"] and parents[b["id"]] == a["id"]), parents

"""The write pipeline (engine/runtime/records/unit.py): every write path goes through one
unit of work, hooks run in the write's transaction before the audit rows and after its
commit, their chains are bounded, and a dry run leaves nothing behind."""

from __future__ import annotations

import ast
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Conflict, Invalid
from engine.runtime.records import Records
from engine.runtime.records.unit import MAX_DEPTH, ChainTooDeep, RecordChange, UnitOfWork
from tests.conftest import Env

ENGINE = Path(__file__).resolve().parents[1] / "engine"

# Records' public methods that only read; every other public method is a write path and
# must be exercised by test_every_write_path_goes_through_the_unit_of_work below.
READS = {"allowed", "audited_fields", "compile_filter", "compiled", "explain", "explained",
         "fetch", "field_of", "get", "history", "link_filter", "list_records", "readable",
         "reads_clock", "record_context", "row_out", "row_writer", "sql_fields",
         "statement", "sum_terms_of", "team", "reading", "new_record",
         # the pipeline's own steps and doors, called by the write paths
         "unit", "dry_run", "coerce", "check_links", "check_unique_values", "apply_rules",
         "complete_new", "engine_values"}
# Modules that open write transactions of their own: the pipeline, and the services of the
# engine's own tables (users, sign-ins, drafts, saved views, schema, the flows' outbox),
# which hold no records.
OWN_TRANSACTIONS = {"runtime/records/unit.py", "runtime/users.py", "runtime/sessions.py",
                    "runtime/drafts.py", "runtime/views.py", "runtime/db.py",
                    "runtime/schema/apply.py", "runtime/flows/outbox.py",
                    "runtime/notifications.py", "runtime/reports/saved.py",
                    "runtime/imports/jobs.py", "runtime/idempotency.py",
                    "runtime/imports/duplicates.py",
                    "runtime/records/retention.py"}  # deletes old rows of the change log


class Recorder:
    """Hooks that note what they were shown."""

    def __init__(self, records: Records) -> None:
        self.before: list[RecordChange] = []
        self.after: list[RecordChange] = []
        self.audit_seen: list[int] = []
        records.hooks.on_before_commit("recorder", self.on_before)
        records.hooks.on_after_commit("recorder", self.after.extend)
        self.audit = records.audit

    def on_before(self, unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        self.before.extend(changes)
        # before the audit rows: none of this transaction's changes is audited yet
        self.audit_seen.append(unit.conn.execute(
            select(func.count()).select_from(self.audit)
            .where(self.audit.c.at == unit.now)).scalar_one())

    def seen(self) -> list[tuple[str, int, str]]:
        """The write path's own changes (not what other hooks, rollups, made of them)."""
        return [(c.entity, c.record_id, c.action) for c in self.before if c.depth == 0]

    def clear(self) -> None:
        self.before.clear()
        self.after.clear()


def count(env: Env, entity: str) -> int:
    t = env.records.compiled(entity).table
    with env.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t)).scalar_one()


def audit_total(env: Env) -> int:
    with env.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(env.records.audit)).scalar_one()


def test_every_write_path_goes_through_the_unit_of_work(env: Env) -> None:
    records, a = env.records, env.admin.actor()
    rec = Recorder(records)
    exercised: set[str] = set()

    def check(method: str, expected: list[tuple[str, int, str]]) -> None:
        exercised.add(method)
        assert rec.seen() == expected, method
        assert [(c.entity, c.record_id, c.action) for c in rec.after
                if c.depth == 0] == expected, method
        assert all(n == 0 for n in rec.audit_seen), method
        assert all(c.actor == a.user_id for c in rec.before)
        rec.clear()

    acme = records.create(a, "account", {"name": "Acme"})
    check("create", [("account", acme["id"], "create")])
    records.update(a, "account", acme["id"], {"city": "Oslo"}, 1)
    check("update", [("account", acme["id"], "update")])
    assert rec.before == [] and records.history(a, "account", acme["id"])[-1]["new"] == "Oslo"
    deal = records.create(a, "opportunity", {"name": "Pumps", "account": acme["id"],
                                             "amount": "10"})
    rec.clear()
    bob = env.users.add("bob", ["sales_rep"])
    result = records.assign(a, "account", acme["id"], owner=bob.id, department=None)
    # the account and the open deal that follows it (config/entities/account.yaml)
    check("assign", [("account", acme["id"], "assign"), ("opportunity", deal["id"], "assign")])
    assert result["cascaded"] == {"opportunity": 1}
    records.set_team_member(a, "account", acme["id"], env.admin.id, "read")
    check("set_team_member", [("account", acme["id"], "team")])
    records.remove_team_member(a, "account", acme["id"], env.admin.id)
    check("remove_team_member", [("account", acme["id"], "team")])
    records.transfer_owned(a, bob.id, env.admin.id)
    check("transfer_owned", [("account", acme["id"], "assign"),
                             ("opportunity", deal["id"], "assign")])
    records.delete(a, "opportunity", deal["id"])
    check("delete", [("opportunity", deal["id"], "delete")])
    records.restore(a, "opportunity", deal["id"])
    check("restore", [("opportunity", deal["id"], "restore")])
    records.delete(a, "opportunity", deal["id"])
    rec.clear()
    records.purge(a, "opportunity", deal["id"])
    check("purge", [("opportunity", deal["id"], "purge")])
    made = records.bulk_create(a, "product", [{"name": "Valve", "code": "V-1"},
                                             {"name": "Pump", "code": "P-1"}], batch_size=1)
    check("bulk_create", [("product", made.ids[0], "create"), ("product", made.ids[1], "create")])

    public = {n for n in dir(Records) if not n.startswith("_") and callable(getattr(Records, n))}
    assert public - READS == exercised, "a new public method of Records: a read (add it to " \
        "READS) or a write path (exercise it here)"


def test_only_the_pipeline_opens_write_transactions_on_records() -> None:
    """Nothing outside records/unit.py (and the services of the engine's own tables) opens
    a write transaction: a write path that did would bypass the hooks and the audit."""
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        rel = path.relative_to(ENGINE).as_posix()
        if rel in OWN_TRANSACTIONS:
            continue
        offenders += [f"{rel}:{node.lineno}"
                      for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                      if _opens_a_write(node) or (rel.startswith("web/") and _writer(node))]
    assert offenders == []


def _opens_a_write(node: ast.AST) -> bool:
    """`<...writer...>.begin()` or `.connect()`."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("begin", "connect")
            and "writer" in ast.unparse(node.func.value))


def _writer(node: ast.AST) -> bool:
    """A page reaching for the write engine itself (a file store's `writer` of an upload is
    not the database's)."""
    return (isinstance(node, ast.Attribute) and node.attr == "writer"
            and not ast.unparse(node.value).endswith("store"))


def test_a_hook_writes_in_the_same_transaction_and_a_failure_undoes_everything(
        env: Env) -> None:
    records, a = env.records, env.admin.actor()

    def follow_up(unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        for c in changes:
            if c.entity == "account" and c.action == "create":
                records.create(SYSTEM, "activity", {"subject": f"Call {c.after['name']}",
                                                    "kind": "call"}, unit=unit)
            if c.entity == "activity" and c.after and c.after["subject"] == "Call Broken":
                raise Invalid("refused by a hook", {"subject": "no"})

    records.hooks.on_before_commit("follow_up", follow_up)
    acme = records.create(a, "account", {"name": "Acme"})
    with env.engine.connect() as conn:
        t = records.compiled("activity").table
        made = conn.execute(select(t.c.subject, t.c.created_by)).all()
    assert [tuple(r) for r in made] == [("Call Acme", None)]
    assert acme["name"] == "Acme"
    accounts, activities, audit = count(env, "account"), count(env, "activity"), \
        audit_total(env)
    with pytest.raises(Invalid):
        records.create(a, "account", {"name": "Broken"})
    assert (count(env, "account"), count(env, "activity"), audit_total(env)) == (
        accounts, activities, audit)


def test_a_chain_of_hooks_past_the_bound_fails_the_write_naming_the_chain(env: Env) -> None:
    records, a = env.records, env.admin.actor()

    def ping_pong(unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        for c in changes:
            if c.entity == "account" and c.after is not None:
                row = records.fetch(unit.conn, SYSTEM, records.compiled("account"),
                                    c.record_id, lock=True)
                records.update(SYSTEM, "account", c.record_id,
                               {"employees": (row["employees"] or 0) + 1}, row["version"],
                               unit=unit)

    acme = records.create(a, "account", {"name": "Acme"})
    records.hooks.on_before_commit("ping_pong", ping_pong)
    audit = audit_total(env)
    with pytest.raises(ChainTooDeep) as caught:
        records.update(a, "account", acme["id"], {"city": "Oslo"}, 1)
    assert isinstance(caught.value, Conflict)
    text = str(caught.value.message)
    assert f"more than {MAX_DEPTH} rounds" in text
    assert text.count(f"account {acme['id']} (update)") == MAX_DEPTH + 1
    after = records.get(a, "account", acme["id"])
    assert (after["version"], after["city"], after["employees"]) == (1, None, None)
    assert audit_total(env) == audit


def test_a_dry_run_returns_the_change_set_and_leaves_nothing(env: Env) -> None:
    records, a = env.records, env.admin.actor()
    rec = Recorder(records)

    def follow_up(unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        for c in changes:
            if c.entity == "account" and c.action == "create":
                records.create(SYSTEM, "activity", {"subject": "Welcome call",
                                                    "kind": "call"}, unit=unit)

    records.hooks.on_before_commit("follow_up", follow_up)
    acme = records.create(a, "account", {"name": "Acme"})
    rec.clear()
    before = (count(env, "account"), count(env, "activity"), audit_total(env))

    def work(unit: UnitOfWork) -> dict[str, Any]:
        made = records.create(a, "account", {"name": "Globex"}, unit=unit)
        records.update(a, "account", acme["id"], {"city": "Oslo"}, 1, unit=unit)
        return made

    run = records.dry_run(a, work)
    assert run.result["name"] == "Globex"
    # the create settles its hooks before it answers: the welcome call comes right after it
    assert [(c.entity, c.action, c.depth) for c in run.changes] == [
        ("account", "create", 0), ("activity", "create", 1), ("account", "update", 0)]
    assert run.changes[1].cause is run.changes[0]
    assert run.changes[2].changes == (("city", None, "Oslo"),)
    assert (count(env, "account"), count(env, "activity"), audit_total(env)) == before
    assert records.get(a, "account", acme["id"])["city"] is None
    assert rec.after == []  # nothing committed: nothing to follow
    # the dry run held no lock: the same write goes through for real afterwards
    records.update(a, "account", acme["id"], {"city": "Oslo"}, 1)


def test_a_failing_after_commit_hook_is_logged_and_the_write_stays(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    records, a = env.records, env.admin.actor()

    def broken(changes: Sequence[RecordChange]) -> None:
        raise RuntimeError("mail server down")

    records.hooks.on_after_commit("notify", broken)
    with caplog.at_level(logging.ERROR, logger="engine.runtime.records.unit"):
        acme = records.create(a, "account", {"name": "Acme"})
    assert records.get(a, "account", acme["id"])["name"] == "Acme"
    assert "after-commit hook notify failed" in caplog.text


def test_a_write_joined_to_a_unit_commits_with_it(env: Env) -> None:
    """Writes in one unit are one transaction: the departments of a seed all land or none."""
    records, a = env.records, env.admin.actor()
    with pytest.raises(Invalid), records.unit(a) as unit:
        records.create(a, "account", {"name": "Acme"}, unit=unit)
        records.create(a, "account", {"name": ""}, unit=unit)
    assert count(env, "account") == 0
    with records.unit(a) as unit:
        one = records.create(a, "account", {"name": "Acme"}, unit=unit)
        two = records.create(a, "account", {"name": "Globex"}, unit=unit)
        records.set_team_member(a, "account", one["id"], env.admin.id, "edit", unit=unit)
    assert [c.action for c in unit.changes] == ["create", "create", "team"]
    assert {records.get(a, "account", i)["name"] for i in (one["id"], two["id"])} == {
        "Acme", "Globex"}

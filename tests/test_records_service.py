"""The records service: validation, versions, the recycle bin, audit rows, bulk create.

Every test runs on SQLite and on PostgreSQL (the `env` fixture) against the shipped config.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from engine.runtime.access import Actor
from engine.runtime.errors import Conflict, Invalid, NotFound
from engine.runtime.records import Records
from engine.runtime.records.query import parse_list_params
from engine.types import ENGINE_COLUMNS
from tests.conftest import Env


def actor(env: Env) -> Actor:
    return env.admin.actor()


def invalid(fn: Any, *args: Any) -> dict[str, str]:
    """The field errors of the Invalid that `fn(*args)` raises."""
    with pytest.raises(Invalid) as info:
        fn(*args)
    return info.value.fields


def audit_rows(env: Env, entity: str, record_id: int) -> list[dict[str, Any]]:
    """Raw crm_audit rows of one record, oldest first, values decoded from JSON."""
    audit = env.records.audit
    with env.engine.connect() as conn:
        rows = conn.execute(select(audit).where(audit.c.entity == entity,
                                                audit.c.record_id == record_id)
                            .order_by(audit.c.id)).mappings().all()
    return [{"action": r["action"], "field": r["field"], "user_id": r["user_id"],
             "old": None if r["old_value"] is None else json.loads(r["old_value"]),
             "new": None if r["new_value"] is None else json.loads(r["new_value"])}
            for r in rows]


def audit_count(env: Env) -> int:
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(env.records.audit)).scalar_one())


def row_count(env: Env, entity: str) -> int:
    table = env.records.compiled(entity).table
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def ids(env: Env, entity: str, **params: str) -> list[int]:
    query = parse_list_params(env.model.entity(entity), {"sort": "id", **params})
    return [r["id"] for r in env.records.list_records(actor(env), entity, query).items]


# -- validation ------------------------------------------------------------------------------

def test_every_field_error_is_reported_at_once(env: Env) -> None:
    a = actor(env)
    env.records.create(a, "product", {"name": "Pump", "code": "P-1"})
    before_rows, before_audit = row_count(env, "product"), audit_count(env)
    fields = invalid(env.records.create, a, "product", {
        "name": "  ", "code": "P-1", "family": "toys", "list_price": "-1", "unit": "kg",
        "active": "maybe", "description": "a\x00b", "colour": "red", "version": 7,
    })
    assert fields == {
        "name": "is required",
        "code": "P-1 is already used",
        "family": "must be one of: equipment, spare_part, service, software, financing",
        "list_price": "must be at least 0",
        "unit": "must be one of: piece, set, hour, year",
        "active": "must be true or false",
        "description": "must not contain NUL characters",
        "colour": "unknown field of product",
        "version": "is set by the engine and cannot be written",
    }
    assert (row_count(env, "product"), audit_count(env)) == (before_rows, before_audit)


def test_link_errors_come_with_value_errors(env: Env) -> None:
    with pytest.raises(Invalid) as info:
        env.records.create(actor(env), "contact", {
            "account": 987654, "email": "nobody", "reports_to": "x", "birthday": "2025-02-30"})
    assert info.value.message == "contact is not valid"
    assert info.value.status == 422 and info.value.code == "invalid"
    assert info.value.fields == {
        "full_name": "is required",
        "account": "no account with id 987654",
        "email": "must be an email address like name@example.com",
        "reports_to": "must be a record id",
        "birthday": "must be a date like 2025-03-31",
    }


def test_required_on_create_and_on_update(env: Env) -> None:
    a, records = actor(env), env.records
    assert invalid(records.create, a, "account", {"city": "Oslo"}) == {"name": "is required"}
    account = records.create(a, "account", {"name": "Acme"})
    # an update that leaves a required field out keeps it
    account = records.update(a, "account", account["id"], {"city": "Oslo"}, account["version"])
    assert (account["name"], account["city"], account["version"]) == ("Acme", "Oslo", 2)
    for blank in ("", "   ", None):
        assert invalid(records.update, a, "account", account["id"], {"name": blank},
                       account["version"]) == {"name": "is required"}
    contact = records.create(a, "contact", {"full_name": "Ann", "account": account["id"]})
    assert invalid(records.update, a, "contact", contact["id"],
                   {"account": None, "full_name": ""}, contact["version"]) == \
        {"account": "is required", "full_name": "is required"}
    assert records.get(a, "account", account["id"])["name"] == "Acme"


def test_unique_values(env: Env) -> None:
    a, records = actor(env), env.records
    pump = records.create(a, "product", {"name": "Pump", "code": "P-1"})
    valve = records.create(a, "product", {"name": "Valve", "code": "V-1"})
    assert invalid(records.create, a, "product", {"name": "Pump 2", "code": "P-1"}) == \
        {"code": "P-1 is already used"}
    assert invalid(records.update, a, "product", valve["id"], {"code": " P-1 "},
                   valve["version"]) == {"code": "P-1 is already used"}
    # a record keeps its own value
    same = records.update(a, "product", pump["id"], {"code": "P-1", "name": "Pump"},
                          pump["version"])
    assert same["version"] == pump["version"]
    # blanks never collide (department.code is unique and optional)
    for name in ("North", "South"):
        records.create(a, "department", {"name": name})


def test_unique_counts_records_in_the_recycle_bin(env: Env) -> None:
    a, records = actor(env), env.records
    pump = records.create(a, "product", {"name": "Pump", "code": "P-1"})
    records.delete(a, "product", pump["id"])
    assert invalid(records.create, a, "product", {"name": "Pump", "code": "P-1"}) == \
        {"code": "P-1 is already used (by a record in the recycle bin)"}
    records.purge(a, "product", pump["id"])
    assert records.create(a, "product", {"name": "Pump", "code": "P-1"})["code"] == "P-1"


def test_links_to_missing_or_deleted_records_are_refused(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    other = records.create(a, "account", {"name": "Other"})
    contact = records.create(a, "contact", {"full_name": "Ann", "account": acme["id"]})
    records.delete(a, "account", other["id"])
    assert invalid(records.create, a, "contact",
                   {"full_name": "Bob", "account": other["id"]}) == \
        {"account": f"no account with id {other['id']}"}
    assert invalid(records.update, a, "contact", contact["id"], {"account": other["id"]},
                   contact["version"]) == {"account": f"no account with id {other['id']}"}
    assert invalid(records.create, a, "opportunity",
                   {"name": "Deal", "account": acme["id"], "primary_contact": 10**12}) == \
        {"primary_contact": f"no contact with id {10**12}"}


def test_user_links_need_an_active_user(env: Env) -> None:
    a, records = actor(env), env.records
    bob = env.users.add("bob", ["sales_rep"])
    north = records.create(a, "department", {"name": "North", "manager": bob.id})
    assert north["manager"] == bob.id
    assert invalid(records.create, a, "department", {"name": "South", "manager": 99999}) == \
        {"manager": "no user with id 99999"}
    env.users.set_active("bob", False)
    assert invalid(records.create, a, "department", {"name": "West", "manager": bob.id}) == \
        {"manager": f"no user with id {bob.id}"}


def test_self_reference_is_refused(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    assert invalid(records.update, a, "account", acme["id"], {"parent": acme["id"]},
                   acme["version"]) == {"parent": "cannot point to the record itself"}
    parent = records.create(a, "account", {"name": "Acme Holding"})
    assert records.update(a, "account", acme["id"], {"parent": parent["id"]},
                          acme["version"])["parent"] == parent["id"]


def test_engine_columns_are_not_writable(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    message = "is set by the engine and cannot be written"
    for column in ENGINE_COLUMNS:
        assert invalid(records.create, a, "account", {"name": "Beta", column: 5}) == \
            {column: message}
        assert invalid(records.update, a, "account", acme["id"], {column: 5}, 1) == \
            {column: message}
    assert invalid(records.create, a, "account", dict.fromkeys(ENGINE_COLUMNS, 1)) == {
        "name": "is required", **dict.fromkeys(ENGINE_COLUMNS, message)}
    assert records.get(a, "account", acme["id"]) == acme
    assert row_count(env, "account") == 1


def test_engine_aliases_are_unknown_fields(env: Env) -> None:
    assert invalid(env.records.create, actor(env), "account", {"name": "Acme", "owner": 1}) == \
        {"owner": "unknown field of account"}


def test_engine_columns_are_set_by_the_engine(env: Env) -> None:
    record = env.records.create(actor(env), "account", {"name": "Acme"})
    assert record["version"] == 1
    assert record["created_by"] == record["updated_by"] == record["owner_id"] == env.admin.id
    assert record["created_at"] == record["updated_at"]
    assert record["created_at"].utcoffset() is not None
    assert "deleted_at" not in record and "deleted_by" not in record


def test_defaults_apply_on_create_only(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    assert (acme["tier"], acme["status"]) == ("standard", "prospect")
    given = records.create(a, "account", {"name": "Beta", "tier": "key"})
    assert (given["tier"], given["status"]) == ("key", "prospect")
    # an explicit blank is the user's choice, not a missing value
    blank = records.create(a, "account", {"name": "Gamma", "tier": ""})
    assert blank["tier"] is None
    contact = records.create(a, "contact", {"full_name": "Ann", "account": acme["id"]})
    assert contact["is_primary"] is False
    updated = records.update(a, "account", blank["id"], {"city": "Rome"}, blank["version"])
    assert updated["tier"] is None


# -- versions --------------------------------------------------------------------------------

def test_stale_version_is_a_conflict_and_changes_nothing(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    current = records.update(a, "account", acme["id"], {"city": "Oslo"}, 1)
    before_audit = audit_count(env)
    with pytest.raises(Conflict) as info:
        records.update(a, "account", acme["id"], {"city": "Rome", "name": "Acme 2"}, 1)
    assert info.value.status == 409 and info.value.fields == {"version": "stale"}
    assert info.value.message == (
        f"account {acme['id']} was changed by someone else since version 1 "
        "(current version is 2); reload it and apply your change again")
    assert records.get(a, "account", acme["id"]) == current
    assert audit_count(env) == before_audit
    with pytest.raises(Conflict):
        records.delete(a, "account", acme["id"], version=1)
    assert records.get(a, "account", acme["id"]) == current


def test_an_update_that_changes_nothing_keeps_the_version(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme", "annual_revenue": "10"})
    before_audit = audit_count(env)
    same = records.update(a, "account", acme["id"], {"name": "Acme", "annual_revenue": "10.00"},
                          acme["version"])
    assert same == acme
    assert audit_count(env) == before_audit


def test_concurrent_updates_with_one_version_have_one_winner(env: Env) -> None:
    """Two threads, two connections, one version: exactly one update lands."""
    a, records = actor(env), env.records
    for round_ in range(5):
        acme = records.create(a, "account", {"name": f"Acme {round_}"})
        barrier = threading.Barrier(2, timeout=30)
        outcomes: dict[str, Any] = {}

        def write(city: str, record_id: int = acme["id"],
                  barrier: threading.Barrier = barrier,
                  outcomes: dict[str, Any] = outcomes) -> None:
            barrier.wait()
            try:
                outcomes[city] = records.update(a, "account", record_id, {"city": city}, 1)
            except Exception as exc:
                outcomes[city] = exc

        threads = [threading.Thread(target=write, args=(city,)) for city in ("Oslo", "Rome")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        winners = [c for c, o in outcomes.items() if isinstance(o, dict)]
        losers = [c for c, o in outcomes.items() if isinstance(o, Conflict)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert outcomes[losers[0]].fields == {"version": "stale"}
        final = records.get(a, "account", acme["id"])
        assert (final["city"], final["version"]) == (winners[0], 2)
        updates = [r for r in audit_rows(env, "account", acme["id"]) if r["action"] == "update"]
        assert updates == [{"action": "update", "field": "city", "user_id": env.admin.id,
                            "old": None, "new": winners[0]}]


# -- audit -----------------------------------------------------------------------------------

def test_audit_of_create_is_one_row_holding_the_first_values(env: Env) -> None:
    """One shape for every path: a create through the form is audited as a bulk create is,
    one row whose new value holds the values set; history reads it field by field."""
    a = actor(env)
    acme = env.records.create(a, "account", {"name": "Acme", "employees": "1,200",
                                             "annual_revenue": "0.1", "city": ""})
    rows = audit_rows(env, "account", acme["id"])
    assert [(r["action"], r["field"], r["old"], r["user_id"]) for r in rows] == [
        ("create", None, None, env.admin.id)]
    assert rows[0]["new"] == {"name": "Acme", "employees": 1200, "annual_revenue": "0.10",
                              "tier": "standard", "status": "prospect",
                              "account_type": "customer", "lifecycle": "target"}
    history = env.records.history(a, "account", acme["id"])
    assert {h["field"]: (h["action"], h["old"], h["new"]) for h in history} == {
        "name": ("create", None, "Acme"), "employees": ("create", None, 1200),
        "annual_revenue": ("create", None, "0.10"), "tier": ("create", None, "standard"),
        "status": ("create", None, "prospect"), "account_type": ("create", None, "customer"),
        "lifecycle": ("create", None, "target")}


def test_audit_of_update_has_only_changed_fields(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme", "employees": 10, "city": "Oslo"})
    records.update(a, "account", acme["id"],
                   {"name": "Acme", "employees": "12", "city": "", "country": "Norway"}, 1)
    rows = [r for r in audit_rows(env, "account", acme["id"]) if r["action"] == "update"]
    assert rows == [
        {"action": "update", "field": "employees", "user_id": env.admin.id, "old": 10, "new": 12},
        {"action": "update", "field": "city", "user_id": env.admin.id, "old": "Oslo", "new": None},
        {"action": "update", "field": "country", "user_id": env.admin.id, "old": None,
         "new": "Norway"},
    ]
    history = records.history(a, "account", acme["id"])
    assert [(h["action"], h["field"], h["old"], h["new"], h["user"]) for h in history[-3:]] == [
        ("update", "employees", 10, 12, "admin"), ("update", "city", "Oslo", None, "admin"),
        ("update", "country", None, "Norway", "admin")]


def test_refused_writes_leave_no_audit_rows(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    before = audit_rows(env, "account", acme["id"])
    with pytest.raises(Invalid):
        records.update(a, "account", acme["id"], {"city": "Oslo", "employees": "-1"}, 1)
    with pytest.raises(Conflict):
        records.update(a, "account", acme["id"], {"city": "Oslo"}, 2)
    with pytest.raises(NotFound):
        records.restore(a, "account", acme["id"])
    with pytest.raises(NotFound):
        records.purge(a, "account", acme["id"])
    assert audit_rows(env, "account", acme["id"]) == before


def test_audit_of_delete_restore_purge(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme", "city": "Oslo"})
    records.delete(a, "account", acme["id"], version=1)
    records.restore(a, "account", acme["id"])
    records.delete(a, "account", acme["id"])
    records.purge(a, "account", acme["id"])
    rows = [r for r in audit_rows(env, "account", acme["id"]) if r["action"] != "create"]
    admin = env.admin.id
    assert rows == [
        {"action": "delete", "field": None, "user_id": admin, "old": None, "new": None},
        {"action": "restore", "field": None, "user_id": admin, "old": None, "new": None},
        {"action": "delete", "field": None, "user_id": admin, "old": None, "new": None},
        {"action": "purge", "field": "name", "user_id": admin, "old": "Acme", "new": None},
        {"action": "purge", "field": "tier", "user_id": admin, "old": "standard", "new": None},
        {"action": "purge", "field": "status", "user_id": admin, "old": "prospect", "new": None},
        {"action": "purge", "field": "account_type", "user_id": admin, "old": "customer",
         "new": None},
        {"action": "purge", "field": "lifecycle", "user_id": admin, "old": "target", "new": None},
        {"action": "purge", "field": "city", "user_id": admin, "old": "Oslo", "new": None},
    ]


def test_audit_rows_say_who_and_when(env: Env) -> None:
    now = [datetime(2025, 3, 31, 9, 0, tzinfo=UTC)]
    records = Records(env.engine, env.model, clock=lambda: now[0])
    bob = env.users.add("bob", ["admin"])
    acme = records.create(env.admin.actor(), "account", {"name": "Acme"})
    now[0] += timedelta(hours=1)
    records.update(bob.actor(), "account", acme["id"], {"city": "Oslo"}, 1)
    now[0] += timedelta(hours=1)
    records.delete(bob.actor(), "account", acme["id"])
    now[0] += timedelta(hours=1)
    restored = records.restore(env.admin.actor(), "account", acme["id"])
    assert acme["created_at"] == datetime(2025, 3, 31, 9, 0, tzinfo=UTC)
    assert (restored["updated_at"], restored["updated_by"]) == (now[0], env.admin.id)
    history = records.history(env.admin.actor(), "account", acme["id"])
    assert [(h["action"], h["field"], h["user"], h["at"]) for h in history] == [
        ("create", "name", "admin", "2025-03-31T09:00:00Z"),
        ("create", "tier", "admin", "2025-03-31T09:00:00Z"),
        ("create", "status", "admin", "2025-03-31T09:00:00Z"),
        ("create", "account_type", "admin", "2025-03-31T09:00:00Z"),
        ("create", "lifecycle", "admin", "2025-03-31T09:00:00Z"),
        ("update", "city", "bob", "2025-03-31T10:00:00Z"),
        ("delete", None, "bob", "2025-03-31T11:00:00Z"),
        ("restore", None, "admin", "2025-03-31T12:00:00Z"),
    ]


def _refuse_audit_values(env: Env, needle: str) -> None:
    """Make the database refuse any audit row whose new value contains `needle`."""
    with env.engine.begin() as conn:
        if env.engine.dialect.name == "sqlite":
            conn.execute(text(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON crm_audit "
                f"WHEN NEW.new_value LIKE '%{needle}%' "
                "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"))
        else:
            conn.execute(text("ALTER TABLE crm_audit ADD CONSTRAINT refuse_audit "
                              f"CHECK (new_value NOT LIKE '%{needle}%')"))


def test_audit_rows_are_written_in_the_same_transaction(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    _refuse_audit_values(env, "poison")
    before_rows, before_audit = row_count(env, "account"), audit_count(env)
    with pytest.raises(IntegrityError):
        records.create(a, "account", {"name": "poison"})
    with pytest.raises(IntegrityError):
        records.update(a, "account", acme["id"], {"city": "poison"}, 1)
    with pytest.raises(IntegrityError):
        records.bulk_create(a, "account", [{"name": "fine"}, {"name": "poison"}])
    # the failed audit insert took the record change down with it
    assert (row_count(env, "account"), audit_count(env)) == (before_rows, before_audit)
    assert records.get(a, "account", acme["id"]) == acme


# -- recycle bin -----------------------------------------------------------------------------

def test_recycle_bin_round_trip(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    beta = records.create(a, "account", {"name": "Beta"})
    records.delete(a, "account", acme["id"], version=1)
    with pytest.raises(NotFound) as info:
        records.get(a, "account", acme["id"])
    assert info.value.message == f"no account {acme['id']}"
    assert ids(env, "account") == [beta["id"]]
    binned = records.get(a, "account", acme["id"], deleted=True)
    assert binned["deleted_by"] == env.admin.id and binned["deleted_at"] is not None
    assert binned["version"] == 2
    assert ids(env, "account", deleted="true") == [acme["id"]]
    with pytest.raises(NotFound):
        records.update(a, "account", acme["id"], {"city": "Oslo"}, 2)
    with pytest.raises(NotFound):
        records.delete(a, "account", acme["id"])
    restored = records.restore(a, "account", acme["id"])
    assert restored["version"] == 3 and restored["name"] == "Acme"
    assert "deleted_at" not in restored
    assert records.get(a, "account", acme["id"]) == restored
    assert ids(env, "account") == [acme["id"], beta["id"]]
    assert ids(env, "account", deleted="true") == []
    with pytest.raises(NotFound) as info:
        records.restore(a, "account", acme["id"])
    assert info.value.message == f"no account {acme['id']} in the recycle bin"


def test_purge_only_from_the_bin_and_not_while_referenced(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    contact = records.create(a, "contact", {"full_name": "Ann", "account": acme["id"]})
    with pytest.raises(NotFound) as info:
        records.purge(a, "account", acme["id"])
    assert info.value.message == f"no account {acme['id']} in the recycle bin"
    records.delete(a, "account", acme["id"])
    with pytest.raises(Conflict) as conflict:
        records.purge(a, "account", acme["id"])
    assert conflict.value.message == (f"account {acme['id']} is still referenced by other "
                                      "records; clear those links first")
    assert records.get(a, "account", acme["id"], deleted=True)["name"] == "Acme"
    assert [r["action"] for r in audit_rows(env, "account", acme["id"])][-1] == "delete"
    # a reference from a record in the bin still holds
    records.delete(a, "contact", contact["id"])
    with pytest.raises(Conflict):
        records.purge(a, "account", acme["id"])
    records.purge(a, "contact", contact["id"])
    records.purge(a, "account", acme["id"])
    with pytest.raises(NotFound):
        records.get(a, "account", acme["id"], deleted=True)
    assert row_count(env, "account") == 0


# -- bulk ------------------------------------------------------------------------------------

def test_bulk_create_inserts_good_rows_and_reports_bad_ones(env: Env) -> None:
    a, records = actor(env), env.records
    records.create(a, "product", {"name": "Old", "code": "OLD"})
    binned = records.create(a, "product", {"name": "Gone", "code": "GONE"})
    records.delete(a, "product", binned["id"])
    before_audit = audit_count(env)
    result = records.bulk_create(a, "product", [
        {"name": "Pump", "code": "P-1", "list_price": "10.50"},    # 0 good
        {"code": "P-2", "list_price": "x"},                          # 1 two field errors
        {"name": "Valve", "code": "V-1"},                            # 2 good
        {"name": "Pump again", "code": "P-1"},                       # 3 duplicate in the batch
        {"name": "Old again", "code": "OLD"},                        # 4 taken in the table
        {"name": "Gone again", "code": "GONE"},                      # 5 taken in the bin
        {"name": "Seal", "code": "S-1", "id": 5},                    # 6 engine column
        {"name": "Hose", "code": "H-1", "unit": "set"},              # 7 good
    ], batch_size=3)
    assert result.created == 3
    assert result.errors == [
        (1, {"name": "is required", "list_price": "must be a number"}),
        (3, {"code": "P-1 appears twice in this import"}),
        (4, {"code": "OLD is already used"}),
        (5, {"code": "GONE is already used"}),
        (6, {"id": "is set by the engine and cannot be written"}),
    ]
    got = [records.get(a, "product", i) for i in result.ids]
    assert [(p["code"], p["unit"], p["version"]) for p in got] == [
        ("P-1", "piece", 1), ("V-1", "piece", 1), ("H-1", "set", 1)]
    assert str(got[0]["list_price"]) == "10.50"
    assert audit_count(env) == before_audit + 3
    for record_id, code in zip(result.ids, ("P-1", "V-1", "H-1"), strict=True):
        rows = audit_rows(env, "product", record_id)
        assert len(rows) == 1
        assert rows[0]["action"] == "create" and rows[0]["field"] is None
        assert rows[0]["new"]["code"] == code and rows[0]["user_id"] == env.admin.id


def test_bulk_create_checks_links(env: Env) -> None:
    a, records = actor(env), env.records
    acme = records.create(a, "account", {"name": "Acme"})
    gone = records.create(a, "account", {"name": "Gone"})
    records.delete(a, "account", gone["id"])
    result = records.bulk_create(a, "contact", [
        {"full_name": "Ann", "account": acme["id"]},
        {"full_name": "Bob", "account": gone["id"]},
        {"full_name": "Cy", "account": 424242},
        {"full_name": "Di"},
    ])
    assert result.created == 1
    assert result.errors == [(1, {"account": f"no account with id {gone['id']}"}),
                             (2, {"account": "no account with id 424242"}),
                             (3, {"account": "is required"})]
    assert records.get(a, "contact", result.ids[0])["full_name"] == "Ann"


def test_bulk_create_returns_the_ids_in_input_order_and_later_creates_follow(env: Env) -> None:
    """The ids come back in input order (on PostgreSQL reserved from the table's sequence
    before the insert), and a later single create takes a fresh id after them."""
    a, records = actor(env), env.records
    names = [f"Product {i:03d}" for i in range(250)]
    result = records.bulk_create(a, "product", [{"name": n, "code": n[-3:]} for n in names],
                                 batch_size=100)
    assert result.created == 250 and len(set(result.ids)) == 250
    assert [records.get(a, "product", rid)["name"] for rid in result.ids] == names
    later = records.create(a, "product", {"name": "Later", "code": "LATER"})
    assert later["id"] > max(result.ids)


def test_bulk_create_of_coerced_rows_keeps_every_other_check(env: Env) -> None:
    """An import's rows hold stored values already (coerced=True): taken as they are,
    while engine columns, required fields and unique values are still checked."""
    from decimal import Decimal

    from engine.runtime.records.imports import bulk_create
    a, records = actor(env), env.records
    result = bulk_create(records, a, "product", [
        {"name": "Pump", "code": "P-1", "list_price": Decimal("10.50")},  # 0 good
        {"code": "P-2", "list_price": None},                                # 1 required
        {"name": "Seal", "code": "S-1", "id": 5},                           # 2 engine column
        {"name": "Pump again", "code": "P-1"},                              # 3 twice
    ], coerced=True)
    assert result.created == 1
    assert [i for i, _ in result.errors] == [1, 2, 3]
    assert result.errors[0] == (1, {"name": "is required"})
    assert "id" in result.errors[1][1] and "code" in result.errors[2][1]
    pump = records.get(a, "product", result.ids[0])
    assert (pump["name"], pump["code"], Decimal(str(pump["list_price"]))) == (
        "Pump", "P-1", Decimal("10.50"))


# -- list_records(fields=) -----------------------------------------------------------------


def test_list_records_fields_returns_only_those_and_never_a_hidden_one(env: Env) -> None:
    from sqlalchemy import event

    from tests.access_helpers import departments, place, user

    dept = departments(env)
    marketer = user(env, "marketer", "marketing", department=dept["BJ"])  # amount hidden
    partner = user(env, "partner", "partner", department=dept["BJ"])  # score hidden
    account = place(env, "account", {"name": "Acme"})["id"]
    for i in range(3):
        place(env, "opportunity", {"name": f"Deal {i}", "stage": "proposal",
                                   "amount": 1000 + i, "account": account}, owner=partner)
    entity = env.model.entity("opportunity")
    query = parse_list_params(entity, {"sort": "-id"})
    asked = {"name", "amount", "score", "weighted"}
    sql: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sql.append(statement)

    for who in (actor(env), marketer, partner):
        full = env.records.list_records(who, "opportunity", query).items
        event.listen(env.engine, "before_cursor_execute", seen)
        try:
            some = env.records.list_records(who, "opportunity", query, fields=asked).items
        finally:
            event.remove(env.engine, "before_cursor_execute", seen)
        assert [r["id"] for r in some] == [r["id"] for r in full] and len(some) >= 3
        hidden = env.records.policy.hidden_fields(who, entity)
        for got, whole in zip(some, full, strict=True):
            assert {k for k in got if k not in ENGINE_COLUMNS} == asked - hidden
            assert got == {k: v for k, v in whole.items()
                           if k in ENGINE_COLUMNS or k in asked}
            assert not set(got) & hidden
        listed = next(s for s in sql if "LIMIT" in s.upper())
        if who is marketer:  # amount is neither returned nor selected (nor weighted's input)
            assert "amount" in hidden and "amount" not in listed
        if who is partner:
            assert "score" in hidden and "score" not in listed
        sql.clear()

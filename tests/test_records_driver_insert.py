"""Set-wise inserts through the driver (engine/runtime/records/driver_insert.py): what they
store is what an `insert()` stores, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Table, delete, insert, null, select, text
from sqlalchemy.exc import IntegrityError

from engine.runtime.records.driver_insert import insert_rows, new_ids
from tests.conftest import Env

NOW = datetime(2026, 12, 5, 9, 30, 15, 123456, tzinfo=UTC)


def _raw(env: Env, table: Table, record_id: int) -> dict[str, Any]:
    """The row as the database holds it (no type processing on the way out)."""
    quote = env.engine.dialect.identifier_preparer.quote
    with env.engine.connect() as conn:
        row = conn.execute(text(f"SELECT * FROM {quote(table.name)} WHERE id = :id"),
                           {"id": record_id}).mappings().one()
    return {k: v for k, v in row.items() if k != "id"}


def _contact(env: Env, account_id: int, name: str) -> dict[str, Any]:
    """A contact's stored values of every kind of column the shipped contact has."""
    c = env.records.compiled("contact")
    values = {"full_name": name, "account": account_id, "influence": 4,
              "is_primary": True, "birthday": date(1980, 2, 29),
              "interests": ["golf", "tea"], "notes": "第一行\nsecond line",
              "email": "li@example.com", "buying_role": "decider", "title": None}
    return {**c.db_values(values), "version": 1, "created_at": NOW, "updated_at": NOW,
            "created_by": env.admin.id, "owner_id": env.admin.id}


def test_rows_are_stored_as_an_insert_stores_them(env: Env) -> None:
    account = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    table = env.records.compiled("contact").table
    by_insert = _contact(env, account["id"], "王伟")
    by_driver = _contact(env, account["id"], "王伟")
    shared = {k: by_driver.pop(k) for k in ("version", "created_at", "updated_at")}
    # a column order other than the table's: the statement places each value
    names = ["id", *reversed(list(by_driver))]
    with env.engine.begin() as conn:
        first = conn.execute(insert(table).returning(table.c.id), by_insert).scalar_one()
        ids = new_ids(conn, table, 1)
        insert_rows(conn, table, names,
                    [(ids[0], *[by_driver[n] for n in names[1:]])], constants=shared)
    assert ids[0] > first
    assert _raw(env, table, ids[0]) == _raw(env, table, first)
    read = env.records.get(env.admin.actor(), "contact", ids[0])
    assert read["birthday"] == date(1980, 2, 29) and read["interests"] == ["golf", "tea"]
    assert read["is_primary"] is True and read["created_at"] == NOW


def test_a_blank_json_value_is_sql_null(env: Env) -> None:
    account = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    c = env.records.compiled("contact")
    row = {**_contact(env, account["id"], "Li"), "interests": null()}
    names = list(row)
    with env.engine.begin() as conn:
        [rid] = new_ids(conn, c.table, 1)
        insert_rows(conn, c.table, ["id", *names], [(rid, *[row[n] for n in names])])
        found = conn.execute(select(c.table.c.id).where(
            c.table.c.interests.is_(None), c.table.c.id == rid)).scalars().all()
    assert found == [rid]


def test_new_ids_follow_the_highest_and_rows_keep_them(env: Env) -> None:
    a = env.admin.actor()
    made = [env.records.create(a, "account", {"name": f"A{i}"})["id"] for i in range(3)]
    table = env.records.compiled("account").table
    with env.engine.begin() as conn:
        ids = new_ids(conn, table, 4)
        assert ids == sorted(ids) and len(set(ids)) == 4 and ids[0] > max(made)
        insert_rows(conn, table, ["id", "name"], [(i, f"B{i}") for i in ids],
                    constants={"version": 1, "created_at": NOW, "updated_at": NOW})
        stored = dict(conn.execute(select(table.c.id, table.c.name)
                                   .where(table.c.id.in_(ids))).all())
        assert new_ids(conn, table, 0) == []
        assert new_ids(conn, table, 1)[0] > max(ids)
    assert stored == {i: f"B{i}" for i in ids}


def test_money_and_instants_read_back_exactly(env: Env) -> None:
    account = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    c = env.records.compiled("opportunity")
    row = {"name": "Turbine overhaul", "account": account["id"],
           "amount": Decimal("1234567.89"), "stage": "proposal",
           "close_date": date(2027, 1, 31)}
    with env.engine.begin() as conn:
        [rid] = new_ids(conn, c.table, 1)
        insert_rows(conn, c.table, ["id", *row], [(rid, *row.values())],
                    constants={"version": 1, "created_at": NOW, "updated_at": NOW})
    read = env.records.get(env.admin.actor(), "opportunity", rid)
    assert read["amount"] == Decimal("1234567.89") and read["close_date"] == date(2027, 1, 31)
    assert read["created_at"] == NOW


def test_a_refused_row_raises_as_sqlalchemy_does_and_leaves_nothing(env: Env) -> None:
    table = env.records.compiled("account").table
    with env.engine.begin() as conn:
        conn.execute(delete(table))
    with pytest.raises(IntegrityError), env.engine.begin() as conn:
        [rid] = new_ids(conn, table, 1)  # the same id twice: the primary key refuses
        insert_rows(conn, table, ["id", "name"], [(rid, "fine"), (rid, "twice")],
                    constants={"version": 1, "created_at": NOW, "updated_at": NOW})
    with env.engine.connect() as conn:
        assert conn.execute(select(table.c.id)).all() == []

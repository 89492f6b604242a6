"""Records by a key field and references given as text (engine/runtime/imports/keys.py), on
both databases, for an administrator and a sales rep who sees only their department's
accounts."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from engine.messages import Message
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import Invalid, NotFound
from engine.runtime.imports.keys import (
    find_by_key,
    key_field,
    resolve_external_ids,
    resolve_references,
)
from tests.access_helpers import departments, place, user
from tests.conftest import Env


def _find(env: Env, actor: Actor, entity: str, key: str, values: list[Any]) -> Any:
    with env.engine.connect() as conn:
        return find_by_key(conn, env.records, actor, entity, key, values)


def _resolve(env: Env, actor: Actor, entity: str, field: str, texts: list[str]) -> Any:
    with env.engine.connect() as conn:
        return resolve_references(conn, env.records, actor, entity, field, texts)


def _account(env: Env, name: str, ext: str | None = None, **more: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, **more}
    if ext is not None:
        data["external_id"] = ext
    return env.records.create(SYSTEM, "account", data)


def test_key_fields_are_the_external_id_and_unique_fields(env: Env) -> None:
    assert key_field(env.model, "account", "external_id").external_id
    assert key_field(env.model, "account", "name").unique  # a unique name
    assert key_field(env.model, "product", "code").unique
    with pytest.raises(Invalid) as exc:
        key_field(env.model, "account", "city")
    assert "city" in exc.value.message and "key" in exc.value.fields
    with pytest.raises(Invalid):
        key_field(env.model, "account", "nope")
    with pytest.raises(NotFound):
        key_field(env.model, "nope", "name")


def test_find_by_key_in_one_query_per_batch(env: Env) -> None:
    made = {f"ERP-{i}": _account(env, f"Firm {i}", f"ERP-{i}") for i in range(30)}
    asked: list[str] = []

    def hook(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "FROM account" in statement:
            asked.append(statement)

    event.listen(env.engine, "before_cursor_execute", hook)
    try:
        found = _find(env, SYSTEM, "account", "external_id",
                      [*made, "ERP-404", None, 17])
    finally:
        event.remove(env.engine, "before_cursor_execute", hook)
    assert len(asked) == 1
    assert found == {k: (r["id"], r["version"]) for k, r in made.items()}
    assert found.binned == {}


def test_a_unique_name_is_found_ignoring_case_and_accents_typed_apart(env: Env) -> None:
    acme = _account(env, "Café Acme")
    found = _find(env, SYSTEM, "account", "name", ["CAFÉ ACME", "Cafe\u0301 acme", "Acme"])
    assert found == {"CAFÉ ACME": (acme["id"], 1), "Cafe\u0301 acme": (acme["id"], 1)}


def test_a_binned_record_is_told_apart(env: Env) -> None:
    gone = _account(env, "Gone Ltd", "ERP-GONE")
    env.records.delete(SYSTEM, "account", gone["id"])
    found = _find(env, SYSTEM, "account", "external_id", ["ERP-GONE"])
    assert found == {} and found.binned == {"ERP-GONE": gone["id"]}
    # the unique check still refuses a second record with the value
    with pytest.raises(Invalid) as exc:
        _account(env, "Gone Again", "ERP-GONE")
    assert "recycle bin" in exc.value.fields["external_id"]


def _world(env: Env) -> tuple[Actor, dict[str, Any], dict[str, Any]]:
    """A sales rep in BJ; an account of BJ they see, one of SH they do not."""
    deps = departments(env)
    rep = user(env, "rep", "sales_rep", department=deps["BJ"])
    seen = place(env, "account", {"name": "Beijing Motors", "external_id": "ERP-BJ"},
                 department=deps["BJ"])
    hidden = place(env, "account", {"name": "Shanghai Steel", "external_id": "ERP-SH"},
                   department=deps["SH"])
    return rep, seen, hidden


def test_a_hidden_record_is_not_found_by_key(env: Env) -> None:
    rep, seen, hidden = _world(env)
    found = _find(env, rep, "account", "external_id", ["ERP-BJ", "ERP-SH"])
    assert found == {"ERP-BJ": (seen["id"], seen["version"])}
    env.records.delete(SYSTEM, "account", hidden["id"])
    found = _find(env, rep, "account", "external_id", ["ERP-SH"])
    assert found == {} and found.binned == {}  # not even as binned


def test_references_by_id_external_id_and_name(env: Env) -> None:
    a = _account(env, "Acme  Holdings", "ERP-1")
    b = _account(env, "Beta", "777")  # an external id that looks like an id
    texts = [str(a["id"]), f"#{a['id']}", "ERP-1", "acme holdings", "ACME\u3000HOLDINGS",
             "777", f"#{b['id']}", "Nobody"]
    got = _resolve(env, SYSTEM, "contact", "account", texts)
    assert got[str(a["id"])] == a["id"] and got[f"#{a['id']}"] == a["id"]
    assert got["ERP-1"] == a["id"]
    assert got["acme holdings"] == a["id"] and got["ACME\u3000HOLDINGS"] == a["id"]
    assert got["777"] == b["id"]  # the external id wins over an id
    assert got[f"#{b['id']}"] == b["id"]
    assert isinstance(got["Nobody"], Message) and "Nobody" in got["Nobody"]


def test_a_text_with_a_nul_names_no_record_and_reaches_no_query(env: Env) -> None:
    a = _account(env, "Acme", "ERP-1")
    got = _resolve(env, SYSTEM, "contact", "account", ["Ac\x00me", "ERP-1\x00", "Acme"])
    assert got == {"Acme": a["id"]}  # PostgreSQL would refuse the NUL as a parameter
    assert _resolve(env, SYSTEM, "department", "manager", ["admin\x00"]) == {}


def test_an_ambiguous_name_asks_for_the_id(env: Env) -> None:
    acc = _account(env, "Acme")
    for _ in range(2):
        env.records.create(SYSTEM, "opportunity", {"name": "Big deal", "account": acc["id"],
                                                   "stage": "prospecting"})
    got = _resolve(env, SYSTEM, "quote", "opportunity", ["big deal"])
    problem = got["big deal"]
    assert isinstance(problem, Message)
    assert problem.startswith("2 ") and "id or external id" in problem


def test_a_hidden_reference_reads_exactly_like_a_missing_one(env: Env) -> None:
    rep, seen, hidden = _world(env)
    texts = ["ERP-BJ", "ERP-SH", "ERP-NONE", "Shanghai Steel", "Nobody Steel",
             str(hidden["id"]), f"#{hidden['id']}", "#999999"]
    got = _resolve(env, rep, "contact", "account", texts)
    assert got["ERP-BJ"] == seen["id"]
    for x in texts[1:]:
        assert isinstance(got[x], Message), x
    # word for word the message of a record that does not exist, value aside
    assert got["ERP-SH"].replace("ERP-SH", "X") == got["ERP-NONE"].replace("ERP-NONE", "X")
    assert got["Shanghai Steel"].replace("Shanghai Steel", "X") == \
        got["Nobody Steel"].replace("Nobody Steel", "X")
    assert got[f"#{hidden['id']}"].replace(str(hidden["id"]), "N") == \
        got["#999999"].replace("999999", "N")
    # and as the admin sees it
    admin = _resolve(env, SYSTEM, "contact", "account", ["ERP-SH", "Shanghai Steel"])
    assert admin == {"ERP-SH": hidden["id"], "Shanghai Steel": hidden["id"]}


def test_users_and_departments_by_name(env: Env) -> None:
    deps = departments(env)
    rep = user(env, "li_lei", "sales_rep", department=deps["BJ"])
    users = _resolve(env, SYSTEM, "department", "manager", ["LI_LEI", str(rep.user_id),
                                                            "nobody"])
    assert users["LI_LEI"] == rep.user_id and users[str(rep.user_id)] == rep.user_id
    assert isinstance(users["nobody"], Message)
    t = env.records.schema.table("department")
    with env.engine.connect() as conn:
        name = conn.execute(t.select().where(t.c.id == deps["BJ"])).mappings().one()["name"]
    parents = _resolve(env, SYSTEM, "department", "parent", [name.upper()])
    assert parents[name.upper()] == deps["BJ"]


def test_external_ids_in_api_references(env: Env) -> None:
    a = _account(env, "Acme", "ERP-1")
    with env.engine.connect() as conn:
        got = resolve_external_ids(conn, env.records, SYSTEM, "contact", "account",
                                   ["ERP-1", "ERP-2"])
    assert got["ERP-1"] == a["id"]
    assert isinstance(got["ERP-2"], Message) and "ERP-2" in got["ERP-2"]


def test_a_hidden_key_field_is_unknown(env: Env) -> None:
    deps = departments(env)
    rep = user(env, "rep2", "sales_rep", department=deps["BJ"])
    with pytest.raises(NotFound):
        _resolve(env, rep, "contact", "no_such_field", ["x"])

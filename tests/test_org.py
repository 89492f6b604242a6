"""Departments (engine/runtime/org.py): config/org.yaml seeds a new database once, through
`crm migrate` and `crm user add --department NAME|ID`; paths up the tree; and trees that
cannot go round in a circle (department.parent, contact.reports_to)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from engine.cli import main
from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from engine.runtime.errors import Invalid
from engine.runtime.org import department_path, seed_org
from engine.runtime.schema import build_schema
from engine.runtime.users import Users
from tests.access_helpers import departments, place
from tests.conftest import CONFIG, Env, EnvFactory


def crm(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(CONFIG), "--db", db_url, *args])


def tree(db_url: str) -> dict[str, str | None]:
    """code -> parent's code, as stored."""
    model = load_model(CONFIG)
    engine = open_engine(db_url)
    try:
        t = build_schema(model).table("department")
        with engine.connect() as conn:
            rows = conn.execute(select(t.c.id, t.c.code, t.c.parent, t.c.deleted_at)).all()
    finally:
        engine.dispose()
    by_id = {r.id: r.code for r in rows}
    return {r.code: by_id.get(r.parent) for r in rows}


def test_migrate_seeds_the_tree_once(db_url: str) -> None:
    first = crm(db_url, "migrate")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[-1] == "created 10 department(s) from config/org.yaml"
    assert tree(db_url) == {"HQ": None, "NORTH": "HQ", "BJ": "NORTH", "SY": "NORTH",
                            "EAST": "HQ", "SH": "EAST", "HZ": "EAST", "EU": "HQ", "HH": "EU",
                            "PARTNERS": "HQ"}
    second = crm(db_url, "migrate")
    assert second.exit_code == 0, second.output
    assert second.stdout == "schema is up to date\n"
    assert len(tree(db_url)) == 10


def test_seed_only_into_an_empty_department_table(make_env: EnvFactory, config_dir: Path
                                                  ) -> None:
    env = make_env(config_dir)
    env.records.create(SYSTEM, "department", {"name": "Own tree", "code": "OWN"})
    assert seed_org(env.records) == 0
    (config_dir / "org.yaml").unlink()
    bare = make_env(config_dir)
    assert seed_org(records_service(bare.engine, bare.model)) == 0


def test_seeded_departments_are_records(env: Env) -> None:
    d = departments(env)
    row = env.records.get(SYSTEM, "department", d["PARTNERS"])
    assert (row["name"], row["kind"], row["parent"], row["owner_id"]) == (
        "Partner network", "partner", d["HQ"], None)
    assert env.records.history(SYSTEM, "department", d["BJ"])[0]["action"] == "create"


def test_department_path(env: Env) -> None:
    d = departments(env)
    with env.engine.connect() as conn:
        assert department_path(conn, env.records, d["BJ"]) == [
            (d["HQ"], "Headquarters"), (d["NORTH"], "North region"), (d["BJ"], "Beijing branch")]
        assert department_path(conn, env.records, None) == []
        assert department_path(conn, env.records, 10**6) == []


# -- crm user add --department -------------------------------------------------------------------


def _department_of(db_url: str, name: str) -> int | None:
    engine = open_engine(db_url)
    try:
        return Users(engine, build_schema(load_model(CONFIG))).by_name(name).department_id
    finally:
        engine.dispose()


def test_user_add_takes_a_department_by_name_or_id(db_url: str) -> None:
    by_name = crm(db_url, "user", "add", "x", "--role", "sales_rep",
                  "--department", "Shanghai branch")
    assert by_name.exit_code == 0, by_name.output  # seeds the tree on a new database too
    assert by_name.stdout.startswith("user x (id ")
    engine = open_engine(db_url)
    try:
        records = records_service(engine, load_model(CONFIG))
        t = records.schema.table("department")
        with engine.connect() as conn:
            ids = {r.code: r.id for r in conn.execute(select(t.c.code, t.c.id))}
    finally:
        engine.dispose()
    assert _department_of(db_url, "x") == ids["SH"]
    by_id = crm(db_url, "user", "add", "y", "--role", "sales_manager", "--role", "presales",
                "--department", str(ids["EAST"]))
    assert by_id.exit_code == 0, by_id.output
    assert _department_of(db_url, "y") == ids["EAST"]
    assert "with roles sales_manager, presales" in by_id.stdout
    none = crm(db_url, "user", "add", "z", "--role", "executive")
    assert none.exit_code == 0, none.output
    assert _department_of(db_url, "z") is None


def test_user_add_takes_a_department_code(db_url: str) -> None:
    """docs/access.md writes `crm user add li --role sales_rep --department SH`."""
    by_code = crm(db_url, "user", "add", "li", "--role", "sales_rep", "--department", "SH")
    assert by_code.exit_code == 0, by_code.output
    lower = crm(db_url, "user", "add", "wu", "--role", "sales_rep", "--department", "sh")
    assert lower.exit_code == 1 and "no single department 'sh'" in lower.stderr
    engine = open_engine(db_url)
    try:
        t = build_schema(load_model(CONFIG)).table("department")
        with engine.connect() as conn:
            sh = conn.execute(select(t.c.id).where(t.c.code == "SH")).scalar_one()
    finally:
        engine.dispose()
    assert _department_of(db_url, "li") == sh


def test_a_department_in_use_is_not_deleted(env: Env) -> None:
    """Users, live departments under it and live records keep a department: 409 naming
    them, and the department stays; once empty it goes (204)."""
    ids = departments(env)
    api = env.client(env.users.new_token("admin"))
    rep = env.users.add("rep", ["sales_rep"], password="rep-password",
                        department_id=ids["SH"])
    account = place(env, "account", {"name": "Acme"}, department=ids["SH"])
    r = api.delete(f"/api/department/{ids['SH']}")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["message"] == ("the department still has 1 active user(s), 0 department(s) "
                                "under it and 1 record(s); account: 1; move them to another "
                                "department first")
    assert set(error["fields"]) == {"users", "records"}
    r = api.delete(f"/api/department/{ids['EAST']}")
    assert r.status_code == 409 and set(r.json()["error"]["fields"]) == {"departments"}
    env.records.assign(SYSTEM, "account", account["id"], owner=None, department=ids["HZ"])
    r = api.delete(f"/api/department/{ids['SH']}")
    assert r.status_code == 409 and set(r.json()["error"]["fields"]) == {"users"}
    env.users.add("keeper", ["admin"], password="keeper-password")
    env.users.set_active("rep", False)  # an inactive user keeps no department alive
    assert rep.id and api.delete(f"/api/department/{ids['SH']}").status_code == 204
    assert api.get(f"/api/department/{ids['SH']}").status_code == 404


@pytest.mark.parametrize(("args", "message"), [
    (("--role", "sales_rep", "--department", "Atlantis"), "error: no single department "
                                                          "'Atlantis'"),
    (("--role", "sales_rep", "--department", "999"), "error: no single department '999'"),
    (("--role", "salesrep",), "error: user is not valid (role: no role 'salesrep' in config"),
])
def test_user_add_refusals(db_url: str, args: tuple[str, ...], message: str) -> None:
    result = crm(db_url, "user", "add", "x", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.output


# -- no circles -----------------------------------------------------------------------------------


def _circle(env: Env, entity: str, field: str, a: int, b: int) -> dict[str, str]:
    """Put a under b, then try b under a; return the refusal's fields."""
    records = env.records
    records.update(SYSTEM, entity, a, {field: b}, records.get(SYSTEM, entity, a)["version"])
    version = records.get(SYSTEM, entity, b)["version"]
    with pytest.raises(Invalid) as info:
        records.update(SYSTEM, entity, b, {field: a}, version)
    assert records.get(SYSTEM, entity, b)["version"] == version
    return info.value.fields


def test_departments_cannot_go_round(env: Env) -> None:
    d = departments(env)
    a = int(env.records.create(SYSTEM, "department", {"name": "A"})["id"])
    b = int(env.records.create(SYSTEM, "department", {"name": "B"})["id"])
    fields = _circle(env, "department", "parent", a, b)
    assert set(fields) == {"parent"}
    assert "circle" in fields["parent"]
    # deeper: headquarters under one of its own branches
    version = env.records.get(SYSTEM, "department", d["HQ"])["version"]
    with pytest.raises(Invalid) as info:
        env.records.update(SYSTEM, "department", d["HQ"], {"parent": d["BJ"]}, version)
    assert set(info.value.fields) == {"parent"}
    with pytest.raises(Invalid) as info:
        env.records.update(SYSTEM, "department", a, {"parent": a},
                           env.records.get(SYSTEM, "department", a)["version"])
    assert info.value.fields == {"parent": "cannot point to the record itself"}


def test_contacts_cannot_report_in_a_circle(env: Env) -> None:
    acc = place(env, "account", {"name": "acme"})
    a = int(place(env, "contact", {"full_name": "a", "account": acc["id"]})["id"])
    b = int(place(env, "contact", {"full_name": "b", "account": acc["id"]})["id"])
    c = int(place(env, "contact", {"full_name": "c", "account": acc["id"]})["id"])
    env.records.update(SYSTEM, "contact", c, {"reports_to": a},
                       env.records.get(SYSTEM, "contact", c)["version"])
    fields = _circle(env, "contact", "reports_to", a, b)
    assert set(fields) == {"reports_to"}
    api = env.client(env.users.new_token("admin"))
    version = env.records.get(SYSTEM, "contact", b)["version"]
    answer = api.patch(f"/api/contact/{b}", json={"reports_to": c, "version": version})
    assert answer.status_code == 422
    assert set(answer.json()["error"]["fields"]) == {"reports_to"}


def test_a_seed_that_fails_leaves_no_department_behind(make_env: EnvFactory,
                                                       config_dir: Path) -> None:
    """All or nothing: the next migrate, after config is fixed, seeds the whole tree."""
    from tests.test_schema_evolution import set_field

    set_field(config_dir, "department", "name",
              "{type: text, required: true, max_length: 13}")
    env = make_env(config_dir)
    with pytest.raises(Invalid) as caught:
        seed_org(env.records)
    assert "org.yaml" in caught.value.message and "North region" not in caught.value.message
    assert "cannot be created: name:" in caught.value.message
    t = env.records.schema.table("department")
    with env.engine.connect() as conn:
        assert conn.execute(select(t.c.id)).first() is None
        audit = env.records.audit
        assert conn.execute(select(audit.c.id).where(audit.c.entity == "department")
                            ).first() is None

"""Schema evolution on SQLite and PostgreSQL: edit the YAML, plan, apply, and check the data.

Every test edits a private copy of config/ (`config_dir`), reloads it with `load_model`, and
plans or applies against the same database (`db_url`), as an administrator would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from engine.metadata import Model, load_model
from engine.runtime.db import open_engine
from engine.runtime.errors import Invalid
from engine.runtime.records.query import ListQuery
from engine.runtime.schema import PlanError, apply_plan, build_schema, plan_schema
from engine.runtime.schema import apply as apply_module
from engine.runtime.schema.plan import Plan
from engine.runtime.schema.tables import MIGRATION_TABLE, SYSTEM_TABLES
from tests.conftest import CONFIG, Env, EnvFactory

# -- helpers ------------------------------------------------------------------------------


def _drop_from_form(config: Path, entity: str, name: str) -> None:
    """Take a removed field off its entity's form too, as an administrator would (a form
    naming a field the entity lacks is a configuration error)."""
    form = config / "forms" / f"{entity}.yaml"
    if form.exists():
        text = form.read_text(encoding="utf-8")
        text = re.sub(rf"(?m)^\w+: \[{name}\]\n", "", text)  # a list of that field alone
        text = re.sub(rf"(?<=[\[ ]){name}, |, {name}(?=\])", "", text)
        form.write_text(text, encoding="utf-8")
        _drop_related(config, entity, name)


def _drop_related(config: Path, entity: str, name: str) -> None:
    """Take off the entity's form the related list of its own records through reference
    `name` (an account's sub-accounts through parent), as when that field goes or points
    elsewhere."""
    form = config / "forms" / f"{entity}.yaml"
    text = form.read_text(encoding="utf-8")
    text = re.sub(rf"(?m)^  - entity: {entity}\n    via: {name}\n(?:    .*\n)*", "", text)
    form.write_text(text, encoding="utf-8")


def set_field(config: Path, entity: str, name: str, spec: str | None) -> int:
    """Replace, add (first under `fields:`) or, with None, remove the one-line field `name`.

    Returns the 1-based line of the field (or where it was).
    """
    path = config / "entities" / f"{entity}.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if line.startswith(f"  {name}:")), None)
    if spec is None:
        assert at is not None, f"{entity}.{name} is not in the YAML"
        del lines[at]
        _drop_from_form(config, entity, name)
        _drop_from_duplicate_rules(lines, name)
    elif at is None:
        at = lines.index("fields:\n") + 1
        lines.insert(at, f"  {name}: {spec}\n")
    else:
        lines[at] = f"  {name}: {spec}\n"
    path.write_text("".join(lines), encoding="utf-8")
    return at + 1


def _drop_from_duplicate_rules(lines: list[str], name: str) -> None:
    """Take a removed field out of the entity's one-line `duplicates:` rules, keeping the
    line count (callers name lines of the file): a rule left empty becomes a comment, and
    so does `duplicates:` when no rule is left."""
    start = next((i for i, line in enumerate(lines) if line == "duplicates:\n"), None)
    if start is None:
        return
    at, live = start + 1, 0
    while at < len(lines) and lines[at].startswith("  "):
        rule = re.fullmatch(r"  - match: \[(.*)\]\n", lines[at])
        if rule is not None:
            kept = [f.strip() for f in rule.group(1).split(",") if f.strip() != name]
            lines[at] = f"  - match: [{', '.join(kept)}]\n" if kept else "  # rule removed\n"
            live += bool(kept)
        at += 1
    if not live:
        lines[start] = "# duplicates: no rule left\n"


def yaml_loc(config: Path, entity: str, line: int) -> str:
    """How a config error names a field written by `set_field` (two-space indent)."""
    return f"{config / 'entities' / f'{entity}.yaml'}:{line}:3"


def column_names(engine: Engine, table: str) -> list[str]:
    return [c["name"] for c in inspect(engine).get_columns(table)]


def column_type(engine: Engine, table: str, column: str) -> Any:
    return next(c["type"] for c in inspect(engine).get_columns(table) if c["name"] == column)


def raw_values(engine: Engine, table: str, column: str) -> dict[int, Any]:
    """id → value of a column, read with plain SQL (sees archived columns too)."""
    with engine.connect() as conn:
        rows = conn.execute(text(f'SELECT id, "{column}" FROM "{table}" ORDER BY id')).all()
    return {int(r[0]): r[1] for r in rows}


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything about the schema a migration could change, and every row."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for t in sorted(insp.get_table_names()):
            out[t] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"])
                            for c in insp.get_columns(t)],
                "indexes": sorted((str(ix["name"]), tuple(ix["column_names"]),
                                   bool(ix["unique"])) for ix in insp.get_indexes(t)),
                "fks": sorted((str(fk["name"]), tuple(fk["constrained_columns"]),
                               fk["referred_table"]) for fk in insp.get_foreign_keys(t)),
                "rows": [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY 1'))],
            }
    return out


def indexes(engine: Engine, table: str) -> dict[str, tuple[tuple[str, ...], bool]]:
    return {str(ix["name"]): (tuple(c or "" for c in ix["column_names"]), bool(ix["unique"]))
            for ix in inspect(engine).get_indexes(table)}


def foreign_keys(engine: Engine, table: str) -> list[tuple[str, str]]:
    """(column, referred table) of every foreign key, sorted; duplicates would show twice."""
    return sorted((",".join(fk["constrained_columns"]), fk["referred_table"])
                  for fk in inspect(engine).get_foreign_keys(table))


def migration_rows(engine: Engine) -> list[dict[str, Any]]:
    t = build_schema(load_model(CONFIG)).table(MIGRATION_TABLE)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).order_by(t.c.id)).mappings()]


def steps(plan: Plan) -> list[tuple[str, str, str | None]]:
    return [(s.kind, s.table, s.column) for s in plan.steps]


def raw_insert(engine: Engine, table: str, **values: Any) -> None:
    """Insert a row with plain SQL, bypassing the records service."""
    now = datetime.now(UTC).replace(tzinfo=None)
    cols = {"version": 1, "created_at": now, "updated_at": now, **values}
    with engine.begin() as conn:
        conn.execute(text(f'INSERT INTO "{table}" ({", ".join(cols)}) '
                          f'VALUES ({", ".join(":" + k for k in cols)})'), cols)


def raw_update(engine: Engine, table: str, record_id: int, **values: Any) -> None:
    """Set columns of one row with plain SQL, bypassing the records service."""
    with engine.begin() as conn:
        conn.execute(text(f'UPDATE "{table}" SET '
                          f'{", ".join(f"{k} = :{k}" for k in values)} WHERE id = :id'),
                     {**values, "id": record_id})


def accounts(env: Env, *names: str, **extra: Any) -> list[int]:
    actor = env.admin.actor()
    return [int(env.records.create(actor, "account", {"name": n, **extra})["id"])
            for n in names]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine of our own on the test's database, for plans and raw checks."""
    eng = open_engine(db_url)
    yield eng
    eng.dispose()


# -- a fresh database ---------------------------------------------------------------------


def test_fresh_database_plan_creates_every_table_then_is_empty(
        config_dir: Path, engine: Engine) -> None:
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    created = {s.table for s in plan.steps if s.kind == "create_table"}
    assert created == set(model.entity_names) | set(SYSTEM_TABLES)
    assert {s.kind for s in plan.steps} == {"create_table", "add_index"}
    assert not plan.destructive and not plan.errors and not plan.archived
    assert "create_table crm_migration: new table with 5 columns" in plan.describe()
    described = plan.describe()

    before = datetime.now(UTC)
    applied = apply_plan(engine, model)
    after = datetime.now(UTC)
    assert [s.as_json() for s in applied.steps] == [s.as_json() for s in plan.steps]
    assert set(inspect(engine).get_table_names()) == created
    for table in created:  # the plan said how many columns each table would have
        columns = len(inspect(engine).get_columns(table))
        assert f"create_table {table}: new table with {columns} columns" in described

    again = plan_schema(engine, model)
    assert again.is_empty and again.describe() == "schema is up to date"
    assert apply_plan(engine, model).is_empty

    rows = migration_rows(engine)
    assert len(rows) == 1  # an empty plan records nothing
    row = rows[0]
    assert row["config_hash"] == model.config_hash and len(row["config_hash"]) == 64
    assert row["destructive"] is False
    assert before <= row["applied_at"] <= after
    recorded = json.loads(row["steps"])
    assert recorded == [s.as_json() for s in plan.steps]
    assert {"kind": "add_index", "table": "account", "column": "name",
            "detail": "unique index uq_account_name", "loss": None} in recorded


def test_fresh_database_with_links_in_a_cycle(config_dir: Path, engine: Engine,
                                              db_url: str) -> None:
    """account → contact → account, and department → account → department."""
    set_field(config_dir, "account", "main_contact", "{type: reference, to: contact}")
    set_field(config_dir, "department", "hq", "{type: reference, to: account}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    deferred = sorted((s.table, s.column) for s in plan.steps if s.kind == "add_foreign_key")
    if db_url.startswith("sqlite"):
        assert deferred == []  # SQLite keeps them inline; it checks references only on write
    else:
        assert deferred == [("account", "department_id"), ("account", "main_contact"),
                            ("contact", "account"), ("contact", "department_id"),
                            ("department", "hq")]
    apply_plan(engine, model)
    assert plan_schema(engine, model).is_empty
    assert foreign_keys(engine, "account") == [
        ("department_id", "department"), ("main_contact", "contact"),
        ("owner_id", "crm_user"), ("parent", "account")]
    assert foreign_keys(engine, "department") == [
        ("department_id", "department"), ("hq", "account"), ("manager", "crm_user"),
        ("owner_id", "crm_user"), ("parent", "department")]
    with pytest.raises(IntegrityError):
        raw_insert(engine, "account", name="Acme", main_contact=42)
    with pytest.raises(IntegrityError):
        raw_insert(engine, "department", name="HQ", hq=42)


ALL_TYPES = """\
entity: gadget
fields:
  t_text: {type: text, max_length: 30, unique: true}
  t_textarea: {type: textarea}
  t_integer: {type: integer, index: true}
  t_decimal: {type: decimal}
  t_money: {type: money}
  t_percent: {type: percent}
  t_boolean: {type: boolean, default: false}
  t_date: {type: date, index: true}
  t_datetime: {type: datetime}
  t_choice: {type: choice, options: [a, b]}
  t_multichoice: {type: multichoice, options: [a, b]}
  t_email: {type: email, unique: true}
  t_phone: {type: phone}
  t_url: {type: url}
  t_reference: {type: reference, to: gadget}
  t_user: {type: user}
  t_department: {type: department}
  t_autonumber: {type: autonumber, format: "G-{YYYY}-{0000}"}
"""


def test_every_field_type_reads_back_as_planned(config_dir: Path, engine: Engine) -> None:
    """Reflection of every column type matches the model: nothing to do after a migration."""
    (config_dir / "entities" / "gadget.yaml").write_text(ALL_TYPES, encoding="utf-8")
    model = load_model(config_dir)
    apply_plan(engine, model)
    again = plan_schema(engine, model)
    assert again.is_empty, again.describe()
    assert foreign_keys(engine, "gadget") == [
        ("department_id", "department"), ("owner_id", "crm_user"),
        ("t_department", "department"), ("t_reference", "gadget"), ("t_user", "crm_user")]
    assert {n for n, (_c, unique) in indexes(engine, "gadget").items() if unique} == \
        {"uq_gadget_t_text", "uq_gadget_t_email", "uq_gadget_t_autonumber"}


# -- adding fields ------------------------------------------------------------------------


def test_add_fields_to_a_table_with_rows(make_env: EnvFactory, config_dir: Path,
                                         engine: Engine) -> None:
    env = make_env(config_dir)
    actor = env.admin.actor()
    ids = accounts(env, "Acme", "Globex", city="Berlin", employees=12)
    before = {i: env.records.get(actor, "account", i) for i in ids}
    contact = env.records.create(actor, "contact", {"full_name": "Ann", "account": ids[0]})

    set_field(config_dir, "account", "region", "{type: text, max_length: 50}")
    set_field(config_dir, "account", "main_contact", "{type: reference, to: contact}")
    set_field(config_dir, "account", "segment", "{type: text, max_length: 40, index: true}")
    set_field(config_dir, "account", "code", "{type: text, max_length: 20, unique: true}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert sorted((s.kind, s.column, s.detail) for s in plan.steps) == [
        ("add_column", "code", "add VARCHAR(20)"),
        ("add_column", "main_contact", "add BIGINT"),
        ("add_column", "region", "add VARCHAR(50)"),
        ("add_column", "segment", "add VARCHAR(40)"),
        ("add_foreign_key", "main_contact", "link to contact"),
        ("add_index", "code", "unique index uq_account_code"),
        ("add_index", "main_contact", "index ix_account_main_contact"),
        ("add_index", "owner_id,segment", "index ixo_account_segment"),  # own lists by it
        ("add_index", "segment", "index ix_account_segment"),
    ]
    assert [s.kind for s in plan.steps][::4] == ["add_column", "add_foreign_key", "add_index"]
    assert not plan.destructive and all(s.table == "account" for s in plan.steps)

    env2 = make_env(config_dir)  # applies the plan, as `crm serve` would
    assert plan_schema(engine, model).is_empty
    for i in ids:
        now = env2.records.get(actor, "account", i)
        assert {k: now[k] for k in before[i]} == before[i]
        assert [now[k] for k in ("region", "main_contact", "segment", "code")] == [None] * 4
    assert {"region", "main_contact", "segment", "code"} <= set(column_names(engine, "account"))
    assert env2.records.get(actor, "contact", contact["id"])["account"] == ids[0]

    # the link is checked by the service (422) and by the database itself
    with pytest.raises(Invalid) as bad:
        env2.records.create(actor, "account", {"name": "Initech", "main_contact": 999_999})
    assert bad.value.status == 422
    assert bad.value.fields == {"main_contact": "no contact with id 999999"}
    good = env2.records.create(actor, "account", {"name": "Initech",
                                                  "main_contact": contact["id"]})
    assert env2.records.get(actor, "account", good["id"])["main_contact"] == contact["id"]
    assert foreign_keys(engine, "account") == [
        ("department_id", "department"), ("main_contact", "contact"),
        ("owner_id", "crm_user"), ("parent", "account")]
    for eng in (engine, env2.engine):  # env2's engine ran the migration on its pool
        with pytest.raises(IntegrityError):
            raw_insert(eng, "account", name="Umbrella", main_contact=999_999)
        with pytest.raises(IntegrityError):
            raw_insert(eng, "account", name="Hooli", parent=888_888)  # an older link
    assert foreign_keys(engine, "contact")[0] == ("account", "account")

    ix = indexes(engine, "account")
    assert ix["ix_account_segment"] == (("segment",), False)
    assert ix["ixo_account_segment"] == (("owner_id", "segment"), False)
    assert ix["ix_account_main_contact"] == (("main_contact",), False)
    assert ix["uq_account_code"] == (("code",), True)
    assert ix["uq_account_name"] == (("name",), True)  # kept through SQLite's rebuild
    assert ix["ix_account_country"] == (("country",), False)
    env2.records.update(actor, "account", ids[0], {"code": "A-1"}, version=1)
    with pytest.raises(Invalid) as dup:
        env2.records.update(actor, "account", ids[1], {"code": "A-1"}, version=1)
    assert dup.value.fields == {"code": "A-1 is already used"}
    with pytest.raises(IntegrityError):
        raw_insert(engine, "account", name="Dup", code="A-1")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a SQLite connection setting
def test_sqlite_foreign_keys_stay_on_after_a_migration(make_env: EnvFactory,
                                                       config_dir: Path, db_url: str) -> None:
    env = make_env(config_dir)
    set_field(config_dir, "account", "main_contact", "{type: reference, to: contact}")
    apply_plan(env.engine, load_model(config_dir))
    set_field(config_dir, "account", "code", "{type: text, renamed_from: nothing_here}")
    with pytest.raises(PlanError):
        apply_plan(env.engine, load_model(config_dir))
    for _ in range(3):
        with env.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL never has broken links
def test_sqlite_refuses_to_commit_broken_links(make_env: EnvFactory, config_dir: Path,
                                               db_url: str) -> None:
    """Links are checked before the commit, since SQLite rebuilds tables with checks off."""
    env = make_env(config_dir)
    accounts(env, "Acme")
    with env.engine.connect() as conn:  # an outside writer with the checks off
        conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore
        conn.exec_driver_sql("UPDATE account SET parent = 4242")
        conn.commit()
        conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore
    set_field(config_dir, "account", "main_contact", "{type: reference, to: contact}")
    before = snapshot(env.engine)
    with pytest.raises(PlanError) as exc:
        apply_plan(env.engine, load_model(config_dir))
    assert str(exc.value) == "account: 1 row(s) point to missing account records"
    assert snapshot(env.engine) == before


# -- renames ------------------------------------------------------------------------------


def test_rename_keeps_data_indexes_and_links(make_env: EnvFactory, config_dir: Path,
                                             engine: Engine) -> None:
    set_field(config_dir, "account", "code", "{type: text, max_length: 20, unique: true}")
    env = make_env(config_dir)
    actor = env.admin.actor()
    ids = accounts(env, "Acme", "Globex", city="Berlin", country="Germany")
    parent = ids[0]
    env.records.update(actor, "account", ids[1], {"parent": parent, "code": "G-1"}, version=1)

    set_field(config_dir, "account", "city", None)
    set_field(config_dir, "account", "town", "{type: text, max_length: 80, renamed_from: city}")
    set_field(config_dir, "account", "country", None)
    set_field(config_dir, "account", "nation",
              "{type: text, max_length: 80, index: true, renamed_from: country}")
    set_field(config_dir, "account", "parent", None)
    set_field(config_dir, "account", "mother",
              "{type: reference, to: account, renamed_from: parent}")
    set_field(config_dir, "account", "code", None)
    set_field(config_dir, "account", "ref_code",
              "{type: text, max_length: 20, unique: true, renamed_from: code}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert not plan.destructive and not plan.errors, plan.describe()
    assert sorted((s.kind, s.column, s.detail) for s in plan.steps) == [
        ("add_index", "mother", "index ix_account_mother"),
        ("add_index", "nation", "index ix_account_nation"),
        ("add_index", "owner_id,nation", "index ixo_account_nation"),
        ("add_index", "ref_code", "unique index uq_account_ref_code"),
        ("drop_index", None, "drop index ix_account_country"),
        ("drop_index", None, "drop index ix_account_parent"),
        ("drop_index", None, "drop index ixo_account_country"),
        ("drop_index", None, "drop index uq_account_code"),
        ("rename_column", "city", "rename to town"),
        ("rename_column", "code", "rename to ref_code"),
        ("rename_column", "country", "rename to nation"),
        ("rename_column", "parent", "rename to mother"),
    ]

    env2 = make_env(config_dir)
    assert plan_schema(engine, model).is_empty, plan_schema(engine, model).describe()
    cols = column_names(engine, "account")
    assert {"town", "nation", "mother", "ref_code"} <= set(cols)
    assert not {"city", "country", "parent", "code"} & set(cols)
    got = env2.records.get(actor, "account", ids[1])
    assert (got["town"], got["nation"], got["mother"], got["ref_code"]) == \
        ("Berlin", "Germany", parent, "G-1")
    ix = indexes(engine, "account")
    assert ix["ix_account_nation"] == (("nation",), False)
    assert ix["ixo_account_nation"] == (("owner_id", "nation"), False)
    assert ix["ix_account_mother"] == (("mother",), False)
    assert ix["uq_account_ref_code"] == (("ref_code",), True)
    assert not {"ix_account_country", "ix_account_parent", "uq_account_code"} & set(ix)
    assert ("mother", "account") in foreign_keys(engine, "account")
    with pytest.raises(IntegrityError):
        raw_insert(engine, "account", name="Hooli", mother=777_777)
    with pytest.raises(IntegrityError):
        raw_insert(engine, "account", name="Hooli", ref_code="G-1")
    assert plan_schema(engine, model).archived == ()


def test_rename_and_narrow_in_one_plan(make_env: EnvFactory, config_dir: Path,
                                       engine: Engine) -> None:
    env = make_env(config_dir)
    a, b = accounts(env, "Acme", "Globex")
    env.records.update(env.admin.actor(), "account", a, {"city": "Frankfurt am Main"},
                       version=1)
    env.records.update(env.admin.actor(), "account", b, {"city": "Bonn"}, version=1)
    set_field(config_dir, "account", "city", None)
    set_field(config_dir, "account", "town", "{type: text, max_length: 9, renamed_from: city}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert [(s.kind, s.column, s.loss) for s in plan.steps] == [
        ("rename_column", "city", None),
        ("narrow_column", "town", "1 values longer than 9 characters would be cut")]
    with pytest.raises(PlanError):
        apply_plan(engine, model)
    assert "town" not in column_names(engine, "account")
    apply_plan(engine, model, allow_destructive=True)
    assert raw_values(engine, "account", "town") == {a: "Frankfurt", b: "Bonn"}
    assert "city" not in column_names(engine, "account")
    assert plan_schema(engine, model).is_empty


def test_rename_and_widen_in_one_plan_is_safe(make_env: EnvFactory, config_dir: Path,
                                              engine: Engine) -> None:
    env = make_env(config_dir)
    (acme,) = accounts(env, "Acme", country="Germany")
    set_field(config_dir, "account", "country", None)
    set_field(config_dir, "account", "nation",
              "{type: textarea, index: true, renamed_from: country}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert sorted((s.kind, s.column) for s in plan.steps) == [
        ("add_index", "nation"), ("add_index", "owner_id,nation"), ("drop_index", None),
        ("drop_index", None), ("rename_column", "country"), ("widen_column", "nation")]
    apply_plan(engine, model)
    assert raw_values(engine, "account", "nation") == {acme: "Germany"}
    assert indexes(engine, "account")["ix_account_nation"] == (("nation",), False)
    assert plan_schema(engine, model).is_empty


def test_renamed_from_naming_nothing_is_an_error_with_its_place(
        make_env: EnvFactory, config_dir: Path, engine: Engine) -> None:
    make_env(config_dir)
    line = set_field(config_dir, "account", "town",
                     "{type: text, max_length: 80, renamed_from: no_such_column}")
    model = load_model(config_dir)
    before = snapshot(engine)
    plan = plan_schema(engine, model)
    expected = (f"{yaml_loc(config_dir, 'account', line)}: fields.town.renamed_from: "
                f"'no_such_column' names nothing: table account has no column 'no_such_column'")
    assert [str(e) for e in plan.errors] == [expected]
    with pytest.raises(PlanError) as exc:
        apply_plan(engine, model)
    assert str(exc.value) == expected
    assert snapshot(engine) == before


def test_renamed_from_on_a_new_table_is_not_an_error(config_dir: Path, engine: Engine) -> None:
    set_field(config_dir, "account", "town", "{type: text, renamed_from: city_old}")
    model = load_model(config_dir)
    apply_plan(engine, model)
    assert "town" in column_names(engine, "account")
    assert plan_schema(engine, model).is_empty


# -- removing fields: archive, restore, drop ----------------------------------------------


def test_removed_field_is_archived_restored_and_dropped_only_on_request(
        make_env: EnvFactory, config_dir: Path, engine: Engine) -> None:
    env = make_env(config_dir)
    actor = env.admin.actor()
    ids = accounts(env, "Acme", "Globex", "Initech", city="Berlin")
    env.records.update(actor, "account", ids[2], {"city": None}, version=1)
    set_field(config_dir, "account", "city", None)

    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert steps(plan) == [("archive_column", "account", "city")]
    assert not plan.destructive
    assert plan.archived == (("account", "city"),)
    assert plan.describe() == (
        "archive_column account.city: field removed from config: column kept and hidden\n"
        "archived columns (kept, hidden; restore by adding the field back):\n"
        "  account.city")

    env2 = make_env(config_dir)
    assert "city" in column_names(engine, "account")
    assert raw_values(engine, "account", "city") == {ids[0]: "Berlin", ids[1]: "Berlin",
                                                     ids[2]: None}
    after = plan_schema(engine, model)
    assert after.is_empty and after.archived == (("account", "city"),)
    assert "  account.city" in after.describe()
    got = env2.records.get(actor, "account", ids[0])
    assert "city" not in got and got["name"] == "Acme"
    listed = env2.records.list_records(actor, "account", ListQuery())
    assert [sorted(item) for item in listed.items] == [sorted(got)] * 3
    new = env2.records.create(actor, "account", {"name": "Hooli"})
    assert raw_values(engine, "account", "city")[new["id"]] is None

    # dropping needs --allow-destructive, and says what would be lost
    with pytest.raises(PlanError) as refused:
        apply_plan(engine, model, drop_archived=True)
    assert str(refused.value) == (
        "refusing a destructive step without --allow-destructive: DESTRUCTIVE drop_column "
        "account.city: drop archived column — would lose: 2 non-empty values in account.city")
    assert raw_values(engine, "account", "city")[ids[0]] == "Berlin"

    # the field comes back with the same name: its data returns
    set_field(config_dir, "account", "city", "{type: text, max_length: 80}")
    model3 = load_model(config_dir)
    assert steps(plan_schema(engine, model3)) == [("restore_column", "account", "city")]
    env3 = make_env(config_dir)
    assert env3.records.get(actor, "account", ids[1])["city"] == "Berlin"
    assert env3.records.get(actor, "account", ids[2])["city"] is None
    restored = plan_schema(engine, model3)
    assert restored.is_empty and restored.archived == ()

    # removed again, then dropped for good with the flag
    set_field(config_dir, "account", "city", None)
    model4 = load_model(config_dir)
    apply_plan(engine, model4)
    drop = plan_schema(engine, model4, drop_archived=True)
    assert [(s.kind, s.column, s.loss) for s in drop.steps] == \
        [("drop_column", "city", "2 non-empty values in account.city")]
    assert drop.archived == ()
    apply_plan(engine, model4, allow_destructive=True, drop_archived=True)
    assert "city" not in column_names(engine, "account")
    final = plan_schema(engine, model4)
    assert final.is_empty and final.archived == ()
    last = migration_rows(engine)[-1]
    assert last["destructive"] is True
    assert json.loads(last["steps"]) == [
        {"kind": "drop_column", "table": "account", "column": "city",
         "detail": "drop archived column", "loss": "2 non-empty values in account.city"}]
    # a field of that name now starts empty
    set_field(config_dir, "account", "city", "{type: text, max_length: 80}")
    env5 = make_env(config_dir)
    assert env5.records.get(actor, "account", ids[0])["city"] is None


def test_history_hides_an_archived_field(make_env: EnvFactory, config_dir: Path) -> None:
    env = make_env(config_dir)
    (acme,) = accounts(env, "Acme", city="Berlin")
    before = [h["field"] for h in env.records.history(env.admin.actor(), "account", acme)]
    assert {"name", "city", "tier", "status"} <= set(before)
    set_field(config_dir, "account", "city", None)
    env2 = make_env(config_dir)
    history = env2.records.history(env2.admin.actor(), "account", acme)
    assert [h["field"] for h in history] == [f for f in before if f != "city"]


def test_archived_index_and_link_stay_until_dropped(make_env: EnvFactory, config_dir: Path,
                                                    engine: Engine) -> None:
    env = make_env(config_dir)
    acme, globex = accounts(env, "Acme", "Globex", country="Germany")
    env.records.update(env.admin.actor(), "account", globex, {"parent": acme}, version=1)
    set_field(config_dir, "account", "country", None)
    set_field(config_dir, "account", "parent", None)
    model = load_model(config_dir)
    apply_plan(engine, model)
    assert indexes(engine, "account")["ix_account_country"] == (("country",), False)
    assert ("parent", "account") in foreign_keys(engine, "account")
    assert plan_schema(engine, model).archived == (("account", "country"),
                                                   ("account", "parent"))

    drop = plan_schema(engine, model, drop_archived=True)
    assert sorted((s.kind, s.column, s.loss) for s in drop.steps) == [
        ("drop_column", "country", "2 non-empty values in account.country"),
        ("drop_column", "parent", "1 non-empty values in account.parent"),
        ("drop_index", None, None), ("drop_index", None, None),
        ("drop_index", None, None)]  # ix_account_country, ixo_account_country, ix_account_parent
    apply_plan(engine, model, allow_destructive=True, drop_archived=True)
    assert not {"country", "parent"} & set(column_names(engine, "account"))
    assert not {"ix_account_country", "ix_account_parent"} & set(indexes(engine, "account"))
    assert ("parent", "account") not in foreign_keys(engine, "account")
    assert plan_schema(engine, model).is_empty


def test_renaming_an_archived_column_brings_it_back(make_env: EnvFactory, config_dir: Path,
                                                    engine: Engine) -> None:
    env = make_env(config_dir)
    (acme,) = accounts(env, "Acme", city="Berlin")
    set_field(config_dir, "account", "city", None)
    apply_plan(engine, load_model(config_dir))
    set_field(config_dir, "account", "town", "{type: text, max_length: 80, renamed_from: city}")
    model = load_model(config_dir)
    assert steps(plan_schema(engine, model)) == [("rename_column", "account", "city")]
    env2 = make_env(config_dir)
    assert env2.records.get(env2.admin.actor(), "account", acme)["town"] == "Berlin"
    after = plan_schema(engine, model)
    assert after.is_empty and after.archived == ()


# -- widening, narrowing, changing a type -------------------------------------------------


def test_widen_then_narrow_text(make_env: EnvFactory, config_dir: Path,
                                engine: Engine) -> None:
    set_field(config_dir, "account", "code", "{type: text, max_length: 100}")
    env = make_env(config_dir)
    actor = env.admin.actor()
    long_value = "ABCDEFGHIJ-" + "x" * 80
    a, b, c = accounts(env, "Acme", "Globex", "Initech")
    env.records.update(actor, "account", a, {"code": long_value}, version=1)
    env.records.update(actor, "account", b, {"code": "short"}, version=1)
    env.records.update(actor, "account", c, {"code": "0123456789abc"}, version=1)

    set_field(config_dir, "account", "code", "{type: text, max_length: 200}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert [(s.kind, s.column, s.detail, s.destructive) for s in plan.steps] == \
        [("widen_column", "code", "VARCHAR(100) → VARCHAR(200)", False)]
    apply_plan(engine, model)
    assert column_type(engine, "account", "code").length == 200
    assert plan_schema(engine, model).is_empty
    assert raw_values(engine, "account", "code") == {a: long_value, b: "short",
                                                     c: "0123456789abc"}

    set_field(config_dir, "account", "code", "{type: text, max_length: 10}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert [(s.kind, s.column, s.destructive, s.loss) for s in plan.steps] == [
        ("narrow_column", "code", True, "2 values longer than 10 characters would be cut")]
    before = snapshot(engine)
    with pytest.raises(PlanError) as refused:
        apply_plan(engine, model)
    assert str(refused.value) == (
        "refusing a destructive step without --allow-destructive: DESTRUCTIVE narrow_column "
        "account.code: VARCHAR(200) → VARCHAR(10) — would lose: 2 values longer than 10 "
        "characters would be cut")
    assert snapshot(engine) == before

    apply_plan(engine, model, allow_destructive=True)
    assert column_type(engine, "account", "code").length == 10
    assert raw_values(engine, "account", "code") == {a: "ABCDEFGHIJ", b: "short",
                                                     c: "0123456789"}
    assert plan_schema(engine, model).is_empty


def test_widening_numbers_keeps_values(make_env: EnvFactory, config_dir: Path,
                                       engine: Engine) -> None:
    set_field(config_dir, "account", "share", "{type: percent}")
    env = make_env(config_dir)
    actor = env.admin.actor()
    (acme,) = [int(env.records.create(actor, "account", {"name": "Acme", "share": "12.3456"})
                   ["id"])]
    set_field(config_dir, "account", "share", "{type: decimal}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert [(s.kind, s.column, s.detail, s.destructive) for s in plan.steps] == [
        ("widen_column", "share", "NUMERIC(9, 4) → NUMERIC(15, 4)", False)]
    apply_plan(engine, model)
    env2 = make_env(config_dir)
    assert env2.records.get(actor, "account", acme)["share"] == Decimal("12.3456")
    assert plan_schema(engine, model).is_empty


def test_narrowing_says_which_values_become_blank(make_env: EnvFactory, config_dir: Path,
                                                  engine: Engine) -> None:
    env = make_env(config_dir)
    a, b = accounts(env, "Acme", "Globex")
    env.records.update(env.admin.actor(), "account", a, {"email": "sales@acme.example"},
                       version=1)
    env.records.update(env.admin.actor(), "account", b, {"email": "a@b.cn"}, version=1)
    set_field(config_dir, "account", "email", "{type: email, max_length: 10}")
    model = load_model(config_dir)
    (step,) = plan_schema(engine, model).steps
    assert step.loss == ("1 values longer than 10 characters would be cut; 1 of 2 non-empty "
                         "values cannot be converted and would become blank, e.g. "
                         "'sales@acme.example'")
    apply_plan(engine, model, allow_destructive=True)
    assert raw_values(engine, "account", "email") == {a: None, b: "a@b.cn"}


def test_text_to_integer_then_money(make_env: EnvFactory, config_dir: Path,
                                    engine: Engine) -> None:
    set_field(config_dir, "account", "code", "{type: text, max_length: 40, index: true}")
    env = make_env(config_dir)
    actor = env.admin.actor()
    a, b, c = accounts(env, "Acme", "Globex", "Initech")
    env.records.update(actor, "account", a, {"code": "12"}, version=1)
    env.records.update(actor, "account", b, {"code": "abc"}, version=1)

    set_field(config_dir, "account", "code", "{type: integer, index: true}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    loss = "1 of 2 non-empty values cannot be converted and would become blank, e.g. 'abc'"
    assert [(s.kind, s.column, s.destructive, s.loss) for s in plan.steps] == \
        [("change_type", "code", True, loss)]
    before = snapshot(engine)
    with pytest.raises(PlanError) as refused:
        apply_plan(engine, model)
    assert str(refused.value) == (
        "refusing a destructive step without --allow-destructive: DESTRUCTIVE change_type "
        f"account.code: VARCHAR(40) → BIGINT — would lose: {loss}")
    assert snapshot(engine) == before

    apply_plan(engine, model, allow_destructive=True)
    env2 = make_env(config_dir)
    assert raw_values(engine, "account", "code") == {a: 12, b: None, c: None}
    assert env2.records.get(actor, "account", a)["code"] == 12
    assert indexes(engine, "account")["ix_account_code"] == (("code",), False)
    assert plan_schema(engine, model).is_empty
    assert json.loads(migration_rows(engine)[-1]["steps"])[0]["loss"] == loss

    # integer → money: every value fits, but a type change still needs the flag
    env2.records.update(actor, "account", c, {"code": 7}, version=1)
    set_field(config_dir, "account", "code", "{type: money, index: true}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert [(s.kind, s.column, s.loss) for s in plan.steps] == [
        ("change_type", "code",
         "0 of 2 non-empty values cannot be converted and would become blank")]
    with pytest.raises(PlanError):
        apply_plan(engine, model)
    apply_plan(engine, model, allow_destructive=True)
    env3 = make_env(config_dir)
    assert [env3.records.get(actor, "account", i)["code"] for i in (a, b, c)] == \
        [Decimal("12.00"), None, Decimal("7.00")]
    assert indexes(engine, "account")["ix_account_code"] == (("code",), False)
    assert plan_schema(engine, model).is_empty


@pytest.mark.parametrize(("before", "after", "values", "converted", "lost"), [
    ("{type: money}", "{type: integer}", ["12.00", "12.50"], [12, None], "Decimal('12.50')"),
    ("{type: date}", "{type: datetime}", ["2025-03-31"],
     [datetime(2025, 3, 31, tzinfo=UTC)], None),
    ("{type: datetime}", "{type: date}", ["2025-03-31T23:30:00Z"],
     [datetime(2025, 3, 31).date()], None),
    ("{type: integer}", "{type: text, max_length: 3}", [7, 1234], ["7", None], "1234"),
    # input rules: a whole number is never true or false (SQLite's 1 and 0 included)
    ("{type: boolean}", "{type: integer}", [True, False], [None, None], "True, False"),
])
def test_conversions_read_values_the_same_on_every_database(
        make_env: EnvFactory, config_dir: Path, engine: Engine, before: str, after: str,
        values: list[Any], converted: list[Any], lost: str | None) -> None:
    set_field(config_dir, "account", "x_value", before)
    env = make_env(config_dir)
    actor = env.admin.actor()
    ids = [int(env.records.create(actor, "account", {"name": f"A{i}", "x_value": v})["id"])
           for i, v in enumerate(values)]
    set_field(config_dir, "account", "x_value", after)
    model = load_model(config_dir)
    (step,) = plan_schema(engine, model).steps
    n_lost = sum(v is None for v in converted)
    expected = (f"{n_lost} of {len(values)} non-empty values cannot be converted and would "
                f"become blank")
    assert step.loss == (f"{expected}, e.g. {lost}" if lost else expected)
    apply_plan(engine, model, allow_destructive=True)
    env2 = make_env(config_dir)
    assert [env2.records.get(actor, "account", i)["x_value"] for i in ids] == converted


def test_text_to_reference_blanks_links_to_nothing(make_env: EnvFactory, config_dir: Path,
                                                   engine: Engine) -> None:
    set_field(config_dir, "account", "contact_ref", "{type: text, max_length: 20}")
    env = make_env(config_dir)
    actor = env.admin.actor()
    a, b = accounts(env, "Acme", "Globex")
    ann = env.records.create(actor, "contact", {"full_name": "Ann", "account": a})
    env.records.update(actor, "account", a, {"contact_ref": str(ann["id"])}, version=1)
    env.records.update(actor, "account", b, {"contact_ref": "99999"}, version=1)
    set_field(config_dir, "account", "contact_ref", "{type: reference, to: contact}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert [(s.kind, s.loss) for s in plan.steps if s.kind == "change_type"] == [
        ("change_type", "1 of 2 non-empty values cannot be converted and would become blank, "
                        "e.g. '99999'")]
    apply_plan(engine, model, allow_destructive=True)
    assert raw_values(engine, "account", "contact_ref") == {a: ann["id"], b: None}
    assert ("contact_ref", "contact") in foreign_keys(engine, "account")
    assert plan_schema(engine, model).is_empty


def test_integer_to_reference_with_links_to_nothing_is_an_error(
        make_env: EnvFactory, config_dir: Path, engine: Engine) -> None:
    """Both are BIGINT columns: no conversion, so the values must already point somewhere."""
    set_field(config_dir, "account", "contact_no", "{type: integer}")
    env = make_env(config_dir)
    actor = env.admin.actor()
    a, b, c = accounts(env, "Acme", "Globex", "Initech")
    ann = env.records.create(actor, "contact", {"full_name": "Ann", "account": a})
    for rid, value in ((a, ann["id"]), (b, 99_999), (c, 88_888)):
        env.records.update(actor, "account", rid, {"contact_no": value}, version=1)
    line = set_field(config_dir, "account", "contact_no", "{type: reference, to: contact}")
    model = load_model(config_dir)
    before = snapshot(engine)
    expected = (f"{yaml_loc(config_dir, 'account', line)}: cannot link account.contact_no to "
                f"contact: 2 values point to no record, e.g. 88888, 99999")
    with pytest.raises(PlanError) as exc:
        apply_plan(engine, model, allow_destructive=True)
    assert str(exc.value) == expected
    assert snapshot(engine) == before

    env.records.update(actor, "account", b, {"contact_no": None}, version=2)
    env.records.update(actor, "account", c, {"contact_no": None}, version=2)
    apply_plan(engine, model)
    assert ("contact_no", "contact") in foreign_keys(engine, "account")
    assert raw_values(engine, "account", "contact_no") == {a: ann["id"], b: None, c: None}
    with pytest.raises(IntegrityError):
        raw_insert(engine, "account", name="Hooli", contact_no=77_777)


def test_reference_pointed_elsewhere_swaps_the_link_check(
        make_env: EnvFactory, config_dir: Path, engine: Engine) -> None:
    env = make_env(config_dir)
    actor = env.admin.actor()
    a, b = accounts(env, "Acme", "Globex")
    env.records.update(actor, "account", b, {"parent": a}, version=1)
    line = set_field(config_dir, "account", "parent", "{type: reference, to: contact}")
    _drop_related(config_dir, "account", "parent")
    model = load_model(config_dir)
    with pytest.raises(PlanError) as exc:
        apply_plan(engine, model, allow_destructive=True)
    assert str(exc.value) == (f"{yaml_loc(config_dir, 'account', line)}: cannot link "
                              f"account.parent to contact: 1 values point to no record, e.g. "
                              f"{a}")
    env.records.update(actor, "account", b, {"parent": None}, version=2)
    plan = plan_schema(engine, model)
    assert [(s.kind, s.destructive, s.loss) for s in plan.steps] == [
        ("drop_constraint", True, "the link check on parent"),
        ("add_foreign_key", False, None)]
    with pytest.raises(PlanError):
        apply_plan(engine, model)
    apply_plan(engine, model, allow_destructive=True)
    assert ("parent", "contact") in foreign_keys(engine, "account")
    assert ("parent", "account") not in foreign_keys(engine, "account")
    assert plan_schema(engine, model).is_empty


def test_index_removed_from_a_field_is_dropped_safely(make_env: EnvFactory, config_dir: Path,
                                                      engine: Engine) -> None:
    env = make_env(config_dir)
    (acme,) = accounts(env, "Acme", country="Germany")
    set_field(config_dir, "account", "country", "{type: text, max_length: 80}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert sorted((s.kind, s.detail, s.destructive) for s in plan.steps) == [
        ("drop_index", "drop index ix_account_country", False),
        ("drop_index", "drop index ixo_account_country", False)]
    apply_plan(engine, model)
    assert not {"ix_account_country", "ixo_account_country"} & set(indexes(engine, "account"))
    assert raw_values(engine, "account", "country") == {acme: "Germany"}
    assert plan_schema(engine, model).is_empty


# -- unique on duplicates ------------------------------------------------------------------


def test_unique_on_duplicates_is_an_error_and_nothing_is_applied(
        make_env: EnvFactory, config_dir: Path, engine: Engine) -> None:
    env = make_env(config_dir)
    accounts(env, "Acme", "Globex", city="Paris")
    accounts(env, "Initech", "Hooli", city="Berlin")
    accounts(env, "Umbrella", city="Rome")
    set_field(config_dir, "account", "region", "{type: text}")
    line = set_field(config_dir, "account", "city", "{type: text, max_length: 80, unique: true}")
    model = load_model(config_dir)
    before = snapshot(engine)
    expected = (f"{yaml_loc(config_dir, 'account', line)}: cannot make account.city unique: "
                f"values used more than once, e.g. 'Berlin', 'Paris'")
    assert [str(e) for e in plan_schema(engine, model).errors] == [expected]
    with pytest.raises(PlanError) as exc:
        apply_plan(engine, model)
    assert str(exc.value) == expected
    assert snapshot(engine) == before
    assert "region" not in column_names(engine, "account")


# -- a failure half-way rolls everything back ---------------------------------------------


def test_a_failing_step_rolls_back_the_earlier_ones(
        make_env: EnvFactory, config_dir: Path, engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(config_dir)
    (acme,) = accounts(env, "Acme", city="Berlin", country="Germany")
    set_field(config_dir, "account", "region", "{type: text, index: true}")
    set_field(config_dir, "account", "main_contact", "{type: reference, to: contact}")
    set_field(config_dir, "account", "city", None)
    set_field(config_dir, "account", "country", None)
    set_field(config_dir, "account", "nation", "{type: text, renamed_from: country}")
    (config_dir / "entities" / "widget.yaml").write_text(
        "entity: widget\nfields:\n  label_text: {type: text}\n", encoding="utf-8")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    kinds = [s.kind for s in plan.steps]
    assert kinds[-1] == "archive_column" and len(kinds) >= 7
    before = snapshot(engine)

    real = apply_module._apply_step
    done: list[str] = []

    def fail_at_the_last_step(conn: Any, operations: Any, schema: Any, step: Any) -> None:
        if len(done) == len(plan.steps) - 1:
            raise RuntimeError("disk on fire")
        real(conn, operations, schema, step)
        done.append(step.kind)

    monkeypatch.setattr(apply_module, "_apply_step", fail_at_the_last_step)
    with pytest.raises(RuntimeError, match="disk on fire"):
        apply_plan(engine, model)
    assert done == kinds[:-1]  # table created, columns added and renamed, a table rebuilt
    assert {"create_table", "add_column", "rename_column", "add_foreign_key"} <= set(done)
    assert snapshot(engine) == before

    monkeypatch.setattr(apply_module, "_apply_step", real)
    apply_plan(engine, model)
    assert "widget" in inspect(engine).get_table_names()
    assert raw_values(engine, "account", "nation") == {acme: "Germany"}
    assert raw_values(engine, "account", "city") == {acme: "Berlin"}


def test_a_failing_conversion_rolls_back(make_env: EnvFactory, config_dir: Path,
                                         engine: Engine) -> None:
    """A unique index that the converted values break: the database refuses half-way."""
    set_field(config_dir, "account", "code", "{type: text, max_length: 20}")
    env = make_env(config_dir)
    a, b = accounts(env, "Acme", "Globex")
    env.records.update(env.admin.actor(), "account", a, {"code": "12"}, version=1)
    env.records.update(env.admin.actor(), "account", b, {"code": "012"}, version=1)
    set_field(config_dir, "account", "region", "{type: text}")
    set_field(config_dir, "account", "code", "{type: integer, unique: true}")
    model = load_model(config_dir)
    before = snapshot(engine)
    with pytest.raises(PlanError) as exc:
        apply_plan(engine, model, allow_destructive=True)
    assert str(exc.value).startswith(  # '12' and '012' both became 12
        "add_index account.code: unique index uq_account_code — the database refused: ")
    assert isinstance(exc.value.__cause__, IntegrityError)
    assert snapshot(engine) == before


def test_a_later_migration_is_recorded(make_env: EnvFactory, config_dir: Path,
                                       engine: Engine) -> None:
    make_env(config_dir)
    set_field(config_dir, "account", "region", "{type: text}")
    model = load_model(config_dir)
    apply_plan(engine, model)
    rows = migration_rows(engine)
    assert len(rows) == 2
    assert rows[1]["config_hash"] == model.config_hash != rows[0]["config_hash"]
    assert rows[1]["destructive"] is False
    assert json.loads(rows[1]["steps"]) == [
        {"kind": "add_column", "table": "account", "column": "region",
         "detail": "add VARCHAR(255)", "loss": None}]


def test_plan_of_a_model_only_reads(make_env: EnvFactory, config_dir: Path,
                                    engine: Engine) -> None:
    make_env(config_dir)
    set_field(config_dir, "account", "region", "{type: text}")
    set_field(config_dir, "account", "city", None)
    model: Model = load_model(config_dir)
    before = snapshot(engine)
    plan_schema(engine, model, drop_archived=True)
    plan_schema(engine, model)
    assert snapshot(engine) == before


def test_field_indexes_serve_sorts_with_blanks_first_on_every_database(env: Env) -> None:
    """Lists sort blanks as the smallest value; PostgreSQL's indexes are built to match."""
    indexes = {ix["name"]: ix for ix in inspect(env.engine).get_indexes("opportunity")}
    amount = indexes["ix_opportunity_amount"]
    assert amount["column_names"] == ["amount"]
    sorting = amount.get("column_sorting", {})
    if env.engine.dialect.name == "postgresql":
        assert sorting == {"amount": ("nulls_first",)}
    else:
        assert sorting == {}  # SQLite's natural order already puts blanks first
    assert plan_schema(env.engine, env.model).is_empty


def test_bulk_create_returns_ids_in_input_order(env: Env) -> None:
    (acme,) = accounts(env, "Acme")
    rows = [{"name": f"deal {i}", "account": acme, "amount": i} for i in range(2500)]
    result = env.records.bulk_create(env.admin.actor(), "opportunity", rows, batch_size=1000)
    assert result.created == 2500 and len(result.ids) == 2500
    with env.engine.connect() as conn:
        t = build_schema(env.model).table("opportunity")
        names: dict[int, str] = {r.id: r.name for r in conn.execute(select(t.c.id, t.c.name))}
    assert [names[i] for i in result.ids] == [f"deal {i}" for i in range(2500)]


# -- rollup summary fields -------------------------------------------------------------------


def test_shipped_rollups_are_columns_of_their_result_type(config_dir: Path,
                                                          engine: Engine) -> None:
    """A rollup is stored: a column of its result type, indexed when it says so."""
    model = load_model(config_dir)
    apply_plan(engine, model)
    assert plan_schema(engine, model).is_empty
    types = {c["name"]: c["type"] for c in inspect(engine).get_columns("account")}
    assert types["open_deals"].python_type is int  # count: integer
    for name in ("open_pipeline", "won_amount"):  # sum of money: money
        assert (types[name].precision, types[name].scale) == (15, 2)
    ix = indexes(engine, "account")
    assert ix["ix_account_open_pipeline"] == (("open_pipeline",), False)
    assert ix["ixo_account_open_pipeline"] == (("owner_id", "open_pipeline"), False)
    assert ix["ix_account_won_amount"] == (("won_amount",), False)
    assert not any("open_deals" in cols for cols, _u in ix.values())  # not asked for


def test_a_new_rollup_is_a_new_column_and_its_index_a_safe_step(
        make_env: EnvFactory, config_dir: Path, engine: Engine) -> None:
    env = make_env(config_dir)
    (acme,) = accounts(env, "Acme")
    set_field(config_dir, "account", "last_close",
              "{type: rollup, of: opportunity.close_date, via: account, agg: max, index: true}")
    set_field(config_dir, "account", "avg_deal",
              "{type: rollup, of: opportunity.amount, via: account, agg: avg}")
    model = load_model(config_dir)
    plan = plan_schema(engine, model)
    assert sorted((s.kind, s.column, s.detail) for s in plan.steps) == [
        ("add_column", "avg_deal", "add NUMERIC(15, 2)"),
        ("add_column", "last_close", "add DATE"),
        ("add_index", "last_close", "index ix_account_last_close"),
        ("add_index", "owner_id,last_close", "index ixo_account_last_close"),
    ]
    assert not plan.destructive
    apply_plan(engine, model)
    assert plan_schema(engine, model).is_empty
    assert raw_values(engine, "account", "last_close") == {acme: None}
    # Changing what it sums keeps the column when the result type stays: migrate's
    # recompute is told by the signature, not by the schema.
    before = model.entity("account").field("avg_deal").rollup
    set_field(config_dir, "account", "avg_deal",
              "{type: rollup, of: opportunity.amount, via: account, agg: avg, "
              "where: 'stage = \"won\"'}")
    changed = load_model(config_dir)
    after = changed.entity("account").field("avg_deal").rollup
    assert before is not None and after is not None and before.signature != after.signature
    assert plan_schema(engine, changed).is_empty
    # A result type that changes with the aggregate is converted without loss: the
    # values are the engine's, recomputed from the child records (no --allow-destructive).
    raw_update(engine, "account", acme, avg_deal=12.5, last_close="2025-03-31")
    set_field(config_dir, "account", "avg_deal",
              "{type: rollup, of: opportunity, via: account, agg: count}")
    set_field(config_dir, "account", "last_close",
              "{type: rollup, of: opportunity.amount, via: account, agg: max, index: true}")
    retyped = load_model(config_dir)
    plan = plan_schema(engine, retyped)
    assert [(s.kind, s.column, s.detail, s.destructive) for s in plan.steps] == [
        ("retype_rollup", "avg_deal", "NUMERIC(15, 2) → BIGINT (a rollup: its values are "
                                      "recomputed)", False),
        ("retype_rollup", "last_close", "DATE → NUMERIC(15, 2) (a rollup: its values are "
                                        "recomputed)", False)]
    apply_plan(engine, retyped)
    assert plan_schema(engine, retyped).is_empty
    assert column_type(engine, "account", "avg_deal").python_type is int
    ix = indexes(engine, "account")  # the index follows the converted column
    assert ix["ix_account_last_close"] == (("last_close",), False)
    assert ix["ixo_account_last_close"] == (("owner_id", "last_close"), False)

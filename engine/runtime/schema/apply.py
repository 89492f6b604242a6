"""Apply a schema plan in one transaction, and record it in the migrations table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from sqlalchemy import Column, Connection, Engine, delete, insert, inspect, text
from sqlalchemy.exc import DBAPIError

from engine.metadata.errors import ConfigError
from engine.metadata.model import Model
from engine.runtime.db import WRITE, is_sqlite
from engine.runtime.schema.convert import copy_converted
from engine.runtime.schema.plan import Plan, PlanError, Planner, Step
from engine.runtime.schema.tables import (
    ARCHIVE_TABLE,
    MIGRATION_TABLE,
    Schema,
    build_schema,
    constraint_name,
)

_LOCK_KEY = 7_312_004_211  # PostgreSQL advisory lock: one migrator at a time


def apply_plan(engine: Engine, model: Model, *, allow_destructive: bool = False,
               drop_archived: bool = False) -> Plan:
    """Plan inside a write transaction and apply it there; any failure rolls everything back.

    Raises PlanError (and changes nothing) when the plan has errors, or destructive steps
    without `allow_destructive`.
    """
    schema = build_schema(model, engine.dialect.name)
    sqlite = is_sqlite(engine)
    with engine.execution_options(**WRITE).connect() as conn:
        if sqlite:
            # A table rebuild drops and recreates tables other tables point at; with foreign
            # keys on, SQLite would count every such reference as broken. The switch only
            # works outside a transaction; links are checked before the commit instead.
            _sqlite_foreign_keys(conn, on=False)
        try:
            with conn.begin():
                plan = _plan_and_apply(conn, schema, allow_destructive=allow_destructive,
                                       drop_archived=drop_archived)
        finally:
            if sqlite:
                _sqlite_foreign_keys(conn, on=True)
    return plan


def _plan_and_apply(conn: Connection, schema: Schema, *, allow_destructive: bool,
                    drop_archived: bool) -> Plan:
    if conn.dialect.name != "sqlite":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    plan = Planner(conn, schema, drop_archived).plan()
    if plan.errors:
        raise PlanError(list(plan.errors))
    if plan.destructive and not allow_destructive:
        raise PlanError([f"refusing a destructive step without --allow-destructive: "
                         f"{s.describe()}" for s in plan.destructive])
    if plan.is_empty:
        return plan
    operations = Operations(MigrationContext.configure(conn))
    for step in plan.steps:
        try:
            _apply_step(conn, operations, schema, step)
        except DBAPIError as exc:  # data the plan could not foresee; all is rolled back
            reason = str(exc.orig).strip().splitlines()[0]
            raise PlanError([f"{step.describe()} — the database refused: {reason}"]) from exc
    if conn.dialect.name == "sqlite":  # only a rebuilt table can hold broken links
        _check_links(conn, sorted({s.table for s in plan.steps
                                   if s.needs_rebuild or s.kind == "drop_column"}))
    conn.execute(insert(schema.table(MIGRATION_TABLE)).values(
        applied_at=datetime.now(UTC), config_hash=plan.config_hash,
        destructive=bool(plan.destructive),
        steps=json.dumps([s.as_json() for s in plan.steps], ensure_ascii=False)))
    return plan


def _sqlite_foreign_keys(conn: Connection, *, on: bool) -> None:
    """Switch SQLite's foreign key checks on this connection (outside any transaction)."""
    try:
        conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    except Exception:
        conn.invalidate()  # never hand a connection back to the pool with the checks off
        raise


def _check_links(conn: Connection, tables: list[str]) -> None:
    """Refuse to commit when a changed SQLite table points at records that do not exist."""
    problems: list[ConfigError | str] = []
    for table in tables:
        broken: dict[str, int] = {}
        for row in conn.exec_driver_sql(f'PRAGMA foreign_key_check("{table}")'):
            broken[row[2]] = broken.get(row[2], 0) + 1
        problems += [f"{table}: {n} row(s) point to missing {parent} records"
                     for parent, n in sorted(broken.items())]
    if problems:
        raise PlanError(problems)


def _apply_step(conn: Connection, operations: Operations, schema: Schema, step: Step) -> None:
    sqlite = conn.dialect.name == "sqlite"
    archive = schema.table(ARCHIVE_TABLE)
    if step.kind == "archive_column":
        live = {c["name"]: c for c in inspect(conn).get_columns(step.table)}
        conn.execute(insert(archive).values(
            table_name=step.table, column_name=step.column,
            column_type=str(live[step.column or ""]["type"])[:100],
            archived_at=datetime.now(UTC)))
        return
    if step.kind == "rename_column":
        # an archived column can be renamed into a field: it is no longer archived
        conn.execute(delete(archive).where(archive.c.table_name == step.table,
                                           archive.c.column_name == step.column))
        operations.invoke(step.op)
        return
    if step.kind == "restore_column":
        conn.execute(delete(archive).where(archive.c.table_name == step.table,
                                           archive.c.column_name == step.column))
        return
    if step.kind in ("change_type", "narrow_column", "retype_rollup"):
        _convert(conn, operations, schema, step)
        return
    if step.kind == "drop_column":
        conn.execute(delete(archive).where(archive.c.table_name == step.table,
                                           archive.c.column_name == step.column))
        if sqlite:
            with operations.batch_alter_table(step.table, recreate="always") as batch:
                batch.drop_column(step.column or "")
        else:
            operations.invoke(step.op)
        return
    if sqlite and step.needs_rebuild:
        with operations.batch_alter_table(step.table, recreate="always") as batch:
            batch.invoke(step.op)
        return
    operations.invoke(step.op)


def _convert(conn: Connection, operations: Operations, schema: Schema, step: Step) -> None:
    """Change a column's type by copying converted values into a new column, then swapping.

    The column's indexes and link checks go with the old column; those the model still has
    are made again on the new one (new ones come from their own steps).
    """
    table, column = step.table, step.column or ""
    field = schema.model.entity(table).field(column)
    target_col = schema.table(table).c[column]
    temp = constraint_name("crm_tmp", table, column)[:63]
    narrow_to = None
    if isinstance(step.op, ops.AlterColumnOp) and step.kind == "narrow_column":
        narrow_to = getattr(step.op.modify_type, "length", None)
    insp = inspect(conn)
    live_ix = [ix for ix in insp.get_indexes(table) if column in ix["column_names"]]
    live_fk = [fk for fk in insp.get_foreign_keys(table) if column in fk["constrained_columns"]]
    wanted_ix = {str(ix.name): ix for ix in schema.table(table).indexes}
    wanted_fk = {str(fk.name) for fk in target_col.foreign_keys}
    for ix in live_ix:  # SQLite's rebuild would copy them onto a column that is gone
        operations.drop_index(str(ix["name"]), table_name=table)
    operations.add_column(table, Column(temp, target_col.type))
    stored_type = step.op.existing_type if isinstance(step.op, ops.AlterColumnOp) else None
    copy_converted(conn, table, column, temp, target_col.type, field, narrow_to, stored_type)
    if conn.dialect.name == "sqlite":
        with operations.batch_alter_table(table, recreate="always") as batch:
            batch.drop_column(column)
            batch.alter_column(temp, new_column_name=column)
    else:
        operations.drop_column(table, column)
        operations.alter_column(table, temp, new_column_name=column)
    for fk in live_fk:
        if fk.get("name") in wanted_fk:
            _create_fk(conn, operations, table, str(fk["name"]), fk["referred_table"],
                       list(fk["constrained_columns"]), list(fk["referred_columns"]))
    for ix in live_ix:
        if ix["name"] in wanted_ix:  # as the model defines it (key order included)
            operations.invoke(ops.CreateIndexOp.from_index(wanted_ix[str(ix["name"])]))


def _create_fk(conn: Connection, operations: Operations, table: str, name: str, referent: str,
               columns: list[str], referred: list[str]) -> None:
    if conn.dialect.name == "sqlite":
        with operations.batch_alter_table(table, recreate="always") as batch:
            batch.create_foreign_key(name, referent, columns, referred)
    else:
        operations.create_foreign_key(name, table, referent, columns, referred)

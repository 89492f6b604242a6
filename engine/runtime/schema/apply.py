"""Apply a schema plan in one transaction, and record it in the migrations table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from sqlalchemy import Column, Connection, Engine, delete, insert, inspect, text

from engine.metadata.model import Model
from engine.runtime.db import WRITE, is_sqlite
from engine.runtime.schema.convert import copy_converted
from engine.runtime.schema.plan import Plan, PlanError, Step, _Planner
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
    schema = build_schema(model)
    with engine.execution_options(**WRITE).begin() as conn:
        if is_sqlite(engine):
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        plan = _Planner(conn, schema, drop_archived).plan()
        if plan.errors:
            raise PlanError(list(plan.errors))
        if plan.destructive and not allow_destructive:
            raise PlanError([f"refusing a destructive step without --allow-destructive: "
                             f"{s.describe()}" for s in plan.destructive])
        if plan.is_empty:
            return plan
        operations = Operations(MigrationContext.configure(conn))
        for step in plan.steps:
            _apply_step(conn, operations, schema, step)
        conn.execute(insert(schema.table(MIGRATION_TABLE)).values(
            applied_at=datetime.now(UTC), config_hash=plan.config_hash,
            destructive=bool(plan.destructive),
            steps=json.dumps([s.as_json() for s in plan.steps], ensure_ascii=False)))
    return plan


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
    if step.kind == "restore_column":
        conn.execute(delete(archive).where(archive.c.table_name == step.table,
                                           archive.c.column_name == step.column))
        return
    if step.kind in ("change_type", "narrow_column"):
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
    """Change a column's type by copying converted values into a new column, then swapping."""
    table, column = step.table, step.column or ""
    field = schema.model.entity(table).field(column)
    target_col = schema.table(table).c[column]
    temp = constraint_name("crm_tmp", table, column)[:63]
    narrow_to = None
    if isinstance(step.op, ops.AlterColumnOp) and step.kind == "narrow_column":
        narrow_to = getattr(step.op.modify_type, "length", None)
    operations.add_column(table, Column(temp, target_col.type))
    copy_converted(conn, table, column, temp, target_col.type, field, narrow_to)
    if conn.dialect.name == "sqlite":
        with operations.batch_alter_table(table, recreate="always") as batch:
            batch.drop_column(column)
            batch.alter_column(temp, new_column_name=column, existing_type=target_col.type)
    else:
        operations.drop_column(table, column)
        operations.alter_column(table, temp, new_column_name=column)
    _restore_constraints(conn, operations, schema, table, column)


def _restore_constraints(conn: Connection, operations: Operations, schema: Schema, table: str,
                         column: str) -> None:
    """Recreate the indexes and link checks of a column that was swapped in."""
    insp = inspect(conn)
    live_ix = {ix["name"] for ix in insp.get_indexes(table)}
    t = schema.table(table)
    for ix in t.indexes:
        if column in ix.columns and ix.name not in live_ix:
            operations.create_index(str(ix.name), table, [column], unique=bool(ix.unique))
    for fk in t.c[column].foreign_keys:
        referent = fk.column.table.name
        if conn.dialect.name == "sqlite":
            with operations.batch_alter_table(table, recreate="always") as batch:
                batch.create_foreign_key(str(fk.name), referent, [column], ["id"])
        else:
            operations.create_foreign_key(str(fk.name), table, referent, [column], ["id"])



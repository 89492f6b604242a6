"""Plan the schema change from the live database to the Model, with Alembic's comparison.

Autogenerate sees a rename as drop + add and a removed field as a drop; we turn those into
typed steps: renames come only from `renamed_from`, and removed fields are archived (kept,
hidden, restorable) instead of dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from alembic.operations import ops
from sqlalchemy import Column as SAColumn
from sqlalchemy import Connection, Engine, Integer, Numeric, String, Text, func, inspect, select
from sqlalchemy import Table as SATable
from sqlalchemy.types import TypeEngine

from engine.metadata.errors import ConfigError, SourceLoc
from engine.metadata.model import Model
from engine.runtime.schema.tables import ARCHIVE_TABLE, SYSTEM_TABLES, Schema, build_schema
from engine.runtime.schema.types import ExactDecimal
from engine.types import ENGINE_COLUMNS

SAFE_KINDS = frozenset({"create_table", "add_column", "rename_column", "widen_column",
                        "add_index", "drop_index", "archive_column", "restore_column",
                        "add_foreign_key"})


class PlanError(Exception):
    """The plan cannot be applied: config that names nothing, data that blocks a change."""

    def __init__(self, errors: list[ConfigError | str]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass(frozen=True)
class Step:
    """One change, readable by people and carrying the Alembic op that makes it."""

    kind: str
    table: str
    column: str | None
    detail: str
    loss: str | None = None
    op: Any = field(default=None, compare=False, repr=False)
    needs_rebuild: bool = False
    convert_to: str | None = None  # for change_type: the field whose coercer converts

    @property
    def destructive(self) -> bool:
        return self.kind not in SAFE_KINDS

    def describe(self) -> str:
        mark = "DESTRUCTIVE " if self.destructive else ""
        text = f"{mark}{self.kind} {self.table}{'.' + self.column if self.column else ''}: "
        text += self.detail
        if self.loss:
            text += f" — would lose: {self.loss}"
        return text

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "table": self.table, "column": self.column,
                "detail": self.detail, "loss": self.loss}


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    archived: tuple[tuple[str, str], ...]  # (table, column) kept but hidden, after this plan
    orphan_tables: tuple[str, ...]  # entity tables no longer in config (kept)
    config_hash: str
    errors: tuple[ConfigError | str, ...] = ()

    @property
    def destructive(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.destructive)

    @property
    def is_empty(self) -> bool:
        return not self.steps

    def describe(self) -> str:
        lines = [s.describe() for s in self.steps] or ["schema is up to date"]
        if self.archived:
            lines.append("archived columns (kept, hidden; restore by adding the field back):")
            lines += [f"  {t}.{c}" for t, c in self.archived]
        if self.orphan_tables:
            lines.append("tables no longer in config (kept): " + ", ".join(self.orphan_tables))
        lines += [f"error: {e}" for e in self.errors]
        return "\n".join(lines)


def plan_schema(engine: Engine, model: Model, *, drop_archived: bool = False) -> Plan:
    """Compare the live database with `model` and return the typed steps to get there."""
    schema = build_schema(model)
    with engine.connect() as conn:
        return _Planner(conn, schema, drop_archived).plan()


class _Planner:
    def __init__(self, conn: Connection, schema: Schema, drop_archived: bool) -> None:
        self.conn = conn
        self.schema = schema
        self.model = schema.model
        self.drop_archived = drop_archived
        self.insp = inspect(conn)
        self.live_tables = set(self.insp.get_table_names())
        self.errors: list[ConfigError | str] = []
        self.steps: list[Step] = []
        self.archived_before = self._archived_before()

    def _archived_before(self) -> set[tuple[str, str]]:
        if ARCHIVE_TABLE not in self.live_tables:
            return set()
        t = self.schema.table(ARCHIVE_TABLE)
        return {(r.table_name, r.column_name)
                for r in self.conn.execute(select(t.c.table_name, t.c.column_name))}

    def _live_columns(self, table: str) -> dict[str, dict[str, Any]]:
        if table not in self.live_tables:
            return {}
        return {c["name"]: dict(c) for c in self.insp.get_columns(table)}

    def plan(self) -> Plan:
        renames = self._renames()
        mc = MigrationContext.configure(
            self.conn,
            opts={"compare_type": True,
                  "include_name": self._include_name},
        )
        script = produce_migrations(mc, self.schema.metadata)
        archived_now = set(self.archived_before)
        for op in _flatten(script.upgrade_ops):
            self._translate(op, renames, archived_now)
        # Fields that came back: their column was archived and is wanted again.
        for e in self.model.entities:
            for f in e.fields:
                if (e.name, f.name) in archived_now:
                    archived_now.discard((e.name, f.name))
                    self.steps.append(Step("restore_column", e.name, f.name,
                                           "field is back in config; its kept data returns"))
        orphans = tuple(sorted(
            t for t in self.live_tables
            if t not in self.schema.metadata.tables and not t.startswith(("sqlite_", "crm_"))
            and {"id", "version", "owner_id", "deleted_at"} <= set(self._live_columns(t))
        ))
        self.steps.sort(key=_step_order)
        return Plan(tuple(self.steps), tuple(sorted(archived_now)), orphans,
                    self.model.config_hash, tuple(self.errors))

    def _include_name(self, name: str | None, type_: str, parent: Any) -> bool:
        if type_ == "table":
            return name in self.schema.metadata.tables
        return True

    def _renames(self) -> dict[tuple[str, str], str]:
        """(table, old column) → new name, for `renamed_from` whose old column is live."""
        out: dict[tuple[str, str], str] = {}
        for e in self.model.entities:
            live = self._live_columns(e.name)
            if not live:
                continue
            for f in e.fields:
                old = f.renamed_from
                if old is None or f.name in live:
                    continue
                if old not in live:
                    self.errors.append(ConfigError(
                        f.loc, f"fields.{f.name}.renamed_from: {old!r} names nothing: "
                               f"table {e.name} has no column {old!r}"))
                    continue
                out[(e.name, old)] = f.name
        return out

    def _translate(self, op: Any, renames: dict[tuple[str, str], str],
                   archived: set[tuple[str, str]]) -> None:
        table = getattr(op, "table_name", None) or ""
        if isinstance(op, ops.CreateTableOp):
            self.steps.append(Step("create_table", op.table_name, None,
                                   f"new table with {len(op.columns)} columns", op=op))
        elif isinstance(op, ops.AddColumnOp):
            col = op.column
            if any(new == col.name for (t, _), new in renames.items() if t == table):
                return  # the rename step brings this column
            has_fk = bool(col.foreign_keys)
            self.steps.append(Step("add_column", table, col.name, f"add {col.type}", op=op,
                                   needs_rebuild=has_fk))
        elif isinstance(op, ops.DropColumnOp):
            self._dropped_column(op, renames, archived)
        elif isinstance(op, ops.AlterColumnOp):
            self._altered_column(op)
        elif isinstance(op, ops.CreateIndexOp):
            self._new_index(op, renames)
        elif isinstance(op, ops.DropIndexOp):
            cols = self._index_columns(op)
            if any((table, c) in archived or (table, c) in renames for c in cols):
                return  # keep indexes of archived or renamed columns
            self.steps.append(Step("drop_index", table, None, f"drop index {op.index_name}",
                                   op=op))
        elif isinstance(op, ops.AddConstraintOp) and isinstance(op, ops.CreateForeignKeyOp):
            self._new_fk(op, renames)
        elif isinstance(op, ops.DropConstraintOp):
            cols = self._fk_columns(table, str(op.constraint_name))
            if any((table, c) in archived or (table, c) in renames for c in cols):
                return
            self.steps.append(Step("drop_constraint", table, None,
                                   f"drop constraint {op.constraint_name}", op=op,
                                   needs_rebuild=True,
                                   loss="the link check on " + ", ".join(cols)))
        else:
            self.errors.append(f"{table}: unsupported schema change {type(op).__name__}")

    def _dropped_column(self, op: ops.DropColumnOp, renames: dict[tuple[str, str], str],
                        archived: set[tuple[str, str]]) -> None:
        table, column = op.table_name, op.column_name
        if (table, column) in renames:
            new = renames[(table, column)]
            self.steps.append(Step("rename_column", table, column, f"rename to {new}",
                                   op=ops.AlterColumnOp(table, column, modify_name=new)))
            return
        if table in SYSTEM_TABLES or column in ENGINE_COLUMNS:
            self.errors.append(f"{table}.{column}: engine column missing from the model")
            return
        if self.drop_archived:
            count = self._count_values(table, column)
            archived.discard((table, column))
            self.steps.append(Step("drop_column", table, column, "drop archived column",
                                   loss=f"{count} non-empty values in {table}.{column}", op=op))
            return
        if (table, column) not in archived:
            archived.add((table, column))
            self.steps.append(Step("archive_column", table, column,
                                   "field removed from config: column kept and hidden"))

    def _altered_column(self, op: ops.AlterColumnOp) -> None:
        table, column = op.table_name, op.column_name
        if op.modify_type is None:
            if op.modify_nullable is not None:
                self.errors.append(f"{table}.{column}: nullability change is not supported")
            return
        old, new = op.existing_type, op.modify_type
        if _widens(old, new):
            self.steps.append(Step("widen_column", table, column, f"{old} → {new}", op=op,
                                   needs_rebuild=True))
            return
        if isinstance(old, String) and isinstance(new, String) and \
                type(old) is type(new) and old.length and new.length:
            over = self._count(table, func.length(self._col(table, column)) > new.length)
            self.steps.append(Step(
                "narrow_column", table, column, f"{old} → {new}",
                loss=f"{over} values longer than {new.length} characters would be cut",
                op=op, needs_rebuild=True, convert_to=column))
            return
        count = self._count_values(table, column)
        self.steps.append(Step(
            "change_type", table, column, f"{old} → {new}",
            loss=f"{count} non-empty values are converted; those that do not fit become blank",
            op=op, needs_rebuild=True, convert_to=column))

    def _new_index(self, op: ops.CreateIndexOp, renames: dict[tuple[str, str], str]) -> None:
        table = op.table_name
        cols = [getattr(c, "name", str(c)) for c in op.columns]
        if op.unique and table in self.live_tables and len(cols) == 1:
            col_name = cols[0]
            old = next((o for (t, o), n in renames.items() if t == table and n == col_name), None)
            live = self._live_columns(table)
            source = old or col_name
            if source in live:
                c = self._col(table, source)
                t = c.table
                dupes = self.conn.execute(
                    select(c, func.count()).select_from(t).where(c.is_not(None))
                    .group_by(c).having(func.count() > 1).limit(3)).all()
                if dupes:
                    shown = ", ".join(repr(d[0]) for d in dupes)
                    loc = self._field_loc(table, col_name)
                    message = (f"cannot make {table}.{col_name} unique: values used more than "
                               f"once, e.g. {shown}")
                    self.errors.append(ConfigError(loc, message) if loc else message)
                    return
        self.steps.append(Step("add_index", table, ",".join(cols),
                               f"{'unique ' if op.unique else ''}index {op.index_name}", op=op))

    def _new_fk(self, op: ops.CreateForeignKeyOp, renames: dict[tuple[str, str], str]) -> None:
        table = op.source_table
        cols = list(op.local_cols)
        if any(any(n == c for (t, _), n in renames.items() if t == table) for c in cols):
            return  # the renamed column keeps its link check
        self.steps.append(Step("add_foreign_key", table, ",".join(cols),
                               f"link to {op.referent_table}", op=op, needs_rebuild=True))

    def _index_columns(self, op: ops.DropIndexOp) -> list[str]:
        for ix in self.insp.get_indexes(op.table_name or ""):
            if ix["name"] == op.index_name:
                return [c for c in ix["column_names"] if c]
        return []

    def _fk_columns(self, table: str, name: str | None) -> list[str]:
        for fk in self.insp.get_foreign_keys(table):
            if fk.get("name") == name:
                return list(fk["constrained_columns"])
        return []

    def _field_loc(self, table: str, column: str) -> SourceLoc | None:
        if self.model.has_entity(table) and self.model.entity(table).has_field(column):
            return self.model.entity(table).field(column).loc
        return None

    def _col(self, table: str, column: str) -> SAColumn[Any]:
        t = SATable(table, _scratch_metadata(), SAColumn(column), extend_existing=True)
        return t.c[column]

    def _count(self, table: str, condition: Any) -> int:
        c = self._col(table, "id")
        return int(self.conn.execute(
            select(func.count()).select_from(c.table).where(condition)).scalar_one())

    def _count_values(self, table: str, column: str) -> int:
        return self._count(table, self._col(table, column).is_not(None))


def _scratch_metadata() -> Any:
    from sqlalchemy import MetaData

    return MetaData()


_ORDER = ["create_table", "rename_column", "restore_column", "add_column", "widen_column",
          "narrow_column", "change_type", "drop_index", "drop_constraint", "add_foreign_key",
          "add_index", "archive_column", "drop_column"]


def _step_order(step: Step) -> int:
    return _ORDER.index(step.kind)


def _flatten(container: Any) -> list[Any]:
    out: list[Any] = []
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps):
            out.extend(_flatten(op))
        else:
            out.append(op)
    return out


def _widens(old: TypeEngine[Any] | None, new: TypeEngine[Any]) -> bool:
    """True when every value of `old` fits `new` unchanged."""
    if old is None:
        return False
    if isinstance(new, ExactDecimal):
        new = Numeric(new.precision, new.scale)
    if isinstance(old, String) and not isinstance(old, Text):
        if isinstance(new, Text):
            return True
        if isinstance(new, String) and old.length and new.length:
            return bool(new.length >= old.length)
    if isinstance(old, Integer) and isinstance(new, Integer):
        return _int_width(new) >= _int_width(old)
    if isinstance(old, Integer) and isinstance(new, Numeric) and not isinstance(new, Integer):
        return (new.precision or 0) - (new.scale or 0) >= 19
    if isinstance(old, Numeric) and isinstance(new, Numeric) and \
            not isinstance(old, Integer) and not isinstance(new, Integer):
        op_, os_ = old.precision or 0, old.scale or 0
        np_, ns_ = new.precision or 0, new.scale or 0
        return ns_ >= os_ and np_ - ns_ >= op_ - os_
    return False


def _int_width(t: Integer) -> int:
    name = type(t).__name__.upper()
    return {"SMALLINT": 16, "SMALLINTEGER": 16, "INTEGER": 32, "BIGINT": 64,
            "BIGINTEGER": 64}.get(name, 32)

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
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    and_,
    exists,
    func,
    inspect,
    select,
)
from sqlalchemy import Table as SATable
from sqlalchemy.types import TypeEngine

from engine.metadata.errors import ConfigError, SourceLoc
from engine.metadata.model import Model
from engine.runtime.schema.convert import count_lost
from engine.runtime.schema.regarding import column_names
from engine.runtime.schema.tables import ARCHIVE_TABLE, SYSTEM_TABLES, Schema, build_schema
from engine.runtime.schema.types import ExactDecimal
from engine.types import ENGINE_COLUMNS

SAFE_KINDS = frozenset({"create_table", "add_column", "rename_column", "widen_column",
                        "add_index", "drop_index", "archive_column", "restore_column",
                        "add_foreign_key", "retype_rollup"})


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
    schema = build_schema(model, engine.dialect.name)
    with engine.connect() as conn:
        return Planner(conn, schema, drop_archived).plan()


class Planner:
    """Compares the tables the model describes with the database's, step by step (used by
    `plan_schema`, and by `apply_plan` inside its transaction and lock)."""

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
        changes = _flatten(script.upgrade_ops)
        # Columns whose values are converted into a new column: their indexes and link checks
        # go with the old column, so they are not dropped on their own.
        self.converting = {
            (op.table_name, op.column_name) for op in changes
            if isinstance(op, ops.AlterColumnOp) and op.modify_type is not None
            and not _widens(op.existing_type, op.modify_type)}
        # Autogenerate sees a rename as drop + add, so it never compares the old column's type
        # with the new field's: do it here, and change the type after the rename.
        self.retyped: dict[tuple[str, str], ops.AlterColumnOp] = {}
        for (table, old), new in renames.items():
            live_type = self._live_columns(table)[old]["type"]
            wanted = self.schema.table(table).c[new]
            if mc.impl.compare_type(SAColumn(new, live_type), wanted):
                self.retyped[(table, old)] = ops.AlterColumnOp(
                    table, new, modify_type=wanted.type, existing_type=live_type)
                if not _widens(live_type, wanted.type):
                    self.converting |= {(table, old), (table, new)}
        for op in changes:
            self._translate(op, renames, archived_now)
        # Fields that came back: their column was archived and is wanted again.
        for e in self.model.entities:
            for f in e.stored_fields:
                for column in column_names(f):  # a regarding field has two
                    if (e.name, column) in archived_now:
                        archived_now.discard((e.name, column))
                        self.steps.append(Step("restore_column", e.name, column, "field is "
                                               "back in config; its kept data returns"))
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
            columns = [c for c in op.columns if isinstance(c, SAColumn)]
            self.steps.append(Step("create_table", op.table_name, None,
                                   f"new table with {len(columns)} columns", op=op))
            self._deferred_fks(op.table_name)
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
            if any((table, c) in self.converting for c in cols):
                return
            gone = [c for c in cols if not self._in_model(table, c)]
            if gone and not self.drop_archived and \
                    not any((table, c) in renames for c in gone):
                return  # an archived column keeps its index
            # A renamed column's index is recreated under its new name; a dropped column's
            # index goes first (SQLite's table rebuild would copy it otherwise).
            self.steps.append(Step("drop_index", table, None, f"drop index {op.index_name}",
                                   op=op))
        elif isinstance(op, ops.AddConstraintOp) and isinstance(op, ops.CreateForeignKeyOp):
            self._new_fk(op, renames)
        elif isinstance(op, ops.DropConstraintOp):
            cols = self._fk_columns(table, str(op.constraint_name))
            if any((table, c) in self.converting for c in cols):
                return
            if any(not self._in_model(table, c) for c in cols):
                return  # archived and renamed columns keep their link check; dropped lose it
            self.steps.append(Step("drop_constraint", table, None,
                                   f"drop constraint {op.constraint_name}", op=op,
                                   needs_rebuild=True,
                                   loss="the link check on " + ", ".join(cols)))
        else:
            self.errors.append(f"{table}: unsupported schema change {type(op).__name__}")

    def _deferred_fks(self, table: str) -> None:
        """Links that close a cycle are left out of CREATE TABLE; add them once all exist.

        SQLite has no ALTER for constraints and does not check references at CREATE, so
        there they stay inline.
        """
        if not self.conn.dialect.supports_alter:
            return
        for fk in self.schema.table(table).foreign_key_constraints:
            if fk.use_alter:
                op = ops.CreateForeignKeyOp.from_constraint(fk)
                self.steps.append(Step("add_foreign_key", table, ",".join(op.local_cols),
                                       f"link to {op.referent_table}", op=op))

    def _dropped_column(self, op: ops.DropColumnOp, renames: dict[tuple[str, str], str],
                        archived: set[tuple[str, str]]) -> None:
        table, column = op.table_name, op.column_name
        if (table, column) in renames:
            new = renames[(table, column)]
            archived.discard((table, column))  # renaming an archived column brings it back
            self.steps.append(Step("rename_column", table, column, f"rename to {new}",
                                   op=ops.AlterColumnOp(table, column, modify_name=new)))
            if (table, column) in self.retyped:
                self._altered_column(self.retyped[(table, column)], source=column)
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

    def _altered_column(self, op: ops.AlterColumnOp, source: str | None = None) -> None:
        """A type change of `column`, whose values are still in `source` while planning."""
        table, column = op.table_name, op.column_name
        source = source or column
        if op.modify_type is None:
            if op.modify_nullable is not None:
                self.errors.append(f"{table}.{column}: nullability change is not supported")
            return
        old, new = op.existing_type, op.modify_type
        if _widens(old, new):
            self.steps.append(Step("widen_column", table, column, f"{old} → {new}", op=op,
                                   needs_rebuild=True))
            return
        if not (self.model.has_entity(table) and self.model.entity(table).has_field(column)):
            self.errors.append(f"{table}.{column}: engine column type differs "
                               f"({old} in the database, {new} expected)")
            return
        field = self.model.entity(table).field(column)
        if field.rollup is not None:
            # The engine's own summary: its values are computed again from the child
            # records (crm migrate recomputes a rollup whose definition changed), so
            # nothing is lost by converting them.
            self.steps.append(Step("retype_rollup", table, column,
                                   f"{old} → {new} (a rollup: its values are recomputed)",
                                   op=op, needs_rebuild=True, convert_to=column))
            return
        narrow_to = narrowed_length(old, new)
        loss = count_lost(self.conn, table, source, field, narrow_to, old)
        if narrow_to is None:
            self.steps.append(Step("change_type", table, column, f"{old} → {new}",
                                   loss=loss.describe(), op=op, needs_rebuild=True,
                                   convert_to=column))
            return
        t = _scratch_table(table, source)
        over = self._count(t, func.length(t.c[source]) > narrow_to)
        text = f"{over} values longer than {narrow_to} characters would be cut"
        if loss.lost:
            text += f"; {loss.describe()}"
        self.steps.append(Step("narrow_column", table, column, f"{old} → {new}", loss=text,
                               op=op, needs_rebuild=True, convert_to=column))

    def _new_index(self, op: ops.CreateIndexOp, renames: dict[tuple[str, str], str]) -> None:
        table = op.table_name
        cols = [_column_name(c) for c in op.columns]
        if op.unique and table in self.live_tables and len(cols) == 1:
            col_name = cols[0]
            old = next((o for (t, o), n in renames.items() if t == table and n == col_name), None)
            live = self._live_columns(table)
            source = old or col_name
            if source in live:
                c = _scratch_table(table, source).c[source]
                dupes = self.conn.execute(
                    select(c, func.count()).where(c.is_not(None))
                    .group_by(c).having(func.count() > 1).order_by(c).limit(3)).all()
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
        if len(cols) == 1 and (table, cols[0]) not in self.converting and \
                cols[0] in self._live_columns(table):
            self._check_dangling(table, cols[0], op.referent_table)
        self.steps.append(Step("add_foreign_key", table, ",".join(cols),
                               f"link to {op.referent_table}", op=op, needs_rebuild=True))

    def _check_dangling(self, table: str, column: str, referent: str) -> None:
        """An existing column that becomes a link must not point at records that do not exist."""
        src = _scratch_table(table, column)
        target = _scratch_table(referent, "id").alias("target")
        value = src.c[column]
        dangling = [value.is_not(None), ~exists().where(target.c.id == value)]
        count = self._count(src, and_(*dangling))
        if not count:
            return
        shown = self.conn.execute(select(value).where(*dangling).distinct().order_by(value)
                                  .limit(3)).scalars().all()
        message = (f"cannot link {table}.{column} to {referent}: {count} values point to no "
                   f"record, e.g. " + ", ".join(repr(v) for v in shown))
        loc = self._field_loc(table, column)
        self.errors.append(ConfigError(loc, message) if loc else message)

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

    def _in_model(self, table: str, column: str) -> bool:
        return table in self.schema.metadata.tables and \
            column in self.schema.table(table).c

    def _count(self, t: SATable, condition: Any) -> int:
        return int(self.conn.execute(
            select(func.count()).select_from(t).where(condition)).scalar_one())

    def _count_values(self, table: str, column: str) -> int:
        t = _scratch_table(table, column)
        return self._count(t, t.c[column].is_not(None))


def _scratch_table(table: str, *columns: str) -> SATable:
    """A bare Table to query live columns by name, whatever their type."""
    return SATable(table, MetaData(), *(SAColumn(c) for c in columns))


def narrowed_length(old: TypeEngine[Any] | None, new: TypeEngine[Any]) -> int | None:
    """The new length when text is narrowed (values are cut to it); None otherwise."""
    if not (isinstance(old, String) and isinstance(new, String)) or isinstance(new, Text):
        return None
    if not new.length:
        return None
    if isinstance(old, Text) or not old.length or old.length > new.length:
        return int(new.length)
    return None


_ORDER = ["create_table", "rename_column", "restore_column", "add_column", "widen_column",
          "narrow_column", "change_type", "retype_rollup", "drop_index", "drop_constraint",
          "add_foreign_key",
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


def _column_name(column: Any) -> str:
    """The column an index key reads: `amount` for both `amount` and `amount ASC NULLS FIRST`."""
    while not hasattr(column, "name") and hasattr(column, "element"):
        column = column.element
    return str(getattr(column, "name", column))

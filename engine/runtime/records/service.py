"""The records service: create, get, update, delete, restore, purge, list, history, bulk.

Every read goes through `rows` (engine/runtime/records/secure.py), which applies the access
policy's predicate and field masks; every write checks the policy first. Validation reports
every field problem at once, and a refused write changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Select,
    Table,
    bindparam,
    delete,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from engine.formula import CompiledFormula, FormulaError, FType, compile_formula, sum_terms
from engine.messages import N_, joined, msg
from engine.metadata.formula_checks import scope_of
from engine.metadata.model import Entity, Field, Model
from engine.metadata.roles import Scope
from engine.runtime.access import SYSTEM, AccessPolicy, Actor, FieldMask
from engine.runtime.access.policy import ACTION_WORDS
from engine.runtime.audit import field_changes, read_history
from engine.runtime.db import WRITE, connection
from engine.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    stale_version,
)
from engine.runtime.org import DEPARTMENT, refuse_department_in_use
from engine.runtime.records import secure
from engine.runtime.records.assign import assign as assign_record
from engine.runtime.records.assign import transfer_owned
from engine.runtime.records.autonumber import assign_numbers
from engine.runtime.records.bulk import live_target
from engine.runtime.records.computed import (
    Readable,
    RecordContext,
    RecordsClock,
    SqlFields,
    failing_rules,
    value_rounder,
)
from engine.runtime.records.files import check_files
from engine.runtime.records.imports import BULK_BATCH, BulkResult, bulk_create
from engine.runtime.records.masked import VisibleScopes
from engine.runtime.records.names import NAME_PREFIX, name_column, names_of
from engine.runtime.records.query import (
    ListQuery,
    Page,
    after_cursor,
    condition_sql,
    encode_cursor,
    order_by,
    page_statement,
    unknown_field,
    unknown_sort_field,
)
from engine.runtime.records.regarding import check_regarding, refuse_regarded
from engine.runtime.records.score import explained_term
from engine.runtime.records.team import remove_member, set_member, team_of
from engine.runtime.records.totals import Totals
from engine.runtime.records.trees import hold_links, would_circle
from engine.runtime.records.unique import check_unique
from engine.runtime.records.unit import Hooks, RecordChange, UnitOfWork, open_unit
from engine.runtime.schema.regarding import split as split_regarding
from engine.runtime.schema.tables import (
    ATTACHMENT_TABLE,
    AUDIT_TABLE,
    AUTONUMBER_TABLE,
    CHANGE_TABLE,
    USER_TABLE,
    Schema,
    build_schema,
)
from engine.runtime.values import (
    Coercer,
    InputRules,
    ValueProblem,
    coercer_for,
    is_blank,
    to_json,
)
from engine.types import ENGINE_COLUMNS, FieldType

Clock = Callable[[], datetime]
S = TypeVar("S", bound=Executable)
T = TypeVar("T")
STATEMENT_CACHE_SIZE = 4096
_UNREAD = object()  # a computed field the row does not carry


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Compiled:
    """Per-entity work done once: coercers and defaults."""

    entity: Entity
    table: Table
    coercers: dict[str, Coercer]
    defaults: dict[str, Any]
    links: dict[str, Table]
    json_fields: frozenset[str]  # multichoice: None must be written as SQL NULL, not 'null'
    written: tuple[Field, ...]
    """The stored fields users write (all but rollups, which the engine keeps)."""
    empty_rollups: dict[str, Any]
    """The rollups' values on a new record, which has no children yet."""
    regarding: frozenset[str] = frozenset()
    """Regarding fields: each written as its two columns (engine/runtime/schema/regarding.py)."""

    # Worked out once per entity, read per row by `coerce`, `apply_rules` and bulk create.
    @cached_property
    def plain(self) -> frozenset[str]:
        """The fields a writer sets by value: stored, not a rollup, not numbered, not a
        file (those are refused or uploaded; `coerce` names why)."""
        return frozenset(f.name for f in self.written
                         if f.number_format is None and f.type is not FieldType.FILE)

    @cached_property
    def required(self) -> tuple[Field, ...]:
        return tuple(f for f in self.entity.fields if f.required)

    @cached_property
    def default_formulas(self) -> tuple[Field, ...]:
        """The stored fields with a default formula, in field order."""
        return tuple(f for f in self.entity.stored_fields if f.default_formula is not None)

    @cached_property
    def blank_record(self) -> dict[str, Any]:
        """A new record before its input: every written field blank, the plain defaults,
        the rollups of a record without children."""
        return {**{f.name: None for f in self.written}, **self.defaults, **self.empty_rollups}

    def db_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` ready for INSERT/UPDATE: a blank JSON field becomes SQL NULL.

        SQLAlchemy's JSON type writes Python None as the JSON text 'null', which
        `IS NULL` (the __blank filter, ISBLANK) would not find.
        """
        out = dict(values)
        for k in self.json_fields & out.keys():
            if out[k] is None:
                out[k] = null()
        for k in self.regarding & out.keys():
            out.update(split_regarding(k, out.pop(k)))
        return out


@dataclass(frozen=True)
class DryRun(Generic[T]):
    """What a dry run returned, and the changes it would have made."""

    result: T
    changes: tuple[RecordChange, ...]


class Records:
    def __init__(self, engine: Engine, model: Model, clock: Clock = _utcnow,
                 hooks: Hooks | None = None) -> None:
        self.engine = engine
        # What runs with every write (rollups, flows): registered by whoever assembles the
        # service (engine/runtime/assembly.py), never imported by records.
        self.hooks = Hooks() if hooks is None else hooks
        self.writer = engine.execution_options(**WRITE)
        self.model = model
        self.schema: Schema = build_schema(model)
        self.policy = AccessPolicy(model, self.schema)
        self.scopes = VisibleScopes(model, self.policy)
        self.clock = clock
        # Formulas read the same clock, even when a test swaps `clock` afterwards.
        self.formula_clock = RecordsClock(lambda: self.clock(), model.settings.zone)
        self.audit = self.schema.table(AUDIT_TABLE)
        self.change_log = self.schema.table(CHANGE_TABLE)
        self.counters = self.schema.table(AUTONUMBER_TABLE)
        self.users = self.schema.table(USER_TABLE)
        self.nulls_small = engine.dialect.name == "sqlite"
        self._compiled = {e.name: self._compile(e) for e in model.entities}
        self.totals = Totals()
        self._sql_cache: dict[tuple[Any, ...], Any] = {}  # (reader or None, entity, field)
        self._terms: dict[tuple[str, str], tuple[CompiledFormula, ...]] = {}
        self._statements: dict[tuple[Any, ...], Any] = {}
        self._clocked = {e.name: self.sql_fields().reads_clock(e) for e in model.entities}

    def _compile(self, entity: Entity) -> Compiled:
        rules = InputRules(self.model.settings.day_first, self.model.settings.currency)
        coercers = {f.name: coercer_for(f, rules) for f in entity.stored_fields}
        defaults: dict[str, Any] = {}
        for f in entity.stored_fields:
            if f.default is not None and f.default_formula is None:
                defaults[f.name] = coercers[f.name](f.default)
        links: dict[str, Table] = {}
        for f in entity.fields:
            if f.type is FieldType.USER:
                links[f.name] = self.schema.table(USER_TABLE)
            elif f.target:
                links[f.name] = self.schema.table(f.target)
        json_fields = frozenset(f.name for f in entity.fields
                                if f.type is FieldType.MULTICHOICE)
        written = tuple(f for f in entity.stored_fields if f.rollup is None)
        empty = {f.name: f.rollup.empty for f in entity.stored_fields if f.rollup is not None}
        regarding = frozenset(f.name for f in entity.stored_fields
                              if f.type is FieldType.REGARDING)
        return Compiled(entity, self.schema.table(entity.name), coercers, defaults, links,
                        json_fields, written, empty, regarding)

    # -- lookups -------------------------------------------------------------------------

    def compiled(self, entity: str) -> Compiled:
        try:
            return self._compiled[entity]
        except KeyError:
            raise NotFound(msg("no entity '%(entity)s'", entity=entity)) from None

    def allowed(self, conn: Connection, actor: Actor, c: Compiled, record_id: int,
                  action: str) -> None:
        """Forbidden unless the actor may `action` this (visible) record."""
        scope = self.policy.require(actor, c.entity, action)
        cond = secure.rows(self, actor, c.entity.name, action, deleted=None).predicate
        if cond is None:
            return
        if conn.execute(select(c.table.c.id).where(c.table.c.id == record_id, cond)).first() \
                is None:
            raise Forbidden(msg("you may not %(action)s this record (%(entity)s): your roles "
                                "allow %(action)s on %(scope)s only",
                                action=msg(ACTION_WORDS.get(action, action)),
                                entity=c.entity.label, scope=msg(_SCOPE_WORDS[scope])))

    def row_out(self, actor: Actor, c: Compiled, row: Mapping[str, Any],
                only: Collection[str] | None = None) -> dict[str, Any]:
        """The record of `row` as the actor may read it; `only`: these fields alone."""
        return self.row_writer(actor, c, only)(row)

    def row_writer(self, actor: Actor, c: Compiled, only: Collection[str] | None = None
                   ) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        """`row_out` for many rows: which fields the actor reads, and how, is worked out
        once here rather than once per row."""
        hidden = self.policy.hidden_fields(actor, c.entity)
        shown = [f for f in c.entity.fields
                 if f.name not in hidden and (only is None or f.name in only)]
        names = [f.name for f in shown]
        computed = [(f.name, value_rounder(f.type)) for f in shown if f.computed]
        lazy = frozenset(name for name, _ in computed)  # absent when SQL cannot compute it

        def write(row: Mapping[str, Any]) -> dict[str, Any]:
            out = {k: row[k] for k in ENGINE_COLUMNS if k in row}
            if out.get("deleted_at") is None:
                out.pop("deleted_at", None)
                out.pop("deleted_by", None)
            out.update({name: row.get(name, _UNREAD) if name in lazy else row[name]
                        for name in names})
            for name, rounded in computed:
                value = out[name]
                if value is not _UNREAD:
                    out[name] = rounded(value)
                else:  # a formula the database cannot run (ISNEW, ISCHANGED, PRIORVALUE)
                    out[name] = self.record_context(None, c, row).get((name,))
            return out

        return write

    def sql_fields(self, reader: Actor | None = None) -> SqlFields:
        """Field expressions for one query (TODAY() and NOW() are bound when built).
        `reader`: whose query it is; a computed field that reads another record reads only
        records they may read (blank past one they cannot). None: the engine, every record.
        """
        readable = self.readable(reader)
        return SqlFields(self.schema, self.engine.dialect.name, self.formula_clock,
                         self._sql_cache, readable, reader)

    def readable(self, reader: Actor | None) -> Readable | None:
        """The records `reader` may read, per entity, as a condition maker; None: all."""
        return secure.readable(self.policy, reader)

    def _select(self, c: Compiled, *, computed: bool = True,
                only: Collection[str] | None = None,
                reader: Actor | None = None) -> Select[Any]:
        """The columns of whole records of `c` (`SecureRows.record_columns`) as `reader`
        reads them (None: the engine), without a WHERE."""
        seen = secure.rows(self, SYSTEM if reader is None else reader, c.entity.name)
        return select(*seen.record_columns(only, computed=computed))

    def record_context(self, conn: Connection | None, c: Compiled, values: Mapping[str, Any],
                       *, prior: Mapping[str, Any] | None = None,
                       is_new: bool = False, reader: Actor | None = None) -> RecordContext:
        """`values` of a record of `c` as formulas read them; lookups go through `conn`,
        reaching only records `reader` may read (None: the engine, every record)."""
        return RecordContext(self.model, self.schema, conn, c.entity, values,
                             self.formula_clock, prior=prior, is_new=is_new,
                             readable=self.readable(reader))

    def apply_rules(self, conn: Connection, c: Compiled, values: dict[str, Any],
                        errors: dict[str, str], *, given: Iterable[str] = (),
                        prior: Mapping[str, Any] | None = None,
                        writer: Actor | None = None) -> None:
        """Fill formula defaults (on create) and check the validation rules of the record
        as it will be saved (`values`: every stored field), collecting problems. A rule
        the `writer`'s roles may override is not checked (None: no one overrides)."""
        creating = prior is None
        refused = set(errors)  # inputs already refused: rules reading them wait for a fix
        if creating:
            skip = set(given) | refused
            for f in c.default_formulas:
                formula = f.default_formula
                if formula is None or f.name in skip:
                    continue
                result = formula.evaluate(self.record_context(conn, c, values, is_new=True))
                try:
                    values[f.name] = c.coercers[f.name](to_json(result))
                except ValueProblem as exc:
                    errors[f.name] = msg("its default formula gives %(value)s, which %(problem)s",
                                         value=repr(to_json(result)), problem=exc.message)
                    continue
                if f.required and is_blank(values[f.name]):
                    errors[f.name] = msg("is required")
        ctx = self.record_context(conn, c, values, prior=prior, is_new=creating)
        roles = () if writer is None else writer.roles
        for key, message in failing_rules(c.entity, ctx, skip=set(errors), roles=roles).items():
            errors[key] = joined([errors[key], message]) if key in errors else message

    def statement(self, key: tuple[Any, ...], build: Callable[[], S]) -> S:
        """The statement `build` makes, built once per `key` (which must name everything it
        depends on): reusing the object spares building it and SQLAlchemy its cache key."""
        stmt = self._statements.get(key)
        if stmt is None:
            if len(self._statements) >= STATEMENT_CACHE_SIZE:
                self._statements.clear()
            stmt = self._statements[key] = build()
        return cast(S, stmt)

    def reads_clock(self, c: Compiled) -> bool:
        """Whether selecting `c`'s computed fields binds the clock (not to be reused)."""
        return self._clocked[c.entity.name]

    def fetch(self, conn: Connection, actor: Actor, c: Compiled, record_id: int, *,
               deleted: bool = False, lock: bool = False,
               reader: Actor | None = None) -> dict[str, Any]:
        """The record if `actor` may read it; its computed fields as `reader` (by default
        the actor) reads them."""
        reader = actor if reader is None else reader

        def build() -> Select[Any]:
            stmt = self._select(c, computed=not lock, reader=reader).where(
                c.table.c.id == bindparam("record_id"),
                *secure.rows(self, actor, c.entity.name, deleted=deleted).where)
            return stmt.with_for_update() if lock else stmt

        stmt = build() if not lock and self.reads_clock(c) \
            else self.statement(("fetch", c.entity.name, actor, reader, deleted, lock), build)
        row = conn.execute(stmt, {"record_id": record_id}).mappings().first()
        if row is None:
            if deleted:
                raise NotFound(msg("no %(entity)s %(id)s in the recycle bin",
                                   entity=c.entity.name, id=record_id))
            raise NotFound(msg("no %(entity)s %(id)s", entity=c.entity.name, id=record_id))
        return dict(row)

    # -- validation ----------------------------------------------------------------------

    def coerce(self, c: Compiled, data: Mapping[str, Any], *, creating: bool,
                  errors: dict[str, str], mask: FieldMask,
                  coerced: bool = False) -> dict[str, Any]:
        """Coerce `data` into column values, collecting every problem into `errors`.

        A field hidden from the writer is as unknown to them as a field that does not exist.
        `coerced`: the values of writable plain fields are already stored values made by
        the same coercers (an import's RowCoercer), so they are taken as they are; every
        other check (hidden, read-only, engine-kept fields, defaults, required) still runs.
        """
        entity = c.entity
        plain, hidden, readonly = c.plain, mask.hidden, mask.readonly
        values: dict[str, Any] = {}
        rest: Mapping[str, Any] = data
        if coerced and data.keys() <= plain and hidden.isdisjoint(data) \
                and readonly.isdisjoint(data):
            values, rest = dict(data), {}  # an import's row: each key a writable plain field
        for key, raw in rest.items():
            if key in plain and key not in hidden and key not in readonly:
                if coerced:
                    values[key] = raw
                    continue
                try:
                    values[key] = c.coercers[key](raw)
                except ValueProblem as exc:
                    errors[key] = exc.message
            elif not isinstance(key, str):
                errors[str(key)] = msg("field names are text")
            elif key in ENGINE_COLUMNS:
                errors[key] = msg("is set by the engine and cannot be written")
            elif not entity.has_field(key) or key in mask.hidden:
                errors[key] = msg("unknown field of %(entity)s", entity=entity.name)
            elif entity.field(key).computed:
                errors[key] = msg("is computed and cannot be written")
            elif entity.field(key).rollup is not None:
                errors[key] = msg("is a rollup the engine keeps and cannot be written")
            elif entity.field(key).number_format is not None:
                errors[key] = msg("is numbered by the engine and cannot be written")
            elif creating and entity.field(key).type is FieldType.FILE and not is_blank(raw):
                errors[key] = msg("is set once the record exists, by uploading a file for it")
            elif key in mask.readonly:
                errors[key] = msg("is read-only for your role")
            else:
                try:
                    values[key] = c.coercers[key](raw)
                except ValueProblem as exc:
                    errors[key] = exc.message
        if creating:
            for name, default in c.defaults.items():
                if name not in data:
                    values[name] = default
        for f in c.required:
            if f.name not in errors and (
                (creating and is_blank(values.get(f.name))
                 and (f.default_formula is None or f.name in data))
                or (not creating and f.name in values and is_blank(values[f.name]))
            ):
                errors[f.name] = msg("is required")  # a formula default is checked once run
        return values

    def check_links(self, conn: Connection, actor: Actor, c: Compiled,
                     values: Mapping[str, Any], errors: dict[str, str],
                     self_id: int | None = None) -> None:
        """References must point to live records that `actor` can see."""
        check_regarding(self, conn, actor, c, values, errors, self_id)
        for name, target in c.links.items():
            value = values.get(name)
            if value is None or name in errors:
                continue
            if self_id is not None and target is c.table and value == self_id:
                errors[name] = msg("cannot point to the record itself")
                continue
            cond = [target.c.id == value, live_target(target)]
            predicate = self.link_filter(actor, target)
            if predicate is not None:
                cond.append(predicate)
            found = conn.execute(select(target.c.id).where(*cond)).first()
            if found is None:
                errors[name] = msg("no %(entity)s with id %(id)s",
                                   entity=target.name.removeprefix("crm_"), id=value)
            elif self_id is not None and target is c.table \
                    and would_circle(conn, c.table, name, value, self_id):
                errors[name] = msg("%(id)s is already under this record; the %(field)s chain "
                                   "cannot go round in a circle", id=value, field=name)
        check_files(conn, c.entity, self.schema.table(ATTACHMENT_TABLE), values, errors, self_id)

    def link_filter(self, actor: Actor, target: Table) -> ColumnElement[bool] | None:
        """The records of `target` a link written by `actor` may point to (users: any)."""
        if target.name == USER_TABLE:
            return None
        return secure.rows(self, actor, target.name, deleted=None, table=target).predicate

    def check_unique_values(self, conn: Connection, actor: Actor, c: Compiled,
                      values: Mapping[str, Any], errors: dict[str, str],
                      self_id: int | None = None) -> None:
        check_unique(conn, c.entity, c.table, values, errors,
                     lambda: secure.rows(self, actor, c.entity.name, deleted=None).predicate,
                     self_id)

    # -- single-record operations --------------------------------------------------------

    def create(self, actor: Actor, entity: str, data: Mapping[str, Any], *,
               unit: UnitOfWork | None = None) -> dict[str, Any]:
        """A new record of `entity` from `data`; `unit`: in that unit of work (not
        committed here), by default in one of its own."""
        c = self.compiled(entity)
        self.policy.require(actor, c.entity, "create")
        errors: dict[str, str] = {}
        values = self.coerce(c, data, creating=True, errors=errors,
                             mask=self.policy.mask(actor, c.entity))
        with self.unit(actor, unit) as u:
            conn, now = u.conn, u.now
            self.check_links(conn, actor, c, values, errors)
            self.check_unique_values(conn, actor, c, values, errors)
            engine_values = self.engine_values(actor, actor, now)
            full = self.complete_new(conn, c, values, errors, engine_values,
                                     given=data.keys(), writer=actor)
            if errors:
                raise Invalid(msg("%(entity)s is not valid", entity=entity), errors)
            assign_numbers(conn, self.counters, c.entity, [values], now,
                           self.model.settings.zone)
            try:
                new_id = conn.execute(insert(c.table).values(**engine_values,
                                                             **c.empty_rollups,
                                                             **c.db_values(values))
                                      .returning(c.table.c.id)).scalar_one()
            except IntegrityError as exc:
                raise Conflict(msg("%(entity)s conflicts with another record: %(reason)s",
                                   entity=entity, reason=_reason(exc))) from None
            u.change(entity, new_id, "create",
                     after={**full, **engine_values, **values, "id": new_id},
                     changes=[(k, None, v) for k, v in values.items() if v is not None])
            u.settle()  # what hooks change shows in the answer
            row = self.fetch(conn, SYSTEM, c, new_id, reader=actor)
        return self.row_out(actor, c, row)

    def get(self, actor: Actor, entity: str, record_id: int, *,
            deleted: bool = False) -> dict[str, Any]:
        c = self.compiled(entity)
        self.policy.require(actor, c.entity, "read")
        with self.engine.connect() as conn:
            row = self.fetch(conn, actor, c, record_id, deleted=deleted)
        return self.row_out(actor, c, row)

    def update(self, actor: Actor, entity: str, record_id: int, data: Mapping[str, Any],
               version: int, *, unit: UnitOfWork | None = None) -> dict[str, Any]:
        c = self.compiled(entity)
        self.policy.require(actor, c.entity, "read")
        errors: dict[str, str] = {}
        values = self.coerce(c, data, creating=False, errors=errors,
                             mask=self.policy.mask(actor, c.entity))
        with self.unit(actor, unit) as u:
            conn, now = u.conn, u.now
            hold_links(conn, c.table, c.links, values)  # before the row lock: trees.py
            old = self.fetch(conn, actor, c, record_id, lock=True)
            self.allowed(conn, actor, c, record_id, "update")
            if old["version"] != version:
                raise stale_version(entity, record_id, old["version"], version)
            self.check_links(conn, actor, c, values, errors, self_id=record_id)
            self.check_unique_values(conn, actor, c, values, errors, self_id=record_id)
            if errors or field_changes(old, values, values.keys()):
                self.apply_rules(conn, c, {**old, **values}, errors, prior=old, writer=actor)
            if errors:
                raise Invalid(msg("%(entity)s is not valid", entity=entity), errors)
            changes = field_changes(old, values, values.keys())
            if not changes:  # `old` was read for update, without computed fields
                return self.row_out(actor, c, self.fetch(conn, SYSTEM, c, record_id,
                                                         reader=actor))
            t = c.table
            stmt = (update(t).where(t.c.id == record_id, t.c.version == version,
                                    t.c.deleted_at.is_(None))
                    .values(**c.db_values({f: n for f, _, n in changes}),
                            version=t.c.version + 1,
                            updated_at=now, updated_by=actor.user_id))
            try:
                result = conn.execute(stmt)
            except IntegrityError as exc:
                raise Conflict(msg("%(entity)s conflicts with another record: %(reason)s",
                                   entity=entity, reason=_reason(exc))) from None
            if result.rowcount != 1:
                raise stale_version(entity, record_id, None, version)
            engine_after = {"version": old["version"] + 1, "updated_at": now,
                            "updated_by": actor.user_id}
            u.change(entity, record_id, "update", before=old,
                     after={**old, **values, **engine_after}, changes=changes)
            u.settle()
            row = self.fetch(conn, SYSTEM, c, record_id, reader=actor)
        return self.row_out(actor, c, row)

    def delete(self, actor: Actor, entity: str, record_id: int,
               version: int | None = None, *, unit: UnitOfWork | None = None) -> None:
        """Move a record to the recycle bin."""
        c = self.compiled(entity)
        self.policy.require(actor, c.entity, "read")
        with self.unit(actor, unit) as u:
            conn = u.conn
            old = self.fetch(conn, actor, c, record_id, lock=True)
            self.allowed(conn, actor, c, record_id, "delete")
            if version is not None and old["version"] != version:
                raise stale_version(entity, record_id, old["version"], version)
            if entity == DEPARTMENT:
                refuse_department_in_use(conn, self, record_id)
            self._bin(u, c, old, deleted=True)

    def restore(self, actor: Actor, entity: str, record_id: int, *,
                unit: UnitOfWork | None = None) -> dict[str, Any]:
        """Bring a record back from the recycle bin."""
        c = self.compiled(entity)
        self.policy.require(actor, c.entity, "read")
        with self.unit(actor, unit) as u:
            conn = u.conn
            old = self.fetch(conn, actor, c, record_id, deleted=True, lock=True)
            self.allowed(conn, actor, c, record_id, "delete")
            self._bin(u, c, old, deleted=False)
            u.settle()
            row = self.fetch(conn, SYSTEM, c, record_id, reader=actor)
        return self.row_out(actor, c, row)

    def _bin(self, u: UnitOfWork, c: Compiled, old: Mapping[str, Any], *,
             deleted: bool) -> None:
        """Move the record `old` into the recycle bin (`deleted`) or out of it."""
        t, user = c.table, u.actor.user_id
        bin_values = {"deleted_at": u.now if deleted else None,
                      "deleted_by": user if deleted else None}
        engine_after = {**bin_values, "version": old["version"] + 1, "updated_at": u.now,
                        "updated_by": user}
        u.conn.execute(update(t).where(t.c.id == old["id"]).values(
            {**engine_after, "version": t.c.version + 1}))
        u.change(c.entity.name, old["id"], "delete" if deleted else "restore", before=old,
                 after={**old, **engine_after})

    def purge(self, actor: Actor, entity: str, record_id: int, *,
              unit: UnitOfWork | None = None) -> None:
        """Delete a record in the recycle bin for good; its audit history stays."""
        c = self.compiled(entity)
        self.policy.require(actor, c.entity, "read")
        with self.unit(actor, unit) as u:
            conn = u.conn
            old = self.fetch(conn, actor, c, record_id, deleted=True, lock=True)
            self.allowed(conn, actor, c, record_id, "delete")
            refuse_regarded(self, conn, entity, record_id)
            try:
                with conn.begin_nested():
                    conn.execute(delete(c.table).where(c.table.c.id == record_id))
            except IntegrityError:
                raise Conflict(msg("%(entity)s %(id)s is still referenced by other records; "
                                   "clear those links first", entity=entity, id=record_id)
                               ) from None
            # SQLite may give the id to the next record: its sharing must not carry over.
            team = self.policy.team
            conn.execute(delete(team).where(team.c.entity == entity,
                                            team.c.record_id == record_id))
            u.change(entity, record_id, "purge", before=old,
                     changes=[(f.name, old[f.name], None) for f in c.written
                              if old[f.name] is not None])

    # -- reading, and a new record's first values ----------------------------------------

    @contextmanager
    def reading(self, conn: Connection | None = None) -> Iterator[Connection]:
        """A connection for reads (`conn` when given, left open): what a page reads
        through, query by query, instead of reaching for the engine."""
        with connection(self.engine, conn) as db:
            yield db

    def new_record(self, actor: Actor, entity: str) -> dict[str, Any]:
        """The values a record of `entity` that `actor` creates starts from, before any
        input: the fields' defaults (not formula defaults: they read the input), rollups
        empty, and the engine columns a create sets. A form previews a new record with
        these; `create` starts from the same."""
        c = self.compiled(entity)
        return {**c.blank_record, **self.engine_values(actor, actor, self.clock())}

    @staticmethod
    def engine_values(writer: Actor, owner: Actor, now: datetime) -> dict[str, Any]:
        """The engine columns of a record `writer` creates for `owner` at `now`."""
        return {"version": 1, "created_at": now, "created_by": writer.user_id,
                "updated_at": now, "updated_by": writer.user_id,
                "owner_id": owner.user_id, "department_id": owner.department_id}

    def complete_new(self, conn: Connection, c: Compiled, values: dict[str, Any],
                     errors: dict[str, str], engine_values: Mapping[str, Any], *,
                     given: Iterable[str], writer: Actor | None = None) -> dict[str, Any]:
        """The pipeline's defaults-and-rules step for a new record (create and bulk
        create alike): the formula defaults of the fields not `given` go into `values`,
        then the rules are checked on the record as it will be saved (but those the
        `writer` may override), problems into `errors`. Returns that whole record (what
        the input leaves blank is blank: `coerce` already applied the plain defaults)."""
        full = {**c.blank_record, **engine_values, **values}
        self.apply_rules(conn, c, full, errors, given=given, writer=writer)
        if not errors:  # what the rules step added: the formula defaults' values
            for f in c.default_formulas:
                if f.name in values or full[f.name] is not None:
                    values[f.name] = full[f.name]
        return full

    # -- the write pipeline (records/unit.py) ------------------------------------------

    @contextmanager
    def unit(self, actor: Actor, joined: UnitOfWork | None = None, *,
             dry_run: bool = False) -> Iterator[UnitOfWork]:
        """The unit of work a write runs in: `joined` when given (the caller's, which it
        commits), else a new one that commits when the block ends."""
        if joined is not None:
            yield joined
            return
        with open_unit(self.writer, actor, self.clock(), self.hooks, self.audit,
                       dry_run=dry_run, change_log=self.change_log) as u:
            yield u

    def dry_run(self, actor: Actor, work: Callable[[UnitOfWork], T]) -> DryRun[T]:
        """Run `work` (writes given the unit) through the whole pipeline, hooks included,
        and roll it all back: what it returned and the changes it would make."""
        with self.unit(actor, dry_run=True) as u:
            result = work(u)
        return DryRun(result, tuple(u.changes))

    def history(self, actor: Actor, entity: str, record_id: int) -> list[dict[str, Any]]:
        c = self.compiled(entity)
        self.policy.require(actor, c.entity, "read")
        with self.engine.connect() as conn:  # live or in the recycle bin: either has history
            seen = secure.rows(self, actor, entity, deleted=None)
            stmt = seen.select(c.table.c.id).where(c.table.c.id == record_id)
            if conn.execute(stmt).first() is None:
                raise NotFound(msg("no %(entity)s %(id)s", entity=entity, id=record_id))
            return read_history(conn, self.audit, self.users, entity, record_id,
                                self.audited_fields(actor, c))

    def audited_fields(self, actor: Actor, c: Compiled) -> frozenset[str]:
        """The fields whose audit rows `actor` may read."""
        hidden = self.policy.hidden_fields(actor, c.entity)
        return frozenset(c.entity.field_names) - hidden | _ENGINE_AUDITED

    def explain(self, actor: Actor, entity: str, record_id: int, name: str) -> dict[str, Any]:
        """A computed field that is a sum (`a + b + c`), term by term, on one record."""
        c = self.compiled(entity)
        self.policy.require(actor, c.entity, "read")
        terms = self.sum_terms_of(actor, c, name)
        with self.engine.connect() as conn:
            row = self.fetch(conn, actor, c, record_id)
            return self.explained(conn, c, row, self.row_out(actor, c, row), name, terms,
                                  actor)

    def sum_terms_of(self, actor: Actor, c: Compiled,
                     name: str) -> tuple[CompiledFormula, ...]:
        """The terms of computed field `name`, a sum, compiled (once per field); NotFound
        when the actor may not see the field, BadRequest when it is not a sum."""
        if not c.entity.has_field(name) or name in self.policy.hidden_fields(actor, c.entity):
            raise NotFound(msg("no field '%(field)s' of %(entity)s", field=name,
                               entity=c.entity.name))
        key = (c.entity.name, name)
        if key not in self._terms:
            f = c.entity.field(name)
            if f.formula is None:
                raise BadRequest(msg("%(field)s is not a computed field", field=name),
                                 {"field": msg("has no formula")})
            terms = sum_terms(f.formula)
            if terms is None:
                raise BadRequest(msg("%(field)s is not a sum of terms", field=name),
                                 {"field": msg("its formula is not a sum (a + b + c)")})
            scope = scope_of(self.model.entities, c.entity.name)
            self._terms[key] = tuple(compile_formula(t, scope) for t in terms)
        return self._terms[key]

    def explained(self, conn: Connection, c: Compiled, row: Mapping[str, Any],
                  out: Mapping[str, Any], name: str,
                  terms: tuple[CompiledFormula, ...],
                  reader: Actor | None = None) -> dict[str, Any]:
        """`terms` of field `name` evaluated on a fetched `row` (lookups through `conn`, to
        records `reader` may read); `out`: the row as its reader may see it (`row_out`)."""
        ctx = self.record_context(conn, c, row, reader=reader)
        values = [t.evaluate(ctx) for t in terms]
        return {"field": name, "value": out[name],
                "terms": [explained_term(c.entity, t, v, out)
                          for t, v in zip(terms, values, strict=True)]}

    # -- lists ---------------------------------------------------------------------------

    def compile_filter(self, entity: str, source: str,
                       actor: Actor | None = None) -> CompiledFormula:
        """A `?filter=` formula checked against `entity`: a condition the database can run.
        `actor`: whose filter it is; the fields hidden from them are unknown to it, as if
        they did not exist (engine/runtime/records/masked.py).

        Raises BadRequest with {"filter": "LINE:COL: message"}.
        """
        c = self.compiled(entity)
        try:
            formula = compile_formula(source, self.scopes.scope(actor, c.entity.name),
                                      FType.BOOLEAN)
            if formula.sql_problem is not None:
                raise formula.sql_problem
        except FormulaError as exc:
            raise BadRequest(msg("invalid filter"), {"filter": exc.described()}) from None
        return formula

    def list_records(self, actor: Actor, entity: str, query: ListQuery,
                     fields: Collection[str] | None = None,
                     conn: Connection | None = None,
                     links: Mapping[str, str] | None = None) -> Page:
        """A page of the records the actor may read. `fields`: the records carry these
        fields only (besides the engine columns), which spares selecting and building the
        others; a field hidden from the actor is never selected nor returned either way.
        None: every field the actor may read. `conn`: read through it (left open).
        `links`: link key → target (an entity, or crm_user) whose linked records' names
        to read in the same query, into Page.names (engine/runtime/records/names.py)."""
        c = self.compiled(entity)
        t = c.table
        self.policy.require(actor, c.entity, "read")
        only: frozenset[str] | None = None
        hidden = self.policy.hidden_fields(actor, c.entity)
        if fields is not None:
            # The sort keys too: the next page's cursor is made of their values.
            only = frozenset(fields).union(k.field for k in query.sort) - hidden
        used: set[tuple[str, ...]] = {(cond.field,) for cond in query.conditions} \
            | {(k.field,) for k in query.sort}
        if query.filter is not None:
            used |= set(query.filter.references)
        if any(self.policy.reads_hidden(actor, c.entity, path) for path in used):
            self._refuse_hidden(actor, c, query)
        # each hop through a reference reaches only records the actor can read: past one
        # they cannot, a path is blank, so a filter cannot probe a hidden record's values
        sql = self.sql_fields(actor)
        cols = sql.columns(c.entity, t)
        seen = secure.rows(self, actor, entity, deleted=query.deleted)
        where = list(seen.state)  # the scope comes as branches (query.py page_statement)
        where += [condition_sql(cols, cond, self.engine.dialect.name)
                  for cond in query.conditions]
        if query.filter is not None:
            try:  # computed fields it reads are inlined: the SQL bound applies to the whole
                where.append(query.filter.sql_condition(
                    lambda path: sql.path(c.entity, t, path), sql.dialect, sql.clock))
            except FormulaError as exc:
                raise BadRequest(msg("invalid filter"),
                                 {"filter": exc.described()}) from None
        branches = seen.branches

        def build() -> Select[Any]:
            stmt = self._select(c, only=only, reader=actor)
            for key, target in (links or {}).items():
                if key not in t.c or (key not in ENGINE_COLUMNS and (
                        key in hidden or (only is not None and key not in only))):
                    continue  # not read: nothing to name
                name = name_column(self, actor, target, t.c[key])
                if name is not None:
                    stmt = stmt.add_columns(name.label(NAME_PREFIX + key))
            after = ([after_cursor(c.entity, cols, query.sort, query.cursor)]
                     if query.cursor else [])
            return page_statement(stmt, t.c.id, [*where, *after], branches,
                                  order_by(cols, query.sort, self.nulls_small),
                                  0 if query.cursor else (query.page - 1) * query.page_size,
                                  query.page_size)

        # A page of a list without conditions, filter or cursor (a view as it opens) is
        # built once per actor and query: building it, and SQLAlchemy's cache key of it,
        # cost more than running it (0.2-0.4 ms). Not when it binds the clock (TODAY() in
        # a computed field), nor for the one-off pages of a search, a filter or a cursor:
        # a kept list statement holds about 90 KB.
        reuse = not (query.conditions or query.filter is not None or query.cursor
                     or self.reads_clock(c))
        stmt = self.statement(
            ("list", entity, actor, only, tuple(sorted((links or {}).items())),
             query.deleted, query.sort, query.page, query.page_size),
            build) if reuse else build()
        named = {key: target for key, target in (links or {}).items()
                 if NAME_PREFIX + key in stmt.selected_columns}
        list_key = (entity, actor, query.deleted, repr(query.conditions),
                    query.filter.source if query.filter is not None else None)
        with connection(self.engine, conn) as db:
            rows = [dict(r) for r in db.execute(stmt).mappings()]
            total, exact = self.totals.count(db, t, where, list_key, branches)
        next_cursor = (encode_cursor(query.sort, rows[-1])
                       if len(rows) == query.page_size else None)
        names = names_of(rows, named) if named else {}
        write = self.row_writer(actor, c, only)
        return Page([write(r) for r in rows], total, exact, query.page,
                    query.page_size, next_cursor, names=names, named=frozenset(named))

    def _refuse_hidden(self, actor: Actor, c: Compiled, query: ListQuery) -> None:
        """A query naming a field hidden from the actor gets the answer a field that does not
        exist gets (parse_list_params and compile_filter give it when told the actor; this
        catches a caller that did not tell them)."""
        hidden = self.policy.hidden_fields(actor, c.entity)
        if query.filter is not None and any(
                self.policy.reads_hidden(actor, c.entity, p) for p in query.filter.references):
            self.compile_filter(c.entity.name, query.filter.source, actor)
        problems: dict[str, str] = {}
        for cond in query.conditions:
            if cond.field in hidden:
                key = cond.field if cond.op == "eq" else f"{cond.field}__{cond.op}"
                problems[key] = unknown_field(c.entity, cond.field)
        for k in query.sort:
            if k.field in hidden:
                problems["sort"] = unknown_sort_field(c.entity, k.field)
        raise BadRequest(msg("invalid list parameters"), problems)

    # -- bulk (records/imports.py) ------------------------------------------------------

    def bulk_create(self, actor: Actor, entity: str, rows: Iterable[Mapping[str, Any]],
                    *, batch_size: int = BULK_BATCH, owner: Actor | None = None,
                    unit: UnitOfWork | None = None) -> BulkResult:
        """Validate and insert many rows; rows with problems are skipped and reported.

        Each batch is a unit of work that commits on its own (all in `unit` when given);
        audit gets one `create` row per record holding all its values. Returns the ids
        created, in input order. `owner`: whose records they become (an import on
        someone's behalf; administrators only), by default the actor's.
        """
        return bulk_create(self, actor, entity, rows, batch_size=batch_size, owner=owner,
                           unit=unit)

    # -- ownership and teams (records/assign.py, records/team.py) ------------------------

    def assign(self, actor: Actor, entity: str, record_id: int, *, owner: int | None,
               department: int | None, version: int | None = None,
               unit: UnitOfWork | None = None) -> dict[str, Any]:
        return assign_record(self, actor, entity, record_id, owner=owner,
                             department=department, version=version, unit=unit)

    def transfer_owned(self, actor: Actor, from_user: int, to_user: int, *,
                       deactivate: bool = False) -> dict[str, int]:
        return transfer_owned(self, actor, from_user, to_user, deactivate=deactivate)

    def team(self, actor: Actor, entity: str, record_id: int) -> list[dict[str, Any]]:
        return team_of(self, actor, entity, record_id)

    def set_team_member(self, actor: Actor, entity: str, record_id: int, user_id: int,
                        access: str, *, unit: UnitOfWork | None = None
                        ) -> list[dict[str, Any]]:
        return set_member(self, actor, entity, record_id, user_id, access, unit)

    def remove_team_member(self, actor: Actor, entity: str, record_id: int,
                           user_id: int, *, unit: UnitOfWork | None = None
                           ) -> list[dict[str, Any]]:
        return remove_member(self, actor, entity, record_id, user_id, unit)

    def field_of(self, entity: str, name: str) -> Field:
        return self.compiled(entity).entity.field(name)


# Audit fields besides the entity's own: assignment and team changes, merges.
_ENGINE_AUDITED = frozenset({"owner_id", "department_id", "team", "attachments", "merge"})

_SCOPE_WORDS = {Scope.OWN: N_("records you own or share as a team member"),
                Scope.DEPARTMENT: N_("records of your department"),
                Scope.DEPARTMENT_TREE: N_("records of your department and those under it"),
                Scope.ALL: N_("every record"), Scope.NONE: N_("no record")}


def _reason(exc: IntegrityError) -> str:
    text = str(exc.orig).splitlines()[0] if exc.orig else "integrity error"
    return text[:200]

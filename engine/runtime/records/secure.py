"""The one secure query: the rows of an entity that an actor may see for an action.

Every query of records starts here: lists, board totals, search, pickers and titles, the
names of linked records, history, a record's children, rollups (and later reports and
exports). `rows(records, actor, entity, action)` gives what such a query needs:

- the table (or an alias of it) and the WHERE conditions: live or in the recycle bin, and
  the actor's scope for `action` (`where`; `branches` is the same scope as alternatives,
  the form a list reads them in);
- the actor's fields: computed fields and reference paths read only records the actor may
  read (blank past one they cannot), and a field hidden from the actor is unknown, refused
  with the NotFound a field that does not exist gets;
- `select`, `grouped` and `condition` to build on them.

For the engine itself (SYSTEM: rollups, checks of the whole table) the same builder has no
predicate and no mask. No other module of the engine asks the access policy for a row
condition to build a query with (tests/test_records_secure.py holds it to that).

>>> seen = rows(records, actor, "opportunity")  # doctest: +SKIP
>>> seen.select(seen.table.c.id).where(seen.column("stage") == "won")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, FromClause, Select, select

from engine.formula import CompiledFormula, Path
from engine.messages import msg
from engine.metadata.formula_checks import engine_link
from engine.metadata.model import Entity
from engine.runtime.access import AccessPolicy, Actor
from engine.runtime.errors import NotFound
from engine.runtime.records.computed import Readable, SqlFields
from engine.runtime.records.query import Condition, condition_sql
from engine.runtime.schema.regarding import field_column
from engine.types import ENGINE_COLUMNS, FieldType

if TYPE_CHECKING:
    from engine.runtime.records.service import Compiled, Records


def rows(records: Records, actor: Actor, entity: str, action: str = "read", *,
         deleted: bool | None = False, table: FromClause | None = None) -> SecureRows:
    """The rows of `entity` that `actor` may `action` (read, update, delete, assign,
    export): live ones, those in the recycle bin when `deleted`, either when None (a
    record's history). `table`: an alias of the entity's table to query instead.
    NotFound for an entity that does not exist."""
    return SecureRows(records, actor, records.compiled(entity), action, deleted, table)


def readable(policy: AccessPolicy, reader: Actor | None) -> Readable | None:
    """The records `reader` may read, per entity, as a condition maker (what a computed
    field or a lookup follows a reference through); None: every record (the engine, an
    administrator)."""
    if reader is None or policy.is_admin(reader):
        return None
    return lambda entity, table: policy.read_filter(reader, entity, table)


class SecureRows:
    """The rows of one entity an actor may see for one action, and their fields as the
    actor may read them. Its parts are built when first asked for (a list that reads the
    scope as branches never builds the single predicate)."""

    def __init__(self, records: Records, actor: Actor, compiled: Compiled, action: str,
                 deleted: bool | None, table: FromClause | None) -> None:
        self.records = records
        self.actor = actor
        self.compiled = compiled
        self.entity: Entity = compiled.entity
        self.action = action
        self.deleted = deleted
        self.table: FromClause = compiled.table if table is None else table

    # -- which rows ----------------------------------------------------------------------

    @property
    def state(self) -> list[ColumnElement[bool]]:
        """Live rows, or those in the recycle bin (`deleted`); nothing for either. A new
        list each time: the caller may add to it."""
        at = self.table.c.deleted_at
        if self.deleted is None:
            return []
        return [at.is_not(None) if self.deleted else at.is_(None)]

    @cached_property
    def predicate(self) -> ColumnElement[bool] | None:
        """The actor's scope for the action as a condition; None: every row."""
        return self.records.policy.row_filter(self.actor, self.entity, self.table,
                                              self.action)

    @property
    def where(self) -> list[ColumnElement[bool]]:
        """The conditions every row meets: its state and the actor's scope (a new list)."""
        return self.state if self.predicate is None else [*self.state, self.predicate]

    @cached_property
    def branches(self) -> list[ColumnElement[bool]] | None:
        """The actor's scope as alternatives any of which lets a row in (a list reads each
        apart: engine/runtime/records/query.py `page_statement`); None: every row. With
        `state`, the same rows as `where`."""
        if self.action == "read":
            return self.records.policy.read_branches(self.actor, self.entity, self.table)
        return None if self.predicate is None else [self.predicate]

    # -- the actor's fields --------------------------------------------------------------

    @cached_property
    def hidden(self) -> frozenset[str]:
        """The fields hidden from the actor (computed ones reading a hidden field too)."""
        return self.records.policy.hidden_fields(self.actor, self.entity)

    @cached_property
    def sql(self) -> SqlFields:
        """Field expressions as the actor reads them: a computed field or a path through a
        reference reads only records the actor may read. Unmasked: use `column`/`path`
        for a field named from outside."""
        return self.records.sql_fields(self.actor)

    @cached_property
    def columns(self) -> dict[str, ColumnElement[Any]]:
        """name → expression of the engine columns, stored fields and SQL-computed fields
        the actor may see."""
        return {k: v for k, v in self.sql.columns(self.entity, self.table).items()
                if k not in self.hidden}

    def column(self, name: str) -> ColumnElement[Any]:
        """The expression of field (or engine column) `name`, as in `columns` (built alone);
        NotFound when there is no such field or it is hidden from the actor, alike."""
        if name in self.hidden:
            raise self.unknown(name)
        if self.entity.has_field(name):
            f = self.entity.field(name)
            if not f.computed:
                return field_column(self.table, f)
            if f.compiled is not None and f.compiled.sql_capable:
                return self.sql.field(self.entity, self.table, f).label(name)  # as `columns`
        elif name in self.table.c:
            return self.table.c[name]  # an engine column
        raise self.unknown(name)  # none, or a formula only Python runs

    def path(self, path: Path) -> ColumnElement[Any]:
        """The value `path` (`account.credit_limit`) reads from a row, each hop reaching only
        records the actor may read; NotFound when it names a field that does not exist or
        touches one hidden from the actor."""
        first = path[0]
        if not (self.entity.has_field(first) or first in self.table.c
                or engine_link(self.records.model.entities, first)):
            raise self.unknown(first)
        if self.records.policy.reads_hidden(self.actor, self.entity, tuple(path)):
            raise self.unknown(".".join(path))
        return self.sql.path(self.entity, self.table, path)

    def unknown(self, name: str) -> NotFound:
        """What asking for a field the actor may not know gets: as if it did not exist."""
        return NotFound(msg("no field '%(field)s' of %(entity)s", field=name,
                            entity=self.entity.name))

    def record_columns(self, only: Collection[str] | None = None, *,
                       computed: bool = True) -> list[ColumnElement[Any]]:
        """A whole record as `Records.row_writer` turns it into what the actor may read: the
        engine columns, the stored fields and the SQL-computed fields (those the actor may
        not see are left to the writer: a formula only Python runs, and a write, may read
        them). `only`: of the fields, these alone (stored fields all the same when a formula
        only Python can run is asked for: it may read any of them). `computed` False: the
        stored row alone (read for update)."""
        t, e = self.table, self.entity
        stored = e.stored_fields
        if only is not None and not any(
                f.computed and (f.compiled is None or not f.compiled.sql_capable)
                for f in e.fields if f.name in only):
            stored = tuple(f for f in stored if f.name in only)
        cols: list[ColumnElement[Any]] = [t.c[n] for n in ENGINE_COLUMNS]
        cols += [t.c[f.name] if f.type is not FieldType.REGARDING
                 else field_column(t, f).label(f.name) for f in stored]
        if computed:
            cols += [self.sql.field(e, t, f).label(f.name) for f in e.fields
                     if f.computed and f.compiled is not None and f.compiled.sql_capable
                     and (only is None or f.name in only)]
        return cols

    # -- queries -------------------------------------------------------------------------

    def select(self, *columns: Any) -> Select[Any]:
        """SELECT `columns` FROM the rows (their WHERE applied)."""
        return select(*columns).where(*self.where)

    def select_records(self, only: Collection[str] | None = None) -> Select[Any]:
        """The rows as whole records (`record_columns`), for `Records.row_writer`."""
        return self.select(*self.record_columns(only))

    def conditions(self, given: Sequence[Condition]) -> list[ColumnElement[bool]]:
        """List conditions (`?stage=won`) on the actor's fields; NotFound for a field that
        does not exist or is hidden."""
        for cond in given:
            self.column(cond.field)
        return [condition_sql(self.columns, cond, self.records.engine.dialect.name)
                for cond in given]

    def condition(self, formula: CompiledFormula) -> ColumnElement[bool]:
        """A compiled condition formula (a `?filter=`, a rollup's `where`) in SQL, its paths
        read as the actor reads them. The formula was compiled against the fields the actor
        may see (Records.compile_filter): it names no hidden one."""
        sql = self.sql
        return formula.sql_condition(lambda path: sql.path(self.entity, self.table, path),
                                     sql.dialect, sql.clock)

    def grouped(self, key: ColumnElement[Any], *values: ColumnElement[Any]) -> Select[Any]:
        """Per value of `key` (labelled group_value), `values` (aggregates) over the rows."""
        return self.select(key.label("group_value"), *values).group_by(key)


def exported(records: Records, actor: Actor, entity: str) -> SecureRows:
    """The live rows of `entity` that `actor` may export: the `export` scope of their roles
    (own, department, all, as `read` scopes rows), and the fields they may read. Forbidden
    when their roles grant no export of the entity; NotFound for an unknown entity."""
    seen = rows(records, actor, entity, "export")
    records.policy.require(actor, seen.entity, "export")
    return seen

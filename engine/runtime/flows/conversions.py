"""Conversions (a flow's `conversions:`, docs/flows.md#conversions): an action on a record
that makes records of other entities from it — a lead becomes an account, a contact and an
opportunity — in ONE unit of work: every record made, every line copied and the source's
own `set` are saved together, or nothing is.

Who may convert: a user who may read the source record (404 otherwise, as for the record)
and create records of every entity the conversion makes (403 otherwise, naming the entity).
The conversion's `when` must hold on the record (409 `conversion_not_allowed` otherwise).
A record that fails its checks fails the whole conversion with a 422 whose fields name the
record (`account.name`) and the problem.

The records are written by the engine on the user's behalf: owned, created and audited as
the user, with the values the configuration's formulas give (plus the body's `values`,
checked against what the user may write); the records a conversion finds, reuses as
duplicates, or copies lines from are only those the user may read. Each conversion writes
an automation run on the source record (and one on each record it made or reused), so the
record pages' "Why did this change?" panels tell it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, literal, select

from engine.formula import Clock, Path
from engine.messages import LabelMessage, msg
from engine.metadata.flows import CONVERSION_NAMESPACES, Conversion, Creation, Flow, LineCopy
from engine.metadata.model import Model
from engine.metadata.roles import Scope
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import BadRequest, Conflict, Invalid, NotFound
from engine.runtime.flows.runs import Run, RunWriter, jsonable
from engine.runtime.records import secure
from engine.runtime.records.computed import RecordContext
from engine.runtime.records.unique import unique_column
from engine.runtime.records.unit import UnitOfWork
from engine.runtime.schema.tables import AUTOMATION_RUN_TABLE
from engine.runtime.values import ValueProblem, to_json

if TYPE_CHECKING:
    from engine.runtime.records import Records

DUPLICATES = ("reuse", "refuse")
"""The body's `duplicates`: reuse a record matching a creation's duplicate.match (the
default), or refuse the conversion (409 `duplicate`, naming the record found)."""


class NotAllowed(Conflict):
    code = "conversion_not_allowed"


class Duplicate(Conflict):
    code = "duplicate"


def conversions_of(model: Model, entity: str) -> list[tuple[Flow, Conversion]]:
    """The conversions of `entity`'s records, in the order of their flows."""
    return [(f, c) for f in model.flows if f.entity == entity for c in f.conversions]


def conversion_named(model: Model, entity: str, name: str) -> tuple[Flow, Conversion] | None:
    return next(((f, c) for f, c in conversions_of(model, entity) if c.name == name), None)


def targets(conversion: Conversion) -> list[str]:
    """The entities a conversion makes records of (its lines' included)."""
    out: list[str] = []
    for made in conversion.creates:
        out.append(made.entity)
        out.extend(line.entity for line in made.lines)
    return list(dict.fromkeys(out))


def may_convert(records: Records, actor: Actor, conversion: Conversion) -> bool:
    """Whether the actor may create a record of every entity `conversion` makes."""
    return all(records.policy.scope(actor, e, "create") is not Scope.NONE
               for e in targets(conversion))


def offered(records: Records, actor: Actor, entity: str,
            record: Mapping[str, Any], conn: Connection) -> list[Conversion]:
    """The conversions the record's page offers the actor: those whose `when` holds on the
    record (as the actor reads it) and whose records the actor may create."""
    found = conversions_of(records.model, entity)
    if not found:
        return []
    ctx = records.record_context(conn, records.compiled(entity), record, reader=actor)
    return [c for _, c in found
            if (c.when is None or c.when.holds(ctx)) and may_convert(records, actor, c)]


@dataclass
class Made:
    """A record a conversion made or reused."""

    name: str
    entity: str
    id: int
    reused: bool = False
    lines: int = 0

    def json(self) -> dict[str, Any]:
        return {"entity": self.entity, "id": self.id, "reused": self.reused,
                "lines": self.lines, "url": f"/api/{self.entity}/{self.id}",
                "page": f"/e/{self.entity}/{self.id}"}


@dataclass
class Converted:
    """What a conversion did: the records it made (by `as`), which one is the main one,
    and the source's fields it set."""

    conversion: str
    records: dict[str, Made]
    main: str
    set: dict[str, Any] = field(default_factory=dict)
    found: dict[str, int | None] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {"conversion": self.conversion, "main": self.main,
                "records": {k: v.json() for k, v in self.records.items()},
                "found": self.found, "set": self.set}


class _Bound:
    """The source record as a conversion's formulas read it: its own fields, and the
    records made (`new.<as>`) and found (`found.<as>`) so far."""

    direct_values = None

    def __init__(self, base: RecordContext, bound: dict[str, dict[str, tuple[str, int | None]]],
                 load: Callable[[str, int], RecordContext | None]) -> None:
        self.base = base
        self.bound = bound
        self.load = load

    @property
    def clock(self) -> Clock:
        return self.base.clock

    @property
    def is_new(self) -> bool:
        return False

    def get(self, path: Path) -> object:
        if path[0] in CONVERSION_NAMESPACES and len(path) >= 2:
            entity, record_id = self.bound[path[0]].get(path[1], ("", None))
            if record_id is None or len(path) == 2:
                return record_id
            other = self.load(entity, record_id)
            return None if other is None else other.get(path[2:])
        return self.base.get(path)

    def prior(self, path: Path) -> object:
        return self.get(path)

    def changed(self, path: Path) -> bool:
        return False


def convert(records: Records, actor: Actor, entity: str, record_id: int, name: str,
            body: Mapping[str, Any] | None = None) -> Converted:
    """Run conversion `name` on record `record_id` of `entity` for `actor`, in one unit of
    work. `body`: `{"values": {as: {field: value}}, "duplicates": "reuse" | "refuse"}`."""
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    found_conv = conversion_named(records.model, entity, name)
    if found_conv is None:
        names = ", ".join(["restore", "purge", "assign",
                           *(cv.name for _, cv in conversions_of(records.model, entity))])
        raise NotFound(msg("no action '%(action)s' on %(entity)s; available: %(names)s",
                           action=name, entity=entity, names=names))
    flow, conversion = found_conv
    overrides, duplicates = _body(records, actor, conversion, body or {})
    with records.unit(actor) as unit:
        conn = unit.conn
        # the source's row is locked first: two conversions of one record at once run one
        # after the other, and the second finds the first's `set` (its `when` then false)
        records.fetch(conn, actor, c, record_id, lock=True)  # NotFound when not readable
        source = records.fetch(conn, actor, c, record_id)
        for target in targets(conversion):
            records.policy.require(actor, records.model.entity(target), "create")
        ctx = records.record_context(conn, c, source, reader=actor)
        inputs: dict[str, Any] = {}
        if conversion.when is not None:
            inputs = jsonable({p[0]: ctx.get(p) for p in conversion.when.references
                               if len(p) == 1})
            if not conversion.when.holds(ctx):
                raise NotAllowed(msg(
                    "%(entity)s %(id)s cannot be converted now (%(action)s): %(rule)s is not "
                    "true", entity=entity, id=record_id, action=name,
                    rule=conversion.when.source.strip()))
        loaded: dict[tuple[str, int], RecordContext | None] = {}

        def load(target: str, target_id: int) -> RecordContext | None:
            key = (target, target_id)
            if key not in loaded:
                tc = records.compiled(target)
                try:
                    row = records.fetch(conn, actor, tc, target_id)
                except NotFound:
                    loaded[key] = None
                else:
                    loaded[key] = records.record_context(conn, tc, row, reader=actor)
            return loaded[key]

        bound: dict[str, dict[str, tuple[str, int | None]]] = {"new": {}, "found": {}}
        scope = _Bound(ctx, bound, load)
        out = Converted(name, {}, conversion.main.name)
        for finding in conversion.finds:
            wanted = {n: f.evaluate(scope) for n, f in finding.match}
            hit = _find(records, conn, actor, finding.entity, wanted)
            if hit is None and finding.required is not None:
                raise NotAllowed(msg(
                    "%(entity)s %(id)s cannot be converted now (%(action)s): %(why)s",
                    entity=entity, id=record_id, action=name,
                    why=LabelMessage(finding.required)))
            bound["found"][finding.name] = (finding.entity, hit)
            out.found[finding.name] = hit
        writer = _writer(actor)
        for made in conversion.creates:
            data = {n: to_json(f.evaluate(scope)) for n, f in made.values}
            data.update(overrides.get(made.name, {}))
            record = _make(records, unit, writer, made, data, duplicates, scope, load)
            out.records[made.name] = record
            bound["new"][made.name] = (made.entity, record.id)
        if conversion.set:
            out.set = _set_source(records, unit, c, record_id, source, conversion, scope)
        _explain(records, unit, flow, conversion, entity, record_id, inputs, out)
    return out


def _writer(actor: Actor) -> Actor:
    """Who a conversion writes as: the engine (no role limits the configured values), the
    records owned and created by the converting user."""
    return Actor(user_id=actor.user_id, name=actor.name, roles=SYSTEM.roles,
                 department_id=actor.department_id)


def _body(records: Records, actor: Actor, conversion: Conversion, body: Mapping[str, Any]
          ) -> tuple[dict[str, dict[str, Any]], str]:
    """The body's overrides (by `as`, only fields the actor may write) and its duplicates
    policy; a 400 for anything else."""
    unknown = set(body) - {"values", "duplicates"}
    if unknown:
        key = sorted(unknown)[0]
        raise BadRequest(msg("a conversion takes values and duplicates, not %(key)s",
                             key=key[:40]), {key[:40]: msg("unknown")})
    duplicates = body.get("duplicates", "reuse")
    if duplicates not in DUPLICATES:
        raise BadRequest(msg("duplicates is reuse or refuse"),
                         {"duplicates": msg("reuse or refuse")})
    values = body.get("values", {})
    if not isinstance(values, dict):
        raise BadRequest(msg("values maps each record of the conversion to its fields"),
                         {"values": msg("an object")})
    by_name = {m.name: m for m in conversion.creates}
    out: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for key, given in values.items():
        made = by_name.get(key)
        if made is None:
            errors[f"values.{key}"[:80]] = msg("not a record of this conversion; these are: "
                                               "%(names)s", names=", ".join(by_name))
            continue
        if not isinstance(given, dict):
            errors[f"values.{key}"] = msg("an object of field values")
            continue
        target = records.model.entity(made.entity)
        mask = records.policy.mask(actor, target)
        for fname in given:
            if not isinstance(fname, str) or not target.has_field(fname) \
                    or fname in mask.hidden:
                errors[f"{key}.{fname}"[:80]] = msg("unknown field of %(entity)s",
                                                    entity=target.name)
            elif fname in mask.readonly:
                errors[f"{key}.{fname}"] = msg("is read-only for your role")
        out[key] = dict(given)
    if errors:
        raise Invalid(msg("the conversion's values are not valid"), errors)
    return out, duplicates


def _find(records: Records, conn: Connection, actor: Actor, entity: str,
          wanted: Mapping[str, Any]) -> int | None:
    """The newest live record of `entity` the actor may read whose fields equal `wanted`
    (a record's name compared as unique names are: case-insensitively)."""
    c = records.compiled(entity)
    t = c.table
    dialect = conn.dialect.name
    cond: list[ColumnElement[bool]] = [t.c.deleted_at.is_(None)]
    for name, value in wanted.items():
        f = c.entity.field(name)
        if value is None:
            cond.append(t.c[name].is_(None))
            continue
        if isinstance(value, str):
            value = value.strip()
        typed = c.coercers[name](value) if name in c.coercers else value
        cond.append(unique_column(c.entity, f, t.c[name], dialect)
                    == unique_column(c.entity, f, literal(typed, t.c[name].type), dialect))
    predicate = secure.rows(records, actor, entity, deleted=None).predicate
    if predicate is not None:
        cond.append(predicate)
    found = conn.execute(select(t.c.id).where(*cond).order_by(t.c.id.desc()).limit(1)).first()
    return None if found is None else int(found.id)


def _make(records: Records, unit: UnitOfWork, writer: Actor, made: Creation,
          data: dict[str, Any], duplicates: str, scope: _Bound,
          load: Callable[[str, int], RecordContext | None]) -> Made:
    if made.match:
        try:
            hit = _find(records, unit.conn, unit.actor, made.entity,
                        {n: data.get(n) for n in made.match})
        except ValueProblem:  # a value the field cannot hold: no record has it
            hit = None
        if hit is not None:
            if duplicates == "refuse":
                raise Duplicate(msg("%(entity)s %(id)s already has the same %(fields)s: "
                                    "nothing was converted", entity=made.entity, id=hit,
                                    fields=", ".join(made.match)),
                                {made.name: msg("%(entity)s %(id)s", entity=made.entity,
                                                id=hit)})
            return Made(made.name, made.entity, hit, reused=True)
    try:
        record = records.create(writer, made.entity, data, unit=unit)
    except Invalid as exc:
        raise Invalid(msg("%(as)s (%(entity)s) is not valid: %(message)s", **{
            "as": made.name, "entity": made.entity, "message": exc.message}),
            {f"{made.name}.{k}": v for k, v in exc.fields.items()}) from None
    out = Made(made.name, made.entity, int(record["id"]))
    for line in made.lines:
        out.lines += _copy_lines(records, unit, writer, made, line, out.id, scope)
    return out


def _copy_lines(records: Records, unit: UnitOfWork, writer: Actor, made: Creation,
                line: LineCopy, parent_id: int, scope: _Bound) -> int:
    """Copy the rows of `line.source` under the record `line.of` gives (those the user may
    read, in their order) as rows of `line.entity` under the new record."""
    of = line.of.evaluate(scope)
    if of is None:
        return 0
    sc = records.compiled(line.source)
    t = sc.table
    cond: list[ColumnElement[bool]] = [t.c[line.via] == of,
                                       t.c.deleted_at.is_(None)]
    predicate = secure.rows(records, unit.actor, line.source, deleted=None).predicate
    if predicate is not None:
        cond.append(predicate)
    order = [t.c.position, t.c.id] if sc.entity.has_field("position") else [t.c.id]
    rows = unit.conn.execute(select(t).where(*cond).order_by(*order)).mappings().all()
    for n, row in enumerate(rows):
        ctx = records.record_context(unit.conn, sc, dict(row), reader=unit.actor)
        data = {k: to_json(f.evaluate(ctx)) for k, f in line.values}
        data[line.link] = parent_id
        try:
            records.create(writer, line.entity, data, unit=unit)
        except Invalid as exc:
            where = f"{made.name}.lines.{n}"
            raise Invalid(msg("%(where)s (%(entity)s) is not valid: %(message)s",
                              where=where, entity=line.entity, message=exc.message),
                          {f"{where}.{k}": v for k, v in exc.fields.items()}) from None
    return len(rows)


def _set_source(records: Records, unit: UnitOfWork, c: Any, record_id: int,
                source: Mapping[str, Any], conversion: Conversion,
                scope: _Bound) -> dict[str, Any]:
    """The conversion's `set` on the source record, by the engine (in the same unit)."""
    data = {n: to_json(f.evaluate(scope)) for n, f in conversion.set}
    changed = {k: v for k, v in data.items() if to_json(source.get(k)) != v}
    if not changed:
        return {}
    version = int(unit.conn.execute(select(c.table.c.version).where(
        c.table.c.id == record_id)).scalar_one())
    try:
        records.update(_writer(unit.actor), c.entity.name, record_id, changed, version,
                       unit=unit)
    except Invalid as exc:
        raise Invalid(msg("%(entity)s %(id)s is not valid after the conversion: %(message)s",
                          entity=c.entity.name, id=record_id, message=exc.message),
                      {f"{c.entity.name}.{k}": v for k, v in exc.fields.items()}) from None
    return {k: [to_json(source.get(k)), v] for k, v in changed.items()}


def _explain(records: Records, unit: UnitOfWork, flow: Flow, conversion: Conversion,
             entity: str, record_id: int, inputs: dict[str, Any], out: Converted) -> None:
    """Automation runs: one on the source (what was made, what was set), one on each
    record made or reused (what made it)."""
    writer = RunWriter(records.schema.table(AUTOMATION_RUN_TABLE))
    rule = f"conversions.{conversion.name}"
    actions: list[dict[str, Any]] = [
        {"kind": "create", "as": m.name, "entity": m.entity, "id": m.id, "reused": m.reused,
         "lines": m.lines} for m in out.records.values()]
    if out.set:
        actions.append({"kind": "set", "values": {k: v[1] for k, v in out.set.items()}})
    run = Run(flow.name, rule, flow.config_hash, entity, record_id, "action", "fired",
              None, inputs, actions, dict(out.set), at=unit.now, by_user=unit.actor.user_id)
    cause = writer.now(unit.conn, run)
    writer.many(unit.conn, [
        Run(flow.name, rule, flow.config_hash, m.entity, m.id, "action", "fired",
            f"{'reused' if m.reused else 'made'} by {conversion.name} of {entity} "
            f"{record_id}", cause_id=cause, at=unit.now, by_user=unit.actor.user_id)
        for m in out.records.values()])

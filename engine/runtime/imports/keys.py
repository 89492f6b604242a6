"""Records by a key, and references given as text: what imports and integrations name
records by.

- `key_field`: a field an import or a bulk upsert may key on — the entity's `external_id`
  (the record's code in the ERP) or any `unique` field.
- `find_by_key`: the live records holding each of many key values, in one query per chunk
  of values (not one per value), compared as unique values compare (engine/runtime/records/
  unique.py: Unicode NFC; a unique name ignoring case). A value held by a record in the
  recycle bin is told apart (`KeyMatches.binned`), so the caller neither updates it nor
  creates a second record with the value (the unique check refuses that, as always).
- `resolve_references`: the target id of each reference typed as text — `12` or `#12` (an
  id), the target's external id, or its name (its title, compared ignoring case and
  spaces) — or a problem naming the value (an ambiguous name asks for the id or external
  id). User fields take a user's login name or display name; department fields are
  references to the `department` entity.

Everything reads through the secure query (records/secure.py): a record the actor may not
read is never found, and the answer for it is word for word the answer for one that does
not exist.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ColumnElement, Connection, func, or_, select

from engine.messages import msg
from engine.metadata.model import Entity, Field, Model
from engine.runtime.access import Actor
from engine.runtime.db import FOLD_FUNCTION
from engine.runtime.errors import Invalid, NotFound
from engine.runtime.records import secure
from engine.runtime.records.unique import fold, unique_column, unique_key
from engine.runtime.schema.tables import USER_TABLE
from engine.runtime.values import ValueProblem, to_json
from engine.types import FieldType

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

CHUNK = 1_000
"""Values per query: an import batch of up to 1,000 keys is one query (bound parameters
stay far below SQLite's and PostgreSQL's limits)."""

V = TypeVar("V")


class KeyMatches(dict[Any, tuple[int, int]]):
    """value → (id, version) of the live record holding it; `binned`: value → id of a
    record in the recycle bin (one the actor may read) that holds it."""

    def __init__(self) -> None:
        super().__init__()
        self.binned: dict[Any, int] = {}


def key_field(model: Model, entity: str, name: str) -> Field:
    """The field `name` of `entity` if records can be found by it: the external id or a
    unique field. Invalid (naming the field and why) otherwise; NotFound for an unknown
    entity."""
    if not model.has_entity(entity):
        raise NotFound(msg("no entity %(entity)s", entity=entity))
    e = model.entity(entity)
    if not e.has_field(name):
        raise Invalid(msg("%(field)s is not a field of %(entity)s", field=name, entity=entity),
                      {"key": msg("unknown field of %(entity)s", entity=entity)})
    f = e.field(name)
    if not (f.external_id or f.unique) or f.computed:
        raise Invalid(msg("%(field)s cannot be a key: records are found by their external "
                          "id or a unique field", field=name),
                      {"key": msg("%(field)s is neither the external id nor unique",
                                  field=name)})
    return f


def external_id_field(entity: Entity) -> Field | None:
    """The entity's external id field, if it has one."""
    return next((f for f in entity.fields if f.external_id), None)


def find_by_key(conn: Connection, records: Records, actor: Actor, entity: str, key: str,
                values: Iterable[Any]) -> KeyMatches:
    """The live records of `entity` that `actor` may read whose field `key` holds each of
    `values` (as the field's unique values compare): value → (id, version), the values as
    given. A value none holds is absent; one a binned record holds is in `.binned` when the
    actor may read that record (absent otherwise, like a value no one holds). A value that
    is not a value of the field (`abc` for a number) is absent too. NotFound when `key` is
    hidden from the actor; Invalid when it is not a key field."""
    f = key_field(records.model, entity, key)
    c = records.compiled(entity)
    seen = secure.rows(records, actor, entity, deleted=None)
    seen.column(key)  # NotFound when hidden from the actor: as if it did not exist
    t = seen.table
    dialect = conn.dialect.name
    coerce = c.coercers[key]
    wanted: dict[Any, list[Any]] = {}  # compared form → the values as given
    for value in values:
        try:
            stored = coerce(value)
        except ValueProblem:
            continue
        if stored is not None:
            wanted.setdefault(unique_key(c.entity, f, stored), []).append(value)
    found = KeyMatches()
    column = unique_column(c.entity, f, t.c[key], dialect)
    for chunk in _chunks(list(wanted)):
        stmt = seen.select(column.label("key"), t.c.id, t.c.version, t.c.deleted_at).where(
            column.in_(chunk))
        for row in conn.execute(stmt):
            compared = unique_key(c.entity, f, row.key)
            for value in wanted.get(compared, ()):
                if row.deleted_at is None:
                    found[value] = (row.id, row.version)
                else:
                    found.binned.setdefault(value, row.id)
    return found


def resolve_references(conn: Connection, records: Records, actor: Actor, entity: str,
                       field: str, texts: Iterable[str]) -> dict[str, int | str]:
    """text → the id of the record `field` (a reference, department or user field of
    `entity`) names by it, or a problem message naming the text. A text is tried as, in
    turn: `#12` (an id, nothing else); the target's external id; a plain number as an id;
    the target's name (its title: case, spaces and full-width spaces ignored), which must
    be one record's. Only records `actor` may read, and not in the recycle bin, are found;
    users must be active. NotFound when `field` is unknown or hidden from the actor."""
    c = records.compiled(entity)
    if not c.entity.has_field(field) or field in records.policy.hidden_fields(actor, c.entity):
        raise NotFound(msg("no field '%(field)s' of %(entity)s", field=field, entity=entity))
    f = c.entity.field(field)
    # A text with a NUL character names no record (no stored text holds one, and
    # PostgreSQL refuses it as a parameter): it stays unresolved, "no such record".
    given = [t for t in dict.fromkeys(texts) if isinstance(t, str) and "\x00" not in t]
    if f.type is FieldType.USER:
        return _resolve_users(conn, records, given)
    target = f.target
    if target is None or not records.model.has_entity(target):
        raise Invalid(msg("%(field)s is not a reference", field=field),
                      {field: msg("is not a reference")})
    return _resolve_records(conn, records, actor, target, given)


def resolve_external_ids(conn: Connection, records: Records, actor: Actor, entity: str,
                         field: str, values: Iterable[Any]) -> dict[Any, int | str]:
    """external id → the id of the record of `field`'s target entity holding it, or a
    problem naming the value (the API's `{"external_id": "ERP-1"}` reference values)."""
    c = records.compiled(entity)
    f = c.entity.field(field)
    target = f.target
    wanted = list(dict.fromkeys(values))
    if target is None or not records.model.has_entity(target):
        return {v: msg("%(field)s is not a reference to a record", field=field)
                for v in wanted}
    t_entity = records.model.entity(target)
    ext = external_id_field(t_entity)
    if ext is None:
        return {v: msg("%(entity)s has no external id field", entity=t_entity.label)
                for v in wanted}
    hidden = ext.name in records.policy.hidden_fields(actor, t_entity)
    found = {} if hidden else find_by_key(conn, records, actor, target, ext.name, wanted)
    return {v: found[v][0] if v in found else
            msg("no %(entity)s with external id %(value)s", entity=t_entity.label,
                value=to_json(v)) for v in wanted}


def is_external_ref(value: Any) -> bool:
    """Whether an API value names a record by its external id: `{"external_id": "ERP-1"}`."""
    return isinstance(value, dict) and len(value) == 1 and "external_id" in value


def replace_external_ids(conn: Connection, records: Records, actor: Actor, entity: str,
                         items: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    """Put the target id in place of each reference value of `items` (records of `entity`,
    as an API body gives them) written `{"external_id": "ERP-1"}`, one query per field;
    the problems (no such record the actor may read, a value that is not text) by the
    item's index and field. A field the actor may not see is left alone (the write refuses
    it as unknown)."""
    c = records.compiled(entity)
    hidden = records.policy.hidden_fields(actor, c.entity)
    problems: dict[int, dict[str, str]] = {}
    for f in c.entity.fields:
        if f.type not in (FieldType.REFERENCE, FieldType.DEPARTMENT) or f.name in hidden \
                or f.computed:
            continue
        wanted: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            value = item.get(f.name)
            if not isinstance(value, dict) or not is_external_ref(value):
                continue
            ext = value["external_id"]
            if not isinstance(ext, str) or not ext.strip():
                problems.setdefault(i, {})[f.name] = msg(
                    "an external id is text, as {\"external_id\": \"ERP-1\"}")
                continue
            wanted.setdefault(ext, []).append(i)
        if not wanted:
            continue
        got = resolve_external_ids(conn, records, actor, entity, f.name, list(wanted))
        for ext, at in wanted.items():
            answer = got[ext]
            for i in at:
                if isinstance(answer, int):
                    items[i][f.name] = answer
                else:
                    problems.setdefault(i, {})[f.name] = answer
    return problems


def with_external_ids(records: Records, actor: Actor, entity: str,
                      data: dict[str, Any]) -> dict[str, Any]:
    """One record's values (an API create or update) with each `{"external_id": ...}`
    reference value replaced by the target's id; Invalid naming the fields it cannot
    resolve. Values without one come back as they were, without a query."""
    if not any(isinstance(v, dict) and is_external_ref(v) for v in data.values()):
        return data
    out = [dict(data)]
    with records.reading() as conn:
        problems = replace_external_ids(conn, records, actor, entity, out)
    if problems:
        raise Invalid(msg("%(entity)s is not valid", entity=entity), problems[0])
    return out[0]


# -- the parts -----------------------------------------------------------------------------


def _resolve_records(conn: Connection, records: Records, actor: Actor, target: str,
                     texts: list[str]) -> dict[str, int | str]:
    e = records.model.entity(target)
    out: dict[str, int | str] = {}
    seen = secure.rows(records, actor, target)  # live records the actor may read
    t = seen.table
    hidden = seen.hidden
    pending = list(texts)
    # 1. `#12`: an id and nothing else.
    hashed = {x: _as_id(x.strip()[1:]) for x in pending if x.strip().startswith("#")}
    ids = {i for i in hashed.values() if i is not None}
    # plain numbers are ids only when no external id claims them (step 2 first)
    ext = external_id_field(e)
    by_ext: dict[str, int] = {}
    if ext is not None and ext.name not in hidden:
        rest = [x for x in pending if x not in hashed]
        by_ext = {str(k): v[0] for k, v in
                  find_by_key(conn, records, actor, target, ext.name, rest).items()}
    plain = {x: _as_id(x) for x in pending if x not in hashed and x not in by_ext}
    ids |= {i for i in plain.values() if i is not None}
    live: set[int] = set()
    for chunk in _chunks(sorted(ids)):
        live |= set(conn.execute(seen.select(t.c.id).where(t.c.id.in_(chunk))).scalars())
    # 4. names: the title, ignoring case and spaces.
    named = [x for x in pending
             if x not in hashed and x not in by_ext and plain.get(x) not in live]
    by_name: dict[str, list[int]] = {}
    if named and e.title not in hidden and e.has_field(e.title):
        title = _spaceless(conn, seen.column(e.title))
        keys: dict[str, list[str]] = {}
        for x in named:
            keys.setdefault(_name_key(x), []).append(x)
        for names in _chunks(list(keys)):
            for row in conn.execute(seen.select(title.label("k"), t.c.id).where(
                    title.in_(names)).order_by(t.c.id)):
                by_name.setdefault(row.k, []).append(row.id)
    for x in pending:
        as_id = hashed[x] if x in hashed else plain.get(x)
        if x in hashed and (as_id is None or as_id not in live):
            out[x] = _missing(e, x)
        elif x in by_ext:
            out[x] = by_ext[x]
        elif as_id is not None and as_id in live:
            out[x] = as_id
        else:
            matches = by_name.get(_name_key(x), [])
            if len(matches) == 1:
                out[x] = matches[0]
            elif matches:
                out[x] = msg("%(count)s %(entities)s are named %(value)s; use the id or "
                             "external id", count=len(matches), entities=e.plural,
                             value=to_json(x))
            else:
                out[x] = _missing(e, x)
    return out


def _resolve_users(conn: Connection, records: Records,
                   texts: list[str]) -> dict[str, int | str]:
    """Users by id (`12`, `#12`), login name or display name (ignoring case and spaces);
    active users only. Every user may be named in a user field (as a picker lists them)."""
    users = records.schema.table(USER_TABLE)
    out: dict[str, int | str] = {}
    ids = {x: _as_id(x.strip().removeprefix("#")) for x in texts}
    live: set[int] = set()
    for chunk in _chunks(sorted({i for i in ids.values() if i is not None})):
        live |= set(conn.execute(select(users.c.id).where(
            users.c.id.in_(chunk), users.c.active)).scalars())
    rest = [x for x in texts if ids[x] not in live]
    by_name: dict[str, set[int]] = {}
    login = _spaceless(conn, users.c.name)
    shown = _spaceless(conn, users.c.display_name)
    for names in _chunks(list({_name_key(x) for x in rest})):
        for row in conn.execute(select(login.label("a"), shown.label("b"), users.c.id).where(
                users.c.active, or_(login.in_(names), shown.in_(names)))):
            by_name.setdefault(row.a, set()).add(row.id)
            if row.b is not None and row.b != row.a:
                by_name.setdefault(row.b, set()).add(row.id)
    for x in texts:
        rid = ids[x]
        if rid is not None and rid in live:
            out[x] = rid
            continue
        matches = by_name.get(_name_key(x), set())
        if len(matches) == 1:
            out[x] = next(iter(matches))
        elif matches:
            out[x] = msg("%(count)s users are named %(value)s; use the login name or id",
                         count=len(matches), value=to_json(x))
        else:
            out[x] = msg("no active user %(value)s", value=to_json(x))
    return out


def _missing(e: Entity, text: str) -> str:
    return msg("no %(entity)s %(value)s (by id, external id or name)", entity=e.label,
               value=to_json(text))


_SPACES = (" ", "\u3000")  # a space, and the full-width space Chinese input gives


def _name_key(text: str) -> str:
    """A name as names compare here: NFC, folded case, without spaces."""
    key = fold(unicodedata.normalize("NFC", text.strip()))
    for s in _SPACES:
        key = key.replace(s, "")
    return key


def _spaceless(conn: Connection, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """`column` as `_name_key` compares, in SQL (folded as records/unique.py folds)."""
    expr: ColumnElement[Any] = column
    for s in _SPACES:
        expr = func.replace(expr, s, "")
    if conn.dialect.name == "postgresql":
        return func.replace(func.lower(expr), "\u03c2", "\u03c3")
    folded: ColumnElement[Any] = getattr(func, FOLD_FUNCTION)(expr)
    return folded


def _as_id(text: str) -> int | None:
    t = text.strip()
    if t.isascii() and t.isdigit() and 0 < len(t) <= 18:
        return int(t)
    return None


def _chunks(values: list[V]) -> Iterator[list[V]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


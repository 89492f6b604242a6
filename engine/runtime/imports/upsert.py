"""Many creates, updates and upserts in one unit of work, all or nothing: what
`POST /api/<entity>/bulk` runs (docs/api.md "Bulk writes").

Each item is a record's field values. With a `key` field (the external id, or any unique
field), an item whose key value a live record the writer may read holds updates that
record (at the item's `version` when it gives one, else at the record's current one);
otherwise it is created. An item with an `id` updates that record at its `version`. The
updates run first, one by one through `Records.update` (each in a savepoint, so one
refused update does not spoil the transaction for the others' checks); then every create
goes through the set-wise bulk create (engine/runtime/records/imports.py: one query per
link field and unique field). Reference values given as `{"external_id": "ERP-1"}` are
resolved first, one query per field (engine/runtime/imports/keys.py).

Any refused item refuses the whole request: `ItemsRefused` carries each item's problem by
its index, and the unit of work is rolled back — no record, no audit row, no hook's write
stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import Conflict, Invalid, RecordError
from engine.runtime.imports.duplicates import find_duplicates_many
from engine.runtime.imports.keys import CHUNK, find_by_key, key_field, replace_external_ids
from engine.runtime.records.unique import unique_key
from engine.runtime.values import ValueProblem, to_json

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

MAX_ITEMS = 1_000
"""The most items one request writes."""


@dataclass(frozen=True)
class Written:
    """What became of one item."""

    index: int
    id: int
    version: int
    action: str  # created | updated

    def json(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "version": self.version,
                "action": self.action}


class Duplicate(Conflict):
    """An item that would create a record the entity's duplicate rules match (engine/
    runtime/imports/duplicates.py): `candidates`, the matching records the writer may read
    (or earlier items of the request, by `row`)."""

    code = "duplicate"

    def __init__(self, message: str, candidates: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.candidates = candidates


class ItemsRefused(RecordError):
    """Some items were refused, so nothing was written: each one's problem by its index.
    409 when every problem is a conflict (a stale version), else 422."""

    code = "invalid"

    def __init__(self, message: str, items: Mapping[int, RecordError]) -> None:
        super().__init__(message)
        self.items = dict(sorted(items.items()))
        self.status = 409 if all(isinstance(e, Conflict) for e in items.values()) else 422
        self.code = "conflict" if self.status == 409 else "invalid"


def write_many(records: Records, actor: Actor, entity: str,
               items: Sequence[Mapping[str, Any]], key: str | None = None, *,
               allow_duplicate: bool = False) -> list[Written]:
    """Create, update or upsert `items` of `entity` as `actor`, all in one unit of work;
    ItemsRefused (nothing written) when any item is refused — an item that would create a
    record the entity's duplicate rules match too, unless `allow_duplicate`. Invalid when
    `key` is not a key field the actor may see; Forbidden when items would create and the
    actor may not (or may not read the entity at all)."""
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    if len(items) > MAX_ITEMS:
        raise Invalid(msg("at most %(max)s items per request; this one has %(count)s",
                          max=MAX_ITEMS, count=len(items)),
                      {"items": msg("at most %(max)s", max=MAX_ITEMS)})
    if key is not None:
        try:
            key_field(records.model, entity, key)
        except Invalid as exc:
            raise Invalid(exc.message, {"key": exc.fields.get("key", exc.message)}) from None
        if key in records.policy.hidden_fields(actor, c.entity):
            raise Invalid(msg("%(field)s is not a field of %(entity)s", field=key,
                              entity=entity),
                          {"key": msg("unknown field of %(entity)s", entity=entity)})
    problems: dict[int, RecordError] = {}
    data: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not all(isinstance(k, str) for k in item):
            problems[i] = Invalid(msg("an item is an object of field values"))
            data.append({})
        else:
            data.append(dict(item))
    out: list[Written] = []
    with records.unit(actor) as u:
        conn = u.conn
        for i, fields in replace_external_ids(conn, records, actor, entity, data).items():
            if i not in problems:
                problems[i] = _invalid(entity, fields)
        updates, creates = _plan(records, actor, entity, data, key, problems, conn)
        for i, record_id, version, values in updates:
            savepoint = conn.begin_nested()
            try:
                row = records.update(actor, entity, record_id, values, version, unit=u)
            except RecordError as exc:
                savepoint.rollback()
                problems[i] = exc
            except IntegrityError as exc:  # a race the checks could not see
                savepoint.rollback()
                problems[i] = Conflict(msg("%(entity)s conflicts with another record: "
                                           "%(reason)s", entity=entity,
                                           reason=str(exc.orig)[:200]))
            else:
                savepoint.commit()
                out.append(Written(i, row["id"], row["version"], "updated"))
        if creates and not allow_duplicate:
            _refuse_duplicates(records, actor, entity, conn, creates, problems)
        if creates:
            try:
                result = records.bulk_create(actor, entity, [v for _, v in creates], unit=u)
            except IntegrityError as exc:
                raise Conflict(msg("%(entity)s conflicts with another record: %(reason)s",
                                   entity=entity, reason=str(exc.orig)[:200])) from None
            for j, fields in result.errors:
                problems[creates[j][0]] = _invalid(entity, fields)
            if not problems:
                refused = {j for j, _ in result.errors}
                kept = [creates[j][0] for j in range(len(creates)) if j not in refused]
                out += [Written(i, rid, 1, "created")
                        for i, rid in zip(kept, result.ids, strict=True)]
        if problems:
            raise ItemsRefused(msg("%(count)s of %(total)s items were refused; nothing was "
                                   "written", count=len(problems), total=len(items)),
                               problems)
        u.settle()  # hooks may raise versions: answer with what the records hold
        versions = _versions(records, conn, entity, [w.id for w in out])
    return sorted((Written(w.index, w.id, versions.get(w.id, w.version), w.action)
                   for w in out), key=lambda w: w.index)


Update = tuple[int, int, int, dict[str, Any]]


def _plan(records: Records, actor: Actor, entity: str, data: list[dict[str, Any]],
          key: str | None, problems: dict[int, RecordError],
          conn: Connection) -> tuple[list[Update], list[tuple[int, dict[str, Any]]]]:
    """Which items update which record, and which create."""
    c = records.compiled(entity)
    updates: list[Update] = []
    creates: list[tuple[int, dict[str, Any]]] = []
    found: dict[Any, tuple[int, int]] = {}
    if key is not None:
        given = [d[key] for i, d in enumerate(data)
                 if i not in problems and "id" not in d and d.get(key) is not None]
        found = dict(find_by_key(conn, records, actor, entity, key, _hashable(given)))
    seen_ids: dict[int, int] = {}
    seen_keys: dict[Any, int] = {}
    f = c.entity.field(key) if key is not None else None
    for i, d in enumerate(data):
        if i in problems:
            continue
        values = dict(d)
        has_id = "id" in values
        record_id = values.pop("id", None)
        version = values.pop("version", None)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            problems[i] = _invalid(entity, {"version": msg("must be a whole number")})
            continue
        if has_id:
            if isinstance(record_id, bool) or not isinstance(record_id, int) \
                    or not 0 < record_id < 2**63:
                problems[i] = _invalid(entity, {"id": msg("must be a record id")})
            elif version is None:
                problems[i] = _invalid(entity, {"version": msg(
                    "required: the version you read (a whole number)")})
            elif record_id in seen_ids:
                problems[i] = _invalid(entity, {"id": msg(
                    "item %(other)s already updates this record", other=seen_ids[record_id])})
            else:
                seen_ids[record_id] = i
                updates.append((i, record_id, version, values))
            continue
        value = values.get(key) if key is not None else None
        if key is not None and f is not None and value is not None and _is_hashable(value):
            try:
                compared = unique_key(c.entity, f, c.coercers[f.name](value))
            except ValueProblem:
                compared = None
            if compared is not None:
                if compared in seen_keys:
                    problems[i] = _invalid(entity, {key: msg(
                        "%(value)s appears twice in this request (items %(first)s and "
                        "%(second)s)", value=to_json(value), first=seen_keys[compared],
                        second=i)})
                    continue
                seen_keys[compared] = i
            match = found.get(value)
            if match is not None:
                if match[0] in seen_ids:
                    problems[i] = _invalid(entity, {key: msg(
                        "item %(other)s already updates this record",
                        other=seen_ids[match[0]])})
                    continue
                seen_ids[match[0]] = i
                updates.append((i, match[0], match[1] if version is None else version,
                                values))
                continue
        if version is not None:
            problems[i] = _invalid(entity, {"version": msg(
                "no record to update: leave version out to create one")})
            continue
        # a value no live record the writer may read holds: a create (one a binned or a
        # hidden record holds is refused by the unique check, which names no record)
        creates.append((i, values))
    return updates, creates


def _refuse_duplicates(records: Records, actor: Actor, entity: str, conn: Connection,
                      creates: list[tuple[int, dict[str, Any]]],
                      problems: dict[int, RecordError]) -> None:
    """Each create the duplicate rules match (a record the writer may read, or an earlier
    item) is refused with its candidates; set-wise, one query per rule."""
    found = find_duplicates_many(conn, records, actor, entity, [v for _, v in creates])
    for j, candidates in sorted(found.items()):
        i = creates[j][0]
        if i in problems:
            continue
        shown = [c.to_json() for c in candidates]
        for c in shown:
            if c.get("row") is not None:
                c["row"] = creates[c["row"]][0]  # the item's index in the request
        problems[i] = Duplicate(msg("%(entity)s may already exist (%(titles)s); send "
                                    "?allow_duplicate=1 to create it anyway", entity=entity,
                                    titles=", ".join(c.title for c in candidates[:5])),
                                shown)


def _versions(records: Records, conn: Connection, entity: str, ids: list[int]) -> dict[int, int]:
    t = records.compiled(entity).table
    versions: dict[int, int] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        versions.update((r.id, r.version) for r in conn.execute(
            select(t.c.id, t.c.version).where(t.c.id.in_(chunk))))
    return versions


def _invalid(entity: str, fields: Mapping[str, str]) -> Invalid:
    return Invalid(msg("%(entity)s is not valid", entity=entity), dict(fields))


def _is_hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _hashable(values: list[Any]) -> list[Any]:
    return [v for v in values if _is_hashable(v)]


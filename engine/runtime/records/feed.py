"""The changes feed (`GET /api/<entity>/changes`): what happened to an entity's records since
a cursor, in commit order, as the caller may see it (docs/api.md "Changes feed").

It reads the change log (engine/runtime/records/changelog.py) by keyset — `seq` after the
cursor, in order, at most `limit` rows — and joins each row to its record as the caller may
read it *now* (recycle bin included), in one statement, so the rows, the records and the
log's head come from one snapshot. A row is the caller's when:

- its record is readable by the caller now: the item carries the record (hidden fields
  never; a record in the recycle bin shows `deleted_at`); or
- the caller could see the record as it stood before the change (its owner and department
  then, kept in the log row, read with the caller's read scope): the record has since left
  their sight — purged, or given to someone they may not see — and the item carries
  `"record": null`, which a copy reads as "gone".

Other rows are skipped without a trace (not even their ids), but the cursor still moves
past them: when a page is not full, `next_cursor` is the log's head as that same snapshot
saw it, so a caller that sees little does not scan the same rows again.

Never missed, never repeated: the log's `seq` is its commit order, so every row at or below
the head a snapshot sees is already in it, and a row committed later has a higher `seq`.

When settings.yaml `changes.keep_days` has the worker delete old rows (retention.py), the
statement also reads the log's floor, in the same snapshot: a cursor below it (or none, "from
the start") answers 410 `cursor_expired`, since the rows it would read next may be gone.
`since=now` answers no items and the log's head as `next_cursor`: where a client that has
just copied the records starts following.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import Select, and_, bindparam, func, or_, select, true
from sqlalchemy.types import TypeEngine

from engine.messages import msg
from engine.runtime.errors import BadRequest, Gone, Invalid
from engine.runtime.records import secure
from engine.runtime.records.json_rows import RecordJson, column_json, column_types, raw_select
from engine.runtime.records.regarding import regarding_fields, titled
from engine.runtime.records.retention import floor_seq

if TYPE_CHECKING:
    from engine.runtime.access import Actor
    from engine.runtime.records.service import Records

DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
_PREFIX = "chg1:"
_MAX_CURSOR = 64
_MAX_SEQ = 2**63 - 1
NOW = "now"
"""`since=now`: no items, the log's head as next_cursor (where to start following)."""


@dataclass(frozen=True)
class ChangesPage:
    items: list[dict[str, Any]]
    """Each change as the API answers it: its place (`cursor`), what happened (`action`), to
    which record (`id`), when (`at`), and the record as the caller may read it now, as JSON
    (None: gone for the caller)."""
    next_cursor: str


@dataclass
class _Shape:
    """The feed's statement for one entity and reader, as run (raw columns), the names and
    types of its columns, and its JSON writers by the driver's column type codes."""

    stmt: Select[Any]
    columns: tuple[tuple[str, TypeEngine[Any]], ...]
    at: tuple[int, ...]
    """Where the columns _head, _floor, _seq, _action, _at, _rid and the record's id
    are."""
    writers: dict[tuple[Any, ...], tuple[RecordJson, Callable[[Any], Any]]] = \
        field(default_factory=dict)


_SHAPES: WeakKeyDictionary[Records, dict[tuple[str, Actor], _Shape]] = WeakKeyDictionary()
_SHAPES_SIZE = 4096


def encode_cursor(seq: int) -> str:
    """The opaque cursor of a place in the log (after `seq`)."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The log place a cursor names (0: the start; `since=now`: past every place);
    BadRequest naming `since` when it is not a cursor this feed gave."""
    if cursor is None or cursor == "":
        return 0
    if cursor == NOW:
        return _MAX_SEQ
    bad = BadRequest(msg("invalid changes cursor"),
                     {"since": msg("not a cursor of this feed: send next_cursor as it came")})
    if len(cursor) > _MAX_CURSOR or not cursor.isascii():
        raise bad
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise bad from None
    digits = text.removeprefix(_PREFIX)
    if not text.startswith(_PREFIX) or not (digits.isascii() and digits.isdigit()) \
            or len(digits) > 19 or int(digits) > _MAX_SEQ or encode_cursor(int(digits)) != cursor:
        raise bad
    return int(digits)


def check_limit(limit: int) -> int:
    """`limit` when it is within 1..MAX_LIMIT; Invalid (422) naming the bound otherwise."""
    if not 0 < limit <= MAX_LIMIT:
        raise Invalid(msg("invalid changes parameters"), {"limit": msg(
            "must be a whole number from %(lo)s to %(hi)s", lo=1, hi=MAX_LIMIT)})
    return limit


def read_changes(records: Records, actor: Actor, entity: str, since: str | None = None,
                 limit: int = DEFAULT_LIMIT) -> ChangesPage:
    """The changes of `entity`'s records after the cursor `since` (from the start without
    one) that `actor` may hear of, at most `limit`, in commit order; see the module. Gone
    (410) when the log no longer has all the rows after `since`."""
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    after = decode_cursor(since)
    check_limit(limit)

    shape = _shape(records, actor, entity)
    items: list[dict[str, Any]] = []
    head = 0 if after == _MAX_SEQ else after
    with records.reading() as conn:
        result = conn.execute(shape.stmt, {"since": after, "limit": limit})
        coltypes = tuple(d[1] for d in result.cursor.description)
        i_head, i_floor, i_seq, i_action, i_at, i_rid, i_id = shape.at
        found = shape.writers.get(coltypes)
        if found is None:
            found = shape.writers[coltypes] = (
                RecordJson(records, actor, c, shape.columns, coltypes),
                column_json(shape.columns[i_at][1], records.engine.dialect, coltypes[i_at])
                or _same)
        write, at_json = found
        # the driver's rows, as they came, in log order (see feed_statement)
        rows = sorted(result.all(), key=lambda row: row[i_seq] or 0)
        floor = (rows[0][i_floor] or 0) if rows else 0
        if after < floor:
            raise _gone(records.model.settings.changes_keep_days)
        head = max(head, floor)
        for row in rows:
            head = max(head, row[i_head] or 0)
            if row[i_seq] is None:  # the log's head alone: nothing after the cursor
                continue
            items.append({"cursor": encode_cursor(row[i_seq]), "action": row[i_action],
                          "id": row[i_rid], "at": at_json(row[i_at]),
                          "record": None if row[i_id] is None else write(row)})
    if regarding_fields(c.entity):  # their titles, as the reader may read them
        kept = [i["record"] for i in items if i["record"] is not None]
        shown = iter(titled(records, actor, entity, kept))
        for item in items:
            if item["record"] is not None:
                item["record"] = next(shown)
    if len(items) == limit:  # a full page: more may follow the last item
        return ChangesPage(items, items[-1]["cursor"])
    return ChangesPage(items, encode_cursor(head))


def _gone(days: int | None) -> Gone:
    """410 for a cursor below the log's floor (`days`: what the log keeps now; None when
    the setting has gone since the rows were deleted)."""
    since: dict[str, str] = {"since": msg("older than the change log keeps")}
    if days is None:
        return Gone(msg("the change log no longer goes back to this cursor: copy the records "
                        "again and follow the feed from since=now"), since)
    return Gone(msg("the change log no longer goes back to this cursor (it keeps %(days)s "
                    "days): copy the records again and follow the feed from since=now",
                    days=days), since)


def _same(value: Any) -> Any:
    return value


def _shape(records: Records, actor: Actor, entity: str) -> _Shape:
    """The feed's statement for `actor` as run, built once per reader (each time for an
    entity whose computed fields read the clock)."""
    if records.reads_clock(records.compiled(entity)):
        return _built(records, actor, entity)
    shapes = _SHAPES.setdefault(records, {})
    found = shapes.get((entity, actor))
    if found is None:
        if len(shapes) >= _SHAPES_SIZE:
            shapes.clear()
        found = shapes[(entity, actor)] = _built(records, actor, entity)
    return found


def _built(records: Records, actor: Actor, entity: str) -> _Shape:
    stmt = feed_statement(records, actor, entity)
    columns = column_types(stmt)
    names = [name for name, _kind in columns]
    return _Shape(raw_select(stmt), columns, tuple(
        names.index(k) for k in ("_head", "_floor", "_seq", "_action", "_at", "_rid",
                                  "id")))


def feed_statement(records: Records, actor: Actor, entity: str) -> Select[Any]:
    """The feed's one statement: the log's head for `entity` and its floor, LEFT JOIN the
    page of log rows after :since the actor may hear of (at most :limit), each with its
    record as the actor may read it (NULL columns when they may not; the fields hidden from
    them left out). The rows come in no set order: the caller puts them in `_seq` order (a
    sort of the whole answer by the database costs more than sorting a thousand rows in
    Python)."""
    c = records.compiled(entity)
    log = records.change_log
    t = c.table
    # the log with the columns a read scope looks at (id, owner_id, department_id), so the
    # actor's scope can be read against the record as it stood before the change
    ch = select(log.c.seq, log.c.entity, log.c.action, log.c.at,
                log.c.record_id.label("id"), log.c.owner_id,
                log.c.department_id).subquery("ch")
    now = secure.rows(records, actor, entity, deleted=None)
    then = secure.rows(records, actor, entity, deleted=None, table=ch).predicate
    on = t.c.id == ch.c.id
    if now.predicate is not None:
        on = and_(on, now.predicate)
    heard: Callable[[], list[Any]] = (
        (lambda: []) if then is None else (lambda: [or_(t.c.id.is_not(None), then)]))
    # the fields the actor may read alone: hidden ones are neither fetched nor computed
    # (record_columns keeps every stored field when a formula only Python runs is read)
    hidden = records.policy.hidden_fields(actor, c.entity)
    shown = None if not hidden else [f.name for f in c.entity.fields if f.name not in hidden]
    page = (select(ch.c.seq.label("_seq"), ch.c.action.label("_action"),
                   ch.c.at.label("_at"), ch.c.id.label("_rid"), *now.record_columns(shown))
            .select_from(ch.outerjoin(t, on))
            .where(ch.c.entity == entity, ch.c.seq > bindparam("since"), *heard())
            .order_by(ch.c.seq)
            .limit(bindparam("limit"))
            .subquery("page"))
    head = (select(func.max(log.c.seq).label("_head"),
                   floor_seq(records).scalar_subquery().label("_floor"))
            .where(log.c.entity == entity).subquery("head"))
    return (select(head.c._head, head.c._floor, *page.c)
            .select_from(head.outerjoin(page, true())))

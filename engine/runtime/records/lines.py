"""Line items: a parent record and its lines (the `lines:` grid of its form) saved together,
in one unit of work — all or nothing.

`save_with_lines` creates or updates the parent, then applies each line edit in the order
given — create, update (with the line's version) or delete (to the recycle bin) — through
the same `Records.create/update/delete` every write uses, in the parent's unit of work: the
rollups over the lines (the parent's totals) are kept in the same transaction, and every
change is audited. It does not stop at the first problem: the parent's field problems and
each line's, by row (its place in the list, from 0) and field, come back at once in one
`LinesInvalid` (422), or `LinesConflict` (409) when a line was changed by someone else
since it was read; then nothing is saved. With an `order` field, the lines that stay are
numbered 1, 2, 3… in the order given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from engine.messages import msg
from engine.metadata.lines import MAX_LINES
from engine.metadata.model import LineGrid
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import (
    STALE_VERSION,
    BadRequest,
    Conflict,
    Invalid,
    NotFound,
    RecordError,
)
from engine.runtime.records import secure
from engine.runtime.records.query import Condition, ListQuery, SortKey
from engine.runtime.records.service import Records
from engine.runtime.records.unit import UnitOfWork

LINES_KEY = "lines"
"""The key of the lines in an API body, and of a problem about the lines as a whole."""

LineProblems = dict[int, dict[str, str]]
"""Problems by row (its place in the list of line edits) and field."""


@dataclass(frozen=True)
class LineEdit:
    """One row of a save: a new line (no `id`), a change of line `id` read at `version`,
    or its removal (`delete`; `version`, when given, guards it)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None
    version: int | None = None
    delete: bool = False


class LinesInvalid(Invalid):
    """The parent's problems in `fields`, each line's in `lines`."""

    def __init__(self, message: str, fields: dict[str, str] | None = None,
                 lines: LineProblems | None = None) -> None:
        super().__init__(message, fields)
        self.lines: LineProblems = lines or {}


class LinesConflict(Conflict):
    """A line was changed by someone else since it was read (`lines`: which ones)."""

    def __init__(self, message: str, fields: dict[str, str] | None = None,
                 lines: LineProblems | None = None) -> None:
        super().__init__(message, fields)
        self.lines: LineProblems = lines or {}


def line_problems(exc: RecordError) -> LineProblems:
    """The problems by line an error carries (none for other errors)."""
    return exc.lines if isinstance(exc, LinesInvalid | LinesConflict) else {}


def grid_of(records: Records, entity: str) -> LineGrid:
    """The line grid of `entity`'s form; BadRequest when its form has none."""
    grid = records.model.form(records.compiled(entity).entity.name).lines
    if grid is None:
        raise BadRequest(msg("%(entity)s has no line items (no lines: in its form)",
                             entity=entity), {LINES_KEY: msg("not a field of %(entity)s",
                                                             entity=entity)})
    return grid


def save_with_lines(records: Records, actor: Actor, entity: str, record_id: int | None,
                    values: Mapping[str, Any], version: int | None,
                    lines: Sequence[LineEdit], *,
                    unit: UnitOfWork | None = None) -> dict[str, Any]:
    """Create (`record_id` None) or update the parent with `values` and apply `lines`, all
    in one unit of work; the saved parent as `actor` reads it, with its lines under
    "lines". Nothing is saved when any part is refused."""
    grid = grid_of(records, entity)
    if len(lines) > MAX_LINES:
        raise Invalid(msg("a save carries at most %(max)s lines; this one has %(count)s",
                          max=MAX_LINES, count=len(lines)),
                      {LINES_KEY: msg("at most %(max)s lines", max=MAX_LINES)})
    child = records.compiled(grid.entity)
    for action, wanted in (("create", any(e.id is None for e in lines)),
                           ("update", any(e.id is not None and not e.delete for e in lines)),
                           ("delete", any(e.delete for e in lines))):
        if wanted:
            records.policy.require(actor, child.entity, action)
    if record_id is not None and version is None:
        raise Invalid(msg("an update carries the record's version"),
                      {"version": msg("required: the version you read (a whole number)")})
    parent_errors: dict[str, str] = {}
    problems: LineProblems = {}
    stale: LineProblems = {}
    with records.unit(actor, unit) as u:
        parent_id = record_id
        try:
            if record_id is None:
                parent_id = records.create(actor, entity, values, unit=u)["id"]
            else:
                assert version is not None
                records.update(actor, entity, record_id, values, version, unit=u)
        except Invalid as exc:  # go on: the lines' problems are reported with it
            parent_errors.update(exc.fields)
        owned = _owned_lines(records, actor, u, grid, record_id, lines, problems)
        position = 0
        for row, edit in _deletes_first(lines):
            if row in problems:
                continue
            if not edit.delete:
                position += 1
            try:
                _apply(records, actor, u, grid, parent_id, row, edit, position, owned,
                       problems)
            except Invalid as exc:
                problems[row] = dict(exc.fields)
            except Conflict as exc:
                if exc.fields.get("version") != STALE_VERSION:
                    raise
                stale[row] = dict(exc.fields)
        if parent_id is not None and not parent_errors and not problems and not stale:
            _check_count(records, u, grid, parent_id, parent_errors)
        if stale:
            raise LinesConflict(msg("%(count)s line(s) of this %(entity)s were changed by "
                                    "someone else; reload it and apply your change again",
                                    count=len(stale), entity=entity),
                                {LINES_KEY: msg("changed by someone else")},
                                {**problems, **stale})
        if parent_errors or problems:
            raise LinesInvalid(msg("%(entity)s is not valid", entity=entity),
                               parent_errors, problems)
        assert parent_id is not None
        u.settle()  # the rollups over the lines, before reading the parent back
        parent = records.fetch(u.conn, actor, records.compiled(entity), parent_id)
        out = records.row_out(actor, records.compiled(entity), parent)
        out[LINES_KEY] = read_lines(records, actor, entity, parent_id, conn=u.conn)
    return out


def read_lines(records: Records, actor: Actor, entity: str, record_id: int,
               conn: Any = None) -> list[dict[str, Any]]:
    """The live lines of a parent the actor may read, in their order (then by id)."""
    grid = grid_of(records, entity)
    if records.policy.scope(actor, grid.entity, "read") is Scope.NONE:
        return []
    sort = (SortKey(grid.order, False),) if grid.order else ()
    page = records.list_records(actor, grid.entity, ListQuery(
        conditions=(Condition(grid.via, "eq", record_id),), sort=sort, page_size=MAX_LINES),
        conn=conn)
    return page.items


def _deletes_first(lines: Sequence[LineEdit]) -> list[tuple[int, LineEdit]]:
    """The edits with their rows, removals first: a removed line frees what it held (a
    unique value) for the lines after it; the others keep their order."""
    indexed = list(enumerate(lines))
    return [x for x in indexed if x[1].delete] + [x for x in indexed if not x[1].delete]


def _owned_lines(records: Records, actor: Actor, u: UnitOfWork, grid: LineGrid,
                 record_id: int | None, lines: Sequence[LineEdit],
                 problems: LineProblems) -> set[int]:
    """The ids the edits name that are live lines of this parent the actor may read; a row
    naming any other (a line of another parent, one that does not exist or is hidden) is
    refused alike, so the answer tells nothing about records the actor cannot see."""
    wanted = {e.id for e in lines if e.id is not None}
    owned: set[int] = set()
    if wanted and record_id is not None:
        seen = secure.rows(records, actor, grid.entity)
        t = seen.table
        stmt = seen.select(t.c.id).where(t.c.id.in_(sorted(wanted)),
                                         t.c[grid.via] == record_id)
        owned = {r[0] for r in u.conn.execute(stmt)}
    named: set[int] = set()
    for row, edit in enumerate(lines):
        if edit.id is None:
            continue
        if edit.id not in owned:
            problems[row] = {"id": msg("no line %(id)s on this record", id=edit.id)}
        elif edit.id in named:
            problems[row] = {"id": msg("line %(id)s is given twice", id=edit.id)}
        named.add(edit.id)
    return owned


def _apply(records: Records, actor: Actor, u: UnitOfWork, grid: LineGrid,
           parent_id: int | None, row: int, edit: LineEdit, position: int,
           owned: set[int], problems: LineProblems) -> None:
    """One line edit through the records service, in the unit `u`."""
    if edit.delete:
        assert edit.id is not None
        records.delete(actor, grid.entity, edit.id, edit.version, unit=u)
        return
    engine_set = [k for k in (grid.via, grid.order) if k is not None and k in edit.values]
    if engine_set:
        problems[row] = {k: msg("is set by the form (the line's parent and position)")
                         for k in engine_set}
        return
    data = dict(edit.values)
    if grid.order is not None:
        data[grid.order] = position
    if edit.id is None:
        if parent_id is None:  # the parent was refused: check the line's own fields only
            _check_alone(records, actor, u, grid, data, row, problems)
            return
        records.create(actor, grid.entity, {**data, grid.via: parent_id}, unit=u)
        return
    if edit.version is None:
        problems[row] = {"version": msg("required: the version you read (a whole number)")}
        return
    try:
        records.update(actor, grid.entity, edit.id, data, edit.version, unit=u)
    except NotFound:  # checked as owned above; gone in between: as if never there
        problems[row] = {"id": msg("no line %(id)s on this record", id=edit.id)}


def _check_alone(records: Records, actor: Actor, u: UnitOfWork, grid: LineGrid,
                 data: dict[str, Any], row: int, problems: LineProblems) -> None:
    """A new line's checks when its parent was refused: its fields, links and rules (which
    read the parent as blank)."""
    c = records.compiled(grid.entity)
    errors: dict[str, str] = {}
    values = records.coerce(c, data, creating=True, errors=errors,
                            mask=records.policy.mask(actor, c.entity))
    errors.pop(grid.via, None)  # the parent it would point to is the one refused
    records.check_links(u.conn, actor, c, values, errors)
    records.complete_new(u.conn, c, values, errors, records.engine_values(actor, actor, u.now),
                         given=data.keys(), writer=actor)
    if errors:
        problems[row] = errors


def _check_count(records: Records, u: UnitOfWork, grid: LineGrid, parent_id: int,
                 errors: dict[str, str]) -> None:
    """`min_rows` and `max_rows` of the grid, on the lines the parent has once saved."""
    if not grid.min_rows and grid.max_rows is None:
        return
    t = records.compiled(grid.entity).table
    count = u.conn.execute(select(func.count()).select_from(t).where(
        t.c[grid.via] == parent_id, t.c.deleted_at.is_(None))).scalar_one()
    if count < grid.min_rows:
        errors[LINES_KEY] = msg("needs at least %(min)s lines", min=grid.min_rows)
    elif grid.max_rows is not None and count > grid.max_rows:
        errors[LINES_KEY] = msg("takes at most %(max)s lines", max=grid.max_rows)


def line_edits_of(raw: Any) -> list[LineEdit]:
    """The `lines` of an API body: a list of `{"values": {…}}` (a new line),
    `{"id": N, "version": V, "values": {…}}` (a change) or `{"id": N, "delete": true}`
    (a removal, `version` optional). Every malformed row is reported, by row."""
    if not isinstance(raw, list):
        raise Invalid(msg("lines is a list of line edits"),
                      {LINES_KEY: msg("must be a list")})
    if len(raw) > MAX_LINES:
        raise Invalid(msg("a save carries at most %(max)s lines; this one has %(count)s",
                          max=MAX_LINES, count=len(raw)),
                      {LINES_KEY: msg("at most %(max)s lines", max=MAX_LINES)})
    edits: list[LineEdit] = []
    problems: LineProblems = {}
    for row, item in enumerate(raw):
        edit = _edit_of(item, row, problems)
        if edit is not None:
            edits.append(edit)
    if problems:
        raise LinesInvalid(msg("some line edits are malformed"),
                           {LINES_KEY: msg("see the problems of each line")}, problems)
    return edits


_EDIT_KEYS = frozenset({"id", "version", "values", "delete"})


def _edit_of(item: Any, row: int, problems: LineProblems) -> LineEdit | None:
    if not isinstance(item, dict):
        problems[row] = {"_line": msg("must be an object with the line's values, and its id "
                                      "and version for a line that exists")}
        return None
    found: dict[str, str] = {k: msg("unknown key") for k in item if k not in _EDIT_KEYS}
    ids = {}
    for key in ("id", "version"):
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 < value < 2**63):
            found[key] = msg("must be a positive whole number")
        ids[key] = value
    values = item.get("values", {})
    if not isinstance(values, dict):
        found["values"] = msg("must be an object of field values")
    delete = item.get("delete", False)
    if not isinstance(delete, bool):
        found["delete"] = msg("must be true or false")
    elif delete and ids["id"] is None:
        found["id"] = msg("required to remove a line")
    elif delete and values:
        found["values"] = msg("a removed line takes no values")
    if found:
        problems[row] = found
        return None
    return LineEdit(values, ids["id"], ids["version"], delete)

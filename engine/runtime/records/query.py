"""List queries: field filters, sort keys and keyset cursors, validated before any SQL."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    Table,
    and_,
    asc,
    bindparam,
    cast,
    desc,
    false,
    literal,
    nulls_first,
    nulls_last,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from engine.fieldtypes import COMPARISONS, FIELD_TYPES, OPERATORS
from engine.formula import CompiledFormula
from engine.messages import msg
from engine.metadata.model import Entity, Field
from engine.runtime.errors import BadRequest
from engine.runtime.schema.regarding import regarding_condition
from engine.runtime.sqlin import in_rows
from engine.runtime.values import ValueProblem, coercer_for, to_json
from engine.types import NAME_RE, FieldType

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
MAX_CURSOR = 4096  # a real cursor holds at most 5 sort values and an id
# Engine columns a list may filter and sort on, with the field type that reads their values.
ENGINE_SORTABLE: dict[str, FieldType] = {
    "id": FieldType.INTEGER, "created_at": FieldType.DATETIME, "updated_at": FieldType.DATETIME,
    "owner_id": FieldType.USER, "department_id": FieldType.DEPARTMENT,
    "created_by": FieldType.USER, "updated_by": FieldType.USER,
}


Cols = Table | Mapping[str, ColumnElement[Any]]
"""Where lists read fields: a table, or name → expression (computed fields as SQL)."""


def _col(cols: Cols, name: str) -> ColumnElement[Any]:
    return cols.c[name] if isinstance(cols, Table) else cols[name]


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool


@dataclass(frozen=True)
class ListQuery:
    conditions: tuple[Condition, ...] = ()
    sort: tuple[SortKey, ...] = ()
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    cursor: str | None = None
    deleted: bool = False  # the recycle bin instead of live records
    filter: CompiledFormula | None = field(default=None, compare=False)
    """A boolean formula (`?filter=`) the records must satisfy."""


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    total_exact: bool
    page: int
    page_size: int
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    names: dict[tuple[str, int], str] = field(default_factory=dict)
    """(target, id) → the name of a linked record, for the links `list_records` was asked
    to name (engine/runtime/records/names.py)."""
    named: frozenset[str] = frozenset()
    """The link keys whose names are all in `names` (the others: read separately)."""


def _field_for(entity: Entity, name: str, hidden: frozenset[str] = frozenset()) -> Field:
    """The Field (real, or a stand-in for an engine column) that `name` names; a field in
    `hidden` (hidden from the caller) is as unknown as one that does not exist."""
    if name in hidden:
        raise KeyError(name)
    if entity.has_field(name):
        return entity.field(name)
    if name in ENGINE_SORTABLE:
        from engine.metadata.errors import SourceLoc
        from engine.metadata.labels import Label

        return Field(name=name, type=ENGINE_SORTABLE[name], label=Label.of(None, name),
                     loc=SourceLoc("<engine>", 1, 1))
    raise KeyError(name)


def parse_list_params(entity: Entity, params: Mapping[str, str],
                      reserved: frozenset[str] = frozenset(),
                      hidden: frozenset[str] = frozenset()) -> ListQuery:
    """Turn query-string parameters into a ListQuery; every problem names its parameter.
    `hidden`: the fields hidden from the caller, answered like fields that do not exist.

    `?stage=won&amount__gte=1000&sort=-amount,name&page=2&page_size=50`
    """
    problems: dict[str, str] = {}
    conditions: list[Condition] = []
    page = _int_param(params, "page", 1, 1, 10**9, problems)
    page_size = _int_param(params, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, problems)
    sort = parse_sort(entity, params.get("sort", ""), problems, hidden)
    for key, raw in params.items():
        if key in {"page", "page_size", "sort", "cursor", "deleted"} | reserved:
            continue
        name, _, op = key.partition("__")
        op = op or "eq"
        try:
            f = _field_for(entity, name, hidden)
        except KeyError:
            problems[key] = unknown_field(entity, name)
            continue
        if op not in OPERATORS:
            problems[key] = msg("unknown operator '%(op)s'; use one of %(ops)s", op=op,
                                ops=", ".join(OPERATORS))
            continue
        if _sql_problem(f):
            problems[key] = msg("cannot filter on '%(field)s': %(why)s", field=name,
                                why=_sql_problem(f))
            continue
        try:
            conditions.append(Condition(name, op, _filter_value(f, op, raw)))
        except ValueProblem as exc:
            problems[key] = msg("%(field)s %(problem)s", field=name, problem=exc.message)
    deleted_raw = params.get("deleted", "false").lower()
    if deleted_raw not in ("true", "false", "1", "0"):
        problems["deleted"] = msg("must be true or false")
    if problems:
        raise BadRequest(msg("invalid list parameters"), problems)
    return ListQuery(tuple(conditions), sort, page, page_size, params.get("cursor") or None,
                     deleted_raw in ("true", "1"))


def _sql_problem(f: Field) -> str | None:
    """Why a computed field cannot be filtered or sorted on in the database, if it can't."""
    if f.computed and f.compiled is not None and f.compiled.sql_problem is not None:
        return f.compiled.sql_problem.message
    return None


def _int_param(params: Mapping[str, str], key: str, default: int, lo: int, hi: int,
               problems: dict[str, str]) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    # isascii: "²".isdigit() is True but int("²") fails; len: int() of a huge string is slow
    if not (raw.isascii() and raw.isdigit()) or len(raw.lstrip("0")) > 12 \
            or not lo <= int(raw) <= hi:
        problems[key] = msg("must be a whole number from %(lo)s to %(hi)s", lo=lo, hi=hi)
        return default
    return int(raw)


def unknown_field(entity: Entity, name: str) -> str:
    """The problem of a list condition on a field the entity lacks (or hides)."""
    return msg("unknown field '%(field)s' of %(entity)s", field=name, entity=entity.name)


def unknown_sort_field(entity: Entity, name: str) -> str:
    """The problem of a sort on a field the entity lacks (or hides)."""
    return msg("unknown sort field '%(field)s' of %(entity)s", field=name, entity=entity.name)


def parse_sort(entity: Entity, raw: str, problems: dict[str, str],
               hidden: frozenset[str] = frozenset()) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for part in [p.strip() for p in raw.split(",") if p.strip()]:
        desc = part.startswith("-")
        name = part[1:] if part[0] in "+-" else part
        if not NAME_RE.match(name):
            problems["sort"] = msg("%(part)s is not a field name", part=repr(part))
            continue
        try:
            f = _field_for(entity, name, hidden)
        except KeyError:
            problems["sort"] = unknown_sort_field(entity, name)
            continue
        if not FIELD_TYPES[f.type].sortable:
            problems["sort"] = msg("cannot sort on '%(field)s', a %(type)s field", field=name,
                                   type=str(f.type))
            continue
        if _sql_problem(f):
            problems["sort"] = msg("cannot sort on '%(field)s': %(why)s", field=name,
                                   why=_sql_problem(f))
            continue
        if any(k.field == name for k in keys):
            problems["sort"] = msg("'%(field)s' appears twice", field=name)
            continue
        keys.append(SortKey(name, desc))
    if len(keys) > 5:
        problems["sort"] = msg("at most 5 sort fields")
    return tuple(keys)


def _filter_value(f: Field, op: str, raw: str) -> Any:
    if op == "blank":
        low = raw.lower()
        if low not in ("true", "false", "1", "0"):
            raise ValueProblem(msg("__blank must be true or false"))
        return low in ("true", "1")
    ops = FIELD_TYPES[f.type].operators
    if op == "contains":
        if op not in ops:
            raise ValueProblem(msg("cannot use contains on a field of type %(type)s",
                                   type=str(f.type)))
        if len(raw) > 1000:
            raise ValueProblem(msg("search text is too long"))
        if "\x00" in raw:  # PostgreSQL refuses NUL in any string
            raise ValueProblem(msg("must not contain NUL characters"))
        return raw
    if op in COMPARISONS and op not in ops:
        raise ValueProblem(msg("cannot compare a %(type)s field with %(op)s",
                               type=str(f.type), op=op))
    coerce = coercer_for(_unbounded(f))
    if op not in ops:  # today only `in` of a multichoice field
        raise ValueProblem(msg("cannot use %(op)s on a multichoice field", op=op))
    if op == "in":
        values = [coerce(v) for v in raw.split(",") if v.strip()]
        if not values or len(values) > 100:
            raise ValueProblem(msg("__in takes 1 to 100 comma-separated values"))
        return values
    value = coerce(raw)
    if value is None:
        raise ValueProblem(msg("needs a value (use __blank=true to find blanks)"))
    return value


def _unbounded(f: Field) -> Field:
    """Filters compare against any value of the type, not only ones a record may hold."""
    from dataclasses import replace

    return replace(f, min=None, max=None, max_length=None, required=False)


def condition_sql(cols: Cols, cond: Condition, dialect: str = "sqlite") -> ColumnElement[bool]:
    """The WHERE clause of one condition. `dialect` matters for multichoice (JSON) columns:
    PostgreSQL has no `json = json`, so both sides become jsonb there; SQLite compares the
    JSON text, which is canonical because the coercer stores options in their defined order.
    """
    col: ColumnElement[Any] = _col(cols, cond.field)
    v = cond.value
    on_index = regarding_condition(col, cond.op, v)
    if on_index is not None:
        return on_index
    if isinstance(col.type, JSON) and cond.op in ("eq", "ne") and dialect == "postgresql":
        col, v = cast(col, JSONB), type_coerce(v, JSONB)
    match cond.op:
        case "eq":
            return col == v  # type: ignore[no-any-return]
        case "ne":
            return or_(col != v, col.is_(None))
        case "gt":
            return col > v  # type: ignore[no-any-return]
        case "gte":
            return col >= v  # type: ignore[no-any-return]
        case "lt":
            return col < v  # type: ignore[no-any-return]
        case "lte":
            return col <= v  # type: ignore[no-any-return]
        case "contains":
            return col.icontains(v, autoescape=True)
        case "in":
            return col.in_(v)
        case "blank":
            return col.is_(None) if v else col.is_not(None)
    # pragma: no cover - parse_list_params refuses other operators
    raise BadRequest(msg("unknown operator '%(op)s'", op=cond.op))


def order_by(cols: Cols, keys: tuple[SortKey, ...],
             nulls_small: bool) -> list[UnaryExpression[Any]]:
    """ORDER BY with blanks as the smallest value on every database, then id as tie-break."""
    out: list[UnaryExpression[Any]] = []
    for k in keys:
        col = _col(cols, k.field)
        if k.descending:
            out.append(col.desc() if nulls_small else col.desc().nulls_last())
        else:
            out.append(col.asc() if nulls_small else col.asc().nulls_first())
    last_desc = keys[-1].descending if keys else False
    out.append(_col(cols, "id").desc() if last_desc else _col(cols, "id").asc())
    return out


def encode_cursor(keys: tuple[SortKey, ...], row: Mapping[str, Any]) -> str:
    payload = [to_json(row[k.field]) for k in keys] + [row["id"]]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after_cursor(entity: Entity, cols: Cols, keys: tuple[SortKey, ...],
                 cursor: str) -> ColumnElement[bool]:
    """Rows strictly after the cursor in the order of `order_by`."""
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError("length")
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(keys) + 1:
            raise ValueError("shape")
        decoded = [None if v is None else coercer_for(_unbounded(_field_for(entity, k.field)))(v)
                   for k, v in zip(keys, values[:-1], strict=True)]
        last_id = values[-1]
        if not isinstance(last_id, int) or isinstance(last_id, bool) \
                or not 0 < last_id < 2**63:
            raise ValueError("id")
    except (ValueError, binascii.Error, ValueProblem, UnicodeDecodeError, KeyError,
            RecursionError):
        raise BadRequest(msg("invalid cursor"),
                         {"cursor": msg("not a cursor from this list")}) from None
    all_keys = [*keys, SortKey("id", keys[-1].descending if keys else False)]
    all_values = [*decoded, last_id]
    alternatives: list[ColumnElement[bool]] = []
    for i, (key, value) in enumerate(zip(all_keys, all_values, strict=True)):
        equal_before = [
            _col(cols, k.field).is_(None) if v is None
            else _col(cols, k.field) == _bound(cols, k, v)
            for k, v in zip(all_keys[:i], all_values[:i], strict=True)
        ]
        alternatives.append(and_(*equal_before, _strictly_after(cols, key, value)))
    return or_(*alternatives)


def _bound(cols: Cols, key: SortKey, value: Any) -> ColumnElement[Any]:
    """`value` as a parameter of the column's type: SQLAlchemy refuses `col > True` itself."""
    return literal(value, _col(cols, key.field).type)


def _strictly_after(cols: Cols, key: SortKey, value: Any) -> ColumnElement[bool]:
    col = _col(cols, key.field)
    if value is None:
        return false() if key.descending else col.is_not(None)
    bound = _bound(cols, key, value)
    return or_(col < bound, col.is_(None)) if key.descending else col > bound


def page_statement(stmt: Select[Any], id_col: ColumnElement[Any],
                   where: Sequence[ColumnElement[bool]],
                   branches: Sequence[ColumnElement[bool]] | None,
                   order: Sequence[UnaryExpression[Any]], offset: int,
                   limit: int) -> Select[Any]:
    """`stmt` (rows of one table, `id_col` its id) narrowed to a page: the rows matching
    every condition of `where` and one of `branches` (None: no branch to match), in `order`,
    the `limit` after the first `offset`.

    With several branches (an access predicate, `owner = me OR id IN (my teams)`, as
    AccessPolicy.read_branches gives it), each branch's first offset + limit rows are read
    apart, as ids and sort keys, and the page's ids taken from their union in the list's
    order: a database reads one branch from an index in the list's order (the own records
    from (owner_id, sort field)), where it answers the OR by collecting every matching row
    and sorting them all for one page. The rows are those of the plain query: `order` is
    total (it ends with the id), so a row of the page is among the first offset + limit
    rows of any branch it matches; a branch leaves out the rows of those before it, so the
    union holds each row once. Only the page's ids are read again whole (on PostgreSQL
    from an ARRAY computed once, engine/runtime/sqlin.py `in_rows`; an own list over 1M
    opportunities: 1.09 -> 0.98 ms a round trip, against 100 candidates read again).

    LIMIT and OFFSET are written into the SQL as numbers (`_count`), not sent as
    parameters: a statement psycopg has prepared (from its 5th run on a connection) is then
    run from the generic plan PostgreSQL keeps for it, without planning it again. With
    `LIMIT $n` the generic plan is costed for an unknown limit, far above the custom plans,
    so PostgreSQL planned every run anew (over 1M opportunities, a round trip of the own
    list's rows statement: 1.30 ms planned each time, 1.09 ms from the generic plan).
    """
    if branches is None or len(branches) < 2:
        return _paged(stmt.where(*where, *(branches or ())).order_by(*order), offset, limit)
    terms = [_term(o) for o in order]
    tops = [select(id_col.label("id"), *[key.label(f"k{i}") for i, (key, _) in enumerate(terms)])
            .where(*where, branch, *([or_(*branches[:n]).is_not(true())] if n else []))
            .order_by(*order).limit(_count(offset + limit)).subquery()
            for n, branch in enumerate(branches)]
    union = union_all(*[select(top) for top in tops]).subquery()
    ids = _paged(select(union.c.id).order_by(*[
        _sorted(union.c[f"k{i}"], modifiers) for i, (_, modifiers) in enumerate(terms)]),
        offset, limit)
    return _paged(stmt.where(in_rows(id_col, ids)).order_by(*order), 0, limit)


_MODIFIERS: dict[Any, Callable[[ColumnElement[Any]], UnaryExpression[Any]]] = {
    operators.desc_op: desc, operators.asc_op: asc,
    operators.nulls_first_op: nulls_first, operators.nulls_last_op: nulls_last}


def _term(o: UnaryExpression[Any]) -> tuple[ColumnElement[Any], list[Any]]:
    """What a term of `order_by` sorts on, and how (its modifiers, outermost first)."""
    modifiers: list[Any] = []
    inner: ColumnElement[Any] = o
    while isinstance(inner, UnaryExpression) and inner.modifier in _MODIFIERS:
        modifiers.append(inner.modifier)
        inner = inner.element
    return inner, modifiers


def _sorted(col: ColumnElement[Any], modifiers: list[Any]) -> ColumnElement[Any]:
    """`col` sorted as a term with `modifiers` (from `_term`) sorts."""
    for modifier in reversed(modifiers):
        col = _MODIFIERS[modifier](col)
    return col


def _paged(stmt: Select[Any], offset: int, limit: int) -> Select[Any]:
    """`stmt`'s rows `offset` to `offset + limit` (no OFFSET clause for the first page)."""
    stmt = stmt.limit(_count(limit))
    return stmt.offset(_count(offset)) if offset else stmt


def _count(n: int) -> BindParameter[int]:
    """A LIMIT or OFFSET written into the SQL as a number when the statement runs (the
    compiled form is cached once for every number: SQLAlchemy's literal_execute)."""
    return bindparam(None, n, type_=Integer, literal_execute=True)

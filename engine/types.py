"""The shared vocabulary of the engine: field types, engine columns, name rules.

What each field type is lives in engine/fieldtypes.py; the sets and tables below are read
from its entries and kept here for the modules that import them.
"""

from __future__ import annotations

import re
from typing import Any

from engine.fieldtypes import FIELD_TYPES, of_kind
from engine.fieldtypes import FieldType as FieldType  # re-exported: its home is fieldtypes
from engine.fieldtypes import text_shape_problem as text_shape_problem

RecordId = int
UserId = int
Record = dict[str, Any]

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
NAME_RE = re.compile(NAME_PATTERN)


NUMERIC_TYPES = of_kind("number")
TEXT_TYPES = of_kind("text")
LINK_TYPES = of_kind("link")

# (precision, scale) of the exact decimal types.
DECIMAL_SHAPES: dict[FieldType, tuple[int, int]] = {
    t: spec.decimal for t, spec in FIELD_TYPES.items() if spec.decimal is not None}

# The most characters a text-like field holds when its max_length is not set.
TEXT_DEFAULT_MAX: dict[FieldType, int] = {
    t: spec.text_max for t, spec in FIELD_TYPES.items() if spec.text_max is not None}


# Columns every entity table carries. They change only through the engine.
ENGINE_COLUMNS: tuple[str, ...] = (
    "id",
    "version",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "owner_id",
    "department_id",
    "deleted_at",
    "deleted_by",
)
# Names readable in formulas and lists for the owner and department columns.
ENGINE_ALIASES: tuple[str, ...] = ("owner", "department", "created", "updated", "deleted")

# Prefix of the engine's own tables; entity names may not use it.
SYSTEM_PREFIX = "crm_"

# Words reserved in SQL:2016, SQLite or PostgreSQL that would need quoting as identifiers.
# /api/<name> paths the engine itself serves, so no entity may take them.
ENGINE_API_PATHS = frozenset({"access"})

RESERVED_WORDS: frozenset[str] = frozenset({
    "abort", "action", "add", "after", "all", "alter", "always", "analyze", "and", "any",
    "array", "as", "asc", "asymmetric", "at", "attach", "authorization", "autoincrement",
    "before", "begin", "between", "bigint", "binary", "bit", "both", "by", "cascade", "case",
    "cast", "char", "character", "check", "collate", "collation", "column", "commit",
    "concurrently", "conflict", "constraint", "create", "cross", "current", "current_catalog",
    "current_date", "current_role", "current_schema", "current_time", "current_timestamp",
    "current_user", "cursor", "database", "default", "deferrable", "deferred", "delete",
    "desc", "detach", "distinct", "do", "drop", "each", "else", "end", "escape", "except",
    "exclude", "exclusive", "exists", "explain", "fail", "false", "fetch", "filter", "first",
    "following", "for", "foreign", "freeze", "from", "full", "function", "glob", "grant",
    "group", "groups", "having", "if", "ignore", "ilike", "immediate", "in", "index",
    "indexed", "initially", "inner", "insert", "instead", "intersect", "into", "is", "isnull",
    "join", "key", "last", "lateral", "leading", "left", "like", "limit", "localtime",
    "localtimestamp", "match", "materialized", "natural", "no", "not", "nothing", "notnull",
    "null", "nulls", "of", "offset", "on", "only", "or", "order", "others", "outer", "over",
    "overlaps", "partition", "placing", "plan", "pragma", "preceding", "primary", "query",
    "raise", "range", "recursive", "references", "regexp", "reindex", "release", "rename",
    "replace", "restrict", "returning", "revoke", "right", "rollback", "row", "rows",
    "savepoint", "select", "session_user", "set", "similar", "some", "symmetric", "table",
    "temp", "temporary", "then", "ties", "to", "trailing", "transaction", "trigger", "true",
    "unbounded", "union", "unique", "update", "user", "using", "vacuum", "values", "variadic",
    "verbose", "view", "virtual", "when", "where", "window", "with", "within", "without",
})


def name_problem(name: str, *, entity: bool = False) -> str | None:
    """Why `name` cannot be a field (or, with `entity`, an entity) name; None when it can.

    >>> name_problem("amount") is None
    True
    >>> name_problem("order")
    "'order' is a reserved SQL word"
    """
    if not NAME_RE.match(name):
        return f"{name!r} is not a valid name (lower-case letter, then a-z, 0-9 or _, at most 63)"
    if name in RESERVED_WORDS:
        return f"{name!r} is a reserved SQL word"
    if entity:
        if name.startswith(SYSTEM_PREFIX):
            return f"{name!r} starts with {SYSTEM_PREFIX!r}, which is kept for engine tables"
        if name in ENGINE_API_PATHS:
            return f"{name!r} is an engine API path (/api/{name})"
        return None
    if name in ENGINE_COLUMNS or name in ENGINE_ALIASES:
        return f"{name!r} is an engine column name"
    return None

"""The shared vocabulary of the engine: field types, engine columns, name rules."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from engine.messages import N_, msg

RecordId = int
UserId = int
Record = dict[str, Any]

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
NAME_RE = re.compile(NAME_PATTERN)


class FieldType(StrEnum):
    TEXT = "text"
    TEXTAREA = "textarea"
    INTEGER = "integer"
    DECIMAL = "decimal"
    MONEY = "money"
    PERCENT = "percent"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    CHOICE = "choice"
    MULTICHOICE = "multichoice"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    REFERENCE = "reference"
    USER = "user"
    DEPARTMENT = "department"


NUMERIC_TYPES = frozenset(
    {FieldType.INTEGER, FieldType.DECIMAL, FieldType.MONEY, FieldType.PERCENT}
)
TEXT_TYPES = frozenset(
    {FieldType.TEXT, FieldType.TEXTAREA, FieldType.EMAIL, FieldType.PHONE, FieldType.URL}
)
LINK_TYPES = frozenset({FieldType.REFERENCE, FieldType.USER, FieldType.DEPARTMENT})

# (precision, scale) of the exact decimal types.
DECIMAL_SHAPES: dict[FieldType, tuple[int, int]] = {
    FieldType.DECIMAL: (15, 4),
    FieldType.MONEY: (15, 2),
    FieldType.PERCENT: (9, 4),
}

# The most characters a text-like field holds when its max_length is not set.
TEXT_DEFAULT_MAX: dict[FieldType, int] = {
    FieldType.TEXT: 255, FieldType.EMAIL: 254, FieldType.PHONE: 40, FieldType.URL: 2048,
    FieldType.TEXTAREA: 100_000,
}
# Shapes of the text fields that have one, with how to describe them to a user.
TEXT_PATTERNS: dict[FieldType, tuple[re.Pattern[str], str]] = {
    FieldType.EMAIL: (
        re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"),
        N_("must be an email address like name@example.com")),
    FieldType.PHONE: (re.compile(r"^\+?[0-9 ()./-]{3,40}$"),
                      N_("must be a phone number (digits, spaces, + ( ) - . /)")),
    FieldType.URL: (re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE),
                    N_("must be a web address starting with http:// or https://")),
}


def text_shape_problem(ftype: FieldType, text: str) -> str | None:
    """Why `text` does not have the shape `ftype` needs (email, phone, url), or None."""
    shape = TEXT_PATTERNS.get(ftype)
    if shape is None:
        return None
    if not shape[0].match(text) or (
            ftype is FieldType.PHONE and sum(c.isdigit() for c in text) < 3):
        return msg(shape[1])
    return None


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

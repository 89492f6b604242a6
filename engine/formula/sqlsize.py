"""How large a formula's SQL is once written out, measured while it is built.

A SQLAlchemy expression is a graph: a builder that names an operand three times (a
guard, then the value) holds one object three times, but the SQL text repeats it, and
nested builders multiply the copies. `SqlSize` counts the terms and bound parameters of
the SQL *as written*, remembering each object's count, so measuring costs the size of
the graph, never of the text it would become:

>>> from sqlalchemy import column, literal
>>> x = column("a") + literal(1)
>>> y = x * x
>>> size = SqlSize()
>>> size.of(y)
(9, 2)
>>> size.uses(y, [x])
[2]

The SQL compiler (sqlcompile.py) refuses a formula past MAX_SQL_TERMS or
MAX_SQL_PARAMETERS, and shares an operand used more than once (SHARE_ABOVE) instead of
copying it. SQLite's parser has a bounded stack, so depth is a bound of its own
(`sqlite_parses`, asked by compiled.py when a formula is compiled).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import literal_column, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnClause
from sqlalchemy.sql.selectable import SelectBase, TableClause

MAX_SQL_TERMS = 20_000
"""A formula's SQL has at most this many terms (columns, constants, operators, calls)."""
MAX_SQL_PARAMETERS = 1_000
"""A formula's SQL binds at most this many parameters."""
SHARE_ABOVE = 24
"""An operand of more terms than this, used more than once, is computed once and shared."""


class SqlSize:
    """Terms and bound parameters of expressions as written, remembered per object."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[int, int, bool, ClauseElement]] = {}
        self._own: dict[int, SelectBase] = {}

    def own(self, query: SelectBase) -> None:
        """A SELECT the compiler writes itself: `has_query` does not count it."""
        self._own[id(query)] = query

    def of(self, root: ClauseElement) -> tuple[int, int]:
        """(terms, parameters) of `root`'s SQL text, repeated subexpressions repeated."""
        terms, params, _ = self._measure(root)
        return terms, params

    def has_query(self, root: ClauseElement) -> bool:
        """Whether `root` holds a SELECT besides those of `own` (a field read through a
        reference, say)."""
        return self._measure(root)[2]

    def _measure(self, root: ClauseElement) -> tuple[int, int, bool]:
        known = self._known
        stack: list[tuple[ClauseElement, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in known:
                continue
            if isinstance(node, BindParameter):
                known[id(node)] = (1, 1, False, node)
                continue
            if isinstance(node, ColumnClause | TableClause):  # a name; its table isn't written
                known[id(node)] = (1, 0, False, node)
                continue
            children = list(node.get_children())
            if expanded:
                terms, params = 1, 0
                query = isinstance(node, SelectBase) and id(node) not in self._own
                for child in children:
                    t, p, q, _ = known[id(child)]
                    terms += t
                    params += p
                    query = query or q
                known[id(node)] = (terms, params, query, node)
                continue
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in known)
        terms, params, query, _ = known[id(root)]
        return terms, params, query

    def uses(self, root: ClauseElement, parts: Sequence[ClauseElement]) -> list[int]:
        """How many times the SQL text of `root` writes each of `parts` (by identity);
        the parts' insides are not visited."""
        counts: dict[int, list[int]] = {}
        alive: list[Any] = list(parts)  # ids stay unique while we count
        for i, p in enumerate(parts):
            counts[id(p)] = [int(j == i) for j in range(len(parts))]
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in counts:
                continue
            children = [] if isinstance(node, ColumnClause | TableClause | BindParameter) \
                else list(node.get_children())
            if expanded or not children:
                total = [0] * len(parts)
                for child in children:
                    for j, n in enumerate(counts[id(child)]):
                        total[j] += n
                counts[id(node)] = total
                alive.append(node)
                continue
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in counts)
        return counts[id(root)]


SQLITE_MARGIN = 3
"""Queries around a formula (a list's, its count's) nest it this many levels deeper."""


def sqlite_parses(expr: Any) -> bool:
    """Whether SQLite's parser, whose stack is bounded, can read `expr` inside a query
    SQLITE_MARGIN levels deep. Only the parser runs (on an empty in-memory database):
    names are never resolved, nothing is executed."""
    wrapped: Any = expr
    for _ in range(SQLITE_MARGIN):
        wrapped = select(wrapped.label("x")).where(literal_column("1") > 0).scalar_subquery()
    sql = str(select(wrapped.label("x")).compile(dialect=sqlite.dialect()))
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("EXPLAIN " + sql, [None] * sql.count("?"))
    except sqlite3.Error as exc:
        return "parser stack overflow" not in str(exc)
    finally:
        connection.close()
    return True

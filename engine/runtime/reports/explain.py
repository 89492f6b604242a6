"""A report's SQL and its query plan, for administrators (`/reports/<name>/sql`).

`explain` compiles the one statement of a report as the viewer would run it (their access,
the parameters' values) for the database in use, and asks the database how it would run it:
`EXPLAIN` on PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite — through SQLAlchemy, the values
bound as the report binds them (the statement is not run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from engine.metadata.reports import Report
from engine.runtime.access import Actor
from engine.runtime.reports.compiler import report_statement
from engine.runtime.reports.params import ParamValue

if TYPE_CHECKING:
    from engine.runtime.records.service import Records


class Explain(Executable, ClauseElement):
    """`EXPLAIN <statement>` (PostgreSQL) or `EXPLAIN QUERY PLAN <statement>` (SQLite)."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain)
def _explain_sql(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    prefix = "EXPLAIN QUERY PLAN " if compiler.dialect.name == "sqlite" else "EXPLAIN "
    return prefix + compiler.process(element.statement, **kw)


@dataclass(frozen=True)
class ReportSql:
    sql: str
    """The statement as the database receives it (placeholders for the values)."""
    params: dict[str, Any]
    """The values bound to the placeholders."""
    plan: list[str]
    """The database's plan, a line per step."""
    dialect: str


def explain(records: Records, actor: Actor, report: Report,
            values: Sequence[ParamValue] | None = None) -> ReportSql:
    stmt = report_statement(records, actor, report, "read", values)
    engine = records.engine
    compiled = stmt.compile(dialect=engine.dialect,
                            compile_kwargs={"render_postcompile": True})
    with engine.connect() as conn:
        rows = conn.execute(Explain(stmt)).all()
    if engine.dialect.name == "sqlite":  # (id, parent, notused, detail): indent by depth
        depth: dict[int, int] = {}
        plan = []
        for row in rows:
            depth[row[0]] = depth.get(row[1], -1) + 1
            plan.append("  " * depth[row[0]] + str(row[3]))
    else:
        plan = [str(row[0]) for row in rows]
    return ReportSql(str(compiled), dict(compiled.params), plan, engine.dialect.name)

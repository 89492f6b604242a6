"""A formula compiled both ways, and cycle detection across formula fields.

>>> from engine.formula.context import EntityScope, FieldSpec, MappingContext
>>> scope = EntityScope({"deal": {"amount": FieldSpec(FType.NUMBER, scale=2)}}, "deal")
>>> f = compile_formula("IF(amount > 100, amount * 0.9, amount)", scope)
>>> f.type, f.references, f.sql_capable
(<FType.NUMBER: 'number'>, frozenset({('amount',)}), True)
>>> f.evaluate(MappingContext({"amount": 200}))
Decimal('180.0')
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import column

from engine.formula.ast import TCall, TField, TNode, typed_nodes
from engine.formula.checker import check
from engine.formula.context import FixedClock
from engine.formula.errors import FormulaCycleError, FormulaError, position
from engine.formula.functions import FUNCTIONS
from engine.formula.parser import parse
from engine.formula.pycompile import Fn, compile_python
from engine.formula.sqlcompile import DIALECTS, Columns, SqlCompiler, compile_sql, condition
from engine.formula.sqlsize import sqlite_parses
from engine.formula.sqlterms import Expr
from engine.formula.types import Clock, EvalContext, FType, Path, Scope, Value, described
from engine.messages import msg


@dataclass(frozen=True, eq=False)
class CompiledFormula:
    """A checked formula with its Python callable; SQL is built per query (`to_sql`).

    `evaluate(ctx)` gives the value for one record; `holds(ctx)` reads a condition the
    way validation rules and guards do (BLANK counts as false).
    """

    source: str
    tree: TNode
    evaluate: Fn = field(repr=False)
    """evaluate(ctx: EvalContext) -> Value"""
    references: frozenset[Path]
    """Every field path the formula reads, PRIORVALUE and ISCHANGED arguments included."""
    functions: frozenset[str]
    """The functions it calls, upper-case (to refuse, say, ISCHANGED in a list filter)."""
    sql_problem: FormulaError | None = field(default=None, repr=False)

    @property
    def type(self) -> FType:
        return self.tree.type

    @property
    def sql_capable(self) -> bool:
        return self.sql_problem is None

    def holds(self, ctx: EvalContext) -> bool:
        """True only when the formula gives TRUE; FALSE and BLANK fail a rule or guard."""
        return self.evaluate(ctx) is True

    def to_sql(self, columns: Columns, dialect: str, clock: Clock) -> Expr:
        """The formula as one SQLAlchemy expression for "sqlite" or "postgresql".

        `columns(path)` gives the expression for a field path (joins are the caller's).
        TODAY() and NOW() become bound parameters from `clock`. Raises FormulaError
        when a function cannot run in the database.
        """
        if self.sql_problem is not None:
            raise self.sql_problem
        return compile_sql(self.tree, columns, dialect, clock)

    def sql_condition(self, columns: Columns, dialect: str, clock: Clock) -> Expr:
        """A boolean formula as a WHERE condition, BLANK counting as false."""
        if self.type not in (FType.BOOLEAN, FType.BLANK):
            raise FormulaError(msg("a filter needs a condition, not %(type)s",
                                   type=described(self.type)), self.tree.line, self.tree.col)
        return condition(self.to_sql(columns, dialect, clock))

    def reference_sites(self) -> Iterator[tuple[Path, int, int]]:
        """(path, line, col) of every field reference, in source order."""
        found = [(n.line, n.col, n.path) for n in typed_nodes(self.tree)
                 if isinstance(n, TField)]
        for line, col, path in sorted(found):
            yield path, line, col


def compile_formula(source: str, scope: Scope, expect: FType | None = None) -> CompiledFormula:
    """Parse (cached), check against `scope` and compile `source`.

    With `expect`, the formula must give that type (BLANK() alone always fits):
    a validation rule expects FType.BOOLEAN, a money field's formula FType.NUMBER.
    """
    tree = check(parse(source), scope)
    if expect is not None and tree.type not in (expect, FType.BLANK):
        stripped = len(source) - len(source.lstrip())
        raise FormulaError(msg("this formula gives %(type)s, but %(wanted)s is needed here",
                               type=described(tree.type), wanted=described(expect)),
                           *position(source, stripped))
    calls = [n for n in typed_nodes(tree) if isinstance(n, TCall)]
    sql_problem = _sql_problem(calls)
    if sql_problem is None:
        _measure_alone(tree)
    return CompiledFormula(
        source=source,
        tree=tree,
        evaluate=compile_python(tree),
        references=frozenset(n.path for n in typed_nodes(tree) if isinstance(n, TField)),
        functions=frozenset(n.name for n in calls if n.name in FUNCTIONS),
        sql_problem=sql_problem,
    )


_ANY_TIME = FixedClock(datetime(2000, 1, 1, tzinfo=UTC))
"""A clock for measuring SQL: its values are parameters like any other."""


@lru_cache(maxsize=4096)
def _measure_alone(tree: TNode) -> None:
    """measure_sql with plain columns, once per typed tree (trees are immutable)."""
    measure_sql(tree)


def measure_sql(tree: TNode, columns_for: Callable[[str], Columns] | None = None) -> None:
    """Build the SQL of a typed tree for every dialect and raise the FormulaError of a
    bound it passes (sqlsize.py): a formula too large for the database is refused where
    it is written, not when a list runs it. Fields are plain columns unless
    `columns_for(dialect)` gives their expressions (other computed fields, inlined).
    Building is linear in the formula; SQL text is written only for SQLite's parser.
    """
    def plain(path: Path) -> Expr:
        return column(".".join(path))

    for dialect in DIALECTS:
        columns = columns_for(dialect) if columns_for is not None else plain
        built = SqlCompiler(columns, dialect, _ANY_TIME).expr(tree)
        if dialect == "sqlite" and not sqlite_parses(built):
            raise FormulaError(
                msg("the formula's SQL nests too deeply for SQLite's parser (the limit); "
                    "simplify it or split it into formula fields"),
                *min((n.line, n.col) for n in typed_nodes(tree)))


def _sql_problem(calls: list[TCall]) -> FormulaError | None:
    for node in sorted(calls, key=lambda n: (n.line, n.col)):
        spec = FUNCTIONS.get(node.name)
        if spec is not None and not spec.sql:
            return FormulaError(
                msg("%(name)s cannot run in the database, so this formula can't be filtered "
                    "or sorted on", name=node.name), node.line, node.col)
    return None


def evaluate_source(source: str, scope: Scope, ctx: EvalContext) -> Value:
    """Compile and evaluate once (for `crm formula` and tests)."""
    return compile_formula(source, scope).evaluate(ctx)  # type: ignore[no-any-return]


Resolver = Callable[[str, Path], str | None]


def check_cycles(formulas: Mapping[str, CompiledFormula],
                 resolve: Resolver | None = None) -> None:
    """Raise FormulaCycleError when formula fields use each other in a circle.

    Keys name formula fields. `resolve(key, path)` says which key a path read by the
    formula `key` reaches, or None; by default a one-name path reaches the formula of
    that name, which suits the formula fields of one entity. To follow references
    across entities, use keys like "deal.weighted" and a resolver that walks the model.
    The error points at the reference that closes the circle, in that formula.
    """
    def default(key: str, path: Path) -> str | None:
        return path[0] if len(path) == 1 and path[0] in formulas else None

    reach = resolve or default
    edges: dict[str, list[tuple[str, int, int]]] = {}
    for key, formula in formulas.items():
        edges[key] = []
        for path, line, col in formula.reference_sites():
            target = reach(key, path)
            if target is not None and target in formulas:
                edges[key].append((target, line, col))
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for root in formulas:
        if state.get(root):
            continue
        trail = [root]
        stack = [iter(edges[root])]
        state[root] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[trail.pop()] = 2
                stack.pop()
                continue
            target, line, col = step
            if state.get(target) == 1:
                cycle = [*trail[trail.index(target):], target]
                raise FormulaCycleError(trail[-1], cycle, line, col)
            if not state.get(target):
                state[target] = 1
                trail.append(target)
                stack.append(iter(edges[target]))


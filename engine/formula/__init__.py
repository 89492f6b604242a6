"""The formula language: one spreadsheet-like language for computed fields, defaults,
validation rules, form conditions, flow guards, scoring, filters and reports.

    formula = compile_formula('IF(amount > 1000, "big", "small")', scope)
    formula.type                          # FType.TEXT
    formula.evaluate(ctx)                 # Python: one record, from closures
    formula.to_sql(columns, "postgresql", clock)   # a SQLAlchemy expression

`scope` tells the checker which fields exist (the Scope protocol, or EntityScope);
`ctx` gives a record's values (the EvalContext protocol, or MappingContext);
`columns(path)` gives the SQL expression of a field path. Every problem with a formula
is a FormulaError with a line and a column. docs/formula.md describes the language.
"""

from engine.formula.ast import TCall, TField, TLiteral, TNode
from engine.formula.checker import check
from engine.formula.compiled import (
    CompiledFormula,
    Resolver,
    check_cycles,
    compile_formula,
    evaluate_source,
    measure_sql,
)
from engine.formula.context import (
    EntityScope,
    FieldSpec,
    FixedClock,
    MappingContext,
    SystemClock,
)
from engine.formula.errors import FormulaCycleError, FormulaError, caret_excerpt
from engine.formula.functions import FUNCTIONS, FunctionSpec
from engine.formula.parser import (
    MAX_NESTING,
    MAX_NODES,
    MAX_PATH_HOPS,
    MAX_SOURCE_LENGTH,
    parse,
)
from engine.formula.pycompile import PLACES
from engine.formula.sqlcompile import DIALECTS, Columns
from engine.formula.sqlsize import MAX_SQL_PARAMETERS, MAX_SQL_TERMS
from engine.formula.terms import sum_terms
from engine.formula.types import (
    Clock,
    EvalContext,
    FType,
    Path,
    Scope,
    Value,
    described,
    ftype_of,
    scale_of,
)

__all__ = [
    "DIALECTS",
    "FUNCTIONS",
    "MAX_NESTING",
    "MAX_NODES",
    "MAX_PATH_HOPS",
    "MAX_SOURCE_LENGTH",
    "MAX_SQL_PARAMETERS",
    "MAX_SQL_TERMS",
    "PLACES",
    "Clock",
    "Columns",
    "CompiledFormula",
    "EntityScope",
    "EvalContext",
    "FType",
    "FieldSpec",
    "FixedClock",
    "FormulaCycleError",
    "FormulaError",
    "FunctionSpec",
    "MappingContext",
    "Path",
    "Resolver",
    "Scope",
    "SystemClock",
    "TCall",
    "TField",
    "TLiteral",
    "TNode",
    "Value",
    "caret_excerpt",
    "check",
    "check_cycles",
    "compile_formula",
    "described",
    "evaluate_source",
    "ftype_of",
    "measure_sql",
    "parse",
    "scale_of",
    "sum_terms",
]

"""Fuzzing: arbitrary text and arbitrary token sequences. Parsing, checking and compiling
may only ever raise FormulaError; a formula that compiles evaluates without raising and
compiles to SQL for both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, BigInteger, Boolean, Column, Date, MetaData, String, Table
from sqlalchemy.dialects import postgresql, sqlite

from engine.formula import (
    FUNCTIONS,
    MAX_SQL_PARAMETERS,
    MAX_SQL_TERMS,
    EntityScope,
    FieldSpec,
    FixedClock,
    FormulaError,
    MappingContext,
    compile_formula,
    parse,
)
from engine.runtime.schema.types import ExactDecimal, UtcDateTime
from engine.types import FieldType

CLOCK = FixedClock(datetime(2024, 2, 29, 13, 45, 30, tzinfo=UTC))
SCOPE = EntityScope({
    "deal": {"amount": FieldSpec.of(FieldType.MONEY), "qty": FieldSpec.of(FieldType.INTEGER),
             "name": FieldSpec.of(FieldType.TEXT), "close": FieldSpec.of(FieldType.DATE),
             "created": FieldSpec.of(FieldType.DATETIME),
             "flag": FieldSpec.of(FieldType.BOOLEAN),
             "tags": FieldSpec.of(FieldType.MULTICHOICE),
             "account": FieldSpec.of(FieldType.REFERENCE, "account")},
    "account": {"name": FieldSpec.of(FieldType.TEXT),
                "owner": FieldSpec.of(FieldType.REFERENCE, "account")},
}, "deal")
TABLE = Table("deal", MetaData(), Column("amount", ExactDecimal(15, 2)),
              Column("qty", BigInteger), Column("name", String(255)), Column("close", Date),
              Column("created", UtcDateTime), Column("flag", Boolean), Column("tags", JSON),
              Column("account", BigInteger))
CONTEXTS = [
    MappingContext({}, CLOCK, prior_values={}),
    MappingContext({"amount": Decimal("-0.01"), "qty": 0, "name": "", "close": date(1, 1, 1),
                    "created": datetime(1, 1, 1, tzinfo=UTC), "flag": False, "tags": [],
                    "account": {"id": 1, "name": "", "owner": None}}, CLOCK, is_new=True),
    MappingContext({"amount": Decimal("9999999999999.99"), "qty": -(2**62), "name": "Ω 中 \\\"",
                    "close": date(9999, 12, 31),
                    "created": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                    "flag": True, "tags": ["a", ""],
                    "account": {"id": 2, "name": "x", "owner": {"id": 3, "name": "y"}}},
                   CLOCK, prior_values={"amount": Decimal(1), "name": None}),
]

TOKENS = ["(", ")", ",", ".", "+", "-", "*", "/", "^", "&", "&&", "||", "=", "==", "<>",
          "!=", "<", "<=", ">", ">=", "AND", "or", "NOT", "TRUE", "false", "0", "1", "2.5",
          "1000000000000", "0.0000001", '""', '"a"', '"\\""', '"1.5"', "amount", "qty",
          "name", "close", "created", "flag", "tags", "account", "account.name",
          "account.owner.name", "nope", "FOO", *FUNCTIONS, *(f"{f}(" for f in FUNCTIONS)]
GRAMMAR_CHARS = list('()",.+-*/^&|=<>!\\ \n\tabcxyzIFANDORNOT0123456789_')


def _exercise(source: str) -> None:
    """Everything a formula goes through; only FormulaError may come out."""
    try:
        formula = compile_formula(source, SCOPE)
    except FormulaError as err:
        assert err.line >= 1 and err.col >= 1
        assert str(err).startswith(f"{err.line}:{err.col}: ")
        return
    for ctx in CONTEXTS:
        formula.evaluate(ctx)
        formula.holds(ctx)
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        try:
            expr = formula.to_sql(lambda path: TABLE.c[path[0]], dialect.name, CLOCK)
        except FormulaError:
            assert not formula.sql_capable
            continue
        written = expr.compile(dialect=dialect)
        # within the bound: a term is never more than a few dozen characters of SQL
        assert len(str(written)) < 40 * MAX_SQL_TERMS


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120) | st.text(alphabet=st.sampled_from(GRAMMAR_CHARS), max_size=120))
def test_arbitrary_text_raises_only_formula_errors(source: str) -> None:
    try:
        parse(source)
    except FormulaError as err:
        assert err.line >= 1 and err.col >= 1
    _exercise(source)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=30),
       st.sampled_from([" ", "", "\n"]))
def test_arbitrary_token_sequences_raise_only_formula_errors(tokens: list[str],
                                                             glue: str) -> None:
    _exercise(glue.join(tokens))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["(", "ABS(", "-", "NOT ", "1 + ", "IF(TRUE, "]),
                min_size=50, max_size=200))
def test_deep_nesting_raises_only_formula_errors(prefix: list[str]) -> None:
    _exercise("".join(prefix) + "1" + ")" * 200)


LEAVES = ["1000000000000", "-1000000000000", "0", "0.5", "1000", "-1", "2.5", "0.0001", '""',
          '"a"', '"12.5"', "TRUE", "BLANK()", "amount", "qty", "name", "close", "created",
          "flag", "tags", "account", "TODAY()", "NOW()", "DATE(9999, 12, 31)", "DATE(1, 1, 1)"]
OPERATORS = ["+", "-", "*", "/", "^", "&", "=", "<>", "<", ">=", "AND", "OR"]
EXPRESSIONS = st.recursive(
    st.sampled_from(LEAVES),
    lambda inner: (st.builds(lambda name, args: f"{name}({', '.join(args)})",
                             st.sampled_from(sorted(FUNCTIONS)),
                             st.lists(inner, max_size=4))
                   | st.builds(lambda a, op, b: f"({a} {op} {b})", inner,
                               st.sampled_from(OPERATORS), inner)
                   | inner.map(lambda a: f"-{a}")),
    max_leaves=16)


def test_random_calls_with_extreme_values_evaluate_without_raising() -> None:
    compiled: list[str] = []

    @settings(max_examples=800, deadline=None)
    @given(EXPRESSIONS)
    def run(source: str) -> None:
        _exercise(source)
        try:
            compile_formula(source, SCOPE)
        except FormulaError:
            return
        compiled.append(source)

    run()
    # Not vacuous: a good share of the random calls were valid (about 100-150 of 800 in
    # practice; the bound leaves room for the randomness of generation).
    assert len(compiled) > 40


# Nesting that used to multiply SQL: each builder here writes an operand more than once.
REPEATERS = ["{0} ^ {1}", "POWER({0}, {1})", "MOD({0}, {1})", "{0} / {1}", "SQRT({0})",
             "ROUND({0}, {1})", "({0} + 0.1) * 1.1", "LEN(LEFT(TEXT({0}), {1}))",
             "VALUE(SUBSTITUTE(TEXT({0}), \"1\", TEXT({1})))",
             "VALUE(BLANKVALUE(TEXT({0}), TEXT({1})))", "YEAR(DATE({0}, {1}, {0}))",
             "ABS({0})", "CASE({0}, 1, {1}, 2, {0}, {1})", "IF({0} > {1}, {0}, {1})",
             "FIND(\"1\", TEXT({0}), {1})"]
NESTED = st.recursive(
    st.sampled_from(["2", "amount", "qty", "0.5", "-3"]),
    lambda inner: st.builds(lambda shape, a, b: shape.format(a, b),
                            st.sampled_from(REPEATERS), inner, inner),
    max_leaves=40)


@settings(max_examples=150, deadline=None)
@given(NESTED)
def test_nested_formulas_compile_within_the_sql_bound_or_name_it(source: str) -> None:
    """Deep nests of operators that repeat their operands: either the SQL stays within
    the bound, or the formula is refused with the bound's error, nothing else."""
    try:
        formula = compile_formula(source, SCOPE)
    except FormulaError as err:  # every shape gives a number: only a bound can refuse
        assert "nests more than" in err.message or "(the limit)" in err.message, err
        return
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        written = formula.to_sql(lambda path: TABLE.c[path[0]], dialect.name, CLOCK) \
            .compile(dialect=dialect)
        assert len(str(written)) < 1_000_000  # characters
        assert len(written.params) <= MAX_SQL_PARAMETERS

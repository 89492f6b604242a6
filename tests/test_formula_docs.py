"""docs/formula.md is tested: every function is documented, every example holds.

The examples are the backquoted "formula → result" pairs in the page; the result is itself a
formula (`DATE(2024, 2, 29)`, `BLANK()`), evaluated the same way. Examples that read
fields use the page's sample record, defined here as SAMPLE_SCOPE and sample_context().
test_formula_sql.py runs the same examples in SQL on both databases.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from engine.formula import (
    FUNCTIONS,
    EntityScope,
    FieldSpec,
    FixedClock,
    MappingContext,
    compile_formula,
)
from engine.formula.pycompile import IMPLEMENTED
from engine.formula.sqlfunctions import BUILDERS
from engine.types import FieldType

DOC = Path(__file__).resolve().parents[1] / "docs" / "formula.md"
TEXT = DOC.read_text(encoding="utf-8")
CLOCK = FixedClock(datetime(2024, 2, 29, 13, 45, 30, tzinfo=UTC))

SAMPLE_FIELDS = {
    "amount": FieldType.MONEY,
    "probability": FieldType.PERCENT,
    "stage": FieldType.CHOICE,
    "lost_reason": FieldType.CHOICE,
    "close_date": FieldType.DATE,
    "tags": FieldType.MULTICHOICE,
}
SAMPLE_SCOPE = EntityScope(
    {"opportunity": {name: FieldSpec.of(t) for name, t in SAMPLE_FIELDS.items()}},
    "opportunity")
SAMPLE = {"amount": Decimal("1250.50"), "probability": Decimal(30), "stage": "won",
          "lost_reason": None, "close_date": date(2024, 1, 31), "tags": ["vip", "renewal"]}
SAMPLE_BEFORE = {**SAMPLE, "stage": "negotiation"}


def sample_context() -> MappingContext:
    return MappingContext(SAMPLE, CLOCK, prior_values=SAMPLE_BEFORE)


def examples() -> list[tuple[str, str]]:
    """Every `formula` → `result` pair of the page."""
    return re.findall(r"`([^`]+)` → `([^`]+)`", TEXT)


def documented_functions() -> set[str]:
    """Names in the first column of the function tables: | `NAME(...)` |."""
    return set(re.findall(r"^\| `([A-Z_]+)\(", TEXT, flags=re.MULTILINE))


def test_every_registered_function_is_documented() -> None:
    assert set(FUNCTIONS) - documented_functions() == set()


def test_every_documented_function_exists() -> None:
    assert documented_functions() - set(FUNCTIONS) == set()


def test_every_function_is_documented_with_its_signature() -> None:
    missing = [spec.signature for spec in FUNCTIONS.values()
               if f"`{spec.signature.replace(', ...', ', …')}`" not in TEXT]
    assert missing == []


def test_every_function_has_an_example() -> None:
    used = {name for formula, _ in examples()
            for name in re.findall(r"\b([A-Z_]+)\(", formula)}
    assert set(FUNCTIONS) - used == set()


def test_every_function_has_both_implementations_or_is_python_only() -> None:
    assert set(FUNCTIONS) - IMPLEMENTED == set()
    sql_names = {name for name, spec in FUNCTIONS.items() if spec.sql} - {"BLANK"}
    assert sql_names - set(BUILDERS) == set()


def test_the_page_has_many_examples() -> None:
    assert len(examples()) > 100


@pytest.mark.parametrize(("formula", "expected"), examples())
def test_documented_example_holds(formula: str, expected: str) -> None:
    ctx = sample_context()
    got = compile_formula(formula, SAMPLE_SCOPE).evaluate(ctx)
    want = compile_formula(expected, SAMPLE_SCOPE).evaluate(ctx)
    assert got == want
    assert type(got) is type(want)

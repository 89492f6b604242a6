"""sum_terms: the top-level addends of a sum, as written."""

from __future__ import annotations

import pytest

from engine.formula import FormulaError, sum_terms


@pytest.mark.parametrize(("source", "terms"), [
    ("a + b + c", ["a", "b", "c"]),
    ('CASE(x, "a", 1, 0)\n  + IF(y > 2, 3, 0)', ['CASE(x, "a", 1, 0)', "IF(y > 2, 3, 0)"]),
    ("a * 2 + (b + c) + d", ["a * 2", "(b + c)", "d"]),
    ("a + b - c + d", ["a + b - c", "d"]),  # only a chain of + splits
    ('LEN(")") + LEN("(")', ['LEN(")")', 'LEN("(")']),
    ("a + b * c", ["a", "b * c"]),
])
def test_terms(source: str, terms: list[str]) -> None:
    assert sum_terms(source) == terms


@pytest.mark.parametrize("source", ["a", "a - b", "a * (b + c)", "(a + b)", "-(a + b)",
                                    "IF(a, b + c, 0)"])
def test_not_a_sum(source: str) -> None:
    assert sum_terms(source) is None


def test_syntax_error_is_a_formula_error() -> None:
    with pytest.raises(FormulaError) as info:
        sum_terms("a + ")
    assert (info.value.line, info.value.col) == (1, 4)

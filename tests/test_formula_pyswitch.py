"""IF chains and CASEs on one field (compiled to one dict lookup) and whole-number sums
give what the same choices give unfused: TRIM(stage) is not a plain field read, so the
second spelling of each formula takes the general closures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.formula import MappingContext, compile_formula
from tests.test_formula_python import CLOCK, SCOPE

FUSED = [
    'IF(stage = "lost", 0, IF(AND(stage = "won", amount > 100), 90, CASE(stage, "won", 80, '
    '"open", IF(amount > 5, 60, 50), "won", 1, 0)))',
    'IF(stage = "a", 1, IF(stage = "b", 2))',
    'IF(stage = "a", 1, IF(name = "b", 2, CASE(stage, "b", 3, BLANK(), 4)))',
    'CASE(stage, "a", 1.50, "b", BLANK(), "a", 9)',
    'IF(AND(stage = "a", flag), "yes", CASE(stage, "a", "a-no", "other"))',
    'CASE(stage, "a", 30, "b", 15, 0) + IF(stage = "c", 25, IF(name = "x", 10, 0)) '
    '+ CASE(name, "x", -5, 0)',
    'CASE(stage, "a", 30, "b", BLANK(), 0) + CASE(name, "x", 1, 0)',
    'CASE(stage, "a", 1.0, 0) + CASE(name, "x", 1, 0)',
]
VALUES = [{}, {"stage": "a"}, {"stage": "b", "name": "x"}, {"stage": "c", "name": "x"},
          {"stage": "won", "amount": Decimal(200)}, {"stage": "won", "amount": Decimal(50)},
          {"stage": "open", "amount": Decimal(10)}, {"stage": "open"}, {"stage": "lost"},
          {"stage": "a", "flag": True}, {"stage": "a", "flag": False}, {"name": "x"}]


@pytest.mark.parametrize("source", FUSED)
def test_fused_choices_agree_with_the_general_closures(source: str) -> None:
    fused = compile_formula(source, SCOPE)
    general = compile_formula(source.replace("stage", "TRIM(stage)"), SCOPE)
    for values in VALUES:
        ctx = MappingContext(values, CLOCK)
        got, want = fused.evaluate(ctx), general.evaluate(ctx)
        assert repr(got) == repr(want), (values, got, want)  # same value, type and digits


def test_a_whole_number_sum_is_a_decimal() -> None:
    f = compile_formula('CASE(stage, "a", 30, 0) + CASE(name, "x", 12, 0)', SCOPE)
    assert f.evaluate(MappingContext({"stage": "a", "name": "x"}, CLOCK)) == Decimal(42)
    assert repr(f.evaluate(MappingContext({}, CLOCK))) == "Decimal('0')"


def test_concatenation_keeps_percent_signs_and_braces() -> None:
    f = compile_formula('name & " 100% {x} " & stage & "%s"', SCOPE)
    assert f.evaluate(MappingContext({"name": "a"}, CLOCK)) == "a 100% {x} %s"


@pytest.mark.parametrize("source", [
    'IF(ISBLANK(account.owner.name), "unassigned", account.owner.name & " (" & '
    'account.name & ")")',
    'IF(ISBLANK(name), stage, name & "/" & name & "%")',
    'IF(ISBLANK(name), BLANK(), "[" & name & "]")',
])
def test_a_blank_test_then_joined_text_reads_the_field_once(source: str) -> None:
    fused = compile_formula(source, SCOPE)
    general = compile_formula(source.replace("ISBLANK(", "ISBLANK(TRIM(").replace(
        ", BLANK()", "), BLANK()").replace(', "unassigned"', '), "unassigned"').replace(
        ", stage", "), stage"), SCOPE)
    owners = [None, {"id": 2}, {"id": 2, "name": ""}, {"id": 2, "name": "Ada"}]
    for owner in owners:
        for name in (None, "", "x"):
            values = {"name": name, "stage": "s",
                      "account": {"id": 1, "name": "Acme", "owner": owner}}
            ctx = MappingContext(values, CLOCK)
            assert fused.evaluate(ctx) == general.evaluate(ctx), values

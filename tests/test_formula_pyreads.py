"""Field reads: the direct_values fast path gives what ctx.get gives, edge values included."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

from engine.formula import MappingContext, compile_formula
from tests.test_formula_python import CLOCK, SCOPE

FORMULAS = [
    "amount", "name", "stage", "close", "flag", "tags", "account", "account.name",
    "account.owner.name", "amount * 2 + qty", 'name & "-" & account.owner.name',
    'IF(ISBLANK(account.owner.name), "none", account.owner.name & " (" & account.name & ")")',
    'CASE(stage, "won", 100, "lost", 0, 50) + IF(flag = TRUE, 5, 0)',
]
OWNER = {"id": 3, "name": "Ada"}
RECORDS: list[dict[str, Any]] = [
    {},
    {"amount": Decimal("12.50"), "qty": 3, "name": "x", "stage": "won", "flag": True,
     "close": date(2024, 1, 31), "tags": ["a"], "account": {"id": 7, "name": "Acme",
                                                             "owner": OWNER}},
    {"amount": 5, "qty": Decimal(2), "stage": "lost", "flag": False,
     "account": {"id": 7, "owner": None}},
    {"amount": 2.5, "account": 7},  # an id instead of the nested record: read through get
    {"amount": Decimal("NaN"), "account": {"id": 7, "name": "", "owner": {"id": 3}}},
    {"account": {"id": 7, "owner": {"id": 3, "name": ""}}},
]


def outcome(source: str, values: Mapping[str, object]) -> object:
    try:
        return compile_formula(source, SCOPE).evaluate(MappingContext(values, CLOCK))
    except TypeError as exc:
        return TypeError(str(exc))


@pytest.mark.parametrize("source", FORMULAS)
def test_direct_values_read_what_get_reads(source: str) -> None:
    for values in RECORDS:
        fast = outcome(source, values)
        slow = outcome(source, MappingProxyType(values))  # no direct_values: get() only
        assert MappingContext(values).direct_values is values
        assert MappingContext(MappingProxyType(values)).direct_values is None
        assert repr(fast) == repr(slow), (source, values)


@pytest.mark.parametrize("bad", [{"name": 5}, {"stage": 1}, {"flag": "yes"},
                                 {"account": {"id": 1, "name": 2}}, {"close": "2024-01-01"}])
def test_a_field_of_the_wrong_type_is_refused_either_way(bad: dict[str, Any]) -> None:
    source = {"name": "name", "stage": 'CASE(stage, "won", 1, 0)', "flag": "IF(flag, 1, 0)",
              "account": "account.name", "close": "close"}[next(iter(bad))]
    for values in (bad, MappingProxyType(bad)):
        with pytest.raises(TypeError, match="field holds"):
            compile_formula(source, SCOPE).evaluate(MappingContext(values, CLOCK))

"""The board's filters (engine/web/pages/board_filters.py): parsed from a query string or a
move's form, turned into record conditions and back into the board's address."""

from __future__ import annotations

import pytest

from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest
from engine.runtime.records.query import Condition
from engine.web.pages.board_filters import Filters, parse_filters

VIEWER = Actor(7, "viewer", ("sales_rep",), None)


def test_filters_become_conditions_and_an_address() -> None:
    filters = parse_filters({"owner_id": "3", "department_id": " 12 ", "mine": "1",
                             "stage": "won"})  # other parameters are not the filters' own
    assert filters == Filters(mine=True, owner=3, department=12)
    assert filters.conditions(VIEWER) == (Condition("owner_id", "eq", 7),
                                          Condition("owner_id", "eq", 3),
                                          Condition("department_id", "eq", 12))
    assert filters.query == "?mine=1&owner_id=3&department_id=12"
    assert filters.active


def test_blank_filters_are_no_filters() -> None:
    filters = parse_filters({"owner_id": "", "department_id": "  ", "mine": "0"})
    assert filters == Filters() and filters.conditions(VIEWER) == ()
    assert filters.query == "" and not filters.active


@pytest.mark.parametrize("params", [{"owner_id": "abc"}, {"owner_id": "0"},
                                    {"department_id": "-4"}, {"department_id": "²"},
                                    {"owner_id": "1" * 19}])
def test_a_filter_that_is_not_a_record_number_is_a_bad_request(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_filters(params)
    assert set(caught.value.fields) == set(params)
    assert "Choose the owner and the department" in caught.value.message

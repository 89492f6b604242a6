"""An import's compiled cell converters (engine/runtime/imports/converters.py): the fast
converter of every field type gives the generic converter's value — or the same problem —
for any text, with the install's date order, currency and zone."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.metadata.errors import SourceLoc
from engine.metadata.labels import Label
from engine.metadata.model import Field
from engine.runtime.imports.converters import (
    MEMO_SIZE,
    Converter,
    column_converter,
    generic_converter,
)
from engine.runtime.values import InputRules, ValueProblem
from engine.types import FieldType

_LOC = SourceLoc("test.yaml", 1, 1)
_STAGE_LABELS = (("prospecting", Label((("en", "Prospecting"), ("zh", "初步接洽")))),
                 ("closed_won", Label((("en", "Closed won"), ("zh", "赢单")))))


def _field(ftype: FieldType, **kw: Any) -> Field:
    return Field(f"f_{ftype.value}", ftype, Label.of(None, "F"), _LOC, **kw)


FIELDS: list[Field] = [
    _field(FieldType.TEXT), _field(FieldType.TEXT, max_length=5),
    _field(FieldType.TEXTAREA), _field(FieldType.EMAIL), _field(FieldType.PHONE),
    _field(FieldType.URL),
    _field(FieldType.INTEGER), _field(FieldType.INTEGER, min=Decimal(-5), max=Decimal(100)),
    _field(FieldType.DECIMAL), _field(FieldType.MONEY),
    _field(FieldType.MONEY, min=Decimal("0.5"), max=Decimal(1000)),
    _field(FieldType.PERCENT), _field(FieldType.PERCENT, min=Decimal(0), max=Decimal(100)),
    _field(FieldType.BOOLEAN), _field(FieldType.DATE), _field(FieldType.DATETIME),
    _field(FieldType.CHOICE, options=("prospecting", "closed_won", "other"),
           option_labels=_STAGE_LABELS),
    _field(FieldType.MULTICHOICE, options=("prospecting", "closed_won", "other"),
           option_labels=_STAGE_LABELS),
]
RULES = [(InputRules(True, "CNY"), ZoneInfo("Asia/Shanghai")),
         (InputRules(False, "USD"), ZoneInfo("America/New_York"))]
PAIRS: list[tuple[str, Converter, Converter]] = [
    (f"{f.type.value}{i}/{r.currency}", generic_converter(f, r, z), column_converter(f, r, z))
    for i, f in enumerate(FIELDS) for r, z in RULES]

# Text near each type's shapes, so the fast paths and the rule's other forms are both hit.
_PIECES = ["", " ", "-", "+", ",", ".", "0", "1", "12", "123", "1,234", ",567", ".5", "00",
           "9" * 19, "%", "万", "亿", "¥", "$", "RMB", "usd", "(", ")", "e5", "E-3", "NaN",
           "2025", "-03", "-31", "/", "年", "3月", "31日", "T", " ", "14:30", ":00", "Z",
           "z", "+08:00", "-05:00", "下午", "PM", "1900-01-01", "9999-12-31", "0001-01-01",
           "2025-03-31", "31/12/2025", "5/12/2026", "20261205", "2026-W49-6",
           "2025-03-31T23:59:59", "2025-03-31 14:30:00+14:00", "是", "否", "yes", "TRUE",
           "√", "prospecting", "Prospecting", "closed_won", "Closed Won", "赢单", "初步接洽",
           "other", "x", "、", "；", "\n", "\x00", "\u3000", "\uff11", "é", "e\u0301",
           "a@b.co", "http://x.cn", "138 0013 8000", "abcdef"]
texts = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(_PIECES), max_size=6).map("".join),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**22), max_value=10**22).map(lambda n: f"{n:,}"),
    st.datetimes(min_value=datetime(1, 1, 1)).map(str),
    st.dates().map(date.isoformat),
)


def outcome(convert: Converter, text: str) -> tuple[Any, ...]:
    """The value with its type and shape (a Decimal's exponent, a datetime's offset), or
    the problem's text and message id."""
    try:
        value = convert(text)
    except ValueProblem as e:
        return ("problem", str(e.message), getattr(e.message, "id", None))
    shape: Any = None
    if isinstance(value, Decimal):
        shape = value.as_tuple()
    elif isinstance(value, datetime):
        shape = (value.utcoffset(), value.isoformat())
    return ("value", type(value), value, shape)


@pytest.mark.parametrize(("name", "generic", "fast"), PAIRS, ids=[p[0] for p in PAIRS])
@settings(max_examples=200, deadline=None)
@given(text=texts)
@example(text="2025-03-31")
@example(text=" 2025-03-31 ")
@example(text="1,234.50")
@example(text="-0")
@example(text="-0.00")
@example(text="0.005")
@example(text="1e3")
@example(text="  ")
@example(text="\u3000")
@example(text="\x00")
@example(text="12345678")
@example(text="9999-12-31T23:30:00-05:00")
@example(text="1900-01-01T00:00:00")
@example(text="Closed Won")
@example(text="赢单, other")
@example(text="是")
@example(text="30%")
def test_the_fast_converter_agrees_with_the_rule(name: str, generic: Converter,
                                                 fast: Converter, text: str) -> None:
    expected = outcome(generic, text)
    assert outcome(fast, text) == expected
    assert outcome(fast, text) == expected  # again: a remembered text reads the same


def test_a_remembered_list_is_each_callers_own() -> None:
    f = FIELDS[-1]
    rules, zone = RULES[0]
    convert = column_converter(f, rules, zone)
    first = convert("赢单, other")
    first.append("changed")
    assert convert("赢单, other") == ["closed_won", "other"]


def test_the_memo_is_bounded_and_past_it_texts_still_read() -> None:
    f = _field(FieldType.DATE)
    rules, zone = RULES[0]
    convert = column_converter(f, rules, zone)
    days = [date(2000, 1, 1).fromordinal(date(2000, 1, 1).toordinal() + i)
            for i in range(MEMO_SIZE + 10)]
    assert [convert(d.isoformat()) for d in days] == days
    assert convert("2000/1/2") == date(2000, 1, 2)
    with pytest.raises(ValueProblem):
        convert("2000-13-01")

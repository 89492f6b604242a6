"""Dates, times and numbers as people type them (engine/runtime/value_text.py), and the field
coercers that read them (engine/runtime/values.py): each supported spelling reads back the
value it was written from, and no text raises anything but a problem for the user."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from engine.metadata.errors import SourceLoc
from engine.metadata.model import Field, Label
from engine.runtime.value_text import (
    CurrencyMismatch,
    parse_date_text,
    parse_datetime_text,
    parse_number_text,
)
from engine.runtime.values import InputRules, ValueProblem, coercer_for
from engine.types import FieldType

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FULL = ("January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December")


def field(ftype: FieldType, **options: Any) -> Field:
    return Field(name="x", type=ftype, label=Label.of(None, "X"),
                 loc=SourceLoc("test.yaml", 1, 1), **options)


def spellings(d: date, *, day_first: bool) -> list[str]:
    """Every way the module reads a date, written for `d`."""
    y, m, dd = d.year, d.month, d.day
    out = [d.isoformat(), f"{y}/{m}/{dd}", f"{y}.{m}.{dd}", f"{y}-{m}-{dd}",
           f"{y}年{m}月{dd}日", f"{y}{m:02}{dd:02}", f"{dd} {MONTHS[m - 1]} {y}",
           f"{MONTHS[m - 1]} {dd}, {y}", f"{FULL[m - 1]} {dd}, {y}",
           f"{dd:02}-{MONTHS[m - 1]}-{y}"]
    out.append(f"{dd}/{m}/{y}" if day_first else f"{m}/{dd}/{y}")
    out.append(f"{dd:02}.{m:02}.{y}" if day_first else f"{m:02}.{dd:02}.{y}")
    if dd > 12:  # unambiguous either way
        out += [f"{dd}/{m}/{y}", f"{m}/{dd}/{y}"]
    return out


@settings(max_examples=300)
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(9999, 12, 31)), st.booleans())
@example(date(2026, 12, 5), True)
@example(date(2026, 12, 5), False)
@example(date(2024, 2, 29), True)
def test_every_date_spelling_reads_back(d: date, day_first: bool) -> None:
    coerce = coercer_for(field(FieldType.DATE), InputRules(day_first=day_first))
    for text in spellings(d, day_first=day_first):
        assert parse_date_text(text, day_first=day_first) == d, text
        assert coerce(text) == d, text
        assert coerce(text.translate(_FULL_WIDTH)) == d, text  # typed with a Chinese IME


_FULL_WIDTH = {ord(c): ord(c) + 0xFEE0 for c in "0123456789/.-,"}


@pytest.mark.parametrize(("text", "day_first", "expected"), [
    ("5/12/2026", True, date(2026, 12, 5)), ("5/12/2026", False, date(2026, 5, 12)),
    ("13/12/2026", False, date(2026, 12, 13)), ("12/13/2026", True, date(2026, 12, 13)),
    ("2026年1月5号", True, date(2026, 1, 5)), ("2026 / 1 / 5", True, date(2026, 1, 5)),
    ("5th Dec 2026", True, date(2026, 12, 5)), ("Sept 5 2026", True, date(2026, 9, 5)),
])
def test_day_and_month(text: str, day_first: bool, expected: date) -> None:
    assert parse_date_text(text, day_first=day_first) == expected


@pytest.mark.parametrize("text", ["5/12/26", "2026/13/1", "2026/2/30", "31/31/2026",
                                  "Foo 5, 2026", "2026年13月1日", "1/2", "2026", "12345678",
                                  "tomorrow", ""])
def test_dates_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date_text(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026/12/5 14:30", datetime(2026, 12, 5, 14, 30)),
    ("2026/12/5 14:30:05", datetime(2026, 12, 5, 14, 30, 5)),
    ("2026/12/5 14:30:05.25", datetime(2026, 12, 5, 14, 30, 5, 250000)),
    ("5/12/2026 2:30 PM", datetime(2026, 12, 5, 14, 30)),
    ("5/12/2026 12:10 am", datetime(2026, 12, 5, 0, 10)),
    ("5/12/2026 12:10 pm", datetime(2026, 12, 5, 12, 10)),
    ("2026年12月5日 下午2:30", datetime(2026, 12, 5, 14, 30)),
    ("2026年12月5日上午9:05", datetime(2026, 12, 5, 9, 5)),
    ("2026年12月5日 14时30分", datetime(2026, 12, 5, 14, 30)),
    ("2026/12/5", datetime(2026, 12, 5)),
    ("2026/12/5 14:30 +08:00", datetime(2026, 12, 5, 14, 30,
                                        tzinfo=timezone(timedelta(hours=8)))),
    ("2026/12/5 14:30Z", datetime(2026, 12, 5, 14, 30, tzinfo=UTC)),
])
def test_datetimes(text: str, expected: datetime) -> None:
    assert parse_datetime_text(text) == expected


@pytest.mark.parametrize("text", ["2026/12/5 25:00", "2026/12/5 13:00 PM", "2026/12/5 14:60",
                                  "2026/12/5 14:30 +25:00", "2026/12/5 0:30 am"])
def test_datetimes_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime_text(text)


def test_the_datetime_coercer_reads_typed_times_as_utc_without_an_offset() -> None:
    coerce = coercer_for(field(FieldType.DATETIME))
    assert coerce("2026/12/5 14:30") == datetime(2026, 12, 5, 14, 30, tzinfo=UTC)
    assert coerce("2026年12月5日 下午2:30 +08:00") == datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
    with pytest.raises(ValueProblem, match="must be a date and time"):
        coerce("2026/12/5 99:99")


# -- numbers ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("1234.5", "1234.5"), ("1,234.5", "1234.5"), ("1 234,5", "1234.5"), ("1.234,5", "1234.5"),
    ("1'234.5", "1234.5"), ("1.234.567", "1234567"), ("1 234 567", "1234567"),
    ("(1,200)", "-1200"), ("-1,200", "-1200"), ("+7", "7"), ("12万", "120000"),
    ("1.5亿", "150000000"), ("3.5 万", "35000"), ("\uff11\uff12\uff13", "123"), ("1e3", "1E+3"),
    ("\u00a01 234,50\u00a0", "1234.50"),
])
def test_numbers(text: str, expected: str) -> None:
    assert parse_number_text(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["1,5", "1,50", "12,34,567", ",100", "1.2.3", "1 00",
                                  "1,234,5", "abc", "万", "()", "1 234.567,5"])
def test_numbers_refused(text: str) -> None:
    with pytest.raises(InvalidOperation):
        parse_number_text(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("¥1,234.50", "1234.50"), ("\uffe51,234.50", "1234.50"), ("RMB 12,000", "12000"),
    ("rmb12000", "12000"), ("12,000 元", "12000"), ("12万元", "120000"),
    ("人民币 500", "500"), ("CNY 500", "500"), ("500 CNY", "500"), ("-¥1,200", "-1200"),
    ("¥-1,200", "-1200"), ("(¥1,200)", "-1200"),
])
def test_money_in_the_installs_currency(text: str, expected: str) -> None:
    assert parse_number_text(text, currency="CNY") == Decimal(expected)


@pytest.mark.parametrize(("text", "mark"), [("$100", "$"), ("US$ 100", "us$"),
                                            ("100 USD", "usd"), ("€5", "€"), ("100美元", "美元")])
def test_money_in_another_currency_is_refused(text: str, mark: str) -> None:
    with pytest.raises(CurrencyMismatch) as info:
        parse_number_text(text, currency="CNY")
    assert info.value.mark == mark
    assert parse_number_text(text, currency={"$": "USD", "us$": "USD", "usd": "USD",
                                             "€": "EUR", "美元": "USD"}[mark]) > 0


@pytest.mark.parametrize("text", ["12abc", "abc 12", "12 xyz"])
def test_three_letters_that_name_no_currency_are_no_number(text: str) -> None:
    """Only a currency symbol, word or ISO 4217 code is a currency mark: `12abc` is not an
    amount in a currency "ABC" but a typing mistake ("must be a number")."""
    with pytest.raises(InvalidOperation):
        parse_number_text(text, currency="CNY")


@settings(max_examples=300)
@given(st.decimals(min_value=Decimal("-9999999999999.99"), max_value=Decimal("9999999999999.99"),
                   places=2, allow_nan=False, allow_infinity=False))
def test_money_spellings_read_back(value: Decimal) -> None:
    money = coercer_for(field(FieldType.MONEY), InputRules(currency="CNY"))
    plain = f"{abs(value):,.2f}"
    sign = "-" if value < 0 else ""
    spaced = plain.replace(",", " ").replace(".", ",")
    dotted = plain.replace(",", "_").replace(".", ",").replace("_", ".")
    texts = [f"{sign}{plain}", f"{sign}¥{plain}", f"RMB {sign}{plain}", f"{sign}{plain}元",
             f"{sign}{abs(value)}"]
    if abs(value) >= 1000:  # a decimal comma only after grouped thousands: 1,5 is refused
        texts += [f"{sign}{spaced}", f"{sign}{dotted}"]
    for text in texts:
        assert money(text) == value, text
    if value < 0:
        assert money(f"({plain})") == value


@settings(max_examples=200)
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_wan_reads_back(value: int) -> None:
    integer = coercer_for(field(FieldType.INTEGER))
    if value % 10_000 == 0:
        assert integer(f"{value // 10_000}万") == value
    assert integer(f"{value:,}".replace(",", " ")) == value


@pytest.mark.parametrize(("text", "expected"), [("是", True), ("否", False), ("对", True),
                                                ("错", False), ("√", True), ("\u00d7", False),
                                                ("Y", True), ("n", False)])
def test_booleans(text: str, expected: bool) -> None:
    assert coercer_for(field(FieldType.BOOLEAN))(text) is expected


def test_multichoice_separators() -> None:
    coerce = coercer_for(field(FieldType.MULTICHOICE, options=("a", "b", "c")))
    assert coerce("a;b") == ["a", "b"]
    assert coerce("c、a") == ["a", "c"]
    assert coerce("b\uff0cc\uff1ba") == ["a", "b", "c"]


def test_percent_full_width() -> None:
    assert coercer_for(field(FieldType.PERCENT))("\uff13\uff10\uff05") == Decimal("30.0000")


_TYPES = [t for t in FieldType if t not in (FieldType.CHOICE, FieldType.MULTICHOICE)]


@settings(max_examples=400)
@given(st.sampled_from(_TYPES), st.text(max_size=40), st.booleans())
@example(FieldType.MONEY, "1e999999999", True)
@example(FieldType.DATE, "9999/12/31", True)
@example(FieldType.DATETIME, "9999/12/31 23:59 -05:00", True)
@example(FieldType.DATETIME, "0001/1/1 00:00 +01:00", True)
@example(FieldType.INTEGER, "1e30万", True)
@example(FieldType.MONEY, "(((1)))", True)
@example(FieldType.DATE, "0000/1/1", True)
def test_any_text_is_a_value_or_a_problem(ftype: FieldType, text: str,
                                          day_first: bool) -> None:
    coerce = coercer_for(field(ftype), InputRules(day_first=day_first))
    try:
        coerce(text)
    except ValueProblem as e:
        assert str(e)


@pytest.mark.parametrize("text", ["a" + " " * 9_998 + "a", "1" + " " * 5_000 + "1" * 4_000,
                                  "2026/1/1 " + "1:" * 4_000, "上午" * 3_000, "T" * 10_000])
def test_long_cells_are_refused_at_once(text: str) -> None:
    """A cell may hold 10,000 characters: the date patterns are not tried on text that long
    (the time pattern backtracked for minutes on 10,000 spaces between two letters)."""
    with pytest.raises(ValueError):
        parse_datetime_text(text)
    with pytest.raises(ValueError):
        parse_date_text(text)
    with pytest.raises(ValueProblem):
        coercer_for(field(FieldType.DATETIME))(text)


def test_the_api_reads_typed_values_with_the_installs_rules(api: TestClient) -> None:
    """The records service reads what a spreadsheet holds, by settings.yaml's rules (the
    shipped config: CNY, day first)."""
    resp = api.post("/api/account", json={"name": "上海汽车", "annual_revenue": "¥12万",
                                          "credit_limit": "RMB 1,234.50", "employees": "1 200"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["annual_revenue"], body["credit_limit"], body["employees"]) == \
        ("120000.00", "1234.50", 1200)
    deal = api.post("/api/opportunity", json={"name": "X", "account": body["id"],
                                              "close_date": "5/12/2026", "amount": "$5"})
    assert deal.status_code == 422
    assert "another currency" in deal.json()["error"]["fields"]["amount"]
    deal = api.post("/api/opportunity", json={"name": "X", "account": body["id"],
                                              "close_date": "5/12/2026"})
    assert deal.status_code == 201, deal.text
    assert deal.json()["close_date"] == "2026-12-05"

"""Field coercers (engine/runtime/values.py): what each type accepts, what it refuses and why.

Inputs come from JSON bodies (numbers arrive as str, see the API), HTML forms and CSV cells
(always str) and Python callers (int, Decimal, datetime). Blank input is None for every type.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.fieldtypes import Regarding
from engine.metadata.errors import SourceLoc
from engine.metadata.model import Field, Label
from engine.runtime.access import SYSTEM
from engine.runtime.records.query import parse_list_params
from engine.runtime.values import ValueProblem, coercer_for, is_blank, record_json, to_json
from engine.types import FieldType
from tests.conftest import Env, EnvFactory

STAGES = ("prospecting", "qualification", "proposal", "negotiation", "won", "lost")
INTERESTS = ("equipment", "service", "parts", "financing", "training")


def make_field(ftype: FieldType, **options: Any) -> Field:
    return Field(name="x", type=ftype, label=Label.of(None, "X"),
                 loc=SourceLoc("test.yaml", 1, 1), **options)


def coerce(ftype: FieldType, value: Any, **options: Any) -> Any:
    return coercer_for(make_field(ftype, **options))(value)


def problem(ftype: FieldType, value: Any, **options: Any) -> str:
    with pytest.raises(ValueProblem) as info:
        coerce(ftype, value, **options)
    return str(info.value)


# -- blanks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ftype", list(FieldType))
@pytest.mark.parametrize("blank", [None, "", "   ", "\t\n", []])
def test_blank_input_is_none_for_every_type(ftype: FieldType, blank: Any) -> None:
    options = {"options": ("a", "b")} if ftype in (FieldType.CHOICE,
                                                   FieldType.MULTICHOICE) else {}
    assert coerce(ftype, blank, **options) is None


def test_is_blank() -> None:
    assert is_blank(None) and is_blank("") and is_blank("  ") and is_blank([])
    assert not is_blank(0) and not is_blank(False) and not is_blank("0") and not is_blank([""])


def test_value_problem_is_a_value_error() -> None:
    assert issubclass(ValueProblem, ValueError)


# -- text ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "stored"), [
    ("  Acme  ", "Acme"),
    ("销售机会", "销售机会"),
    (42, "42"),
    (Decimal("1.50"), "1.50"),
])
def test_text_accepts(raw: Any, stored: str) -> None:
    assert coerce(FieldType.TEXT, raw) == stored


def test_textarea_keeps_surrounding_whitespace() -> None:
    assert coerce(FieldType.TEXTAREA, "  line one\nline two\n") == "  line one\nline two\n"


@pytest.mark.parametrize("raw", [True, False, 1.5, {"a": 1}, ["a"], date(2025, 1, 1)])
def test_text_refuses_non_text(raw: Any) -> None:
    assert problem(FieldType.TEXT, raw) == "must be text"


def test_text_refuses_nul() -> None:
    assert problem(FieldType.TEXT, "a\x00b") == "must not contain NUL characters"
    assert problem(FieldType.TEXTAREA, "a\x00b") == "must not contain NUL characters"


def test_text_max_length_counts_characters_after_stripping() -> None:
    assert coerce(FieldType.TEXT, "  abcde  ", max_length=5) == "abcde"
    assert coerce(FieldType.TEXT, "销售机会", max_length=4) == "销售机会"
    assert problem(FieldType.TEXT, "abcdef", max_length=5) == \
        "must be at most 5 characters (got 6)"


@pytest.mark.parametrize(("ftype", "limit"), [
    (FieldType.TEXT, 255), (FieldType.EMAIL, 254), (FieldType.PHONE, 40),
    (FieldType.URL, 2048), (FieldType.TEXTAREA, 100_000),
])
def test_text_default_limits(ftype: FieldType, limit: int) -> None:
    assert problem(ftype, "9" * (limit + 1)) == \
        f"must be at most {limit} characters (got {limit + 1})"


def test_text_refuses_an_int_too_long_to_print() -> None:
    # str() of an int with more than 4300 digits raises ValueError in Python 3.11
    assert problem(FieldType.TEXT, 10**5000) == "must be at most 255 characters"


@pytest.mark.parametrize("raw", ["name@example.com", "first.last+tag@sub.example.co",
                                 "  X@Example.ORG "])
def test_email_accepts(raw: str) -> None:
    assert coerce(FieldType.EMAIL, raw) == raw.strip()


@pytest.mark.parametrize("raw", ["name", "name@", "@example.com", "name@example",
                                 "a b@example.com", "name@exa mple.com", "name@-example.com",
                                 "name@example..com", "<name@example.com>", "a@b@example.com"])
def test_email_refuses(raw: str) -> None:
    assert problem(FieldType.EMAIL, raw) == "must be an email address like name@example.com"


@pytest.mark.parametrize("raw", ["https://example.com", "http://example.com/a?q=1#x",
                                 "HTTPS://EXAMPLE.COM"])
def test_url_accepts(raw: str) -> None:
    assert coerce(FieldType.URL, raw) == raw


@pytest.mark.parametrize("raw", ["example.com", "ftp://example.com", "javascript:alert(1)",
                                 "http://", "https:// example.com", "https://exa mple.com",
                                 "//example.com"])
def test_url_refuses(raw: str) -> None:
    assert problem(FieldType.URL, raw) == "must be a web address starting with http:// or https://"


@pytest.mark.parametrize("raw", ["+1 (555) 123-4567", "030/1234567", "+86 10 1234 5678",
                                 "123", "0049.30.123"])
def test_phone_accepts(raw: str) -> None:
    assert coerce(FieldType.PHONE, raw) == raw


@pytest.mark.parametrize("raw", ["call me", "12", "1-2", "+-()", "555 1234 ext 5", "++49 30 1"])
def test_phone_refuses(raw: str) -> None:
    assert problem(FieldType.PHONE, raw) == "must be a phone number (digits, spaces, + ( ) - . /)"


# -- integer ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "stored"), [
    ("42", 42), (" -7 ", -7), ("+3", 3), ("1,000", 1000), ("1,234,567", 1_234_567),
    ("12.0", 12), ("1e3", 1000), (42, 42), (42.0, 42), (Decimal("42.000"), 42),
    (2**63 - 1, 2**63 - 1), ("9223372036854775807", 2**63 - 1), (-(2**63) + 1, -(2**63) + 1),
])
def test_integer_accepts(raw: Any, stored: int) -> None:
    result = coerce(FieldType.INTEGER, raw)
    assert result == stored and type(result) is int


@pytest.mark.parametrize("raw", [
    "12.5", 12.5, Decimal("0.1"), "1e-999999999", "abc", "0x10", "1,5", "1,50", "12,34,567",
    ",100", "1.2.3",
    "NaN", "nan", "Infinity", "-inf", "sNaN", float("nan"), float("inf"),
    True, False, [1], {"n": 1}, date(2025, 1, 1),
])
def test_integer_refuses(raw: Any) -> None:
    assert problem(FieldType.INTEGER, raw) == "must be a whole number"


@pytest.mark.parametrize("raw", [2**63, -(2**63), "9223372036854775808", "1e19", 1e300,
                                 "1e999999999", Decimal("-1e999999999")])
def test_integer_refuses_huge(raw: Any) -> None:
    # "1e999999999" used to be turned into a 10**999999999 int (a hang) before the check
    assert problem(FieldType.INTEGER, raw) == "is too large"


def test_integer_min_max_are_inclusive() -> None:
    bounds = {"min": Decimal(0), "max": Decimal(1440)}
    assert coerce(FieldType.INTEGER, "0", **bounds) == 0
    assert coerce(FieldType.INTEGER, "1440", **bounds) == 1440
    assert problem(FieldType.INTEGER, "-1", **bounds) == "must be at least 0"
    assert problem(FieldType.INTEGER, 1441, **bounds) == "must be at most 1440"


# -- decimal, money, percent -----------------------------------------------------------------

@pytest.mark.parametrize(("raw", "stored"), [
    ("19.99", "19.99"), ("0.1", "0.10"), (19.99, "19.99"), (10, "10.00"), ("10", "10.00"),
    (Decimal("0.1") + Decimal("0.2"), "0.30"), ("1,234.50", "1234.50"), ("1,234", "1234.00"),
    ("1E+2", "100.00"), (" -5.5 ", "-5.50"), (".5", "0.50"), ("5.", "5.00"),
    ("9999999999999.99", "9999999999999.99"), ("-9999999999999.99", "-9999999999999.99"),
    ("1.50000", "1.50"),
])
def test_money_accepts(raw: Any, stored: str) -> None:
    result = coerce(FieldType.MONEY, raw)
    assert isinstance(result, Decimal)
    assert str(result) == stored


@pytest.mark.parametrize("raw", ["-0", "-0.00", Decimal("-0"), -0.0])
def test_money_negative_zero_is_zero(raw: Any) -> None:
    result = coerce(FieldType.MONEY, raw)
    assert str(result) == "0.00" and to_json(result) == "0.00"


@pytest.mark.parametrize("raw", ["1.005", "0.001", 0.1 + 0.2, Decimal("19.999"), "1e-3",
                                 "1e-999999999"])
def test_money_refuses_a_third_decimal_place(raw: Any) -> None:
    # 0.1 + 0.2 as a float is 0.30000000000000004: refused, never silently rounded
    assert problem(FieldType.MONEY, raw) == "must have at most 2 decimal places"


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "inf", "sNaN",
                                 float("nan"), float("-inf"), Decimal("NaN")])
def test_money_refuses_non_finite(raw: Any) -> None:
    assert problem(FieldType.MONEY, raw) == "must be a finite number"


@pytest.mark.parametrize("raw", ["abc", "1,5", "1,50", "1.2.3", "12%", "1 00",
                                 True, False, {"v": 1}, ["1"], date(2025, 1, 1)])
def test_money_refuses_non_numbers(raw: Any) -> None:
    assert problem(FieldType.MONEY, raw) == "must be a number"


def test_money_refuses_another_currencys_mark() -> None:
    # the install's currency is CNY by default: a dollar amount is not silently yuan
    assert problem(FieldType.MONEY, "$100") == \
        "is written in another currency ($); amounts here are in CNY and are not converted"


@pytest.mark.parametrize("raw", ["10000000000000", "-10000000000000", "1e999999999",
                                 pytest.param(10**5000, id="10**5000"), 1e300])
def test_money_refuses_huge(raw: Any) -> None:
    # "1e999999999" used to raise decimal.Overflow from abs() instead of a ValueProblem
    assert problem(FieldType.MONEY, raw) == "must be less than 10,000,000,000,000 in size"


def test_money_min_max() -> None:
    bounds = {"min": Decimal(0), "max": Decimal(100)}
    assert str(coerce(FieldType.MONEY, "100", **bounds)) == "100.00"
    assert problem(FieldType.MONEY, "-0.01", **bounds) == "must be at least 0"
    assert problem(FieldType.MONEY, "100.01", **bounds) == "must be at most 100"


def test_decimal_and_percent_shapes() -> None:
    assert str(coerce(FieldType.DECIMAL, "1.2345")) == "1.2345"
    assert problem(FieldType.DECIMAL, "1.23456") == "must have at most 4 decimal places"
    assert problem(FieldType.DECIMAL, "100000000000") == \
        "must be less than 100,000,000,000 in size"
    assert str(coerce(FieldType.PERCENT, "12.5%")) == "12.5000"
    assert str(coerce(FieldType.PERCENT, " 12.5 % ")) == "12.5000"
    assert str(coerce(FieldType.PERCENT, 50)) == "50.0000"
    assert problem(FieldType.PERCENT, "0.12345") == "must have at most 4 decimal places"
    assert problem(FieldType.PERCENT, "100000") == "must be less than 100,000 in size"
    assert problem(FieldType.PERCENT, "%") == "must be a number"
    assert problem(FieldType.MONEY, "12%") == "must be a number"


@given(st.decimals(min_value=Decimal("-9999999999999.99"), max_value=Decimal("9999999999999.99"),
                   places=2, allow_nan=False, allow_infinity=False))
def test_money_round_trips_its_own_text_exactly(value: Decimal) -> None:
    money = coercer_for(make_field(FieldType.MONEY))
    assert money(value) == value
    assert money(str(value)) == value
    assert money(f"{value:,}") == value  # with thousands separators
    assert money(to_json(money(value))) == value


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_integer_round_trips_text_with_and_without_separators(value: int) -> None:
    integer = coercer_for(make_field(FieldType.INTEGER))
    assert integer(str(value)) == value
    assert integer(f"{value:,}") == value


# -- boolean ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [True, 1, "true", "TRUE", " yes ", "Y", "on", "t", "1"])
def test_boolean_true(raw: Any) -> None:
    assert coerce(FieldType.BOOLEAN, raw) is True


@pytest.mark.parametrize("raw", [False, 0, "false", "No", "n", "OFF", "f", "0"])
def test_boolean_false(raw: Any) -> None:
    assert coerce(FieldType.BOOLEAN, raw) is False


@pytest.mark.parametrize("raw", [2, -1, 1.0, Decimal(1), "maybe", "ja", ["true"], {"v": True}])
def test_boolean_refuses(raw: Any) -> None:
    assert problem(FieldType.BOOLEAN, raw) == "must be true or false"


# -- date and datetime -----------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "stored"), [
    ("2025-03-31", date(2025, 3, 31)),
    (" 2024-02-29 ", date(2024, 2, 29)),
    (date(2025, 1, 2), date(2025, 1, 2)),
    (datetime(2025, 3, 31, 23, 30, tzinfo=UTC), date(2025, 3, 31)),
])
def test_date_accepts(raw: Any, stored: date) -> None:
    result = coerce(FieldType.DATE, raw)
    assert result == stored and type(result) is date


@pytest.mark.parametrize("raw", ["2025-02-30", "2023-02-29", "31/02/2025", "2025-13-01",
                                 "13/13/2025", "tomorrow", 20250331, 1.5, ["2025-03-31"]])
def test_date_refuses(raw: Any) -> None:
    assert problem(FieldType.DATE, raw) == "must be a date like 2025-03-31"


@pytest.mark.parametrize(("raw", "stored"), [
    ("2025-03-31T14:30:00Z", datetime(2025, 3, 31, 14, 30, tzinfo=UTC)),
    ("2025-03-31T14:30:00z", datetime(2025, 3, 31, 14, 30, tzinfo=UTC)),
    ("2025-03-31T14:30:00+08:00", datetime(2025, 3, 31, 6, 30, tzinfo=UTC)),
    ("2025-03-31T14:30:00-05:30", datetime(2025, 3, 31, 20, 0, tzinfo=UTC)),
    ("2025-03-31T14:30:00", datetime(2025, 3, 31, 14, 30, tzinfo=UTC)),  # naive: UTC
    ("2025-03-31 14:30", datetime(2025, 3, 31, 14, 30, tzinfo=UTC)),
    ("2025-03-31", datetime(2025, 3, 31, tzinfo=UTC)),
    ("2025-03-31T14:30:00.123456Z", datetime(2025, 3, 31, 14, 30, 0, 123456, tzinfo=UTC)),
    (datetime(2025, 3, 31, 14, 30), datetime(2025, 3, 31, 14, 30, tzinfo=UTC)),
    (datetime(2025, 4, 1, 1, 0, tzinfo=timezone(timedelta(hours=9))),
     datetime(2025, 3, 31, 16, 0, tzinfo=UTC)),
    ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
])
def test_datetime_accepts_and_stores_utc(raw: Any, stored: datetime) -> None:
    result = coerce(FieldType.DATETIME, raw)
    assert result == stored
    assert result.utcoffset() == timedelta(0) and result.tzinfo is UTC


@pytest.mark.parametrize("raw", ["31.02.2025 14:30", "2025-03-31T25:00", "2025-02-30T10:00",
                                 "now", 1743431400, 1.5, date(2025, 3, 31)])
def test_datetime_refuses(raw: Any) -> None:
    assert problem(FieldType.DATETIME, raw) == "must be a date and time like 2025-03-31T14:30:00Z"


@pytest.mark.parametrize("raw", [
    "1899-12-31T23:59:59Z",
    "1900-01-01T00:00:00+05:00",   # 1899 in UTC: the range is checked after conversion
    "9999-12-31T23:00:00-05:00",   # the year 10000 in UTC: used to raise OverflowError
    "0001-01-01T00:00:00+01:00",   # before the year 1 in UTC: used to raise OverflowError
])
def test_datetime_year_range_in_utc(raw: str) -> None:
    assert problem(FieldType.DATETIME, raw) == "must be between the years 1900 and 9999"


# -- choice and multichoice ------------------------------------------------------------------

def test_choice() -> None:
    assert coerce(FieldType.CHOICE, "won", options=STAGES) == "won"
    assert coerce(FieldType.CHOICE, " won ", options=STAGES) == "won"
    message = "must be one of: prospecting, qualification, proposal, negotiation, won, lost"
    for raw in ("Won", "closed", 1, True, ["won"]):
        assert problem(FieldType.CHOICE, raw, options=STAGES) == message


@pytest.mark.parametrize(("raw", "stored"), [
    (["service", "equipment"], ["equipment", "service"]),  # stored in option order
    ("training, parts", ["parts", "training"]),
    (("parts", "parts", " parts "), ["parts"]),
    (["financing"], ["financing"]),
    ("equipment,,", ["equipment"]),
])
def test_multichoice_accepts(raw: Any, stored: list[str]) -> None:
    assert coerce(FieldType.MULTICHOICE, raw, options=INTERESTS) == stored


@pytest.mark.parametrize("raw", [",", " , ", [" ", ""]])
def test_multichoice_nothing_chosen_is_blank(raw: Any) -> None:
    # used to be [] — not None — so a required multichoice could be blanked on update
    assert coerce(FieldType.MULTICHOICE, raw, options=INTERESTS) is None


def test_multichoice_refuses() -> None:
    shown = "equipment, service, parts, financing, training"
    assert problem(FieldType.MULTICHOICE, ["x", "parts", "a"], options=INTERESTS) == \
        f"a, x not among the options: {shown}"
    assert problem(FieldType.MULTICHOICE, "Parts", options=INTERESTS) == \
        f"Parts not among the options: {shown}"
    for raw in (5, [1], {"parts": True}, True):
        assert problem(FieldType.MULTICHOICE, raw, options=INTERESTS) == \
            f"must be a list of options from: {shown}"


# -- links -----------------------------------------------------------------------------------

@pytest.mark.parametrize("ftype", [FieldType.REFERENCE, FieldType.USER, FieldType.DEPARTMENT])
def test_links(ftype: FieldType) -> None:
    assert coerce(ftype, 5) == 5
    assert coerce(ftype, " 7 ") == 7
    assert coerce(ftype, {"id": 9, "name": "x"}) == 9
    assert coerce(ftype, 2**63 - 1) == 2**63 - 1
    for raw in (0, -1, 2**63, "abc", "5.0", 5.0, True, "²", "١٢", {"name": "x"}, [5]):
        assert problem(ftype, raw) == "must be a record id", raw


# -- to_json ---------------------------------------------------------------------------------

def test_to_json() -> None:
    assert to_json(Decimal("19.90")) == "19.90"
    assert to_json(datetime(2025, 3, 31, 22, 30, tzinfo=timezone(timedelta(hours=8)))) == \
        "2025-03-31T14:30:00Z"
    assert to_json(datetime(2025, 3, 31, 14, 30, 0, 5, tzinfo=UTC)) == \
        "2025-03-31T14:30:00.000005Z"
    assert to_json(date(2025, 3, 31)) == "2025-03-31"
    assert to_json(["a", "b"]) == ["a", "b"]
    assert to_json(None) is None and to_json(True) is True and to_json(3) == 3
    assert to_json(Regarding.of("account", 5)) == {"entity": "account", "id": 5}


_JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=5),
    st.floats(allow_nan=False), st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(), st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])),
    st.lists(st.sampled_from(["a", "b"]), max_size=2),
    st.builds(lambda i: Regarding.of("account", i), st.integers(1, 99)))


@given(st.dictionaries(st.text(max_size=3), _JSON_VALUES, max_size=6))
def test_record_json_is_to_json_of_each_value(record: dict[str, Any]) -> None:
    # record_json skips the call for values that are their own JSON form: the same answer
    out = record_json(record)
    assert out == {k: to_json(v) for k, v in record.items()}
    assert list(out) == list(record)


# -- through the database (SQLite and PostgreSQL) --------------------------------------------

LEDGER = """\
entity: ledger
label: Ledger entry
area: sales
title: memo
fields:
  memo:   {type: text}
  amount: {type: money}
  rate:   {type: decimal}
  share:  {type: percent}
  stamp:  {type: datetime}
  day:    {type: date}
  tags:   {type: multichoice, options: [a, b, c]}
"""


@pytest.fixture
def ledger_env(make_env: EnvFactory, config_dir: Path) -> Env:
    (config_dir / "entities" / "ledger.yaml").write_text(LEDGER, encoding="utf-8")
    return make_env(config_dir)


def test_decimals_are_exact_in_the_database(ledger_env: Env) -> None:
    records, actor = ledger_env.records, SYSTEM
    row = records.create(actor, "ledger", {"amount": Decimal("0.1") + Decimal("0.2"),
                                           "rate": "1234567890.1234", "share": "99999.9999"})
    got = records.get(actor, "ledger", row["id"])
    assert got["amount"] == Decimal("0.30") and str(got["amount"]) == "0.30"
    assert str(got["rate"]) == "1234567890.1234"
    assert str(got["share"]) == "99999.9999"
    found = records.list_records(actor, "ledger", parse_list_params(
        ledger_env.model.entity("ledger"), {"amount": "0.3"}))
    assert [r["id"] for r in found.items] == [row["id"]]


def test_datetimes_come_back_in_utc(ledger_env: Env) -> None:
    records = ledger_env.records
    row = records.create(SYSTEM, "ledger", {"stamp": "2025-03-31T22:30:00.000250+08:00",
                                            "day": "2025-03-31"})
    got = records.get(SYSTEM, "ledger", row["id"])
    assert got["stamp"] == datetime(2025, 3, 31, 14, 30, 0, 250, tzinfo=UTC)
    assert got["stamp"].utcoffset() == timedelta(0)
    assert to_json(got["stamp"]) == "2025-03-31T14:30:00.000250Z"
    assert got["day"] == date(2025, 3, 31) and type(got["day"]) is date


def test_blank_multichoice_is_sql_null(ledger_env: Env) -> None:
    # SQLAlchemy writes None into a JSON column as the text 'null'; __blank must find it
    records, entity = ledger_env.records, ledger_env.model.entity("ledger")
    first = records.create(SYSTEM, "ledger", {"memo": "x", "tags": ["b", "a"]})
    assert first["tags"] == ["a", "b"]
    records.update(SYSTEM, "ledger", first["id"], {"tags": ""}, first["version"])
    second = records.create(SYSTEM, "ledger", {"memo": "y", "tags": None})
    records.bulk_create(SYSTEM, "ledger", [{"memo": "z"}])
    tagged = records.create(SYSTEM, "ledger", {"memo": "t", "tags": "c,a"})
    blank = records.list_records(SYSTEM, "ledger",
                                 parse_list_params(entity, {"tags__blank": "true"}))
    assert blank.total == 3 and second["id"] in [r["id"] for r in blank.items]
    filled = records.list_records(SYSTEM, "ledger",
                                  parse_list_params(entity, {"tags__blank": "false"}))
    assert [r["id"] for r in filled.items] == [tagged["id"]]


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.decimals(min_value=Decimal("-9999999999999.99"), max_value=Decimal("9999999999999.99"),
                   places=2, allow_nan=False, allow_infinity=False))
@example(Decimal("9999999999999.99"))
@example(Decimal("-9999999999999.99"))
@example(Decimal("0.01"))
@example(Decimal("1234567890123.45"))
@example(Decimal("7777777777777.77"))
def test_money_round_trips_through_the_database(ledger_env: Env, value: Decimal) -> None:
    records = ledger_env.records
    row = records.create(SYSTEM, "ledger", {"amount": str(value)})
    got = records.get(SYSTEM, "ledger", row["id"])["amount"]
    assert got == value and str(got) == str(value.quantize(Decimal("0.01")))

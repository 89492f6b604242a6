"""One home per field type (engine/fieldtypes.py): every type has every part, and a form's
input text and the coercer agree for every type in every language the UI offers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from babel.numbers import format_decimal
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.fieldtypes import COMPARISONS, FIELD_TYPES, OPERATORS, FieldType, spec_of
from engine.formula import FType, ftype_of
from engine.metadata.errors import SourceLoc
from engine.metadata.model import Entity, Field, Label
from engine.runtime.errors import BadRequest
from engine.runtime.records.query import parse_list_params
from engine.runtime.schema.tables import COLUMN_TYPES, column_type
from engine.runtime.values import COERCERS, ValueProblem, coercer_for, to_json
from engine.web.i18n import LANGUAGES, babel_locale
from engine.web.openapi import field_schema
from engine.web.pages.inputs import INPUTS, grouped, input_text, posted_text
from engine.web.pages.shown import FORMATTED, NUMBERS, SHOWN

OPTIONS = ("prospecting", "won", "lost", "négociation", "已赢", "a b")


def make_field(t: FieldType, name: str = "x") -> Field:
    options = OPTIONS if t in (FieldType.CHOICE, FieldType.MULTICHOICE) else ()
    return Field(name=name, type=t, label=Label.of(None, name.upper()),
                 loc=SourceLoc("test.yaml", 1, 1), options=options,
                 to="account" if t is FieldType.REFERENCE else None)


# -- every type has every part ------------------------------------------------------------

@pytest.mark.parametrize("table", [FIELD_TYPES, COERCERS, COLUMN_TYPES, INPUTS, SHOWN],
                         ids=["fieldtypes", "coercers", "column types", "inputs", "shown"])
def test_every_field_type_has_exactly_one_entry_in_every_part(table: Any) -> None:
    assert set(table) == set(FieldType)


@pytest.mark.parametrize("t", list(FieldType))
def test_an_entry_is_complete_and_consistent(t: FieldType) -> None:
    spec = spec_of(t)
    f = make_field(t)
    assert spec.type is t
    assert ftype_of(t) is FType(spec.formula)
    assert spec.operators == tuple(op for op in OPERATORS if op in spec.operators)
    # a file field's value is an attachment's id: a list asks only whether it has one
    assert {"eq", "ne", "blank"} <= set(spec.operators) or (
        t is FieldType.FILE and spec.operators == ("blank",))
    assert ("contains" in spec.operators) == (spec.kind == "text")
    assert (spec.decimal is not None) == (spec.kind == "number" and t is not FieldType.INTEGER)
    assert (spec.text_max is not None) == (spec.kind == "text")
    assert ("search" in spec.options) == (spec.kind == "text")
    schema = spec.openapi(f)
    assert schema["type"] in ("string", "integer", "boolean", "array", "object")
    assert column_type(f) is not None
    assert INPUTS[t].kind
    assert SHOWN[t] in FORMATTED | {"bool", "choice", "choices", "link", "url", "email", "file",
                                    "text",
                                    "multiline"}
    assert (SHOWN[t] in NUMBERS) == (spec.kind == "number")
    assert input_text(f, None) == ([] if t is FieldType.MULTICHOICE else "")


# -- the registry is what the list API takes ----------------------------------------------

_SAMPLE = {
    FieldType.TEXT: "Acme", FieldType.TEXTAREA: "notes", FieldType.EMAIL: "a@example.com",
    FieldType.PHONE: "+1 555 0100", FieldType.URL: "https://example.com",
    FieldType.AUTONUMBER: "QT-2026-0007",
    FieldType.INTEGER: "7", FieldType.DECIMAL: "1.5", FieldType.MONEY: "1,234.50",
    FieldType.PERCENT: "12.5", FieldType.BOOLEAN: "true", FieldType.FILE: "3",
    FieldType.DATE: "2025-03-31",
    FieldType.DATETIME: "2025-03-31T14:30:00Z", FieldType.CHOICE: "won",
    FieldType.MULTICHOICE: "won", FieldType.REFERENCE: "3", FieldType.USER: "3",
    FieldType.DEPARTMENT: "3", FieldType.REGARDING: "account:3",
}


def _entity() -> Entity:
    fields = tuple(make_field(t, f"f_{t.value}") for t in FieldType)
    return Entity(name="thing", label=Label.of(None, "Thing"), plural=Label.of(None, "Things"),
                  title="f_text", area="sales", fields=fields,
                  loc=SourceLoc("test.yaml", 1, 1))


@pytest.mark.parametrize("t", list(FieldType))
def test_a_list_filters_a_field_with_its_types_operators_and_no_other(t: FieldType) -> None:
    entity = _entity()
    for op in OPERATORS:
        key = f"f_{t.value}__{op}"
        raw = "true" if op == "blank" else _SAMPLE[t]
        if op in spec_of(t).operators:
            query = parse_list_params(entity, {key: raw})
            assert [c.op for c in query.conditions] == [op], key
        else:
            with pytest.raises(BadRequest) as info:
                parse_list_params(entity, {key: raw})
            assert key in info.value.fields, key  # the problem names the parameter
    sort = {"sort": f"f_{t.value}"}
    if spec_of(t).sortable:
        assert parse_list_params(entity, sort).sort[0].field == f"f_{t.value}"
    else:
        with pytest.raises(BadRequest):
            parse_list_params(entity, sort)


def test_comparisons_are_offered_only_with_an_order() -> None:
    for spec in FIELD_TYPES.values():
        assert set(spec.operators) >= COMPARISONS or not COMPARISONS & set(spec.operators)


# -- valid values of every type -----------------------------------------------------------

_EMAIL = r"[a-z0-9._%+-]{1,20}@[a-z0-9]{1,10}(\.[a-z]{2,6}){1,2}"

# Inputs of each type; their coerced values are the valid values the contract covers.
RAW: dict[FieldType, st.SearchStrategy[Any]] = {
    FieldType.TEXT: st.text(max_size=255),
    FieldType.TEXTAREA: st.text(max_size=500),
    FieldType.EMAIL: st.from_regex(_EMAIL, fullmatch=True),
    FieldType.PHONE: st.from_regex(r"\+?[0-9 ()./-]{3,40}", fullmatch=True),
    FieldType.URL: st.from_regex(r"https?://[a-z0-9-]{1,20}\.[a-z]{2,6}(/[^\s]{0,40})?",
                                 fullmatch=True),
    FieldType.INTEGER: st.integers(-(2**63) + 1, 2**63 - 1),
    FieldType.DECIMAL: st.decimals(-(10**11) + 1, 10**11 - 1, places=4),
    FieldType.MONEY: st.decimals(-(10**13) + 1, 10**13 - 1, places=2),
    FieldType.PERCENT: st.decimals(-(10**5) + 1, 10**5 - 1, places=4),
    FieldType.BOOLEAN: st.booleans(),
    FieldType.AUTONUMBER: st.from_regex(r"[A-Z]{0,4}-?[0-9]{4}-[0-9]{1,19}", fullmatch=True),
    FieldType.FILE: st.integers(1, 2**63 - 1),
    FieldType.DATE: st.dates(),
    # Whole seconds: the form's datetime-local input has step 1 (ui_templates/form_fields.html)
    # and a browser refuses a value finer than its step, so the input holds seconds.
    FieldType.DATETIME: st.datetimes(datetime(1900, 1, 2), datetime(9999, 12, 30),
                                     timezones=st.just(UTC)).map(
                                         lambda d: d.replace(microsecond=0)),
    FieldType.CHOICE: st.sampled_from(OPTIONS),
    FieldType.MULTICHOICE: st.lists(st.sampled_from(OPTIONS), unique=True),
    FieldType.REFERENCE: st.integers(1, 2**63 - 1),
    FieldType.USER: st.integers(1, 2**63 - 1),
    FieldType.DEPARTMENT: st.integers(1, 2**63 - 1),
    FieldType.REGARDING: st.one_of(
        st.builds(lambda e, i: {"entity": e, "id": i},
                  st.sampled_from(("account", "opportunity", "a_1")), st.integers(1, 2**63 - 1)),
        st.builds(lambda e, i: f"{e}:{i}", st.from_regex(r"[a-z][a-z0-9_]{0,62}", fullmatch=True),
                  st.integers(1, 2**63 - 1))),
}


def test_every_type_has_generated_values() -> None:
    assert set(RAW) == set(FieldType)


def _valid(coerce: Callable[[Any], Any], raw: Any) -> Any:
    try:
        value = coerce(raw)
    except ValueProblem:
        value = None
    assume(value is not None)
    return value


# -- the form contract: input text reads back as the value --------------------------------

@pytest.mark.parametrize("language", list(LANGUAGES))
@pytest.mark.parametrize("t", list(FieldType))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_input_text_reads_back_as_the_value(t: FieldType, language: str,
                                            data: st.DataObject) -> None:
    """What a form's input holds for a stored value is read by the coercer as that value:
    saving a form unchanged changes nothing, whatever the viewer's language."""
    f = make_field(t)
    coerce = coercer_for(f)
    value = _valid(coerce, data.draw(RAW[t]))
    text = input_text(f, value)
    assert coerce(text) == value, (language, text)
    if spec_of(t).kind == "number" and t is not FieldType.INTEGER:
        # Numbers are written as the offered locales group them ("1,234.5"), and in full:
        # every decimal place the field holds (not Babel's default of at most three).
        places = "00" if t is FieldType.MONEY else "####"
        assert text == format_decimal(value, format="#,##0." + places,
                                      locale=babel_locale(language))


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("1234567.2345"), "1,234,567.2345"), (Decimal("-0.0001"), "-0.0001"),
    (Decimal("99999999999.9999"), "99,999,999,999.9999"), (Decimal("12.5000"), "12.5"),
    (Decimal("5"), "5")])
def test_decimal_input_keeps_every_place(value: Decimal, text: str) -> None:
    """The form of a decimal field once showed Babel's "#,##0.###": 1234567.2345 as
    "1,234,567.234" (saved back one place short), -0.0001 as "-0" and 99999999999.9999 as
    "100,000,000,000", which the coercer refuses."""
    f = make_field(FieldType.DECIMAL)
    assert input_text(f, value) == text
    assert coercer_for(f)(text) == value


def test_money_input_has_two_places_and_no_sign() -> None:
    f = make_field(FieldType.MONEY)
    assert input_text(f, Decimal("1234.5")) == "1,234.50"
    assert grouped(Decimal("-1234567.5"), 2) == "-1,234,567.50"


# -- a datetime input holds the wall time of the organisation's time zone -------------------

ZONES = ("UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe")


@pytest.mark.parametrize("zone_name", ZONES)
@settings(max_examples=200, deadline=None)
@given(value=RAW[FieldType.DATETIME])
def test_a_datetime_input_round_trips_through_the_zones_wall_time(zone_name: str,
                                                                  value: datetime) -> None:
    """The input holds the value's wall time in the zone (settings.yaml time_zone); posted
    back it is read in that zone as the same instant: always when the form showed it (a
    save unchanged), and from the wall time alone unless the zone has that wall time twice
    (clocks going back), where it is the first of the two."""
    zone = ZoneInfo(zone_name)
    f = make_field(FieldType.DATETIME)
    coerce = coercer_for(f)
    text = str(input_text(f, value, zone))
    wall = value.astimezone(zone).replace(tzinfo=None)
    assert text == wall.isoformat()
    assert coerce(posted_text(text, zone, value)) == value
    first = wall.replace(tzinfo=zone, fold=0)
    assert coerce(posted_text(text, zone)) == first.astimezone(UTC)
    if first.utcoffset() == wall.replace(tzinfo=zone, fold=1).utcoffset():
        assert first.astimezone(UTC) == value  # one instant has this wall time


@pytest.mark.parametrize(("zone_name", "posted", "stored"), [
    ("Asia/Shanghai", "2026-03-31T09:00:00", datetime(2026, 3, 31, 1, 0, tzinfo=UTC)),
    ("Asia/Shanghai", "2027-01-01T07:59", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)),
    ("Europe/Berlin", "2026-01-15T09:00:00", datetime(2026, 1, 15, 8, 0, tzinfo=UTC)),
    ("Europe/Berlin", "2026-07-15T09:00:00", datetime(2026, 7, 15, 7, 0, tzinfo=UTC)),
    # 02:30 on the day clocks go forward is no wall time: read with the winter offset
    ("Europe/Berlin", "2026-03-29T02:30:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    # 02:30 on the day they go back is twice: the first (summer time)
    ("Europe/Berlin", "2026-10-25T02:30:00", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    # an offset given is kept; UTC stays UTC
    ("Europe/Berlin", "2026-07-15T09:00:00Z", datetime(2026, 7, 15, 9, 0, tzinfo=UTC)),
    ("UTC", "2026-07-15T09:00:00", datetime(2026, 7, 15, 9, 0, tzinfo=UTC)),
])
def test_a_posted_wall_time_is_stored_as_its_utc_instant(zone_name: str, posted: str,
                                                         stored: datetime) -> None:
    coerce = coercer_for(make_field(FieldType.DATETIME))
    assert coerce(posted_text(posted, ZoneInfo(zone_name))) == stored


def test_the_second_of_a_twice_wall_time_is_kept_when_unchanged() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    f = make_field(FieldType.DATETIME)
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 winter time
    text = str(input_text(f, second, berlin))
    assert text == "2026-10-25T02:30:00"
    assert coercer_for(f)(posted_text(text, berlin, second)) == second
    # typed anew, the same wall time is the first one
    assert coercer_for(f)(posted_text(text, berlin)) == datetime(2026, 10, 25, 0, 30,
                                                                 tzinfo=UTC)


def test_a_wall_time_past_9999_keeps_its_utc_text() -> None:
    f = make_field(FieldType.DATETIME)
    last = datetime(9999, 12, 31, 20, 0, tzinfo=UTC)  # 10000-01-01 04:00 in Shanghai
    shanghai = ZoneInfo("Asia/Shanghai")
    text = input_text(f, last, shanghai)
    assert text == "9999-12-31T20:00:00Z"
    assert coercer_for(f)(posted_text(str(text), shanghai)) == last
    assert posted_text("not a time", shanghai) == "not a time"  # the coercer refuses it


@pytest.mark.parametrize("t", list(FieldType))
def test_posted_values_are_read_as_the_widget_sends_them(t: FieldType) -> None:
    """Checks post every chosen option, a checkbox its hidden "false" then "true"."""
    expected = {FieldType.MULTICHOICE: "all", FieldType.BOOLEAN: "last"}.get(t, "first")
    assert INPUTS[t].posted == expected


# -- the JSON form fits the OpenAPI schema ------------------------------------------------

@pytest.mark.parametrize("t", list(FieldType))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_json_form_fits_the_openapi_schema_and_reads_back(t: FieldType,
                                                          data: st.DataObject) -> None:
    f = make_field(t)
    coerce = coercer_for(f)
    value = _valid(coerce, data.draw(RAW[t]))
    as_json = spec_of(t).json(value)
    assert as_json == to_json(value)
    jsonschema.validate(as_json, field_schema(f))
    assert coerce(as_json) == value


def test_json_forms() -> None:
    assert spec_of(FieldType.MONEY).json(Decimal("1234.50")) == "1234.50"
    assert spec_of(FieldType.DATE).json(date(2025, 3, 31)) == "2025-03-31"
    assert spec_of(FieldType.DATETIME).json(
        datetime(2025, 3, 31, 14, 30, tzinfo=UTC)) == "2025-03-31T14:30:00Z"

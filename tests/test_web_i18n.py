"""UI languages (engine/web/i18n.py): every message has a Chinese translation, formats
follow the locale."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.dates import format_date
from babel.messages.extract import extract_from_dir
from babel.numbers import format_currency, format_decimal, get_currency_symbol
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.metadata import load_model
from engine.web.i18n import (
    LANGUAGES,
    babel_locale,
    catalog_path,
    formatters,
    home_symbol,
    negotiate,
    read_catalog,
    translations,
)
from engine.web.nav import AREAS, navigation

REPO = Path(__file__).resolve().parents[1]


def ui_messages() -> dict[str, list[str]]:
    """msgid → where it is used: `_()` in templates, `_()`/`N_()` in engine/web, `msg()` in
    engine/."""
    found: dict[str, list[str]] = {}
    templates = extract_from_dir(
        str(REPO / "ui_templates"), method_map=[("**.html", "jinja2.ext:babel_extract")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n"}})
    for name, line, message, _comments, _context in templates:
        found.setdefault(str(message), []).append(f"ui_templates/{name}:{line}")
    # Server messages: _() and N_() in the web code, msg() (engine/messages.py) anywhere.
    code = extract_from_dir(str(REPO / "engine"), method_map=[("**.py", "python")],
                            keywords={"_": None, "N_": None, "msg": None})
    for name, line, message, _comments, _context in code:
        found.setdefault(str(message), []).append(f"engine/{name}:{line}")
    return found


def test_the_extraction_sees_templates_and_code() -> None:
    messages = ui_messages()
    assert "Sign in" in messages and "Customers" in messages  # a template's and nav.py's
    assert "Welcome, %(name)s." in messages


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_ui_message_is_translated(language: str) -> None:
    catalog = read_catalog(language)
    missing = []
    for message, where in sorted(ui_messages().items()):
        entry = catalog.get(message)
        if entry is None or not entry.string or entry.fuzzy:
            missing.append(f"{where[0]}: {message!r}")
    assert not missing, f"add to {catalog_path(language)}:\n" + "\n".join(missing)


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_translations_keep_placeholders_and_nothing_is_stale(language: str) -> None:
    catalog = read_catalog(language)
    used = ui_messages()
    for entry in catalog:
        if not entry.id:
            continue
        assert entry.id in used, f"{entry.id!r} is no longer used; remove it"
        names = sorted(re.findall(r"%\((\w+)\)s", str(entry.id)))
        assert sorted(re.findall(r"%\((\w+)\)s", str(entry.string))) == names, entry.id


def test_catalogs_load_without_a_build_step() -> None:
    zh = translations()["zh-CN"]
    assert zh.gettext("Sign in") == "登录"
    assert zh.gettext("a text nobody translated") == "a text nobody translated"
    assert translations()["en"].gettext("Sign in") == "Sign in"


def test_area_names_and_entity_labels_per_language() -> None:
    model = load_model(REPO / "config")
    zh = {a.key: [e.label for e in a.entities] for a in navigation(model, "zh-CN")}
    en = {a.key: [e.label for e in a.entities] for a in navigation(model, "en")}
    assert "销售机会" in zh["sales"] and "Opportunities" in en["sales"]
    assert list(en) == [k for k in AREAS if k in en]  # menu order


def test_numbers_money_and_dates_follow_the_locale() -> None:
    en, zh = formatters("en"), formatters("zh-CN")
    assert en["money"](Decimal("1234567.5")) == "¥1,234,567.50"
    assert en["number"](1234567) == "1,234,567"
    assert en["percent"](Decimal("12.5")) == "12.5%"
    assert en["date"](date(2024, 3, 9)) == "Mar 9, 2024"
    assert zh["date"](date(2024, 3, 9)) == "2024年3月9日"
    assert "2024" in zh["datetime"](datetime(2024, 3, 9, 14, 5, tzinfo=UTC))
    assert en["money"](None) == "" and en["date"](None) == ""


@pytest.mark.parametrize(("zone", "language", "value", "shown", "day"), [
    # a service request received at 09:00 in Shanghai is 01:00 UTC
    ("Asia/Shanghai", "en", datetime(2026, 3, 31, 1, 0, tzinfo=UTC),
     "Mar 31, 2026, 9:00:00\u202fAM", "Mar 31, 2026"),
    ("Asia/Shanghai", "zh-CN", datetime(2026, 3, 31, 1, 0, tzinfo=UTC),
     "2026年3月31日 09:00:00", "2026年3月31日"),
    # 16:30 UTC on New Year's Eve is past midnight there: the day shown is the 1st
    ("Asia/Shanghai", "zh-CN", datetime(2026, 12, 31, 16, 30, tzinfo=UTC),
     "2027年1月1日 00:30:00", "2027年1月1日"),
    ("Asia/Shanghai", "en", datetime(2026, 12, 31, 16, 30), "Jan 1, 2027, 12:30:00\u202fAM",
     "Jan 1, 2027"),  # naive (SQLite) is UTC
    ("Europe/Berlin", "en", datetime(2026, 1, 15, 8, 0, tzinfo=UTC),
     "Jan 15, 2026, 9:00:00\u202fAM", "Jan 15, 2026"),
    ("Europe/Berlin", "en", datetime(2026, 7, 15, 7, 0, tzinfo=UTC),
     "Jul 15, 2026, 9:00:00\u202fAM", "Jul 15, 2026"),  # summer time
    ("UTC", "en", datetime(2026, 3, 31, 1, 0, tzinfo=UTC), "Mar 31, 2026, 1:00:00\u202fAM",
     "Mar 31, 2026"),
])
def test_datetimes_are_shown_in_the_organisations_time_zone(
        zone: str, language: str, value: datetime, shown: str, day: str) -> None:
    fmt = formatters(language, "CNY", zone)
    assert fmt["datetime"](value) == shown
    assert fmt["date"](value) == day
    # a date is a day, which no zone moves
    assert fmt["date"](date(2026, 3, 31)) == formatters(language)["date"](date(2026, 3, 31))
    assert fmt["datetime"](None) == "" and fmt["date"](None) == ""


@pytest.mark.parametrize(("currency", "language", "value", "expected"), [
    ("CNY", "en", Decimal("1234567.5"), "¥1,234,567.50"),  # not CLDR English's "CN¥"
    ("CNY", "zh-CN", Decimal("1234567.5"), "¥1,234,567.50"),
    ("CNY", "en", Decimal("-0.5"), "-¥0.50"),
    ("CNY", "zh-CN", "1250", "¥1,250.00"),
    ("USD", "zh-CN", Decimal("99.9"), "$99.90"),  # not CLDR Chinese's "US$"
    ("GBP", "en", Decimal("1"), "£1.00"),
    ("EUR", "en", Decimal("1234.5"), "€1,234.50"),  # no one country: the language's symbol
    ("EUR", "zh-CN", Decimal("1234.5"), "€1,234.50"),
    ("JPY", "en", Decimal("1234.4"), "￥1,234"),  # the yen has no minor unit
])
def test_money_shows_the_currency_for_the_locale(currency: str, language: str,
                                                 value: object, expected: str) -> None:
    assert formatters(language, currency)["money"](value) == expected


@settings(max_examples=300, deadline=None)
@given(value=st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"),
                         allow_nan=False, places=4),
       language=st.sampled_from(sorted(LANGUAGES)),
       currency=st.sampled_from(["CNY", "USD", "EUR", "JPY", "GBP", "KWD", "CHF", "INR"]),
       as_text=st.booleans())
def test_formatters_write_what_babel_writes(value: Decimal, language: str, currency: str,
                                            as_text: bool) -> None:
    """The patterns are looked up once per formatter, not per value; the text stays Babel's
    (format_currency with the home symbol, format_decimal, format_date)."""
    locale = babel_locale(language)
    fmt = formatters(language, currency)
    given_value: object = str(value) if as_text else value
    shown, home = get_currency_symbol(currency, locale), home_symbol(currency)
    expected = format_currency(value, currency, locale=locale)
    if home is not None and home != shown:
        expected = expected.replace(shown, home, 1)
    assert fmt["money"](given_value) == expected
    assert fmt["number"](given_value) == format_decimal(value, locale=locale)
    day = date.fromordinal(1 + int(abs(value)) % 800_000)
    assert fmt["date"](day) == format_date(day, format="medium", locale=locale)


def test_money_is_blank_for_no_value_and_numbers_keep_no_symbol() -> None:
    fmt = formatters("zh-CN", "CNY")
    assert fmt["money"](None) == "" and fmt["money"]("") == ""
    assert fmt["number"](Decimal("1234.5"), 2) == "1,234.50"  # what a money input holds


@pytest.mark.parametrize(("header", "expected"), [
    ("", "en"), ("zh-CN,zh;q=0.9", "zh-CN"), ("zh-TW", "zh-CN"), ("fr, en;q=0.5", "en"),
    ("en;q=0.2, zh;q=0.8", "zh-CN"), ("de", "en"), ("zh;q=bad", "en"),
])
def test_negotiate(header: str, expected: str) -> None:
    assert negotiate(header) == expected

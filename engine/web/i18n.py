"""UI languages: the message catalogs (engine/catalogs.py) and locale formats.

English is the source language of every message (the msgids); each other language has
engine/web/locales/<folder>/LC_MESSAGES/messages.po and more .po files beside it.

>>> translations()["zh-CN"].gettext("Sign in")
'登录'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from copy import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.core import UnknownLocaleError, get_global
from babel.dates import format_datetime, get_date_format
from babel.dates import parse_pattern as parse_date_pattern
from babel.numbers import (
    NumberPattern,
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_quantum,
    get_decimal_symbol,
    get_group_symbol,
    parse_pattern,
)

# the catalogs, where the pages have always imported them from
from engine.catalogs import DEFAULT_LANGUAGE as DEFAULT_LANGUAGE
from engine.catalogs import LANGUAGES as LANGUAGES
from engine.catalogs import catalog_path as catalog_path
from engine.catalogs import read_catalog as read_catalog
from engine.catalogs import supported as supported
from engine.catalogs import translations as translations
from engine.metadata.settings import DEFAULT_CURRENCY, DEFAULT_TIME_ZONE


def N_(message: str) -> str:  # the gettext name for "mark now, translate where shown"
    """Mark a message for the catalog where it is defined; it is translated where shown."""
    return message


def negotiate(accept_language: str) -> str:
    """The UI language for an Accept-Language header (signed-out pages).

    >>> negotiate("zh-TW;q=0.8, fr;q=0.9")
    'zh-CN'
    """
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().split("-")[0].lower()
        for language in LANGUAGES:
            if language.split("-")[0].lower() == primary:
                choices.append((-quality, i, language))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE


@cache
def babel_locale(language: str) -> Locale:
    return Locale.parse(language, sep="-")


@cache
def home_symbol(currency: str) -> str | None:
    """The currency's symbol as written in its own country (the first two letters of an
    ISO 4217 code name it), in that country's main official language; None for a currency
    of no one country (EUR).

    >>> home_symbol("CNY"), home_symbol("USD"), home_symbol("GBP"), home_symbol("EUR")
    ('¥', '$', '£', None)
    """
    territory = currency[:2].upper()
    languages: dict[str, dict[str, Any]] = get_global("territory_languages").get(territory, {})
    official = sorted(((-(info.get("population_percent") or 0), lang)
                       for lang, info in languages.items() if info.get("official_status")))
    for _, lang in official:
        try:
            return str(get_currency_symbol(currency, Locale.parse(f"{lang}_{territory}")))
        except (UnknownLocaleError, ValueError):
            continue
    return None


def _without_currency_sign(text: str, currency: str, sign: str) -> str:
    # The order Babel's NumberPattern.apply substitutes them in.
    return text.replace("¤¤", currency.upper()).replace("¤", sign)


@cache
def _money_pattern(language: str, currency: str) -> NumberPattern | None:
    """The locale's standard currency pattern with the currency's sign written in, so
    formatting a value skips Babel's per-call look-ups (currency name, plural rules);
    None when the pattern spells the currency's name, which depends on the value."""
    locale = babel_locale(language)
    pattern: NumberPattern = locale.currency_formats["standard"]
    if any("¤¤¤" in part for part in (*pattern.prefix, *pattern.suffix)):
        return None
    sign = get_currency_symbol(currency, locale)
    filled: NumberPattern = copy(pattern)
    positive, negative = pattern.prefix
    filled.prefix = (_without_currency_sign(positive, currency, sign),
                     _without_currency_sign(negative, currency, sign))
    positive, negative = pattern.suffix
    filled.suffix = (_without_currency_sign(positive, currency, sign),
                     _without_currency_sign(negative, currency, sign))
    return filled


def _money_writer(language: str, currency: str) -> Callable[[Any], str]:
    """Babel's NumberPattern.apply of `_money_pattern` (format_currency's text), with the
    currency's digits and the locale's symbols looked up once instead of on every value;
    for a pattern it does not cover (scaled, scientific, significant digits, the currency's
    name), Babel formats each value."""
    locale = babel_locale(language)
    pattern = _money_pattern(language, currency)
    if pattern is None:
        return lambda value: str(format_currency(value, currency, locale=locale))
    filled: NumberPattern = pattern  # narrowed, for the closures below

    def by_babel(value: Any) -> str:
        return str(filled.apply(value, locale, currency=currency))

    if filled.scale or filled.exp_prec or "@" in filled.pattern or not filled.number_pattern:
        return by_babel
    digits = get_currency_precision(currency)
    quantum = get_decimal_quantum(digits)
    group, point = get_group_symbol(locale), get_decimal_symbol(locale)
    min_int = filled.int_prec[0]
    first_group, other_groups = filled.grouping

    def write(value: Any) -> str:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        negative = int(number.is_signed())
        number = abs(number).normalize()
        if not number.is_finite():
            return by_babel(value)
        whole, _, fraction = f"{number.quantize(quantum):f}".partition(".")
        whole = whole.rjust(min_int, "0")
        grouped, size = "", first_group
        while len(whole) > size:
            grouped = group + whole[-size:] + grouped
            whole, size = whole[:-size], other_groups
        fraction = (fraction or "0").ljust(digits, "0")
        text = (filled.prefix[negative] + whole + grouped
                + (point + fraction if digits else "") + filled.suffix[negative])
        return _unquote(text) if "'" in text else text

    return write


def _unquote(text: str) -> str:
    # Babel's last step: 'quoted' text loses its quotes, '' becomes '.
    return re.sub(r"'([^']*)'", lambda m: m.group(1) or "'", text)


def formatters(language: str, currency: str = DEFAULT_CURRENCY,
               time_zone: str = DEFAULT_TIME_ZONE) -> dict[str, Callable[..., str]]:
    """Jinja filters that format values for `language`; a blank value shows as ''. Money is
    in `currency` (config/settings.yaml), with the currency's home symbol: an install has one
    currency, so CNY needs no "CN" before its ¥ as English CLDR data writes it. Datetimes
    (stored in UTC; a naive one is UTC) are shown at their wall time in `time_zone`, the
    organisation's (settings.yaml), and a datetime shown as a date is its day there.

    The patterns are looked up once here, not per value (a list page formats hundreds);
    the text is what babel's format_decimal, format_currency and format_date give.

    >>> formatters("zh-CN")["money"]("1234567.5"), formatters("en")["money"]("-3")
    ('¥1,234,567.50', '-¥3.00')
    >>> formatters("en", "EUR")["money"]("1234.5"), formatters("zh-CN", "USD")["money"]("1")
    ('€1,234.50', '$1.00')
    >>> at = datetime(2026, 3, 31, 17, 30, tzinfo=UTC)
    >>> shanghai = formatters("en", "CNY", "Asia/Shanghai")
    >>> shanghai["datetime"](at), shanghai["date"](at)
    ('Apr 1, 2026, 1:30:00\u202fAM', 'Apr 1, 2026')
    """
    return dict(_formatters(language, currency, time_zone))  # a copy: callers may add to it


@cache
def _formatters(language: str, currency: str,
                time_zone: str = DEFAULT_TIME_ZONE) -> dict[str, Callable[..., str]]:
    """`formatters`, made once per language, currency and time zone."""
    zone = ZoneInfo(time_zone)
    locale = babel_locale(language)
    shown_symbol = get_currency_symbol(currency, locale)
    symbol = home_symbol(currency) or shown_symbol
    decimal_pattern = parse_pattern(locale.decimal_formats[None])
    write_money = _money_writer(language, currency)
    date_pattern = parse_date_pattern(get_date_format("medium", locale=locale))

    def number(value: Any, digits: int | None = None) -> str:
        if value is None or value == "":
            return ""
        if digits is None:
            return str(decimal_pattern.apply(value, locale))
        return format_decimal(value, format="#,##0." + "0" * digits if digits else "#,##0",
                              locale=locale)

    def money(value: Any) -> str:
        if value is None or value == "":
            return ""
        text = write_money(value)
        return text.replace(shown_symbol, symbol, 1) if symbol != shown_symbol else text

    def percent(value: Any) -> str:
        # Percent fields hold 0-100, not a fraction, so Babel's percent format would scale.
        return "" if value is None or value == "" else number(value) + "%"

    def date_(value: Any) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, datetime):
            value = local_time(value, zone).date()
        return str(date_pattern.apply(value, locale)) if isinstance(value, date) \
            else str(value)

    def datetime_(value: Any) -> str:
        if not isinstance(value, datetime):
            return "" if value is None else str(value)
        return format_datetime(local_time(value, zone), format="medium", tzinfo=zone,
                               locale=locale)

    # A page shows the same amounts and dates again and again (a list of 50 rows formats
    # 150 values): each is formatted once per language and currency.
    return {"number": number, "money": _remembered(money), "percent": percent,
            "date": _remembered(date_), "datetime": datetime_}


def local_time(value: datetime, zone: ZoneInfo) -> datetime:
    """An instant (aware, or naive meaning UTC) at its wall time in `zone`.

    >>> local_time(datetime(2026, 3, 29, 1, 30), ZoneInfo("Europe/Berlin")).isoformat()
    '2026-03-29T03:30:00+02:00'
    """
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(zone)


def _remembered(format_: Callable[[Any], str]) -> Callable[[Any], str]:
    """`format_` remembering its last few thousand answers (equal values, equal text)."""
    cached = lru_cache(maxsize=4096)(format_)

    def remembered(value: Any) -> str:
        try:
            return cached(value)
        except TypeError:  # an unhashable value: formatted, not remembered
            return format_(value)

    return remembered

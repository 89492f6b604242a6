"""The message catalogs of every language the engine speaks: gettext .po files read with
Babel, compiled in memory once per process, so a clean checkout needs no build step and no
.mo file is committed. English is the source language (the msgids); each other language has
engine/web/locales/<folder>/LC_MESSAGES/*.po. The pages (engine/web/i18n.py) render
messages (engine.messages) with them, and so do import jobs, which write their error file in
the language they were started in (engine/runtime/imports/jobs.py).

>>> translations()["zh-CN"].gettext("Sign in")
'登录'
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from engine.messages import localize

DEFAULT_LANGUAGE = "en"
LANGUAGES: dict[str, str] = {"en": "English", "zh-CN": "简体中文"}
"""UI language tag → its name in that language (what the language menu shows)."""
_CATALOG_FOLDERS: dict[str, str] = {"zh-CN": "zh_CN"}
LOCALES_DIR = Path(__file__).resolve().parent / "web" / "locales"


def catalog_path(language: str) -> Path:
    """The language's main catalog; pages may keep their messages in more .po files beside
    it (one per part of the UI), which `read_catalog` merges."""
    return LOCALES_DIR / _CATALOG_FOLDERS[language] / "LC_MESSAGES" / "messages.po"


def read_catalog(language: str) -> Catalog:
    """Every .po file of the language's folder, merged into one catalog. A msgid may appear
    in several files with the same translation; different translations are an error (two
    parts of the UI would disagree)."""
    folder = _CATALOG_FOLDERS[language]
    merged = Catalog(locale=folder)
    for path in sorted(catalog_path(language).parent.glob("*.po")):
        with path.open("rb") as po:
            part = read_po(po, locale=folder)
        for message in part:
            if not message.id:
                continue
            known = merged.get(message.id)
            if known is not None and known.string == message.string:
                continue
            if known is not None:
                raise ValueError(f"{path}: {message.id!r} is translated differently in "
                                 "another catalog of this language")
            merged[message.id] = message
    return merged


@cache
def translations() -> dict[str, gettext.NullTranslations]:
    """Every UI language's translations, compiled from its .po files once per process."""
    out: dict[str, gettext.NullTranslations] = {DEFAULT_LANGUAGE: gettext.NullTranslations()}
    for language in _CATALOG_FOLDERS:
        catalog = read_catalog(language)
        mo = BytesIO()
        write_mo(mo, catalog, use_fuzzy=False)  # a fuzzy entry is a guess: show English
        mo.seek(0)
        out[language] = gettext.GNUTranslations(mo)
    return out


def supported(language: str | None) -> str:
    """`language` when the UI speaks it, else the default: never an unknown tag."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def renderer(language: str) -> Callable[[str], str]:
    """A message (engine.messages) as text in `language` (the default for one not spoken)."""
    language = supported(language)
    text = translations()[language].gettext
    return lambda message: localize(message, text, language)

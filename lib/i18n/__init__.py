"""Languages: the gettext catalogs in locales/ and the one `_()` every visible text goes through.

`_("Train")` translates into the language of whoever is being served: lib/ui installs a language
source (the Streamlit session's choice); without one (the CLI, logs, worker processes, tests of the
engine) `_()` answers in English, the source language. `N_()` only marks a text for extraction where it
is defined as data (a lesson, a dataset's class names) and is translated where it is shown. Catalogs are
managed with Babel (`pybabel extract/update/compile`, see README); the compiled `.mo` files are
committed, so the app reads them with the standard library's gettext. Numbers go through Babel's
formatting for the language.

May import: nothing from lib (the lowest layer: every other package may use it).
"""

from __future__ import annotations

import functools
import gettext
import re
from collections.abc import Callable
from pathlib import Path

LOCALES_DIR = Path(__file__).resolve().parents[2] / "locales"
DOMAIN = "messages"
SOURCE_LANGUAGE = "en"  # the msgids: English, also what the CLI and the logs speak
# Language code -> its name in itself, as the sidebar switch shows it; a catalog exists for each but the source.
LANGUAGES = {"en": "English", "zh": "中文"}
# Babel locale for each language (number formats, plural rules).
BABEL_LOCALES = {"en": "en_US", "zh": "zh_Hans_CN"}

_language_source: Callable[[], str | None] = lambda: None


def use_language_source(source: Callable[[], str | None]) -> None:
    """Install where `_()` reads the language (lib/ui: the session's choice; None means the source language)."""
    global _language_source
    _language_source = source


def current_language() -> str:
    language = _language_source()
    return language if language in LANGUAGES else SOURCE_LANGUAGE


def language_from_locale(locale: str | None) -> str:
    """A supported language for a browser locale such as "zh-CN", "zh-Hans-SG" or "en-GB"; English otherwise."""
    primary = (locale or "").replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else SOURCE_LANGUAGE


@functools.cache
def translation(language: str) -> gettext.NullTranslations:
    """The compiled catalog of `language` (English: none, the msgids are English)."""
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALES_DIR, languages=[language])


def _(message: str) -> str:
    """`message` in the current language (see the module docstring); "" stays "" (gettext would answer
    the catalog's header)."""
    if not message:
        return message
    return translation(current_language()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return translation(current_language()).ngettext(singular, plural, count)


def N_(message: str) -> str:
    """Mark `message` for the catalog without translating it here; `_()` translates it where it is shown."""
    return message


def number(value: float, decimals: int | None = None) -> str:
    """`value` with the language's digit grouping and decimal sign (`decimals` fixed, or as many as it has)."""
    from babel.numbers import format_decimal

    pattern = None if decimals is None else "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=BABEL_LOCALES[current_language()])


def percent(fraction: float, decimals: int = 2) -> str:
    """`fraction` (0.9912) as the language writes a percentage ("99.12%")."""
    from babel.numbers import format_percent

    pattern = "#,##0" + ("." + "0" * decimals if decimals else "") + "%"
    return format_percent(fraction, format=pattern, locale=BABEL_LOCALES[current_language()])


_FIELD = re.compile(r"\{(\w+)(?:![rsa])?(?::[^{}]*)?\}")


def translate_filled(text: str, templates) -> str:
    """`text`, made by filling one of `templates` (English, marked with N_), in the current language.

    For texts stored in English once filled in, such as a run's stop reason in its meta.json: the template
    that produced `text` is found again, and its translation is filled with the same values. A text no
    template matches comes back unchanged.
    """
    for template in templates:
        pattern, names, position = "", [], 0
        for match in _FIELD.finditer(template):
            pattern += re.escape(template[position:match.start()]) + "(.+?)"
            names.append(match.group(1))
            position = match.end()
        found = re.fullmatch(pattern + re.escape(template[position:]), text, flags=re.DOTALL)
        if found:
            return _FIELD.sub(lambda field: "{" + field.group(1) + "}", _(template)).format(
                **dict(zip(names, found.groups())))
    return text

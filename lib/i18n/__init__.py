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
# A template is looked up by its literal words: one with fewer letters than this outside its fields
# ("{name} ({count})") would match any text and is never used to recognise one.
MIN_TEMPLATE_LETTERS = 5
MAX_NESTING = 3  # a filled-in field is itself looked up (a refusal quoting a reason), this many levels deep
# The fields whose value is itself a marked text (a reason, a phrase, a dataset's title), looked up in turn;
# any other field (a file name, a number, a shape, "train") is data and kept as it is.
NESTED_FIELDS = frozenset({"what", "fix", "reason", "reasons", "problem", "detail", "found", "skipped", "notes", "hint",
                           "colour", "takes", "wanted", "memory", "metric", "dataset", "where"})
# A refusal quoted inside another may come without its "<file>: " lead (the outer text names the file already):
# it is looked up again behind this stand-in lead, which the translation then loses with its separator.
# Fields holding several marked sentences joined by spaces (an imported model's notes): each is looked up.
JOINED_FIELDS = frozenset({"notes"})
_SENTENCE_BREAK = re.compile(r"(?<=[.!?]) +(?=[A-Z])")
_LEAD = "\0"
_SOURCE_WORD = re.compile(r"[A-Za-z]{2,}")  # an English word left in a translation (or data: a file name, a URL)
_LEAD_SEPARATOR = re.compile(r"\0\s*[:：]\s*")


def _literal_letters(template: str) -> int:
    return sum(character.isalpha() for character in _FIELD.sub("", template))


@functools.cache
def _pattern(template: str) -> tuple[re.Pattern, tuple[str, ...]]:
    """A regular expression matching `template` filled in, and its fields' names in order."""
    pattern, names, position = "", [], 0
    for match in _FIELD.finditer(template):
        pattern += re.escape(template[position:match.start()]) + "(.*?)"
        names.append(match.group(1))
        position = match.end()
    return re.compile(pattern + re.escape(template[position:]), flags=re.DOTALL), tuple(names)


@functools.cache
def _catalog_templates(language: str) -> tuple[str, ...]:
    """The msgids of `language`'s catalog with fields, the most specific (most literal letters) first."""
    from babel.messages import mofile

    path = gettext.find(DOMAIN, LOCALES_DIR, languages=[language])
    with open(path, "rb") as handle:
        ids = [message.id for message in mofile.read_mo(handle) if isinstance(message.id, str)]
    found = [msgid for msgid in ids if _FIELD.search(msgid) and _literal_letters(msgid) >= MIN_TEMPLATE_LETTERS]
    return tuple(sorted(found, key=_literal_letters, reverse=True))


def translate_filled(text: str, templates=None, _depth: int = 0) -> str:
    """`text`, English made by filling a marked template (`N_("... {size} MB ...").format(size=...)`), in
    the current language; a text no template made comes back unchanged.

    For texts that stay English where they are made, travel and are stored: a file's refusal raised in the
    engine (maybe in a child process or on a Ray node), a run's stop reason in its meta.json, a job's
    failure. The template that produced `text` is found again (among `templates`, else the catalog's, the
    most specific first; of several that match, the one leaving the fewest English words, then ASCII signs) and its translation
    is filled with the same values; a value in one of NESTED_FIELDS is looked up in turn (a refusal quoting a
    skipped image's reason, also without its "<file>: " lead). A text with no field is the catalog's plain lookup.
    """
    language = current_language()
    if not text or language == SOURCE_LANGUAGE:
        return text
    catalog = translation(language)
    exact = catalog.gettext(text)
    if exact != text:
        return exact
    best, best_left = text, None
    for template in (_catalog_templates(language) if templates is None else templates):
        pattern, names = _pattern(template)
        found = pattern.fullmatch(text)
        if found:
            values = [_translate_quoted(name, value, templates, _depth + 1) if name in NESTED_FIELDS and _depth < MAX_NESTING
                      else value for name, value in zip(names, found.groups())]
            translated = _FIELD.sub(lambda field: "{" + field.group(1) + "}", catalog.gettext(template))
            shown = translated.format(**dict(zip(names, values)))
            # A quoted refusal's own template may match its quote too ("{source}: ..." taking the wrapper as
            # its source): of the templates that match, the one leaving the fewest source words wins.
            # Of as many words, the one leaving the fewest ASCII signs (a quoted reason's own "meta.json: ... 1."
            # against a looser template that took its lead and final stop as data).
            left = (len(_SOURCE_WORD.findall(shown)),
                    sum(character.isascii() and not character.isspace() for character in shown))
            if best_left is None or left < best_left:
                best, best_left = shown, left
            if left[0] == 0:
                break
    return best


def translate_unled(text: str, templates=None) -> str:
    """`text`, a marked "<name>: ..." text quoted without its lead (a damaged run folder's reason after its id), in
    the current language: looked up behind the stand-in lead first (a looser template could match the text alone,
    "{key} is not a number from {low} to {high}" taking "meta.json: ..." as its key), then as it is."""
    if not text or current_language() == SOURCE_LANGUAGE:
        return text
    behind = _behind_lead(text, templates, 0)
    return translate_filled(text, templates) if behind is None else behind


def _translate_quoted(name: str, value: str, templates, depth: int) -> str:
    """A field's value that is itself a marked text, translated; also one quoted without its "<file>: " lead, and
    (JOINED_FIELDS) several marked sentences one by one."""
    shown = translate_filled(value, templates, depth)
    if shown != value or not value:
        return shown
    if name in JOINED_FIELDS and _SENTENCE_BREAK.search(value):
        shown = ""
        for sentence in _SENTENCE_BREAK.split(value):
            part = _translate_quoted("", sentence, templates, depth)
            shown += (" " if shown and (shown[-1].isascii() or part[:1].isascii()) else "") + part
        return shown
    behind = _behind_lead(value, templates, depth)
    return value if behind is None else behind


def _behind_lead(text: str, templates, depth: int) -> str | None:
    """`text` translated as the part after a "<name>: " lead (looked up behind the stand-in lead, which the
    translation then loses with its separator); None when no template made it so."""
    led = translate_filled(f"{_LEAD}: {text}", templates, depth)
    stripped = _LEAD_SEPARATOR.match(led)
    return led[stripped.end():] if stripped else None

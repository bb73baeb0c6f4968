"""The visitor's language: `?lang=zh|en` in the URL, a sidebar switch, the browser's language by default.

Installs the session's language as lib.i18n's language source, so the one `_()` (re-exported here for
lib/ui and pages) answers in it: in the script run and its fragments, never in a worker thread (those
have no session and speak English, like the logs). Streamlit clears query parameters when the visitor
changes page, so, like the workspace key (lib/ui/workspace.py), the session keeps the language and puts
it back into the URL on every run.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from lib import i18n
from lib.i18n import N_, _, ngettext, number, percent  # noqa: F401  (the names lib/ui and pages use)

LANGUAGE_PARAM = "lang"
LANGUAGE = "language"  # session state: the language in use
LANGUAGE_SWITCH = "language_switch"  # session state: the sidebar switch's widget


def _session_language() -> str | None:
    if get_script_run_ctx(suppress_warning=True) is None:  # a worker thread, the CLI: the source language
        return None
    return st.session_state.get(LANGUAGE)


i18n.use_language_source(_session_language)


def apply_language() -> None:
    """In the router, before anything is drawn: the URL's language, else the session's, else the browser's.

    The URL carries `lang` once the visitor chose a language or their browser's is not English, so a
    reload, a bookmark or a shared link comes back in it; an English visitor's URL stays as it was.
    """
    from_url = st.query_params.get(LANGUAGE_PARAM)
    if from_url in i18n.LANGUAGES:
        st.session_state[LANGUAGE] = from_url
    elif LANGUAGE not in st.session_state:
        st.session_state[LANGUAGE] = i18n.language_from_locale(st.context.locale)
    language = st.session_state[LANGUAGE]
    if from_url != language and (from_url or language != i18n.SOURCE_LANGUAGE):
        st.query_params[LANGUAGE_PARAM] = language


def _switch_language(key: str) -> None:
    language = st.session_state.get(key) or st.session_state.get(LANGUAGE, i18n.SOURCE_LANGUAGE)
    st.session_state[LANGUAGE] = language
    st.query_params[LANGUAGE_PARAM] = language


def language_switch(container=None, key: str = LANGUAGE_SWITCH) -> None:
    """The English / 中文 switch, each language named in itself: in the sidebar, or in `container` with
    its own widget `key` (the phone's compact bar)."""
    st.session_state[key] = st.session_state.get(LANGUAGE, i18n.SOURCE_LANGUAGE)
    (container or st.sidebar).segmented_control(
        _("Language"), list(i18n.LANGUAGES), format_func=i18n.LANGUAGES.__getitem__, key=key,
        on_change=_switch_language, args=(key,), label_visibility="collapsed")


def engine_text(text) -> str:
    """A text the engine made in English (a file's refusal, a job's failure, a cluster's answer), in the
    visitor's language where the catalog knows its template (lib.i18n.translate_filled)."""
    return i18n.translate_filled(str(text or ""))


def engine_reason(text) -> str:
    """An engine text quoted without its "<name>: " lead (a damaged run folder's reason), in the visitor's
    language (lib.i18n.translate_unled)."""
    return i18n.translate_unled(str(text or ""))


def stop_reason(reason: str) -> str:
    """Why a run ended, kept in English in its meta.json, in the visitor's language."""
    return engine_text(reason)


def class_names(names) -> list[str]:
    """A dataset's class names as the visitor reads them (Fashion-MNIST's in Chinese; digits stay digits)."""
    return [_(str(name)) for name in names]


def labels(options, label=_) -> Callable[[object], str]:
    """A widget's format_func showing each option as `label(option)` in the visitor's language.

    The labels are computed here, in the script run: Streamlit may call a format_func outside it (the
    AppTest harness does), where `_()` has no session and would answer in English.
    """
    shown = {option: label(option) for option in options}
    return shown.__getitem__

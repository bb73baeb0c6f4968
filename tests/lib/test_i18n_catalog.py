"""Every visible text is translatable and translated: an AST check of the Streamlit calls in lib/ui/ and
pages/ (and the router), and checks of the catalogs (nothing untranslated or fuzzy, .po and .mo in step).

A text reaches the visitor through `_()` (lib.i18n) or as data (a run's name, a number); a bare English
literal in a Streamlit call is a text no translator will ever see.
"""

from __future__ import annotations

import ast
import re
import shutil
import string
from pathlib import Path

import pytest
from babel.messages import extract, mofile, pofile

PROJECT = Path(__file__).resolve().parents[2]
LOCALES = PROJECT / "locales"
UI_SOURCES = ("lib/ui", "pages", "streamlit_app.py")
# Streamlit calls (and the two lib/ui helpers that hand their text to one) -> the positional arguments a
# visitor reads; "*": all of them. Keyword arguments in VISIBLE_KEYWORDS are read as well.
OPTION_CALLS = ("radio", "selectbox", "multiselect", "segmented_control", "pills", "select_slider")
TEXT_ARGUMENTS = {
    **dict.fromkeys(("title", "header", "subheader", "markdown", "caption", "text", "info", "warning", "success",
                     "toast", "expander", "popover", "spinner", "status", "tabs", "button", "download_button",
                     "link_button", "form_submit_button", "checkbox", "toggle", "slider", "number_input",
                     "text_input", "text_area", "file_uploader", "color_picker", "date_input", "time_input",
                     "camera_input", "chat_input", "dialog", "run_picker", "NumberColumn", "TextColumn",
                     "ProgressColumn", "CheckboxColumn", "LinkColumn", "ImageColumn", "Column"), (0,)),
    **dict.fromkeys(OPTION_CALLS, (0, 1)),
    "error": (0, 1),  # st.error(body) and lib/ui's error(what, todo)
    "metric": (0, 1, 2),
    "progress": (1,),
    "write": "*",
}
VISIBLE_KEYWORDS = {"label", "help", "placeholder", "caption", "body", "title", "text", "page_title", "options",
                    "value", "delta"}
TRANSLATORS = {"_", "ngettext"}
WORD = re.compile(r"[A-Za-z]{2,}")
MARKUP = re.compile(r"<[^<>]*>|:material/\w+:")  # HTML tags and icon codes: not words a visitor reads


def _has_words(text: str) -> bool:
    return bool(WORD.search(MARKUP.sub("", text)))
BABEL_CFG = PROJECT / "babel.cfg"
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def ui_files(root: Path = PROJECT) -> list[Path]:
    found = []
    for name in UI_SOURCES:
        path = root / name
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


def _is_translated(node: ast.AST) -> bool:
    """`_("...")`, `ngettext(...)` or `_("... {n}").format(n=...)`."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in TRANSLATORS:
            return True
        if isinstance(func, ast.Attribute) and func.attr == "format":
            return _is_translated(func.value)
    return False


def bare_texts(node: ast.AST) -> list[ast.AST]:
    """The string literals with words in an argument that no `_()` wraps (lists, ternaries, `+` looked into)."""
    if _is_translated(node):
        return []
    if isinstance(node, ast.Constant):
        return [node] if isinstance(node.value, str) and _has_words(node.value) else []
    if isinstance(node, ast.JoinedStr):
        words = any(isinstance(part, ast.Constant) and _has_words(part.value) for part in node.values)
        return [node] if words else []
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [bare for element in node.elts for bare in bare_texts(element)]
    if isinstance(node, ast.IfExp):
        return bare_texts(node.body) + bare_texts(node.orelse)
    if isinstance(node, ast.BinOp):
        return bare_texts(node.left) + bare_texts(node.right)
    return []


def untranslated_calls(path: Path) -> list[tuple[int, str, str]]:
    """(line, call, literal) for each bare English literal a Streamlit call in `path` shows."""
    source = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        arguments = []
        # Options shown through a format_func are data (the format_func translates them).
        formatted = name in OPTION_CALLS and any(keyword.arg == "format_func" for keyword in node.keywords)
        if name in TEXT_ARGUMENTS:
            wanted = TEXT_ARGUMENTS[name]
            arguments += [arg for index, arg in enumerate(node.args)
                          if (wanted == "*" or index in wanted) and not (formatted and index == 1)]
        if name in TEXT_ARGUMENTS or name in ("Page", "page_link", "set_page_config", "image", "plotly_chart"):
            arguments += [keyword.value for keyword in node.keywords if keyword.arg in VISIBLE_KEYWORDS
                          and not (formatted and keyword.arg == "options")]
        for argument in arguments:
            found += [(bare.lineno, name, ast.get_source_segment(source, bare)) for bare in bare_texts(argument)]
    return found


def test_streamlit_calls_show_only_translated_text():
    found = [f"{path.relative_to(PROJECT)}:{line}: {call}({text})" for path in ui_files()
             for line, call, text in untranslated_calls(path)]
    assert found == [], "wrap these in _():\n" + "\n".join(found)


@pytest.mark.parametrize("planted", [
    'st.caption("Pick a model first.")',
    'st.button(f"Look inside {run.display_name}", key="x")',
    'cols[0].metric("Test accuracy", value)',
    'st.segmented_control(_("Input"), ["Draw", "Upload"], key="y")',
    'st.radio(_("Input"), ("Draw", "Upload"), format_func=str.upper, help="Where the image comes from")',
    'st.selectbox(_("Run"), ids, help="Which run to look at")',
    'st.Page("pages/home.py", title="Home")',
])
def test_the_check_finds_a_planted_bare_literal(tmp_path, planted):
    """A bare English literal planted in a copy of a page is found, with its line."""
    copy = tmp_path / "pages"
    shutil.copytree(PROJECT / "pages", copy)
    page = copy / "home.py"
    original_lines = len(page.read_text(encoding="utf-8").splitlines())
    page.write_text(page.read_text(encoding="utf-8") + planted + "\n", encoding="utf-8")
    assert untranslated_calls(PROJECT / "pages" / "home.py") == []
    found = untranslated_calls(page)
    assert {line for line, _, _ in found} == {original_lines + 1}, found


def test_the_check_accepts_translated_text_and_data(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('\n'.join([
        'st.caption(_("Pick a model first."))',
        'st.button(_("Look inside {name}").format(name=run.display_name), key="inside")',
        'st.metric(_("Test accuracy"), f"{accuracy:.2%}")',
        'st.page_link("pages/draw.py", label=_("Open the canvas"), icon=":material/draw:")',
        'st.markdown(f"**{what}**  \\n{todo}")',
        'st.markdown(f"<style>{css}</style>", unsafe_allow_html=True)',
        'st.subheader(f":material/bolt: {title}")',
        'st.selectbox(_("Run"), ids, format_func=labels.__getitem__, key="pred_run")',
        'st.radio(_("Labels"), ("sparse", "one_hot"), format_func=_, key="labels")',
    ]) + "\n", encoding="utf-8")
    assert untranslated_calls(page) == []


def catalogs() -> list[Path]:
    return sorted(LOCALES.glob("*/LC_MESSAGES/messages.po"))


def read_po(path: Path):
    with path.open("rb") as handle:
        return pofile.read_po(handle)


def extracted_ids() -> set[str]:
    """Every msgid `pybabel extract -F babel.cfg` finds in the sources today."""
    ids = set()
    for _, _, message, _, _ in extract.extract_from_dir(str(PROJECT), method_map=[("lib/**.py", "python"),
                                                          ("pages/**.py", "python"), ("streamlit_app.py", "python")],
                                                        keywords=KEYWORDS):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def test_every_offered_language_has_a_catalog_and_every_catalog_is_offered():
    """The sidebar offers lib.i18n.LANGUAGES: each one but English (the msgids) needs its catalog."""
    from lib import i18n

    assert {path.parts[-3] for path in catalogs()} == set(i18n.LANGUAGES) - {i18n.SOURCE_LANGUAGE}


@pytest.mark.parametrize("po_path", catalogs(), ids=lambda path: path.parts[-3])
def test_catalog_has_every_text_translated_and_nothing_fuzzy(po_path):
    catalog = read_po(po_path)
    untranslated = [message.id for message in catalog if message.id and not (
        all(message.string) if isinstance(message.string, tuple) else message.string)]
    fuzzy = [message.id for message in catalog if message.id and message.fuzzy]
    assert untranslated == [] and fuzzy == [], f"untranslated: {untranslated}\nfuzzy: {fuzzy}"


@pytest.mark.parametrize("po_path", catalogs(), ids=lambda path: path.parts[-3])
def test_catalog_holds_every_text_the_code_marks(po_path):
    """`pybabel update` was run after the last code change: no text in the code is missing from the catalog."""
    in_catalog = {message.id if isinstance(message.id, str) else message.id[0] for message in read_po(po_path)}
    missing = sorted(extracted_ids() - in_catalog)
    assert missing == [], "run pybabel extract and update (README), then translate:\n" + "\n".join(missing)


@pytest.mark.parametrize("po_path", catalogs(), ids=lambda path: path.parts[-3])
def test_compiled_catalog_matches_its_source(po_path):
    """The committed .mo is `pybabel compile` of the .po as it is now."""
    source = {message.id: message.string for message in read_po(po_path) if message.id}
    with po_path.with_suffix(".mo").open("rb") as handle:
        compiled = {message.id: message.string for message in mofile.read_mo(handle) if message.id}
    stale = sorted(str(key) for key in set(source) ^ set(compiled)) + sorted(
        str(key) for key in set(source) & set(compiled) if source[key] != compiled[key])
    assert stale == [], "run pybabel compile -d locales (README):\n" + "\n".join(stale[:20])


def _fields(text: str) -> list[str]:
    return sorted(field for _, field, _, _ in string.Formatter().parse(text) if field is not None)


@pytest.mark.parametrize("po_path", catalogs(), ids=lambda path: path.parts[-3])
def test_translations_keep_every_placeholder(po_path):
    """A translation that drops or renames `{name}` would raise KeyError (or lose a number) on the page."""
    wrong = []
    for message in read_po(po_path):
        pairs = zip(message.id, message.string) if isinstance(message.id, tuple) else [(message.id, message.string)]
        for original, translated in pairs:
            if original and translated and _fields(original) != _fields(translated):
                wrong.append(f"{original!r} -> {translated!r}")
    assert wrong == []


def test_a_catalog_with_an_untranslated_or_fuzzy_entry_fails(tmp_path):
    """The catalog checks above fail on a planted empty and a planted fuzzy entry."""
    po_path = catalogs()[0]
    catalog = read_po(po_path)
    catalog.add("A sentence nobody translated")
    catalog.add("Train", "训练", flags=["fuzzy"])
    planted = tmp_path / "zh" / "LC_MESSAGES" / "messages.po"
    planted.parent.mkdir(parents=True)
    with planted.open("wb") as handle:
        pofile.write_po(handle, catalog)
    with pytest.raises(AssertionError, match="A sentence nobody translated"):
        test_catalog_has_every_text_translated_and_nothing_fuzzy(planted)
    with pytest.raises(AssertionError, match="fuzzy: \\['Train'\\]"):
        catalog.get("A sentence nobody translated").string = "没有人翻译的句子"
        with planted.open("wb") as handle:
            pofile.write_po(handle, catalog)
        test_catalog_has_every_text_translated_and_nothing_fuzzy(planted)
    shutil.copy(po_path.with_suffix(".mo"), planted.with_suffix(".mo"))  # compiled before the plant: stale
    with pytest.raises(AssertionError, match="pybabel compile"):
        test_compiled_catalog_matches_its_source(planted)

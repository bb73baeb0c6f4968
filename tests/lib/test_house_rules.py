"""House rules that keep lib usable without Streamlit and pages thin."""

import ast
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras")


def imported_modules(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_ui_modules_import_streamlit():
    offenders = [
        path.name for path in (PROJECT / "lib").glob("*.py")
        if not path.name.startswith("ui") and {"streamlit", "streamlit_drawable_canvas"} & imported_modules(path)
    ]
    assert offenders == []


def test_lib_imports_tensorflow_only_inside_functions():
    offenders = [path.name for path in (PROJECT / "lib").glob("*.py")
                 if set(HEAVY) & imported_modules(path, top_level_only=True)]
    assert offenders == []


def test_pages_are_thin_and_keras_free():
    for page in (PROJECT / "pages").glob("*.py"):
        assert len(page.read_text(encoding="utf-8").splitlines()) <= 150, page.name
        assert not set(HEAVY) & imported_modules(page), page.name


def test_no_deprecated_streamlit_apis():
    deprecated = ("st.cache(", "st.experimental_", "st.beta_")
    for path in [*(PROJECT / "lib").glob("*.py"), *(PROJECT / "pages").glob("*.py"), PROJECT / "streamlit_app.py"]:
        text = path.read_text(encoding="utf-8")
        assert not any(name in text for name in deprecated), path.name

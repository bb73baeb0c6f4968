"""House rules that keep lib usable without Streamlit and pages thin."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras")
# The Keras callbacks: the one lib module that imports Keras at its top, imported only once training starts.
KERAS_MODULES = ("callbacks.py",)
UI_PACKAGE = PROJECT / "lib" / "ui"  # the Streamlit side; every other module in lib is plain Python
ENGINE_MODULES = sorted(
    path.stem for path in (PROJECT / "lib").glob("*.py")
    if not path.name.startswith("_") and path.name not in KERAS_MODULES
)


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


def test_only_the_ui_package_imports_streamlit():
    streamlit = {"streamlit", "streamlit_drawable_canvas"}
    offenders = [
        str(path.relative_to(PROJECT)) for path in (PROJECT / "lib").rglob("*.py")
        if not path.is_relative_to(UI_PACKAGE) and streamlit & imported_modules(path)
    ]
    assert offenders == []
    assert all(streamlit & imported_modules(path) for path in UI_PACKAGE.glob("*.py") if path.name != "__init__.py")


def test_lib_imports_tensorflow_only_inside_functions():
    offenders = [path.name for path in (PROJECT / "lib").rglob("*.py")
                 if path.name not in KERAS_MODULES and set(HEAVY) & imported_modules(path, top_level_only=True)]
    assert offenders == []


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engine_module_imports_neither_streamlit_nor_tensorflow(module):
    """Importing any engine module in a fresh interpreter loads no Streamlit, TensorFlow or Keras."""
    code = f"import sys, lib.{module}; print(sorted({{'streamlit', 'tensorflow', 'keras'}} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_pages_are_thin_and_keras_free():
    for page in (PROJECT / "pages").glob("*.py"):
        assert len(page.read_text(encoding="utf-8").splitlines()) <= 150, page.name
        assert not set(HEAVY) & imported_modules(page), page.name


def test_no_deprecated_streamlit_apis():
    deprecated = ("st.cache(", "st.experimental_", "st.beta_")
    for path in [*(PROJECT / "lib").glob("*.py"), *(PROJECT / "pages").glob("*.py"), PROJECT / "streamlit_app.py"]:
        text = path.read_text(encoding="utf-8")
        assert not any(name in text for name in deprecated), path.name

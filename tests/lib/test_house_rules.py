"""House rules: lib is layered by concern with no import cycles, usable without Streamlit, and pages stay thin.

The import graph is read from the AST of every module under lib/ (lazy imports inside functions
included: a lazy import that hides a cycle is still a cycle).
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
LIB = PROJECT / "lib"
HEAVY = {"tensorflow", "keras"}
# The export converters and runtimes: loaded only in the child process that makes exports (lib.models.exports).
EXPORT_RUNTIMES = {"onnxruntime", "ai_edge_litert", "tf2onnx", "onnx"}
STREAMLIT = {"streamlit", "streamlit_drawable_canvas"}
# The layers, lowest first: a module may import its own package and the packages of lower layers.
# Packages on one line are peers and may not import each other.
LAYERS = (
    ("i18n",),
    ("data",),
    ("models",),
    ("training",),
    ("store",),
    ("execution",),
    ("viz",),
    ("ui", "cli"),
)
# The Keras callbacks: the one module that imports Keras at its top, imported only once a training starts.
KERAS_AT_TOP = {"lib.training.callbacks"}
TOP_LEVEL_FILES = {"__init__.py", "__main__.py", "cli.py"}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lib_modules(root: Path = LIB) -> dict[str, Path]:
    """Every module under `root` by dotted name (packages by their __init__)."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports_of(path: Path, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the file; names as written ("lib.data.datasets", "numpy").

    `from lib.data import datasets` gives "lib.data.datasets" (the caller resolves it to the module or the
    package). With `top_level_only`, imports inside functions and classes are left out (those at the
    module's top, including under a top-level `if`/`try`, count).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node, inside_function):
        for child in ast.iter_child_nodes(node):
            nested = inside_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                                           ast.ClassDef))
            if isinstance(child, ast.Import) and not (top_level_only and inside_function):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and not (top_level_only and inside_function):
                if child.level:  # relative: resolve against the file's package
                    package = module_name(path, LIB if path.is_relative_to(LIB) else path.parent).split(".")
                    if path.name != "__init__.py":
                        package = package[:-1]
                    base = ".".join(package[: len(package) - child.level + 1] + ([child.module] if child.module else []))
                else:
                    base = child.module
                found.extend((f"{base}.{alias.name}", child.lineno) for alias in child.names)
                found.append((base, child.lineno))
            visit(child, nested)

    visit(tree, False)
    return found


def lib_graph(root: Path = LIB) -> dict[str, set[str]]:
    """Module -> the lib modules it imports (a name that is not a module resolves to its package)."""
    modules = lib_modules(root)
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported, _ in imports_of(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "lib" and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def layer_of(module: str) -> int | None:
    """The layer of a lib module (by its first package under lib), None for lib itself and __main__."""
    top = module.split(".")[1] if module.count(".") else ""
    for number, names in enumerate(LAYERS):
        if top in names:
            return number
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a higher layer, or of a peer package on the same layer."""
    found = []
    for module, targets in sorted(graph.items()):
        source = layer_of(module)
        for target in sorted(targets):
            goal = layer_of(target)
            if source is None or goal is None:
                continue
            same_package = module.split(".")[1] == target.split(".")[1]
            if goal > source or (goal == source and not same_package):
                found.append(f"{module} imports {target} ({LAYERS[source]} may not import {LAYERS[goal]})")
    return found


def test_lib_has_no_import_cycles():
    assert cycles(lib_graph()) == []


def test_lib_layers_import_only_downwards():
    assert layer_violations(lib_graph()) == []


def test_every_module_in_lib_is_in_a_layer():
    unplaced = [name for name in lib_modules() if name not in ("lib", "lib.__main__") and layer_of(name) is None]
    assert unplaced == []


def test_lib_top_holds_only_packages_and_the_entry_points():
    loose = sorted(path.name for path in LIB.glob("*.py") if path.name not in TOP_LEVEL_FILES)
    assert loose == []
    packages = {path.parent.name for path in LIB.glob("*/__init__.py")}
    assert packages == {name for layer in LAYERS for name in layer if name != "cli"}


@pytest.mark.parametrize("package", sorted(name for layer in LAYERS for name in layer if name != "cli"))
def test_each_package_says_what_it_owns_and_may_import(package):
    doc = ast.get_docstring(ast.parse((LIB / package / "__init__.py").read_text(encoding="utf-8")))
    assert doc and "May import:" in doc


@pytest.fixture
def lib_copy(tmp_path):
    """A copy of lib/ to plant bad imports in."""
    copy = tmp_path / "lib"
    shutil.copytree(LIB, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n\n" + code + "\n", encoding="utf-8")


def test_the_checks_catch_a_lazy_import_cycle(lib_copy):
    """A cycle hidden by an import inside a function (as runs <-> training once was) is found."""
    _append(lib_copy / "training" / "config.py", "def _saved_runs():\n    from lib.store import runs\n\n    return runs")
    assert ["lib.store.runs", "lib.training.config"] in [sorted(set(c) & {"lib.store.runs", "lib.training.config"})
                                                         for c in cycles(lib_graph(lib_copy))]
    assert any(v.startswith("lib.training.config imports lib.store.runs") for v in layer_violations(lib_graph(lib_copy)))


def test_the_checks_catch_an_upward_import_and_a_cycle_inside_a_package(lib_copy):
    _append(lib_copy / "data" / "paths.py", "from lib.models import architectures  # noqa")
    assert any(v.startswith("lib.data.paths imports lib.models.architectures") for v in layer_violations(lib_graph(lib_copy)))
    _append(lib_copy / "data" / "imagefolder.py", "from lib.data import catalog  # noqa")
    assert ["lib.data.catalog", "lib.data.imagefolder"] in cycles(lib_graph(lib_copy))


def test_the_checks_catch_peers_importing_each_other(lib_copy):
    _append(lib_copy / "ui" / "common.py", "from lib import cli  # noqa")
    assert any(v.startswith("lib.ui.common imports lib.cli") for v in layer_violations(lib_graph(lib_copy)))


def test_only_the_ui_package_imports_streamlit():
    modules = lib_modules()
    offenders = [name for name, path in modules.items()
                 if not name.startswith("lib.ui") and STREAMLIT & {n.split(".")[0] for n, _ in imports_of(path)}]
    assert offenders == []
    ui_modules = [path for name, path in modules.items() if name.startswith("lib.ui.")]
    assert ui_modules and all(STREAMLIT & {n.split(".")[0] for n, _ in imports_of(path)} for path in ui_modules)


def test_lib_imports_tensorflow_only_inside_functions():
    offenders = [name for name, path in lib_modules().items() if name not in KERAS_AT_TOP
                 and HEAVY & {n.split(".")[0] for n, _ in imports_of(path, top_level_only=True)}]
    assert offenders == []


def test_lib_imports_the_export_runtimes_only_inside_functions():
    offenders = [name for name, path in lib_modules().items()
                 if EXPORT_RUNTIMES & {n.split(".")[0] for n, _ in imports_of(path, top_level_only=True)}]
    assert offenders == []


def test_lib_imports_ray_only_inside_functions():
    """Ray (~240 MB, its own threads) loads only when MNIST_STUDIO_RAY_ADDRESS asks for a cluster."""
    offenders = [name for name, path in lib_modules().items()
                 if "ray" in {n.split(".")[0] for n, _ in imports_of(path, top_level_only=True)}]
    assert offenders == []


ENGINE_MODULES = sorted(name for name in lib_modules() if not name.startswith("lib.ui")
                        and name not in KERAS_AT_TOP and name != "lib.__main__")


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engine_module_imports_neither_streamlit_nor_tensorflow(module):
    """Importing any engine module in a fresh interpreter loads no Streamlit, TensorFlow, Keras or export
    runtime (what the Home page and the CLI's light commands rely on)."""
    loaded = sorted({"streamlit", "tensorflow", "keras", "ray", *EXPORT_RUNTIMES})
    code = f"import sys, {module}; print(sorted(set({loaded!r}) & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_pages_are_thin_and_keras_free():
    for page in (PROJECT / "pages").glob("*.py"):
        assert len(page.read_text(encoding="utf-8").splitlines()) <= 150, page.name
        assert not (HEAVY | EXPORT_RUNTIMES) & {n.split(".")[0] for n, _ in imports_of(page)}, page.name


def test_no_deprecated_streamlit_apis():
    deprecated = ("st.cache(", "st.experimental_", "st.beta_")
    files = [*LIB.rglob("*.py"), *(PROJECT / "pages").glob("*.py"), PROJECT / "streamlit_app.py"]
    assert any(path.is_relative_to(LIB / "ui") for path in files)
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not any(name in text for name in deprecated), path.name

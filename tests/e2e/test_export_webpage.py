"""The ONNX export's browser page in headless Chromium: it classifies a picture and a mouse drawing as
the app does, with the same preprocessing as the Python snippet.

onnxruntime-web comes from the npm registry (`npm pack`, the files the page loads from the CDN);
the test serves them in place of the CDN, so it needs no network beyond the registry.
"""

import json
import mimetypes
import shutil
import subprocess
import tarfile
import types

import numpy as np
import pytest
from PIL import Image

from lib.data import drawing
from lib.models import exports, inference, snippets, webpage
from lib.store import runs
from tests.e2e.conftest import browser_missing_reason

_missing = browser_missing_reason()
if _missing:
    pytest.skip(f"BROWSER TESTS SKIPPED: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.e2e

ORT_FILES = (webpage.ORT_WEB_SCRIPT, "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
CONTENT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}


@pytest.fixture(scope="module")
def ort_web_dist(tmp_path_factory):
    """onnxruntime-web's WebAssembly build, the release the page pins, from the npm registry."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("BROWSER PAGE TEST SKIPPED: npm not found (apt-get install npm)")
    folder = tmp_path_factory.mktemp("onnxruntime-web")
    done = subprocess.run([npm, "pack", f"onnxruntime-web@{webpage.ORT_WEB_VERSION}", "--silent"], cwd=folder,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"npm pack onnxruntime-web failed: {done.stderr[-500:]}"
    with tarfile.open(next(folder.glob("*.tgz"))) as archive:
        members = [archive.getmember(f"package/dist/{name}") for name in ORT_FILES]
        archive.extractall(folder, members=members, filter="data")
    return folder / "package" / "dist"


@pytest.fixture(scope="module")
def exported_page(tmp_path_factory, tiny_data_dir):
    """The bundled model (a real CNN) exported to ONNX and its browser page written to disk."""
    run = runs.bundled_run()
    folder = tmp_path_factory.mktemp("webpage")
    facts = exports.ModelFacts.of(run)
    check = exports.make_exports(run.model_path, folder / "exports", facts, ["onnx"], data_dir=tiny_data_dir)["onnx"]
    assert check.ok, check.reason
    page = folder / "classify.html"
    page.write_text(webpage.page_for(facts, (folder / "exports" / "model.onnx").read_bytes(), name=run.display_name),
                    encoding="utf-8")
    return run, page


@pytest.fixture
def page(browser, ort_web_dist, exported_page):
    """The page open in a fresh tab, onnxruntime-web served from the local copy in place of the CDN."""
    context = browser.new_context()
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda error: errors.append(str(error)))

    def serve(route):
        name = route.request.url.split("?")[0].rsplit("/", 1)[1]
        path = ort_web_dist / name
        if not path.is_file():
            route.fulfill(status=404, body=f"{name} is not in the local copy")
            return
        kind = CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        route.fulfill(path=str(path), headers={"Access-Control-Allow-Origin": "*", "Content-Type": kind})

    tab.route(f"{webpage.ORT_WEB_DIST}**", serve)
    tab.goto(exported_page[1].as_uri())
    tab.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
    yield tab
    context.close()
    assert not errors, f"uncaught JavaScript errors in the page: {errors}"


def page_answer(tab) -> np.ndarray:
    tab.wait_for_selector("body[data-probabilities]", state="attached", timeout=30_000)
    return np.array(json.loads(tab.get_attribute("body", "data-probabilities")), dtype=np.float32)


def snippet_preprocess(run):
    """The Python snippet's `preprocess`, from the snippet's own text."""
    module = types.ModuleType("snippet")
    code = snippets.snippet("onnx", exports.ModelFacts.of(run)).replace("import onnxruntime\n", "")
    exec(compile(code, "classify_onnx.py", "exec"), module.__dict__)  # noqa: S102 - our own generated code
    return module.preprocess


def test_the_page_classifies_a_picture_as_the_app_and_the_snippet_do(page, exported_page, tiny_data_dir, tmp_path):
    """As a learner, I open the ONNX export's page, pick a picture of a digit, and get the app's answer."""
    run, _ = exported_page
    with np.load(tiny_data_dir / "mnist.npz") as npz:
        digit = npz["x_test"][1]
    picture = tmp_path / "digit.png"
    Image.fromarray(255 - np.kron(digit, np.ones((4, 4), dtype=np.uint8))).save(picture)  # dark ink on paper
    page.set_input_files("#picture", str(picture))
    probs = page_answer(page)

    _, app_probs = inference.predict_image(runs.load_model(run), run, drawing.load_image_file(picture))
    assert probs.shape == app_probs.shape == (10,)
    assert probs.argmax() == app_probs.argmax()
    assert abs(probs.max() - app_probs.max()) < 0.15  # the app also evens out stroke widths
    seen = np.array(page.evaluate("() => Array.from(document.getElementById('seen').getContext('2d')"
                                  ".getImageData(0, 0, 28, 28).data)"), dtype=np.float32)[::4].reshape(28, 28) / 255
    np.testing.assert_allclose(seen, snippet_preprocess(run)(str(picture))[0, :, :, 0], atol=0.02)
    assert page.locator("#answer li").first.inner_text().startswith(run.class_names[int(app_probs.argmax())])


def test_the_page_classifies_a_mouse_drawing_as_the_app_does(page, exported_page):
    """As a learner, I draw a 7 with the mouse on the page and it answers as the app answers that drawing."""
    run, _ = exported_page
    pad = page.locator("#pad").bounding_box()
    page.mouse.move(pad["x"] + 70, pad["y"] + 60)
    page.mouse.down()
    for x, y in ((140, 60), (210, 60), (170, 150), (130, 240)):
        page.mouse.move(pad["x"] + x, pad["y"] + y, steps=12)
    page.mouse.up()
    probs = page_answer(page)
    canvas = np.array(page.evaluate("() => Array.from(document.getElementById('pad').getContext('2d')"
                                    ".getImageData(0, 0, 280, 280).data)"), dtype=np.uint8).reshape(280, 280, 4)
    _, app_probs = inference.predict_image(runs.load_model(run), run, canvas)
    assert probs.argmax() == app_probs.argmax() == run.class_names.index("7")
    assert abs(probs.max() - app_probs.max()) < 0.15

"""Exports: a run's model as a TensorFlow SavedModel, TFLite (float32 and dynamic-range quantized)
or ONNX, each loaded back with its own runtime and checked against Keras before it is offered.

Keras 3 on TensorFlow writes all three (`model.export(format="tf_saved_model" | "litert" |
"onnx")`; ONNX goes through tf2onnx's `from_function`, the path that works for Keras 3, unlike
`from_keras`). Each file is then opened the way its users will open it, TensorFlow for the
SavedModel, `ai-edge-litert` for TFLite (`tf.lite.Interpreter` is deprecated), `onnxruntime` for
ONNX, and run on 100 test images: the largest difference in class probabilities against Keras and
whether the predicted class agrees on all 100 are recorded, and an export that fails or disagrees
is not offered, with the reason. (A quantized file may only differ where Keras itself is torn between
two classes, its top two within NEAR_TIE; the page says how many.)

Exports are cached per run in a folder of their own (`<run>/exports/`): each file is written under
a temporary name and moved into place, its check (`<format>.json`, keyed by the model file's
SHA-256 and the library versions) last, so a crash never leaves a file that looks checked. On a
server the work runs in a child process (`python -m lib.models.exports REQUEST_JSON`, started by
lib.execution.exporting): TensorFlow's converters and the runtimes never load into the server,
and pages that do not export never import them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lib.data import catalog
from lib.i18n import N_, _, translate_filled

CHECK_IMAGES = 100  # test images each export is run on against Keras
FLOAT_TOLERANCE = 1e-4  # float32 exports compute what Keras computes, in another order (seen: ~1e-7)
LOSSY_TOLERANCE = 0.05  # int8 weights (quantized) or a bfloat16 run against its float32 export
# A lossy export may pick another class only where Keras itself is torn: its top two this close.
NEAR_TIE = 0.05
EXPORTS_SUBDIR = "exports"
CHECK_SUFFIX = ".json"
CHILD_NICENESS = 10  # an export yields the CPU to the server's page runs, as a training does
PACKAGES = ("tensorflow", "keras", "ai_edge_litert", "onnxruntime", "tf2onnx", "onnx")


@dataclass(frozen=True)
class ExportFormat:
    name: str  # what `python -m lib export --format` takes
    title: str
    file_name: str  # in the run's exports folder; downloads are named <run id>-<file_name>
    runtime: str  # what loads it back for the check (and in the snippet)
    mime: str
    lossy: bool = False  # quantized: probabilities may move a little, the class may not
    note: str = ""


FORMATS = {
    "savedmodel": ExportFormat("savedmodel", "TensorFlow SavedModel", "savedmodel.zip", "TensorFlow",
                               "application/zip", note=N_("TF Serving, TensorFlow in Python, C++ or Java; "
                                        "a zip of the SavedModel folder")),
    "tflite": ExportFormat("tflite", "TFLite (float32)", "model.tflite", "ai-edge-litert",
                           "application/octet-stream", note=N_("phones and small devices (LiteRT)")),
    "tflite-quant": ExportFormat("tflite-quant", "TFLite (quantized)", "model-quant.tflite", "ai-edge-litert",
                                 "application/octet-stream", lossy=True,
                                 note=N_("weights in 8 bits (dynamic range): about 4x smaller")),
    "onnx": ExportFormat("onnx", "ONNX", "model.onnx", "onnxruntime", "application/octet-stream",
                         note=N_("ONNX Runtime anywhere: Python, C#, Java, JavaScript (onnxruntime-web)")),
}


@dataclass(frozen=True)
class ModelFacts:
    """What an export and its snippet need to know about a run, as plain data (it crosses to the child)."""

    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    normalize: bool  # trained on pixels / 255 (else raw 0..255)
    kind: str  # "digit" (MNIST preprocessing for drawings) or "object"
    dataset: str  # the dataset name: its test images check the exports
    dataset_title: str = ""
    mixed_precision: bool = False  # trained in bfloat16/float16: exported in float32

    @classmethod
    def of(cls, run) -> ModelFacts:
        """From a run (anything with `.dataset`, `.normalize`, `.class_names` and `.meta`, like runs.RunInfo)."""
        dataset = run.dataset
        shape = tuple(int(n) for n in (dataset.get("input_shape") or (28, 28, 1)))
        return cls(input_shape=shape, class_names=tuple(str(n) for n in run.class_names),
                   normalize=bool(run.normalize), kind=str(dataset.get("kind") or "digit"),
                   dataset=str(dataset.get("name") or ""), dataset_title=str(dataset.get("title") or ""),
                   mixed_precision=str(run.meta.get("precision") or "float32").startswith("mixed"))

    @classmethod
    def from_dict(cls, data: dict) -> ModelFacts:
        return cls(**{**data, "input_shape": tuple(data["input_shape"]), "class_names": tuple(data["class_names"])})


@dataclass(frozen=True)
class ExportCheck:
    """One export and how it compared with Keras; `ok` False means it is not offered, `reason` says why."""

    format: str
    ok: bool
    reason: str = ""
    bytes: int = 0
    max_prob_diff: float | None = None
    agree: int = 0  # images on which it predicts Keras' class
    near_ties: int = 0  # lossy only: the other images, each one where Keras' top two are within NEAR_TIE
    images: int = 0
    image_source: str = ""
    tolerance: float = FLOAT_TOLERANCE
    seconds: float = 0.0  # conversion and check
    model_digest: str = ""
    versions: dict = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return FORMATS[self.format].file_name

    @property
    def summary(self) -> str:
        """One line for the page and the CLI: the size and what the check found."""
        if not self.ok:
            return f"not offered: {self.reason}"
        return f"{human_bytes(self.bytes)} · {self.check_text}"

    @property
    def check_text(self) -> str:
        """What the check of an offered export found."""
        return _("checked with {runtime} on {source}: largest probability difference {difference:.1e}, same class "
                 "on {agree}/{images}").format(runtime=FORMATS[self.format].runtime, source=translate_filled(self.image_source),
                                               difference=self.max_prob_diff, agree=self.agree,
                                               images=self.images) + self.ties_note

    @property
    def ties_note(self) -> str:
        return (" " + _("(the other {count}: Keras' top two classes within {gap:g} of each other)").format(
            count=self.near_ties, gap=NEAR_TIE) if self.near_ties else "")


# What a check ran on, and why an export is not offered: English (the CLI, the cached check files), marked for
# the catalog and shown translated on a page (lib.i18n.translate_filled; `dataset` is a title, translated too).
TEST_IMAGES = N_("{count} test images of {dataset}")
GENERATED_IMAGES = N_("{count} generated images (its dataset is not available here)")
ANSWERS_NAN = N_("the model answers NaN (its training diverged): there is nothing worth exporting; train it again "
                 "with a lower learning rate")
CONVERSION_FAILED = N_("{title} conversion failed ({error})")
DOES_NOT_RUN = N_("the exported file does not run in {runtime} ({error})")
WRONG_SHAPE = N_("it answers with shape {shape}, Keras with {expected}")
OTHER_CLASS = N_("it predicts another class than Keras on {differ} of {images} check images")
OTHER_CLASS_SURE = N_("it predicts another class than Keras on {differ} of {images} check images, {sure} of them where "
                      "Keras is sure")
RUN_GONE = N_("{folder} is gone (the run was deleted?); nothing was exported.")
PROBABILITIES_DIFFER = N_("its probabilities differ from Keras' by up to {difference:.2g}, more than the {tolerance:g} "
                          "allowed")


class ExportFailed(RuntimeError):
    """An export could not be made or checked; the message is for the user."""


def human_bytes(count: int) -> str:
    if count < 1024 * 1024:
        return f"{count / 1024:,.1f} KB"
    return f"{count / 2**20:,.1f} MB"


def export_dir(run_folder: Path) -> Path:
    """Where a run's exports are cached: a folder of its own inside the run."""
    return Path(run_folder) / EXPORTS_SUBDIR


def model_digest(model_path: Path) -> str:
    """SHA-256 of a model file: a cached export belongs to exactly this model."""
    digest = hashlib.sha256()
    with Path(model_path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checks(out_dir: Path, model_path: Path) -> dict[str, ExportCheck]:
    """The cached checks in `out_dir` that still hold for `model_path`: same model, same libraries,
    and for an offered export its file there with the checked size. Cheap: imports no library."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return {}
    digest = None
    found = {}
    for name, spec in FORMATS.items():
        check = _read_check(out_dir / f"{name}{CHECK_SUFFIX}")
        if check is None:
            continue
        digest = digest or model_digest(model_path)
        if check.model_digest != digest or check.versions != library_versions():  # an upgrade remakes them
            continue
        if check.ok:
            path = out_dir / spec.file_name
            if not path.is_file() or path.stat().st_size != check.bytes:
                continue
        found[name] = check
    return found


def _read_check(path: Path) -> ExportCheck | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ExportCheck(**data) if isinstance(data, dict) and data.get("format") in FORMATS else None
    except (OSError, ValueError, TypeError):
        return None


def make_exports(model_path: Path, out_dir: Path, facts: ModelFacts, formats=tuple(FORMATS), *,
                 data_dir=None, uploads_dir=None) -> dict[str, ExportCheck]:
    """Export the model in `model_path` to each of `formats` in `out_dir`, check each against Keras and
    cache it; returns the checks (a failed or disagreeing export has `ok` False and no file).

    Loads TensorFlow, the converters and the runtimes: call it in a child process on a server.
    """
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ValueError(f"Unknown export format: {unknown[0]!r}. Known: {', '.join(FORMATS)}.")
    from lib.models import inference, modelfiles

    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():  # never recreate a run folder deleted meanwhile: it would list as damaged
        raise ExportFailed(RUN_GONE.format(folder=out_dir.parent))
    out_dir.mkdir(exist_ok=True)
    try:
        model = modelfiles.load_keras_file(model_path)
    except modelfiles.UnusableModel as problem:
        raise ExportFailed(str(problem)) from None
    digest = model_digest(model_path)
    images, source = check_images(facts, data_dir, uploads_dir)
    reference = inference.predict_proba(model, images, normalize=facts.normalize)
    x = inference.model_input(images, normalize=facts.normalize)
    versions = library_versions()
    plain = float32_model(model)
    checks = {}
    for name in formats:
        started = time.monotonic()
        check = _export_and_check(plain, name, out_dir, x, reference, facts)
        diff = check.max_prob_diff if check.max_prob_diff is None or math.isfinite(check.max_prob_diff) else None
        check = ExportCheck(**{**asdict(check), "image_source": source, "model_digest": digest, "versions": versions,
                               "seconds": round(time.monotonic() - started, 2), "max_prob_diff": diff})
        text = json.dumps(asdict(check), indent=2, allow_nan=False)  # strict JSON: a NaN answer has no difference
        _write_atomic(out_dir / f"{name}{CHECK_SUFFIX}", text.encode("utf-8"))
        checks[name] = check
    return checks


def _export_and_check(model, name: str, out_dir: Path, x: np.ndarray, reference: np.ndarray,
                      facts: ModelFacts) -> ExportCheck:
    """Export one format under a temporary name, check it, and move it into place only if it passes."""
    spec = FORMATS[name]
    tolerance = LOSSY_TOLERANCE if spec.lossy or facts.mixed_precision else FLOAT_TOLERANCE
    final = out_dir / spec.file_name
    if not np.isfinite(reference).all():
        final.unlink(missing_ok=True)
        return ExportCheck(name, False, ANSWERS_NAN, tolerance=tolerance)
    tmp = out_dir / f".tmp-{secrets.token_hex(4)}-{spec.file_name}"
    try:
        try:
            write_format(model, name, tmp)
        except Exception as error:  # noqa: BLE001 - any converter failure is reported, not raised
            return _refused(name, final, CONVERSION_FAILED.format(title=spec.title, error=_short(error)), tolerance)
        try:
            probs = np.asarray(load_runtime(name, tmp)(x), dtype=np.float32)
        except Exception as error:  # noqa: BLE001 - a file that does not load is exactly what we check for
            return _refused(name, final, DOES_NOT_RUN.format(runtime=spec.runtime, error=_short(error)), tolerance)
        if probs.shape != reference.shape:
            return _refused(name, final, WRONG_SHAPE.format(shape=probs.shape, expected=reference.shape), tolerance)
        measured = compare(probs, reference, lossy=spec.lossy)
        problem = disagreement(measured, tolerance, lossy=spec.lossy)
        if problem:
            return _refused(name, final, problem, tolerance, **measured)
        size = tmp.stat().st_size
        os.replace(tmp, final)
        return ExportCheck(name, True, bytes=size, tolerance=tolerance, **measured)
    finally:
        tmp.unlink(missing_ok=True)


def compare(probs: np.ndarray, reference: np.ndarray, *, lossy: bool) -> dict:
    """How an export's probabilities compare with Keras' on the same images: the largest difference,
    the images where it picks Keras' class, and (lossy formats) how many others are near-ties in Keras."""
    diff = float(np.max(np.abs(probs - reference))) if np.isfinite(probs).all() else float("inf")
    differs = probs.argmax(axis=1) != reference.argmax(axis=1)
    top_two = np.sort(reference, axis=1)[:, -2:]
    torn = differs & (top_two[:, 1] - top_two[:, 0] <= NEAR_TIE)
    return {"max_prob_diff": diff, "agree": len(probs) - int(differs.sum()), "images": len(probs),
            "near_ties": int(torn.sum()) if lossy else 0}


def disagreement(measured: dict, tolerance: float, *, lossy: bool) -> str:
    """Why an export with these measurements is not offered ("" if it is)."""
    differ = measured["images"] - measured["agree"]
    if differ > measured["near_ties"]:
        return (OTHER_CLASS_SURE if lossy else OTHER_CLASS).format(differ=differ, images=measured["images"],
                                                                   sure=differ - measured["near_ties"])
    if not measured["max_prob_diff"] <= tolerance:
        return PROBABILITIES_DIFFER.format(difference=measured["max_prob_diff"], tolerance=tolerance)
    return ""


def _refused(name: str, final: Path, reason: str, tolerance: float, **measured) -> ExportCheck:
    final.unlink(missing_ok=True)  # an older export of the same model would now be offered unchecked
    return ExportCheck(name, False, reason, tolerance=tolerance, **measured)


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def write_format(model, name: str, path: Path) -> None:
    """Write `model` (float32) to `path` in export format `name`."""
    path = Path(path)
    if name == "savedmodel":
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".savedmodel-") as folder:
            saved = Path(folder) / "savedmodel"
            model.export(str(saved), format="tf_saved_model", verbose=False)
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(saved.rglob("*")):
                    if file.is_file():
                        archive.write(file, file.relative_to(saved.parent).as_posix())
    elif name in ("tflite", "tflite-quant"):
        import tensorflow as tf

        options = {"optimizations": [tf.lite.Optimize.DEFAULT]} if name == "tflite-quant" else {}
        tflite = path.with_name(path.name + ".tflite")  # Keras insists on the suffix
        model.export(str(tflite), format="litert", verbose=False, **options)
        os.replace(tflite, path)
    elif name == "onnx":
        with contextlib.redirect_stdout(sys.stderr):  # tf2onnx reports progress on stdout
            model.export(str(path), format="onnx", verbose=False)
    else:
        raise ValueError(f"Unknown export format: {name!r}. Known: {', '.join(FORMATS)}.")


def load_runtime(name: str, path: Path):
    """The exported file at `path` opened with its own runtime: a function from float32 images
    (N, H, W, C) in the model's range to class probabilities (N, K)."""
    path = Path(path)
    if name == "savedmodel":
        import tensorflow as tf

        folder = Path(tempfile.mkdtemp(prefix="mnist-studio-savedmodel-"))
        try:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(folder)  # our own zip, just written: no foreign paths in it
            loaded = tf.saved_model.load(str(folder / "savedmodel"))  # kept: `serve` needs its variables alive
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # loaded: the graph and weights are in memory
        return lambda x: loaded.serve(tf.constant(x)).numpy()
    if name in ("tflite", "tflite-quant"):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        entry = interpreter.get_input_details()[0]
        exit_index = interpreter.get_output_details()[0]["index"]
        shape = []  # the batch shape the tensors are allocated for

        def run(x):
            if list(x.shape) != shape:
                interpreter.resize_tensor_input(entry["index"], list(x.shape))
                interpreter.allocate_tensors()
                shape[:] = x.shape
            interpreter.set_tensor(entry["index"], np.ascontiguousarray(x, dtype=np.float32))
            interpreter.invoke()
            return interpreter.get_tensor(exit_index).copy()

        return run
    if name == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        return lambda x: session.run(None, {input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
    raise ValueError(f"Unknown export format: {name!r}. Known: {', '.join(FORMATS)}.")


def float32_model(model):
    """`model` computing in float32: a run trained in mixed precision is rebuilt with float32 layers
    (its weights are float32 already); ONNX export needs it and every runtime is fastest with it."""
    if all(getattr(layer.dtype_policy, "name", "float32") == "float32" for layer in model.layers):
        return model
    import keras

    def as_float32(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    clone = keras.models.clone_model(model, clone_function=as_float32)
    clone.set_weights(model.get_weights())
    clone(np.zeros((1, *model.input_shape[1:]), dtype=np.float32))  # the ONNX exporter wants a model once called
    return clone


def check_images(facts: ModelFacts, data_dir=None, uploads_dir=None) -> tuple[np.ndarray, str]:
    """CHECK_IMAGES uint8 images (N, H, W, C) to compare an export with Keras on, and what they are:
    test images of the run's dataset spread over its test set; generated images where the dataset is
    not available here (an imported run's) or does not fit the model."""
    try:
        dataset = catalog.load_dataset(facts.dataset, data_dir, uploads_dir)
        x_test = dataset.x_test
        if x_test.ndim == 3:
            x_test = x_test[..., np.newaxis]
        if tuple(x_test.shape[1:]) == tuple(facts.input_shape) and len(x_test):
            picks = np.linspace(0, len(x_test) - 1, min(CHECK_IMAGES, len(x_test))).round().astype(int)
            title = dataset.info.title or facts.dataset
            return x_test[picks], TEST_IMAGES.format(count=len(picks), dataset=title)
    except Exception:  # noqa: BLE001 - any dataset problem: fall back to generated images, and say so
        pass
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(CHECK_IMAGES, *facts.input_shape), dtype=np.uint8)
    return images, GENERATED_IMAGES.format(count=CHECK_IMAGES)


@functools.lru_cache(maxsize=1)
def _installed_versions() -> tuple:
    from importlib import metadata

    found = []
    for package in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "onnxruntime", "tf2onnx", "onnx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append((package, metadata.version(package)))
    return tuple(found)


def library_versions() -> dict:
    """The versions of what makes and checks exports (read from the installed metadata: imports nothing)."""
    return dict(_installed_versions())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def request_json(model_path: Path, out_dir: Path, facts: ModelFacts, formats, *, data_dir=None,
                 uploads_dir=None) -> str:
    """What the child process (`main`) is asked to do, as one JSON argument."""
    return json.dumps({"model": str(model_path), "out": str(out_dir), "facts": asdict(facts),
                       "formats": list(formats), "data_dir": str(data_dir) if data_dir else None,
                       "uploads_dir": str(uploads_dir) if uploads_dir else None})


def main(argv: list[str] | None = None) -> int:
    """The child process: make and check the exports a request JSON asks for; the checks go to their
    files, one JSON line of them to stdout; a problem is one line on stderr and exit code 1."""
    argv = sys.argv[1:] if argv is None else argv
    with contextlib.suppress(OSError, AttributeError):
        os.nice(CHILD_NICENESS)
    try:
        request = json.loads(argv[0])
        checks = make_exports(Path(request["model"]), Path(request["out"]), ModelFacts.from_dict(request["facts"]),
                              request["formats"], data_dir=request.get("data_dir"),
                              uploads_dir=request.get("uploads_dir"))
    except (ExportFailed, ValueError, OSError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    except Exception as problem:  # noqa: BLE001 - the parent shows one line, never a traceback
        print(f"error: unexpected {type(problem).__name__}: {problem}", file=sys.stderr)
        return 1
    print(json.dumps({name: asdict(check) for name, check in checks.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

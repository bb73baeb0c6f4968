"""Export benchmark: each format's size, its agreement with Keras on 100 test images, and its
single-image latency in its own runtime against Keras' own `model.predict`.

    python bench/export.py [--runs N]

Exports the bundled default model (cnn-best, 242k parameters) to every format the app offers (in a
temporary folder, the way the app's child process does, checks included), then times one image at a
time: `model.predict` (what a Keras user calls), the app's traced forward pass for reference, and
each export in its runtime (TensorFlow for the SavedModel, ai-edge-litert, onnxruntime). Writes
bench/results-export.json: per format `bytes`, `max_prob_diff`, `agree_100`,
`latency_ratio_vs_keras` (its median latency / `model.predict`'s: below 1 is faster). Needs the real
MNIST in $MNIST_STUDIO_DATA_DIR (or data/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import numpy as np

from lib.data import catalog
from lib.models import exports, inference
from lib.store import runs

RESULTS = PROJECT / "bench" / "results-export.json"


def median_ms(call, x_images, runs_count: int) -> float:
    """Median milliseconds of `call(x)` over `runs_count` single images (after two warm-up calls)."""
    call(x_images[0:1])
    call(x_images[1:2])
    timings = []
    for index in range(runs_count):
        x = x_images[index % len(x_images)][np.newaxis]
        started = time.perf_counter()
        call(x)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="single-image calls timed per runtime")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    run = runs.get_run(runs.BUNDLED_ID)
    facts = exports.ModelFacts.of(run)
    dataset = catalog.load_dataset("mnist")
    x = inference.model_input(dataset.x_test[:args.runs], normalize=run.normalize)
    model = runs.load_model(run)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        checks = exports.make_exports(run.model_path, Path(folder), facts)
        export_seconds = time.monotonic() - started
        keras_ms = median_ms(lambda batch: model.predict(batch, verbose=0), x, args.runs)
        forward = inference.compiled_forward(model)
        forward_ms = median_ms(lambda batch: forward(batch), x, args.runs)
        formats = {}
        for name, check in checks.items():
            row = {"bytes": check.bytes, "max_prob_diff": check.max_prob_diff,
                   "agree_100": check.ok and check.agree == check.images == 100,
                   "agree": check.agree, "near_ties": check.near_ties, "offered": check.ok,
                   "reason": check.reason, "runtime": exports.FORMATS[name].runtime}
            if check.ok:
                runtime = exports.load_runtime(name, Path(folder) / exports.FORMATS[name].file_name)
                latency = median_ms(runtime, x, args.runs)
                row |= {"latency_ms": round(latency, 3), "latency_ratio_vs_keras": round(latency / keras_ms, 4)}
            formats[name] = row
    results = {
        "model": f"bundled default ({run.meta.get('arch')}, {run.meta.get('params'):,} parameters)",
        "check_images": checks["onnx"].image_source,
        "keras_file_bytes": run.model_path.stat().st_size,
        "keras_predict_ms": round(keras_ms, 3),
        "app_forward_ms": round(forward_ms, 3),
        "export_and_check_seconds": round(export_seconds, 1),
        "timed_single_images": args.runs,
        "formats": formats,
        "machine": {"cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
                    "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                    **{key: value for key, value in exports.library_versions().items()
                       if key in ("ai-edge-litert", "onnxruntime", "tf2onnx", "onnx")}},
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

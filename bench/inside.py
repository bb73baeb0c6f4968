"""Inside page benchmarks: one input's activations + saliency, and the 2-D maps of 2,000 test images
(the penultimate-layer features, computed once per run, timed apart from the PCA and t-SNE layouts).

    python bench/inside.py

Prints `inside_ms_median`, `map_pca_s` and `map_nonlinear_s` as one JSON line;
bench/run.py imports `bench_inside`. Needs the real MNIST in $MNIST_STUDIO_DATA_DIR (or data/).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from lib.data import catalog
from lib.models import inside
from lib.store import runs

INPUT_REPEATS = 30  # one drawing's worth of updates


def bench_inside(dataset=None) -> dict:
    """Medians on the bundled default model: the live Inside update and both embedding maps."""
    dataset = dataset or catalog.load_dataset("mnist")
    run = runs.get_run(runs.BUNDLED_ID)
    model = runs.load_model(run)
    images01 = dataset.x_test[:INPUT_REPEATS + 1].astype("float32") / 255.0
    inside.analyze(model, images01[-1], normalize=run.normalize)  # trace the graph once, as the page's first draw does
    timings = []
    for image in images01[:INPUT_REPEATS]:
        started = time.perf_counter()
        inside.analyze(model, image, normalize=run.normalize)
        timings.append(time.perf_counter() - started)
    # The page computes the features once per run (cached), then lays them out: timed apart.
    indices = inside.sample_indices(len(dataset.x_test))
    started = time.perf_counter()
    features, _ = inside.penultimate_features(model, dataset.x_test[indices], normalize=run.normalize)
    features_s = time.perf_counter() - started
    maps = {}
    for name, layout in (("pca", inside.pca_2d), ("tsne", inside.tsne_2d)):
        started = time.perf_counter()
        layout(features)
        maps[name] = time.perf_counter() - started
    return {
        "inside_ms_median": round(1000 * statistics.median(timings), 2),
        "map_pca_s": round(maps["pca"], 2),
        "map_nonlinear_s": round(maps["tsne"], 1),
        "map_features_s": round(features_s, 2),
        "map_points": len(indices),
    }


if __name__ == "__main__":
    print(json.dumps(bench_inside()))

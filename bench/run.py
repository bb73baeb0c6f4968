"""MNIST Studio benchmarks: side-by-side ratios measured in one process run.

    python bench/run.py [--quick]

Writes bench/results.json and bench/RESULTS.md and prints the Markdown table.
The machine is shared and noisy, so every claim is a ratio of two measurements
taken back to back here, never a wall-clock limit. Needs the real MNIST in
$MNIST_STUDIO_DATA_DIR (or data/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from lib import architectures, datasets, drawing, inference, paths, runs, synthdigits, training  # noqa: E402
from lib.training import TrainConfig  # noqa: E402

BENCH_ARCH = "cnn-tf-tutorial"
PLAIN_BATCH = 32  # the tutorial's model.fit default
FULL = {"train_images": 60_000, "epochs": 2, "overhead_images": 20_000, "zoo_epochs": None, "zoo_limit": None,
        "rss_epochs": 1, "live_images": 30_000, "repeats": 3}
QUICK = {"train_images": 15_000, "epochs": 1, "overhead_images": 8_000, "zoo_epochs": 1, "zoo_limit": 10_000,
         "rss_epochs": 1, "live_images": 12_000, "repeats": 2}
LOAD_MARKER = "<!-- bench/load.py -->"  # RESULTS.md from here on is written by bench/load.py
PRECISION_IMAGES = 3_000  # emulated bfloat16 is slow: a short run tells the ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs; under 10 minutes")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    dataset = datasets.load_dataset("mnist")
    results = {"mode": "quick" if args.quick else "full", "machine": machine_facts()}
    results.update(bench_training(dataset, plan))
    results.update(bench_precision(dataset))
    results.update(bench_ui_overhead(dataset, plan))
    results.update(bench_live_panel(plan))
    results.update(bench_inference(dataset))
    results.update(bench_home())
    results.update(bench_peak_rss(plan))
    results["zoo_accuracy"] = bench_zoo(dataset, plan)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    write_results(results)
    return 0


def machine_facts() -> dict:
    import keras
    import tensorflow as tf

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "native_bf16": training.cpu_has_native_bf16(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def bench_training(dataset, plan) -> dict:
    """The engine (precision auto, progress on) vs the tutorial's plain float32 model.fit."""
    data = datasets.prepare(dataset, validation_split=0.1, limit=_limit(plan["train_images"], dataset), seed=0)
    layers = architectures.get_architecture(BENCH_ARCH).layer_list()
    # The ceiling is taken just before and just after plain fit, so it shares plain fit's noise;
    # the higher of the two is the conservative bound for what any engine could gain here.
    ceilings = [compute_ceiling()]
    plain_rate, plain_accuracy = plain_fit(data, layers, plan["epochs"])
    ceilings.append(compute_ceiling())
    # The tutorial's optimizer settings (constant rate), so only the engine's machinery differs.
    engine_config = TrainConfig(arch=BENCH_ARCH, epochs=plan["epochs"], validation_split=0.1, lr_schedule="constant")
    result = training.train(engine_config, data, on_progress=_AppProgress())
    macs = architectures.forward_macs_per_sample(layers, data.input_shape, data.num_classes)
    return {
        "train_images": int(len(data.y_train)),
        "train_epochs": plan["epochs"],
        "engine_batch_size": engine_config.batch_size,
        "engine_precision": result.precision,
        "train_samples_per_s_engine": round(result.samples_per_s, 1),
        "train_samples_per_s_plain_fit": round(plain_rate, 1),
        "train_speedup_vs_plain_fit": round(result.samples_per_s / plain_rate, 3),
        "test_accuracy_engine": round(result.test_accuracy, 4),
        "test_accuracy_plain_fit": round(plain_accuracy, 4),
        "train_samples_per_s_compute_ceiling": round(max(ceilings), 1),
        "compute_ceiling_runs": [round(rate, 1) for rate in ceilings],
        "ceiling_speedup_vs_plain_fit": round(max(ceilings) / plain_rate, 3),
        "train_flops_per_sample": 6 * macs,  # forward 2*MACs, backward about twice that
        "train_gflops_per_s": round(6 * macs * result.samples_per_s / 1e9, 2),
    }


def plain_fit(data, layers, epochs) -> tuple[float, float]:
    """The tutorials' way: float arrays in memory, model.fit, batch 32, no callbacks."""
    import keras

    keras.utils.set_random_seed(0)
    model = architectures.build_model(layers, data.input_shape, data.num_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x_train = data.x_train.astype("float32") / 255.0
    x_val = data.x_val.astype("float32") / 255.0
    started = time.perf_counter()
    model.fit(x_train, data.y_train, batch_size=PLAIN_BATCH, epochs=epochs, verbose=0,
              validation_data=(x_val, data.y_val))
    seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(data.x_test.astype("float32") / 255.0, data.y_test, batch_size=1024, verbose=0)
    return epochs * len(data.y_train) / seconds, float(accuracy)


class _AppProgress:
    """What the app's job manager does with every progress event: append under a lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []

    def __call__(self, event):
        with self.lock:
            self.events.append(event)


def bench_ui_overhead(dataset, plan) -> dict:
    """Engine time with the app's progress callback / without, alternated to share the noise."""
    data = datasets.prepare(dataset, validation_split=0.0, limit=_limit(plan["overhead_images"], dataset), seed=1)
    config = TrainConfig(arch=BENCH_ARCH, epochs=1, validation_split=0.0)
    training.train(config, data)  # warm up: graph tracing and caches
    with_progress, without = [], []
    for _ in range(3):
        with_progress.append(training.train(config, data, on_progress=_AppProgress()).seconds)
        without.append(training.train(config, data).seconds)
    ratio = statistics.median(with_progress) / statistics.median(without)
    return {"ui_overhead_ratio": round(ratio, 4), "ui_overhead_seconds": {"with": with_progress, "without": without}}


def compute_ceiling() -> float:
    """The most this CPU gives this model in float32: compiled train steps on one resident batch.

    No input pipeline, no metrics, no callbacks: only the layers' forward and
    backward kernels and the optimizer. Engine / ceiling tells how much of what
    is reachable the engine gets; ceiling / plain fit bounds any engine's speed-up.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    layers = architectures.get_architecture(BENCH_ARCH).layer_list()
    model = architectures.build_model(layers, (28, 28, 1), 10)
    optimizer = keras.optimizers.Adam()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    x = tf.constant(np.random.default_rng(0).random((PLAIN_BATCH, 28, 28, 1), dtype=np.float32))
    y = tf.constant(np.arange(PLAIN_BATCH) % 10)

    @tf.function
    def steps(count):
        for _ in tf.range(count):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    steps(tf.constant(5))  # trace and warm up
    rates = []
    for _ in range(3):
        count = 250
        started = time.perf_counter()
        steps(tf.constant(count)).numpy()
        rates.append(count * PLAIN_BATCH / (time.perf_counter() - started))
    return max(rates)


def bench_precision(dataset) -> dict:
    """Forced mixed bfloat16 vs float32 on a short run: why `auto` checks the CPU first."""
    data = datasets.prepare(dataset, validation_split=0.0, limit=_limit(PRECISION_IMAGES, dataset), seed=3)
    rates = {}
    for precision in ("float32", "mixed", "float32", "mixed"):  # alternated: both share the machine's noise
        config = TrainConfig(arch=BENCH_ARCH, epochs=1, validation_split=0.0, precision=precision)
        result = training.train(config, data)
        rates.setdefault(result.precision, []).append(result.samples_per_s)
    mixed_policy = next(policy for policy in rates if policy != "float32")
    mixed, plain = max(rates[mixed_policy]), max(rates["float32"])
    return {
        "precision_auto_here": training.resolve_precision("auto"),
        "train_samples_per_s_forced_mixed": round(mixed, 1),
        "train_samples_per_s_float32": round(plain, 1),
        "forced_mixed_policy": mixed_policy,
        "forced_mixed_speedup_vs_float32": round(mixed / plain, 3),
    }


def bench_live_panel(plan) -> dict:
    """Training speed while a browser session watches the live charts, vs nobody watching.

    A poller thread does the Train page fragment's server work once per poll
    interval: snapshot the job, build or refresh both charts, serialize them as
    st.plotly_chart does. "rebuild" redraws both figures from scratch every
    poll (the app before the in-place refresh); "refresh" is the app now.
    """
    import plotly.io
    import plotly.tools

    from lib import jobs, ui, ui_train

    def one_poll(manager, job_id, cache):
        job = manager.snapshot(job_id)
        ui.describe_state(job)
        for metric in ("accuracy", "loss"):
            figure = ui_train.live_figure(job, metric, cache)
            spec = plotly.tools.return_figure_from_figure_or_data(figure, validate_figure=True)
            plotly.io.to_json(spec, validate=False)

    def run(manager, mode, poll_seconds):
        config = TrainConfig(arch=BENCH_ARCH, epochs=1, validation_split=0.1, limit=plan["live_images"], seed=4)
        job_id = manager.submit(config, session_id=mode)
        cache = {}
        while (job := manager.snapshot(job_id)).active:
            if mode != "nobody" and job.state == jobs.RUNNING:
                started = time.perf_counter()
                one_poll(manager, job_id, {} if mode == "rebuild" else cache)
                poll_seconds[mode].append(time.perf_counter() - started)
            time.sleep(ui.JOB_POLL_SECONDS)
        return runs.get_run(job.run_id, manager.runs_dir).meta["samples_per_s"]

    rates = {"nobody": [], "refresh": [], "rebuild": []}
    poll_seconds = {"nobody": [], "refresh": [], "rebuild": []}
    with tempfile.TemporaryDirectory() as runs_dir:
        manager = jobs.JobManager(runs_dir=runs_dir)
        run(manager, "nobody", poll_seconds)  # warm up: dataset load, graph tracing
        for _ in range(plan["repeats"]):
            for mode in rates:
                rates[mode].append(run(manager, mode, poll_seconds))
    nobody = statistics.median(rates["nobody"])
    return {
        "live_panel_overhead_ratio": round(nobody / statistics.median(rates["refresh"]), 4),
        "live_panel_overhead_ratio_rebuild": round(nobody / statistics.median(rates["rebuild"]), 4),
        "live_poll_ms_refresh": round(statistics.median(poll_seconds["refresh"]) * 1e3, 1),
        "live_poll_ms_rebuild": round(statistics.median(poll_seconds["rebuild"]) * 1e3, 1),
        "live_panel_rates": rates,
    }


def bench_inference(dataset) -> dict:
    """Preprocess + predict one drawing (the Draw page path) vs model.predict on one image."""
    import numpy as np

    config = TrainConfig(arch=BENCH_ARCH, epochs=1, validation_split=0.0)
    data = datasets.prepare(dataset, validation_split=0.0, limit=_limit(3000, dataset), seed=2)
    model = training.train(config, data).model
    images, _ = synthdigits.digit_set(4, seed=5, canvas=280)
    for image in images[:3]:  # warm up both paths
        inference.predict_unit_images(model, drawing.preprocess_image(image), normalize=True)
    fast = []
    for _ in range(5):
        for image in images:
            started = time.perf_counter()
            processed = drawing.preprocess_image(image)
            inference.predict_unit_images(model, processed, normalize=True)
            fast.append(time.perf_counter() - started)
    one = drawing.preprocess_image(images[0])[np.newaxis, ..., np.newaxis]
    model.predict(one, verbose=0)
    slow = []
    for _ in range(20):
        started = time.perf_counter()
        model.predict(one, verbose=0)
        slow.append(time.perf_counter() - started)
    fast_ms, slow_ms = statistics.median(fast) * 1e3, statistics.median(slow) * 1e3
    return {
        "inference_ms_median": round(fast_ms, 3),
        "predict_ms_median": round(slow_ms, 3),
        "inference_speedup_vs_predict": round(slow_ms / fast_ms, 1),
    }


def bench_home() -> dict:
    """Home rendered by AppTest in a fresh process: its time and whether TensorFlow got imported."""
    script = (
        "import sys, time\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(PROJECT / 'streamlit_app.py')!r}, default_timeout=120)\n"
        "started = time.perf_counter(); at.run(); seconds = time.perf_counter() - started\n"
        "assert not at.exception, at.exception\n"
        "print(seconds, 'tensorflow' in sys.modules)\n"
    )
    with tempfile.TemporaryDirectory() as runs_dir:
        env = {**os.environ, paths.RUNS_DIR_ENV: runs_dir}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                              cwd=PROJECT, timeout=300, check=True)
    seconds, imported = done.stdout.strip().splitlines()[-1].split()
    return {"home_render_s": round(float(seconds), 3), "home_imports_tensorflow": imported == "True"}


def bench_peak_rss(plan) -> dict:
    """Peak memory of a full-MNIST CLI training run of the tutorial CNN, in its own process."""
    with tempfile.TemporaryDirectory() as runs_dir:
        command = [sys.executable, "-m", "lib", "train", "--arch", BENCH_ARCH, "--epochs", str(plan["rss_epochs"]),
                   "--runs-dir", runs_dir, "--json"]
        subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, timeout=1800, check=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"peak_rss_mb": round(peak_kb / 1024, 1), "peak_rss_run": f"full MNIST, {plan['rss_epochs']} epoch(s)"}


def bench_zoo(dataset, plan) -> list[dict]:
    """Each tutorial architecture with its tutorial's settings, next to the reported score."""
    rows = []
    for arch in architectures.ZOO.values():
        tutorial = arch.tutorial
        if tutorial is None:
            continue
        if tutorial["dataset"] != "mnist":
            rows.append({"arch": arch.name, "dataset": tutorial["dataset"], "reported": tutorial["reported"],
                         "test_accuracy": None, "note": "skipped: no fashion_mnist.npz on this machine"}
                        if "fashion_mnist" not in _available() else _zoo_row(arch, tutorial, plan))
            continue
        rows.append(_zoo_row(arch, tutorial, plan, dataset))
    return rows


def _zoo_row(arch, tutorial, plan, dataset=None) -> dict:
    dataset = dataset or datasets.load_dataset(tutorial["dataset"])
    epochs = plan["zoo_epochs"] or tutorial["epochs"]
    config = TrainConfig(
        dataset=tutorial["dataset"], arch=arch.name, epochs=epochs, batch_size=tutorial["batch_size"],
        optimizer=tutorial["optimizer"], learning_rate=tutorial["learning_rate"], lr_schedule="constant",
        validation_split=tutorial["validation_split"], normalize=tutorial["normalize"],
        label_encoding=tutorial["label_encoding"], limit=_limit(plan["zoo_limit"], dataset),
    )
    data = datasets.prepare(dataset, validation_split=config.validation_split, limit=config.limit, seed=0)
    result = training.train(config, data)
    note = f"quick: {epochs} epoch(s) on {len(data.y_train):,} images" if plan["zoo_epochs"] else "tutorial settings"
    return {"arch": arch.name, "dataset": tutorial["dataset"], "epochs": epochs,
            "reported": tutorial["reported"], "reported_accuracy": tutorial.get("reported_accuracy"),
            "test_accuracy": None if result.test_accuracy is None else round(result.test_accuracy, 4),
            "seconds": round(result.seconds, 1), "note": note}


def write_results(results: dict) -> None:
    (PROJECT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = markdown(results)
    target = PROJECT / "bench" / "RESULTS.md"
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    load_section = old[old.index(LOAD_MARKER):] if LOAD_MARKER in old else ""  # bench/load.py's numbers stay
    target.write_text(table.rstrip("\n") + "\n\n" + load_section if load_section else table, encoding="utf-8")
    print(table)


def markdown(r: dict) -> str:
    machine = r["machine"]
    lines = [
        f"# Benchmark results ({r['mode']} mode)",
        "",
        f"{machine['cpu']}, {machine['cores']} cores, native bf16: {machine['native_bf16']}; "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}. Total {r['total_seconds']} s.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| training, engine (batch {r['engine_batch_size']}, {r['engine_precision']}, progress on) | "
        f"{r['train_samples_per_s_engine']:,.0f} images/s | |",
        f"| training, plain `model.fit` (float32, batch {PLAIN_BATCH}) | {r['train_samples_per_s_plain_fit']:,.0f} images/s | |",
        f"| **engine / plain fit** | **{r['train_speedup_vs_plain_fit']:.2f}x** | ≥ 2.0x |",
        f"| test accuracy engine / plain ({r['train_epochs']} epoch(s), {r['train_images']:,} images) | "
        f"{r['test_accuracy_engine']:.2%} / {r['test_accuracy_plain_fit']:.2%} | equal ± 0.3 pt |",
        f"| training GFLOP/s (engine) | {r['train_gflops_per_s']} | |",
        f"| compute ceiling: compiled train steps on one resident batch ({PLAIN_BATCH}, float32) | "
        f"{r['train_samples_per_s_compute_ceiling']:,.0f} images/s | |",
        f"| engine / ceiling · ceiling / plain fit | {r['train_samples_per_s_engine'] / r['train_samples_per_s_compute_ceiling']:.2f}"
        f" · **{r['ceiling_speedup_vs_plain_fit']:.2f}x** | ceiling / plain < 2.0 means no float32 engine reaches 2.0x |",
        f"| precision `auto` here | {r['precision_auto_here']} | |",
        f"| forced {r['forced_mixed_policy']} / float32 ({PRECISION_IMAGES:,} images) | "
        f"{r['train_samples_per_s_forced_mixed']:,.0f} / {r['train_samples_per_s_float32']:,.0f} images/s = "
        f"{r['forced_mixed_speedup_vs_float32']:.2f}x | |",
        f"| **UI progress overhead** (with / without) | **{r['ui_overhead_ratio']:.3f}** | ≤ 1.03 |",
        f"| **live charts watched, refreshed in place** (nobody watching / watched) | "
        f"**{r['live_panel_overhead_ratio']:.3f}** ({r['live_poll_ms_refresh']:.0f} ms per poll) | ≤ 1.03 |",
        f"| live charts watched, rebuilt every poll (before) | {r['live_panel_overhead_ratio_rebuild']:.3f} "
        f"({r['live_poll_ms_rebuild']:.0f} ms per poll) | |",
        f"| **drawing: preprocess + predict, median** | **{r['inference_ms_median']:.2f} ms** | ≤ 5 ms |",
        f"| `model.predict` on one image, median | {r['predict_ms_median']:.1f} ms | |",
        f"| **inference speed-up vs `model.predict`** | **{r['inference_speedup_vs_predict']:.0f}x** | ≥ 10x |",
        f"| Home render (AppTest, fresh process) | {r['home_render_s']:.2f} s | |",
        f"| **Home imports TensorFlow** | **{r['home_imports_tensorflow']}** | False |",
        f"| **peak RSS, {r['peak_rss_run']}** | **{r['peak_rss_mb']:,.0f} MB** | ≤ 1,500 MB |",
        "",
        "## Zoo: tutorial settings vs the tutorials' reported results",
        "",
        "| architecture | dataset | epochs | test accuracy here | tutorial reported | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["zoo_accuracy"]:
        accuracy = "—" if row.get("test_accuracy") is None else f"{row['test_accuracy']:.2%}"
        lines.append(f"| {row['arch']} | {row['dataset']} | {row.get('epochs', '—')} | {accuracy} | "
                     f"{row['reported']} | {row['note']} |")
    return "\n".join(lines) + "\n"


def _limit(count, dataset):
    return None if count is None or count >= len(dataset.y_train) else count


def _available():
    """Datasets with a file here (the Keras loader cannot download on this machine)."""
    return {name for name, info in datasets.available_datasets().items() if info.path is not None}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())

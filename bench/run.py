"""MNIST Studio benchmarks: side-by-side ratios measured in one process run.

    python bench/run.py [--quick] [--zoo-only]

The quick mode writes bench/results.json; the full mode writes bench/results-full.json,
whose zoo table trains every tutorial architecture with its tutorial's exact recipe
(lib.training.presets) on the full data, plus the lesson presets on MNIST. bench/RESULTS.md is
rebuilt from both files. `--zoo-only` skips the speed measurements.
The machine is shared and noisy, so every speed claim is a ratio of two measurements
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

from bench import time_to_accuracy as tta
from bench.inside import bench_inside
from lib.data import catalog, datasets, drawing, paths, synthdigits
from lib.models import architectures, inference
from lib.store import runs
from lib.training import hardware, loop, presets
from lib.training.config import TrainConfig

BENCH_ARCH = "cnn-tf-tutorial"
PLAIN_BATCH = 32  # the tutorial's model.fit default
FULL = {"train_images": 60_000, "epochs": 2, "overhead_images": 20_000, "zoo_epochs": None, "zoo_limit": None,
        "rss_epochs": 1, "live_images": 30_000, "repeats": 3}
QUICK = {"train_images": 15_000, "epochs": 1, "overhead_images": 8_000, "zoo_epochs": 1, "zoo_limit": 10_000,
         "rss_epochs": 1, "live_images": 12_000, "repeats": 2}
LOAD_MARKER = "<!-- bench/load.py -->"  # RESULTS.md from here on is written by bench/load.py
PRECISION_IMAGES = 3_000  # emulated bfloat16 is slow: a short run tells the ratio
AUTO_PRECISION_IMAGES = 12_000  # `auto` never emulates: long enough that tracing does not decide the ratio
# Keys written by --time-to-accuracy (kept when a quick run rewrites results.json).
TIME_TO_ACCURACY_PREFIXES = ("time_to_", "fastest_preset", "threads_", "precision_auto_")
# The time targets are for a CPU without native bfloat16: results.json keeps that machine's
# numbers; a run on a CPU with native bfloat16 (AVX512-BF16/AMX) is kept beside them in this file.
TTA_BF16_JSON = PROJECT / "bench" / "results-tta-bf16.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs; under 10 minutes")
    parser.add_argument("--zoo-only", action="store_true", help="only the zoo (and, in full mode, lesson presets)")
    parser.add_argument("--rerun", nargs="+", metavar="PRESET",
                        help="retrain only these presets' rows in results-full.json, keeping the others")
    parser.add_argument("--time-to-accuracy", action="store_true",
                        help="only the time-to-accuracy rows (full MNIST, minutes) in results.json, keeping the rest")
    args = parser.parse_args()
    if args.rerun:
        return rerun_rows(args.rerun)
    if args.time_to_accuracy:
        return run_time_to_accuracy()
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    dataset = catalog.load_dataset("mnist")
    results = {"mode": "quick" if args.quick else "full", "machine": machine_facts(),
               "command": "python " + " ".join(["bench/run.py", *sys.argv[1:]]), "complete": False}
    if args.quick:
        results.update(_time_to_accuracy_kept())
    if not args.zoo_only:
        results.update(bench_training(dataset, plan))
        results.update(bench_precision(dataset))
        results.update(bench_ui_overhead(dataset, plan))
        results.update(bench_live_panel(plan))
        results.update(bench_inference(dataset))
        results.update(bench_inside(dataset))
        results.update(bench_home())
        results.update(bench_peak_rss(plan))

    def save_so_far():  # a full run takes hours: keep every finished row
        results["total_seconds"] = round(time.perf_counter() - started, 1)
        write_results(results, echo=False)

    results["zoo_accuracy"] = []
    bench_zoo(dataset, plan, results["zoo_accuracy"], on_row=save_so_far)
    if not args.quick:
        results["preset_accuracy"] = []
        bench_lesson_presets(dataset, results["preset_accuracy"], on_row=save_so_far)
    results["complete"] = True
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    write_results(results)
    return 0


def run_time_to_accuracy() -> int:
    """Update the time-to-accuracy keys of bench/results.json, keeping every other key; on a CPU with
    native bfloat16, write them to results-tta-bf16.json instead (the targets are for CPUs without)."""
    started = time.perf_counter()
    path = PROJECT / "bench" / "results.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"mode": "quick", "complete": False}
    facts = machine_facts()
    measured = {"time_to_accuracy_load": ", ".join(f"{load:.1f}" for load in os.getloadavg())}
    measured.update(bench_time_to_accuracy(catalog.load_dataset("mnist")))
    measured["time_to_accuracy_total_seconds"] = round(time.perf_counter() - started, 1)
    if facts["native_bf16"]:
        TTA_BF16_JSON.write_text(json.dumps({"machine": facts, **measured}, indent=2) + "\n", encoding="utf-8")
    else:
        results["machine"] = {**results.get("machine", {}), **facts}
        results.update(measured)
    write_results(results)
    return 0


def bench_time_to_accuracy(dataset) -> dict:
    """Seconds of training to 99.0% MNIST test accuracy: plain fit, the engine, the fastest preset."""
    data = tta.full_mnist(dataset)
    plain = tta.plain_fit(data, tta.TUTORIAL_ARCH)
    engine = tta.engine(data, tta.recipe(tta.ENGINE_TUTORIAL), label="engine, tutorial CNN, best recipe")
    fastest = tta.engine(data, tta.recipe(tta.FASTEST), label="engine, fastest preset")
    high = tta.engine(data, tta.recipe(tta.TO_HIGH), label="engine, fast CNN to 99.5%", target=tta.HIGH_TARGET)
    bundled = tta.estimate_seconds(data, tta.BUNDLED, images=4_000)
    plain_s, engine_s = plain["seconds_to_target"], engine["seconds_to_target"]
    return {
        "time_to_99_plain_s": plain_s,
        "time_to_99_engine_tutorial_s": engine_s,
        "time_to_99_fastest_s": fastest["seconds_to_target"],
        "time_to_99_speedup": round(plain_s / engine_s, 2) if plain_s and engine_s else None,
        "fastest_preset": tta.FASTEST["arch"],
        "time_to_99_rows": [plain, engine, fastest],
        "time_to_995_s": high["seconds_to_target"],
        "time_to_995_row": high,
        "time_to_995_bundled_recipe": {**tta.BUNDLED, **bundled},
        **bench_threads(),
        **bench_precision_auto(dataset),
    }


def bench_threads() -> dict:
    """The thread plan from the usable cores vs TensorFlow's defaults vs 4x oversubscribed, fresh processes.

    Oversubscribed is what TensorFlow picks on a host that shows it 4x more CPUs than a
    cgroup quota lets it use (a 2-CPU container on an 8-core host).
    """
    plan = hardware.thread_plan(hardware.available_cores())
    over = 4 * plan["cores"]
    rates = tta.thread_rates(tta.FASTEST["arch"], 12_000, {
        "planned": {"intra_op": plan["intra_op"], "inter_op": plan["inter_op"]},
        "tensorflow_default": None,
        "oversubscribed_4x": {"intra_op": over, "inter_op": over},
    })
    return {
        "threads_plan": plan,
        "threads_cgroup_quota": hardware.cgroup_cpu_quota(),
        "threads_samples_per_s": {name: round(rate, 1) for name, rate in rates.items()},
        "threads_speedup_vs_default": round(rates["planned"] / rates["tensorflow_default"], 3),
        "threads_speedup_vs_oversubscribed": round(rates["planned"] / rates["oversubscribed_4x"], 3),
    }


def bench_precision_auto(dataset) -> dict:
    """What precision `auto` picks here, and its speed over float32 for the fastest preset and the
    tutorial CNN (batch 128), alternated on a short run."""
    data = datasets.prepare(dataset, validation_split=0.0, limit=_limit(AUTO_PRECISION_IMAGES, dataset), seed=3)
    policy, ratios = None, {}
    for arch in (tta.FASTEST["arch"], tta.TUTORIAL_ARCH):
        rates = {"auto": [], "float32": []}
        for precision in ("float32", "auto", "float32", "auto"):
            config = TrainConfig(arch=arch, epochs=1, batch_size=128, validation_split=0.0, precision=precision)
            result = loop.train(config, data)
            rates[precision].append(result.samples_per_s)
            policy = result.precision if precision == "auto" else policy
        ratios[arch] = round(max(rates["auto"]) / max(rates["float32"]), 3)
    return {
        "precision_auto_policy": policy,
        "precision_auto_speedup_vs_float32": ratios[tta.FASTEST["arch"]],
        "precision_auto_speedup_by_arch": ratios,
    }


def _time_to_accuracy_kept() -> dict:
    """The time-to-accuracy keys of results.json, so a quick run does not drop them."""
    path = PROJECT / "bench" / "results.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {key: value for key, value in old.items() if key.startswith(TIME_TO_ACCURACY_PREFIXES)}


def machine_facts() -> dict:
    import keras
    import tensorflow as tf

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "usable_cores": hardware.available_cores(),
        "native_bf16": hardware.cpu_has_native_bf16(),
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
    result = loop.train(engine_config, data, on_progress=_AppProgress())
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
    loop.train(config, data)  # warm up: graph tracing and caches
    with_progress, without = [], []
    for _ in range(3):
        with_progress.append(loop.train(config, data, on_progress=_AppProgress()).seconds)
        without.append(loop.train(config, data).seconds)
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
        result = loop.train(config, data)
        rates.setdefault(result.precision, []).append(result.samples_per_s)
    mixed_policy = next(policy for policy in rates if policy != "float32")
    mixed, plain = max(rates[mixed_policy]), max(rates["float32"])
    return {
        "precision_auto_here": loop.resolve_precision("auto"),
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

    from lib.execution import jobs
    from lib.ui import common as ui, train as ui_train

    def one_poll(manager, job_id, cache):
        job = manager.snapshot(job_id)
        jobs.describe_state(job)
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
    model = loop.train(config, data).model
    images, _ = synthdigits.digit_set(4, seed=5, canvas=280)
    for image in images[:3]:  # warm up both paths
        inference.predict_unit_images(model, drawing.preprocess_image(image), normalize=True)
    fast, preprocess_only = [], []
    for _ in range(5):
        for image in images:
            started = time.perf_counter()
            processed = drawing.preprocess_image(image)
            preprocess_only.append(time.perf_counter() - started)
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
        "preprocess_ms_median": round(statistics.median(preprocess_only) * 1e3, 3),
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


def bench_zoo(dataset, plan, rows: list, on_row=None) -> list[dict]:
    """Each tutorial architecture with its tutorial's recipe, next to the reported number.

    A dataset without a file here is marked "not run: no data", never estimated.
    Rows are appended to `rows` as they finish; `on_row()` is called after each.
    """
    for arch in architectures.ZOO.values():
        if arch.tutorial is None:
            continue
        preset = presets.get_preset(arch.name)
        if preset.dataset != "mnist" and preset.dataset not in _available():
            rows.append({"arch": arch.name, "preset": preset.name, "dataset": preset.dataset,
                         "reported": preset.reported.text, "reported_accuracy": arch.tutorial.get("reported_accuracy"),
                         "test_accuracy": None, "verdict": "not run",
                         "note": f"not run: no data ({preset.dataset}.npz is not on this machine)"})
        else:
            rows.append(_preset_row(preset, plan, dataset if preset.dataset == "mnist" else None))
        if on_row:
            on_row()
    return rows


def bench_lesson_presets(dataset, rows: list, on_row=None) -> list[dict]:
    """The lessons' own MNIST recipes (variants of the zoo's), with the tutorial's settings."""
    for preset in presets.PRESETS.values():
        if preset.name in architectures.ZOO or preset.dataset != "mnist":
            continue
        rows.append(_preset_row(preset, FULL, dataset))
        if on_row:
            on_row()
    return rows


def _preset_row(preset, plan, dataset=None) -> dict:
    dataset = dataset or catalog.load_dataset(preset.dataset)
    quick = plan["zoo_epochs"] is not None
    config = preset.config(epochs=plan["zoo_epochs"], limit=_limit(plan["zoo_limit"], dataset))
    data = datasets.prepare(dataset, validation_split=config.validation_split, limit=config.limit, seed=config.seed)
    result = loop.train(config, data)
    measured = _measured(preset.reported, result)
    note = f"quick: {config.epochs} epoch(s) on {len(data.y_train):,} images" if quick else "tutorial settings"
    if result.status != "finished" or result.stop_reason != f"Completed {config.epochs} epochs.":
        note += f"; {result.status}: {result.stop_reason}"
    last = result.history[-1] if result.history else {}
    return {
        "arch": preset.arch, "preset": preset.name, "dataset": preset.dataset, "epochs": config.epochs,
        "epochs_trained": result.epochs_trained, "batch_size": config.batch_size, "optimizer": config.optimizer,
        "learning_rate": config.learning_rate, "normalize": config.normalize,
        "label_encoding": config.label_encoding, "validation_split": config.validation_split,
        "train_images": int(len(data.y_train)), "params": result.params, "status": result.status,
        "reported": preset.reported.text if preset.reported else "",
        "reported_accuracy": preset.reported.value if preset.reported and preset.reported.higher_is_better else None,
        "reported_metric": preset.reported.metric if preset.reported else None,
        "reported_value": preset.reported.value if preset.reported else None,
        "measured_value": _round(measured),
        "verdict": preset.reported.verdict(measured) if preset.reported and not quick else "",
        "test_accuracy": _round(result.test_accuracy), "test_loss": _round(result.test_loss),
        "train_loss": _round(last.get("loss")), "train_accuracy": _round(last.get("accuracy")),
        "val_loss": _round(last.get("val_loss")), "val_accuracy": _round(last.get("val_accuracy")),
        "history": [{key: _round(value) for key, value in row.items() if key != "images"} for row in result.history],
        "seconds": round(result.seconds, 1), "note": note,
    }


def rerun_rows(names: list[str]) -> int:
    """Retrain some rows of the full benchmark in place (after a fix), noting the command."""
    path = PROJECT / "bench" / "results-full.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    dataset = catalog.load_dataset("mnist")
    for name in names:
        preset = presets.get_preset(name)
        for key in ("zoo_accuracy", "preset_accuracy"):
            for index, row in enumerate(results.get(key, [])):
                if row.get("preset") == name:
                    new = _preset_row(preset, FULL, dataset if preset.dataset == "mnist" else None)
                    new["note"] += f"; rerun with `python bench/run.py --rerun {name}`"
                    results[key][index] = new
                    write_results(results, echo=False)  # rows take up to an hour each: keep every finished one
    write_results(results)
    return 0


def _measured(reported, result):
    """Our number for the measurement the tutorial reported."""
    if reported is None:
        return result.test_accuracy
    if reported.metric == "loss":
        rows = [row for row in result.history if row["epoch"] == reported.epoch]
        return rows[0]["loss"] if rows else None
    return getattr(result, reported.metric)


def _round(value, digits=4):
    return None if value is None else round(float(value), digits)


def refresh_verdicts(results: dict) -> None:
    """Verdicts by the presets' current rule, so an older file reads the same as a new one."""
    if results["mode"] != "full":
        return
    for row in [*results.get("zoo_accuracy", []), *results.get("preset_accuracy", [])]:
        preset = presets.PRESETS.get(row.get("preset"))
        if preset is not None and preset.reported is not None and "measured_value" in row:
            row["verdict"] = preset.reported.verdict(row["measured_value"])


def write_results(results: dict, echo: bool = True) -> None:
    refresh_verdicts(results)
    name = "results.json" if results["mode"] == "quick" else "results-full.json"
    (PROJECT / "bench" / name).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    sections = []
    for file_name in ("results.json", "results-full.json"):
        path = PROJECT / "bench" / file_name
        if path.is_file():
            sections.append(markdown(json.loads(path.read_text(encoding="utf-8"))))
    if TTA_BF16_JSON.is_file():
        sections.append(bf16_markdown(json.loads(TTA_BF16_JSON.read_text(encoding="utf-8"))))
    variance = PROJECT / "bench" / "results-variance.json"
    if variance.is_file():
        sections.append(variance_markdown(json.loads(variance.read_text(encoding="utf-8"))))
    text = "\n".join(sections)
    target = PROJECT / "bench" / "RESULTS.md"
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    if LOAD_MARKER in old:  # bench/load.py's numbers stay
        text = text.rstrip("\n") + "\n\n" + old[old.index(LOAD_MARKER):]
    target.write_text(text, encoding="utf-8")
    if echo:
        print(text)


def variance_markdown(rows: list[dict]) -> str:
    """bench/variance.py's runs: the same recipes with other seeds, or on all 60,000 images."""
    lines = ["## Where a tutorial number was missed: other seeds and the full training set", "",
             "`python bench/variance.py PRESET ...`: the preset's exact recipe, changing only the seed or the "
             "validation split (0: all 60,000 training images, as the tutorials train).", "",
             "| preset | seed | validation split | training images | test accuracy | test loss | training loss, "
             "epochs 1-3 | time |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        losses = ", ".join(f"{loss:.4f}" for loss in row.get("per_epoch_loss", [])[:3]) or "—"
        lines.append(f"| {row['preset']} | {row['seed']} | {row['validation_split']:g} | {row['train_images']:,} | "
                     f"{row['test_accuracy']:.2%} | {row['test_loss']:.4f} | {losses} | {row['seconds']:,.0f} s |")
    return "\n".join(lines) + "\n"


def markdown(r: dict) -> str:
    machine = r["machine"]
    lines = [
        f"# Benchmark results ({r['mode']} mode{'' if r.get('complete', True) else ', still running'})",
        "",
        f"`{r.get('command', 'python bench/run.py' + (' --quick' if r['mode'] == 'quick' else ''))}` on "
        f"{machine['cpu']}, {machine['cores']} cores, native bf16: {machine['native_bf16']}; "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}. Total {r['total_seconds']} s.",
        "",
    ]
    if "time_to_99_rows" in r:
        lines += tta_markdown(r) + [""]
    if "train_samples_per_s_engine" in r:
        lines += speed_table(r) + [""]
    if "zoo_accuracy" in r:
        lines += zoo_table(r)
    return "\n".join(lines) + "\n"


def bf16_markdown(r: dict) -> str:
    """`python bench/run.py --time-to-accuracy` on a CPU with native bfloat16: results-tta-bf16.json."""
    machine = r["machine"]
    lines = tta_markdown(r, heading=f"## Time to accuracy on a CPU with native bfloat16 ({machine['cpu']}, "
                                    f"{machine['cores']} cores, TensorFlow {machine['tensorflow']})",
                         note="The targets are set for a CPU without native bfloat16 (the table above); this "
                              "machine computes bfloat16 natively, so precision `auto` trains in mixed bfloat16 "
                              "here. Plain `model.fit` stays float32, as the tutorial runs it.")
    return "\n".join(lines) + "\n"


def tta_markdown(r: dict, heading: str = "## Time to accuracy (full MNIST: 60,000 training images, the 10,000 "
                                         "test images)", note: str = "") -> list[str]:
    """The time-to-accuracy section: `python bench/run.py --time-to-accuracy`."""
    def seconds(value):
        return "not reached" if value is None else f"{value:,.1f} s"

    def recipe_row(row, target_text):
        return (f"| {row['label']} | {row['arch']} | {row['epochs_run']} of {row['planned_epochs']} | "
                f"{row['batch_size']} | {row['optimizer']} {row['learning_rate']:g}, {row['schedule']} | "
                f"{row['final_accuracy']:.2%} | {seconds(row['seconds_to_target'])} | {target_text} |")

    def within(value, limit):
        """A time target's verdict: met, or by how much it was missed."""
        if value is None:
            return "**not reached**"
        return "**met**" if value <= limit else f"**missed by {value - limit:,.1f} s ({value / limit:.1f}x)**"

    plain, engine, fastest = r["time_to_99_rows"]
    speedup = r["time_to_99_speedup"]
    high, bundled = r["time_to_995_row"], r["time_to_995_bundled_recipe"]
    if speedup is None:
        b_text = "(b) 99.0%, target ≥ 3x: **not reached**"
    else:
        b_text = f"(b) 99.0%, **{speedup}x** faster than (a); target ≥ 3x: " + (
            "**met**" if speedup >= 3 else f"**missed by {3 - speedup:.2f}x**")
    threads, rates = r["threads_plan"], r["threads_samples_per_s"]
    by_arch = r.get("precision_auto_speedup_by_arch") or {r["fastest_preset"]: r["precision_auto_speedup_vs_float32"]}
    return [
        heading,
        "",
        "`python bench/run.py --time-to-accuracy` "
        f"({r['time_to_accuracy_total_seconds']:,.0f} s; load average at start {r['time_to_accuracy_load']}). "
        "Seconds of training until the test accuracy, checked after every epoch (checks not counted), "
        "first reaches the target. Tracing and the input pipeline count: a user waits for them too.",
        "",
        *([note, ""] if note else []),
        "| run | architecture | epochs | batch | optimizer, schedule | final test accuracy | time to target | target |",
        "|---|---|---|---|---|---|---|---|",
        recipe_row(plain, "(a) baseline, 99.0%"),
        recipe_row(engine, b_text),
        recipe_row(fastest, f"(c) 99.0% in ≤ 15 s: {within(fastest['seconds_to_target'], 15)}"),
        recipe_row(high, f"99.5% in ≤ 180 s: {within(high['seconds_to_target'], 180)}"),
        f"| bundled-model recipe (README), estimated from {bundled['measured_on_images']:,} images | "
        f"{bundled['arch']} + augment | {bundled['epochs']} | {bundled['batch_size']} | adam "
        f"{bundled['learning_rate']:g}, {bundled['lr_schedule']} | 99.66% (bundled model) | "
        f"~{bundled['estimated_seconds']:,.0f} s ({bundled['samples_per_s']:,.0f} images/s) | 99.5% in ≤ 180 s: "
        f"{within(bundled['estimated_seconds'], 180)} |",
        "",
        "Per epoch (seconds, test accuracy): "
        + "; ".join(f"{row['label']}: " + ", ".join(f"{e['seconds']:.1f} s {e['test_accuracy']:.2%}"
                                                    for e in row["per_epoch"]) for row in (plain, engine, fastest, high)),
        "",
        "| machine | value |",
        "|---|---|",
        f"| usable cores (affinity, cgroup quota {r['threads_cgroup_quota']}) → TensorFlow threads | "
        f"{threads['cores']} → intra-op {threads['intra_op']}, inter-op {threads['inter_op']} |",
        f"| threads from usable cores / TensorFlow's defaults ({r['fastest_preset']}, images/s) | "
        f"{rates['planned']:,.0f} / {rates['tensorflow_default']:,.0f} = **{r['threads_speedup_vs_default']:.2f}x** |",
        f"| threads from usable cores / 4x oversubscribed (a host showing 4x the CPUs a quota allows) | "
        f"{rates['planned']:,.0f} / {rates['oversubscribed_4x']:,.0f} = **{r['threads_speedup_vs_oversubscribed']:.2f}x** |",
        f"| precision `auto` here → policy, speed / float32 (batch 128) | {r['precision_auto_policy']}, "
        + ", ".join(f"{ratio:.2f}x {arch}" for arch, ratio in by_arch.items()) + " |",
    ]


def zoo_table(r: dict) -> list[str]:
    full = r["mode"] == "full"
    lines = [
        "## Zoo: tutorial settings vs the tutorials' reported results"
        + (" (full data, the tutorials' recipes)" if full else ""),
        "",
        "| architecture | dataset | epochs | test accuracy here | test loss here | tutorial reported | verdict | time | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r.get("zoo_accuracy", []):
        lines.append(_zoo_line(row, row["arch"]))
    if r.get("preset_accuracy"):
        lines += ["", "## Lesson presets (MNIST variants of the tutorials' recipes)", "",
                  "| preset | architecture | epochs | test accuracy here | test loss here | reported | verdict | time | note |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in r["preset_accuracy"]:
            lines.append(_zoo_line(row, row["preset"], row["arch"]))
    return lines


def _zoo_line(row, first, second=None) -> str:
    accuracy = "—" if row.get("test_accuracy") is None else f"{row['test_accuracy']:.2%}"
    loss = "—" if row.get("test_loss") is None else f"{row['test_loss']:.4f}"
    seconds = "—" if row.get("seconds") is None else f"{row['seconds']:,.0f} s"
    middle = second if second is not None else row["dataset"]
    return (f"| {first} | {middle} | {row.get('epochs', '—')} | {accuracy} | {loss} | {row['reported']} | "
            f"{row.get('verdict') or ''} | {seconds} | {row['note']} |")


def speed_table(r: dict) -> list[str]:
    return [
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
        f"| drawing: preprocessing alone, median | "
        f"{'%.2f ms' % r['preprocess_ms_median'] if 'preprocess_ms_median' in r else 'not in this run'} | |",
        f"| `model.predict` on one image, median | {r['predict_ms_median']:.1f} ms | |",
        f"| **inference speed-up vs `model.predict`** | **{r['inference_speedup_vs_predict']:.0f}x** | ≥ 10x |",
        f"| **Inside: one input's activations + saliency, default model, median** | "
        f"**{r.get('inside_ms_median', float('nan')):.1f} ms** | ≤ 150 ms |",
        f"| Inside map: penultimate features of {r.get('map_points', 2000):,} test images (once per run, cached) | "
        f"{r.get('map_features_s', float('nan')):.2f} s | |",
        f"| **Inside map: PCA of {r.get('map_points', 2000):,} points** | "
        f"**{r.get('map_pca_s', float('nan')):.2f} s** | ≤ 1 s |",
        f"| **Inside map: t-SNE of {r.get('map_points', 2000):,} points** | "
        f"**{r.get('map_nonlinear_s', float('nan')):.1f} s** | ≤ 30 s |",
        f"| Home render (AppTest, fresh process) | {r['home_render_s']:.2f} s | |",
        f"| **Home imports TensorFlow** | **{r['home_imports_tensorflow']}** | False |",
        f"| **peak RSS, {r['peak_rss_run']}** | **{r['peak_rss_mb']:,.0f} MB** | ≤ 1,500 MB |",
    ]


def _limit(count, dataset):
    return None if count is None or count >= len(dataset.y_train) else count


def _available():
    """Datasets with a file here (the Keras loader cannot download on this machine)."""
    return {name for name, info in catalog.available_datasets().items() if info.path is not None}


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

"""MNIST Studio load benchmark: one shared process, many trainings, many visitors.

    python bench/load.py memory [--trainings 50] [--trainer process|thread]

`memory`: RSS after 5 vs after N small trainings, one after another, in a fresh
process with the real job manager: `process` trains each run in a child process
(the public server's trainer), `thread` in the server's own worker thread. This is
what a long-lived Community Cloud server would see. Loopback only, never a
timed test. Needs the real MNIST in $MNIST_STUDIO_DATA_DIR (or data/).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

RESULTS_JSON = PROJECT / "bench" / "results-load.json"
RESULTS_MD = PROJECT / "bench" / "RESULTS.md"
LOAD_MARKER = "<!-- bench/load.py -->"  # bench/run.py keeps RESULTS.md from this line on
# A small run, the kind a visitor starts many of: one epoch on 512 images.
SMALL_RUN = dict(dataset="mnist", arch="cnn-tf-tutorial", epochs=1, limit=512, batch_size=64)
EARLY_TRAININGS = 5  # the baseline: the server has warmed up (TensorFlow loaded, kernels built)


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process now, from /proc (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child_sequential(trainings: int, trainer: str) -> None:
    """In this process: N small trainings one after another; print RSS after each as JSON lines."""
    from lib import jobs
    from lib.training import TrainConfig

    import keras  # noqa: F401 - a real server has TensorFlow loaded for Draw and Predictions anyway

    manager = jobs.JobManager(runs_dir=tempfile.mkdtemp(prefix="mnist-load-runs-"),
                              trainer=jobs.process_trainer if trainer == "process" else jobs._default_trainer)
    for index in range(1, trainings + 1):
        job_id = manager.submit(TrainConfig(**SMALL_RUN, seed=index), session_id=f"visitor-{index % 8}")
        job = manager.wait(job_id, timeout=600)
        print(json.dumps({"training": index, "state": job.state, "error": job.error[:200], "rss_mb": round(rss_mb(), 1),
                          "jobs_kept": manager.job_count()}), flush=True)


def sequential_rss(trainings: int, trainer: str = "process") -> dict:
    """RSS growth between training 5 and training N, measured in a fresh process."""
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "_child-sequential", str(trainings), trainer],
        capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    rows = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    by_index = {row["training"]: row for row in rows}
    early, last = by_index[EARLY_TRAININGS]["rss_mb"], rows[-1]["rss_mb"]
    return {
        "trainer": trainer,
        "trainings": trainings,
        "rss_after_5_mb": early,
        f"rss_after_{trainings}_mb": last,
        "rss_growth_50_mb": round(last - early, 1),
        "rss_curve_mb": [row["rss_mb"] for row in rows],
        "jobs_kept_at_end": rows[-1]["jobs_kept"],
        "all_finished": all(row["state"] == "finished" for row in rows),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    memory = sub.add_parser("memory", help="RSS after 5 vs after N sequential small trainings")
    memory.add_argument("--trainings", type=int, default=50)
    memory.add_argument("--trainer", choices=("process", "thread"), default="process")
    child = sub.add_parser("_child-sequential")
    child.add_argument("trainings", type=int)
    child.add_argument("trainer")
    args = parser.parse_args()
    if args.command == "_child-sequential":
        child_sequential(args.trainings, args.trainer)
        return 0
    result = sequential_rss(args.trainings, args.trainer)
    print(json.dumps({k: v for k, v in result.items() if k != "rss_curve_mb"}, indent=2))
    print("RSS curve (MB):", result["rss_curve_mb"])
    record_memory(result)
    return 0


def record_memory(result: dict) -> None:
    """Merge one memory measurement into results-load.json and rewrite the load section of RESULTS.md."""
    saved = json.loads(RESULTS_JSON.read_text(encoding="utf-8")) if RESULTS_JSON.exists() else {}
    saved.setdefault("memory", {})[result["trainer"]] = result
    if result["trainer"] == "process":  # the public server's trainer is the headline number
        saved["rss_growth_50_mb"] = result["rss_growth_50_mb"]
    RESULTS_JSON.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    rows = [
        "| trainer | trainings | RSS after 5 | RSS after last | growth | jobs kept |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in sorted(saved["memory"].items()):
        last = row["rss_after_%d_mb" % row["trainings"]]
        rows.append(f"| {name} | {row['trainings']} | {row['rss_after_5_mb']:,.0f} MB | "
                    f"{last:,.0f} MB | **{row['rss_growth_50_mb']:+,.0f} MB** | "
                    f"{row['jobs_kept_at_end']} |")
    section = "\n".join([
        LOAD_MARKER,
        "## Load: one shared server (`python bench/load.py memory --trainer process|thread`)",
        "",
        f"Small trainings ({SMALL_RUN['arch']}, {SMALL_RUN['epochs']} epoch on {SMALL_RUN['limit']} MNIST images) "
        "one after another through the job manager in one fresh process; RSS of that (server) process. "
        "Target: growth under 50 MB from training 5 to training 50. `process` trains each run in a child "
        "process (the public server's trainer); `thread` in the server's worker thread (local). Jobs kept: "
        "8 visitors x the 5 newest ended jobs each, however many ran.",
        "",
        *rows,
        "",
    ])
    old = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else ""
    head = old[:old.index(LOAD_MARKER)] if LOAD_MARKER in old else old
    RESULTS_MD.write_text(head.rstrip("\n") + "\n\n" + section, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

"""Time from a Train click to the first progress event, on the public profile's job manager.

    python bench/first_progress.py [--label before|after] [--repeats 3]
    python bench/first_progress.py --compare-warm [--repeats 3]

Submits Home's one-click run (TrainConfig's defaults, no validation split, full MNIST) to the
job manager the `public` profile builds (each training in a `python -m lib.execution.worker`
child process, under the workspace quota), records when each event arrives (the child's
start-up phases, if it reports them, then the first batch) and stops the training at its first
batch. Each repeat is a fresh child process, as after a click. Results go to
bench/results-first-progress.json under the label, and the section of bench/RESULTS.md is
rewritten from all recorded labels. Needs the real MNIST in $MNIST_STUDIO_DATA_DIR.

`--compare-warm` alternates, in one run, clicks with the spare training process turned off
(MNIST_STUDIO_WARM_WORKER=0: a fresh child per click, as before) and on (the click takes the spare
that imported TensorFlow ahead of time; each click waits until the spare is ready, as a visitor
clicking some seconds after the server started or the last training ended would find it).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.execution import jobs, process  # noqa: E402
from lib.store import profile, workspaces  # noqa: E402
from lib.training.config import TrainConfig  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results-first-progress.json"
REPORT = BENCH_DIR / "RESULTS.md"
HEADING = "## First progress: Train click to the first batch (public profile, `python bench/first_progress.py`)"


def one_click_to_first_batch(runs_root: Path) -> dict:
    """One training through the public manager's trainer (quota guard, child process), stopped at its first
    batch: seconds from the call (the click) to each phase the child reports and to the first batch."""
    active = profile.current()
    trainer = jobs.manager_for(active)._trainer
    workspace = workspaces.open_workspace(workspaces.new_key(), current=active, root=runs_root)
    phases, first = [], []
    clicked = time.monotonic()

    def on_progress(event: dict) -> None:
        at = round(time.monotonic() - clicked, 2)
        if event.get("kind") == "phase":
            phases.append({"phase": event["phase"], "at_s": at})
        elif event.get("kind") == "batch" and not first:
            first.append(at)

    _, result = trainer(TrainConfig(dataset="mnist", validation_split=0.0), on_progress, lambda: bool(first),
                        None, workspace.folder)
    return {"first_batch_s": first[0] if first else None, "phases": phases, "state": result.status}


def wait_for_spare(spare: process.Spare, timeout: float = 300.0) -> float:
    """Block until the spare has TensorFlow loaded and sits idle (its CPU time stops growing); seconds waited."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        pid = spare.pid()
        if pid is None:
            raise RuntimeError("no spare is waiting (memory short?)")
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as handle:
                loaded = "libtensorflow" in handle.read()
        except OSError:
            raise RuntimeError("the spare exited") from None
        cpu = int(fields[11]) + int(fields[12])  # utime + stime, clock ticks
        if loaded and cpu == last:
            return time.monotonic() - started
        last = cpu
        time.sleep(1.0)
    raise TimeoutError("the spare did not get ready")


def write_report(results: dict) -> None:
    lines = [HEADING, "", "Seconds from the click (submit) to the first batch event of Home's one-click run "
             "(cnn-fast, full MNIST, no validation split), each in a fresh child process, or in the spare one "
             "that imported TensorFlow before the click (warm worker rows); median of the repeats, with the "
             "phases the child reported (seconds from the click when each began). Rows recorded in one "
             "`--compare-warm` run alternate their clicks on the same machine.", "",
             "| label | first batch (median s) | all repeats (s) | phases (median start, s) | machine |",
             "|---|---|---|---|---|"]
    for label, entry in results.items():
        starts: dict[str, list[float]] = {}
        for repeat in entry["repeats"]:
            for phase in repeat["phases"]:
                starts.setdefault(phase["phase"], []).append(phase["at_s"])
        phases = "; ".join(f"{name} {statistics.median(at):.1f}" for name, at in starts.items()) or "(none reported)"
        firsts = [repeat["first_batch_s"] for repeat in entry["repeats"]]
        lines.append(f"| {label} | {statistics.median(firsts):.1f} | {', '.join(f'{s:.1f}' for s in firsts)} | "
                     f"{phases} | {entry['machine']} |")
    section = "\n".join(lines) + "\n\n"
    text = REPORT.read_text(encoding="utf-8")
    if HEADING in text:
        start = text.index(HEADING)
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[end + 1:] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    REPORT.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare-warm", action="store_true",
                        help="alternate clicks without and with the spare training process, in one run")
    args = parser.parse_args()
    os.environ[profile.PROFILE_ENV] = "public"
    modes = {"cold child (MNIST_STUDIO_WARM_WORKER=0)": "0", "warm worker (spare process)": "1"} \
        if args.compare_warm else {args.label: os.environ.get("MNIST_STUDIO_WARM_WORKER", "1")}
    repeats: dict[str, list] = {label: [] for label in modes}
    with tempfile.TemporaryDirectory() as root:
        os.environ["MNIST_STUDIO_RUNS_DIR"] = root
        for index in range(args.repeats):
            for label, warm in modes.items():
                os.environ["MNIST_STUDIO_WARM_WORKER"] = warm
                jobs.manager_for(profile.current())  # the server's start (a spare, when on)
                waited = wait_for_spare(jobs.warm_trainer.spare) if warm == "1" else 0.0
                outcome = one_click_to_first_batch(Path(root))
                outcome["spare_ready_after_s"] = round(waited, 1)
                print(f"{label} repeat {index + 1}: first batch after {outcome['first_batch_s']:.1f} s; "
                      f"{outcome['phases']}", flush=True)
                repeats[label].append(outcome)
                jobs.warm_trainer.spare.close()  # the next mode starts from the same state
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    recorded = time.strftime("%Y-%m-%d %H:%M")
    for label, outcomes in repeats.items():
        results[label] = {"repeats": outcomes, "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
                          "shared with other jobs", "recorded": recorded}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results)


if __name__ == "__main__":
    main()

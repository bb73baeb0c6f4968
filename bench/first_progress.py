"""Time from a Train click to the first progress event, on the public profile's job manager.

    python bench/first_progress.py [--label before|after] [--repeats 3]

Submits Home's one-click run (TrainConfig's defaults, no validation split, full MNIST) to the
job manager the `public` profile builds (each training in a `python -m lib.execution.worker`
child process, under the workspace quota), records when each event arrives (the child's
start-up phases, if it reports them, then the first batch) and stops the training at its first
batch. Each repeat is a fresh child process, as after a click. Results go to
bench/results-first-progress.json under the label, and the section of bench/RESULTS.md is
rewritten from all recorded labels. Needs the real MNIST in $MNIST_STUDIO_DATA_DIR.
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

from lib.execution import jobs  # noqa: E402
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


def write_report(results: dict) -> None:
    lines = [HEADING, "", "Seconds from the click (submit) to the first batch event of Home's one-click run "
             "(cnn-fast, full MNIST, no validation split), each in a fresh child process; median of the "
             "repeats, with the phases the child reported (seconds from the click when each began).", "",
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
    section = "\n".join(lines) + "\n"
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
    args = parser.parse_args()
    os.environ[profile.PROFILE_ENV] = "public"
    repeats = []
    with tempfile.TemporaryDirectory() as root:
        os.environ["MNIST_STUDIO_RUNS_DIR"] = root
        for index in range(args.repeats):
            outcome = one_click_to_first_batch(Path(root))
            print(f"repeat {index + 1}: first batch after {outcome['first_batch_s']:.1f} s; {outcome['phases']}",
                  flush=True)
            repeats.append(outcome)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[args.label] = {"repeats": repeats, "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
                           "shared with other jobs", "recorded": time.strftime("%Y-%m-%d %H:%M")}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results)


if __name__ == "__main__":
    main()

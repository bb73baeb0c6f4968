"""Why a tutorial number is missed: the same recipe with other seeds, and on all 60,000 images.

    python bench/variance.py PRESET [PRESET ...] [--seeds 1 2] [--full-train-seed 0]

The app holds out 20% of the training set for validation; several tutorials train on all
60,000 images (validating on the test set). Each row trains the preset's exact recipe once,
changing only the seed or the validation split, and scores the test set. Writes
bench/results-variance.json (rows appended per run) and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from lib.data import catalog, datasets
from lib.training import loop, presets

OUTPUT = PROJECT / "bench" / "results-variance.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2], help="other seeds, 20%% validation")
    parser.add_argument("--full-train-seed", type=int, default=0, help="seed of the run on all 60,000 images")
    args = parser.parse_args()
    rows = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else []
    loaded = {}  # each preset's own dataset (MNIST or Fashion-MNIST), loaded once
    for name in args.presets:
        preset = presets.get_preset(name)
        if preset.dataset not in loaded:
            loaded[preset.dataset] = catalog.load_dataset(preset.dataset)
        dataset = loaded[preset.dataset]
        plans = [{"seed": seed} for seed in args.seeds] + [{"seed": args.full_train_seed, "validation_split": 0.0}]
        for changes in plans:
            config = preset.config(**changes)
            data = datasets.prepare(dataset, validation_split=config.validation_split, seed=config.seed)
            result = loop.train(config, data)
            row = {"preset": name, "dataset": preset.dataset, "seed": config.seed, "validation_split": config.validation_split,
                   "train_images": int(len(data.y_train)), "test_accuracy": round(result.test_accuracy, 4),
                   "test_loss": round(result.test_loss, 4), "seconds": round(result.seconds, 1),
                   "per_epoch_loss": [round(row["loss"], 4) for row in result.history],
                   "per_epoch_val_loss": [None if row["val_loss"] is None else round(row["val_loss"], 4)
                                          for row in result.history]}
            rows.append(row)
            OUTPUT.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

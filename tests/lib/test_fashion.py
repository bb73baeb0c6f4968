"""Fashion-MNIST for real: the shared file's class names, a short fit that learns, the Fashion presets from the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lib.data import catalog, datasets
from lib.training import loop, presets

PROJECT = Path(__file__).resolve().parents[2]
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
FASHION_PRESETS = [name for name, preset in presets.PRESETS.items() if preset.dataset == "fashion_mnist"]


@pytest.fixture(scope="module")
def shared_data_dir() -> Path:
    folder = Path(os.environ.get("MNIST_STUDIO_DATA_DIR", ""))
    if not (folder / "fashion_mnist.npz").is_file():
        pytest.fail(f"MNIST_STUDIO_DATA_DIR ({folder}) has no fashion_mnist.npz; CI points it at ../shared/datasets")
    return folder


@pytest.fixture(scope="module")
def fashion_slice_dir(shared_data_dir, tmp_path_factory) -> Path:
    """The real Fashion-MNIST file cut to 2,000 training and 1,000 test images: a run scores its whole
    test set, and 10,000 images through cnn-gap-deep alone take over ten seconds on CI."""
    folder = tmp_path_factory.mktemp("fashion-slice")
    with np.load(shared_data_dir / "fashion_mnist.npz") as npz:
        np.savez(folder / "fashion_mnist.npz", x_train=npz["x_train"][:2000], y_train=npz["y_train"][:2000],
                 x_test=npz["x_test"][:1000], y_test=npz["y_test"][:1000])
    return folder


@pytest.fixture(scope="module")
def fashion(shared_data_dir):
    return catalog.load_dataset("fashion_mnist", shared_data_dir, shared_data_dir / "no-uploads")


def test_the_shared_file_is_the_real_fashion_mnist_with_its_class_names(fashion):
    assert fashion.info.class_names == FASHION_NAMES and fashion.info.kind == "object"
    assert fashion.x_train.shape == (60000, 28, 28, 1) and fashion.x_test.shape == (10000, 28, 28, 1)
    assert sorted(set(fashion.y_test.tolist())) == list(range(10))
    assert abs(fashion.x_train[:10000].mean() / 255 - 0.286) < 0.01  # Zalando's published pixel mean


def test_one_epoch_on_2000_fashion_images_beats_chance_by_far(fashion):
    """Chance is 10%; an MLP 128 after one epoch on 1,600 training images is far above it."""
    config = presets.get_preset("mlp-128").config(limit=2000, epochs=1)
    data = datasets.prepare(fashion, validation_split=config.validation_split, limit=config.limit, seed=0)
    result = loop.train(config, data)
    assert len(data.y_train) == 1600
    assert result.status == "finished" and result.test_accuracy > 0.5


def test_every_fashion_preset_trains_from_the_cli_on_fashion_mnist(fashion_slice_dir, tmp_path, capsys):
    """`python -m lib train --preset NAME --dataset fashion_mnist` for each Fashion recipe (a small slice).

    The first runs as the program; the others through `cli.main` in this process, the same command line
    and checks without a TensorFlow start-up each (seconds apiece on CI's 2 cores)."""
    from lib import cli

    assert set(FASHION_PRESETS) >= {"mlp-128", "mlp-512", "cnn-gap-small", "cnn-gap-deep"}
    for index, name in enumerate(FASHION_PRESETS):
        args = ["train", "--preset", name, "--dataset", "fashion_mnist", "--limit", "300", "--epochs", "1",
                "--data-dir", str(fashion_slice_dir), "--runs-dir", str(tmp_path), "--json"]
        if index == 0:
            done = subprocess.run([sys.executable, "-m", "lib", *args], capture_output=True, text=True, cwd=PROJECT,
                                  timeout=600)
            returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
        else:
            returncode = cli.main(args)
            stdout, stderr = capsys.readouterr()
        assert returncode == 0, (name, stderr[-2000:])
        line = json.loads(stdout.strip().splitlines()[-1])
        meta = json.loads((Path(line["path"]) / "meta.json").read_text(encoding="utf-8"))
        assert meta["config"]["dataset"] == "fashion_mnist" and meta["config"]["name"] == name
        assert meta["dataset"]["class_names"][-1] == "Ankle boot"


def test_a_preset_still_refuses_another_dataset(shared_data_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "lib", "train", "--preset", "mlp-128", "--dataset", "mnist2",
                           "--data-dir", str(shared_data_dir), "--runs-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert done.returncode != 0 and "--dataset" in done.stderr and len(done.stderr.strip().splitlines()) == 1

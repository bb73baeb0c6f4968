"""Datasets: registry, npz validation (one message per problem), splits."""

import re

import numpy as np
import pytest

from lib.data import catalog, datasets
from tests.conftest import synthetic_arrays


def write_npz(folder, name, **arrays):
    path = folder / f"{name}.npz"
    np.savez(path, **arrays)
    return path


def test_registry_lists_builtins_and_files_in_data_dir(tmp_path, runs_dir):
    write_npz(tmp_path, "letters", **synthetic_arrays(50, 20, num_classes=4))
    found = catalog.available_datasets(tmp_path)
    assert list(found)[:2] == ["mnist", "fashion_mnist"]
    assert found["fashion_mnist"].class_names[0] == "T-shirt/top"
    letters = found["letters"]
    assert letters.input_shape == (28, 28, 1)
    assert letters.class_names == ("0", "1", "2", "3")


def test_data_dir_file_is_used_before_keras_loader(tiny_data_dir, runs_dir):
    dataset = catalog.load_dataset("mnist", tiny_data_dir)
    assert dataset.info.path == tiny_data_dir / "mnist.npz"
    assert dataset.x_train.shape == (600, 28, 28, 1)
    assert dataset.x_train.dtype == np.uint8  # images stay uint8 in memory
    assert dataset.y_test.shape == (200,)


def test_generated_fashion_mnist_loads_with_its_class_names(tiny_data_dir, runs_dir):
    dataset = catalog.load_dataset("fashion_mnist", tiny_data_dir)
    assert dataset.info.class_names[-1] == "Ankle boot"
    assert dataset.info.kind == "object"
    assert len(dataset.x_test) == 100


def test_missing_file_offline_says_which_file_to_put_where(tmp_path, runs_dir, monkeypatch):
    def offline(name):
        raise OSError("no network")

    monkeypatch.setattr(catalog, "_keras_load", offline)
    with pytest.raises(datasets.DatasetUnavailable) as caught:
        catalog.load_dataset("fashion_mnist", tmp_path)
    message = str(caught.value)
    assert "fashion_mnist.npz" in message and str(tmp_path) in message
    assert "MNIST_STUDIO_DATA_DIR" in message


def good():
    return synthetic_arrays(40, 20)


def _names(*names):
    return lambda a: a.update(class_names=np.array(names))


# Hostile files: each inconsistency between images, labels, class_names and kind, and the message it gets.
# good() has 40 training and 20 test images of 10 classes, labels 0..9.
HOSTILE = [
    pytest.param(lambda a: a.pop("y_test"), "missing array(s) y_test", id="no-y_test"),
    pytest.param(lambda a: a.update(x_train=a["x_train"][:, :, :, None].repeat(2, axis=3)),
                 "expected (N, H, W) or (N, H, W, C)", id="two-channels"),
    pytest.param(lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "dtype float32; expected uint8",
                 id="float-pixels"),
    pytest.param(lambda a: a.update(x_train=np.zeros((40, 4, 4), np.uint8), x_test=np.zeros((20, 4, 4), np.uint8)),
                 "sides must be", id="tiny-images"),
    pytest.param(lambda a: a.update(x_test=np.zeros((20, 32, 32), np.uint8)), "they must match",
                 id="x_test-other-size"),
    pytest.param(lambda a: a.update(x_test=a["x_test"][..., None].repeat(3, axis=3)),
                 "train images are (28, 28, 1) but test images are (28, 28, 3); they must match",
                 id="x_test-other-channels"),
    pytest.param(lambda a: a.update(y_train=a["y_train"][:-1]), "x_train has 40 images but y_train has 39 labels",
                 id="y_train-short"),
    pytest.param(lambda a: a.update(y_test=np.concatenate([a["y_test"], a["y_test"]])),
                 "x_test has 20 images but y_test has 40 labels", id="y_test-long"),
    pytest.param(lambda a: a.update(y_train=a["y_train"].astype(np.float32)), "expected one integer label per image",
                 id="float-labels"),
    pytest.param(lambda a: a.update(y_train=a["y_train"] > 4), "dtype bool; expected one integer label per image",
                 id="bool-labels"),
    pytest.param(lambda a: a.update(y_train=np.eye(10, dtype=np.uint8)[a["y_train"]]),
                 "y_train has shape (40, 10) and dtype uint8; expected one integer label per image", id="one-hot-labels"),
    pytest.param(lambda a: a.update(y_test=a["y_test"].astype(np.int64) - 5), "labels must be 0..K-1",
                 id="negative-labels"),
    pytest.param(lambda a: a.update(y_train=np.full(40, 3, dtype=np.uint8)), "only one class", id="one-class"),
    pytest.param(lambda a: a.update(y_train=a["y_train"] % 5), "y_test has labels that never occur in y_train",
                 id="test-only-labels"),
    pytest.param(lambda a: a.update(x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8)),
                 "the test split is empty (x_test holds 0 images)", id="no-test-images"),
    pytest.param(_names(*"abcd"), "y_train has labels up to 9, but the dataset has only 4 classes "
                 "('a', 'b', 'c', 'd'), so labels must be 0 to 3", id="fewer-names-than-labels"),
    pytest.param(lambda a: a.update(class_names=np.arange(10)),
                 "class_names has shape (10,) and dtype int64; expected 2 to 100", id="names-not-strings"),
    pytest.param(lambda a: a.update(class_names=np.array([list("abcde"), list("fghij")])),
                 "class_names has shape (2, 5)", id="names-2d"),
    pytest.param(_names("only"), "class_names has shape (1,)", id="one-name"),
    pytest.param(_names(*"0123", "", *"56789"), "class name 5 is empty; every class needs a name", id="empty-name"),
    pytest.param(_names(*"0123", "   ", *"56789"), "class name 5 is empty", id="blank-name"),
    pytest.param(_names(*"012345678", "3"), "class names 4 and 10 are both '3'; each class needs its own name",
                 id="duplicate-names"),
    pytest.param(_names("x" * 61, *"123456789"), "class name 1 has 61 characters; at most 60 are allowed",
                 id="long-name"),
    pytest.param(_names("x" * 5000, *"123456789"), "class_names has shape (10,) and dtype <U5000; expected 2 to 100 "
                 "short strings", id="absurdly-long-name"),
    pytest.param(_names(*"012345678", "nine\nlines"), "class name 10 ('nine\\nlines') contains control characters",
                 id="control-characters"),
    pytest.param(lambda a: a.update(class_names=np.array([b"\xff\xfe", *[str(d).encode() for d in range(1, 10)]])),
                 "class name 1 is not valid UTF-8 text", id="names-not-utf8"),
    pytest.param(lambda a: a.update(kind=np.array("animal")), "kind is 'animal'; expected 'digit' or 'object'",
                 id="unknown-kind"),
    pytest.param(lambda a: a.update(kind=np.array(["digit"])), "kind has shape (1,) and dtype <U5", id="kind-list"),
    pytest.param(lambda a: a.update(kind=np.array(1)), "kind has shape () and dtype int64", id="kind-number"),
]


@pytest.mark.parametrize("change, expected", HOSTILE)
def test_each_invalid_npz_gets_its_own_message(tmp_path, change, expected):
    arrays = good()
    change(arrays)
    path = write_npz(tmp_path, "bad", **arrays)
    with pytest.raises(datasets.InvalidDataset) as caught:
        datasets.load_npz(path)
    message = str(caught.value)
    assert message.startswith("bad.npz: ") and expected in message


@pytest.mark.parametrize("change, expected", HOSTILE)
def test_a_present_but_invalid_file_says_what_is_wrong_not_unknown(tmp_path, runs_dir, change, expected):
    """Listed with its reason; loading it by name gives the same reason instead of "Unknown dataset"."""
    arrays = good()
    change(arrays)
    write_npz(tmp_path, "bad", **arrays)
    said = f"bad.npz in {tmp_path} is not a usable dataset: "
    assert "bad" not in catalog.available_datasets(tmp_path)
    listed = catalog.unusable_datasets(tmp_path)["bad"]
    assert listed.startswith(said) and expected in listed
    with pytest.raises(datasets.InvalidDataset) as caught:
        catalog.load_dataset("bad", tmp_path)
    assert str(caught.value) == listed


@pytest.mark.parametrize("change, expected", HOSTILE)
def test_training_on_an_invalid_file_never_starts(tmp_path, runs_dir, change, expected):
    """The message, not TensorFlow's graph error: no progress event, no run saved."""
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    arrays = good()
    change(arrays)
    write_npz(tmp_path, "bad", **arrays)
    events = []
    with pytest.raises(datasets.InvalidDataset, match="bad.npz in .* is not a usable dataset"):
        train_and_save(TrainConfig(dataset="bad", arch="softmax", epochs=1), data_dir=tmp_path, runs_dir=runs_dir,
                       on_progress=events.append)
    assert [event for event in events if event.get("kind") != "phase"] == []  # at most "loading the data"
    assert not runs_dir.exists() or not any(path.is_dir() and not path.name.startswith(".") for path in runs_dir.iterdir())


def test_the_same_file_made_consistent_trains(tmp_path, runs_dir):
    """Control for the table above: one epoch on the good file and 10 names, kind and bytes names are fine."""
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    names = [f"class {d}".encode() for d in range(10)]  # numpy S strings (bytes) are read as UTF-8
    write_npz(tmp_path, "fine", **good(), class_names=np.array(names), kind=np.array(b"digit"))
    info = catalog.get_info("fine", tmp_path)
    assert info.class_names[3] == "class 3" and info.kind == "digit"
    events = []
    run, result = train_and_save(TrainConfig(dataset="fine", arch="softmax", epochs=1), data_dir=tmp_path,
                                 runs_dir=runs_dir, on_progress=events.append)
    assert result.status == "finished" and [event for event in events if event["kind"] != "phase"][0]["kind"] == "start"
    assert run.path.parent == runs_dir


def test_a_built_in_file_with_labels_past_its_classes_is_refused(tmp_path, runs_dir):
    """mnist.npz with labels up to 11 is MNIST's 10 classes: refused, not silently downloaded instead."""
    write_npz(tmp_path, "mnist", **synthetic_arrays(48, 24, num_classes=12))
    assert "mnist.npz in" in catalog.unusable_datasets(tmp_path)["mnist"]
    with pytest.raises(datasets.InvalidDataset) as caught:
        catalog.load_dataset("mnist", tmp_path)
    assert str(caught.value).startswith(
        f"mnist.npz in {tmp_path} is not a usable dataset: y_train has labels up to 11, but the dataset has only "
        "10 classes")


def test_a_broken_upload_is_named_as_the_visitors_not_by_server_path(tmp_path, runs_dir):
    uploads = datasets.uploads_dir()
    uploads.mkdir(parents=True)
    (uploads / "mine.npz").write_bytes(b"PK\x03\x04 cut off")
    (uploads / ".mine.save.tmp.npz").write_bytes(b"a save in progress")  # not reported
    (tmp_path / "My Data.npz").write_bytes(b"")
    problems = catalog.unusable_datasets(tmp_path)
    assert problems["mine"].startswith("mine.npz in your uploads is not a usable dataset: not a readable npz dataset")
    assert problems["my data"].startswith(f"My Data.npz in {tmp_path} is not a usable dataset: its name must be")
    assert set(problems) == {"mine", "my data"}


def test_an_unknown_name_is_still_unknown(tmp_path, runs_dir):
    with pytest.raises(ValueError, match="Unknown dataset: 'nope'") as caught:
        catalog.get_info("nope", tmp_path)
    assert not isinstance(caught.value, datasets.InvalidDataset)


def test_the_cli_says_what_is_wrong_with_a_present_file(tmp_path, capsys):
    """`python -m lib train --dataset bad`: one line naming the file, its folder and the reason."""
    from lib import cli

    arrays = good()
    arrays["class_names"] = np.array(list("abcd"))
    write_npz(tmp_path, "bad", **arrays)
    code = cli.main(["train", "--dataset", "bad", "--epochs", "1", "--data-dir", str(tmp_path),
                     "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert err.startswith(f"error: bad.npz in {tmp_path} is not a usable dataset: y_train has labels up to 9, "
                          "but the dataset has only 4 classes")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_saving_arrays_checks_class_names_and_kind(tmp_path):
    arrays = synthetic_arrays(30, 10, num_classes=3)
    for names, kind, expected in [
        (["o", "x"], "object", "y_train has labels up to 2, but the dataset has only 2 classes"),
        (["o", "x", "o"], "object", "class names 1 and 3 are both 'o'"),
        (["o", "x", 3], "object", "class name 3 must be a string; got 3"),
        ("oxo", "object", "class_names must be a list of strings"),
        (["o", "x", "+"], "animal", "kind is 'animal'"),
    ]:
        with pytest.raises(datasets.InvalidDataset, match=re.escape(expected)):
            datasets.save_arrays("shapes", arrays, class_names=names, kind=kind, folder=tmp_path)
    assert not list(tmp_path.iterdir())
    info = datasets.save_arrays("shapes", arrays, class_names=[" o ", "x", "+"], folder=tmp_path)
    assert info.class_names == ("o", "x", "+")


def test_a_corrupt_file_is_refused_not_crashing(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(datasets.InvalidDataset, match="broken.npz"):
        datasets.load_npz(path)
    assert "broken" not in catalog.available_datasets(tmp_path)


def test_pickled_object_arrays_are_never_loaded(tmp_path):
    arrays = good()
    arrays["x_train"] = np.array([object()] * 40, dtype=object)
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)
    with pytest.raises(datasets.InvalidDataset):
        datasets.load_npz(path)


def test_prepare_holds_out_a_stratified_seeded_validation_split(tiny_data_dir):
    dataset = catalog.load_dataset("mnist", tiny_data_dir)
    first = datasets.prepare(dataset, validation_split=0.2, seed=3)
    again = datasets.prepare(dataset, validation_split=0.2, seed=3)
    other = datasets.prepare(dataset, validation_split=0.2, seed=4)
    assert len(first.y_val) == 120 and len(first.y_train) == 480
    np.testing.assert_array_equal(first.y_val, again.y_val)
    assert not np.array_equal(first.x_val, other.x_val)
    # Every class keeps its share in the validation split.
    train_share = np.bincount(dataset.y_train, minlength=10) / len(dataset.y_train)
    val_share = np.bincount(first.y_val, minlength=10) / len(first.y_val)
    assert np.abs(train_share - val_share).max() < 0.02
    assert len(first.y_test) == 200  # the test set stays whole


def test_limit_is_a_stratified_sample(tiny_data_dir):
    dataset = catalog.load_dataset("mnist", tiny_data_dir)
    data = datasets.prepare(dataset, validation_split=0.0, limit=100, seed=0)
    assert len(data.y_train) == 100 and len(data.y_val) == 0
    counts = np.bincount(data.y_train, minlength=10)
    assert counts.min() >= 6 and counts.max() <= 15
    with pytest.raises(ValueError, match="too small"):
        datasets.prepare(dataset, limit=5)


def test_upload_is_validated_and_kept_under_the_runs_dir(tmp_path, runs_dir):
    path = write_npz(tmp_path, "mine", **synthetic_arrays(30, 10, num_classes=3))
    info = datasets.save_upload("mine", path.read_bytes())
    assert info.path.parent == runs_dir / ".datasets"
    assert "mine" in catalog.available_datasets(tmp_path / "nothing")
    with pytest.raises(datasets.InvalidDataset, match="not an .npz"):
        datasets.save_upload("other", b"hello")
    bad = good()
    bad["x_train"] = bad["x_train"].astype(np.float64)
    bad_path = write_npz(tmp_path, "bad", **bad)
    with pytest.raises(datasets.InvalidDataset, match="uploaded file.*expected uint8"):
        datasets.save_upload("bad", bad_path.read_bytes())
    assert not (runs_dir / ".datasets" / "bad.npz").exists()
    with pytest.raises(datasets.InvalidDataset, match="names use"):
        datasets.save_upload("../evil", path.read_bytes())


def test_pixel_stats_and_class_counts(tiny_data_dir):
    dataset = catalog.load_dataset("mnist", tiny_data_dir)
    stats = datasets.pixel_stats(dataset.x_train)
    assert stats["dtype"] == "uint8" and stats["max"] <= 255
    assert stats["mean_scaled"] == pytest.approx(stats["mean"] / 255)
    assert sum(datasets.class_counts(dataset.y_train, 10)) == 600


def crafted_npz(path, arrays, *, claims=None):
    """An npz whose members hold `arrays`; `claims` maps a key to the shape its .npy header declares instead."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            data = buffer.getvalue()
            if claims and key in claims:
                header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
                          "shape": claims[key]}
                fake = io.BytesIO()
                np.lib.format.write_array_header_1_0(fake, header)
                data = fake.getvalue() + array.tobytes()
            archive.writestr(f"{key}.npy", data)
    return path


def test_a_header_claiming_730_gib_is_refused_before_anything_is_read(tmp_path, monkeypatch):
    """A 120 KB file whose x_train header claims a billion images never reaches an allocation."""
    arrays = good()
    path = crafted_npz(tmp_path / "huge.npz", arrays, claims={"x_train": (1_000_000_000, 28, 28)})
    assert path.stat().st_size < 200_000

    def no_reading(*args, **kwargs):
        raise AssertionError("array data was read")

    monkeypatch.setattr(np.lib.format, "read_array", no_reading)
    with pytest.raises(datasets.InvalidDataset) as caught:
        datasets.load_npz(path)
    message = str(caught.value)
    assert "huge.npz: x_train.npy declares shape (1000000000, 28, 28)" in message
    assert "damaged or crafted" in message
    assert "huge" not in catalog.available_datasets(tmp_path)  # the listing skips it quietly


def test_a_member_claiming_more_than_deflate_can_produce_is_refused(tmp_path):
    """Zip directory sizes are checked too: a tiny member that claims 4 GB uncompressed is a lie."""
    import struct

    path = write_npz(tmp_path, "bomb", **good())
    data = bytearray(path.read_bytes())
    # Patch the central directory's uncompressed size of the first member (x_train.npy).
    entry = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, entry + 24, 4_000_000_000)
    path.write_bytes(bytes(data))
    with pytest.raises(datasets.InvalidDataset, match="bomb.npz: x_train.npy claims 4,000,000,000 bytes"):
        datasets.load_npz(path)


def test_arrays_larger_than_the_limit_are_refused_by_their_headers(tmp_path, monkeypatch):
    path = write_npz(tmp_path, "big", **good())
    monkeypatch.setattr(datasets, "MAX_ARRAY_BYTES", 10_000)
    with pytest.raises(datasets.InvalidDataset, match=r"big.npz: its arrays hold 0 MB uncompressed; the limit is 0 MB"):
        datasets.load_npz(path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_dataset_with_zero_images_gets_a_message_not_numpy_internals(tmp_path, runs_dir, split):
    arrays = good()
    arrays[f"x_{split}"] = np.zeros((0, 28, 28), np.uint8)
    arrays[f"y_{split}"] = np.zeros((0,), np.uint8)
    path = write_npz(tmp_path, "empty", **arrays)
    with pytest.raises(datasets.InvalidDataset) as caught:
        datasets.load_npz(path)
    assert f"empty.npz: the {split} split is empty (x_{split} holds 0 images)" in str(caught.value)
    with pytest.raises(datasets.InvalidDataset, match=f"the uploaded file: the {split} split is empty"):
        datasets.save_upload("empty", path.read_bytes())

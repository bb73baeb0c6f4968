"""Datasets: registry, npz validation (one message per problem), splits."""

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


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda a: a.pop("y_test"), "missing array(s) y_test"),
        (lambda a: a.update(x_train=a["x_train"][:, :, :, None].repeat(2, axis=3)), "expected (N, H, W) or (N, H, W, C)"),
        (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "dtype float32; expected uint8"),
        (lambda a: a.update(y_train=a["y_train"][:-1]), "has 40 images but y_train has 39 labels"),
        (lambda a: a.update(y_train=np.full(40, 3, dtype=np.uint8)), "only one class"),
        (lambda a: a.update(y_test=a["y_test"].astype(np.int64) - 5), "labels must be 0..K-1"),
        (lambda a: a.update(x_test=np.zeros((20, 32, 32), np.uint8)), "they must match"),
        (lambda a: a.update(x_train=np.zeros((40, 4, 4), np.uint8), x_test=np.zeros((20, 4, 4), np.uint8)), "sides must be"),
        (lambda a: a.update(y_train=a["y_train"].astype(np.float32)), "expected one integer label per image"),
    ],
)
def test_each_invalid_npz_gets_its_own_message(tmp_path, change, expected):
    arrays = good()
    change(arrays)
    path = write_npz(tmp_path, "bad", **arrays)
    with pytest.raises(datasets.InvalidDataset) as caught:
        datasets.load_npz(path)
    assert expected in str(caught.value)


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

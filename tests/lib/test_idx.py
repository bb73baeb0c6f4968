"""lib.data.idx: the IDX files MNIST and Fashion-MNIST are published in, read and checked like an npz."""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from lib.data import datasets, idx

# Where Debian's dataset-fashion-mnist package puts Zalando's original files.
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True, type_code: int = 0x08) -> Path:
    """An IDX file as the format's specification describes it (big-endian dims, then the bytes)."""
    payload = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def write_folder(folder: Path, arrays: dict, *, compress: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in idx.FILES.items():
        write_idx(folder / (stem + (".gz" if compress else "")), arrays[key], compress=compress)
    return folder


@pytest.fixture(scope="module")
def fashion_npz() -> Path:
    folder = os.environ.get("MNIST_STUDIO_DATA_DIR", "")
    path = Path(folder) / "fashion_mnist.npz"
    if not path.is_file():
        pytest.fail(f"fashion_mnist.npz is not in MNIST_STUDIO_DATA_DIR ({folder!r}); CI sets it to ../shared/datasets")
    return path


@pytest.fixture
def small_arrays(fashion_npz) -> dict:
    with np.load(fashion_npz) as npz:
        return {"x_train": npz["x_train"][:300], "y_train": npz["y_train"][:300],
                "x_test": npz["x_test"][:100], "y_test": npz["y_test"][:100]}


@pytest.mark.parametrize("compress", [True, False])
def test_an_idx_folder_reads_back_the_same_arrays(tmp_path, small_arrays, compress):
    folder = write_folder(tmp_path / "fashion", small_arrays, compress=compress)
    loaded = idx.load_folder(folder)
    for key, array in small_arrays.items():
        np.testing.assert_array_equal(loaded[key], array)
    assert loaded["x_train"].dtype == np.uint8 and loaded["y_train"].dtype == np.int64
    assert idx.headers(folder)["x_train"][0] == (300, 28, 28)


def test_the_published_fashion_files_read_as_the_npz(tmp_path, fashion_npz):
    """Zalando's original .gz files (Debian's package) or, without it, files written from the npz:
    the reader gives exactly the npz's 70,000 images and labels."""
    with np.load(fashion_npz) as npz:
        expected = {key: npz[key] for key in datasets.REQUIRED_KEYS}
    folder = DEBIAN_FASHION if idx.find_files(DEBIAN_FASHION) else write_folder(tmp_path / "fashion", expected)
    loaded = idx.load_folder(folder)
    for key, array in expected.items():
        np.testing.assert_array_equal(loaded[key], array)
    assert np.bincount(loaded["y_test"]).tolist() == [1000] * 10


def _damage(tmp_path, small_arrays, name, content: bytes) -> Path:
    folder = write_folder(tmp_path / "bad", small_arrays)
    (folder / f"{name}.gz").write_bytes(content)
    return folder


def _raw(type_code, dims, data=b"") -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + data


@pytest.mark.parametrize("content, message", [
    (gzip.compress(b"PK\x03\x04 not idx"), "not an IDX file"),
    (gzip.compress(_raw(0x0D, (300, 28, 28))), "element type 0x0d"),
    (gzip.compress(_raw(0x08, (300, 28, 28), b"\0" * 100)), "cut off"),
    (gzip.compress(_raw(0x08, (300, 28, 28), b"\0" * (300 * 784 + 5))), "longer than its header"),
    (gzip.compress(_raw(0x08, (300, 28))), "has 2 dimensions"),
    (gzip.compress(_raw(0x08, (300, 28, 28, 1))), "has 4 dimensions"),
    (gzip.compress(_raw(0x08, (4_000_000_000, 28, 28))), "at most 1,000,000"),
    (gzip.compress(_raw(0x08, (10, 60_000, 60_000))), "sides up to"),
    (gzip.compress(_raw(0x08, (300, 28, 28)))[:30], "damaged"),
], ids=["not-idx", "float-type", "short", "long", "2-dims", "4-dims", "too-many", "huge-side", "truncated-gzip"])
def test_damaged_image_files_are_refused_with_the_reason(tmp_path, small_arrays, content, message):
    folder = _damage(tmp_path, small_arrays, idx.FILES["x_train"], content)
    with pytest.raises(datasets.InvalidDataset, match=message):
        idx.load_folder(folder)


def test_a_gzip_bomb_is_not_inflated_past_its_header(tmp_path, small_arrays):
    """10 announced labels followed by 200 MB of zeros (a 200 KB gzip): refused after reading 11 bytes."""
    bomb = gzip.compress(_raw(0x08, (10,), b"\0" * (200 * 1024 * 1024)), compresslevel=9)
    folder = _damage(tmp_path, small_arrays, idx.FILES["y_test"], bomb)
    with pytest.raises(datasets.InvalidDataset, match="longer than its header"):
        idx.load_folder(folder)


def test_labels_are_validated_like_an_npz(tmp_path, small_arrays):
    bad = dict(small_arrays, y_test=np.full(100, 200, dtype=np.uint8))
    with pytest.raises(datasets.InvalidDataset, match="labels"):
        idx.load_folder(write_folder(tmp_path / "labels", bad))
    short = dict(small_arrays, y_train=small_arrays["y_train"][:10])
    with pytest.raises(datasets.InvalidDataset):
        idx.load_folder(write_folder(tmp_path / "short", short))


def test_a_folder_missing_a_file_is_not_an_idx_dataset(tmp_path, small_arrays):
    folder = write_folder(tmp_path / "three", small_arrays)
    (folder / f"{idx.FILES['y_test']}.gz").unlink()
    assert not idx.looks_like_idx_folder(folder)
    with pytest.raises(datasets.InvalidDataset, match="needs the four IDX files"):
        idx.load_folder(folder)


def test_a_fashion_mnist_idx_folder_in_the_data_dir_is_the_built_in(tmp_path, small_arrays):
    """Debian's folder name (fashion-mnist/) or the dataset's (fashion_mnist/): listed as the built-in with
    its class names, loaded straight from the IDX files; no npz is written anywhere."""
    from lib.data import catalog

    write_folder(tmp_path / "data" / "fashion-mnist", small_arrays)
    uploads = tmp_path / "uploads"
    info = catalog.available_datasets(tmp_path / "data", uploads)["fashion_mnist"]
    assert info.path == tmp_path / "data" / "fashion-mnist"
    assert info.class_names[0] == "T-shirt/top" and info.kind == "object" and info.train_images == 300
    loaded = catalog.load_dataset("fashion_mnist", tmp_path / "data", uploads)
    np.testing.assert_array_equal(loaded.x_train[..., 0], small_arrays["x_train"])
    np.testing.assert_array_equal(loaded.y_test, small_arrays["y_test"])
    assert not list(tmp_path.rglob("*.npz"))


def test_an_npz_of_the_same_name_wins_and_other_idx_folders_are_datasets(tmp_path, small_arrays):
    from lib.data import catalog

    data = tmp_path / "data"
    write_folder(data / "letters", dict(small_arrays, y_train=small_arrays["y_train"] % 4,
                                        y_test=small_arrays["y_test"] % 4))
    write_folder(data / "mnist", small_arrays)
    np.savez(data / "mnist.npz", **{key: value[:50] for key, value in small_arrays.items()})
    found = catalog.available_datasets(data, tmp_path / "uploads")
    assert found["mnist"].path == data / "mnist.npz"
    assert found["letters"].class_names == ("0", "1", "2", "3")
    assert catalog.load_dataset("letters", data, tmp_path / "uploads").x_test.shape == (100, 28, 28, 1)

"""The IDX format MNIST and Fashion-MNIST are published in, read without any conversion step.

A folder holding `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
`t10k-labels-idx1-ubyte` (each optionally `.gz`, as LeCun's and Zalando's downloads and Debian's
`dataset-fashion-mnist` package ship them) is a dataset. Headers are checked before any data is
read, a gzip stream is never inflated past the size its header announces (no gzip bombs), and the
arrays then go through the same validation as an npz (`datasets.validate_arrays`).

IDX layout (big-endian): two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, one uint32 per dimension, then the data in C order.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np

from lib.data.datasets import BUILTINS, DatasetInfo, InvalidDataset, check_shapes, validate_arrays
from lib.i18n import N_

# The published file names, by the array each one becomes.
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
DIMENSIONS = {"x_train": 3, "y_train": 1, "x_test": 3, "y_test": 1}
UNSIGNED_BYTE = 0x08  # the only element type the image datasets use
MAX_SIDE = 512
MAX_ITEMS = 1_000_000
MAX_BYTES = 1024 * 1024 * 1024  # everything in one file, unpacked
# Refusals raised twice (English here; the pages show them translated, see lib.i18n.translate_filled).
NEEDS_FILES = N_("{folder}/: needs the four IDX files {files} (optionally .gz).")
WRONG_DIMENSIONS = N_("{file}: has {count} dimensions; {key} needs {needed}.")


def find_files(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in `folder` by array name (plain or .gz), or None when any is missing."""
    found = {}
    for key, stem in FILES.items():
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file() and not candidate.is_symlink():
                found[key] = candidate
                break
        else:
            return None
    return found


def looks_like_idx_folder(folder: Path) -> bool:
    """Cheap test for the catalog: a visible folder with all four files."""
    return not folder.name.startswith(".") and folder.is_dir() and find_files(folder) is not None


def read_header(path: Path) -> tuple[int, ...]:
    """The dimensions an IDX file announces; InvalidDataset when the header is not an IDX of bytes."""
    with _open(path) as handle:
        return _header(handle, path)


def headers(folder: Path) -> dict[str, tuple[tuple, np.dtype]]:
    """Shapes and dtypes of the four arrays from the headers alone (what listing a dataset needs)."""
    files = find_files(folder)
    if files is None:
        raise InvalidDataset(NEEDS_FILES.format(folder=folder.name, files=", ".join(FILES.values())))
    found = {}
    for key, path in files.items():
        dims = read_header(path)
        if len(dims) != DIMENSIONS[key]:
            raise InvalidDataset(WRONG_DIMENSIONS.format(file=path.name, count=len(dims), key=key, needed=DIMENSIONS[key]))
        found[key] = (dims, np.dtype(np.uint8))
    return found


def load_folder(folder: Path) -> dict[str, np.ndarray]:
    """The four arrays of an IDX folder, validated like an npz (uint8 images, int labels 0..K-1)."""
    files = find_files(folder)
    if files is None:
        raise InvalidDataset(NEEDS_FILES.format(folder=folder.name, files=", ".join(FILES.values())))
    arrays = {}
    for key, path in files.items():
        array = read_array(path)
        if array.ndim != DIMENSIONS[key]:
            raise InvalidDataset(WRONG_DIMENSIONS.format(file=path.name, count=array.ndim, key=key, needed=DIMENSIONS[key]))
        arrays[key] = array if key.startswith("x_") else array.astype(np.int64)
    validate_arrays(arrays, source=f"{folder.name}/")
    return arrays


def read_array(path: Path) -> np.ndarray:
    """One IDX file as a uint8 array; a file shorter or longer than its header says is refused."""
    with _open(path) as handle:
        dims = _header(handle, path)
        size = int(np.prod(dims, dtype=np.int64))
        data = _read(handle, size, path)
        if len(data) != size:
            raise InvalidDataset(N_("{file}: cut off ({count:,} of {size:,} data bytes).").format(
                file=path.name, count=len(data), size=size))
        if _read(handle, 1, path):
            raise InvalidDataset(N_("{file}: longer than its header says ({size:,} data bytes).").format(
                file=path.name, size=size))
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _open(path: Path):
    try:
        handle = path.open("rb")
        if handle.read(2) == b"\x1f\x8b":
            handle.seek(0)
            return gzip.GzipFile(fileobj=handle, mode="rb")
        handle.seek(0)
        return handle
    except OSError as error:
        raise InvalidDataset(N_("{file}: cannot be read ({error}).").format(file=path.name, error=error.strerror or error)) from None


def _read(handle, size: int, path: Path) -> bytes:
    try:
        return handle.read(size)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InvalidDataset(N_("{file}: damaged ({error}).").format(file=path.name, error=error)) from None


def _header(handle, path: Path) -> tuple[int, ...]:
    magic = _read(handle, 4, path)
    if len(magic) != 4 or magic[:2] != b"\0\0":
        raise InvalidDataset(N_("{file}: not an IDX file (it must start with two zero bytes).").format(file=path.name))
    if magic[2] != UNSIGNED_BYTE:
        raise InvalidDataset(N_("{file}: holds element type 0x{code:02x}; images and labels are bytes (0x08).").format(
            file=path.name, code=magic[2]))
    count = magic[3]
    if count not in (1, 3):
        raise InvalidDataset(N_("{file}: has {count} dimensions; images have 3 (N, rows, columns), labels 1.").format(
            file=path.name, count=count))
    raw = _read(handle, 4 * count, path)
    if len(raw) != 4 * count:
        raise InvalidDataset(N_("{file}: cut off in its header.").format(file=path.name))
    dims = struct.unpack(f">{count}I", raw)
    if not 0 < dims[0] <= MAX_ITEMS:
        raise InvalidDataset(N_("{file}: announces {count:,} items; at most {limit:,} are allowed.").format(
            file=path.name, count=dims[0], limit=MAX_ITEMS))
    if any(not 0 < side <= MAX_SIDE for side in dims[1:]):
        raise InvalidDataset(N_("{file}: images of {sides} px; sides up to {limit}.").format(
            file=path.name, sides=" x ".join(map(str, dims[1:])), limit=MAX_SIDE))
    if int(np.prod(dims, dtype=np.int64)) > MAX_BYTES:
        raise InvalidDataset(N_("{file}: announces over {limit} MB of data.").format(file=path.name, limit=MAX_BYTES // 2**20))
    return dims


def folder_info(name: str, folder: Path) -> DatasetInfo:
    """Dataset info from the headers (and, for a dataset that is not a built-in, the small label file)."""
    found = headers(folder)
    check_shapes(found, source=f"{folder.name}/")
    shape = found["x_train"][0]
    input_shape, train_images = (shape[1], shape[2], 1), int(shape[0])
    source = f"the IDX files in {folder.name}/"
    builtin = BUILTINS.get(name)
    if builtin is not None:
        return replace(builtin, path=folder, input_shape=input_shape, train_images=train_images,
                       description=f"{builtin.description} Read from {source}.")
    labels = read_array(find_files(folder)["y_train"])
    return DatasetInfo(name=name, title=f"{name} (IDX files)", class_names=tuple(str(c) for c in range(int(labels.max()) + 1)),
                       input_shape=input_shape, kind="object", path=folder, description=f"Your dataset from {source}.",
                       train_images=train_images)

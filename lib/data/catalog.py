"""Which datasets exist and loading one by name: the built-ins, every `NAME.npz` in the data
directory or a visitor's uploads, and every folder of class folders (converted once, cached).

Sits above `datasets` (the npz format) and `imagefolder` (conversion), so neither needs the other.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lib.data import idx, imagefolder, paths
from lib.data.datasets import (
    BUILTINS,
    NAME_PATTERN,
    Dataset,
    DatasetInfo,
    DatasetUnavailable,
    InvalidDataset,
    as_dataset,
    file_info,
    load_npz,
    uploads_dir,
    validate_arrays,
)


def available_datasets(data_dir: Path | None = None, uploads: Path | None = None) -> dict[str, DatasetInfo]:
    """Built-ins first, then every valid-looking `NAME.npz` in the data dir and in `uploads`
    (default `uploads_dir()`; on a shared server the visitor's own).

    A file whose header cannot be read is left out here; loading it by name
    reports the problem.
    """
    found = dict(BUILTINS)
    uploads = Path(uploads) if uploads else uploads_dir()
    for folder in (Path(data_dir) if data_dir else paths.data_dir(), uploads):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.npz")):
            name = path.stem.lower()
            if not NAME_PATTERN.match(name):
                continue
            try:
                found[name] = file_info(name, path)
            except InvalidDataset:
                continue
        if folder != uploads:
            found.update(_idx_folders(folder, found))
            found.update(_image_folders(folder, skip=found))
    return found


def _idx_folders(folder: Path, found: dict) -> dict[str, DatasetInfo]:
    """Subfolders of the data dir holding the four IDX files, as MNIST and Fashion-MNIST are published
    (`fashion-mnist/` or `fashion_mnist/` is the built-in); read directly, an npz of the same name wins."""
    result = {}
    for sub in sorted(folder.iterdir()):
        name = sub.name.lower()
        name = name.replace("-", "_") if name.replace("-", "_") in BUILTINS else name
        if not NAME_PATTERN.match(name) or (name in found and found[name].path is not None):
            continue
        if not idx.looks_like_idx_folder(sub):
            continue
        try:
            result[name] = idx.folder_info(name, sub)
        except InvalidDataset:
            continue
    return result


def _image_folders(folder: Path, skip) -> dict[str, DatasetInfo]:
    """Subfolders of the data dir holding one folder of images per class, converted once and cached."""
    found = {}
    for sub in sorted(folder.iterdir()):
        name = sub.name.lower()
        if name in skip or not NAME_PATTERN.match(name) or not imagefolder.looks_like_image_folder(sub):
            continue
        try:
            path = imagefolder.cached_folder_npz(sub)
            found[name] = replace(file_info(name, path), title=f"{sub.name} (image folder)",
                                  description=f"Your images from the folder {sub.name}/ in the data directory.")
        except (imagefolder.InvalidImageFolder, InvalidDataset, OSError):
            continue
    return found


def get_info(name: str, data_dir: Path | None = None, uploads: Path | None = None) -> DatasetInfo:
    datasets = available_datasets(data_dir, uploads)
    if name not in datasets:
        raise ValueError(f"Unknown dataset: {name!r}. Known: {', '.join(datasets)}.")
    return datasets[name]


def load_dataset(name: str, data_dir: Path | None = None, uploads: Path | None = None) -> Dataset:
    """Load a dataset by name: the data directory (or `uploads`) first, else the Keras loader."""
    folder = Path(data_dir) if data_dir else paths.data_dir()
    info = get_info(name, folder, uploads)
    if info.path is not None and Path(info.path).is_dir():
        return as_dataset(idx.load_folder(Path(info.path)), info)
    if info.path is not None:
        return replace(load_npz(info.path), info=info)
    try:
        arrays = _keras_load(name)
    except Exception as error:  # noqa: BLE001 - any download failure means the same to a user
        raise DatasetUnavailable(
            f"{info.title} is not available: no {name}.npz in the data directory {folder} and "
            f"the download failed ({type(error).__name__}). Put {name}.npz (keys x_train, y_train, "
            f"x_test, y_test, as keras.datasets.{name}.load_data() returns them) into {folder}, "
            f"or point MNIST_STUDIO_DATA_DIR at the folder that has it."
        ) from None
    validate_arrays(arrays)
    return as_dataset(arrays, info)


def _keras_load(name: str) -> dict:
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

"""Which datasets exist and loading one by name: the built-ins, every `NAME.npz` in the data
directory or a visitor's uploads, and every folder of class folders (converted once, cached).

Sits above `datasets` (the npz format) and `imagefolder` (conversion), so neither needs the other.
A file or folder that is there but cannot be used is never just "unknown": `unusable_datasets`
lists it with its reason, and asking for it by name raises InvalidDataset with that reason.
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
from lib.i18n import N_

# A built-in dataset neither in the data directory nor downloadable; English (the CLI, the logs), shown
# translated on a page (lib.i18n.translate_filled: `dataset`, its title, is translated too).
NOT_AVAILABLE = N_("{dataset} is not available: no {name}.npz in the data directory {folder} and the download failed "
                   "({error}). Put {name}.npz (keys x_train, y_train, x_test, y_test, as "
                   "keras.datasets.{name}.load_data() returns them) into {folder}, or point {setting} at the folder "
                   "that has it.")
UPLOADS_LABEL = N_("your uploads")  # where a visitor's own files are, in messages (not the server's path)
# A dataset file or folder that is there but cannot be used: `reason` is its refusal without the "<file>: " lead.
UNUSABLE = N_("{what} in {where} is not a usable dataset: {reason}")
BAD_NAME = N_("its name must be lowercase letters, digits, '-' and '_' (up to 41, starting with a letter or digit); "
              "rename the file.")


def available_datasets(data_dir: Path | None = None, uploads: Path | None = None) -> dict[str, DatasetInfo]:
    """Built-ins first, then every usable `NAME.npz` in the data dir and in `uploads`
    (default `uploads_dir()`; on a shared server the visitor's own).

    Files that are there but cannot be used are left out here; `unusable_datasets`
    says why, and loading one by name raises InvalidDataset with that reason.
    """
    return _survey(data_dir, uploads)[0]


def unusable_datasets(data_dir: Path | None = None, uploads: Path | None = None) -> dict[str, str]:
    """Dataset files and folders that are present but not usable, by the name they would have:
    "mydata.npz in <dir> is not a usable dataset: <reason>"."""
    return _survey(data_dir, uploads)[1]


def _survey(data_dir: Path | None, uploads: Path | None) -> tuple[dict[str, DatasetInfo], dict[str, str]]:
    found, unusable = dict(BUILTINS), {}
    uploads = Path(uploads) if uploads else uploads_dir()
    for folder in (Path(data_dir) if data_dir else paths.data_dir(), uploads):
        if not folder.is_dir():
            continue
        where = _where(folder, uploads)
        for path in sorted(folder.glob("*.npz")):
            if path.name.startswith("."):
                continue  # a save in progress
            name = path.stem.lower()
            if not NAME_PATTERN.match(name):
                unusable[name] = unusable_message(path.name, where, InvalidDataset(BAD_NAME))
                continue
            try:
                found[name] = file_info(name, path)
            except InvalidDataset as problem:
                unusable[name] = unusable_message(path.name, where, problem)
        if folder != uploads:
            found.update(_idx_folders(folder, found, unusable))
            found.update(_image_folders(folder, found, unusable))
    return found, unusable


def unusable_message(what: str, where: str, problem: Exception) -> str:
    """The one way a present-but-broken dataset is reported: "<what> in <where> is not a usable dataset: <reason>"."""
    reason = str(problem).removeprefix(f"{what}: ")
    return UNUSABLE.format(what=what, where=where, reason=reason)


def _where(folder: Path, uploads: Path) -> str:
    return UPLOADS_LABEL if Path(folder) == Path(uploads) else str(folder)


def _idx_folders(folder: Path, found: dict, unusable: dict) -> dict[str, DatasetInfo]:
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
        except InvalidDataset as problem:
            unusable[name] = unusable_message(f"{sub.name}/", str(folder), problem)
    return result


def _image_folders(folder: Path, skip, unusable: dict) -> dict[str, DatasetInfo]:
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
        except (imagefolder.InvalidImageFolder, InvalidDataset, OSError) as problem:
            unusable[name] = unusable_message(f"{sub.name}/", str(folder), problem)
    return found


def get_info(name: str, data_dir: Path | None = None, uploads: Path | None = None) -> DatasetInfo:
    """The dataset called `name`; InvalidDataset saying what is wrong when its file is there but
    unusable (a built-in's broken file too: it is not silently downloaded instead), else ValueError."""
    found, unusable = _survey(data_dir, uploads)
    info = found.get(name)
    if name in unusable and (info is None or info.path is None):
        raise InvalidDataset(unusable[name])
    if info is None:
        raise ValueError(f"Unknown dataset: {name!r}. Known: {', '.join(found)}.")
    return info


def load_dataset(name: str, data_dir: Path | None = None, uploads: Path | None = None) -> Dataset:
    """Load a dataset by name: the data directory (or `uploads`) first, else the Keras loader.

    A file that turns out unusable while its arrays are read raises InvalidDataset
    in the same words as `unusable_datasets`.
    """
    folder = Path(data_dir) if data_dir else paths.data_dir()
    uploads = Path(uploads) if uploads else uploads_dir()
    info = get_info(name, folder, uploads)
    if info.path is not None:
        path = Path(info.path)
        what = f"{path.name}/" if path.is_dir() else path.name
        try:
            if path.is_dir():
                return as_dataset(idx.load_folder(path), info, source=what)
            return replace(load_npz(path), info=info)
        except InvalidDataset as problem:
            raise InvalidDataset(unusable_message(what, _where(path.parent, uploads), problem)) from None
    try:
        arrays = _keras_load(name)
    except Exception as error:  # noqa: BLE001 - any download failure means the same to a user
        raise DatasetUnavailable(NOT_AVAILABLE.format(dataset=info.title, name=name, folder=folder,
                                                      error=type(error).__name__, setting=paths.DATA_DIR_ENV)) from None
    validate_arrays(arrays)
    return as_dataset(arrays, info)


def _keras_load(name: str) -> dict:
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

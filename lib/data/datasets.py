"""Datasets as files: the npz format (validated without unpickling), saving, and splits.

Built-ins are MNIST and Fashion-MNIST; any `NAME.npz` in the data directory (or
uploaded by a user) is a dataset too (`catalog` lists and loads them by name). Images stay uint8 in memory with a
channel axis, (N, H, W, C); scaling to [0, 1] happens per batch in training.
"""

from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.data import paths
from lib.i18n import N_

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 100
MIN_SIDE, MAX_SIDE = 8, 128  # larger images would not train in a browser session
MAX_NPZ_BYTES = 300 * 1024 * 1024
# All arrays together as their .npy headers declare them, checked before anything is read
# (full MNIST is 55 MB); a crafted header could otherwise ask for hundreds of GiB.
MAX_ARRAY_BYTES = 1024 * 1024 * 1024
# Deflate cannot shrink data more than ~1032:1, so a member claiming more is lying about its size.
MAX_DEFLATE_RATIO = 1100
MAX_HEADER_BYTES = 10_000  # numpy's own default limit for an .npy header
DIGIT_NAMES = tuple(str(d) for d in range(10))
# Marked for the catalog: the app shows them in the visitor's language (lib/ui/i18n.class_names).
FASHION_NAMES = (
    N_("T-shirt/top"), N_("Trouser"), N_("Pullover"), N_("Dress"), N_("Coat"),
    N_("Sandal"), N_("Shirt"), N_("Sneaker"), N_("Bag"), N_("Ankle boot"),
)
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
UPLOADS_SUBDIR = ".datasets"  # inside the runs dir: the data dir may be read-only
KINDS = ("digit", "object")  # an npz may say which in an optional `kind` array (drawn datasets: digit)
# Class names label charts, tables and predictions; the app itself writes at most 40 characters.
MAX_CLASS_NAME_CHARS = 60
# Refusals raised in more than one place. Like every refusal here they stay English (the CLI, the logs) and
# are marked for the catalog: the pages show them translated (lib.i18n.translate_filled).
MISSING_ARRAYS = N_("{source}: missing array(s) {names}; an npz dataset needs x_train, y_train, x_test and y_test.")
NOT_READABLE = N_("{source}: not a readable npz dataset ({error}).")


class DatasetUnavailable(RuntimeError):
    """The dataset cannot be had here; the message says which file to put where."""


class InvalidDataset(ValueError):
    """An npz file is not a usable dataset; the message names the problem."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    kind: str  # "digit" (MNIST-style drawing preprocessing) or "object"
    path: Path | None = None  # the npz it comes from; None: the Keras loader
    description: str = ""
    attribution: str = ""
    train_images: int = 60_000  # from the file's header; the built-ins' Keras copies have 60,000

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class Dataset:
    info: DatasetInfo
    x_train: np.ndarray  # uint8 (N, H, W, C)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class PreparedData:
    """A dataset cut into train / validation / test, ready for `train`."""

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.info.input_shape


BUILTINS = {
    "mnist": DatasetInfo(
        name="mnist",
        title=N_("MNIST handwritten digits"),
        class_names=DIGIT_NAMES,
        input_shape=(28, 28, 1),
        kind="digit",
        description=N_("70,000 grayscale 28x28 handwritten digits (60,000 train, 10,000 test)."),
        attribution="MNIST: Yann LeCun, Corinna Cortes and Christopher J.C. Burges.",
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        title=N_("Fashion-MNIST clothing"),
        class_names=FASHION_NAMES,
        input_shape=(28, 28, 1),
        kind="object",
        description=N_("70,000 grayscale 28x28 Zalando article images in 10 classes."),
        attribution="Fashion-MNIST: Zalando Research (Han Xiao, Kashif Rasul, Roland Vollgraf), MIT licence.",
    ),
}


def uploads_dir(runs_folder: Path | None = None) -> Path:
    """Where datasets uploaded or drawn in the app are kept: beside the runs of `runs_folder`
    (a visitor's workspace on a shared server; default the runs dir)."""
    return Path(runs_folder or paths.runs_dir()) / UPLOADS_SUBDIR


def load_npz(path: Path) -> Dataset:
    """Load and validate an npz dataset file (never unpickles anything)."""
    path = Path(path)
    info = file_info(path.stem.lower(), path)  # checks every header against the file first
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in REQUIRED_KEYS if key in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as error:
        raise InvalidDataset(N_("{source}: cannot read the arrays ({error}).").format(source=path.name, error=error)) from None
    validate_arrays(arrays, source=path.name)
    return as_dataset(arrays, info, source=path.name)


def validate_arrays(arrays: dict, source: str = "dataset") -> None:
    """Refuse anything that is not (N,H,W[,C]) uint8 images with labels 0..K-1."""
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise InvalidDataset(
            MISSING_ARRAYS.format(source=source, names=", ".join(missing))
        )
    arrays = {key: np.asarray(arrays[key]) for key in REQUIRED_KEYS}
    check_shapes({key: (array.shape, array.dtype) for key, array in arrays.items()}, source)
    _check_label_values(arrays, source)


def _check_label_values(labels: dict, source: str) -> None:
    """y_train and y_test (integer, one per image) on their own: 0..K-1, two classes or more, none only in y_test."""
    for split in ("train", "test"):
        y = labels[f"y_{split}"]
        if y.min() < 0 or y.max() >= MAX_CLASSES:
            raise InvalidDataset(
                N_("{source}: y_{split} has labels from {low} to {high}; labels must be 0..K-1 with K <= {limit}.").format(
                    source=source, split=split, low=y.min(), high=y.max(), limit=MAX_CLASSES)
            )
    train_classes = np.unique(labels["y_train"])
    if len(train_classes) < 2:
        raise InvalidDataset(N_("{source}: the training labels hold only one class; a classifier needs at least two.").format(
            source=source))
    if int(np.max(labels["y_test"])) > int(train_classes.max()):
        raise InvalidDataset(N_("{source}: y_test has labels that never occur in y_train.").format(source=source))


def check_labels(arrays: dict, class_names, source: str = "dataset") -> None:
    """Every label must name one of `class_names`: a label past them would reach Keras as an
    out-of-range class and fail deep inside TensorFlow."""
    for split in ("train", "test"):
        top = int(np.max(arrays[f"y_{split}"]))
        if top >= len(class_names):
            shown = ", ".join(repr(name) for name in class_names[:4]) + (", ..." if len(class_names) > 4 else "")
            raise InvalidDataset(
                N_("{source}: y_{split} has labels up to {top}, but the dataset has only {count} classes ({shown}), "
                   "so labels must be 0 to {last}. Give class_names one name per label, or relabel.").format(
                    source=source, split=split, top=top, count=len(class_names), shown=shown, last=len(class_names) - 1)
            )


def check_class_names(class_names, source: str = "dataset") -> tuple[str, ...]:
    """Class names as a dataset may hold them: 2 to MAX_CLASSES distinct, non-empty, printable strings of at
    most MAX_CLASS_NAME_CHARS characters (surrounding spaces dropped); InvalidDataset naming the first problem."""
    if isinstance(class_names, np.ndarray):
        if class_names.ndim != 1 or class_names.dtype.kind not in "US":
            raise InvalidDataset(
                N_("{source}: class_names has shape {shape} and dtype {dtype}; expected 2 to {limit} strings, one per "
                   "class.").format(source=source, shape=class_names.shape, dtype=class_names.dtype, limit=MAX_CLASSES)
            )
        class_names = class_names.tolist()
    elif isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__len__"):
        raise InvalidDataset(N_("{source}: class_names must be a list of strings, one per class; got {value}.").format(
            source=source, value=_shown(class_names)))
    if not 2 <= len(class_names) <= MAX_CLASSES:
        raise InvalidDataset(N_("{source}: class_names holds {count} names; a dataset has 2 to {limit} classes.").format(
            source=source, count=len(class_names), limit=MAX_CLASSES))
    names = []
    for number, value in enumerate(class_names, start=1):
        name = _text(value, N_("class name {number}").format(number=number), source).strip()
        if not name:
            raise InvalidDataset(N_("{source}: class name {number} is empty; every class needs a name.").format(
                source=source, number=number))
        if len(name) > MAX_CLASS_NAME_CHARS:
            raise InvalidDataset(
                N_("{source}: class name {number} has {count:,} characters; at most {limit} are allowed.").format(
                    source=source, number=number, count=len(name), limit=MAX_CLASS_NAME_CHARS)
            )
        if not name.isprintable():
            raise InvalidDataset(N_("{source}: class name {number} ({name}) contains control characters.").format(
                source=source, number=number, name=_shown(name)))
        if name in names:
            raise InvalidDataset(
                N_("{source}: class names {first} and {number} are both {name!r}; each class needs its own "
                   "name.").format(source=source, first=names.index(name) + 1, number=number, name=name)
            )
        names.append(name)
    return tuple(names)


def check_kind(kind, source: str = "dataset") -> str:
    """A dataset's `kind`: one string from KINDS (a 0-d string array in an npz); InvalidDataset otherwise."""
    if isinstance(kind, np.ndarray):
        if kind.shape != () or kind.dtype.kind not in "US":
            raise InvalidDataset(
                N_("{source}: kind has shape {shape} and dtype {dtype}; expected one string, {kinds}.").format(
                    source=source, shape=kind.shape, dtype=kind.dtype, kinds=" or ".join(map(repr, KINDS)))
            )
        kind = kind.item()
    text = _text(kind, "kind", source)
    if text not in KINDS:
        raise InvalidDataset(N_("{source}: kind is {value}; expected {kinds}.").format(
            source=source, value=_shown(text), kinds=" or ".join(map(repr, KINDS))))
    return text


def _text(value, what: str, source: str) -> str:
    """A str, or UTF-8 bytes (numpy's S arrays) decoded; InvalidDataset for anything else."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidDataset(N_("{source}: {what} is not valid UTF-8 text.").format(source=source, what=what)) from None
    if not isinstance(value, str):
        raise InvalidDataset(N_("{source}: {what} must be a string; got {value}.").format(
            source=source, what=what, value=_shown(value)))
    return value


def _shown(value, limit: int = 40) -> str:
    """repr of a value from a file, cut short: a message must stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def check_shapes(headers: dict[str, tuple[tuple, np.dtype]], source: str = "dataset") -> None:
    """Shapes and dtypes of x/y train/test, from arrays or from .npy headers before reading them."""
    shapes = {}
    for split in ("train", "test"):
        (x_shape, x_dtype), (y_shape, y_dtype) = headers[f"x_{split}"], headers[f"y_{split}"]
        if len(x_shape) not in (3, 4) or (len(x_shape) == 4 and x_shape[-1] not in (1, 3)):
            raise InvalidDataset(
                N_("{source}: x_{split} has shape {shape}; expected (N, H, W) or (N, H, W, C) with C 1 or 3.").format(
                    source=source, split=split, shape=x_shape)
            )
        if x_dtype != np.uint8:
            raise InvalidDataset(
                N_("{source}: x_{split} has dtype {dtype}; expected uint8 pixels 0..255 (convert with "
                   "(x * 255).round().astype('uint8') if yours are floats in [0, 1]).").format(
                    source=source, split=split, dtype=x_dtype)
            )
        if not (MIN_SIDE <= x_shape[1] <= MAX_SIDE and MIN_SIDE <= x_shape[2] <= MAX_SIDE):
            raise InvalidDataset(
                N_("{source}: images are {height}x{width}; sides must be {low} to {high} pixels.").format(
                    source=source, height=x_shape[1], width=x_shape[2], low=MIN_SIDE, high=MAX_SIDE)
            )
        if len(y_shape) != 1 or not np.issubdtype(y_dtype, np.integer):
            raise InvalidDataset(
                N_("{source}: y_{split} has shape {shape} and dtype {dtype}; expected one integer label per "
                   "image.").format(source=source, split=split, shape=y_shape, dtype=y_dtype)
            )
        if x_shape[0] != y_shape[0]:
            raise InvalidDataset(N_("{source}: x_{split} has {images} images but y_{split} has {labels} labels.").format(
                source=source, split=split, images=x_shape[0], labels=y_shape[0]))
        if x_shape[0] == 0:
            raise InvalidDataset(
                N_("{source}: the {split} split is empty (x_{split} holds 0 images); a dataset needs images in both "
                   "x_train and x_test.").format(source=source, split=split)
            )
        shapes[split] = tuple(x_shape[1:]) if len(x_shape) == 4 else (*x_shape[1:], 1)
    if shapes["train"] != shapes["test"]:
        raise InvalidDataset(
            N_("{source}: train images are {train} but test images are {test}; they must match.").format(
                source=source, train=shapes["train"], test=shapes["test"])
        )


def inspect_npz(path: Path, *, max_bytes: int | None = None) -> dict[str, tuple[tuple, np.dtype]]:
    """Every array's (shape, dtype) from the zip directory and the .npy headers alone.

    Each header's declared size must match the member's uncompressed size, the
    uncompressed size must be possible for its compressed size, and all arrays
    together must fit `max_bytes` (default MAX_ARRAY_BYTES): only then is it
    safe to read the data. Raises InvalidDataset naming the problem.
    """
    max_bytes = MAX_ARRAY_BYTES if max_bytes is None else max_bytes
    path = Path(path)
    source = path.name
    wanted = [*REQUIRED_KEYS, "class_names", "kind"]
    headers, total = {}, 0
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist() if name.endswith(".npy")}
            missing = [key for key in REQUIRED_KEYS if key not in members]
            if missing:
                raise InvalidDataset(
                    MISSING_ARRAYS.format(source=source, names=", ".join(missing))
                )
            for key in (key for key in wanted if key in members):
                shape, dtype, nbytes = _checked_header(archive, archive.getinfo(members[key]), source)
                headers[key], total = (shape, dtype), total + nbytes
    except InvalidDataset:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as error:
        raise InvalidDataset(NOT_READABLE.format(source=source, error=error)) from None
    if total > max_bytes:
        raise InvalidDataset(
            N_("{source}: its arrays hold {size:,.0f} MB uncompressed; the limit is {limit:,.0f} MB. Use fewer or "
               "smaller images.").format(source=source, size=total / 2**20, limit=max_bytes / 2**20)
        )
    check_shapes(headers, source)
    if "class_names" in headers:
        shape, dtype = headers["class_names"]
        if len(shape) != 1 or dtype.kind not in "US" or not 2 <= shape[0] <= MAX_CLASSES or dtype.itemsize > 4 * 200:
            raise InvalidDataset(
                N_("{source}: class_names has shape {shape} and dtype {dtype}; expected 2 to {limit} short strings, "
                   "one per class.").format(source=source, shape=shape, dtype=dtype, limit=MAX_CLASSES)
            )
    if "kind" in headers:
        shape, dtype = headers["kind"]
        if shape != () or dtype.kind not in "US" or dtype.itemsize > 4 * 16:
            raise InvalidDataset(N_("{source}: kind has shape {shape} and dtype {dtype}; expected one short string.").format(
                source=source, shape=shape, dtype=dtype))
    return headers


def _checked_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo, source: str) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data bytes) of one .npy member, or InvalidDataset if its sizes do not add up."""
    name = member.filename
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InvalidDataset(N_("{source}: {name} uses a compression numpy does not write; save with "
                                "numpy.savez_compressed.").format(source=source, name=name))
    if member.compress_type == zipfile.ZIP_STORED and member.compress_size != member.file_size:
        raise InvalidDataset(N_("{source}: {name} claims {size:,} bytes but stores {stored:,}.").format(
            source=source, name=name, size=member.file_size, stored=member.compress_size))
    if member.file_size > member.compress_size * MAX_DEFLATE_RATIO + 1024:
        raise InvalidDataset(
            N_("{source}: {name} claims {size:,} bytes from {stored:,} compressed, more than compression can "
               "produce; the file is damaged or crafted.").format(
                source=source, name=name, size=member.file_size, stored=member.compress_size)
        )
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            raise InvalidDataset(N_("{source}: {name} has an unknown .npy format version {version}.").format(
                source=source, name=name, version=version))
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(handle, max_header_size=MAX_HEADER_BYTES)
        header_bytes = handle.tell()
    if dtype.hasobject:
        raise InvalidDataset(N_("{source}: {name} holds Python objects; only plain numeric arrays are read (never "
                                "unpickled).").format(source=source, name=name))
    nbytes = math.prod(int(side) for side in shape) * dtype.itemsize  # Python ints: no overflow
    if header_bytes + nbytes != member.file_size:
        raise InvalidDataset(
            N_("{source}: {name} declares shape {shape} of {dtype} ({size:,} bytes) but holds {held:,} bytes of "
               "data; the file is damaged or crafted.").format(source=source, name=name, shape=tuple(shape), dtype=dtype,
                                                                size=nbytes, held=max(member.file_size - header_bytes, 0))
        )
    return tuple(int(side) for side in shape), dtype, nbytes


def prepare(
    dataset: Dataset, *, validation_split: float = 0.1, limit: int | None = None, seed: int = 0
) -> PreparedData:
    """Hold out a seeded, stratified validation split; optionally subsample training data.

    `limit` caps the training images (before the validation split) with the
    class balance kept, for quick runs. The test set stays whole.
    """
    if not 0.0 <= validation_split < 0.9:
        raise ValueError(f"validation_split must be in [0, 0.9), got {validation_split}.")
    rng = np.random.default_rng(seed)
    x, y = dataset.x_train, dataset.y_train
    if limit is not None and limit < len(y):
        if limit < 2 * dataset.info.num_classes:
            raise ValueError(f"limit={limit} is too small: use at least {2 * dataset.info.num_classes} images.")
        keep = _stratified_take(y, limit, rng)
        x, y = x[keep], y[keep]
    val_count = int(round(len(y) * validation_split))
    if validation_split > 0 and val_count == 0:
        val_count = 1
    val_idx = _stratified_take(y, val_count, rng) if val_count else np.array([], dtype=np.int64)
    train_mask = np.ones(len(y), dtype=bool)
    train_mask[val_idx] = False
    return PreparedData(
        info=dataset.info,
        x_train=x[train_mask],
        y_train=y[train_mask],
        x_val=x[val_idx],
        y_val=y[val_idx],
        x_test=dataset.x_test,
        y_test=dataset.y_test,
    )


def pixel_stats(x: np.ndarray) -> dict:
    """Shape, dtype and pixel statistics, as the Data page shows them."""
    sample = x[: min(len(x), 5000)]
    return {
        "shape": tuple(x.shape),
        "dtype": str(x.dtype),
        "min": int(sample.min()),
        "max": int(sample.max()),
        "mean": float(sample.mean()),
        "std": float(sample.std()),
        "mean_scaled": float(sample.mean() / 255.0),
        "std_scaled": float(sample.std() / 255.0),
    }


def overview(dataset: Dataset, samples_per_class: int = 8, pixel_sample: int = 500) -> dict:
    """Small facts about a dataset for the Data page (not the arrays): samples per class, balance, pixels."""
    rng = np.random.default_rng(0)
    grid, titles = [], []
    for label, class_name in enumerate(dataset.info.class_names):
        idx = np.flatnonzero(dataset.y_train == label)
        pick = rng.choice(idx, size=min(samples_per_class, len(idx)), replace=False) if len(idx) else idx
        grid.append(dataset.x_train[np.sort(pick)])
        titles += [class_name] * len(pick)
    pixels = dataset.x_train[:pixel_sample]
    return {
        "info": dataset.info,
        "train_counts": class_counts(dataset.y_train, dataset.info.num_classes),
        "test_counts": class_counts(dataset.y_test, dataset.info.num_classes),
        "train_stats": pixel_stats(dataset.x_train),
        "test_stats": pixel_stats(dataset.x_test),
        "grid_images": np.concatenate(grid),
        "grid_titles": titles,
        "grid_columns": samples_per_class,
        "pixel_sample": pixels,
        "pixel_sample_scaled": pixels.astype(np.float32) / 255.0,
    }


def class_counts(y: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(y, minlength=num_classes)[:num_classes].tolist()


def check_name(name: str) -> str:
    """A new dataset's name, lowercased; InvalidDataset if it cannot be one."""
    name = str(name).strip().lower()
    if not NAME_PATTERN.match(name) or name in BUILTINS:
        raise InvalidDataset(
            N_("Dataset names use lowercase letters, digits, '-' and '_' (up to 40), and cannot be mnist or "
               "fashion_mnist.")
        )
    return name


def save_arrays(name: str, arrays: dict, *, class_names, kind: str = "object", folder: Path | None = None) -> DatasetInfo:
    """Validate arrays and keep them as `<folder>/<name>.npz` (default: the uploads dir), written atomically.

    `kind` "digit" makes Draw preprocess drawings MNIST-style for models trained on it.
    An existing dataset of the same name is replaced only once the new file is complete.
    """
    name = check_name(name)
    kind = check_kind(kind, name)
    validate_arrays(arrays, source=name)
    names = check_class_names(class_names, name)
    check_labels(arrays, names, name)
    folder = Path(folder) if folder else uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.save.tmp.npz"
    try:
        np.savez_compressed(
            tmp, **{key: arrays[key] for key in REQUIRED_KEYS}, class_names=np.array(names), kind=np.array(kind)
        )
        target = folder / f"{name}.npz"
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return file_info(name, target)


def save_upload(name: str, data: bytes, *, folder: Path | None = None) -> DatasetInfo:
    """Validate an uploaded npz and keep it in `folder` (default the uploads dir); returns its info."""
    name = check_name(name)
    if len(data) > MAX_NPZ_BYTES:
        raise InvalidDataset(N_("The file is {size:.0f} MB; the limit is {limit} MB.").format(
            size=len(data) / 2**20, limit=MAX_NPZ_BYTES // 2**20))
    if not data.startswith(b"PK"):
        raise InvalidDataset(N_("This is not an .npz file (save yours with numpy.savez_compressed)."))
    folder = Path(folder) if folder else uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.upload.tmp"
    tmp.write_bytes(data)
    try:
        load_npz(tmp)
    except InvalidDataset as error:
        tmp.unlink(missing_ok=True)
        raise InvalidDataset(str(error).replace(tmp.name, N_("the uploaded file"))) from None
    target = folder / f"{name}.npz"
    tmp.replace(target)
    return file_info(name, target)


def _stratified_take(y: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices with each class represented in proportion, seeded."""
    order = rng.permutation(len(y))
    shuffled = y[order]
    classes, totals = np.unique(shuffled, return_counts=True)
    quotas = np.floor(totals / len(y) * count).astype(int)
    # Hand the rounding remainder to the classes with the largest fractional parts.
    remainder = count - quotas.sum()
    fractions = totals / len(y) * count - quotas
    quotas[np.argsort(-fractions)[:remainder]] += 1
    picked = [order[shuffled == c][:q] for c, q in zip(classes, quotas)]
    return np.sort(np.concatenate(picked))


def file_info(name: str, path: Path) -> DatasetInfo:
    """Info from the checked npy headers, `kind`, `class_names` and the labels (small next to the images),
    so a file whose labels do not fit its classes is refused when listed, not when trained on."""
    headers = inspect_npz(path)
    shape = headers["x_train"][0]
    input_shape = (shape[1], shape[2], shape[3] if len(shape) == 4 else 1)
    builtin = BUILTINS.get(name)
    try:
        with np.load(path, allow_pickle=False) as npz:
            labels = {key: npz[key] for key in ("y_train", "y_test")}
            _check_label_values(labels, path.name)
            if builtin is not None:  # its own class names and kind; the file's are not read
                kind, class_names = builtin.kind, builtin.class_names
            else:
                kind = check_kind(npz["kind"], path.name) if "kind" in headers else "object"
                if "class_names" in headers:
                    class_names = check_class_names(npz["class_names"], path.name)
                else:
                    class_names = tuple(str(c) for c in range(int(labels["y_train"].max()) + 1))
    except InvalidDataset:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as error:
        raise InvalidDataset(NOT_READABLE.format(source=path.name, error=error)) from None
    check_labels(labels, class_names, path.name)
    if builtin is not None:
        return DatasetInfo(**{**builtin.__dict__, "path": path, "input_shape": input_shape,
                              "train_images": int(shape[0])})
    return DatasetInfo(
        name=name,
        title=f"{name} (your file)",
        class_names=class_names,
        input_shape=input_shape,
        kind=kind,
        path=path,
        description=f"Your dataset from {path.name}.",
        train_images=int(shape[0]),
    )


def as_dataset(arrays: dict, info: DatasetInfo, source: str | None = None) -> Dataset:
    """Validated arrays as the Dataset `info` describes; InvalidDataset if a label has no class in `info`
    (the one check that needs both), so nothing inconsistent reaches training."""
    check_labels(arrays, info.class_names, source or info.name)

    def images(x):
        return x if x.ndim == 4 else x[..., np.newaxis]

    return Dataset(
        info=info,
        x_train=images(arrays["x_train"]),
        y_train=arrays["y_train"].astype(np.int64),
        x_test=images(arrays["x_test"]),
        y_test=arrays["y_test"].astype(np.int64),
    )

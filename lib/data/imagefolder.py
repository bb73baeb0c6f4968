"""Image-folder datasets: one folder per class, from a `.zip` upload or a folder in the data directory.

The layout Keras' `image_dataset_from_directory` and NVIDIA DIGITS read: `cats/*.png`,
`dogs/*.jpg`, ... (optionally under `train/` and `test/` top folders, else a seeded,
stratified split). `scan_zip` / `scan_folder` report what was found before anything is
converted (classes, counts, samples, sizes, what will be resized how, files skipped and
why); `convert` turns the images into the same validated uint8 arrays as `.npz` datasets;
`save_zip` / `save_scan` keep them as an npz in the uploads dir (so the dataset registry
lists them). Folders in the data directory are converted once and cached by their file
names, sizes and times (`cached_folder_npz`).

Pillow does all decoding (PNG, JPEG, BMP, GIF first frame). Before any image is read,
the zip is checked: its size, its entry count, the total unpacked size, each entry's
compression ratio (zip bombs) and every path (`../`, absolute paths and symlinks refused).
Nothing is stored until everything has been checked and converted.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
import warnings
import zipfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

try:
    import fcntl  # POSIX: the conversion lock holds across processes too
except ImportError:  # Windows: across the threads of one server only
    fcntl = None

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lib.data import datasets
from lib.i18n import N_, _

MAX_ZIP_BYTES = 200 * 1024 * 1024  # the app's upload limit
MAX_ENTRIES = 30_000  # files and folders in a zip (or image files in a folder)
MAX_TOTAL_BYTES = 1024 * 1024 * 1024  # everything in the zip, unpacked
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # one image file
# A compressed entry this much smaller than its content is a zip bomb (images barely compress).
MAX_COMPRESSION_RATIO = 100
RATIO_CHECK_FROM_BYTES = 1024 * 1024  # small entries cannot be bombs on their own
MAX_IMAGE_PIXELS = 40_000_000  # decoded size of one image (Pillow's decompression-bomb guard)
FORMATS = ("PNG", "JPEG", "BMP", "GIF")
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SIZES = (28, 32)  # output sides offered; 28 matches MNIST
TEST_SHARE = 0.2  # held out per class when no train/ and test/ folders are given
MIN_CLASSES = 2
MAX_CLASS_NAME = 40
SAMPLES_PER_CLASS = 4
THUMB_PX = 64
# Sizes differing by more than this factor between the smallest and largest image are "wildly different".
SIZE_SPREAD_WARNING = 4
SPLIT_NAMES = ("train", "test")
SYSTEM_NAMES = {"__macosx", ".ds_store", "thumbs.db", "desktop.ini"}
CACHE_SUBDIR = ".folders"  # inside the uploads dir: converted data-dir folders

# One conversion per cached folder at a time: a lock per cache folder for the server's threads
# (created under _LOCKS_GUARD), and a file lock beside the folder for other processes.
_FOLDER_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class InvalidImageFolder(ValueError):
    """A zip or folder that cannot become a dataset; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class ImageEntry:
    path: str  # relative, "/"-separated, as shown to the user
    label: int
    split: str | None  # "train" / "test" when given by top folders, else None
    width: int
    height: int
    mode: str  # Pillow mode: L, RGB, RGBA, P, ...


@dataclass
class FolderScan:
    """What a zip or folder holds, before conversion; plain data the page can show."""

    source: str  # the zip's or folder's name
    class_names: list[str]
    entries: list[ImageEntry]
    split_given: bool
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)
    samples: dict[str, list[np.ndarray]] = field(default_factory=dict)  # class -> small RGB thumbnails
    _reader: object = None  # path -> bytes

    def counts(self, split: str | None = None) -> list[int]:
        """Images per class (in one given split, or all)."""
        counts = Counter(entry.label for entry in self.entries if split is None or entry.split == split)
        return [counts.get(label, 0) for label in range(len(self.class_names))]

    def skipped_summary(self) -> dict[str, int]:
        """How many files were skipped for each reason."""
        return dict(Counter(reason for _, reason in self.skipped))

    def size_summary(self) -> dict:
        """Smallest and largest sizes, the most common ones, and the colour modes found."""
        widths = [entry.width for entry in self.entries]
        heights = [entry.height for entry in self.entries]
        common = Counter((entry.width, entry.height) for entry in self.entries).most_common(3)
        modes = Counter("grayscale" if entry.mode in ("1", "L", "LA", "I", "I;16") else "colour"
                        for entry in self.entries)
        return {
            "min": (min(widths), min(heights)),
            "max": (max(widths), max(heights)),
            "common": [(w, h, n) for (w, h), n in common],
            "modes": dict(modes),
        }

    def resize_note(self, size: int = 28, colour: bool = False) -> str:
        """What conversion will do to these images, in one or two sentences."""
        sizes = self.size_summary()
        (min_w, min_h), (max_w, max_h) = sizes["min"], sizes["max"]
        span = (f"{min_w}x{min_h}" if (min_w, min_h) == (max_w, max_h)
                else _("from {low} to {high}").format(low=f"{min_w}x{min_h}", high=f"{max_w}x{max_h}"))
        kinds = {"grayscale": N_("{count:,} grayscale"), "colour": N_("{count:,} colour")}
        colours = _(" and ").join(_(kinds[kind]).format(count=n) for kind, n in sorted(sizes["modes"].items()))
        target = _("colour (RGB)") if colour else _("grayscale")
        note = _("Images are {span} pixels ({colours}). Each will be scaled so its longer side is {size} px, aspect "
                 "ratio kept, and padded to {size}x{size} with its own border colour; stored as {target}.").format(
            span=span, colours=colours, size=size, target=target)
        if max(max_w / max(min_w, 1), max_h / max(min_h, 1)) > SIZE_SPREAD_WARNING:
            note += " " + _("The sizes differ a lot: small images are enlarged and will look blurry.")
        return note

    def read(self, path: str) -> bytes:
        return self._reader(path)


@dataclass(frozen=True)
class Converted:
    arrays: dict  # x_train, y_train, x_test, y_test
    class_names: list[str]
    notes: list[str]  # what was done, for the user
    skipped: list[tuple[str, str]]  # files that failed to decode during conversion


def scan_zip(data: bytes, source: str = "the zip file") -> FolderScan:
    """Check a zip upload (size, entries, paths, zip bombs) and report the image folders inside."""
    if len(data) == 0:
        raise InvalidImageFolder(N_("The file is empty. Upload a .zip with one folder of images per class."))
    if len(data) > MAX_ZIP_BYTES:
        raise InvalidImageFolder(
            N_("The zip file is {size:.0f} MB; the limit is {limit} MB. Use fewer or smaller images (28x28 to "
               "256x256 is plenty here).").format(size=len(data) / 2**20, limit=MAX_ZIP_BYTES // 2**20)
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise InvalidImageFolder(
            N_("This is not a readable .zip file (or it was cut off while uploading). Zip the folder that holds "
               "one subfolder of images per class, and upload that zip.")
        ) from None
    if len(infos) > MAX_ENTRIES:
        raise InvalidImageFolder(
            N_("The zip holds {count:,} files and folders; the limit is {limit:,}. Use fewer images per class.").format(
                count=len(infos), limit=MAX_ENTRIES)
        )
    total = sum(info.file_size for info in infos)
    if total > MAX_TOTAL_BYTES:
        raise InvalidImageFolder(
            N_("The zip unpacks to {size:.1f} GB; the limit is {limit} GB. Use fewer or smaller images.").format(
                size=total / 2**30, limit=MAX_TOTAL_BYTES // 2**30)
        )
    files, folders = {}, []
    for info in infos:
        _check_zip_entry(info)
        if info.is_dir():
            folders.append(info.filename.rstrip("/"))
        else:
            files[info.filename] = info

    def read(path: str) -> bytes:
        info = files[path]
        with archive.open(info) as handle:  # reads at most the declared (checked) size
            return handle.read(MAX_IMAGE_BYTES + 1)

    return _scan({path: info.file_size for path, info in files.items()}, folders, read, source)


def scan_folder(folder: Path) -> FolderScan:
    """Report the image folders inside a directory (symbolic links are not followed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidImageFolder(N_("There is no folder at {folder}.").format(folder=folder))
    files, folders, links = {}, [], []
    for root, dirs, names in os.walk(folder, followlinks=False):
        for name in [*dirs, *names]:
            full = Path(root) / name
            rel = full.relative_to(folder).as_posix()
            if full.is_symlink():
                links.append(rel)
            elif full.is_dir():
                folders.append(rel)
            else:
                files[rel] = full.stat().st_size
            if len(files) > MAX_ENTRIES:
                raise InvalidImageFolder(N_("{folder} holds more than {limit:,} files; use fewer images.").format(
                    folder=folder.name, limit=MAX_ENTRIES))
    scan = _scan(files, folders, lambda rel: _read_file(folder / rel), folder.name)
    scan.skipped.extend((rel, N_("symbolic link (not followed)")) for rel in links)
    return scan


def convert(scan: FolderScan, *, size: int = 28, colour: bool = False, seed: int = 0,
            test_share: float = TEST_SHARE) -> Converted:
    """Decode every image, fit it into size x size (aspect kept, padded) and split train/test."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size}")
    images, labels, splits, skipped = [], [], [], []
    for entry in scan.entries:
        try:
            image = _decode(scan.read(entry.path))
        except InvalidImageFolder as problem:
            skipped.append((entry.path, str(problem)))
            continue
        images.append(_fit_square(image, size, colour))
        labels.append(entry.label)
        splits.append(entry.split)
    labels = np.array(labels, dtype=np.int64)
    x = np.stack(images) if images else np.zeros((0, size, size), dtype=np.uint8)
    notes = [scan.resize_note(size, colour)]
    if scan.split_given:
        is_test = np.array([split == "test" for split in splits], dtype=bool)
        notes.append(N_("Train and test images come from your train/ and test/ folders."))
    else:
        is_test = _stratified_test_mask(labels, test_share, seed)
        notes.append(N_("{count:,} images ({share:.0%} of each class, seeded) are held out as the test set.").format(
            count=int(is_test.sum()), share=test_share))
    _check_classes_left(labels[~is_test], labels[is_test], scan.class_names, skipped)
    arrays = {"x_train": x[~is_test], "y_train": labels[~is_test], "x_test": x[is_test], "y_test": labels[is_test]}
    datasets.validate_arrays(arrays, source=scan.source)
    if skipped:
        notes.append(N_("{count} file(s) could not be decoded and were left out.").format(count=len(skipped)))
    return Converted(arrays, list(scan.class_names), notes, skipped)


def save_scan(name: str, scan: FolderScan, *, size: int = 28, colour: bool = False, seed: int = 0,
              folder: Path | None = None) -> tuple[datasets.DatasetInfo, Converted]:
    """Convert a scanned zip or folder and keep it as `<name>.npz` (default: the uploads dir)."""
    name = datasets.check_name(name)
    converted = convert(scan, size=size, colour=colour, seed=seed)
    info = datasets.save_arrays(name, converted.arrays, class_names=converted.class_names, kind="object",
                                folder=folder)
    return info, converted


def save_zip(name: str, data: bytes, *, size: int = 28, colour: bool = False,
             folder: Path | None = None) -> tuple[datasets.DatasetInfo, Converted]:
    """Scan, convert and keep an uploaded zip in one call (the command line and tests)."""
    return save_scan(name, scan_zip(data), size=size, colour=colour, folder=folder)


def suggest_name(filename: str) -> str:
    """A dataset name from an upload's file name: `My Shapes.zip` -> `my_shapes`."""
    stem = PurePosixPath(filename or "").stem.lower()
    cleaned = "".join(ch if ch.isalnum() and ch.isascii() else "_" for ch in stem).strip("_-")
    cleaned = "_".join(part for part in cleaned.split("_") if part)[:40]
    if not cleaned or not cleaned[0].isalnum() or cleaned in datasets.BUILTINS:
        cleaned = f"images_{cleaned}".strip("_")[:40]
    return cleaned


def looks_like_image_folder(folder: Path) -> bool:
    """Cheap test for the registry: a visible folder with at least two visible subfolders."""
    if folder.name.startswith(".") or not folder.is_dir() or folder.is_symlink():
        return False
    subfolders = [child for child in folder.iterdir() if child.is_dir() and not child.name.startswith(".")]
    return len(subfolders) >= MIN_CLASSES


def folder_signature(folder: Path) -> str:
    """A short hash of every file's relative path, size and modification time under `folder`."""
    digest = hashlib.sha256()
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            full = Path(root) / name
            info = full.lstat()
            digest.update(f"{full.relative_to(folder).as_posix()}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cached_folder_npz(folder: Path, cache_dir: Path | None = None) -> Path:
    """The npz of an image folder in the data dir: converted on first use, then cached.

    The cache key is the folder's signature (file names, sizes, times), so adding,
    removing or changing an image converts it again. Grayscale 28x28, seeded split.
    A folder that cannot be converted raises InvalidImageFolder (remembered for the
    same signature, so listing datasets does not retry it each time).

    One conversion of a folder runs at a time (threads and processes); the others wait and
    use its result. The npz is written under a temporary name and moved into place, and
    older conversions are removed only after that, so no caller loses the file it was given.
    """
    folder = Path(folder)
    name = datasets.check_name(folder.name)
    cache = (Path(cache_dir) if cache_dir else datasets.uploads_dir() / CACHE_SUBDIR) / name
    signature = folder_signature(folder)
    target, failure = cache / f"{signature}.npz", cache / f"{signature}.error"
    if target.is_file():  # both only ever appear whole (moved into place), so no lock is needed to read them
        return target
    if failure.is_file():
        raise InvalidImageFolder(failure.read_text(encoding="utf-8"))
    with _conversion_lock(cache):  # after the wait, the conversion may be done: checked under the lock
        if target.is_file():
            return target
        if failure.is_file():
            raise InvalidImageFolder(failure.read_text(encoding="utf-8"))
        try:
            converted = convert(scan_folder(folder))
            datasets.save_arrays(signature, converted.arrays, class_names=converted.class_names, folder=cache)
        except (InvalidImageFolder, datasets.InvalidDataset) as problem:
            _write_atomically(failure, str(problem))
            _remove_older(cache, keep=failure)
            raise InvalidImageFolder(str(problem)) from None
        _remove_older(cache, keep=target)
    return target


@contextmanager
def _conversion_lock(cache: Path):
    """Hold the conversion lock of one cache folder (created here), for this process's threads and,
    where the system has file locks, for other processes."""
    cache.mkdir(parents=True, exist_ok=True)
    with _LOCKS_GUARD:
        lock = _FOLDER_LOCKS.setdefault(str(cache.resolve()), threading.Lock())
    with lock, open(cache.parent / f".{cache.name}.lock", "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _remove_older(cache: Path, keep: Path) -> None:
    """Earlier conversions of this folder (and their failures), once `keep` is in place."""
    for old in cache.iterdir():
        if old != keep and not old.name.startswith(".") and old.suffix in (".npz", ".error"):
            old.unlink(missing_ok=True)


# ---------------------------------------------------------------- scanning


def _check_zip_entry(info: zipfile.ZipInfo) -> None:
    """Refuse entries that would escape the folder (../, absolute, symlinks) and zip bombs."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts:
        raise InvalidImageFolder(
            N_("The zip contains a path that points outside its folder ({name!r}); such zips are refused for "
               "safety. Zip the image folder again with an ordinary zip tool.").format(name=name)
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InvalidImageFolder(
            N_("The zip contains a symbolic link ({name!r}); links are refused for safety. Zip the real image "
               "files instead.").format(name=name)
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_CHECK_FROM_BYTES and ratio > MAX_COMPRESSION_RATIO:
        raise InvalidImageFolder(
            N_("{name!r} unpacks to {ratio:.0f} times its packed size; this looks like a zip bomb and the zip was "
               "not opened.").format(name=name, ratio=ratio)
        )


def _scan(files: dict[str, int], folders: list[str], read, source: str) -> FolderScan:
    """Classes, splits and image headers from relative file paths; problems in the user's words."""
    skipped: list[tuple[str, str]] = []
    candidates = {}
    for path, size in sorted(files.items()):
        parts = PurePosixPath(path).parts
        if any(part.lower() in SYSTEM_NAMES or part.startswith(".") for part in parts):
            skipped.append((path, N_("hidden or system file")))
        else:
            candidates[path] = (parts, size)
    root = _common_root([parts for path, (parts, _) in candidates.items() if path.lower().endswith(SUFFIXES)])
    relative = {path: (parts[len(root):], size) for path, (parts, size) in candidates.items()
                if parts[:len(root)] == root}
    skipped.extend((path, N_("outside the image folder")) for path in candidates if path not in relative)
    top = {parts[0].lower() for parts, _ in relative.values() if len(parts) > 1}
    split_given = set(SPLIT_NAMES) <= top
    class_folders: dict[str, set] = {}
    for folder in folders:  # empty class folders too, so the report can name them
        parts = PurePosixPath(folder).parts
        if parts[:len(root)] != root or any(part.startswith(".") or part.lower() in SYSTEM_NAMES for part in parts):
            continue
        parts = parts[len(root):]
        if split_given and len(parts) == 2 and parts[0].lower() in SPLIT_NAMES:
            class_folders.setdefault(_clean_class_name(parts[1]), set())
        elif not split_given and len(parts) == 1:
            class_folders.setdefault(_clean_class_name(parts[0]), set())
    placed = []
    for path, (parts, size) in relative.items():
        split = None
        if split_given:
            if len(parts) > 1 and parts[0].lower() in SPLIT_NAMES:
                split, parts = parts[0].lower(), parts[1:]
            else:
                skipped.append((path, N_("outside the train/ and test/ folders")))
                continue
        if len(parts) < 2:
            skipped.append((path, N_("not inside a class folder")))
            continue
        class_name = _clean_class_name(parts[0])
        class_folders.setdefault(class_name, set()).add(split)
        placed.append((path, class_name, split, size))
    if not class_folders:
        raise InvalidImageFolder(
            N_("{source} has no class folders. Put the images of each class in a folder named after the class "
               "(for example circle/1.png, square/1.png) and zip the folder that holds them.").format(source=source)
        )
    class_names = sorted(class_folders, key=str.casefold)
    label_of = {name: index for index, name in enumerate(class_names)}
    entries = []
    for path, class_name, split, size in placed:
        try:
            width, height, mode = _header(path, size, read)
        except InvalidImageFolder as problem:
            skipped.append((path, str(problem)))
            continue
        entries.append(ImageEntry(path, label_of[class_name], split, width, height, mode))
    scan = FolderScan(source, class_names, entries, split_given, skipped, _reader=read)
    _drop_empty_classes(scan)
    _add_samples(scan)
    return scan


def _common_root(all_parts: list[tuple]) -> tuple:
    """Folders every file sits in (a zip of `shapes/` holds `shapes/circle/1.png`): skipped over."""
    root: tuple = ()
    while all_parts and all(len(parts) > len(root) + 2 for parts in all_parts):
        heads = {parts[len(root)] for parts in all_parts}
        if len(heads) != 1:
            break
        root = (*root, heads.pop())
    return root


def _header(path: str, size: int, read) -> tuple[int, int, str]:
    if not path.lower().endswith(SUFFIXES):
        raise InvalidImageFolder(N_("not an image file (PNG, JPEG, BMP or GIF)"))
    if size > MAX_IMAGE_BYTES:
        raise InvalidImageFolder(N_("image file over {limit} MB").format(limit=MAX_IMAGE_BYTES // 2**20))
    image = _open(read(path))
    return image.width, image.height, image.mode


def _drop_empty_classes(scan: FolderScan) -> None:
    """Leave out class folders without one usable image (saying so); refuse fewer than two classes."""
    counts = scan.counts()
    empty = [name for name, count in zip(scan.class_names, counts) if count == 0]
    kept = [name for name, count in zip(scan.class_names, counts) if count > 0]
    if empty:
        scan.warnings.append(
            N_("Left out {count} class folder(s) without usable images: {names}.").format(
                count=len(empty), names=", ".join(empty))
        )
    if len(kept) < MIN_CLASSES:
        found = N_("only one class with images ({name!r})").format(name=kept[0]) if kept else \
            N_("no usable images at all")
        skipped = N_("{count} file(s) were skipped: {reasons}.").format(count=len(scan.skipped),
                                                                         reasons=_reasons(scan.skipped))
        raise InvalidImageFolder(
            (N_("{source} has {found}; a classifier needs at least two classes, each in its own folder of images. "
                "{skipped}") if scan.skipped else
             N_("{source} has {found}; a classifier needs at least two classes, each in its own folder of images."))
            .format(source=scan.source, found=found, skipped=skipped)
        )
    if empty:
        new_label = {scan.class_names.index(name): index for index, name in enumerate(kept)}
        scan.entries = [
            ImageEntry(e.path, new_label[e.label], e.split, e.width, e.height, e.mode) for e in scan.entries
        ]
        scan.class_names = kept
    if scan.split_given:
        missing = [name for name, n in zip(scan.class_names, scan.counts("train")) if n == 0]
        if missing:
            raise InvalidImageFolder(
                N_("Class(es) {names} have test images but no training images in train/. Add training images "
                   "for them or remove them from test/.").format(names=", ".join(missing))
            )
        untested = [name for name, n in zip(scan.class_names, scan.counts("test")) if n == 0]
        if untested:
            scan.warnings.append(N_("No test images for {names}: their test accuracy cannot be measured.").format(
                names=", ".join(untested)))
    else:
        single = [name for name, n in zip(scan.class_names, scan.counts()) if n == 1]
        if single:
            scan.warnings.append(
                N_("Only one image in {names}: it is used for training and never tested. Add more images per "
                   "class; 20 or more work well.").format(names=", ".join(single))
            )


def _add_samples(scan: FolderScan) -> None:
    for label, name in enumerate(scan.class_names):
        thumbs = []
        for entry in (e for e in scan.entries if e.label == label):
            if len(thumbs) >= SAMPLES_PER_CLASS:
                break
            try:
                image = _decode(scan.read(entry.path))
            except InvalidImageFolder:
                continue
            thumbs.append(_fit_square(image, THUMB_PX, colour=True))
        scan.samples[name] = thumbs


def _reasons(skipped: list[tuple[str, str]]) -> str:
    """The most common reason files were skipped, as one text the pages can translate (see lib.i18n)."""
    if not skipped:
        return N_("none")
    reason, count = Counter(r for _, r in skipped).most_common(1)[0]
    return N_("most often ({count} files): {reason}").format(count=count, reason=reason)


def _clean_class_name(name: str) -> str:
    text = "".join(ch for ch in name if ch.isprintable()).strip()
    return text[:MAX_CLASS_NAME] or "unnamed"


def _read_file(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_IMAGE_BYTES + 1)


# ---------------------------------------------------------------- decoding


def _open(data: bytes) -> Image.Image:
    """Pillow's lazy open of one of FORMATS, with the decompression-bomb guard as an error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise InvalidImageFolder(N_("not an image Pillow can read as PNG, JPEG, BMP or GIF")) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImageFolder(N_("far too many pixels (a decompression bomb?)")) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageFolder(N_("damaged image ({error})").format(error=error)) from None
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise InvalidImageFolder(N_("too large ({width}x{height} px; limit {limit} MP)").format(
            width=image.width, height=image.height, limit=MAX_IMAGE_PIXELS // 10**6))
    return image


def _decode(data: bytes) -> Image.Image:
    """The first frame, fully decoded, upright (EXIF), as RGB or RGBA."""
    image = _open(data)
    try:
        image.seek(0)  # GIF: the first frame
        image.load()
        image = ImageOps.exif_transpose(image)
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageFolder(N_("damaged or incomplete image ({error})").format(error=error)) from None


def _fit_square(image: Image.Image, size: int, colour: bool) -> np.ndarray:
    """Scale the longer side to `size` (aspect kept, antialiased) and pad with the border colour.

    Transparent pixels become black or white, whichever contrasts with the opaque content.
    """
    if image.mode == "RGBA":
        pixels = np.asarray(image)
        opaque = pixels[..., 3] > 127
        luma = pixels[..., :3].mean(axis=2)
        light_content = opaque.any() and luma[opaque].mean() > 127
        backdrop = Image.new("RGBA", image.size, (0, 0, 0, 255) if light_content else (255, 255, 255, 255))
        image = Image.alpha_composite(backdrop, image).convert("RGB")
    if not colour:
        image = image.convert("L")
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    fill = tuple(int(v) for v in np.median(border, axis=0).reshape(-1))
    scale = size / max(image.width, image.height)
    new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = Image.new(image.mode, (size, size), fill if colour else fill[0])
    canvas.paste(resized, ((size - new_size[0]) // 2, (size - new_size[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8)


# ---------------------------------------------------------------- splitting


def _stratified_test_mask(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """`share` of each class (at least one image where a class has two or more) marked as test, seeded."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < 2:
            continue
        count = min(len(members) - 1, max(1, round(len(members) * share)))
        mask[members[:count]] = True
    return mask


def _check_classes_left(y_train: np.ndarray, y_test: np.ndarray, class_names: list[str], skipped) -> None:
    """After decoding, every class must still have training images and two classes must be left."""
    missing = [name for label, name in enumerate(class_names) if not np.any(y_train == label)]
    if missing:
        raise InvalidImageFolder(
            N_("No readable training images are left for {names} ({count} damaged file(s): {reasons}). Replace the "
               "damaged images.").format(names=", ".join(missing), count=len(skipped), reasons=_reasons(skipped))
        )
    if len(y_test) == 0:
        raise InvalidImageFolder(
            N_("There are too few images to hold any out for testing. Add more images: 20 or more per class work "
               "well.")
        )

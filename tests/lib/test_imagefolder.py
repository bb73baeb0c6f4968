"""Image-folder datasets: zips and folders of class folders, scanned, checked, converted, cached."""

import io
import os
import re
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from lib.data import catalog, datasets, imagefolder


def png(size=(30, 20), colour=(255, 0, 0), mode="RGB", fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    image = Image.new(mode, size, colour)
    if mode in ("RGB", "L"):  # a shape in the middle, so classes differ in more than colour
        inner = Image.new(mode, (max(1, size[0] // 2), max(1, size[1] // 2)), 255 if mode == "L" else (255, 255, 255))
        image.paste(inner, (size[0] // 4, size[1] // 4))
    image.save(buffer, fmt)
    return buffer.getvalue()


def make_zip(files: dict, *, dirs=()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for folder in dirs:
            archive.writestr(folder.rstrip("/") + "/", "")
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def shapes_zip(per_class=6, prefix="shapes/") -> bytes:
    files = {}
    for index in range(per_class):
        files[f"{prefix}circle/{index}.png"] = png(colour=(200, 0, 0))
        files[f"{prefix}square/{index}.jpg"] = png(colour=(0, 0, 200), fmt="JPEG")
    return files


def uploads(runs_dir):
    folder = runs_dir / datasets.UPLOADS_SUBDIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_scan_reports_classes_counts_samples_sizes_and_skipped_files(runs_dir):
    files = shapes_zip()
    files["shapes/circle/readme.txt"] = b"notes"
    files["shapes/square/.DS_Store"] = b"\0"
    files["__MACOSX/shapes/circle/._0.png"] = b"\0"
    scan = imagefolder.scan_zip(make_zip(files), source="shapes.zip")
    assert scan.class_names == ["circle", "square"]  # the common top folder shapes/ is skipped over
    assert scan.counts() == [6, 6]
    assert not scan.split_given
    assert scan.skipped_summary() == {"not an image file (PNG, JPEG, BMP or GIF)": 1, "hidden or system file": 2}
    assert [len(scan.samples[name]) for name in scan.class_names] == [4, 4]
    assert scan.samples["circle"][0].shape == (imagefolder.THUMB_PX, imagefolder.THUMB_PX, 3)
    assert scan.size_summary()["min"] == (30, 20)
    note = scan.resize_note(28)
    assert "30x20" in note and "aspect ratio kept" in note and "padded to 28x28" in note


def test_conversion_gives_validated_grayscale_28_by_default_with_a_seeded_stratified_split(runs_dir):
    scan = imagefolder.scan_zip(make_zip(shapes_zip(per_class=10)))
    converted = imagefolder.convert(scan)
    arrays = converted.arrays
    assert arrays["x_train"].shape == (16, 28, 28) and arrays["x_test"].shape == (4, 28, 28)
    assert arrays["x_train"].dtype == np.uint8
    assert np.bincount(arrays["y_test"]).tolist() == [2, 2]  # 20% of each class
    again = imagefolder.convert(scan)
    np.testing.assert_array_equal(again.arrays["x_test"], arrays["x_test"])  # seeded
    # Aspect kept by padding: the 30x20 red image with a white middle fills the width, 19 rows tall, padded
    # with its red border colour; stretched, its white middle would reach down to row 20.
    circle = arrays["x_train"][arrays["y_train"] == 0][0].astype(int)
    red_gray = round(0.299 * 200)
    assert abs(circle[0, 14] - red_gray) <= 1 and abs(circle[27, 14] - red_gray) <= 1
    assert circle[13, 14] > 250 and abs(circle[20, 14] - red_gray) <= 4  # Lanczos rings a little


def test_colour_and_32_pixels_are_kept_when_asked(runs_dir):
    scan = imagefolder.scan_zip(make_zip(shapes_zip()))
    info, converted = imagefolder.save_scan("shapes_rgb", scan, size=32, colour=True)
    assert info.input_shape == (32, 32, 3) and info.kind == "object"
    dataset = catalog.load_dataset("shapes_rgb")
    assert dataset.x_train.shape[1:] == (32, 32, 3)
    red = dataset.x_train[dataset.y_train == 0][0]
    assert red[0, 16, 0] > 150 and red[0, 16, 2] < 60  # colour survived
    assert "shapes_rgb" in catalog.available_datasets()


def test_train_and_test_folders_are_used_as_given(runs_dir):
    files = {}
    for split, count in (("train", 5), ("test", 2)):
        for index in range(count):
            files[f"data/{split}/a/{index}.png"] = png(colour=(10, 10, 10))
            files[f"data/{split}/b/{index}.bmp"] = png(colour=(240, 240, 240), fmt="BMP")
    scan = imagefolder.scan_zip(make_zip(files))
    assert scan.split_given and scan.class_names == ["a", "b"]
    assert scan.counts("train") == [5, 5] and scan.counts("test") == [2, 2]
    arrays = imagefolder.convert(scan).arrays
    assert len(arrays["y_train"]) == 10 and len(arrays["y_test"]) == 4


def test_gif_first_frame_grayscale_and_transparent_images_are_read(runs_dir):
    frames = [Image.new("L", (16, 16), 255), Image.new("L", (16, 16), 0)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    rgba.paste(Image.new("RGBA", (8, 8), (255, 255, 255, 255)), (6, 6))
    transparent = io.BytesIO()
    rgba.save(transparent, "PNG")
    files = {f"x/gif/{i}.gif": gif.getvalue() for i in range(3)}
    files.update({f"x/alpha/{i}.png": transparent.getvalue() for i in range(3)})
    scan = imagefolder.scan_zip(make_zip(files))
    converted = imagefolder.convert(scan, test_share=0.34)
    x = np.concatenate([converted.arrays["x_train"], converted.arrays["x_test"]])
    y = np.concatenate([converted.arrays["y_train"], converted.arrays["y_test"]])
    gif_label = scan.class_names.index("gif")
    assert (x[y == gif_label] == 255).all()  # the first (white) frame, not the second
    alpha = x[y == scan.class_names.index("alpha")][0]
    assert alpha[0, 0] == 0 and alpha[14, 14] == 255  # white ink shown on black, not lost on white


def test_wildly_different_sizes_are_resized_and_reported(runs_dir):
    files = {}
    for index in range(3):
        files[f"a/{index}.png"] = png(size=(8, 8))
        files[f"b/{index}.png"] = png(size=(900, 300), colour=(0, 255, 0))
    scan = imagefolder.scan_zip(make_zip(files))
    assert scan.size_summary()["min"] == (8, 8) and scan.size_summary()["max"] == (900, 300)
    assert "differ a lot" in scan.resize_note()
    converted = imagefolder.convert(scan)
    assert converted.arrays["x_train"].shape[1:] == (28, 28)


@pytest.mark.parametrize(
    "files, dirs, message",
    [
        ({"a.png": png(), "b.png": png()}, (), "has no class folders"),
        ({"cats/1.png": png(), "cats/2.png": png()}, (), "only one class with images ('cats')"),
        ({"cats/1.png": png(), "dogs/readme.txt": b"x"}, (), "only one class"),
        ({"cats/1.txt": b"x", "dogs/1.csv": b"x"}, (), "no usable images at all"),
    ],
)
def test_unusable_layouts_are_named_and_nothing_is_stored(runs_dir, files, dirs, message):
    with pytest.raises(imagefolder.InvalidImageFolder, match=message.replace("(", r"\(").replace(")", r"\)")):
        imagefolder.save_zip("bad", make_zip(files, dirs=dirs))
    assert uploads(runs_dir) == []


def test_empty_class_folders_are_left_out_and_said(runs_dir):
    files = shapes_zip(prefix="")
    files["triangle/notes.txt"] = b"todo"
    scan = imagefolder.scan_zip(make_zip(files, dirs=["hexagon"]))
    assert scan.class_names == ["circle", "square"]
    assert any("hexagon" in w and "triangle" in w for w in scan.warnings)


def test_too_big_too_many_files_and_too_much_unpacked_are_refused(runs_dir, monkeypatch):
    data = make_zip(shapes_zip())
    monkeypatch.setattr(imagefolder, "MAX_ZIP_BYTES", len(data) - 1)
    with pytest.raises(imagefolder.InvalidImageFolder, match="the limit is"):
        imagefolder.scan_zip(data)
    monkeypatch.undo()
    monkeypatch.setattr(imagefolder, "MAX_ENTRIES", 5)
    with pytest.raises(imagefolder.InvalidImageFolder, match="holds 12 files and folders; the limit is 5"):
        imagefolder.scan_zip(data)
    monkeypatch.undo()
    monkeypatch.setattr(imagefolder, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(imagefolder.InvalidImageFolder, match="unpacks to"):
        imagefolder.scan_zip(data)


def test_a_zip_bomb_entry_is_refused_before_it_is_unpacked(runs_dir):
    files = shapes_zip()
    files["shapes/circle/bomb.bmp"] = bytes(3 * 1024 * 1024)  # zeros: deflates about 1000x
    with pytest.raises(imagefolder.InvalidImageFolder, match="zip bomb"):
        imagefolder.scan_zip(make_zip(files))


@pytest.mark.parametrize("name", ["../evil/1.png", "a/../../evil.png", "/etc/evil.png", "C:/evil.png"])
def test_path_escaping_entries_are_refused(runs_dir, name):
    files = shapes_zip()
    files[name] = png()
    with pytest.raises(imagefolder.InvalidImageFolder, match="points outside its folder"):
        imagefolder.save_zip("escape", make_zip(files))
    assert uploads(runs_dir) == []


def test_symlink_entries_are_refused(runs_dir):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in shapes_zip().items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("shapes/circle/passwd.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(imagefolder.InvalidImageFolder, match="symbolic link"):
        imagefolder.scan_zip(buffer.getvalue())


def test_decompression_bombs_and_damaged_images_are_skipped_and_counted(runs_dir):
    bomb = io.BytesIO()
    Image.new("1", (8000, 6000), 0).save(bomb, "PNG")  # 48 megapixels in a few kB
    good = png()
    files = shapes_zip()
    files["shapes/circle/huge.png"] = bomb.getvalue()
    files["shapes/square/cut.png"] = good[: len(good) // 2]
    scan = imagefolder.scan_zip(make_zip(files))
    assert ("shapes/circle/huge.png", "too large (8000x6000 px; limit 40 MP)") in scan.skipped
    converted = imagefolder.convert(scan)
    assert [path for path, _ in converted.skipped] == ["shapes/square/cut.png"]
    assert "could not be decoded" in converted.notes[-1]
    assert len(converted.arrays["y_train"]) + len(converted.arrays["y_test"]) == 12


def test_not_a_zip_is_named(runs_dir):
    with pytest.raises(imagefolder.InvalidImageFolder, match="not a readable .zip"):
        imagefolder.scan_zip(b"just some text, not a zip")
    with pytest.raises(imagefolder.InvalidImageFolder, match="empty"):
        imagefolder.scan_zip(b"")


def test_a_failed_save_keeps_the_previous_dataset(runs_dir):
    imagefolder.save_zip("shapes", make_zip(shapes_zip()))
    before = (runs_dir / datasets.UPLOADS_SUBDIR / "shapes.npz").read_bytes()
    with pytest.raises(imagefolder.InvalidImageFolder):
        imagefolder.save_zip("shapes", make_zip({"only/1.png": png()}))
    assert (runs_dir / datasets.UPLOADS_SUBDIR / "shapes.npz").read_bytes() == before
    assert uploads(runs_dir) == ["shapes.npz"]


def test_suggest_name_makes_a_valid_dataset_name():
    assert imagefolder.suggest_name("My Shapes (v2).zip") == "my_shapes_v2"
    assert imagefolder.suggest_name("mnist.zip") == "images_mnist"
    assert datasets.NAME_PATTERN.match(imagefolder.suggest_name("ÄÖ.zip"))


def write_folder(root, per_class=4):
    for name, colour in (("circle", (200, 0, 0)), ("square", (0, 0, 200))):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            (root / name / f"{index}.png").write_bytes(png(colour=colour))


def test_a_folder_in_the_data_dir_is_listed_converted_once_and_cached(tmp_path, runs_dir, monkeypatch):
    data_dir = tmp_path / "data"
    write_folder(data_dir / "my_shapes")
    (data_dir / "my_shapes" / "circle" / "link.png").symlink_to(data_dir / "my_shapes" / "circle" / "0.png")
    calls = []
    real_convert = imagefolder.convert
    monkeypatch.setattr(imagefolder, "convert", lambda scan, **kw: calls.append(scan) or real_convert(scan, **kw))
    found = catalog.available_datasets(data_dir)
    assert found["my_shapes"].class_names == ("circle", "square")
    assert found["my_shapes"].input_shape == (28, 28, 1)
    assert ("circle/link.png", "symbolic link (not followed)") in calls[0].skipped
    catalog.available_datasets(data_dir)
    assert len(calls) == 1  # cached
    assert catalog.load_dataset("my_shapes", data_dir).x_train.shape[1:] == (28, 28, 1)
    (data_dir / "my_shapes" / "square" / "new.png").write_bytes(png(colour=(0, 0, 200)))
    catalog.available_datasets(data_dir)
    assert len(calls) == 2  # a changed folder is converted again
    cached = list((runs_dir / datasets.UPLOADS_SUBDIR / imagefolder.CACHE_SUBDIR / "my_shapes").iterdir())
    assert len(cached) == 1  # the old conversion is gone


def test_an_unusable_folder_in_the_data_dir_is_not_listed(tmp_path, runs_dir):
    data_dir = tmp_path / "data"
    (data_dir / "notes" / "a").mkdir(parents=True)
    (data_dir / "notes" / "b").mkdir()
    (data_dir / "notes" / "a" / "x.txt").write_text("x")
    assert "notes" not in catalog.available_datasets(data_dir)
    assert "notes" not in catalog.available_datasets(data_dir)  # the failure is remembered, still not listed
    said = f"notes/ in {data_dir} is not a usable dataset: notes has no usable images at all"
    assert catalog.unusable_datasets(data_dir)["notes"].startswith(said)
    with pytest.raises(datasets.InvalidDataset, match=re.escape(said)):
        catalog.load_dataset("notes", data_dir)


def test_folder_scan_refuses_a_missing_folder(tmp_path):
    with pytest.raises(imagefolder.InvalidImageFolder, match="no folder"):
        imagefolder.scan_folder(tmp_path / "nope")
    assert os.path.exists(tmp_path)


def test_two_conversions_of_the_same_folder_at_once_both_get_the_npz(tmp_path, runs_dir, monkeypatch):
    """Two visitors list the data dir at the same moment, while an older conversion is cached: the folder
    is converted once, both get a readable npz, and the cache ends with exactly that one."""
    import threading

    data_dir = tmp_path / "data"
    write_folder(data_dir / "my_shapes", per_class=30)
    cache = runs_dir / datasets.UPLOADS_SUBDIR / imagefolder.CACHE_SUBDIR / "my_shapes"
    older = imagefolder.cached_folder_npz(data_dir / "my_shapes")
    (data_dir / "my_shapes" / "square" / "new.png").write_bytes(png(colour=(0, 0, 200)))
    calls = []
    real_convert = imagefolder.convert
    monkeypatch.setattr(imagefolder, "convert", lambda scan, **kw: calls.append(scan) or real_convert(scan, **kw))
    barrier = threading.Barrier(2)
    loaded, errors = {}, []

    def convert_and_read(who):
        barrier.wait()  # both start together, so they really race
        try:
            path = imagefolder.cached_folder_npz(data_dir / "my_shapes")
            loaded[who] = (path, datasets.load_npz(path))
        except Exception as error:  # noqa: BLE001 - collected and shown by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=convert_and_read, args=(who,)) for who in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(calls) == 1  # one conversion; the other caller waited for it
    (path_a, data_a), (path_b, data_b) = loaded["a"], loaded["b"]
    assert path_a == path_b != older
    assert len(data_a.y_train) + len(data_a.y_test) == 61
    np.testing.assert_array_equal(data_a.x_train, data_b.x_train)
    assert [entry.name for entry in cache.iterdir()] == [path_a.name]


def test_a_conversion_waits_for_another_process_holding_the_folder(tmp_path, runs_dir):
    """Several server processes share the cache: the file lock beside the folder makes the second wait."""
    import subprocess
    import sys
    import time

    data_dir = tmp_path / "data"
    write_folder(data_dir / "my_shapes")
    cache = runs_dir / datasets.UPLOADS_SUBDIR / imagefolder.CACHE_SUBDIR
    cache.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"handle = open({str(cache / '.my_shapes.lock')!r}, 'a+b')\n"
         "fcntl.flock(handle, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(1.5)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        path = imagefolder.cached_folder_npz(data_dir / "my_shapes")
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert waited > 1.0  # it could not convert while the other process held the lock
    assert datasets.load_npz(path).info.class_names == ("circle", "square")

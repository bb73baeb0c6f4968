"""Data and Compare pages: your own image folders, drawn classes, imported models and run bundles."""

import io
import zipfile

import pytest
from PIL import Image

from lib.data import catalog, datasets, drawnclasses, synthdigits
from lib.execution import jobs
from lib.store import bundles, runs
from lib.ui import common as ui, data as ui_data
from tests.app.conftest import WEAK_RUN, open_page, run_names
from tests.conftest import forged


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, "PNG")
    return buffer.getvalue()


def shapes_zip(extra=None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(5):
            archive.writestr(f"shapes/red/{index}.png", png((220, 0, 0)))
            archive.writestr(f"shapes/blue/{index}.png", png((0, 0, 220)))
        archive.writestr("shapes/red/notes.txt", "not an image")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def texts(elements) -> str:
    return " ".join(str(element.value) for element in elements)


def test_an_uploaded_image_folder_is_reported_then_saved_and_selected(app_runs):
    """As a user with a folder of images per class, I see what was found before I save it, then train on it."""
    at = open_page("pages/data.py")
    at.file_uploader(key=ui_data.FOLDER_ZIP).set_value(("My Shapes.zip", shapes_zip(), "application/zip")).run()
    assert not at.exception, at.exception
    counts = next(frame.value for frame in at.dataframe if "class" in frame.value.columns)
    assert dict(zip(counts["class"], counts["images"])) == {"blue": 5, "red": 5}
    assert "from 24x16" not in texts(at.info) and "24x16" in texts(at.info) and "padded to 28x28" in texts(at.info)
    assert at.text_input(key=ui_data.FOLDER_NAME).value == "my_shapes"
    assert "Files skipped" in [metric.label for metric in at.metric]
    at.toggle(key=ui_data.FOLDER_COLOUR).set_value(True)
    at.segmented_control(key=ui_data.FOLDER_SIZE).set_value(32)
    at.button(key="data_zip_save").click().run()
    assert "Saved my_shapes: 2 classes, 8 training and 2 test images (32 x 32 x 3)" in texts(at.success)
    assert at.session_state[ui.DATASET] == "my_shapes"
    assert "**my_shapes (your file)**" in texts(at.markdown)  # the page now shows it
    assert catalog.load_dataset("my_shapes").x_train.shape == (8, 32, 32, 3)


def test_a_zip_with_a_path_escape_is_refused_with_a_clear_message(app_runs):
    """As a user, a zip that tries to write outside its folder is refused and explained, and nothing is kept."""
    at = open_page("pages/data.py")
    bad = shapes_zip(extra={"../../evil.png": png((0, 0, 0))})
    at.file_uploader(key=ui_data.FOLDER_ZIP).set_value(("bad.zip", bad, "application/zip")).run()
    assert "This zip cannot be used as a dataset" in texts(at.error)
    assert "points outside its folder" in texts(at.error)
    assert not any(button.key == "data_zip_save" for button in at.button)
    assert not (app_runs / datasets.UPLOADS_SUBDIR).exists()


def draft_with(per_class: int) -> dict:
    shapes = ("circle", "square")
    images, labels = synthdigits.shape_set(shapes, per_class, seed=3)
    draft = drawnclasses.new_draft(shapes)
    for image, label in zip(images, labels):
        drawnclasses.add_drawing(draft, shapes[label], image)
    return draft


def test_class_names_are_checked_before_drawing(app_runs):
    """As a user, naming only one class tells me I need at least two."""
    at = open_page("pages/data.py")
    at.text_input(key=ui_data.DRAW_NAMES).set_value("circle").run()
    at.button(key="data_draw_start").click().run()
    assert "at least 2 classes" in texts(at.error)
    at.text_input(key=ui_data.DRAW_NAMES).set_value("circle, square").run()
    at.button(key="data_draw_start").click().run()
    assert at.session_state[ui_data.DRAFT]["classes"] == ["circle", "square"]
    assert at.segmented_control(key=ui_data.DRAW_CLASS).options == ["circle", "square"]


def test_drawings_show_counts_and_thumbnails_and_undo_and_delete_work(app_runs):
    """As a user drawing my classes, I see how many I have, what the model will see, and can take some back."""
    at = open_page("pages/data.py")
    at.session_state[ui_data.DRAFT] = draft_with(3)
    at.run()
    assert [bar.value for bar in at.progress][:2] == [15, 15]  # 3 of the suggested 20
    assert "circle: 3 drawing(s)" in [bar.proto.text for bar in at.progress]
    assert at.button(key="data_draw_train").disabled is False
    at.button(key="data_draw_undo").click().run()  # the last drawing was a square
    assert drawnclasses.counts(at.session_state[ui_data.DRAFT]) == {"circle": 3, "square": 2}
    at.selectbox(key=ui_data.DRAW_DELETE).set_value(1)
    at.button(key="data_draw_delete_one").click().run()
    assert drawnclasses.counts(at.session_state[ui_data.DRAFT]) == {"circle": 2, "square": 2}
    assert at.button(key="data_draw_train").disabled is True
    assert "circle: 2 of at least 3 drawings" in texts(at.caption)


def test_save_and_train_drawn_classes_then_go_to_draw(app_runs):
    """As a user, one click saves my drawings as a dataset and trains on it; then Draw asks that model."""
    at = open_page("pages/data.py")
    at.session_state[ui_data.DRAFT] = draft_with(4)
    at.run()
    at.text_input(key=ui_data.DRAW_SET_NAME).set_value("doodles")
    at.number_input(key=ui_data.DRAW_EPOCHS).set_value(2)
    at.button(key="data_draw_train").click().run()
    assert "Saved doodles (8 drawings of 2 classes) and started training" in texts(at.success)
    assert catalog.available_datasets()["doodles"].kind == "digit"
    job = ui.job_manager().wait(at.session_state[ui_data.DRAW_JOB], timeout=300)
    assert job.state == "finished", job.error
    run = runs.get_run(job.run_id)
    assert run.meta["config"]["augment"] is True and run.class_names == ["circle", "square"]
    at.run()
    at.button(key="data_draw_go").click().run()
    assert at.session_state[ui.DRAW_FOCUS] == job.run_id
    assert at.multiselect(key="draw_models").value == [job.run_id]


def import_and_wait(at, page: str, upload: tuple) -> tuple:
    """Upload, click Import, see the import pending; wait for its job (a child process) and show the page again.

    Returns (the pending message, the ended job)."""
    at.file_uploader(key=f"{page}_{ui_data.IMPORT_FILE}").set_value(upload).run()
    at.button(key=f"{page}_import_go").click().run()
    assert not at.exception, at.exception
    pending = texts(at.info)
    job = ui.job_manager().wait(at.session_state[f"{page}_{ui_data.IMPORT_JOB}"], timeout=300)
    at.run()
    assert not at.exception, at.exception
    return pending, job


def test_importing_a_model_for_other_images_says_why_not(app_runs, tmp_path):
    """As a user with a model for 32x32 colour images, I am told it does not fit MNIST, in plain words."""
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "cifar.keras")
    at = open_page("pages/data.py")
    _, job = import_and_wait(at, "data", ("cifar.keras", (tmp_path / "cifar.keras").read_bytes(),
                                          "application/octet-stream"))
    assert job.state == jobs.FAILED
    assert "cifar.keras was not imported" in texts(at.error)
    assert "This model takes 32x32 colour images, but MNIST handwritten digits has 28x28 grayscale" in texts(at.error)
    assert len(runs.list_runs(include_bundled=False)[0]) == 2


def test_a_run_bundle_downloads_on_compare_and_imports_back_as_a_new_run(app_runs):
    """As a user, I download a run as one file and import it back; I see it pending, then it appears as
    another run, scored again here on the test set."""
    at = open_page("pages/compare.py")
    assert any(button.label == "Run bundle" for button in at.get("download_button"))
    source = runs.list_runs(include_bundled=False)[0][0]
    pending, job = import_and_wait(at, "compare", ("run.studio.zip", bundles.export_bundle(source), "application/zip"))
    assert "**run.studio.zip** · Importing:" in pending or "**run.studio.zip** · Queued:" in pending
    assert job.state == jobs.FINISHED, job.error
    assert "Imported as run" in texts(at.success) and "measured here on the test set" in texts(at.success)
    names = run_names(at)
    assert names.count(source.display_name) == 2
    ids = [run.run_id for run in runs.list_runs(include_bundled=False)[0]]
    assert len(set(ids)) == 3 and source.run_id in ids
    at.run()
    assert "Imported as run" not in texts(at.success)  # said once


def test_a_forged_bundle_is_listed_with_the_accuracy_its_model_really_has(app_runs):
    """As a user importing a bundle whose meta.json claims 99.99%, Compare lists what the model scores here."""
    source = next(run for run in runs.list_runs(include_bundled=False)[0] if run.display_name == WEAK_RUN)
    boast = forged(bundles.export_bundle(source), test_accuracy=0.9999, display_name="boast")
    at = open_page("pages/compare.py")
    _, job = import_and_wait(at, "compare", ("boast.studio.zip", boast, "application/zip"))
    assert job.state == jobs.FINISHED, job.error
    assert f"Test accuracy {source.meta['test_accuracy']:.2%}, measured here" in texts(at.success)
    table = next(frame.value for frame in at.dataframe if "name" in frame.value.columns)
    listed = dict(zip([name.replace(" 🔒", "") for name in table["name"]], table["test accuracy"]))
    assert listed["boast"] == pytest.approx(source.meta["test_accuracy"] * 100)

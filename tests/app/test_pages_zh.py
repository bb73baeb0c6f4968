"""Every page in Simplified Chinese (`?lang=zh`), and the switch between the two languages.

The translations come from locales/zh (see tests/lib/test_i18n_catalog.py for the catalog's checks);
these tests render each page through the router in Chinese, as a visitor would see it.
"""

import json

import pytest
from streamlit.testing.v1 import AppTest

from lib import i18n
from tests.app.conftest import APP_FILE, APP_TIMEOUT, GOOD_RUN


def open_page_zh(page: str) -> AppTest:
    """The app opened with `?lang=zh`, then the page (the session keeps the language across the switch)."""
    at = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)
    at.query_params["lang"] = "zh"
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    """Every text the page shows: markdown, captions, headings, alerts, widget labels, metrics, tab labels."""
    found = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        found += [element.value for element in at.get(kind)]
    for kind in ("button", "selectbox", "multiselect", "toggle", "slider", "number_input", "text_input",
                 "checkbox", "radio", "select_slider", "button_group", "expander", "tab", "metric"):
        found += [getattr(element, "label", "") or "" for element in at.get(kind)]
    return "\n".join(str(text) for text in found)


def chart_texts(at: AppTest) -> str:
    return "\n".join(json.dumps(json.loads(element.proto.spec), ensure_ascii=False) for element in at.get("plotly_chart"))


# page -> strings a Chinese visitor must see there (titles, headings, labels, chart titles)
PAGES = {
    "pages/home.py": ["MNIST Studio", "一键训练", "立即训练一个模型", "最近的运行", "Keras 教程的十堂课"],
    "pages/lessons.py": ["课程", "**教程讲的是：**", "快速试一试（5,000 张训练图像）", "所有教程配方：教程报告 vs 本站实测"],
    "pages/data.py": ["数据", "训练图像", "测试图像", "每个类别的样本", "像素，以及为什么要归一化", "写你自己的类别"],
    "pages/train.py": ["训练", "1 · 网络结构", "2 · 设置", "批大小", "学习率", "轮次（epoch）", "验证集比例"],
    "pages/predictions.py": ["预测", "随机测试图像", "只看分类错误的", "最容易混淆的类别"],
    "pages/draw.py": ["手写", "要询问的模型", "笔画粗细", "清除"],
    "pages/inside.py": ["内部", "单个输入", "它学到了什么", "测试集地图", "错误"],
    "pages/compare.py": ["比较", "曲线和测试准确率", "所有运行", "下载、重命名或删除运行"],
}


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_in_chinese(app_runs, bundled_run, page):
    """As a Chinese-speaking learner following a `?lang=zh` link, every page speaks Chinese, without an error."""
    at = open_page_zh(page)
    shown = texts(at)
    missing = [text for text in PAGES[page] if text not in shown]
    assert missing == [], shown
    assert at.session_state["language"] == "zh"
    assert "Train a model now" not in shown and "Recent runs" not in shown  # nothing left in English there


def test_charts_and_tables_speak_chinese(app_runs, bundled_run):
    """As a Chinese visitor, chart titles, axes and table headers are in Chinese too."""
    at = open_page_zh("pages/compare.py")
    spec = chart_texts(at)
    for text in ("运行比较：验证准确率", "准确率 (%)", "轮次", "测试准确率"):
        assert text in spec, text
    table = next(frame.value for frame in at.dataframe if "名称" in frame.value.columns)
    assert {"名称", "数据集", "网络结构", "测试准确率", "状态"} <= set(table.columns)
    assert GOOD_RUN in list(table["名称"])
    assert set(table["状态"]) == {"已完成"}  # both runs finished


def test_fashion_class_names_are_in_chinese(app_runs):
    """As a Chinese visitor on the Data page of Fashion-MNIST, the classes are named in Chinese."""
    at = open_page_zh("pages/data.py")
    at.session_state["dataset"] = "fashion_mnist"  # AppTest drops the sidebar after a navigation run
    at.run()
    assert not at.exception, at.exception
    spec = chart_texts(at)
    for name in ("T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴"):
        assert name in spec, name
    assert "Ankle boot" not in spec
    assert "**Fashion-MNIST 服装**" in texts(at)


def test_the_sidebar_switch_changes_the_language_and_the_url(app_runs):
    """As a visitor, I switch between English and 中文 in the sidebar; the address remembers my choice."""
    at = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)
    at.run()
    assert at.title[0].value == "MNIST Studio" and "Recent runs" in texts(at)  # English by default
    assert "lang" not in at.query_params  # an English visitor's address is left as it was
    switch = at.sidebar.get("button_group")[0]
    assert switch.options == ["English", "中文"]
    switch.set_value("zh").run()
    assert not at.exception, at.exception
    assert "最近的运行" in texts(at)
    assert at.query_params["lang"] in ("zh", ["zh"])
    at.switch_page("pages/train.py").run()  # a page change keeps it
    assert "1 · 网络结构" in texts(at)
    english = AppTest.from_file(APP_FILE, default_timeout=APP_TIMEOUT)  # a link with ?lang=en
    english.query_params["lang"] = "en"
    english.run()
    assert "Recent runs" in texts(english) and english.session_state["language"] == "en"


def test_the_engine_stays_english_outside_the_page(app_runs):
    """The CLI and the logs keep speaking English while a Chinese page is open (no session, no translation)."""
    open_page_zh("pages/home.py")
    assert i18n.current_language() == "en"
    assert i18n._("Train") == "Train"


@pytest.mark.parametrize("locale, language", [("zh-CN", "zh"), ("zh-Hans-SG", "zh"), ("zh_TW", "zh"),
                                              ("en-GB", "en"), ("fr-FR", "en"), (None, "en"), ("", "en")])
def test_browser_language_picks_the_default(locale, language):
    assert i18n.language_from_locale(locale) == language


def test_lessons_speak_chinese_down_to_the_builders_messages(app_runs):
    """As a Chinese learner on lesson 3, the broken models and the builder's refusals are in Chinese; the
    recipe cards of lesson 6 say the tutorial's settings in Chinese too."""
    at = open_page_zh("pages/lessons.py")
    at.selectbox(key="lessons_pick").select("3").run()
    shown = texts(at)
    assert "第 3 课：错误的网络结构会给出清楚的错误信息" in shown
    assert "最后一层有 5 个单元，但这个数据集有 10 个类别：请把它的单元数设为 10。" in shown
    assert "需要一个扁平向量" in shown
    at.selectbox(key="lessons_pick").select("6").run()
    shown = texts(at)
    assert "第 6 课：归一化很重要" in shown
    assert "像素 / 255" in shown and "原始 0-255 像素" in shown  # the two recipes' lines, side by side


# ---------------------------------------------------------------- what the engine says, in Chinese on the page


def report_zh(run_path: str) -> None:
    """A run's report on a Chinese page (the session's language, as the router sets it)."""
    from pathlib import Path

    import streamlit as st

    from lib.store import runs
    from lib.ui import common as ui

    ui.apply_session_defaults()
    st.session_state["language"] = "zh"
    ui.run_report(runs.read_run(Path(run_path)))


def test_a_hostile_zip_is_refused_in_chinese_while_the_engine_raises_english(app_runs):
    """As a Chinese visitor uploading a zip that tries to write outside its folder, I read the refusal in Chinese;
    the same refusal raised for the CLI stays English."""
    from lib.data import imagefolder
    from lib.ui import data as ui_data
    from tests.app.test_own_data import png, shapes_zip

    bad = shapes_zip(extra={"../../evil.png": png((0, 0, 0))})
    at = open_page_zh("pages/data.py")
    at.file_uploader(key=ui_data.FOLDER_ZIP).set_value(("bad.zip", bad, "application/zip")).run()
    shown = " ".join(str(error.value) for error in at.error)
    assert "该 zip 含有指向其文件夹之外的路径（'../../evil.png'）" in shown and "出于安全考虑" in shown, shown
    assert "points outside" not in shown
    with pytest.raises(imagefolder.InvalidImageFolder, match="points outside its folder"):
        imagefolder.scan_zip(bad)


def test_a_damaged_npz_upload_is_refused_in_chinese(app_runs):
    """As a Chinese visitor uploading a file that is no .npz, I read why in Chinese."""
    at = open_page_zh("pages/data.py")
    at.text_input(key="data_upload_name").set_value("letters")
    at.file_uploader(key="data_upload_file").set_value(("letters.npz", b"not a zip at all", "application/zip")).run()
    at.button(key="data_upload_add").click().run()
    shown = " ".join(str(error.value) for error in at.error)
    assert "这不是 .npz 文件（请用 numpy.savez_compressed 保存你的数据）。" in shown, shown


def test_a_diverged_runs_reason_reads_chinese_down_to_its_details(app_runs):
    """As a Chinese visitor whose run diverged, the report says in Chinese what happened and what to try
    (the cause quoted from the training and the fix, not only the sentence around them); meta.json stays English."""
    from lib.store import runs
    from lib.training import loop

    run = next(run for run in runs.list_runs(app_runs, include_bundled=False)[0] if run.display_name == GOOD_RUN)
    config = runs.read_config(run)
    what = "the loss rose from 2.3 to 9.1 by the end of epoch 1, with 10% accuracy (chance is 10%)"
    reason = loop.divergence_reason(config, what)
    meta = {**run.meta, "status": "diverged", "stop_reason": reason}
    (run.path / runs.META_FILE).write_text(json.dumps(meta))
    at = AppTest.from_function(report_zh, args=(str(run.path),), default_timeout=APP_TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    shown = " ".join(str(error.value) for error in at.error)
    assert "到第 1 轮结束时，损失从 2.3 升到了 9.1，准确率为 10%（随机猜测为 10%）" in shown, shown
    assert "试试" in shown and "the loss" not in shown and "try " not in shown, shown
    assert json.loads((run.path / runs.META_FILE).read_text())["stop_reason"].startswith("Training diverged: the loss")


def test_a_finished_report_says_so_once_in_both_languages(app_runs):
    """As a visitor, the finished run's banner reads "Completed 1 epoch." / "已完成 1 轮训练。", not the status twice."""
    from lib.store import runs
    from tests.app.test_run_report import open_report

    run = next(run for run in runs.list_runs(app_runs, include_bundled=False)[0] if run.display_name == GOOD_RUN)
    assert [success.value for success in open_report(run).success] == ["Completed 1 epoch."]
    at = AppTest.from_function(report_zh, args=(str(run.path),), default_timeout=APP_TIMEOUT)
    at.run()
    assert [success.value for success in at.success] == ["已完成 1 轮训练。"]
    layouts = [json.loads(chart.proto.spec)["layout"] for chart in at.get("plotly_chart")]
    axis = [layout["xaxis"]["title"]["text"] for layout in layouts if layout["title"]["text"] == "各类别准确率"]
    assert axis == ["类别"], axis


def test_a_missing_dataset_is_explained_in_chinese(app_runs, data_env, tmp_path, monkeypatch):
    """As a Chinese visitor offline on a server whose data folder lacks fashion_mnist.npz, the Data page tells me
    in Chinese which file to put where."""
    import shutil

    from lib.data import catalog

    data_dir = tmp_path / "only_mnist"
    data_dir.mkdir()
    shutil.copy(data_env / "mnist.npz", data_dir)
    monkeypatch.setenv("MNIST_STUDIO_DATA_DIR", str(data_dir))
    monkeypatch.setattr(catalog, "_keras_load", lambda name: (_ for _ in ()).throw(OSError("offline")))
    at = open_page_zh("pages/data.py")
    at.session_state["dataset"] = "fashion_mnist"
    at.run()
    assert not at.exception, at.exception
    shown = " ".join(str(error.value) for error in at.error)
    assert "Fashion-MNIST 服装 不可用：数据目录" in shown and "请把 fashion_mnist.npz" in shown, shown
    assert str(data_dir) in shown and "MNIST_STUDIO_DATA_DIR 指向包含它的文件夹" in shown, shown
    assert "is not available" not in shown and "Put fashion_mnist.npz" not in shown, shown


def test_an_unreachable_store_is_named_in_chinese(bundled_run, monkeypatch):
    """As a Chinese visitor while the class's S3 bucket is down, Home says in Chinese that the run store cannot be
    reached and what still works."""
    from tests.app.test_store_pages import unreachable_store

    unreachable_store(monkeypatch)
    at = open_page_zh("pages/home.py")
    shown = " ".join(str(error.value) for error in at.error)
    assert "无法连接运行存储 s3://class-runs/studio（" in shown and "自带模型和“手写”页面仍可使用" in shown, shown
    assert "cannot be reached" not in shown and "still work" not in shown, shown


def test_a_dataset_uploaded_while_the_store_is_down_is_explained_in_chinese(bundled_run, monkeypatch):
    """As a Chinese teacher uploading a dataset while the bucket is down, I read in Chinese that it stayed on this
    server, why, and what to do."""
    import io

    import numpy as np

    from tests.app.test_store_pages import unreachable_store
    from tests.conftest import synthetic_arrays

    unreachable_store(monkeypatch)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **synthetic_arrays(40, 20, num_classes=3))
    at = open_page_zh("pages/data.py")
    at.text_input(key="data_upload_name").set_value("letters").run()
    at.file_uploader(key="data_upload_file").set_value(("letters.npz", buffer.getvalue(), "application/zip")).run()
    at.button(key="data_upload_add").click().run()
    assert not at.exception, at.exception
    upload = next(str(error.value) for error in at.error if "数据集已添加到这里" in str(error.value))
    assert "无法连接运行存储" in upload and "运行存储重新响应后会自动发送过去" in upload, upload
    assert "cannot be reached" not in upload and "by itself once the store answers again" not in upload, upload


def noise_zip(images: int = 40, side: int = 8) -> bytes:
    """An image folder of tiny random-colour PNGs: a small zip that grows once converted (noise compresses badly)."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(images):
            image = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(image, "PNG")
            archive.writestr(f"noise/{('a', 'b')[index % 2]}/{index}.png", image.getvalue())
    return buffer.getvalue()


def test_a_dataset_past_the_quota_once_converted_is_refused_in_chinese(app_runs, monkeypatch):
    """As a Chinese visitor on a shared server that is almost full, the image folder I save fits by its zip's size
    but not once converted: I read in Chinese that it was not kept, and why."""
    from lib.store import profile
    from lib.ui import common as ui, data as ui_data

    monkeypatch.setenv(profile.PROFILE_ENV, "public")
    monkeypatch.setenv(profile.ENV["total_quota_mb"], "1")
    ui.job_manager.clear()
    upload = noise_zip()
    app_runs.mkdir(parents=True, exist_ok=True)
    held = sum(path.stat().st_size for path in app_runs.rglob("*") if path.is_file())
    (app_runs / "filler.bin").write_bytes(b"\0" * (profile.MB - held - len(upload) - 2048))
    try:
        at = open_page_zh("pages/data.py")
        at.file_uploader(key=ui_data.FOLDER_ZIP).set_value(("noise.zip", upload, "application/zip")).run()
        at.segmented_control(key=ui_data.FOLDER_SIZE).set_value(32).run()
        at.toggle(key=ui_data.FOLDER_COLOUR).set_value(True).run()
        at.button(key="data_zip_save").click().run()
        assert not at.exception, at.exception
    finally:
        ui.job_manager.clear()
    shown = " ".join(str(error.value) for error in at.error)
    assert "它没有被保留：它在磁盘上占" in shown and "本共享应用的存储空间已满" in shown, shown
    assert "It was not kept" not in shown and "more than there is room" not in shown, shown


def test_an_unusable_dataset_file_is_explained_in_chinese(app_runs, data_env, tmp_path, monkeypatch):
    """As a Chinese visitor whose data folder holds a letters.npz with labels past its class names and a file that
    is no npz at all, the Data page says in Chinese why each is not in the dataset list."""
    import shutil

    import numpy as np

    from tests.conftest import synthetic_arrays

    data_dir = tmp_path / "my_data"
    data_dir.mkdir()
    shutil.copy(data_env / "mnist.npz", data_dir / "mnist.npz")
    np.savez(data_dir / "letters.npz", **synthetic_arrays(40, 20, num_classes=4), class_names=np.array(["a", "b"]))
    (data_dir / "notes.npz").write_bytes(b"not a zip at all")
    monkeypatch.setenv("MNIST_STUDIO_DATA_DIR", str(data_dir))
    at = open_page_zh("pages/data.py")
    shown = " ".join(str(warning.value) for warning in at.warning)
    assert f"letters.npz（位于 {data_dir}）不是可用的数据集：y_train 的标签最大到 3" in shown, shown
    assert f"notes.npz（位于 {data_dir}）不是可用的数据集：不是可读的 npz 数据集（" in shown, shown
    assert "is not a usable dataset" not in shown and "labels up to" not in shown, shown


def exports_zh(run_path: str) -> None:
    """A run's export checks on a Chinese page, as the engine cached them (English): ONNX offered after a check on
    the run's test images, TFLite refused because it disagreed with Keras."""
    from pathlib import Path

    import streamlit as st

    from lib.models import exports
    from lib.store import runs
    from lib.ui import common as ui, exports as ui_exports

    ui.apply_session_defaults()
    st.session_state["language"] = "zh"
    run = runs.read_run(Path(run_path))
    source = exports.TEST_IMAGES.format(count=100, dataset=run.dataset["title"])
    measured = {"images": 100, "agree": 97, "near_ties": 0, "max_prob_diff": 0.31}
    checks = {
        "onnx": exports.ExportCheck("onnx", True, bytes=4096, max_prob_diff=2e-7, agree=100, images=100,
                                    image_source=source),
        "tflite": exports.ExportCheck("tflite", False, exports.disagreement(measured, 1e-4, lossy=False),
                                      image_source=source, **measured),
    }
    ui_exports.show_exports(run, exports.export_dir(run.path), checks, key="zh")


def test_an_export_checks_details_read_chinese(app_runs):
    """As a Chinese visitor looking at a run's exports, what each check ran on and why an export is not offered
    are in Chinese (the checks are cached in English, as the CLI prints them)."""
    from lib.store import runs

    run = next(run for run in runs.list_runs(app_runs, include_bundled=False)[0] if run.display_name == GOOD_RUN)
    at = AppTest.from_function(exports_zh, args=(str(run.path),), default_timeout=APP_TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    shown = texts(at)
    title = i18n.translation("zh").gettext(run.dataset["title"])
    assert title == "MNIST 手写数字"
    assert f"每个文件都用它自己的运行时重新加载，并在 {title} 的 100 张测试图像 上运行" in shown, shown
    assert f"已用 onnxruntime 在 {title} 的 100 张测试图像 上检查" in shown, shown
    assert "在 100 张检查图像中，它有 3 张预测的类别与 Keras 不同" in shown, shown
    assert "test images of" not in shown and "another class than Keras" not in shown, shown


def test_an_imported_runs_notes_read_chinese(app_runs):
    """As a Chinese visitor who imported a model taking flat vectors and giving logits, its report says in Chinese
    what the app did to fit it, every note (meta.json keeps the English)."""
    from types import SimpleNamespace

    from lib.data import catalog
    from lib.i18n import N_
    from lib.store import bundles, runs

    run = next(run for run in runs.list_runs(app_runs, include_bundled=False)[0] if run.display_name == GOOD_RUN)
    notes = [N_("It takes {takes}: the app reshapes each image for it.").format(takes=bundles.describe_input((784,))),
             N_("Its outputs are not probabilities (logits): the app adds a softmax."),
             N_("It is fed pixels scaled to [0, 1].")]
    scores = {key: run.meta[key] for key in ("per_class_accuracy", "confusion")}
    meta = bundles.imported_meta(run.run_id, SimpleNamespace(count_params=lambda: 7850), catalog.get_info("mnist"),
                                 {**scores, "loss": 0.3, "accuracy": 0.9}, normalize=True, source="flat.keras",
                                 notes=notes)
    assert meta["stop_reason"].startswith("from flat.keras, scored on the MNIST handwritten digits test set. It takes")
    (run.path / runs.META_FILE).write_text(json.dumps({**run.meta, **meta}))
    at = AppTest.from_function(report_zh, args=(str(run.path),), default_timeout=APP_TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    shown = " ".join(str(success.value) for success in at.success)
    assert ("来自 flat.keras，在MNIST 手写数字的测试集上评分。它接收含 784 个值的扁平向量：应用会为它改变每张图像的形状。"
            "它的输出不是概率（logits）：应用为它加上 softmax。输入的像素缩放到 [0, 1]。") in shown, shown
    assert "It takes" not in shown and "the app adds" not in shown and "It is fed" not in shown, shown


def test_the_layer_list_editors_refusals_read_chinese(app_runs):
    """As a Chinese learner pasting a layer list with a mistake on Train, I am told what is wrong in Chinese: a
    misspelt layer type, an argument the layer does not take, a kernel larger than what reaches it."""
    at = open_page_zh("pages/train.py")
    at.selectbox(key="train_arch").set_value("custom").run()
    at.text_area(key="train_json").set_value('[{"type": "dense", "units": 10}]').run()
    shown = texts(at)
    assert "第 1 层的类型 'dense' 未知。你是不是想写 'Dense'？已知的层类型：" in shown, shown
    assert "has unknown type" not in shown and "Did you mean" not in shown, shown
    at.text_area(key="train_json").set_value('[{"type": "Flatten", "units": 3}]').run()
    shown = texts(at)
    assert "第 1 层（Flatten）没有参数 'units'。它没有任何参数。" in shown, shown
    assert "has no argument" not in shown, shown
    at.text_area(key="train_json").set_value(
        '[{"type": "Conv2D", "filters": 4, "kernel_size": 40}, {"type": "Flatten"},'
        ' {"type": "Dense", "units": "num_classes", "activation": "softmax"}]').run()
    shown = texts(at)
    assert "第 1 层（Conv2D）的卷积核是 40x40，但它的输入只有 28x28：到这一层图像已经缩得太小了。" in shown, shown
    assert "shrunk too much" not in shown, shown
    assert at.button(key="train_start").disabled


def test_settings_that_cannot_be_used_are_explained_in_chinese(app_runs):
    """As a Chinese learner asking for a validation target and early stopping without a validation split, both
    problems are explained in Chinese."""
    at = open_page_zh("pages/train.py")
    at.slider(key="train_validation_split").set_value(0.0).run()
    at.toggle(key="train_target_on").set_value(True).run()
    at.number_input(key="train_patience").set_value(3).run()
    shown = texts(at)
    assert "以验证集指标为目标，需要验证集比例大于 0。 早停看的是验证损失（val_loss）：请把验证集比例设为大于 0。" in shown, shown
    assert "validation split above 0" not in shown and "Early stopping watches" not in shown, shown
    assert at.button(key="train_start").disabled


def test_damaged_run_folders_reasons_read_chinese(app_runs):
    """As a Chinese visitor whose runs folder holds hand-edited run folders, Home says in Chinese why each one was
    skipped (the folder names and meta.json's keys stay as they are)."""
    from tests.app.test_damaged_runs import BAD_HISTORY, break_runs

    break_runs(app_runs)
    at = open_page_zh("pages/home.py")
    (warning,) = [w.value for w in at.warning if "20200101-000001-aaaaa1" in w.value]
    for reason in ("20200101-000001-aaaaa1 (meta.json：config 不是对象。)",
                   "20200101-000003-aaaaa3 (meta.json：test_accuracy 不是 0 到 1 之间的数。)",
                   "20200101-000004-aaaaa4 (meta.json：dataset.class_names 不是一个包含 2 到 100 个名称的列表。)",
                   "20200101-000005-aaaaa5 (meta.json：display_name 不是文本。)",
                   "20200101-000006-aaaaa6 (meta.json：config.normalize 不是布尔值（true 或 false）。)",
                   "20200101-000007-aaaaa7 (meta.json：status 不是以下之一：finished,",
                   f"{BAD_HISTORY} (history.csv 没有这些列：epoch,"):
        assert reason in warning, warning
    assert " is not " not in warning and "does not have the columns" not in warning, warning


def test_the_bundled_model_and_a_vanished_run_are_refused_in_chinese(app_runs, bundled_run):
    """As a Chinese visitor on Compare, deleting the bundled model (shared with every visitor), or renaming a run
    whose folder vanished meanwhile, is refused in Chinese."""
    import shutil

    from lib.store import runs

    at = open_page_zh("pages/compare.py")
    at.selectbox(key="compare_manage_run").set_value(runs.BUNDLED_ID).run()
    at.checkbox(key=f"compare_confirm_{runs.BUNDLED_ID}").check().run()
    at.button(key="compare_delete").click().run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert f"'{bundled_run.display_name}' 是只读的：它由所有访问者共享。" in shown, shown
    assert "is read-only" not in shown, shown

    run = runs.list_runs(app_runs, include_bundled=False)[0][0]
    at.selectbox(key="compare_manage_run").set_value(run.run_id).run()
    shutil.rmtree(run.path)
    at.button(key="compare_rename").click().run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert f"{app_runs} 中没有运行 '{run.run_id}'（见 `python -m lib runs`）。" in shown, shown
    assert "No run" not in shown, shown


def test_inside_says_in_chinese_why_it_cannot_look_into_a_model(app_runs, bundled_run, tmp_path):
    """As a Chinese visitor picking a model with two branches on Inside, I am told in Chinese that it is no Sequential
    stack of layers."""
    from lib.store import runs
    from lib.ui import inside as ui_inside
    from tests.app.test_inside_page import give_a_branching_model

    source = runs.list_runs(app_runs, include_bundled=False)[0][0]
    give_a_branching_model(source, tmp_path)
    at = open_page_zh("pages/inside.py")
    at.selectbox(key=ui_inside.RUN_KEY).set_value(source.run_id).run()
    assert not at.exception, at.exception
    shown = "\n".join(error.value for error in at.error)
    assert "这个模型是一个 Functional，不是由层堆叠而成的 keras.Sequential，所以“内部”无法判断" in shown, shown
    assert "Missing:" not in shown and "Inside cannot tell" not in shown, shown


def test_the_learning_rate_schedules_are_named_in_chinese_beside_their_settings_names(app_runs, bundled_run):
    """As a learner reading Chinese, the schedule choices say what they are (恒定, 余弦, 单周期) and keep the names
    the help text and the CLI use; the setting stored is still the name."""
    at = open_page_zh("pages/train.py")
    (schedule,) = [radio for radio in at.radio if radio.label == "学习率调度"]
    assert list(schedule.options) == ["恒定（constant）", "余弦（cosine）", "单周期（one_cycle）"]
    assert schedule.value in ("constant", "cosine", "one_cycle")

"""lib.i18n: the one _() in the language of whoever is served, English without one; stored English texts
shown translated; numbers formatted for the language."""

import pytest

from lib import i18n
from lib.training import reasons


@pytest.fixture
def chinese():
    """A language source answering zh, as lib/ui installs one for a Chinese session; restored after."""
    previous = i18n._language_source
    i18n.use_language_source(lambda: "zh")
    yield
    i18n.use_language_source(previous)


def test_without_a_source_everything_stays_english():
    assert i18n.current_language() == "en"
    assert i18n._("Train") == "Train" and i18n._("Ankle boot") == "Ankle boot"


def test_a_chinese_source_translates_ui_texts_lessons_and_class_names(chinese):
    assert i18n._("Train") == "训练"
    assert i18n._("Normalization matters") == "归一化很重要"
    assert [i18n._(name) for name in ("T-shirt/top", "Ankle boot", "7")] == ["T恤/上衣", "短靴", "7"]


def test_an_empty_text_stays_empty(chinese):
    """gettext("") is the catalog's header; a missing title or reason must not show it."""
    assert i18n._("") == ""


def test_an_unknown_language_falls_back_to_english():
    previous = i18n._language_source
    i18n.use_language_source(lambda: "fr")
    try:
        assert i18n.current_language() == "en" and i18n._("Train") == "Train"
    finally:
        i18n.use_language_source(previous)


@pytest.mark.parametrize("stored, shown", [
    ("Completed 1 epoch.", "已完成 1 轮训练。"),
    ("Completed 5 epochs.", "已完成 5 轮训练。"),
    ("Stopped by request after 12,800 images; weights so far kept.", "按请求在训练 12,800 张图像后停止；保留了到目前为止的权重。"),
    ("Target reached at epoch 3: accuracy 0.9512 >= 0.95.", "在第 3 轮达到目标：准确率 0.9512 >= 0.95。"),
    ("A reason no template made.", "A reason no template made."),
])
def test_a_stored_stop_reason_is_shown_in_chinese(chinese, stored, shown):
    assert i18n.translate_filled(stored, reasons.STOP_REASONS) == shown


def test_stop_reasons_are_made_from_the_templates_the_pages_translate():
    """The training loop writes its reasons from these templates, so every one can be matched again."""
    from lib.training import loop
    from lib.training.config import TrainConfig

    reason = loop.divergence_reason(TrainConfig(optimizer="sgd", learning_rate=10.0, normalize=False),
                                    "the loss became nan (not a number) in epoch 1")
    assert reason.startswith("Training diverged: the loss became nan") and "255 times larger" in reason
    previous = i18n._language_source
    i18n.use_language_source(lambda: "zh")
    try:
        shown = i18n.translate_filled(reason, reasons.STOP_REASONS)
    finally:
        i18n.use_language_source(previous)
    assert shown.startswith("训练发散了：the loss became nan") and "（10）" in shown and "大 255 倍" in shown


def test_numbers_follow_the_language():
    assert (i18n.number(60000), i18n.number(0.07123, 4), i18n.percent(0.99123)) == ("60,000", "0.0712", "99.12%")
    previous = i18n._language_source
    i18n.use_language_source(lambda: "de")  # not offered: English formats
    try:
        assert i18n.number(1234.5, 1) == "1,234.5"
    finally:
        i18n.use_language_source(previous)


STORE = "s3://class-runs/studio"
UNREACHABLE_ZH = (f"无法连接运行存储 {STORE}（ConnectionRefusedError: [Errno 111] Connection refused）。在它恢复之前，"
                  "运行既不能保存到它那里，也不能从它那里列出；请检查 MNIST_STUDIO_STORE、MNIST_STUDIO_STORE_ENDPOINT 和网络。"
                  "自带模型和“手写”页面仍可使用。")


def _store_texts():
    """The run store's failures as the engine words them (English), each with what a Chinese page shows."""
    from lib.store import backend

    unreachable = backend.describe(STORE, ConnectionRefusedError(111, "Connection refused"))
    return [
        (unreachable, UNREACHABLE_ZH),
        (backend.describe(STORE, PermissionError("Access Denied for studio/20261203")),
         f"运行存储 {STORE} 拒绝了凭据（PermissionError: Access Denied for studio/20261203）。请检查应用 secrets 中的 "
         "AWS_ACCESS_KEY_ID 和 AWS_SECRET_ACCESS_KEY（或 GCS 凭据）；自带模型和“手写”页面仍可使用。"),
        (backend.describe(STORE, OSError(28, "No space left on device")),
         f"运行存储 {STORE} 已满（OSError: [Errno 28] No space left on device）。请在那里腾出空间或提高它的配额；在此之前无法保存运行。"),
        (backend.describe(STORE, RuntimeError("NoSuchBucket")),
         f"运行存储 {STORE} 不存在（RuntimeError: NoSuchBucket）。请创建该存储桶，或修正 MNIST_STUDIO_STORE。"),
        (backend.NO_BUCKET.format(url=STORE, bucket="class-runs", setting=backend.STORE_ENV),
         f"运行存储 {STORE} 不存在：请创建存储桶 'class-runs'，或修正 MNIST_STUDIO_STORE。"),
        (backend.CANNOT_USE.format(url="nope://x", error="Protocol not known: nope", setting=backend.STORE_ENV),
         "运行存储 'nope://x' 无法使用：Protocol not known: nope。请检查 MNIST_STUDIO_STORE（s3://bucket/prefix、"
         "gs://bucket/prefix 或一个文件夹）。"),
        (backend.SHORT_DOWNLOAD.format(url=STORE, file="r1/model.keras", size=10, listed=1000),
         f"运行存储 {STORE} 发来的 r1/model.keras 有 10 字节，而不是它列出的 1000 字节；请重新打开页面。"),
        (backend.NOT_STORED.format(problem=unreachable),
         f"运行已保存，但没有保存到运行存储中。{UNREACHABLE_ZH}它保留在本服务器上，等运行存储重新响应后会自动发送过去；"
         "如果应用在那之前重启，它就会丢失：为保险起见，请下载它的运行包。"),
    ]


def test_the_run_stores_failures_are_english_and_shown_in_chinese():
    """The store's failures stay English for the CLI and the logs; a Chinese page reads each one in Chinese
    (the technical detail in brackets quoted as it is)."""
    cases = _store_texts()
    assert cases[0][0].startswith(f"The run store {STORE} cannot be reached (ConnectionRefusedError")
    previous = i18n._language_source
    i18n.use_language_source(lambda: "zh")
    try:
        for english, chinese in cases:
            assert i18n.translate_filled(english) == chinese
    finally:
        i18n.use_language_source(previous)


def test_a_missing_builtin_dataset_and_a_passed_quota_are_shown_in_chinese(chinese, tmp_path, monkeypatch):
    """The refusals as the engine raises them (English, even while a Chinese page is open: no session in a
    plain call), then as a Chinese page shows them."""
    from lib.data import catalog, datasets
    from lib.store import profile, workspaces

    monkeypatch.setattr(catalog, "_keras_load", lambda name: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(datasets.DatasetUnavailable) as missing:
        catalog.load_dataset("fashion_mnist", tmp_path, tmp_path / "uploads")
    english = str(missing.value)
    assert english.startswith("Fashion-MNIST") and "is not available: no fashion_mnist.npz" in english
    assert i18n.translate_filled(english) == (
        f"Fashion-MNIST 服装 不可用：数据目录 {tmp_path} 中没有 fashion_mnist.npz，下载也失败了（OSError）。请把 "
        "fashion_mnist.npz（含 x_train、y_train、x_test、y_test 这几个键，与 keras.datasets.fashion_mnist.load_data() "
        f"返回的一致）放进 {tmp_path}，或者把 MNIST_STUDIO_DATA_DIR 指向包含它的文件夹。")
    i18n.use_language_source(lambda: None)  # the engine's side: English
    public = profile.current({profile.PROFILE_ENV: profile.PUBLIC})
    full = profile.check_disk(public, workspace_bytes=0, total_bytes=10**12, adding_bytes=1)
    not_kept = workspaces.NOT_KEPT.format(size=2.5, problem=full)
    assert not_kept.startswith("It was not kept: on disk it takes 2.5 MB") and "storage is full" in not_kept
    i18n.use_language_source(lambda: "zh")
    shown = i18n.translate_filled(not_kept)
    assert shown.startswith("它没有被保留：它在磁盘上占 2.5 MB，超出了剩余空间。本共享应用的存储空间已满"), shown
    assert "storage" not in shown


def test_an_unusable_dataset_reads_chinese_down_to_its_reason(chinese, tmp_path):
    """A dataset file that is there but unusable is listed in English ("<file> in <where> is not a usable
    dataset: <reason>", the reason without its "<file>: " lead); a Chinese page reads wrapper and reason in
    Chinese, and the reason's own template does not take the wrapper for its file name."""
    from lib.data import catalog

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "mine.npz").write_bytes(b"not a zip")
    (tmp_path / "My Data.npz").write_bytes(b"x")
    i18n.use_language_source(lambda: None)
    problems = catalog.unusable_datasets(tmp_path, uploads)
    i18n.use_language_source(lambda: "zh")
    assert problems["mine"] == "mine.npz in your uploads is not a usable dataset: not a readable npz dataset (File is not a zip file)."
    assert i18n.translate_filled(problems["mine"]) == (
        "mine.npz（位于 你上传的文件）不是可用的数据集：不是可读的 npz 数据集（File is not a zip file）。")
    assert i18n.translate_filled(problems["my data"]) == (
        f"My Data.npz（位于 {tmp_path}）不是可用的数据集：它的名称只能包含小写字母、数字、'-' 和 '_'（最多 41 个字符，"
        "以字母或数字开头）；请重命名该文件。")


def test_an_export_checks_details_are_english_and_shown_in_chinese(chinese):
    """What an export check ran on and why an export is refused are cached English (the CLI prints them);
    a Chinese page reads them in Chinese, the dataset's title included."""
    from lib.models import exports

    lossy = {"images": 100, "agree": 97, "near_ties": 1, "max_prob_diff": 0.3}
    cases = [
        (exports.TEST_IMAGES.format(count=100, dataset="MNIST handwritten digits"), "MNIST 手写数字 的 100 张测试图像"),
        (exports.GENERATED_IMAGES.format(count=100), "100 张生成的图像（它的数据集在这里不可用）"),
        (exports.disagreement(lossy, 0.05, lossy=True),
         "在 100 张检查图像中，它有 3 张预测的类别与 Keras 不同，其中 2 张是 Keras 很有把握的"),
        (exports.disagreement({**lossy, "agree": 100, "near_ties": 0, "max_prob_diff": 0.06}, 0.001, lossy=False),
         "它的概率与 Keras 的最多相差 0.06，超过了允许的 0.001"),
        (exports.ANSWERS_NAN, "模型的输出是 NaN（它的训练发散了）：没有值得导出的东西；请用更低的学习率重新训练它"),
        (exports.CONVERSION_FAILED.format(title="TFLite (float32)", error="RuntimeError: op not supported: Foo"),
         "TFLite (float32) 转换失败（RuntimeError: op not supported: Foo）"),
        (exports.DOES_NOT_RUN.format(runtime="onnxruntime", error="InvalidGraph: bad"),
         "导出的文件无法在 onnxruntime 中运行（InvalidGraph: bad）"),
        (exports.WRONG_SHAPE.format(shape=(3, 5), expected=(3, 10)), "它给出的形状是 (3, 5)，而 Keras 给出的是 (3, 10)"),
    ]
    assert cases[2][0] == "it predicts another class than Keras on 3 of 100 check images, 2 of them where Keras is sure"
    for english, chinese_text in cases:
        assert i18n.translate_filled(english) == chinese_text


def test_an_imported_runs_several_notes_are_each_shown_in_chinese(chinese):
    """An imported run's stop reason quotes all its notes joined in one field; each reads in Chinese."""
    reason = ("from flat.keras, scored on the MNIST handwritten digits test set. It takes flat vectors of 784 values: "
              "the app reshapes each image for it. It is fed raw 0..255 pixels.")
    assert i18n.translate_filled(reason) == (
        "来自 flat.keras，在MNIST 手写数字的测试集上评分。它接收含 784 个值的扁平向量：应用会为它改变每张图像的形状。"
        + i18n.translation("zh").gettext("It is fed raw 0..255 pixels."))


def _engine_templates():
    """The templates of the layer-list editor's, TrainConfig's, the run store's, Inside's and the exports' refusals."""
    from lib.execution import exporting
    from lib.models import architectures, exports, inside
    from lib.store import runs, workspaces
    from lib.training import config

    names = {
        architectures: ["LAYER", "NOT_WHOLE_NUMBER", "BAD_UNITS", "BAD_PADDING", "BAD_ACTIVATION", "BAD_MOMENTUM",
                        "BAD_RATE", "UNKNOWN_TYPE", "UNKNOWN_TYPE_HINT", "NOT_A_LIST", "NO_LAYERS", "TOO_MANY_LAYERS",
                        "NOT_A_LAYER", "NO_SUCH_ARGUMENT", "NO_ARGUMENTS", "NEEDS_ARGUMENT", "WINDOW_TOO_BIG_KERNEL",
                        "WINDOW_TOO_BIG_POOL", "TOO_SLOW", "NOT_UTF8", "JSON_TOO_LONG", "JSON_TOO_DEEP", "NOT_JSON",
                        "NUMBER_TOO_LONG", "JSON_NOT_A_LIST"],
        config: ["UNKNOWN_ARCH", "NO_CUSTOM_LAYERS", "BAD_EPOCHS", "BAD_BATCH_SIZE", "BAD_OPTIMIZER", "BAD_LEARNING_RATE",
                 "BAD_VALIDATION_SPLIT", "BAD_SCHEDULE", "BAD_LABEL_ENCODING", "BAD_PRECISION", "BAD_TARGET_METRIC",
                 "TARGET_NEEDS_SPLIT", "NEGATIVE_PATIENCE", "PATIENCE_NEEDS_SPLIT", "BAD_LIMIT", "WRONG_TYPE",
                 "NOT_A_MAPPING"],
        runs: ["NO_BUNDLED", "NOT_A_RUN_ID", "NO_SUCH_RUN", "BUNDLED_NOT_RENAMED", "BUNDLED_NOT_DELETED", "EMPTY_NAME",
               "META_MISSING", "META_TOO_LARGE", "META_NOT_JSON", "META_PROBLEM", "MODEL_MISSING", "HISTORY_MISSING",
               "HISTORY_PROBLEM"],
        workspaces: ["SHARED_READ_ONLY", "NO_LINK_NEEDED"],
        inside: ["NOT_SEQUENTIAL", "NO_LAYERS", "NO_INPUT_SHAPE", "NOT_IMAGES", "NO_OUTPUT_SHAPE", "SINGLE_LAYER"],
        exporting: ["TIMED_OUT", "ENDED_UNEXPECTEDLY", "FAILED_UNEXPECTEDLY"],
        exports: ["RUN_GONE"],
    }
    return [getattr(module, name) for module, listed in names.items() for name in listed]


# A value for every field of those templates; the marked-text fields (where, problem, wanted) get data no
# template matches, so that each template is checked on its own.
SAMPLE_VALUES = {
    "where": "X1", "problem": "X2", "wanted": "X3", "name": "'units'", "low": 1, "high": 4096, "value": "0",
    "token": "num_classes", "options": "adam, sgd", "index": 3, "type": "Dense", "match": "'Dense'",
    "known": "Conv2D, Dense", "count": 41, "limit": 40, "example": '{"type": "Dense", "units": 10}',
    "argument": "'units'", "size": 5, "height": 4, "width": 4, "macs": 2_000_000_000, "length": 30_000, "layers": 40,
    "depth": 3, "line": 1, "column": 2, "error": "Expecting value", "kind": "Functional", "shape": "(784,)",
    "run_id": "'20200101-000001-aaaaa1'", "folder": "/srv/runs", "run": "20200101-000001-aaaaa1", "minutes": 10.0,
    "code": -9,
}


@pytest.mark.parametrize("template", _engine_templates())
def test_each_engine_refusal_template_is_shown_in_chinese(chinese, template):
    """Every refusal the layer-list editor, TrainConfig, the run store, Inside and the exports raise in English is
    found again by translate_filled and shown as its Chinese translation, filled with the same values."""
    fields = set(i18n._FIELD.findall(template))  # the fields translate_filled sees (a JSON example is no field)
    english = template.format(**{field: SAMPLE_VALUES[field] for field in fields}) if fields else template
    chinese_text = i18n._(template)
    assert chinese_text != template, template
    if fields:
        chinese_text = chinese_text.format(**{field: SAMPLE_VALUES[field] for field in fields})
    assert i18n.translate_filled(english) == chinese_text


def test_the_engines_refusals_are_english_and_read_chinese_down_to_their_reasons():
    """The engine raises English (the CLI, the logs); a Chinese page reads each refusal whole, quoted layer names
    and a damaged folder's reason included."""
    from lib.models import architectures
    from lib.store import runs
    from lib.training.config import InvalidConfig, TrainConfig

    found = []
    for text in ('[{"type": "Dense", "units": 0}]', '{"type": "Flatten"}'):
        with pytest.raises(architectures.InvalidArchitecture) as refused:
            architectures.layers_from_json(text)
        found.append(str(refused.value))
    with pytest.raises(InvalidConfig) as refused:
        TrainConfig(normalize=1, precision="half")
    found += refused.value.problems
    meta_problem = runs.meta_problem({"config": {}, "dataset": {}, "test_accuracy": 2})
    found.append(runs.META_PROBLEM.format(run="20200101-000001-aaaaa1", problem=meta_problem))
    assert found == [
        "Layer 1 (Dense): units must be a whole number from 1 to 4,096; got 0.",
        'The JSON must be a list of layers, e.g. [{"type": "Flatten"}, {"type": "Dense", "units": "num_classes", '
        '"activation": "softmax"}].',
        "Setting 'normalize' must be true or false, not int.",
        "20200101-000001-aaaaa1: meta.json: test_accuracy is not a number from 0 to 1.",
    ]
    i18n.use_language_source(lambda: "zh")
    try:
        shown = [i18n.translate_filled(text) for text in found]
        reason = i18n.translate_unled(found[-1].removeprefix("20200101-000001-aaaaa1: "))
    finally:
        i18n.use_language_source(lambda: None)
    assert shown == [
        "第 1 层（Dense）：units 必须是 1 到 4,096 之间的整数；实际得到的是 0。",
        'JSON 必须是一个层列表，例如 [{"type": "Flatten"}, {"type": "Dense", "units": "num_classes", '
        '"activation": "softmax"}]。',
        "设置 'normalize' 必须是布尔值（true 或 false），而不是 int。",
        "20200101-000001-aaaaa1：meta.json：test_accuracy 不是 0 到 1 之间的数。",
    ]
    assert reason == "meta.json：test_accuracy 不是 0 到 1 之间的数。"
    assert all(text.isascii() for text in found)

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

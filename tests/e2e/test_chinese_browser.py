"""中文 in a real browser: a visitor switches Home to Chinese, trains with one click and reads the result in
Chinese; a browser whose language is Chinese gets the app in Chinese without asking."""

import re

import pytest

from tests.e2e.conftest import browser_missing_reason
from tests.e2e.studio import SLOW_MS

_missing = browser_missing_reason()
if _missing:
    pytest.skip(f"BROWSER TESTS SKIPPED: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.e2e

TRAIN_TIMEOUT_S = 420  # the one-click run on full MNIST on a busy 2-core machine


def test_switch_to_chinese_train_in_one_click_and_read_the_result(studio):
    """As a learner who reads Chinese, I press 中文 in the sidebar on Home, then 立即训练一个模型; the Train
    page shows my run's progress, 停止 stops it, and its report is in Chinese: its status, test accuracy and charts."""
    app = studio
    app.sidebar().get_by_text("中文", exact=True).click()
    app.settle()
    app.page.get_by_role("heading", name=re.compile("一键训练")).wait_for(timeout=SLOW_MS)
    assert "lang=zh" in app.page.url, app.page.url
    nav = app.page.get_by_test_id("stSidebarNav").inner_text()
    assert all(title in nav for title in ("首页", "课程", "数据", "训练", "预测", "手写", "内部", "比较")), nav

    app.page.get_by_role("button", name="立即训练一个模型").click()
    app.heading("训练").wait_for(timeout=SLOW_MS)
    assert "lang=zh" in app.page.url, app.page.url  # kept across the page change
    # The live state in Chinese; once the epoch is half done, 停止 (Stop): the report of a stopped run is
    # the same report (its wording checked below), without waiting for the whole epoch of full MNIST.
    running = re.compile(r"运行中：第 1/1 轮 · (\d+)%")
    app.wait_until(lambda: (found := running.search(app.page.get_by_test_id("stMain").inner_text()))
                   and int(found.group(1)) >= 50, timeout_s=TRAIN_TIMEOUT_S, what="运行中 … ≥ 50%")
    app.button("停止").click()
    app.heading("4 · 结果", level=3).wait_for(timeout=TRAIN_TIMEOUT_S * 1000)
    app.wait_idle()
    main = app.page.get_by_test_id("stMain")
    success = main.get_by_test_id("stAlertContentSuccess").first.inner_text()
    # The reason says how it ended; the status word before it would repeat it ("已停止：按请求…停止").
    assert re.search(r"(^|\n)按请求在训练 [\d,]+ 张图像后停止；保留了到目前为止的权重。$", success.strip()), success
    assert "已停止：" not in success, success
    accuracy = main.get_by_test_id("stMetric").filter(has_text="测试准确率").first.inner_text()
    value = float(re.search(r"(\d+\.\d+)%", accuracy).group(1))
    assert value > 50, accuracy  # one epoch of the fast CNN: ~99% on full MNIST, well above chance on the tiny one
    charts = app.page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .map(el => el.layout && el.layout.title && el.layout.title.text)""")
    titles = " ".join(title or "" for title in charts)
    for title in ("训练准确率", "训练损失", "混淆矩阵（数量）", "各类别准确率"):  # the report's four charts
        assert title in titles, charts
    app.screenshot("zh-one-click-result")


def test_a_chinese_browser_opens_the_app_in_chinese(browser, app_url, artifacts_dir):
    """As a visitor whose browser speaks Chinese (navigator.language zh-CN), the app opens in Chinese."""
    from tests.e2e.studio import Studio

    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    try:
        app = Studio(context.new_page(), app_url, artifacts_dir)
        app.open()
        app.page.get_by_role("heading", name=re.compile("一键训练")).wait_for(timeout=SLOW_MS)
        assert "lang=zh" in app.page.url, app.page.url
        assert not app.page_errors
    finally:
        context.close()

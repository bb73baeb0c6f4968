"""The Lessons page in a real browser: one lesson's preset trained end to end, then opened on Compare."""

import re

import pytest

from tests.e2e.conftest import browser_missing_reason
from tests.e2e.studio import SLOW_MS

_missing = browser_missing_reason()
if _missing:
    pytest.skip(f"BROWSER TESTS SKIPPED: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.e2e

TRAIN_TIMEOUT_S = 300  # a few quick epochs plus scoring the test set, on a busy 2-core machine
PRESET = "mlp-512-stop-at-95"


def test_the_callback_lesson_trains_its_preset_stops_at_the_target_and_opens_compare(studio):
    """As a learner, I open lesson 7, train its recipe as a quick try with one click, see it stop
    once training accuracy passes 95% (well before its 10 epochs), and compare the run."""
    studio.nav("Lessons")
    studio.choose("Lesson", "Lesson 7 ·")
    main = studio.page.get_by_test_id("stMain")
    assert main.get_by_text("stop at accuracy ≥ 0.95").first.is_visible()
    studio.page.get_by_text("Quick try (5,000 training images)").click()
    studio.settle()
    studio.button("Train it (quick try: 5,000 images)").click()
    studio.settle()

    reason = main.get_by_text(re.compile(r"^Target reached at epoch \d+: accuracy 0\.9\d+ ≥ 0\.95\.$"))
    studio.wait_until(lambda: reason.count() > 0, timeout_s=TRAIN_TIMEOUT_S, what="the stop-at-target reason",
                      every_s=0.5)
    epoch = int(re.search(r"epoch (\d+)", reason.first.inner_text()).group(1))
    assert epoch < 10  # the callback stopped it
    # The page reruns once the job ends: the lesson gets its tick and the button to its run.
    studio.wait_until(lambda: main.get_by_text("You have run 1 of 10 lessons").count() > 0,
                      timeout_s=SLOW_MS / 1000, what="lesson 7 counted as run")
    studio.wait_idle()
    assert studio.selected("Lesson").startswith("Lesson 7 ·")  # still the lesson on screen
    assert studio.exception_count() == 0
    studio.screenshot("lesson-7-trained")

    studio.button("Open Compare with this run").click()
    studio.heading("Compare").wait_for(timeout=SLOW_MS)
    studio.wait_idle()
    chosen = studio.widget("stMultiSelect", "Runs to compare").inner_text()
    assert PRESET in chosen
    assert studio.exception_count() == 0
    studio.screenshot("lesson-7-compare")

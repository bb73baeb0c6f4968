"""Draw your own classes in a real browser: draw examples, train in one click, ask the model on Draw.

AppTest cannot move a mouse over the canvas; this does, end to end: the Data page's canvas,
the drawings shelf, Save and train, the job finishing, and the Draw page answering with the
user's own class names.
"""

import pytest

from tests.e2e.conftest import browser_missing_reason
from tests.e2e.studio import SLOW_MS, ellipse, line

_missing = browser_missing_reason()
if _missing:
    pytest.skip(f"BROWSER TESTS SKIPPED: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.e2e

TRAIN_TIMEOUT_S = 300
CLASSES = ("ring", "bar")
# Three examples per class (the least the app accepts), in different sizes and places.
EXAMPLES = {
    "ring": [[ellipse((140, 140), (90, 80))], [ellipse((110, 120), (60, 70))], [ellipse((160, 150), (70, 100))]],
    "bar": [[line((140, 30), (140, 250))], [line((100, 60), (110, 220))], [line((180, 40), (170, 240))]],
}


def add_example(studio, class_name: str, strokes) -> None:
    add = studio.button(f"Add to {class_name}")
    studio.draw(strokes)
    # The rerun a stroke starts redraws the whole Data page: seconds, much more on a busy machine.
    studio.wait_until(add.is_enabled, timeout_s=SLOW_MS / 1000, what="the drawing to reach the app")
    add.click()
    studio.settle()
    studio.wait_until(lambda: studio.canvas_ink() == 0, timeout_s=10, what="an empty canvas after Add")


def test_draw_two_classes_train_and_get_a_prediction_on_draw(studio):
    """As a user, I name two classes, draw three examples of each, train in one click, and the
    Draw page answers a new drawing with one of my class names."""
    studio.nav("Data")
    studio.type_into("stTextInput", "Class names, separated by commas", ", ".join(CLASSES))
    studio.button("Start drawing").click()
    studio.settle()
    for class_name in CLASSES:
        studio.page.get_by_test_id("stMain").get_by_text(class_name, exact=True).click()
        studio.settle()
        for strokes in EXAMPLES[class_name]:
            add_example(studio, class_name, strokes)
    progress = studio.page.get_by_test_id("stMain").get_by_text("bar: 3 drawing(s)")
    assert progress.is_visible() and studio.exception_count() == 0
    studio.screenshot("own-classes-drawn")

    studio.type_into("stNumberInput", "Epochs", 3)
    studio.button("Save and train").click()
    studio.settle()
    go = studio.button("Try it on Draw")
    go.wait_for(timeout=TRAIN_TIMEOUT_S * 1000)
    studio.screenshot("own-classes-trained")
    go.click()
    studio.heading("Draw").wait_for(timeout=SLOW_MS)
    studio.wait_idle()
    chosen = studio.widget("stMultiSelect", "Models to ask").inner_text()
    assert "My drawings" in chosen, f"the new run is not the one asked: {chosen!r}"

    studio.draw([ellipse((140, 140), (80, 85))])
    studio.wait_until(lambda: studio.metric_values("Prediction"), timeout_s=SLOW_MS / 1000, what="a prediction")
    studio.wait_idle()
    answer = studio.metric_values("Prediction")[0]
    studio.screenshot("own-classes-draw")
    assert answer in CLASSES, f"Draw answered {answer!r}, not one of the user's classes"
    assert studio.exception_count() == 0

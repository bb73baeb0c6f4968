"""Inside in a real browser: drawing on its canvas changes the feature maps and the saliency map."""

import pytest

from lib.store import runs
from tests.e2e.conftest import browser_missing_reason
from tests.e2e.studio import SLOW_MS, line

_missing = browser_missing_reason()
if _missing:
    pytest.skip(f"BROWSER TESTS SKIPPED: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.e2e

ONE = [line((140, 40), (140, 240))]
BAR = [line((60, 60), (220, 60))]  # a top bar turns the 1 into a 7
# The data of the first Plotly chart in the element with this key, as a string (typed arrays included).
CHART_DATA_JS = """(key) => {
    const el = document.querySelector(`[class*="st-key-${key}"] .js-plotly-plot`);
    return el ? JSON.stringify((el.data || []).map(t => t.z)) : null;
}"""


def chart_data(studio, key: str) -> str | None:
    return studio.page.evaluate(CHART_DATA_JS, key)


def test_drawing_on_inside_changes_feature_maps_and_saliency(studio):
    """As a learner, I draw a 1 on Inside and see the first layer's feature maps and the saliency map;
    I add a bar to make it a 7 and both pictures change with the prediction."""
    assert runs.bundled_run() is not None, "models/default/ is missing"
    studio.nav("Inside")
    studio.choose("Run", "(bundled, read-only)", starts=False)  # earlier tests may have trained newer runs
    studio.wait_idle()
    studio.draw(ONE)
    studio.wait_until(lambda: studio.metric_values("Prediction"), timeout_s=SLOW_MS / 1000, what="a prediction")
    studio.wait_idle()
    studio.wait_until(lambda: chart_data(studio, "inside_layer_0"), timeout_s=30, what="the first layer's maps")
    first = studio.metric_values("Prediction")[0]
    maps, saliency = chart_data(studio, "inside_layer_0"), chart_data(studio, "inside_saliency_Grad-CAM")
    assert maps and saliency
    studio.screenshot("inside-one")

    studio.draw(BAR)
    studio.wait_until(lambda: chart_data(studio, "inside_layer_0") != maps, timeout_s=SLOW_MS / 1000,
                      what="the feature maps to follow the new stroke")
    studio.wait_idle()
    assert chart_data(studio, "inside_saliency_Grad-CAM") != saliency
    print(f"\npredicted {first} then {studio.metric_values('Prediction')[0]}")
    assert (first, studio.metric_values("Prediction")[0]) == ("1", "7")
    studio.screenshot("inside-seven")
    assert studio.exception_count() == 0

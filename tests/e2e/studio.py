"""A thin driver for MNIST Studio in a real browser: what a user clicks, types, draws and reads.

Streamlit marks its root element with the script state ("running" / "notRunning"),
so waits poll that and the content expected next; nothing sleeps blindly.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from pathlib import Path

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # without Playwright the browser tests skip themselves (see conftest.py)
    PlaywrightTimeout = TimeoutError

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
RUNNING = "[data-testid='stApp'][data-test-script-state='running']"
PAGE_TITLES = {"Home": "MNIST Studio"}  # nav label -> the page's h1, when they differ
RERUN_START_MS = 1000  # how long a click's rerun may take to start (short reruns may be missed)
OPTION_TRIES = 3
SLOW_MS = 120_000  # first TensorFlow import, first model load, predicting a whole test set
MAX_SCREENSHOT_PX = 12_000
CANVAS_PX = 280
PEN_CURSOR = "crosshair"  # Fabric.js free drawing's cursor
# Bright pixels on a canvas (the Draw page inks white on black).
INK_PIXELS_JS = """canvas => {
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let ink = 0;
    for (let i = 0; i < pixels.length; i += 4) ink += pixels[i] > 127;
    return ink;
}"""

# The element a mouse-down at page point (x, y) reaches, looking into shadow roots (the canvas
# component keeps its own): its class names, "" for none.
ELEMENT_AT_JS = """([x, y]) => {
    let element = document.elementFromPoint(x, y);
    while (element && element.shadowRoot) {
        const inner = element.shadowRoot.elementFromPoint(x, y);
        if (!inner || inner === element) break;
        element = inner;
    }
    return element ? String(element.className) : '';
}"""

# Points per trace of every Plotly chart in keyed elements whose key starts with the prefix.
# Plotly.py sends arrays as typed-array specs ({dtype, bdata}); Plotly.js keeps the decoded
# array beside them as _inputArray.
CHART_POINTS_JS = """(prefix) => Array.from(
    document.querySelectorAll(`[class*="st-key-${prefix}"] .js-plotly-plot`)
).map(el => Object.fromEntries((el.data || []).map(t => {
    const x = t.x;
    const n = x == null ? 0 : (x.length !== undefined ? x.length : (x._inputArray ? x._inputArray.length : 0));
    return [t.name, n];
})))"""


class Studio:
    """One browser tab (one Streamlit session) on the app."""

    def __init__(self, page, url: str, artifacts_dir: Path = ARTIFACTS_DIR):
        self.page, self.url, self.artifacts_dir = page, url, artifacts_dir
        self.page_errors: list[str] = []
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    # ------------------------------------------------------------ navigation and waiting

    def open(self, title: str = "MNIST Studio") -> None:
        """Load the app's address; `title` is the h1 of the page it opens on (Home's by default)."""
        self.page.goto(self.url)
        self.heading(title).wait_for(timeout=SLOW_MS)
        self.wait_idle()

    def nav(self, label: str) -> None:
        """Click a sidebar navigation link and wait until that page has rendered."""
        self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=label, exact=True).click()
        self.heading(PAGE_TITLES.get(label, label)).wait_for(timeout=SLOW_MS)
        self.wait_idle()

    def heading(self, text: str, level: int = 1):
        return self.page.get_by_role("heading", name=text, exact=True, level=level)

    def wait_idle(self, timeout_ms: int = SLOW_MS) -> None:
        """Until the script run in progress (if any) has finished."""
        self.page.wait_for_selector(IDLE, timeout=timeout_ms)

    def settle(self, timeout_ms: int = SLOW_MS) -> None:
        """After an interaction: wait for its rerun to start (briefly), then to end."""
        try:
            self.page.wait_for_selector(RUNNING, timeout=RERUN_START_MS)
        except PlaywrightTimeout:
            pass  # already over, or none was needed
        self.wait_idle(timeout_ms)

    def wait_until(self, condition, *, timeout_s: float, what: str, every_s: float = 0.25):
        """Poll `condition()` until it returns something truthy; fail saying `what` was awaited."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            self.page.wait_for_timeout(every_s * 1000)

    # ------------------------------------------------------------ reading the page

    def exception_count(self) -> int:
        return self.page.locator('[data-testid="stException"]').count()

    def sidebar_text(self) -> str:
        return self.sidebar().inner_text()

    def sidebar(self):
        return self.page.get_by_test_id("stSidebarUserContent")

    def widget(self, testid: str, label: str, *, within=None):
        """A Streamlit widget (by data-testid) whose label is exactly `label`."""
        scope = within or self.page.get_by_test_id("stMain")
        label_locator = self.page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)
        return scope.get_by_test_id(testid).filter(has=label_locator)

    def chart_points(self, key_prefix: str) -> list[dict[str, int]]:
        """Per chart under keys starting with `key_prefix`: {trace name: number of points}."""
        return self.page.evaluate(CHART_POINTS_JS, key_prefix)

    def progress_values(self) -> list[int]:
        """Values (0-100) of the progress bars in the page body."""
        bars = self.page.get_by_test_id("stMain").locator('[data-testid="stProgress"] [role="progressbar"]')
        # One read of all bars at once: counting, then reading each, waits 60 s on a bar that vanished between
        # the two (the job ended and its panel redrew without it).
        values = bars.evaluate_all("bars => bars.map(bar => bar.getAttribute('aria-valuenow'))")
        return [int(float(value)) for value in values if value is not None]

    def model_input(self) -> str | None:
        """The address of the first picture on the page (Draw: the 28x28 input the model was given; Streamlit
        serves each image under its own address), or None while there is none."""
        images = self.page.get_by_test_id("stMain").get_by_test_id("stImage").locator("img")
        return images.first.get_attribute("src") if images.count() else None

    def drawn_answer(self, strokes, what: str) -> str:
        """Draw `strokes` and read the first model's answer to all of them. Each stroke reruns the page with an
        answer of its own: the strokes before the last are answered first, then the answer is read once the
        picture the model was given has followed the last stroke (not the earlier one still on screen)."""
        seen = self.model_input()  # a picture from before (none on a cleared canvas)
        if len(strokes) > 1:
            self.draw(strokes[:-1])
            self.wait_until(lambda: self.metric_values("Prediction") and self.model_input(),
                            timeout_s=SLOW_MS / 1000, what=f"an answer to the first strokes of {what}")
            self.wait_idle()
            seen = self.model_input()
        self.draw(strokes[-1:])
        self.wait_until(lambda: self.model_input() not in (None, seen), timeout_s=SLOW_MS / 1000,
                        what=f"the picture the model was given to follow the last stroke of {what}")
        self.wait_until(lambda: self.metric_values("Prediction"), timeout_s=SLOW_MS / 1000, what=f"an answer to {what}")
        self.wait_idle()
        return self.metric_values("Prediction")[0]

    def metric_values(self, label: str) -> list[str]:
        metrics = self.page.get_by_test_id("stMetric").filter(
            has=self.page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
        )
        return [text.strip() for text in metrics.get_by_test_id("stMetricValue").all_inner_texts()]

    def table_rows(self) -> list[dict[str, str]]:
        """The rows of the st.dataframe with a "name" column, as {column: cell text}.

        The grid is painted on a canvas; its cells are read from the hidden table it keeps
        for screen readers (CSS, since role locators skip hidden elements).
        """
        header = self.page.locator("th[role=columnheader]").filter(has_text=re.compile("^name$"))
        frame = self.page.get_by_test_id("stDataFrame").filter(has=header).first
        frame.locator("td[role=gridcell]").first.wait_for(state="attached")
        headers = frame.locator("th[role=columnheader]").all_inner_texts()
        rows = []
        for row in frame.locator("tr").all():
            cells = row.locator("td[role=gridcell]").all_inner_texts()
            if len(cells) == len(headers):
                rows.append(dict(zip(headers, cells)))
        return rows

    # ------------------------------------------------------------ acting

    def button(self, name: str):
        return self.page.get_by_test_id("stMain").get_by_role("button", name=name, exact=True)

    def selected(self, label: str, *, within=None) -> str:
        """The option a selectbox shows (its combobox input holds the label)."""
        return self.widget("stSelectbox", label, within=within).get_by_role("combobox").input_value()

    def choose(self, label: str, option: str, *, starts: bool = True) -> None:
        """Type into the selectbox labelled `label` and pick the first option starting with
        (or, with starts=False, containing) `option`."""
        def shows_it(shown: str) -> bool:
            return shown.startswith(option) if starts else option in shown

        if shows_it(self.selected(label)):
            return  # typing what the box already holds would not open its list
        combobox = self.widget("stSelectbox", label).get_by_role("combobox")
        text = re.compile("^" + re.escape(option)) if starts else option
        choice = self.page.get_by_role("option").filter(has_text=text).first
        for attempt in range(1, OPTION_TRIES + 1):
            combobox.fill(option)  # typing opens the filtered list...
            try:
                choice.click(timeout=5000)
                break
            except PlaywrightTimeout:  # ...unless a rerun redrew the widget meanwhile: type again
                if attempt == OPTION_TRIES:
                    raise
                self.wait_idle()
        self.settle()
        shown = self.selected(label)
        assert shows_it(shown), f"{label!r} shows {shown!r}"

    def type_into(self, testid: str, label: str, value) -> None:
        """Fill a number or text input and commit it (Enter), as a user does."""
        field = self.widget(testid, label).locator("input")
        field.fill(str(value))
        field.press("Enter")
        self.settle()
        assert field.input_value() == str(value), f"{label!r} shows {field.input_value()!r}, not {value!r}"

    def drawing_canvas(self):
        """The canvas Fabric.js renders the drawing on (under the one that takes the strokes)."""
        return self.page.get_by_test_id("stMain").locator("canvas.dc-canvas.lower-canvas").last

    def canvas_ink(self) -> int:
        """How many pixels of the drawing show ink: 0 on an empty canvas."""
        return self.drawing_canvas().evaluate(INK_PIXELS_JS)

    def canvas_box(self) -> dict:
        """The drawing canvas's box on screen, once it stays put (the component stacks its
        canvases; the top one takes strokes).

        A newly mounted component is laid out without its stylesheet for a moment, its drawing
        canvas 288 px lower; its toolbar floating (position: absolute) says the stylesheet applies.
        """
        main = self.page.get_by_test_id("stMain")
        canvas = main.locator("canvas.upper-canvas").last
        canvas.wait_for(timeout=SLOW_MS)
        toolbar = main.locator(".dc-toolbar").last
        self.wait_until(lambda: toolbar.evaluate("toolbar => getComputedStyle(toolbar).position") == "absolute",
                        timeout_s=SLOW_MS / 1000, what="the canvas's stylesheet", every_s=0.05)
        canvas.scroll_into_view_if_needed()  # strokes leaving the viewport lose their mouse-up
        box = canvas.bounding_box()
        assert box and round(box["width"]) == CANVAS_PX, f"unexpected canvas box {box}"
        return box

    def wait_for_pen(self) -> dict:
        """Hover the canvas until the pen is ready (crosshair cursor); returns the canvas box.

        The component mounts its canvases first and switches on free drawing once its
        initial drawing has loaded; a stroke in between is lost (it selects page text).
        """
        box = self.canvas_box()
        canvas = self.page.get_by_test_id("stMain").locator("canvas.upper-canvas").last
        wiggle = itertools.cycle((0, 1))  # Fabric sets the cursor on mouse moves

        def pen_ready() -> bool:
            self.page.mouse.move(box["x"] + CANVAS_PX / 2 + next(wiggle), box["y"] + CANVAS_PX / 2)
            return canvas.evaluate("canvas => canvas.style.cursor") == PEN_CURSOR

        self.wait_until(pen_ready, timeout_s=SLOW_MS / 1000, what="the canvas's drawing pen", every_s=0.1)
        return box

    def draw(self, strokes: list[list[tuple[float, float]]]) -> None:
        """Draw strokes given in canvas pixels (0-280) with the mouse: down, small moves, up.

        Each stroke starts once its first point reaches the canvas. The component's toolbar,
        invisible while the pointer is elsewhere, still lies over the canvas's top right
        (about 140 x 30 px) and takes mouse-downs; it slides up out of the way 0.1-0.2 s after
        the pointer arrives. A stroke started there sooner is lost: nothing is drawn.
        """
        box = self.wait_for_pen()
        mouse = self.page.mouse
        for stroke in strokes:
            start = [box["x"] + stroke[0][0], box["y"] + stroke[0][1]]
            mouse.move(*start)
            self.wait_until(lambda start=start: "upper-canvas" in self.page.evaluate(ELEMENT_AT_JS, start), timeout_s=5,
                            what=f"the canvas, not its toolbar, under the stroke's start {stroke[0]}", every_s=0.05)
            mouse.down()
            for x, y in stroke[1:]:
                mouse.move(box["x"] + x, box["y"] + y, steps=2)
            mouse.up()

    # ------------------------------------------------------------ evidence

    def screenshot(self, name: str) -> Path:
        """A full-page PNG: the viewport is stretched to the scrolled content, then restored."""
        page = self.page
        size = page.viewport_size
        height = page.evaluate(
            """() => Math.max(window.innerHeight, ...['stMain', 'stSidebarContent'].map(
                id => document.querySelector(`[data-testid="${id}"]`)?.scrollHeight || 0))"""
        )
        page.set_viewport_size({"width": size["width"], "height": min(height + 40, MAX_SCREENSHOT_PX)})
        page.wait_for_timeout(500)  # re-layout after the resize
        path = self.artifacts_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        page.set_viewport_size(size)
        return path


def line(start: tuple[float, float], end: tuple[float, float], steps: int = 24) -> list[tuple[float, float]]:
    """Points along a straight stroke."""
    return [(start[0] + (end[0] - start[0]) * k / steps, start[1] + (end[1] - start[1]) * k / steps)
            for k in range(steps + 1)]


def ellipse(centre: tuple[float, float], radii: tuple[float, float], steps: int = 72) -> list[tuple[float, float]]:
    """Points around an ellipse, closing a little past the start as a hand does."""
    return [(centre[0] + radii[0] * math.cos(angle), centre[1] + radii[1] * math.sin(angle))
            for angle in (-math.pi / 2 + 2.1 * math.pi * k / steps for k in range(steps + 1))]

"""Screenshots of every page in every language: docs/screenshots/<lang>/<page>.png.

Serves the app (`streamlit run`, local profile) on a fresh runs folder holding one small trained run
beside the bundled model, opens each page with `?lang=<lang>` in headless Chromium (Debian's
/usr/bin/chromium; Chinese needs the fonts-noto-cjk package, or the glyphs are boxes), draws a digit
on Draw and Inside, trains with Home's one click for train-result, and saves a full-page PNG. Run it after changing the pages or the catalogs:

    MNIST_STUDIO_DATA_DIR=... python bench/screenshots.py            # every page, en and zh
    python bench/screenshots.py --languages zh --pages draw compare   # some of them
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from lib.i18n import translation
from tests.e2e.studio import Studio, line

OUT_DIR = PROJECT / "docs" / "screenshots"
# URL path -> what the visitor does there before the picture (None: nothing).
PAGES = {"home": "", "lessons": "lessons", "data": "data", "train": "train", "predictions": "predictions",
         "draw": "draw", "inside": "inside", "compare": "compare",
         "train-result": ""}  # Home's one-click training, shot on Train once its report is there
TRAIN_TIMEOUT_MS = 600_000  # one epoch of the fast CNN on full MNIST: about a minute on 2 cores
DEMO_RUN = dict(dataset="mnist", arch="cnn-tf-tutorial", epochs=2, limit=3000, name="demo cnn")
SEVEN = [line((70, 70), (210, 70)), line((210, 70), (120, 220))]  # a 7, drawn with the mouse


def train_demo_run(runs_dir: Path) -> None:
    """One small real run, so Compare and the pickers have more than the bundled model."""
    from lib.execution.pipeline import train_and_save
    from lib.training.config import TrainConfig

    train_and_save(TrainConfig(**DEMO_RUN), runs_dir=runs_dir)


def shoot(app: Studio, page: str, path: str, language: str, out_dir: Path) -> Path:
    app.page.goto(f"{app.url}/{path}?lang={language}")
    app.page.get_by_role("heading", level=1).first.wait_for(timeout=120_000)
    app.wait_idle()
    if page == "train-result":
        text = translation(language).gettext
        app.page.get_by_role("button", name=text("Train a model now")).click()
        app.heading(text("4 · Results"), level=3).wait_for(timeout=TRAIN_TIMEOUT_MS)
        app.wait_idle()
    if page in ("draw", "inside"):
        app.draw(SEVEN)
        app.settle()
    if page == "predictions":
        app.page.locator("[data-testid='stImage']").first.wait_for(timeout=120_000)
    app.page.evaluate("document.fonts.ready.then(() => true)")  # the CJK font, before tables draw their canvas
    app.page.wait_for_timeout(3000)  # Plotly's and the tables' first draw
    app.artifacts_dir = out_dir / language
    return app.screenshot(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", nargs="+", default=["en", "zh"])
    parser.add_argument("--pages", nargs="+", default=list(PAGES), choices=list(PAGES))
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from lib.data import paths
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, streamlit_server

    with tempfile.TemporaryDirectory() as scratch:
        runs_dir = Path(scratch) / "runs"
        train_demo_run(runs_dir)
        with streamlit_server(runs_dir, paths.data_dir(), Path(scratch) / "streamlit.log") as (url, _), \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for language in args.languages:
                (args.out / language).mkdir(parents=True, exist_ok=True)
                context = browser.new_context(viewport=VIEWPORT)
                context.set_default_timeout(120_000)
                app = Studio(context.new_page(), url, args.out / language)
                for page in args.pages:
                    print(shoot(app, page, PAGES[page], language, args.out).relative_to(PROJECT), flush=True)
                context.close()
                if app.page_errors:
                    raise SystemExit(f"JavaScript errors in the {language} pages: {app.page_errors}")
            browser.close()


if __name__ == "__main__":
    main()

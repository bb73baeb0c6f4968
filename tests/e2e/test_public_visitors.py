"""Two visitors of the public app in two real browsers: private workspaces, one queue, a shared bundle.

The `public` profile (MNIST_STUDIO_PROFILE=public) served by `streamlit run`, as on
Community Cloud: visitor A and visitor B are two browser contexts (two people), each
with the workspace key the app puts into their URL. Both train; B's job waits in the
queue behind A's and says so; each then sees only their own run; a run bundle A
downloads and B imports becomes B's run, and A's workspace is unchanged. AppTest covers
the same rules page by page (tests/app/test_public_profile.py); this shows them in
Chromium, through the real server, its child-process trainings and file transfers.
"""

import re
import time
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.conftest import browser_missing_reason
from tests.e2e.studio import SLOW_MS

_missing = browser_missing_reason()
if _missing:
    pytest.skip(f"BROWSER TESTS SKIPPED: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.e2e

TRAIN_TIMEOUT_S = 420  # two trainings one after the other, each in a fresh process, on a busy 2-core machine
RUN_A, RUN_B = "visitor A run", "visitor B run"
QUEUED = "Queued: position 1 (one training runs at a time on this machine)."
BUNDLE_SUFFIX = ".studio.zip"


def workspace_key(visitor) -> str:
    """The `ws` key in the visitor's address bar ("" when there is none)."""
    return parse_qs(urlparse(visitor.page.url).query).get("ws", [""])[0]


def workspace_link(visitor) -> str:
    """The link the sidebar's "Your workspace link" box shows."""
    box = visitor.sidebar().get_by_test_id("stExpander").filter(has_text="Your workspace link")
    box.get_by_text("Your workspace link").click()
    return box.get_by_test_id("stCode").inner_text().strip()


def main_text(visitor) -> str:
    return visitor.page.get_by_test_id("stMain").inner_text()


def prepare_training(visitor, name: str, epochs: int, images: int) -> None:
    """On the Train page: the one-layer softmax model on `images` images (0 = all) for `epochs` epochs, named `name`."""
    visitor.nav("Train")
    visitor.choose("Architecture", "softmax ·")
    visitor.type_into("stNumberInput", "Epochs", epochs)
    visitor.type_into("stNumberInput", "Limit training images (0 = all)", images)
    visitor.type_into("stTextInput", "Run name (optional)", name)


def job_state(visitor, name: str) -> str:
    """The state line under the job's name in the training panel ("Queued: position 1 …", ...)."""
    head = visitor.page.get_by_test_id("stMain").get_by_test_id("stMarkdownContainer").filter(
        has=visitor.page.get_by_role("heading", name=name, level=4)
    )
    texts = head.all_inner_texts()
    return texts[-1].replace(name, "", 1).strip() if texts else ""


def wait_for_results(visitor, name: str, ended: str = "Finished") -> None:
    visitor.heading("4 · Results", level=3).wait_for(timeout=TRAIN_TIMEOUT_S * 1000)
    visitor.wait_idle()
    state = job_state(visitor, name)
    assert re.match(rf"{ended} · test accuracy \d", state), f"{name}: {state!r}"


def run_names(visitor) -> list[str]:
    """The names in the "All runs" table of the Compare page on screen (the bundled model's with its lock)."""
    visitor.heading("All runs", level=3).wait_for(timeout=SLOW_MS)
    return [row["name"] for row in visitor.table_rows()]


def test_two_visitors_train_in_turn_see_only_their_own_runs_and_pass_a_bundle(public_visitors, tmp_path):
    """As two strangers on the shared app, we each get a private workspace link, train at the
    same time (B's run waits its turn and says its place in the queue), each see only our own
    run, and when A sends B the run bundle A downloaded, B's import lands in B's workspace while
    A still has exactly one copy; A's link brings A back to that run in a new browser."""
    started = time.monotonic()
    a, b = public_visitors("A"), public_visitors("B")
    key_a, key_b = workspace_key(a), workspace_key(b)
    assert key_a and key_b and key_a != key_b, (a.page.url, b.page.url)
    for visitor in (a, b):
        assert "Storage here is temporary" in visitor.sidebar_text()

    # A's run is long (50 epochs of 54,000 images: minutes on any CPU, just under the public limit of
    # 3 M epoch-images) so that it is still training when B clicks, however fast the machine; A stops
    # it once B has seen its place in the queue. B's is one epoch of 2,000 images.
    prepare_training(a, RUN_A, 50, 0)
    prepare_training(b, RUN_B, 1, 2000)
    assert a.page.get_by_test_id("stExpander").filter(has_text="Limits on this shared app").count() == 1
    assert workspace_key(a) == key_a and workspace_key(b) == key_b, "the ws key left the URL on Train"

    a.button("Train").click()
    a.heading("3 · Training", level=3).wait_for()
    b.button("Train").click()
    b.heading("3 · Training", level=3).wait_for()
    b.wait_until(lambda: job_state(b, RUN_B) == QUEUED, timeout_s=30, what="B's job queued at position 1")
    # The one job running meanwhile. A's panel redraws once a second; on a busy machine the draw
    # that first showed A's job (queued at position 1 for the instant before it was dispatched)
    # can still be on screen when B's is queued, so wait for A's next draw.
    a.wait_until(lambda: job_state(a, RUN_A).startswith(("Starting", "Running", "Scored")), timeout_s=30,
                 what="A's job started while B's waits")
    assert job_state(b, RUN_B) == QUEUED, "B's job left the queue while A's still runs"
    b.wait_until(lambda: QUEUED in b.sidebar_text(), timeout_s=30, what="the queue position in B's sidebar")
    # The page's own rerun after the click may still be drawing (A trains on the same 2 cores): wait for it.
    b.wait_until(lambda: "Someone else is training right now; your run will queue behind it." in main_text(b),
                 timeout_s=30, what="the 'someone else is training' notice on B's Train page")
    assert RUN_A not in main_text(b) and RUN_A not in b.sidebar_text()
    b.screenshot("public-b-queued")
    a.screenshot("public-a-training")

    clicked = time.monotonic()
    a.wait_until(lambda: job_state(a, RUN_A).startswith("Running"), timeout_s=TRAIN_TIMEOUT_S,
                 what="A's run training epochs")
    a.button("Stop").click()
    wait_for_results(a, RUN_A, ended="Stopped")
    a_done = time.monotonic()
    wait_for_results(b, RUN_B)
    b_done = time.monotonic()
    assert a.exception_count() == b.exception_count() == 0
    a.screenshot("public-a-finished")
    b.screenshot("public-b-finished")

    with a.page.expect_download() as download_info:
        a.page.get_by_test_id("stDownloadButton").filter(has_text="Run bundle").click()
    download = download_info.value
    assert download.suggested_filename.endswith(BUNDLE_SUFFIX), download.suggested_filename
    bundle = tmp_path / download.suggested_filename
    download.save_as(bundle)

    a.nav("Compare")
    b.nav("Compare")
    names_a, names_b = run_names(a), run_names(b)
    assert names_a.count(RUN_A) == 1 and RUN_B not in names_a, names_a
    assert names_b.count(RUN_B) == 1 and RUN_A not in names_b, names_b
    assert workspace_key(a) == key_a and workspace_key(b) == key_b, "the ws key left the URL on Compare"

    b.page.get_by_test_id("stExpander").get_by_text("Import a run bundle or a Keras model").click()
    b.page.get_by_test_id("stMain").get_by_test_id("stFileUploaderDropzoneInput").set_input_files(bundle)
    b.button("Import run").click()
    b.page.get_by_text(re.compile(r"^Imported as run visitor A run")).wait_for(timeout=SLOW_MS)
    b.wait_idle()
    b.screenshot("public-b-imported")
    names_b = run_names(b)
    assert names_b.count(RUN_A) == 1 and names_b.count(RUN_B) == 1, names_b

    a.nav("Home")
    a.nav("Compare")
    names_a = run_names(a)
    assert names_a.count(RUN_A) == 1 and RUN_B not in names_a, names_a
    a.screenshot("public-a-compare-after-b-imported")

    link = workspace_link(a)
    assert link.endswith(f"?ws={key_a}"), link
    a_again = public_visitors("A-again", link, title="Compare")  # another browser, the next day
    names_again = run_names(a_again)
    assert names_again.count(RUN_A) == 1 and RUN_B not in names_again, names_again
    assert workspace_key(a_again) == key_a
    a_again.screenshot("public-a-back-with-link")
    print(f"\nTrain clicked at {clicked - started:.0f} s; A's results after {a_done - clicked:.0f} s more, "
          f"B's {b_done - a_done:.0f} s after A's; all done at {time.monotonic() - started:.0f} s")

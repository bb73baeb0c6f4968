"""The restart story in a real browser: runs kept in a real S3 server outlive the app server.

A public app server (MNIST_STUDIO_PROFILE=public, as on Community Cloud) whose run store is a
moto S3 server on 127.0.0.1: a visitor trains and makes a share link; the app server is stopped
and its local runs folder deleted; a new server starts with the same store; the visitor's
workspace link shows the run and its predictions again, and the share link opens it in another
browser.
"""

import shutil
import uuid
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.conftest import _new_context, browser_missing_reason, streamlit_server
from tests.e2e.studio import SLOW_MS, Studio
from tests.e2e.test_public_visitors import prepare_training, run_names, wait_for_results, workspace_key

_missing = browser_missing_reason()
if _missing:
    pytest.skip(f"BROWSER TESTS SKIPPED: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.e2e

RUN = "kept across restarts"


@pytest.fixture
def s3_env(tmp_path):
    """A moto S3 server with a fresh bucket, as the environment of an app server that stores runs there."""
    import boto3

    from tests.moto_s3 import start_moto

    process, endpoint = start_moto(log=tmp_path / "moto-requests.log")
    bucket = f"class-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    yield {"MNIST_STUDIO_PROFILE": "public", "MNIST_STUDIO_STORE": f"s3://{bucket}/studio",
           "MNIST_STUDIO_STORE_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    process.terminate()
    process.wait(10)


def predictions_shown(visitor) -> tuple[str, int]:
    """On Predictions: the run the picker shows and how many test images the grid labels."""
    visitor.nav("Predictions")
    visitor.page.get_by_text("predicted", exact=False).first.wait_for(timeout=SLOW_MS)
    captions = visitor.page.get_by_test_id("stMain").get_by_test_id("stCaptionContainer").all_inner_texts()
    return visitor.selected("Run"), sum(1 for text in captions if " predicted " in text)


def test_a_visitors_run_predictions_and_share_link_survive_a_server_restart(browser, s3_env, e2e_data_dir,
                                                                            artifacts_dir, tmp_path):
    """As a learner, I train on the class's app and share my run; overnight the app restarts on an
    empty disk; my workspace link shows my run and its predictions, and my share link still works."""
    first_runs = tmp_path / "server-1-runs"
    with streamlit_server(first_runs, e2e_data_dir, artifacts_dir / "restart-server-1.log", **s3_env) as (url, _):
        context = _new_context(browser)
        visitor = Studio(context.new_page(), url, artifacts_dir)
        visitor.open()
        key = workspace_key(visitor)
        assert "kept in the run store" in visitor.sidebar_text()
        prepare_training(visitor, RUN, 1, 2000)
        visitor.button("Train").click()
        wait_for_results(visitor, RUN)
        visitor.button("Share a read-only link").click()
        visitor.settle()
        share_link = visitor.page.get_by_test_id("stMain").get_by_test_id("stCode").filter(
            has_text="share=").inner_text().strip()
        token = parse_qs(urlparse(share_link).query)["share"][0]
        before = predictions_shown(visitor)
        visitor.screenshot("restart-1-predictions-before")
        assert visitor.exception_count() == 0 and not visitor.page_errors
        context.close()
    shutil.rmtree(first_runs)  # the server's disk is wiped

    with streamlit_server(tmp_path / "server-2-runs", e2e_data_dir, artifacts_dir / "restart-server-2.log",
                          **s3_env) as (url, _):
        context = _new_context(browser)
        back = Studio(context.new_page(), f"{url}/compare?ws={key}", artifacts_dir)
        back.open("Compare")
        names = run_names(back)
        assert names[0] == RUN and all(name.endswith("🔒") for name in names[1:]), names  # the bundled model after it
        back.screenshot("restart-2-compare-after-restart")
        after = predictions_shown(back)
        back.screenshot("restart-2-predictions-after-restart")
        assert after[0].startswith(RUN) and after == before, (before, after)
        assert back.exception_count() == 0 and not back.page_errors

        friend_context = _new_context(browser)
        friend = Studio(friend_context.new_page(), f"{url}/compare?share={token}", artifacts_dir)
        friend.open("Compare")
        assert f"{RUN} 🔒" in run_names(friend)  # read-only through the link
        friend.screenshot("restart-3-share-link-after-restart")
        assert friend.exception_count() == 0 and not friend.page_errors
        context.close()
        friend_context.close()

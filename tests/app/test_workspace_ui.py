"""The workspace in the app (public profile): the key in the URL, the link back, share links.

These drive lib/ui/workspace.py through a small script; the pages use the same calls.
"""

import json

import pytest
from streamlit.testing.v1 import AppTest

from lib.store import workspaces


def workspace_script():
    import streamlit as st

    from lib.ui import workspace as ui_workspace

    workspace = ui_workspace.current()
    ui_workspace.open_share_link()
    ui_workspace.sidebar(workspace)
    own = [run.display_name for run in workspace.list_runs()[0] if not run.read_only]
    st.markdown("Runs: " + (", ".join(own) or "none"))
    shared = ui_workspace.shared_run()
    if shared is not None:
        st.markdown(f"Shared: {shared.display_name} (read-only: {shared.read_only})")


@pytest.fixture
def public(runs_dir, monkeypatch):
    monkeypatch.setenv("MNIST_STUDIO_PROFILE", "public")
    return runs_dir


def fake_run(folder, run_id, name):
    path = folder / run_id
    path.mkdir(parents=True)
    (path / "model.keras").write_bytes(b"weights")
    (path / "history.csv").write_text("epoch,loss\n1,0.5\n")
    (path / "meta.json").write_text(json.dumps({"display_name": name, "config": {}, "dataset": {}}))


def visit(**params):
    at = AppTest.from_function(workspace_script, default_timeout=30)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def markdown(at):
    return [element.value for element in at.markdown]


def test_a_first_visit_gets_a_private_workspace_key_in_the_url_and_the_link_back(public):
    """A new visitor gets a workspace; the sidebar shows the link and says storage is temporary."""
    at = visit()
    key = at.query_params["ws"][0] if isinstance(at.query_params["ws"], list) else at.query_params["ws"]
    assert workspaces.valid_key(key)
    assert f"ws={key}" in at.sidebar.code[0].value
    assert any("Storage here is temporary" in caption.value for caption in at.sidebar.caption)
    assert markdown(at)[0] == "Runs: none"


def test_two_visitors_see_only_their_own_runs_and_a_share_link_shows_one_run(public):
    """Visitor B never sees visitor A's run; A's share link shows B that one run, read-only."""
    a_key, b_key = workspaces.new_key(), workspaces.new_key()
    a = workspaces.open_workspace(a_key, root=public)
    fake_run(a.folder, "20260101-000000-aaaaaa", "visitor A run")
    assert markdown(visit(ws=a_key))[0] == "Runs: visitor A run"
    assert markdown(visit(ws=b_key))[0] == "Runs: none"
    token = a.share("20260101-000000-aaaaaa")
    seen = markdown(visit(ws=b_key, share=token))
    assert seen == ["Runs: none", "Shared: visitor A run (read-only: True)"]


def test_a_broken_share_link_says_so(public):
    """A share link cut short gets a message, not a traceback."""
    at = visit(ws=workspaces.new_key(), share="not-a-real-token")
    assert "This share link is not valid" in at.error[0].value


def test_local_profile_shows_no_workspace_link(runs_dir, monkeypatch):
    """On your own computer there is one workspace and nothing about links."""
    monkeypatch.delenv("MNIST_STUDIO_PROFILE", raising=False)
    at = visit()
    assert "ws" not in at.query_params and not at.sidebar.code

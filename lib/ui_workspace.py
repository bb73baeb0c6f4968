"""The visitor's workspace in the app: its key in the URL, the link to come back, share links.

In the `public` profile the workspace key lives in the page's query parameters
(`?ws=...`), so a reload keeps it and the link the sidebar shows brings the visitor
back to their runs. A share link (`?share=...`) opens one run read-only. In `local`
there is one workspace, the runs dir, and nothing here shows.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from lib import profile, runs, workspaces

WORKSPACE_PARAM = "ws"
SHARE_PARAM = "share"


def current() -> workspaces.Workspace:
    """The caller's workspace; in public a new key is made (and put into the URL) on the first visit."""
    active = profile.current()
    if not active.public:
        return workspaces.open_workspace(None, current=active)
    key = st.query_params.get(WORKSPACE_PARAM)
    if not workspaces.valid_key(key):
        if key:
            st.toast("That workspace link was not valid; here is a new, empty workspace.", icon=":material/warning:")
        key = workspaces.new_key()
        st.query_params[WORKSPACE_PARAM] = key
    return workspaces.open_workspace(key, current=active)


def visitor_id() -> str:
    """Who the job manager counts a job against: the workspace in public, the browser session in local."""
    workspace = current()
    return workspace.folder.name if workspace.key else st.session_state.get("session_id", "local")


def link(**params: str) -> str:
    """The app's address with these query parameters (relative if the browser URL is unknown)."""
    base = st.context.url or ""
    return f"{base}?{urlencode(params)}"


def sidebar(workspace: workspaces.Workspace) -> None:
    """Public only: the link back to this workspace and the warning that storage is temporary."""
    if workspace.key is None:
        return
    with st.sidebar.expander("Your workspace link", icon=":material/key:"):
        st.code(link(**{WORKSPACE_PARAM: workspace.key}), language=None, wrap_lines=True)
        st.caption("Keep this link private: anyone with it can see and change your runs. Bookmark it to come back.")
    st.sidebar.caption(
        ":material/warning: Storage here is temporary: runs vanish when the app restarts or after "
        f"{profile.current().limits.idle_days:g} idle days. Download the runs you want to keep."
    )


def shared_run() -> runs.RunInfo | None:
    """The run a share link opens (read-only), or None without one; a bad link gets a message."""
    token = st.query_params.get(SHARE_PARAM)
    if not token:
        return None
    try:
        return workspaces.open_share(token)
    except workspaces.WorkspaceNotFound as problem:
        st.error(str(problem), icon=":material/link_off:")
        return None


def share_button(workspace: workspaces.Workspace, run: runs.RunInfo) -> None:
    """A read-only link to one of the visitor's own runs."""
    if workspace.key is None or run.read_only:
        return
    if st.button("Share a read-only link", key=f"share_{run.run_id}", icon=":material/share:"):
        token = workspace.share(run.run_id)
        st.code(link(**{SHARE_PARAM: token}), language=None, wrap_lines=True)
        st.caption("Whoever opens this link sees this one run, read-only; never your other runs.")

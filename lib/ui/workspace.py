"""The visitor's workspace in the app: its key in the URL, the link to come back, share links.

In the `public` profile the workspace key lives in the page's query parameters
(`?ws=...`), so a reload keeps it and the link the sidebar shows brings the visitor
back to their runs. Streamlit clears query parameters when the visitor changes page,
so the session keeps the key too and puts it back into the URL on every run. A share
link (`?share=...`) adds one run, read-only, to what the visitor sees on every page.
In `local` there is one workspace, the runs dir, and nothing here shows.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from lib.store import backend, profile, runs, workspaces
from lib.ui.i18n import _, engine_text

WORKSPACE_PARAM = "ws"
SHARE_PARAM = "share"
WORKSPACE_KEY = "workspace_key"  # session state: the key, kept across page changes
SHARE_TOKEN = "share_token"  # session state: the share link this session opened


def current() -> workspaces.Workspace:
    """The caller's workspace; in public a new key is made (and put into the URL) on the first visit."""
    active = profile.current()
    if not active.public:
        return workspaces.open_workspace(None, current=active)
    from_url = st.query_params.get(WORKSPACE_PARAM)
    key = from_url if workspaces.valid_key(from_url) else st.session_state.get(WORKSPACE_KEY)
    if from_url and not workspaces.valid_key(from_url):
        st.toast(_("That workspace link was not valid (it may be cut short); here is a new, empty workspace."),
                 icon=":material/warning:")
        key = None
    if not workspaces.valid_key(key):
        key = workspaces.new_key()
    st.session_state[WORKSPACE_KEY] = key
    if from_url != key:
        st.query_params[WORKSPACE_PARAM] = key  # a reload or a bookmark comes back here
    return workspaces.open_workspace(key, current=active)


def visitor_id(workspace: workspaces.Workspace) -> str:
    """Who the job manager counts a job against: the workspace in public (all its tabs together),
    the browser session in local."""
    return workspace.folder.name if workspace.key else st.session_state.get("session_id", "local")


def link(**params: str) -> str:
    """The app's address with these query parameters (relative if the browser URL is unknown)."""
    base = st.context.url or ""
    return f"{base}?{urlencode(params)}"


def sidebar(workspace: workspaces.Workspace) -> None:
    """Public only: the link back to this workspace and the warning that storage is temporary."""
    if workspace.key is None:
        return
    with st.sidebar.expander(_("Your workspace link"), icon=":material/key:"):
        link_box(workspace)
    idle_days = profile.current().limits.idle_days
    if backend.current().remote:  # the run store outlives the server: the link brings everything back
        st.sidebar.caption(_(":material/cloud_done: Your runs and datasets are kept in the run store, across "
                             "restarts, until {idle_days:g} idle days have passed.").format(idle_days=idle_days))
    else:
        st.sidebar.caption(_(":material/warning: Storage here is temporary: runs vanish when the app restarts or after "
                             "{idle_days:g} idle days. Download the runs you want to keep.").format(idle_days=idle_days))


def link_box(workspace: workspaces.Workspace) -> None:
    """Public only: the link back to this workspace, and why to keep it private."""
    if workspace.key is None:
        return
    st.code(link(**{WORKSPACE_PARAM: workspace.key}), language=None, wrap_lines=True)
    st.caption(_("Keep this link private: anyone with it can see and change your runs. Bookmark it to come back."))


def open_share_link() -> None:
    """Once per run of the app: remember the share link in the URL for this session; a bad one gets a message."""
    token = st.query_params.get(SHARE_PARAM)
    if token and token != st.session_state.get(SHARE_TOKEN):
        try:
            run = workspaces.open_share(token)
        except workspaces.WorkspaceNotFound as problem:
            st.error(_("{problem} Ask for a new link; your own runs are unaffected.").format(problem=problem), icon=":material/link_off:")
            return
        st.session_state[SHARE_TOKEN] = token
        st.toast(_("Shared run {display_name!r} opened, read-only: every page lists it.").format(display_name=run.display_name), icon=":material/link:")
    elif not token and st.session_state.get(SHARE_TOKEN):
        st.query_params[SHARE_PARAM] = st.session_state[SHARE_TOKEN]  # keep it across page changes


def shared_run() -> runs.RunInfo | None:
    """The run this session's share link opens (read-only), or None without one or once it is gone."""
    token = st.session_state.get(SHARE_TOKEN) or st.query_params.get(SHARE_PARAM)
    if not token:
        return None
    try:
        return workspaces.open_share(token)
    except workspaces.WorkspaceNotFound:
        return None


def share_button(workspace: workspaces.Workspace, run: runs.RunInfo, *, key: str = "share") -> None:
    """A read-only link to one of the visitor's own runs."""
    if workspace.key is None or run.read_only:
        return
    if st.button(_("Share a read-only link"), key=f"{key}_{run.run_id}", icon=":material/share:"):
        try:
            token = workspace.share(run.run_id)
        except backend.StoreError as problem:
            st.error(_("The link was not made: {problem}").format(problem=engine_text(problem)), icon=":material/cloud_off:")
            return
        st.code(link(**{SHARE_PARAM: token}), language=None, wrap_lines=True)
        st.caption(_("Whoever opens this link sees this one run, read-only; never your other runs."))

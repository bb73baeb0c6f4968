"""The page's layout on phones and the drawing canvas's toolbar.

`apply()` injects lib/ui/phone.css (media queries: from 640 px down, where Streamlit stacks
columns) and a script that adds two CSS rules inside the canvas component's shadow root, which
no page stylesheet reaches (streamlit-drawable-canvas 0.13 isolates its styles): its toolbar,
invisible until the pointer hovers the canvas, lies over the canvas's top right (about 140 x 30 px)
and took the start of a stroke there; on a touch screen nothing hovers first, so it always did.
With the rules it takes no pointer while hidden and moves out of the canvas at once when shown.

`compact_bar()` is a button in the header's right end that opens the sidebar's essentials
(dataset, job status, workspace link) in one tap; it is rendered for phones only (`on_phone`, by
the browser's User-Agent), not hidden by CSS on desktops: a tab's first page draws its stylesheet
a moment after its widgets, and the button would flash there.
"""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

from lib.ui.i18n import _

STYLESHEET = Path(__file__).with_name("phone.css")
COMPACT_BAR_KEY = "compact_bar"  # the container phone.css pins to the header's right end
SCRIPTS_KEY = "page_scripts"  # a container phone.css never shows: scripts run all the same
MOBILE_MARK = "Mobi"  # in every phone browser's User-Agent ("Mobile", "Mobi"), in no desktop's

# Inside the canvas component's shadow root (see the module docstring). The rules go in as the
# component's shadow root is made (Streamlit attaches it in an effect, then appends the component's
# own markup beside them), so a canvas never takes a touch before they are there; roots made before
# this script ran are found by a look on every page change and twice a second.
CANVAS_TOOLBAR_SCRIPT = """<script>
(() => {
  if (window.studioCanvasToolbar) return;
  window.studioCanvasToolbar = true;
  const rules = `
    .dc-root:not(:hover) > .dc-toolbar:not([data-pinned="true"]):not(:focus-within) { pointer-events: none; }
    .dc-root:hover > .dc-toolbar { transition: opacity .15s .1s; }
  `;
  const addRules = root => {
    if (root && !root.querySelector('style[data-studio-toolbar]')) {
      const style = document.createElement('style');
      style.dataset.studioToolbar = '';
      style.textContent = rules;
      root.appendChild(style);
    }
  };
  const isolated = host => host.getAttribute && host.getAttribute('data-testid') === 'stBidiComponentIsolated';
  const attachShadow = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attachShadow.call(this, init);
    if (isolated(this)) addRules(root);
    return root;
  };
  const apply = () => document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')
    .forEach(host => addRules(host.shadowRoot));
  new MutationObserver(apply).observe(document.body, {childList: true, subtree: true});
  setInterval(apply, 500);
  apply();
})();
</script>"""


def apply() -> None:
    """The phone stylesheet and the canvas toolbar's rules, in a container the stylesheet hides
    (at the sidebar's end, where it shifts nothing while a tab's first page draws)."""
    with st.sidebar.container(key=SCRIPTS_KEY):
        st.markdown(f"<style>{_stylesheet()}</style>", unsafe_allow_html=True)
        st.html(CANVAS_TOOLBAR_SCRIPT, unsafe_allow_javascript=True)


@functools.cache
def _stylesheet() -> str:
    return STYLESHEET.read_text(encoding="utf-8")


def on_phone() -> bool:
    """Whether this session's browser says it runs on a phone."""
    return MOBILE_MARK in (st.context.headers.get("User-Agent") or "")


def compact_bar(render) -> None:
    """A popover pinned to the top right of the page with what `render()` draws in it (for phones)."""
    with st.container(key=COMPACT_BAR_KEY), st.popover(_("Dataset and job"), icon=":material/tune:"):
        render()
